#include "tinymq/util/fifo.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace tinymq::util {
namespace {

TEST(FifoTest, KeepsOrderAcrossWrapAndGrowth) {
  Fifo<int> q;
  EXPECT_TRUE(q.empty());
  int next_in = 0;
  int next_out = 0;
  // Interleave pushes and pops so the ring wraps before and after it grows.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 3; ++i) {
      q.push_back(next_in++);
    }
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(q.front(), next_out++);
      q.pop_front();
    }
  }
  EXPECT_EQ(q.size(), 50U);
  while (!q.empty()) {
    ASSERT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
}

TEST(FifoTest, EmptiedQueueReleasesWhatItHeld) {
  Fifo<std::shared_ptr<int>> q;
  auto value = std::make_shared<int>(7);
  q.push_back(value);
  q.push_back(value);
  EXPECT_EQ(value.use_count(), 3);
  q.pop_front();
  EXPECT_EQ(value.use_count(), 2);  // a popped slot keeps no reference
  q.pop_front();
  EXPECT_EQ(value.use_count(), 1);
  EXPECT_TRUE(q.empty());
}

TEST(FifoTest, RemoveIfTakesMatchesOutInOrderAndKeepsTheRest) {
  Fifo<int> q;
  q.push_back(-1);
  q.pop_front();  // the ring starts off its first slot
  for (int i = 0; i < 7; ++i) {
    q.push_back(i);
  }
  std::vector<int> taken;
  q.remove_if([](int v) { return v % 3 == 0; }, [&](int&& v) { taken.push_back(v); });
  EXPECT_EQ(taken, (std::vector<int>{0, 3, 6}));
  std::vector<int> left;
  while (!q.empty()) {
    left.push_back(q.front());
    q.pop_front();
  }
  EXPECT_EQ(left, (std::vector<int>{1, 2, 4, 5}));
  q.push_back(9);
  q.remove_if([](int) { return true; }, [&](int&& v) { taken.push_back(v); });
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(taken.back(), 9);
}

}  // namespace
}  // namespace tinymq::util
