#include "tools/bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "tinymq/util/check.h"

namespace tinymq::bench {

std::size_t LatencyHistogram::BucketOf(std::uint64_t ns) {
  if (ns < kSubBuckets) {
    return static_cast<std::size_t>(ns);
  }
  const int exponent = static_cast<int>(std::bit_width(ns)) - 1;  // >= kSubBucketBits
  if (exponent > kMaxExponent) {
    return kBuckets - 1;
  }
  const int shift = exponent - kSubBucketBits;
  const std::uint64_t sub = (ns >> shift) - kSubBuckets;  // 0..127: the bits below the top one
  return static_cast<std::size_t>(kSubBuckets + static_cast<std::uint64_t>(shift) * kSubBuckets +
                                  sub);
}

std::uint64_t LatencyHistogram::BucketUpperEdge(std::size_t bucket) {
  if (bucket < kSubBuckets) {
    return bucket;
  }
  const std::uint64_t shift = (bucket - kSubBuckets) / kSubBuckets;
  const std::uint64_t sub = (bucket - kSubBuckets) % kSubBuckets;
  const std::uint64_t lower = (kSubBuckets + sub) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(std::int64_t ns) {
  const std::int64_t v = std::max<std::int64_t>(ns, 0);
  ++counts_[BucketOf(static_cast<std::uint64_t>(v))];
  ++count_;
  max_ = std::max(max_, v);
  sum_ += static_cast<double>(v);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    counts_[i] += other.counts_[i];
  }
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void LatencyHistogram::Clear() { *this = LatencyHistogram(); }

double LatencyHistogram::Mean() const {
  return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_);
}

std::int64_t LatencyHistogram::Percentile(double q) const {
  TINYMQ_CHECK(q > 0 && q <= 1);
  if (count_ == 0) {
    return 0;
  }
  // The rank of the wanted sample, 1-based; the clamp absorbs rounding of q * count.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      if (i == kBuckets - 1) {
        return max_;  // the overflow bucket has no upper edge
      }
      return std::min(static_cast<std::int64_t>(BucketUpperEdge(i)), max_);
    }
  }
  return max_;
}

}  // namespace tinymq::bench
