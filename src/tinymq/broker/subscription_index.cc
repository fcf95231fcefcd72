#include "tinymq/broker/subscription_index.h"

#include <algorithm>
#include <utility>

#include "tinymq/broker/topic_levels.h"
#include "tinymq/util/check.h"

namespace tinymq::broker {
namespace {

bool HasWildcard(std::string_view filter) {
  return filter.find_first_of("+#") != std::string_view::npos;
}

void AppendAll(const std::vector<Subscription>& subscribers,
               std::vector<const Subscription*>& out) {
  for (const Subscription& s : subscribers) {
    out.push_back(&s);
  }
}

// Returns true when `subscription.subscriber` was not in `subscribers` yet.
bool AddOrReplace(std::vector<Subscription>& subscribers, const Subscription& subscription) {
  for (Subscription& s : subscribers) {
    if (s.subscriber == subscription.subscriber) {
      s = subscription;  // [MQTT-3.8.4-3]: the same filter again replaces the subscription
      return false;
    }
  }
  subscribers.push_back(subscription);
  return true;
}

// Returns true when `subscriber` was there.
bool Remove(std::vector<Subscription>& subscribers, SubscriberId subscriber) {
  const auto it =
      std::find_if(subscribers.begin(), subscribers.end(),
                   [subscriber](const Subscription& s) { return s.subscriber == subscriber; });
  if (it == subscribers.end()) {
    return false;
  }
  subscribers.erase(it);
  return true;
}

}  // namespace

// One level of the wildcard filters. The filter "a/+/#" lives at root -> "a" -> plus, in
// `multi`; "+/b" at root -> plus -> "b", in `here`. Filters without wildcards never reach the
// trie, so every node lies on the path of at least one wildcard filter (empty nodes are pruned).
struct SubscriptionIndex::Node {
  using Children =
      std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>>;

  Children children;           // literal next levels
  std::unique_ptr<Node> plus;  // the '+' next level
  Subscribers here;            // filters that end at this level
  Subscribers multi;           // filters that end with "/#" after this level ("#" at the root)

  bool empty() const { return children.empty() && !plus && here.empty() && multi.empty(); }

  const Node* FindChild(std::string_view level) const {
    const auto it = children.find(level);  // heterogeneous: no std::string is built
    return it == children.end() ? nullptr : it->second.get();
  }

  // Appends the subscriptions below this node whose filters match the levels left in `topic`.
  // `wildcards_allowed` is false only at the root for a topic starting with '$' [MQTT-4.7.2-1].
  // Follows one path in a loop and recurses only where both a literal level and '+' match. A
  // recursion depth of D needs D filters of about D levels each ("+/a/#", "+/+/a/#", ...), so
  // deep recursion costs a client O(D^2) bytes of subscriptions first.
  void Collect(LevelReader topic, bool wildcards_allowed,
               std::vector<const Subscription*>& out) const {
    const Node* node = this;
    while (true) {
      if (wildcards_allowed) {
        AppendAll(node->multi, out);  // '#' takes the parent level too: "a/#" matches "a"
      }
      if (topic.done()) {
        AppendAll(node->here, out);
        return;
      }
      const std::string_view level = topic.Next();
      const Node* literal = node->FindChild(level);
      const Node* any = wildcards_allowed ? node->plus.get() : nullptr;
      if (literal != nullptr && any != nullptr) {
        any->Collect(topic, /*wildcards_allowed=*/true, out);
      } else if (literal == nullptr) {
        literal = any;
      }
      if (literal == nullptr) {
        return;
      }
      node = literal;
      wildcards_allowed = true;
    }
  }
};

SubscriptionIndex::SubscriptionIndex() : root_(std::make_unique<Node>()) {}

// Tears the trie down without recursion: a filter may have 32,768 levels, and destroying a
// unique_ptr chain that deep one frame per level overflows a worker's stack.
SubscriptionIndex::~SubscriptionIndex() {
  std::vector<std::unique_ptr<Node>> pending;
  pending.push_back(std::move(root_));
  while (!pending.empty()) {
    const std::unique_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    for (auto& entry : node->children) {
      pending.push_back(std::move(entry.second));
    }
    if (node->plus != nullptr) {
      pending.push_back(std::move(node->plus));
    }
  }  // each node dies holding only null pointers
}

bool SubscriptionIndex::Subscribe(std::string_view filter, const Subscription& subscription) {
  TINYMQ_DCHECK(!filter.empty());
  if (!HasWildcard(filter)) {
    auto it = exact_.find(filter);
    if (it == exact_.end()) {
      it = exact_.emplace(std::string(filter), Subscribers()).first;
    }
    const bool added = AddOrReplace(it->second, subscription);
    size_ += added ? 1 : 0;
    return added;
  }

  Node* node = root_.get();
  Subscribers* subscribers = nullptr;
  LevelReader levels(filter);
  while (subscribers == nullptr) {
    const std::string_view level = levels.Next();
    if (level == "#") {  // a valid filter has '#' only as its last level
      subscribers = &node->multi;
      break;
    }
    if (level == "+") {
      if (node->plus == nullptr) {
        node->plus = std::make_unique<Node>();
      }
      node = node->plus.get();
    } else {
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      }
      node = it->second.get();
    }
    if (levels.done()) {
      subscribers = &node->here;
    }
  }
  const bool added = AddOrReplace(*subscribers, subscription);
  if (added) {
    ++size_;
    ++wildcard_size_;
  }
  return added;
}

bool SubscriptionIndex::Unsubscribe(std::string_view filter, SubscriberId subscriber) {
  if (!HasWildcard(filter)) {
    const auto it = exact_.find(filter);
    if (it == exact_.end() || !Remove(it->second, subscriber)) {
      return false;
    }
    if (it->second.empty()) {
      exact_.erase(it);
    }
    --size_;
    return true;
  }

  // The nodes from the root down, each with the level that leads to the next one, for pruning.
  struct Step {
    Node* parent;
    std::string_view level;
  };
  std::vector<Step> path;
  Node* node = root_.get();
  Subscribers* subscribers = nullptr;
  LevelReader levels(filter);
  while (subscribers == nullptr) {
    const std::string_view level = levels.Next();
    if (level == "#") {
      subscribers = &node->multi;
      break;
    }
    Node* next = nullptr;
    if (level == "+") {
      next = node->plus.get();
    } else if (const auto it = node->children.find(level); it != node->children.end()) {
      next = it->second.get();
    }
    if (next == nullptr) {
      return false;
    }
    path.push_back({node, level});
    node = next;
    if (levels.done()) {
      subscribers = &node->here;
    }
  }
  if (!Remove(*subscribers, subscriber)) {
    return false;
  }
  TINYMQ_DCHECK(size_ > 0 && wildcard_size_ > 0);
  --size_;
  --wildcard_size_;

  // Prune from the bottom up, stopping at the first node that still holds something.
  for (auto step = path.rbegin(); step != path.rend() && node->empty(); ++step) {
    Node* const parent = step->parent;
    if (step->level == "+") {
      parent->plus.reset();
    } else {
      // erase() by a heterogeneous key is C++23; find() then erase the iterator.
      parent->children.erase(parent->children.find(step->level));
    }
    node = parent;
  }
  return true;
}

void SubscriptionIndex::Match(std::string_view topic, std::vector<const Subscription*>& out) const {
  if (const auto it = exact_.find(topic); it != exact_.end()) {
    AppendAll(it->second, out);
  }
  if (wildcard_size_ == 0) {
    return;
  }
  // [MQTT-4.7.2-1]: a filter starting with '+' or '#' does not match a topic starting with '$'.
  const bool dollar = !topic.empty() && topic.front() == '$';
  root_->Collect(LevelReader(topic), /*wildcards_allowed=*/!dollar, out);
}

}  // namespace tinymq::broker
