#include "tinymq/net/signal_fd.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "tinymq/net/errno_text.h"

namespace tinymq::net {

util::Result<SignalFd, std::string> SignalFd::Create(std::initializer_list<int> signals) {
  sigset_t wanted;
  sigset_t before;
  sigemptyset(&wanted);
  for (int s : signals) {
    sigaddset(&wanted, s);
  }
  if (const int e = ::pthread_sigmask(SIG_BLOCK, &wanted, &before); e != 0) {
    return util::Unexpected("pthread_sigmask: " + ErrnoText(e));
  }
  std::vector<int> blocked;
  for (int s : signals) {
    if (sigismember(&before, s) == 0) {
      blocked.push_back(s);
    }
  }
  Fd fd(::signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) {
    const int e = errno;
    SignalFd undo(Fd(), std::move(blocked));  // unblocks on the way out
    return util::Unexpected("signalfd: " + ErrnoText(e));
  }
  return SignalFd(std::move(fd), std::move(blocked));
}

SignalFd::SignalFd(SignalFd&& other) noexcept
    : fd_(std::move(other.fd_)), blocked_(std::exchange(other.blocked_, {})) {}

SignalFd& SignalFd::operator=(SignalFd&& other) noexcept {
  if (this != &other) {
    Restore();
    fd_ = std::move(other.fd_);
    blocked_ = std::exchange(other.blocked_, {});
  }
  return *this;
}

SignalFd::~SignalFd() { Restore(); }

std::optional<int> SignalFd::Read() noexcept {
  signalfd_siginfo info{};
  ssize_t n = 0;
  do {
    n = ::read(fd_.get(), &info, sizeof info);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof info)) {
    return std::nullopt;
  }
  return static_cast<int>(info.ssi_signo);
}

void SignalFd::Restore() noexcept {
  if (fd_) {
    // Consume what is pending, so that unblocking does not deliver it with its default action
    // (which, for SIGINT and SIGTERM, would end the process after a clean stop).
    while (Read()) {
    }
  }
  fd_.Reset();
  if (blocked_.empty()) {
    return;
  }
  sigset_t unblock;
  sigemptyset(&unblock);
  for (int s : blocked_) {
    sigaddset(&unblock, s);
  }
  ::pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  blocked_.clear();
}

}  // namespace tinymq::net
