#include "tinymq/net/socket_io.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace tinymq::net {

namespace {

IoResult Sorted(ssize_t n) {
  IoResult r;
  if (n > 0) {
    r.bytes = static_cast<std::size_t>(n);
  } else if (n == 0) {
    r.status = IoStatus::kClosed;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    r.status = IoStatus::kWouldBlock;
  } else {
    r.status = IoStatus::kError;
    r.error = errno;
  }
  return r;
}

}  // namespace

IoResult Receive(int fd, std::span<std::uint8_t> buffer) noexcept {
  ssize_t n = 0;
  do {
    n = ::recv(fd, buffer.data(), buffer.size(), 0);
  } while (n < 0 && errno == EINTR);
  return Sorted(n);
}

IoResult Peek(int fd, std::span<std::uint8_t> buffer) noexcept {
  ssize_t n = 0;
  do {
    n = ::recv(fd, buffer.data(), buffer.size(), MSG_PEEK);
  } while (n < 0 && errno == EINTR);
  return Sorted(n);
}

IoResult Send(int fd, std::span<const std::uint8_t> data) noexcept {
  ssize_t n = 0;
  do {
    n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  IoResult r = Sorted(n);
  if (r.status == IoStatus::kClosed) {  // send() of a non-empty buffer never returns 0
    r.status = IoStatus::kWouldBlock;
  }
  return r;
}

IoResult SendGather(int fd, std::span<const ByteRange> pieces) noexcept {
  std::array<iovec, kMaxGather> iov;
  const std::size_t count = std::min(pieces.size(), iov.size());
  for (std::size_t i = 0; i < count; ++i) {
    iov[i].iov_base = const_cast<void*>(pieces[i].data);  // sendmsg does not write through it
    iov[i].iov_len = pieces[i].size;
  }
  msghdr message{};
  message.msg_iov = iov.data();
  message.msg_iovlen = count;
  ssize_t n = 0;
  do {
    n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  IoResult r = Sorted(n);
  if (r.status == IoStatus::kClosed) {  // nothing was sent of a non-empty list: no room
    r.status = IoStatus::kWouldBlock;
  }
  return r;
}

int ShutdownWrite(int fd) noexcept { return ::shutdown(fd, SHUT_WR) == 0 ? 0 : errno; }

}  // namespace tinymq::net
