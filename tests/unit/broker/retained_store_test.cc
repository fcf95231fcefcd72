#include "tinymq/broker/retained_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/topic.h"

// Clause references: "3.1.1" is MQTT 3.1.1 (OASIS, 2014), "5.0" is MQTT 5.0 (OASIS, 2019).

namespace tinymq::broker {
namespace {

MessageRef Retained(std::string_view topic, std::string_view payload = "x") {
  return MakeMessage(topic, mqtt::BinaryView::Of(payload), mqtt::QoS::k1, /*retain=*/true);
}

// The topics of the retained messages matching `filter`, sorted; each message is also checked
// to be stored under its own topic.
std::vector<std::string> Topics(const RetainedStore& store, std::string_view filter) {
  // The examples must meet Match()'s precondition, or they prove nothing.
  EXPECT_TRUE(mqtt::ValidateTopicFilter(filter).has_value()) << filter;
  std::vector<MessageRef> out;
  store.Match(filter, out);
  std::vector<std::string> topics;
  for (const MessageRef& m : out) {
    EXPECT_NE(m, nullptr);
    if (m != nullptr) {
      topics.push_back(m->topic);
    }
  }
  std::sort(topics.begin(), topics.end());
  return topics;
}

using TopicList = std::vector<std::string>;

void SetEach(RetainedStore& store, const std::vector<std::string_view>& topics) {
  for (const std::string_view topic : topics) {
    ASSERT_TRUE(mqtt::ValidateTopicName(topic).has_value()) << topic;
    store.Set(Retained(topic));
  }
}

TEST(ConcurrentRetainedStoreTest, SystemTopicsAreKeptOutsideTheLimitsAndTotals) {
  ConcurrentRetainedStore store;
  ASSERT_TRUE(store.TrySet(Retained("a", "1"), /*max_count=*/1, /*max_bytes=*/100));
  EXPECT_FALSE(store.TrySet(Retained("b", "2"), 1, 100));  // over the count
  // The broker's own go in whatever the limits, and count in neither total.
  EXPECT_TRUE(store.TrySet(Retained("$SYS/broker/uptime", "5 seconds"), 1, 100));
  EXPECT_TRUE(store.TrySet(Retained("$SYS", "x"), 1, 100));
  EXPECT_EQ(store.size(), 1U);
  EXPECT_EQ(store.bytes(), 2U);
  std::vector<MessageRef> out;
  store.Match("$SYS/#", out);
  EXPECT_EQ(out.size(), 2U);
  // Deleting one leaves the totals alone too.
  store.Erase(out.front());
  store.TrySet(MakeMessage("$SYS", {}, mqtt::QoS::k0, true), 1, 100);
  EXPECT_EQ(store.size(), 1U);
  EXPECT_EQ(store.bytes(), 2U);
  EXPECT_FALSE(IsSystemTopic("$SYSTEM/x"));
  EXPECT_FALSE(IsSystemTopic("a/$SYS"));
}

TEST(RetainedStoreTest, EmptyStoreMatchesNothing) {
  RetainedStore store;
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(Topics(store, "#").empty());
  EXPECT_TRUE(Topics(store, "a").empty());
  EXPECT_TRUE(Topics(store, "+").empty());
}

TEST(RetainedStoreTest, MatchAppendsWithoutClearingOut) {
  RetainedStore store;
  store.Set(Retained("a"));
  std::vector<MessageRef> out = {Retained("before")};
  store.Match("a", out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]->topic, "before");
  EXPECT_EQ(out[1]->topic, "a");
}

// 3.1.1 and 5.0 §4.7.1.2 and §4.7.1.3, seen from the retained side.
TEST(RetainedStoreTest, SpecExamples) {
  RetainedStore store;
  SetEach(store,
          {"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
           "sport/tennis/player1/score/wimbledon", "sport/tennis/player2", "/finance", "sports"});
  EXPECT_EQ(store.size(), 8u);
  EXPECT_EQ(Topics(store, "sport/tennis/player1/#"),
            (TopicList{"sport/tennis/player1", "sport/tennis/player1/ranking",
                       "sport/tennis/player1/score/wimbledon"}));
  EXPECT_EQ(Topics(store, "sport/#"),
            (TopicList{"sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking",
                       "sport/tennis/player1/score/wimbledon", "sport/tennis/player2"}));
  EXPECT_EQ(Topics(store, "sport/tennis/+"),
            (TopicList{"sport/tennis/player1", "sport/tennis/player2"}));
  EXPECT_EQ(Topics(store, "sport/+"), (TopicList{"sport/"}));
  EXPECT_EQ(Topics(store, "+"), (TopicList{"sport", "sports"}));
  EXPECT_EQ(Topics(store, "+/+"), (TopicList{"/finance", "sport/"}));
  EXPECT_EQ(Topics(store, "/+"), (TopicList{"/finance"}));
  EXPECT_EQ(Topics(store, "sport/tennis/player1"), (TopicList{"sport/tennis/player1"}));
  EXPECT_EQ(Topics(store, "Sport"), (TopicList{}));  // [MQTT-4.7.3-4]: case-sensitive
  EXPECT_EQ(Topics(store, "sport/tennis"), (TopicList{}));
  EXPECT_EQ(store.size(), 8u);  // Match takes nothing away
}

// 3.1.1 and 5.0 §4.7.2 [MQTT-4.7.2-1].
TEST(RetainedStoreTest, WildcardAtFirstLevelDoesNotMatchDollarTopics) {
  RetainedStore store;
  SetEach(store, {"$SYS/monitor/Clients", "$SYS", "$", "a/monitor/Clients", "a/$SYS", "a"});
  EXPECT_EQ(Topics(store, "#"), (TopicList{"a", "a/$SYS", "a/monitor/Clients"}));
  EXPECT_EQ(Topics(store, "+"), (TopicList{"a"}));
  EXPECT_EQ(Topics(store, "+/monitor/Clients"), (TopicList{"a/monitor/Clients"}));
  EXPECT_EQ(Topics(store, "+/#"), (TopicList{"a", "a/$SYS", "a/monitor/Clients"}));
  EXPECT_EQ(Topics(store, "$SYS/#"), (TopicList{"$SYS", "$SYS/monitor/Clients"}));
  EXPECT_EQ(Topics(store, "$SYS/monitor/+"), (TopicList{"$SYS/monitor/Clients"}));
  EXPECT_EQ(Topics(store, "$"), (TopicList{"$"}));
  // Below the first level a '$' is an ordinary character.
  EXPECT_EQ(Topics(store, "a/+"), (TopicList{"a/$SYS"}));
}

TEST(RetainedStoreTest, EmptyLevelsAreRealLevels) {
  RetainedStore store;
  SetEach(store, {"/", "//", "a//b", "a/", "a", "/a"});
  EXPECT_EQ(Topics(store, "+"), (TopicList{"a"}));
  EXPECT_EQ(Topics(store, "/"), (TopicList{"/"}));
  EXPECT_EQ(Topics(store, "+/"), (TopicList{"/", "a/"}));
  EXPECT_EQ(Topics(store, "+/+"), (TopicList{"/", "/a", "a/"}));
  EXPECT_EQ(Topics(store, "+/+/+"), (TopicList{"//", "a//b"}));
  EXPECT_EQ(Topics(store, "/#"), (TopicList{"/", "//", "/a"}));
  EXPECT_EQ(Topics(store, "a/+/b"), (TopicList{"a//b"}));
  EXPECT_EQ(Topics(store, "a/+"), (TopicList{"a/"}));
}

TEST(RetainedStoreTest, MultiLevelWildcardMatchesTheParentLevel) {
  RetainedStore store;
  SetEach(store, {"a", "a/b", "a/b/c", "b"});
  EXPECT_EQ(Topics(store, "a/#"), (TopicList{"a", "a/b", "a/b/c"}));
  EXPECT_EQ(Topics(store, "a/b/#"), (TopicList{"a/b", "a/b/c"}));
  EXPECT_EQ(Topics(store, "a/b/c/#"), (TopicList{"a/b/c"}));
  EXPECT_EQ(Topics(store, "+/#"), (TopicList{"a", "a/b", "a/b/c", "b"}));
  EXPECT_EQ(Topics(store, "#"), (TopicList{"a", "a/b", "a/b/c", "b"}));
  EXPECT_EQ(Topics(store, "a/b/c/d/#"), (TopicList{}));
}

TEST(RetainedStoreTest, SetReplacesTheMessageOfItsTopic) {
  RetainedStore store;
  const MessageRef first = Retained("a/b", "one");
  const MessageRef second = Retained("a/b", "two");
  store.Set(first);
  store.Set(second);
  EXPECT_EQ(store.size(), 1u);
  std::vector<MessageRef> out;
  store.Match("a/b", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], second);  // the same Message, not a copy
}

// [MQTT-3.3.1-10]: a retained message with an empty payload removes the retained message.
TEST(RetainedStoreTest, EmptyPayloadDeletesAndPrunes) {
  RetainedStore store;
  SetEach(store, {"a", "a/b", "a/b/c", "a/x", "$SYS/x", "/"});
  EXPECT_EQ(store.size(), 6u);

  store.Set(Retained("a/b", ""));  // an inner node: its child stays
  EXPECT_EQ(store.size(), 5u);
  EXPECT_EQ(Topics(store, "a/#"), (TopicList{"a", "a/b/c", "a/x"}));
  store.Set(Retained("a/b", ""));  // deleting again changes nothing
  store.Set(Retained("a/b/c/d", ""));
  store.Set(Retained("zzz", ""));
  EXPECT_EQ(store.size(), 5u);

  for (const std::string_view topic : {"a/b/c", "a", "a/x", "$SYS/x", "/"}) {
    store.Set(Retained(topic, ""));
  }
  EXPECT_EQ(store.size(), 0u);
  for (const std::string_view filter : {"#", "+", "a/#", "$SYS/#", "+/+", "a/b/c", "/"}) {
    EXPECT_EQ(Topics(store, filter), (TopicList{})) << filter;
  }
  // The pruned store still works.
  SetEach(store, {"a/b/c"});
  EXPECT_EQ(Topics(store, "a/+/c"), (TopicList{"a/b/c"}));
  EXPECT_EQ(store.size(), 1u);
}

// A topic may have 32,768 levels ("a/a/.../a" of 65,535 bytes): matching and tearing down a
// trie that deep must not take one stack frame per level.
TEST(RetainedStoreTest, DeepestTopicsWork) {
  constexpr int kLevelCount = 32768;
  std::string name = "a";
  std::string pluses = "+";
  for (int i = 1; i < kLevelCount; ++i) {
    name += "/a";
    pluses += "/+";
  }
  ASSERT_EQ(name.size(), 65535u);
  ASSERT_TRUE(mqtt::ValidateTopicName(name).has_value());

  RetainedStore store;
  store.Set(Retained(name));
  store.Set(Retained("a/a"));
  EXPECT_EQ(Topics(store, "#"), (TopicList{"a/a", name}));
  EXPECT_EQ(Topics(store, pluses), (TopicList{name}));
  EXPECT_EQ(Topics(store, name), (TopicList{name}));
  EXPECT_EQ(store.size(), 2u);
  // The store goes out of scope still holding the deep topic.
}

// ---------------------------------------------------------------------------------------------
// Differential test against a brute-force model built on mqtt::TopicMatches.

constexpr std::string_view kLevels[] = {"a", "b", "$x", ""};

// A valid name of 1 to 4 levels from kLevels ("" alone is not a valid name, so it is redrawn).
std::string RandomTopic(std::mt19937& rng) {
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(kLevels) - 1);
  while (true) {
    std::string topic;
    const int levels = count(rng);
    for (int i = 0; i < levels; ++i) {
      if (i > 0) {
        topic += '/';
      }
      topic += kLevels[pick(rng)];
    }
    if (!topic.empty()) {
      return topic;
    }
  }
}

// A valid filter of 1 to 4 levels from kLevels, '+' in any level, '#' only in the last.
std::string RandomFilter(std::mt19937& rng) {
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(kLevels) + 1);
  while (true) {
    std::string filter;
    const int levels = count(rng);
    for (int i = 0; i < levels; ++i) {
      if (i > 0) {
        filter += '/';
      }
      const std::size_t p = pick(rng);
      if (p < std::size(kLevels)) {
        filter += kLevels[p];
      } else if (p == std::size(kLevels) || i + 1 < levels) {
        filter += '+';
      } else {
        filter += '#';
      }
    }
    if (!filter.empty()) {
      return filter;
    }
  }
}

TEST(RetainedStoreTest, AgreesWithBruteForceModel) {
  std::mt19937 rng(20240612);  // fixed: a failure must reproduce
  std::uniform_int_distribution<int> percent(0, 99);
  RetainedStore store;
  std::map<std::string, MessageRef> model;
  std::size_t matched = 0;

  auto check_filter = [&](const std::string& filter) {
    ASSERT_TRUE(mqtt::ValidateTopicFilter(filter).has_value()) << filter;
    std::vector<MessageRef> expected;
    for (const auto& [topic, message] : model) {
      if (mqtt::TopicMatches(filter, topic)) {
        expected.push_back(message);
      }
    }
    std::vector<MessageRef> actual;
    store.Match(filter, actual);
    // Compare the messages themselves (pointer identity): a stale one would show.
    std::sort(expected.begin(), expected.end());
    std::sort(actual.begin(), actual.end());
    matched += expected.size();
    ASSERT_EQ(actual, expected) << "filter \"" << filter << "\"";
  };

  for (int round = 0; round < 6; ++round) {
    // Grow for a while, then shrink to empty, so pruning and regrowth are both exercised.
    const bool growing = round % 2 == 0;
    for (int op = 0; op < 1500; ++op) {
      SCOPED_TRACE(testing::Message() << "round " << round << ", op " << op);
      const int p = percent(rng);
      if (p < (growing ? 50 : 15)) {
        const std::string topic = RandomTopic(rng);
        ASSERT_TRUE(mqtt::ValidateTopicName(topic).has_value()) << topic;
        const MessageRef message = Retained(topic, "payload");
        store.Set(message);
        model[topic] = message;
      } else if (p < 70) {
        // Mostly stored topics, sometimes a random (maybe absent) one.
        std::string topic = RandomTopic(rng);
        if (!model.empty() && percent(rng) < 80) {
          auto it = model.begin();
          std::advance(it, std::uniform_int_distribution<std::size_t>(0, model.size() - 1)(rng));
          topic = it->first;
        }
        store.Set(Retained(topic, ""));
        model.erase(topic);
      } else {
        check_filter(RandomFilter(rng));
      }
      ASSERT_EQ(store.size(), model.size());
    }
    if (!growing) {
      while (!model.empty()) {
        store.Set(Retained(model.begin()->first, ""));
        model.erase(model.begin());
      }
      ASSERT_EQ(store.size(), 0u);
    }
    // A spread of filters after each round, including every one-level and two-level filter.
    const std::vector<std::string> one_level = {"a", "b", "$x", "+", "#"};
    for (const std::string& f1 : one_level) {
      check_filter(f1);
      if (f1 != "#") {
        for (const std::string_view f2 : {"a", "b", "$x", "", "+", "#"}) {
          check_filter(f1 + "/" + std::string(f2));
        }
        check_filter("/" + f1);
      }
    }
    for (int i = 0; i < 200; ++i) {
      check_filter(RandomFilter(rng));
    }
  }
  // Guard against a vacuous pass: the model must have reported plenty of matches.
  EXPECT_GT(matched, 10000u);
}

}  // namespace
}  // namespace tinymq::broker
