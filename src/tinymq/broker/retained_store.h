#pragma once

#include <array>
#include <atomic>
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

  // The retained message of topic name `topic`, or null.
  const Message* Find(std::string_view topic) const;

  std::size_t size() const { return size_; }
  // Topic and payload bytes of the messages kept (RetainedBytes of each).
  std::size_t bytes() const { return bytes_; }

 private:
  struct Node;

  // Level 0 of the trie: holds no message (a topic name has at least one level). Never null.
  std::unique_ptr<Node> root_;
  std::size_t size_ = 0;
  std::size_t bytes_ = 0;
};

// What a retained message counts against Limits::max_retained_bytes: its topic and payload.
inline std::size_t RetainedBytes(const Message& m) { return m.topic.size() + m.payload.size(); }

// $SYS and its subtopics: the broker's own (Broker::PublishSystem). Their retained messages do
// not count against the retained limits, which are the clients'.
inline bool IsSystemTopic(std::string_view topic) {
  return topic.starts_with("$SYS") && (topic.size() == 4 || topic[4] == '/');
}

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
  // As Set, unless `message` is a new retained topic that would take the store past `max_count`
  // messages or `max_bytes` bytes (RetainedBytes), or a replacement that grows it past
  // `max_bytes`: then nothing changes and false is returned. Deleting always works. (The totals
  // are shared by the shards without a common lock: publishers on several workers at once may
  // take them past a limit by a few messages.) A $SYS/ message (IsSystemTopic) is always kept
  // and counts in neither total.
  bool TrySet(const MessageRef& message, std::size_t max_count, std::size_t max_bytes);
  // Deletes the retained message of message->topic if it is still `message` (an expired one
  // that another worker may have replaced meanwhile).
  void Erase(const MessageRef& message);
  // As RetainedStore::Match.
  void Match(std::string_view filter, std::vector<MessageRef>& out) const;
  // Messages kept and their RetainedBytes, $SYS/ ones aside (what the limits count).
  std::size_t size() const;
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    mutable std::shared_mutex mutex;
    RetainedStore store;
  };
  Shard& ShardOf(std::string_view topic);

  std::array<Shard, kShards> shards_;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::size_t> bytes_{0};
};

}  // namespace tinymq::broker
