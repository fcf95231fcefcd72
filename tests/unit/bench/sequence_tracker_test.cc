#include "tools/bench/sequence_tracker.h"

#include <gtest/gtest.h>

#include <cstdint>

// Per-publisher sequence tracking at a subscriber: new, duplicate and out-of-order deliveries,
// and a memory bound that holds whatever is lost.

namespace tinymq::bench {
namespace {

using Outcome = SequenceTracker::Outcome;

TEST(SequenceTrackerTest, InOrderDeliveryIsAllNewAndKeepsTheBitmapTiny) {
  SequenceTracker t;
  for (std::uint64_t s = 0; s < 100'000; ++s) {
    ASSERT_EQ(t.Observe(s), Outcome::kNew) << s;
    ASSERT_LE(t.words(), 1u);
  }
  EXPECT_EQ(t.unique(), 100'000u);
}

TEST(SequenceTrackerTest, RepeatsAreDuplicatesRecentOrOld) {
  SequenceTracker t;
  for (std::uint64_t s = 0; s < 1000; ++s) {
    ASSERT_EQ(t.Observe(s), Outcome::kNew);
  }
  EXPECT_EQ(t.Observe(999), Outcome::kDuplicate);  // still in the bitmap's last word
  EXPECT_EQ(t.Observe(3), Outcome::kDuplicate);    // below the window base
  EXPECT_EQ(t.unique(), 1000u);
}

TEST(SequenceTrackerTest, ALateMessageIsNewButOutOfOrder) {
  SequenceTracker t;
  EXPECT_EQ(t.Observe(0), Outcome::kNew);
  EXPECT_EQ(t.Observe(2), Outcome::kNew);  // 1 is missing, nothing later came before 2
  EXPECT_EQ(t.Observe(1), Outcome::kNewOutOfOrder);
  EXPECT_EQ(t.Observe(1), Outcome::kDuplicate);
  EXPECT_EQ(t.Observe(3), Outcome::kNew);
  EXPECT_EQ(t.unique(), 4u);
}

TEST(SequenceTrackerTest, GapsFillAndTheBitmapShrinksAgain) {
  SequenceTracker t;
  // Evens first, then odds: 500 words of gaps at most, all filled at the end.
  for (std::uint64_t s = 0; s < 64'000; s += 2) {
    ASSERT_NE(t.Observe(s), Outcome::kDuplicate);
  }
  EXPECT_GT(t.words(), 900u);
  for (std::uint64_t s = 1; s < 63'998; s += 2) {
    ASSERT_EQ(t.Observe(s), Outcome::kNewOutOfOrder);
  }
  EXPECT_EQ(t.Observe(63'999), Outcome::kNew);  // after the highest even: in order
  EXPECT_LE(t.words(), 1u);
  EXPECT_EQ(t.unique(), 64'000u);
}

TEST(SequenceTrackerTest, PermanentLossKeepsMemoryBounded) {
  SequenceTracker t;
  // Every tenth message lost forever: the window slides and gives the gaps up.
  std::uint64_t seen = 0;
  for (std::uint64_t s = 0; s < 2'000'000; ++s) {
    if (s % 10 == 3) {
      continue;
    }
    ASSERT_EQ(t.Observe(s), Outcome::kNew) << s;
    ++seen;
    ASSERT_LE(t.words(), SequenceTracker::kWindow / 64 + 1);
  }
  EXPECT_EQ(t.unique(), seen);
  // A message older than the window can no longer be told apart: counted as a duplicate.
  EXPECT_EQ(t.Observe(3), Outcome::kDuplicate);
  // A lost one still inside the window is new (late).
  EXPECT_EQ(t.Observe(1'999'993), Outcome::kNewOutOfOrder);
}

TEST(SequenceTrackerTest, AJumpFarAheadSlidesTheWindow) {
  SequenceTracker t;
  EXPECT_EQ(t.Observe(0), Outcome::kNew);
  EXPECT_EQ(t.Observe(10'000'000), Outcome::kNew);
  EXPECT_LE(t.words(), SequenceTracker::kWindow / 64);
  EXPECT_EQ(t.Observe(10'000'000), Outcome::kDuplicate);
  EXPECT_EQ(t.Observe(9'999'999), Outcome::kNewOutOfOrder);
  EXPECT_EQ(t.unique(), 3u);
}

}  // namespace
}  // namespace tinymq::bench
