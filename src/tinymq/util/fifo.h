#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "tinymq/util/check.h"

// A first-in first-out queue in one ring buffer that holds no memory while it is empty.
//
// std::deque allocates (about 600 bytes in libstdc++) as soon as it is constructed, which every
// idle session would pay for its usually empty message queue; this ring allocates on the first
// push and frees its storage when it empties again.
//
// Threading: Thread-compatible.
// Lifetime:  references from front() and for_each are valid until the next push_back, pop_front
//            or remove_if.
// Errors:    front() and pop_front() on an empty queue are bugs (TINYMQ_CHECK).

namespace tinymq::util {

template <typename T>
class Fifo {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  void push_back(T value) {
    if (size_ == capacity_) {
      Grow();
    }
    slots_[(head_ + size_) & (capacity_ - 1)] = std::move(value);
    ++size_;
  }

  T& front() {
    TINYMQ_CHECK(size_ != 0);
    return slots_[head_];
  }

  void pop_front() {
    TINYMQ_CHECK(size_ != 0);
    slots_[head_] = T();
    head_ = (head_ + 1) & (capacity_ - 1);
    if (--size_ == 0) {
      Free();  // nothing waits: hold no memory
    }
  }

  // Calls f(element) for each element, in order.
  template <typename F>
  void for_each(F f) {
    for (std::uint32_t i = 0; i < size_; ++i) {
      f(slots_[(head_ + i) & (capacity_ - 1)]);
    }
  }

  // Takes out, in order, every element for which `pred` is true and hands each to `sink`; the
  // others keep their order.
  template <typename Pred, typename Sink>
  void remove_if(Pred pred, Sink sink) {
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < size_; ++i) {
      T& item = slots_[(head_ + i) & (capacity_ - 1)];
      if (pred(item)) {
        sink(std::move(item));
        item = T();
      } else {
        if (kept != i) {
          slots_[(head_ + kept) & (capacity_ - 1)] = std::move(item);
          item = T();
        }
        ++kept;
      }
    }
    size_ = kept;
    if (size_ == 0) {
      Free();
    }
  }

 private:
  void Grow() {
    TINYMQ_CHECK(capacity_ <= UINT32_MAX / 2);
    const std::uint32_t capacity = capacity_ == 0 ? 4 : capacity_ * 2;  // a power of two
    auto bigger = std::make_unique<T[]>(capacity);
    for (std::uint32_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) & (capacity_ - 1)]);
    }
    slots_ = std::move(bigger);
    capacity_ = capacity;
    head_ = 0;
  }
  void Free() {
    slots_.reset();
    capacity_ = 0;
    head_ = 0;
  }

  // 24 bytes in all (a session has one, usually empty).
  std::unique_ptr<T[]> slots_;
  std::uint32_t capacity_ = 0;  // a power of two, or 0
  std::uint32_t head_ = 0;
  std::uint32_t size_ = 0;
};

}  // namespace tinymq::util
