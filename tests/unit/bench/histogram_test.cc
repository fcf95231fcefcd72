#include "tools/bench/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

// The latency histogram: exact below 128 ns, within 1/128 above; percentiles err high, never low,
// and never beyond the maximum; merging equals recording everything in one.

namespace tinymq::bench {
namespace {

// The exact q-quantile of `values` by the same rank rule (ceil(q * n)-th smallest).
std::int64_t ExactPercentile(std::vector<std::int64_t> values, double q) {
  std::sort(values.begin(), values.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  rank = std::clamp<std::size_t>(rank, 1, values.size());
  return values[rank - 1];
}

TEST(LatencyHistogramTest, EmptyReportsZero) {
  const LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0);
  EXPECT_EQ(h.Percentile(1.0), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.Mean(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::int64_t v = 0; v < 128; ++v) {
    h.Record(v);
  }
  EXPECT_EQ(h.Percentile(0.5), 63);  // the 64th of 0..127
  EXPECT_EQ(h.Percentile(1.0), 127);
  EXPECT_EQ(h.max(), 127);
  EXPECT_DOUBLE_EQ(h.Mean(), 63.5);
}

TEST(LatencyHistogramTest, BucketsCoverEveryValueOnceAndInOrder) {
  // Each bucket's upper edge maps back to the bucket, and the next value to the next bucket.
  for (std::size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    const std::uint64_t edge = LatencyHistogram::BucketUpperEdge(b);
    ASSERT_EQ(LatencyHistogram::BucketOf(edge), b) << "bucket " << b;
    ASSERT_EQ(LatencyHistogram::BucketOf(edge + 1), b + 1) << "bucket " << b;
  }
  EXPECT_EQ(LatencyHistogram::BucketOf(~std::uint64_t{0}), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, BucketWidthIsAtMostOneIn128OfItsValues) {
  for (std::size_t b = 129; b < LatencyHistogram::kBuckets; ++b) {
    const std::uint64_t low = LatencyHistogram::BucketUpperEdge(b - 1) + 1;
    const std::uint64_t high = LatencyHistogram::BucketUpperEdge(b);
    ASSERT_LE(static_cast<double>(high - low), static_cast<double>(low) / 128.0) << "bucket " << b;
  }
}

TEST(LatencyHistogramTest, PercentilesErrHighByLessThanOnePercent) {
  std::mt19937_64 rng(42);
  // Log-uniform from 1 us to 100 ms: the spread of real latencies.
  std::uniform_real_distribution<double> exponent(3.0, 8.0);
  std::vector<std::int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::int64_t>(std::pow(10.0, exponent(rng)));
    values.push_back(v);
    h.Record(v);
  }
  for (const double q : {0.5, 0.9, 0.99, 0.999, 1.0}) {
    const std::int64_t exact = ExactPercentile(values, q);
    const std::int64_t got = h.Percentile(q);
    EXPECT_GE(got, exact) << "q=" << q;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * (1.0 + 1.0 / 128))
        << "q=" << q;
  }
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.Percentile(1.0), h.max());
}

TEST(LatencyHistogramTest, PercentileNeverExceedsTheMaximum) {
  LatencyHistogram h;
  h.Record(1'000'001);  // inside a bucket whose upper edge is higher
  EXPECT_EQ(h.Percentile(0.5), 1'000'001);
  EXPECT_EQ(h.Percentile(0.999), 1'000'001);
}

TEST(LatencyHistogramTest, NegativeCountsAsZeroAndHugeGoesToTheLastBucket) {
  LatencyHistogram h;
  h.Record(-5);
  h.Record(std::int64_t{1} << 60);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.Percentile(0.5), 0);
  EXPECT_EQ(h.Percentile(1.0), std::int64_t{1} << 60);  // the exact maximum, not the bucket edge
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram all;
  for (std::int64_t v = 1; v < 200'000; v += 7) {
    (v % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.Mean(), all.Mean());
  for (const double q : {0.01, 0.5, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(a.Percentile(q), all.Percentile(q)) << "q=" << q;
  }
  a.Clear();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Percentile(0.5), 0);
}

}  // namespace
}  // namespace tinymq::bench
