#include "tinymq/broker/retained_store.h"

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "tinymq/broker/topic_levels.h"
#include "tinymq/mqtt/wire.h"
#include "tinymq/util/check.h"

namespace tinymq::broker {
namespace {

bool StartsWithDollar(std::string_view level) { return !level.empty() && level.front() == '$'; }

}  // namespace

// One topic level. A node exists only while it or a node below it holds a message.
struct RetainedStore::Node {
  using Children =
      std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>>;

  Children children;
  MessageRef message;  // the retained message of the topic that ends here, if any

  bool empty() const { return children.empty() && message == nullptr; }
};

RetainedStore::RetainedStore() : root_(std::make_unique<Node>()) {}

// Tears the trie down without recursion: a topic may have 32,768 levels, and destroying a
// unique_ptr chain that deep one frame per level overflows a worker's stack.
RetainedStore::~RetainedStore() {
  std::vector<std::unique_ptr<Node>> pending;
  pending.push_back(std::move(root_));
  while (!pending.empty()) {
    const std::unique_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    for (auto& entry : node->children) {
      pending.push_back(std::move(entry.second));
    }
  }  // each node dies holding only null pointers
}

void RetainedStore::Set(const MessageRef& message) {
  TINYMQ_DCHECK(message != nullptr && !message->topic.empty());
  LevelReader levels(message->topic);

  if (!message->payload.empty()) {
    Node* node = root_.get();
    while (!levels.done()) {
      const std::string_view level = levels.Next();
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      }
      node = it->second.get();
    }
    if (node->message == nullptr) {
      ++size_;
    } else {
      bytes_ -= RetainedBytes(*node->message);
    }
    bytes_ += RetainedBytes(*message);
    node->message = message;
    return;
  }

  // [MQTT-3.3.1-10]: an empty payload removes the retained message of the topic. Record the way
  // down, then prune the nodes left empty from the bottom up.
  std::vector<std::pair<Node*, Node::Children::iterator>> path;
  Node* node = root_.get();
  while (!levels.done()) {
    const auto it = node->children.find(levels.Next());
    if (it == node->children.end()) {
      return;
    }
    path.emplace_back(node, it);
    node = it->second.get();
  }
  if (node->message == nullptr) {
    return;
  }
  bytes_ -= RetainedBytes(*node->message);
  node->message.reset();
  TINYMQ_DCHECK(size_ > 0);
  --size_;
  for (auto step = path.rbegin(); step != path.rend() && step->second->second->empty(); ++step) {
    step->first->children.erase(step->second);
  }
}

const Message* RetainedStore::Find(std::string_view topic) const {
  LevelReader levels(topic);
  const Node* node = root_.get();
  while (!levels.done()) {
    const auto it = node->children.find(levels.Next());
    if (it == node->children.end()) {
      return nullptr;
    }
    node = it->second.get();
  }
  return node->message.get();
}

void RetainedStore::Match(std::string_view filter, std::vector<MessageRef>& out) const {
  // Explicit stacks rather than recursion: a topic may have up to 32,768 levels and this runs on
  // a worker's stack. Allocating here is fine: it runs once per SUBSCRIBE, not per PUBLISH.
  struct Pending {
    const Node* node;
    LevelReader filter;  // the levels still to match below `node`
  };
  std::vector<Pending> pending = {{root_.get(), LevelReader(filter)}};
  std::vector<const Node*> subtree;  // roots of subtrees that '#' takes whole

  while (!pending.empty()) {
    auto [node, levels] = pending.back();
    pending.pop_back();
    // [MQTT-4.7.2-1]: a wildcard as the first level matches no level starting with '$'.
    const bool at_root = node == root_.get();
    if (levels.done()) {
      if (node->message != nullptr) {
        out.push_back(node->message);
      }
      continue;
    }
    const std::string_view level = levels.Next();
    if (level == "#") {  // a valid filter has '#' only as its last level
      if (!at_root) {
        subtree.push_back(node);  // '#' takes the parent level too: "a/#" matches "a"
        continue;
      }
      for (const auto& [name, child] : node->children) {
        if (!StartsWithDollar(name)) {
          subtree.push_back(child.get());
        }
      }
    } else if (level == "+") {
      for (const auto& [name, child] : node->children) {
        if (!(at_root && StartsWithDollar(name))) {
          pending.push_back({child.get(), levels});
        }
      }
    } else if (const auto it = node->children.find(level); it != node->children.end()) {
      pending.push_back({it->second.get(), levels});
    }
  }

  while (!subtree.empty()) {
    const Node* node = subtree.back();
    subtree.pop_back();
    if (node->message != nullptr) {
      out.push_back(node->message);
    }
    for (const auto& [name, child] : node->children) {
      subtree.push_back(child.get());
    }
  }
}

ConcurrentRetainedStore::Shard& ConcurrentRetainedStore::ShardOf(std::string_view topic) {
  return shards_[std::hash<std::string_view>{}(topic) % kShards];
}

void ConcurrentRetainedStore::Set(const MessageRef& message) {
  TrySet(message, SIZE_MAX, SIZE_MAX);
}

bool ConcurrentRetainedStore::TrySet(const MessageRef& message, std::size_t max_count,
                                     std::size_t max_bytes) {
  Shard& shard = ShardOf(message->topic);
  const std::unique_lock lock(shard.mutex);
  const std::size_t size_before = shard.store.size();
  const std::size_t bytes_before = shard.store.bytes();
  if (IsSystemTopic(message->topic)) {
    shard.store.Set(message);  // the broker's own: outside the clients' limits and totals
    return true;
  }
  if (!message->payload.empty()) {
    const Message* old = shard.store.Find(message->topic);
    const std::size_t added = RetainedBytes(*message);
    const std::size_t removed = old != nullptr ? RetainedBytes(*old) : 0;
    const std::size_t total = bytes_.load(std::memory_order_relaxed);
    if ((old == nullptr && count_.load(std::memory_order_relaxed) >= max_count) ||
        (added > removed &&
         (added - removed > max_bytes || total > max_bytes - (added - removed)))) {
      return false;
    }
  }
  shard.store.Set(message);
  // Shard sizes only change under their lock, so the deltas are exact.
  count_.fetch_add(shard.store.size() - size_before, std::memory_order_relaxed);
  bytes_.fetch_add(shard.store.bytes() - bytes_before, std::memory_order_relaxed);
  return true;
}

void ConcurrentRetainedStore::Erase(const MessageRef& message) {
  Shard& shard = ShardOf(message->topic);
  const std::unique_lock lock(shard.mutex);
  std::vector<MessageRef> current;
  shard.store.Match(message->topic, current);  // a topic name is a filter matching only itself
  if (current.size() == 1 && current.front() == message) {
    const std::size_t size_before = shard.store.size();
    const std::size_t bytes_before = shard.store.bytes();
    shard.store.Set(MakeMessage(message->topic, {}, message->qos, true));
    if (IsSystemTopic(message->topic)) {
      return;  // never counted
    }
    count_.fetch_add(shard.store.size() - size_before, std::memory_order_relaxed);
    bytes_.fetch_add(shard.store.bytes() - bytes_before, std::memory_order_relaxed);
  }
}

void ConcurrentRetainedStore::Match(std::string_view filter, std::vector<MessageRef>& out) const {
  if (!mqtt::HasWildcard(filter)) {
    const Shard& shard = shards_[std::hash<std::string_view>{}(filter) % kShards];
    const std::shared_lock lock(shard.mutex);
    shard.store.Match(filter, out);
    return;
  }
  for (const Shard& shard : shards_) {
    const std::shared_lock lock(shard.mutex);
    shard.store.Match(filter, out);
  }
}

std::size_t ConcurrentRetainedStore::size() const { return count_.load(std::memory_order_relaxed); }

}  // namespace tinymq::broker
