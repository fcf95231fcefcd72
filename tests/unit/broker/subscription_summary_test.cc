#include "tinymq/broker/subscription_summary.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace tinymq::broker {
namespace {

TEST(SubscriptionSummaryTest, ExactFiltersMatchTheirTopicOnly) {
  SubscriptionSummary summary(2);
  EXPECT_FALSE(summary.Any(0));
  summary.Add(1, "a/b");
  EXPECT_TRUE(summary.Any(1));
  EXPECT_FALSE(summary.Any(0));
  EXPECT_TRUE(summary.MayMatch(1, "a/b"));
  EXPECT_FALSE(summary.MayMatch(0, "a/b"));
  EXPECT_FALSE(summary.MayMatch(1, "a/c"));  // (unless the two hash to one bucket: they do not)
  summary.Remove(1, "a/b");
  EXPECT_FALSE(summary.MayMatch(1, "a/b"));
  EXPECT_FALSE(summary.Any(1));
}

TEST(SubscriptionSummaryTest, WildcardFiltersMatchByFirstLevelOrEverything) {
  SubscriptionSummary summary(1);
  summary.Add(0, "sensors/+/temp");
  EXPECT_TRUE(summary.MayMatch(0, "sensors/1/temp"));
  EXPECT_TRUE(summary.MayMatch(0, "sensors"));  // first level only: a false yes is allowed
  EXPECT_FALSE(summary.MayMatch(0, "other/1/temp"));
  summary.Add(0, "a/#");
  EXPECT_TRUE(summary.MayMatch(0, "a"));  // "a/#" matches its parent level too
  summary.Add(0, "+/x");
  EXPECT_TRUE(summary.MayMatch(0, "anything/at/all"));
  summary.Remove(0, "+/x");
  EXPECT_FALSE(summary.MayMatch(0, "anything/at/all"));
  summary.Add(0, "#");
  summary.Add(0, "#");  // counted: two subscribers
  summary.Remove(0, "#");
  EXPECT_TRUE(summary.MayMatch(0, "z"));
  summary.Remove(0, "#");
  EXPECT_FALSE(summary.MayMatch(0, "z"));
}

TEST(SubscriptionSummaryThreadTest, ReadersOnOtherThreadsSeeTheOwnersUpdates) {
  SubscriptionSummary summary(2);
  std::thread owner([&summary] {
    for (int i = 0; i < 20000; ++i) {
      const std::string filter = "t/" + std::to_string(i % 50);
      summary.Add(1, filter);
      summary.Remove(1, filter);
    }
    summary.Add(1, "done");
  });
  while (!summary.MayMatch(1, "done")) {
    (void)summary.MayMatch(1, "t/7");  // reads racing the owner's writes (TSan checks them)
  }
  owner.join();
  EXPECT_TRUE(summary.Any(1));
  EXPECT_FALSE(summary.MayMatch(1, "t/7"));
  EXPECT_FALSE(summary.Any(0));
}

}  // namespace
}  // namespace tinymq::broker
