#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tinymq/net/fd.h"
#include "tinymq/util/result.h"

// EventLoop: one epoll instance. Callers register descriptors with an interest mask and a 64-bit
// token of their choosing, then call RunOnce(), which waits and hands back (token, events) for
// each ready descriptor. Level-triggered: a descriptor not fully drained is reported again on the
// next turn, so a caller may stop reading one connection early to be fair to the others.
//
// Event bits are this header's own, so that callers need not include <sys/epoll.h>.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  does not own the registered descriptors; closing one removes it from the loop (no
//            dup()s are ever made). The span from Wait() is valid until the next Wait()/RunOnce().
// Errors:    Add/Modify/Remove/Wait return "epoll_ctl: <errno text>"-style messages; EINTR is not
//            an error (Wait returns no events). Never throws.

namespace tinymq::net {

using EventMask = std::uint32_t;
inline constexpr EventMask kReadable = 1U << 0;
inline constexpr EventMask kWritable = 1U << 1;
inline constexpr EventMask kHangup = 1U << 2;       // reported even when not asked for
inline constexpr EventMask kSocketError = 1U << 3;  // reported even when not asked for

struct Event {
  std::uint64_t token;
  EventMask events;
};

class EventLoop {
 public:
  // Most events one Wait() returns; more stay queued in the kernel for the next turn.
  static constexpr std::size_t kMaxEvents = 256;

  static util::Result<EventLoop, std::string> Create();

  // REQUIRES: `fd` is not registered yet / is registered (Modify, Remove).
  util::Result<void, std::string> Add(int fd, EventMask interest, std::uint64_t token) noexcept;
  util::Result<void, std::string> Modify(int fd, EventMask interest, std::uint64_t token) noexcept;
  util::Result<void, std::string> Remove(int fd) noexcept;

  // Waits up to `timeout` (nullopt: until something happens) for ready descriptors.
  util::Result<std::span<const Event>, std::string> Wait(
      std::optional<std::chrono::milliseconds> timeout) noexcept;

  // Wait(), then on_event(token, events) for each ready descriptor, in the kernel's order.
  // Returns the number of events handled.
  template <typename OnEvent>
  util::Result<std::size_t, std::string> RunOnce(std::optional<std::chrono::milliseconds> timeout,
                                                 OnEvent&& on_event) noexcept {
    util::Result<std::span<const Event>, std::string> ready = Wait(timeout);
    if (!ready) {
      return util::Unexpected(ready.error());
    }
    for (const Event& e : *ready) {
      on_event(e.token, e.events);
    }
    return ready->size();
  }

 private:
  explicit EventLoop(Fd epoll) : epoll_(std::move(epoll)) {}

  Fd epoll_;
  std::vector<Event> ready_;  // reused: no allocation per turn
};

}  // namespace tinymq::net
