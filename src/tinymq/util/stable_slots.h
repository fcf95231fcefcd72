#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "tinymq/util/check.h"

// A growable array of T whose elements never move: chunks of kChunk elements, allocated as the
// array grows. For tables of records that are referred to by pointer and by a small index (a
// slot), where one allocation per record would cost a pointer and a heap chunk header each.
//
// Elements are default-constructed with their chunk and live until the table is destroyed; the
// user decides what an unused element looks like (e.g. an id of 0) and resets elements itself.
//
// Threading: Thread-compatible.
// Lifetime:  references stay valid until the table is destroyed.
// Errors:    an index at or past size() is a bug (TINYMQ_DCHECK).

namespace tinymq::util {

template <typename T, std::size_t kChunk = 256>
class StableSlots {
 public:
  std::size_t size() const { return size_; }

  T& operator[](std::size_t i) {
    TINYMQ_DCHECK(i < size_);
    return chunks_[i / kChunk][i % kChunk];
  }
  const T& operator[](std::size_t i) const {
    TINYMQ_DCHECK(i < size_);
    return chunks_[i / kChunk][i % kChunk];
  }

  // One more element (default-constructed); returns it.
  T& grow() {
    if (size_ % kChunk == 0) {
      chunks_.push_back(std::make_unique<T[]>(kChunk));
    }
    return (*this)[size_++];
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  std::size_t size_ = 0;
};

}  // namespace tinymq::util
