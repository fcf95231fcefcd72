#pragma once

#include <cstddef>
#include <memory>
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

}  // namespace tinymq::broker
