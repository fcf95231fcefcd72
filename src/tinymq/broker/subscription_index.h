#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinymq/broker/topic_levels.h"
#include "tinymq/mqtt/subscribe.h"

// The subscription index: which subscribers' filters match a topic name. A trie keyed by topic
// level with '+' and '#' children, plus a hash map for filters without wildcards (the common
// case, answered with one lookup).
//
// Threading: Thread-compatible. Each worker's broker has its own, holding its own sessions'
//            subscriptions only (broker.h, "Several workers"): none is shared between threads.
// Lifetime:  keeps copies of the filters; Match() fills `out` with pointers into the index, valid
//            until the next Subscribe/Unsubscribe.
// Errors:    none; REQUIRES a filter that mqtt::ValidateTopicFilter accepted and a topic name that
//            mqtt::ValidateTopicName accepted.

namespace tinymq::broker {

using SubscriberId = std::uint64_t;

struct Subscription {
  SubscriberId subscriber = 0;
  mqtt::SubscriptionOptions options;
  std::uint32_t identifier = 0;  // 5.0 Subscription Identifier, 0 when none
};

class SubscriptionIndex {
 public:
  SubscriptionIndex();
  ~SubscriptionIndex();
  SubscriptionIndex(const SubscriptionIndex&) = delete;
  SubscriptionIndex& operator=(const SubscriptionIndex&) = delete;

  // Adds the subscription of `subscription.subscriber` to `filter`, or replaces its options and
  // identifier if it has one already. Returns true when it was new.
  bool Subscribe(std::string_view filter, const Subscription& subscription);
  // Removes `subscriber`'s subscription to `filter`; false when there was none.
  bool Unsubscribe(std::string_view filter, SubscriberId subscriber);

  // Appends to `out` every subscription whose filter matches `topic`, applying the rule that a
  // filter starting with a wildcard does not match a topic starting with '$' ([MQTT-4.7.2-1]).
  // A subscriber with several matching filters appears once per filter; `out` is not cleared.
  void Match(std::string_view topic, std::vector<const Subscription*>& out) const;

  // Number of (filter, subscriber) pairs.
  std::size_t size() const { return size_; }

 private:
  struct Node;

  using Subscribers = std::vector<Subscription>;
  using ExactMap = std::unordered_map<std::string, Subscribers, StringHash, std::equal_to<>>;

  // Filters without '+' or '#', answered by one lookup of the whole topic.
  ExactMap exact_;
  // Filters with a wildcard, one trie level per topic level. Never null.
  std::unique_ptr<Node> root_;
  // (filter, subscriber) pairs in the trie: Match() skips the walk when there are none.
  std::size_t wildcard_size_ = 0;
  std::size_t size_ = 0;
};

}  // namespace tinymq::broker
