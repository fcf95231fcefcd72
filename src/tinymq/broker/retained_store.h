#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <shared_mutex>
#include <string_view>
#include <vector>

#include "tinymq/broker/message.h"

// Retained messages (3.1.1 §3.3.1.3): one per topic name, kept in a trie of topic levels so that
// a subscription with wildcards finds its matches by walking the trie, not by scanning every
// retained message.
//
// Threading: Thread-compatible.
// Lifetime:  holds a MessageRef per topic.
// Errors:    none; REQUIRES valid topic names and filters (see mqtt/topic.h).

namespace tinymq::broker {

class RetainedStore {
 public:
  RetainedStore();
  ~RetainedStore();
  RetainedStore(const RetainedStore&) = delete;
  RetainedStore& operator=(const RetainedStore&) = delete;

  // Stores `message` as the retained message of message->topic, replacing any; a message with an
  // empty payload deletes it instead ([MQTT-3.3.1-10], [MQTT-3.3.1-11]).
  void Set(const MessageRef& message);

  // Appends to `out` the retained messages whose topic matches `filter`, with the $-rule: a
  // filter starting with '+' or '#' matches no topic starting with '$' ([MQTT-4.7.2-1]).
  void Match(std::string_view filter, std::vector<MessageRef>& out) const;

  std::size_t size() const { return size_; }

 private:
  struct Node;

  // Level 0 of the trie: holds no message (a topic name has at least one level). Never null.
  std::unique_ptr<Node> root_;
  std::size_t size_ = 0;
};

// The retained messages of every worker: a RetainedStore per shard of topic names, each behind a
// reader/writer lock. Setting a retained message locks one shard (never the whole store);
// a subscription reads one shard (a filter without wildcards) or each in turn.
//
// Threading: Thread-safe. Match() copies the MessageRefs out, so nothing it returns depends on a
//            lock still being held.
class ConcurrentRetainedStore {
 public:
  static constexpr std::size_t kShards = 16;

  // As RetainedStore::Set.
  void Set(const MessageRef& message);
  // Deletes the retained message of message->topic if it is still `message` (an expired one
  // that another worker may have replaced meanwhile).
  void Erase(const MessageRef& message);
  // As RetainedStore::Match.
  void Match(std::string_view filter, std::vector<MessageRef>& out) const;
  std::size_t size() const;

 private:
  struct Shard {
    mutable std::shared_mutex mutex;
    RetainedStore store;
  };
  Shard& ShardOf(std::string_view topic);

  std::array<Shard, kShards> shards_;
};

}  // namespace tinymq::broker
