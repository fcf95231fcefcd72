#pragma once

#include <cstdint>
#include <deque>

// What one subscriber has received of one publisher's sequence numbers (0, 1, 2, ...): tells a new
// message from a duplicate, and notes a message that arrives after a later one (out of order).
//
// Memory is bounded: it remembers the sequence numbers of a sliding window of kWindow numbers
// below the highest seen, as a bitmap that shrinks again as gaps fill (in-order delivery keeps it
// at one or two words). A gap older than the window is given up (those messages count as lost),
// and a number below the window is reported as a duplicate: it was either seen already or is
// more than kWindow messages late.
//
// Threading: Owned by one worker thread; not thread-safe.

namespace tinymq::bench {

class SequenceTracker {
 public:
  static constexpr std::uint64_t kWindow = 65536;

  enum class Outcome : std::uint8_t {
    kNew,            // first time seen, no later number seen before it
    kNewOutOfOrder,  // first time seen, but a later number came first
    kDuplicate,      // seen before (or older than the window)
  };

  Outcome Observe(std::uint64_t sequence);

  // Distinct sequence numbers seen.
  std::uint64_t unique() const { return unique_; }
  // Words of bitmap held now (for tests of the memory bound).
  std::size_t words() const { return bits_.size(); }

 private:
  std::uint64_t base_ = 0;  // multiple of 64; every number below it is seen or given up
  std::uint64_t next_ = 0;  // one past the highest number seen
  std::uint64_t unique_ = 0;
  std::deque<std::uint64_t> bits_;  // bit i of word w: number base_ + 64 * w + i seen
};

}  // namespace tinymq::bench
