#include "tinymq/net/socket_io.h"

#include <sys/socket.h>
#include <sys/types.h>

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

int ShutdownWrite(int fd) noexcept { return ::shutdown(fd, SHUT_WR) == 0 ? 0 : errno; }

}  // namespace tinymq::net
