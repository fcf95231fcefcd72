#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/fd.h"
#include "tinymq/util/result.h"

// Mailbox<T>: a bounded multi-producer, single-consumer queue from other worker threads to one
// worker, with an eventfd that the consumer registers in its epoll loop (for reading) to learn
// that something arrived.
//
// Producers post a batch at a time (once per loop turn), so a mutex around a vector is cheap
// enough, and simpler to trust (and to check under TSan) than a lock-free ring. Posting writes the
// eventfd only when the mailbox goes from empty to non-empty: at most one write per Drain(), not
// one per post.
//
// Order:     FIFO per producer: items one producer posts are drained in the order posted. Items
//            from different producers interleave in the order their Post() calls took the lock.
// Bound:     at most capacity() items wait. A full mailbox never blocks a producer: Post() moves
//            what fits and leaves the rest in the caller's vector; keeping those and posting them
//            again on a later turn (before anything newer, to keep the order) is the caller's job.
//
// Threading: Thread-safe. Post() and empty() may be called from any thread; Drain() only from the
//            one consumer thread.
// Lifetime:  owns the eventfd and the queued items. Create() returns it by unique_ptr so that its
//            address (and the mutex) stay put; it must outlive every producer that holds it.
// Errors:    Create() returns "mailbox: ..." text (zero capacity, or eventfd's errno). Post() and
//            Drain() never fail; an allocation failure while queueing is fatal (bad_alloc).

namespace tinymq::server {

template <typename T>
class Mailbox {
  // Private, so that only Create() can call the constructor (which make_unique needs public).
  struct Key {
    explicit Key() = default;
  };

 public:
  static util::Result<std::unique_ptr<Mailbox>, std::string> Create(std::size_t capacity) {
    if (capacity == 0) {
      return util::Unexpected(std::string("mailbox: capacity must be at least 1"));
    }
    net::Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) {
      return util::Unexpected("mailbox: eventfd: " + net::ErrnoText(errno));
    }
    return std::make_unique<Mailbox>(Key(), std::move(fd), capacity);
  }

  Mailbox(Key /*key*/, net::Fd fd, std::size_t capacity)
      : capacity_(capacity), event_fd_(std::move(fd)) {}

  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Readable while something may be waiting (it can be readable with nothing queued, after a
  // Drain() that raced a Post(); Drain() then returns nothing).
  int fd() const noexcept { return event_fd_.get(); }
  std::size_t capacity() const noexcept { return capacity_; }

  // Moves as many items as fit from the front of `items` into the mailbox, in order, erases them
  // from `items`, and returns how many moved (0 when the mailbox is full). Wakes the consumer when
  // the mailbox was empty.
  std::size_t Post(std::vector<T>& items) {
    if (items.empty()) {
      return 0;
    }
    std::size_t moved = 0;
    bool was_empty = false;
    {
      const std::lock_guard<std::mutex> lock(mu_);
      moved = std::min(capacity_ - queue_.size(), items.size());
      if (moved == 0) {
        return 0;
      }
      was_empty = queue_.empty();
      const auto end = items.begin() + static_cast<std::ptrdiff_t>(moved);
      queue_.insert(queue_.end(), std::make_move_iterator(items.begin()),
                    std::make_move_iterator(end));
      size_.store(queue_.size(), std::memory_order_release);
    }
    // Outside the lock: the moved-from husks, and the syscall.
    items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(moved));
    if (was_empty) {
      const std::uint64_t one = 1;
      // Fails only with EAGAIN when the counter is near 2^64 (it is already readable then).
      [[maybe_unused]] const ssize_t n = ::write(event_fd_.get(), &one, sizeof one);
    }
    return moved;
  }

  // Consumer only. Appends everything queued to `out`, in FIFO order, and resets the eventfd.
  // Swaps vectors rather than copying, so once the buffers have grown nothing is allocated.
  void Drain(std::vector<T>& out) {
    // Reset the eventfd before taking the items, never after: a Post() that lands after the
    // take finds the mailbox empty and writes the eventfd again, so no wake-up is lost; one that
    // lands between the two is taken now and leaves at worst a spurious wake-up.
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(event_fd_.get(), &count, sizeof count);  // EAGAIN ok
    {
      const std::lock_guard<std::mutex> lock(mu_);
      queue_.swap(spare_);  // spare_ is empty here; it keeps its capacity for the next round
      size_.store(0, std::memory_order_release);
    }
    if (out.empty()) {
      out.swap(spare_);  // out's empty buffer becomes the spare
    } else {
      out.insert(out.end(), std::make_move_iterator(spare_.begin()),
                 std::make_move_iterator(spare_.end()));
      spare_.clear();
    }
  }

  // True when nothing waits. Only a hint to producers; exact for the consumer in the sense that a
  // false answer means Drain() will return something.
  bool empty() const noexcept { return size_.load(std::memory_order_acquire) == 0; }

 private:
  // Const after construction.
  const std::size_t capacity_;
  const net::Fd event_fd_;

  // Guarded by mu_.
  std::mutex mu_;
  std::vector<T> queue_;

  // Written under mu_, read without it.
  std::atomic<std::size_t> size_{0};

  // Consumer-owned: the empty buffer Drain() swaps with queue_.
  std::vector<T> spare_;
};

}  // namespace tinymq::server
