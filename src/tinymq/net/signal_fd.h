#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "tinymq/net/fd.h"
#include "tinymq/util/result.h"

// SignalFd: signals (SIGINT, SIGTERM, ...) delivered as a readable descriptor an event loop can
// watch, instead of an asynchronous handler. Create() blocks the signals in the calling thread
// (threads started later inherit the mask, so create it before starting any); destruction drains
// what is pending and unblocks the signals it blocked.
//
// Threading: Owned by one thread; not thread-safe.
// Lifetime:  move-only; owns the signalfd and the mask change.
// Errors:    Create() returns "sigprocmask: ..." / "signalfd: ..." text. Read() never throws.

namespace tinymq::net {

class SignalFd {
 public:
  static util::Result<SignalFd, std::string> Create(std::initializer_list<int> signals);

  SignalFd(SignalFd&& other) noexcept;
  SignalFd& operator=(SignalFd&& other) noexcept;
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;
  ~SignalFd();

  int fd() const noexcept { return fd_.get(); }
  // The next pending signal's number, or nullopt when none is pending.
  std::optional<int> Read() noexcept;

 private:
  SignalFd(Fd fd, std::vector<int> blocked) : fd_(std::move(fd)), blocked_(std::move(blocked)) {}
  void Restore() noexcept;

  Fd fd_;
  std::vector<int> blocked_;  // the signals Create() blocked that were not blocked before
};

}  // namespace tinymq::net
