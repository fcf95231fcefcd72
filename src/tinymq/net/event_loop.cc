#include "tinymq/net/event_loop.h"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <climits>

#include "tinymq/net/errno_text.h"

namespace tinymq::net {

namespace {

std::uint32_t ToEpoll(EventMask interest) {
  std::uint32_t events = 0;
  if ((interest & kReadable) != 0) {
    events |= EPOLLIN;
  }
  if ((interest & kWritable) != 0) {
    events |= EPOLLOUT;
  }
  return events;  // EPOLLHUP and EPOLLERR are always reported
}

EventMask FromEpoll(std::uint32_t events) {
  EventMask mask = 0;
  if ((events & (EPOLLIN | EPOLLPRI)) != 0) {
    mask |= kReadable;
  }
  if ((events & EPOLLOUT) != 0) {
    mask |= kWritable;
  }
  if ((events & EPOLLHUP) != 0) {
    mask |= kHangup;
  }
  if ((events & EPOLLERR) != 0) {
    mask |= kSocketError;
  }
  return mask;
}

util::Result<void, std::string> Control(int epoll, int op, int fd, EventMask interest,
                                        std::uint64_t token) {
  epoll_event ev{};
  ev.events = ToEpoll(interest);
  ev.data.u64 = token;
  if (::epoll_ctl(epoll, op, fd, &ev) != 0) {
    return util::Unexpected("epoll_ctl: " + ErrnoText(errno));
  }
  return {};
}

}  // namespace

util::Result<EventLoop, std::string> EventLoop::Create() {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) {
    return util::Unexpected("epoll_create1: " + ErrnoText(errno));
  }
  EventLoop loop(std::move(epoll));
  loop.ready_.reserve(kMaxEvents);
  return loop;
}

util::Result<void, std::string> EventLoop::Add(int fd, EventMask interest,
                                               std::uint64_t token) noexcept {
  return Control(epoll_.get(), EPOLL_CTL_ADD, fd, interest, token);
}

util::Result<void, std::string> EventLoop::Modify(int fd, EventMask interest,
                                                  std::uint64_t token) noexcept {
  return Control(epoll_.get(), EPOLL_CTL_MOD, fd, interest, token);
}

util::Result<void, std::string> EventLoop::Remove(int fd) noexcept {
  return Control(epoll_.get(), EPOLL_CTL_DEL, fd, 0, 0);
}

util::Result<std::span<const Event>, std::string> EventLoop::Wait(
    std::optional<std::chrono::milliseconds> timeout) noexcept {
  int timeout_ms = -1;
  if (timeout) {
    const auto ms = timeout->count();
    timeout_ms = ms <= 0 ? 0 : ms >= INT_MAX ? INT_MAX : static_cast<int>(ms);
  }
  std::array<epoll_event, kMaxEvents> raw;
  const int n = ::epoll_wait(epoll_.get(), raw.data(), static_cast<int>(raw.size()), timeout_ms);
  ready_.clear();
  if (n < 0) {
    if (errno == EINTR) {  // a signal (e.g. a debugger's): not an error, just no events
      return std::span<const Event>(ready_);
    }
    return util::Unexpected("epoll_wait: " + ErrnoText(errno));
  }
  for (int i = 0; i < n; ++i) {
    const epoll_event& e = raw[static_cast<std::size_t>(i)];
    ready_.push_back(Event{e.data.u64, FromEpoll(e.events)});
  }
  return std::span<const Event>(ready_);
}

}  // namespace tinymq::net
