#pragma once

#include <array>
#include <cstdint>

// A fixed-size log-linear histogram of latencies in nanoseconds, HDR-style: values below 128 ns
// are counted exactly; above, every power of two is cut into 128 equal buckets, so a bucket is at
// most 1/128 (0.8%) of its values wide. Values from 2^42 ns (73 minutes) up share the last bucket.
// Memory is constant (36 KiB) whatever the number of samples; the exact maximum is kept apart.
//
// Percentile(q) gives the upper edge of the bucket holding the ceil(q * count)-th smallest value
// (never more than the maximum): it errs high by at most 0.8%, never low.
//
// Threading: Thread-compatible (a copy is a snapshot; Merge combines per-thread histograms).

namespace tinymq::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;  // 128
  static constexpr int kMaxExponent = 41;  // values up to 2^42 - 1 ns have their own bucket
  static constexpr std::size_t kBuckets =
      kSubBuckets + (kMaxExponent - kSubBucketBits + 1) * kSubBuckets;

  // A negative value (clocks of different machines, never here) counts as 0.
  void Record(std::int64_t ns);
  void Merge(const LatencyHistogram& other);
  void Clear();

  std::uint64_t count() const { return count_; }
  std::int64_t max() const { return max_; }
  // Mean of the recorded values, exact (from their sum); 0 when empty.
  double Mean() const;
  // REQUIRES: 0 < q <= 1. 0 when empty.
  std::int64_t Percentile(double q) const;

  // Bucket arithmetic, exposed for tests.
  static std::size_t BucketOf(std::uint64_t ns);
  static std::uint64_t BucketUpperEdge(std::size_t bucket);  // largest value in the bucket

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::int64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace tinymq::bench
