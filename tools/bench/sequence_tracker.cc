#include "tools/bench/sequence_tracker.h"

#include <algorithm>

namespace tinymq::bench {

SequenceTracker::Outcome SequenceTracker::Observe(std::uint64_t sequence) {
  if (sequence < base_) {
    return Outcome::kDuplicate;
  }
  if (sequence - base_ >= kWindow) {
    // Slide the window up so that `sequence` is its last number; what falls out is given up.
    const std::uint64_t new_base = ((sequence - kWindow) / 64 + 1) * 64;
    const std::uint64_t drop = std::min<std::uint64_t>((new_base - base_) / 64, bits_.size());
    bits_.erase(bits_.begin(), bits_.begin() + static_cast<std::ptrdiff_t>(drop));
    base_ = new_base;
  }
  const std::uint64_t offset = sequence - base_;
  const auto word = static_cast<std::size_t>(offset / 64);
  const std::uint64_t mask = std::uint64_t{1} << (offset % 64);
  if (word >= bits_.size()) {
    bits_.resize(word + 1, 0);
  }
  if ((bits_[word] & mask) != 0) {
    return Outcome::kDuplicate;
  }
  bits_[word] |= mask;
  ++unique_;
  // Full words at the front carry no information any more.
  while (!bits_.empty() && bits_.front() == ~std::uint64_t{0}) {
    bits_.pop_front();
    base_ += 64;
  }
  const bool in_order = sequence >= next_;
  next_ = std::max(next_, sequence + 1);
  return in_order ? Outcome::kNew : Outcome::kNewOutOfOrder;
}

}  // namespace tinymq::bench
