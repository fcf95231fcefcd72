#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

// Receive and Send: one non-blocking recv()/send() on a connected socket, with the errno cases a
// worker loop cares about sorted out. EINTR is retried here; EAGAIN becomes kWouldBlock; neither
// leaves this layer as an error.
//
// Threading: Thread-safe (no shared state; a socket itself belongs to one worker).
// Lifetime:  keeps nothing.
// Errors:    kError carries errno (ECONNRESET, EPIPE, ETIMEDOUT, ...): the connection is unusable.

namespace tinymq::net {

enum class IoStatus : std::uint8_t {
  kOk,          // `bytes` > 0 were transferred
  kWouldBlock,  // nothing to read / no room to write now
  kClosed,      // Receive only: the peer closed its side (end of stream)
  kError,       // `error` holds errno
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  std::size_t bytes = 0;
  int error = 0;
};

// REQUIRES: `buffer` is not empty.
IoResult Receive(int fd, std::span<std::uint8_t> buffer) noexcept;
// As Receive, but the bytes stay in the socket: the next Receive reads them again (MSG_PEEK).
IoResult Peek(int fd, std::span<std::uint8_t> buffer) noexcept;
// Never raises SIGPIPE (MSG_NOSIGNAL): a peer that went away is kError with EPIPE.
// REQUIRES: `data` is not empty.
IoResult Send(int fd, std::span<const std::uint8_t> data) noexcept;

// One piece of a gathered write.
struct ByteRange {
  const void* data = nullptr;
  std::size_t size = 0;
};
// Most pieces one SendGather() call takes (more are left for the next call).
inline constexpr std::size_t kMaxGather = 64;
// Writes the pieces in order with one sendmsg() (a writev that never raises SIGPIPE), as much as
// the socket takes; at most kMaxGather pieces. REQUIRES: a non-empty total.
IoResult SendGather(int fd, std::span<const ByteRange> pieces) noexcept;

// Ends the sending direction (the peer reads EOF after what was sent); reading goes on. Returns 0
// or an errno value.
int ShutdownWrite(int fd) noexcept;

}  // namespace tinymq::net
