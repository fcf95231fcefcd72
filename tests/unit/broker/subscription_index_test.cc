#include "tinymq/broker/subscription_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "tinymq/mqtt/topic.h"

// Clause references: "3.1.1" is MQTT 3.1.1 (OASIS, 2014), "5.0" is MQTT 5.0 (OASIS, 2019). The
// wildcard examples of §4.7 are the same in both.

namespace tinymq::broker {
namespace {

// A subscription told apart by its identifier: each test gives every (filter, subscriber) its own.
Subscription Sub(SubscriberId subscriber, std::uint32_t identifier, mqtt::QoS qos = mqtt::QoS::k0) {
  Subscription s;
  s.subscriber = subscriber;
  s.identifier = identifier;
  s.options.max_qos = qos;
  return s;
}

// What Match() reports, as sorted (subscriber, identifier) pairs so that order does not matter
// but repetitions do.
using Hit = std::pair<SubscriberId, std::uint32_t>;

std::vector<Hit> Hits(const SubscriptionIndex& index, std::string_view topic) {
  // The examples must meet Match()'s precondition, or they prove nothing.
  EXPECT_TRUE(mqtt::ValidateTopicName(topic).has_value()) << topic;
  std::vector<const Subscription*> out;
  index.Match(topic, out);
  std::vector<Hit> hits;
  for (const Subscription* s : out) {
    hits.emplace_back(s->subscriber, s->identifier);
  }
  std::sort(hits.begin(), hits.end());
  return hits;
}

// Subscribes subscriber 1 to each filter, with identifier = 1 + its position in `filters`.
void SubscribeEach(SubscriptionIndex& index, const std::vector<std::string_view>& filters) {
  std::uint32_t identifier = 1;
  for (const std::string_view filter : filters) {
    ASSERT_TRUE(mqtt::ValidateTopicFilter(filter).has_value()) << filter;
    EXPECT_TRUE(index.Subscribe(filter, Sub(1, identifier++))) << filter;
  }
}

using IdList = std::vector<std::uint32_t>;

// The identifiers (see SubscribeEach) of the filters that match `topic`.
IdList Ids(const SubscriptionIndex& index, std::string_view topic) {
  IdList ids;
  for (const Hit& hit : Hits(index, topic)) {
    ids.push_back(hit.second);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(SubscriptionIndexTest, EmptyIndexMatchesNothing) {
  SubscriptionIndex index;
  EXPECT_EQ(index.size(), 0u);
  EXPECT_TRUE(Hits(index, "a").empty());
  EXPECT_TRUE(Hits(index, "$SYS/x").empty());
}

TEST(SubscriptionIndexTest, MatchAppendsWithoutClearingOut) {
  SubscriptionIndex index;
  ASSERT_TRUE(index.Subscribe("a", Sub(7, 1)));
  const Subscription sentinel = Sub(99, 99);
  std::vector<const Subscription*> out = {&sentinel};
  index.Match("a", out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], &sentinel);
  EXPECT_EQ(out[1]->subscriber, 7u);
}

// 3.1.1 and 5.0 §4.7.1.2: "sport/tennis/player1/#" receives the three names below.
TEST(SubscriptionIndexTest, MultiLevelWildcardSpecExamples) {
  SubscriptionIndex index;
  SubscribeEach(index, {"sport/tennis/player1/#", "sport/#", "#", "sport/tennis/#"});
  EXPECT_EQ(Ids(index, "sport/tennis/player1"), (IdList{1, 2, 3, 4}));
  EXPECT_EQ(Ids(index, "sport/tennis/player1/ranking"), (IdList{1, 2, 3, 4}));
  EXPECT_EQ(Ids(index, "sport/tennis/player1/score/wimbledon"), (IdList{1, 2, 3, 4}));
  // "sport/#" also matches the singular "sport", since '#' includes the parent level.
  EXPECT_EQ(Ids(index, "sport"), (IdList{2, 3}));
  EXPECT_EQ(Ids(index, "sport/tennis"), (IdList{2, 3, 4}));
  EXPECT_EQ(Ids(index, "sport/tennis/player2"), (IdList{2, 3, 4}));
  EXPECT_EQ(Ids(index, "sports"), (IdList{3}));
  EXPECT_EQ(Ids(index, "sport/"), (IdList{2, 3}));
}

// 3.1.1 and 5.0 §4.7.1.3.
TEST(SubscriptionIndexTest, SingleLevelWildcardSpecExamples) {
  SubscriptionIndex index;
  SubscribeEach(index, {"sport/tennis/+", "sport/+", "+", "+/+", "/+", "+/tennis/#"});
  // "sport/tennis/+" matches "sport/tennis/player1" and "sport/tennis/player2", not
  // "sport/tennis/player1/ranking".
  EXPECT_EQ(Ids(index, "sport/tennis/player1"), (IdList{1, 6}));
  EXPECT_EQ(Ids(index, "sport/tennis/player2"), (IdList{1, 6}));
  EXPECT_EQ(Ids(index, "sport/tennis/player1/ranking"), (IdList{6}));
  // "sport/+" does not match "sport" but does match "sport/".
  EXPECT_EQ(Ids(index, "sport"), (IdList{3}));
  EXPECT_EQ(Ids(index, "sport/"), (IdList{2, 4}));
  // "+/+" and "/+" match "/finance"; "+" does not.
  EXPECT_EQ(Ids(index, "/finance"), (IdList{4, 5}));
  EXPECT_EQ(Ids(index, "sport/tennis"), (IdList{2, 4, 6}));
}

TEST(SubscriptionIndexTest, ExactFiltersMatchOnlyTheSameName) {
  SubscriptionIndex index;
  SubscribeEach(index, {"sport/tennis/player1", "sport", "Sport", "/", "a//b"});
  EXPECT_EQ(Ids(index, "sport/tennis/player1"), (IdList{1}));
  EXPECT_EQ(Ids(index, "sport"), (IdList{2}));
  EXPECT_EQ(Ids(index, "Sport"), (IdList{3}));  // [MQTT-4.7.3-4]: case-sensitive
  EXPECT_EQ(Ids(index, "/"), (IdList{4}));
  EXPECT_EQ(Ids(index, "a//b"), (IdList{5}));
  EXPECT_TRUE(Ids(index, "sport/tennis").empty());
  EXPECT_TRUE(Ids(index, "sport/tennis/player1/ranking").empty());
  EXPECT_TRUE(Ids(index, "a/b").empty());
}

// 3.1.1 and 5.0 §4.7.2 [MQTT-4.7.2-1].
TEST(SubscriptionIndexTest, WildcardAtFirstLevelDoesNotMatchDollarTopics) {
  SubscriptionIndex index;
  SubscribeEach(index, {"#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+", "+/#",
                        "$SYS/monitor/Clients"});
  // "#" and "+/monitor/Clients" do not see "$SYS/..."; "$SYS/#" and "$SYS/monitor/+" do.
  EXPECT_EQ(Ids(index, "$SYS/monitor/Clients"), (IdList{3, 4, 7}));
  EXPECT_EQ(Ids(index, "$SYS"), (IdList{3}));
  EXPECT_EQ(Ids(index, "$"), (IdList{}));
  // The rule is about the first character of the name only.
  EXPECT_EQ(Ids(index, "a/monitor/Clients"), (IdList{1, 2, 6}));
  EXPECT_EQ(Ids(index, "a"), (IdList{1, 5, 6}));
  EXPECT_EQ(Ids(index, "a/$SYS"), (IdList{1, 6}));
}

TEST(SubscriptionIndexTest, WildcardsBelowTheFirstLevelMatchDollarLevels) {
  SubscriptionIndex index;
  SubscribeEach(index, {"a/+", "a/#", "$x/+"});
  EXPECT_EQ(Ids(index, "a/$x"), (IdList{1, 2}));
  EXPECT_EQ(Ids(index, "$x/$y"), (IdList{3}));
}

TEST(SubscriptionIndexTest, EmptyLevelsAreRealLevels) {
  SubscriptionIndex index;
  SubscribeEach(index, {"+", "/", "+/", "//", "/#", "+/+/+", "a/+/b", "#"});
  EXPECT_EQ(Ids(index, "/"), (IdList{2, 3, 5, 8}));
  EXPECT_EQ(Ids(index, "//"), (IdList{4, 5, 6, 8}));
  EXPECT_EQ(Ids(index, "a//b"), (IdList{6, 7, 8}));
  EXPECT_EQ(Ids(index, "a/"), (IdList{3, 8}));
  EXPECT_EQ(Ids(index, "a"), (IdList{1, 8}));
  EXPECT_EQ(Ids(index, "/a"), (IdList{5, 8}));
}

TEST(SubscriptionIndexTest, MultiLevelWildcardMatchesTheParentLevel) {
  SubscriptionIndex index;
  SubscribeEach(index, {"a/#", "a/b/#", "+/#", "/#"});
  EXPECT_EQ(Ids(index, "a"), (IdList{1, 3}));
  EXPECT_EQ(Ids(index, "a/b"), (IdList{1, 2, 3}));
  EXPECT_EQ(Ids(index, "a/b/c"), (IdList{1, 2, 3}));
  EXPECT_EQ(Ids(index, "b"), (IdList{3}));
  // "/#" is the empty first level and below; "+/#" sees it too.
  EXPECT_EQ(Ids(index, "/"), (IdList{3, 4}));
  EXPECT_EQ(Ids(index, "/x"), (IdList{3, 4}));
}

TEST(SubscriptionIndexTest, SeveralSubscribersOnOneFilter) {
  SubscriptionIndex index;
  for (SubscriberId id = 1; id <= 5; ++id) {
    EXPECT_TRUE(index.Subscribe("a/+", Sub(id, static_cast<std::uint32_t>(10 + id))));
    EXPECT_TRUE(index.Subscribe("a/b", Sub(id, static_cast<std::uint32_t>(20 + id))));
  }
  EXPECT_EQ(index.size(), 10u);
  EXPECT_EQ(Hits(index, "a/b"), (std::vector<Hit>{{1, 11},
                                                  {1, 21},
                                                  {2, 12},
                                                  {2, 22},
                                                  {3, 13},
                                                  {3, 23},
                                                  {4, 14},
                                                  {4, 24},
                                                  {5, 15},
                                                  {5, 25}}));
  EXPECT_TRUE(index.Unsubscribe("a/+", 3));
  EXPECT_TRUE(index.Unsubscribe("a/b", 4));
  EXPECT_EQ(index.size(), 8u);
  EXPECT_EQ(
      Hits(index, "a/b"),
      (std::vector<Hit>{{1, 11}, {1, 21}, {2, 12}, {2, 22}, {3, 23}, {4, 14}, {5, 15}, {5, 25}}));
}

TEST(SubscriptionIndexTest, OverlappingFiltersOfOneSubscriberAreReportedOncePerFilter) {
  SubscriptionIndex index;
  SubscribeEach(index, {"a/b", "a/+", "a/#", "#", "+/b", "+/+"});
  EXPECT_EQ(index.size(), 6u);
  EXPECT_EQ(Hits(index, "a/b"), (std::vector<Hit>{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}}));
}

// 3.1.1 and 5.0 §3.8.4: a SUBSCRIBE for a filter the session has replaces the subscription.
TEST(SubscriptionIndexTest, SubscribingAgainReplacesOptionsAndIdentifier) {
  SubscriptionIndex index;
  for (const std::string_view filter : {"a/b", "a/+"}) {
    SCOPED_TRACE(filter);
    EXPECT_TRUE(index.Subscribe(filter, Sub(1, 1, mqtt::QoS::k0)));
    EXPECT_TRUE(index.Subscribe(filter, Sub(2, 2, mqtt::QoS::k0)));
    EXPECT_FALSE(index.Subscribe(filter, Sub(1, 3, mqtt::QoS::k2)));
    EXPECT_EQ(index.size(), 2u);

    std::vector<const Subscription*> out;
    index.Match("a/b", out);
    ASSERT_EQ(out.size(), 2u);
    const Subscription* one = out[0]->subscriber == 1 ? out[0] : out[1];
    EXPECT_EQ(one->subscriber, 1u);
    EXPECT_EQ(one->identifier, 3u);
    EXPECT_EQ(one->options.max_qos, mqtt::QoS::k2);

    EXPECT_TRUE(index.Unsubscribe(filter, 1));
    EXPECT_TRUE(index.Unsubscribe(filter, 2));
    EXPECT_EQ(index.size(), 0u);
  }
}

TEST(SubscriptionIndexTest, UnsubscribeWhatIsNotThereReturnsFalse) {
  SubscriptionIndex index;
  EXPECT_FALSE(index.Unsubscribe("a", 1));
  EXPECT_FALSE(index.Unsubscribe("a/+", 1));
  EXPECT_FALSE(index.Unsubscribe("#", 1));
  ASSERT_TRUE(index.Subscribe("a/+/c", Sub(1, 1)));
  ASSERT_TRUE(index.Subscribe("a", Sub(1, 2)));
  EXPECT_FALSE(index.Unsubscribe("a/+/c", 2));  // another subscriber
  EXPECT_FALSE(index.Unsubscribe("a/+", 1));    // a prefix of the filter
  EXPECT_FALSE(index.Unsubscribe("a/+/c/#", 1));
  EXPECT_FALSE(index.Unsubscribe("a/b/c", 1));  // a name it matches is not the filter
  EXPECT_FALSE(index.Unsubscribe("a/#", 1));
  EXPECT_FALSE(index.Unsubscribe("b", 1));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(Ids(index, "a/b/c"), (IdList{1}));
  EXPECT_EQ(Ids(index, "a"), (IdList{2}));
}

TEST(SubscriptionIndexTest, UnsubscribeEverythingLeavesAnEmptyIndex) {
  SubscriptionIndex index;
  const std::vector<std::string_view> filters = {"a/b/c", "a/+/c", "a/+/#", "a/#",  "#",     "+",
                                                 "/",     "+/",    "//#",   "a//+", "$SYS/#"};
  SubscribeEach(index, filters);
  ASSERT_TRUE(index.Subscribe("a/+/c", Sub(2, 100)));
  EXPECT_EQ(index.size(), filters.size() + 1);
  EXPECT_FALSE(Hits(index, "a/b/c").empty());

  // Remove in an order that leaves nodes shared by remaining filters behind for a while.
  EXPECT_TRUE(index.Unsubscribe("a/+/c", 1));
  EXPECT_EQ(Hits(index, "a/x/c"), (std::vector<Hit>{{1, 3}, {1, 4}, {1, 5}, {2, 100}}));
  EXPECT_TRUE(index.Unsubscribe("a/+/c", 2));
  EXPECT_EQ(Ids(index, "a/x/c"), (IdList{3, 4, 5}));
  for (const std::string_view filter : filters) {
    if (filter != "a/+/c") {
      EXPECT_TRUE(index.Unsubscribe(filter, 1)) << filter;
    }
  }
  EXPECT_EQ(index.size(), 0u);
  for (const std::string_view topic : {"a/b/c", "a", "/", "a//b", "$SYS/x", "x"}) {
    EXPECT_TRUE(Hits(index, topic).empty()) << topic;
  }
  // The pruned index still works.
  SubscribeEach(index, {"a/+/c"});
  EXPECT_EQ(Ids(index, "a/b/c"), (IdList{1}));
}

// The index does not know "$share/" (a later issue): it matches the filter literally.
TEST(SubscriptionIndexTest, SharedSubscriptionFilterIsTakenLiterally) {
  SubscriptionIndex index;
  SubscribeEach(index, {"$share/g/a/+"});
  EXPECT_TRUE(Ids(index, "a/b").empty());
  EXPECT_EQ(Ids(index, "$share/g/a/b"), (IdList{1}));
}

// A filter may have 32,768 levels ("+/+/.../+" fills 65,535 bytes): matching and tearing down
// a trie that deep must not take one stack frame per level.
TEST(SubscriptionIndexTest, DeepestFiltersWork) {
  constexpr int kLevelCount = 32768;
  std::string pluses = "+";
  std::string name = "a";
  for (int i = 1; i < kLevelCount; ++i) {
    pluses += "/+";
    name += "/a";
  }
  const std::string under_a = name.substr(0, name.size() - 1) + "#";  // a/a/.../a/#
  ASSERT_EQ(pluses.size(), 65535u);
  ASSERT_TRUE(mqtt::ValidateTopicFilter(pluses).has_value());
  ASSERT_TRUE(mqtt::ValidateTopicFilter(under_a).has_value());

  SubscriptionIndex index;
  ASSERT_TRUE(index.Subscribe(pluses, Sub(1, 1)));
  ASSERT_TRUE(index.Subscribe(under_a, Sub(1, 2)));
  ASSERT_TRUE(index.Subscribe("#", Sub(1, 3)));
  EXPECT_EQ(Ids(index, name), (IdList{1, 2, 3}));
  EXPECT_EQ(Ids(index, name.substr(2)), (IdList{2, 3}));  // one level fewer
  // The index goes out of scope still holding both deep filters.
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

class ModelIndex {
 public:
  bool Subscribe(const std::string& filter, const Subscription& s) {
    auto [it, added] = subs_[filter].insert_or_assign(s.subscriber, s);
    return added;
  }
  bool Unsubscribe(const std::string& filter, SubscriberId subscriber) {
    const auto it = subs_.find(filter);
    if (it == subs_.end() || it->second.erase(subscriber) == 0) {
      return false;
    }
    if (it->second.empty()) {
      subs_.erase(it);
    }
    return true;
  }
  std::vector<Hit> Hits(std::string_view topic) const {
    std::vector<Hit> hits;
    for (const auto& [filter, by_subscriber] : subs_) {
      if (mqtt::TopicMatches(filter, topic)) {
        for (const auto& [id, s] : by_subscriber) {
          hits.emplace_back(id, s.identifier);
        }
      }
    }
    std::sort(hits.begin(), hits.end());
    return hits;
  }
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& entry : subs_) {
      n += entry.second.size();
    }
    return n;
  }
  // A (filter, subscriber) pair chosen uniformly; REQUIRES size() > 0.
  std::pair<std::string, SubscriberId> Any(std::mt19937& rng) const {
    std::size_t n = std::uniform_int_distribution<std::size_t>(0, size() - 1)(rng);
    for (const auto& [filter, by_subscriber] : subs_) {
      for (const auto& entry : by_subscriber) {
        if (n-- == 0) {
          return {filter, entry.first};
        }
      }
    }
    return {};
  }

 private:
  std::map<std::string, std::map<SubscriberId, Subscription>> subs_;
};

TEST(SubscriptionIndexTest, AgreesWithBruteForceModel) {
  std::mt19937 rng(20240611);  // fixed: a failure must reproduce
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<SubscriberId> subscriber(1, 4);
  SubscriptionIndex index;
  ModelIndex model;
  std::uint32_t next_identifier = 1;  // every subscribe unique, so a wrong filter shows
  std::size_t matched = 0;

  auto check_topic = [&](const std::string& topic) {
    const std::vector<Hit> expected = model.Hits(topic);
    matched += expected.size();
    ASSERT_EQ(Hits(index, topic), expected) << "topic \"" << topic << "\"";
  };

  for (int round = 0; round < 6; ++round) {
    // Grow for a while, then shrink to empty, so pruning and regrowth are both exercised.
    const bool growing = round % 2 == 0;
    for (int op = 0; op < 1500; ++op) {
      SCOPED_TRACE(testing::Message() << "round " << round << ", op " << op);
      const int p = percent(rng);
      if (p < (growing ? 55 : 20)) {
        const std::string filter = RandomFilter(rng);
        ASSERT_TRUE(mqtt::ValidateTopicFilter(filter).has_value()) << filter;
        const Subscription s = Sub(subscriber(rng), next_identifier++);
        ASSERT_EQ(index.Subscribe(filter, s), model.Subscribe(filter, s)) << filter;
      } else if (p < 75) {
        // Mostly existing pairs, sometimes a random (probably absent) one.
        std::pair<std::string, SubscriberId> victim = {RandomFilter(rng), subscriber(rng)};
        if (model.size() > 0 && percent(rng) < 80) {
          victim = model.Any(rng);
        }
        ASSERT_EQ(index.Unsubscribe(victim.first, victim.second),
                  model.Unsubscribe(victim.first, victim.second))
            << victim.first;
      } else {
        check_topic(RandomTopic(rng));
      }
      ASSERT_EQ(index.size(), model.size());
    }
    if (!growing) {
      while (model.size() > 0) {
        const auto [filter, id] = model.Any(rng);
        ASSERT_TRUE(index.Unsubscribe(filter, id)) << filter;
        ASSERT_TRUE(model.Unsubscribe(filter, id));
      }
      ASSERT_EQ(index.size(), 0u);
    }
    // Every name of the alphabet, after each round.
    for (const std::string_view a : kLevels) {
      if (!a.empty()) {  // "" alone is not a valid name
        check_topic(std::string(a));
      }
      for (const std::string_view b : kLevels) {
        check_topic(std::string(a) + "/" + std::string(b));
        for (const std::string_view c : kLevels) {
          check_topic(std::string(a) + "/" + std::string(b) + "/" + std::string(c));
        }
      }
    }
  }
  // Guard against a vacuous pass: the model must have reported plenty of matches.
  EXPECT_GT(matched, 10000u);
}

}  // namespace
}  // namespace tinymq::broker
