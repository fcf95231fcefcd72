#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

// What each worker's broker subscribes to, in a form any thread can ask cheaply: could a topic
// match a subscription there? A publishing worker asks it for every other worker, and sends the
// message only where the answer is yes. The answer may be a false yes (never a false no): counters
// per bucket of hashed filters, like a counting Bloom filter with one hash.
//
// A filter without wildcards counts in the bucket of its hash; one whose first level is not a
// wildcard ("sensors/+/temp", "a/#") in the bucket of its first level; one that starts with a
// wildcard ("#", "+/x") in a counter of its own, which makes every topic a yes.
//
// Threading: Add/Remove for worker w only from w's thread; MayMatch/Any from any thread. A
//            subscription added before its SUBACK is written is seen by any later MayMatch
//            (release/acquire).
// Lifetime:  plain memory, 32 KiB per worker.

namespace tinymq::broker {

class SubscriptionSummary {
 public:
  explicit SubscriptionSummary(std::uint16_t workers)
      : workers_(std::make_unique<Worker[]>(workers)) {}

  void Add(std::uint16_t worker, std::string_view filter) { Count(worker, filter, 1); }
  void Remove(std::uint16_t worker, std::string_view filter) { Count(worker, filter, -1); }

  bool MayMatch(std::uint16_t worker, std::string_view topic) const {
    const Worker& w = workers_[worker];
    if (w.leading_wildcard.load(std::memory_order_acquire) != 0) {
      return true;
    }
    return w.exact[Bucket(topic)].load(std::memory_order_acquire) != 0 ||
           w.first_level[Bucket(FirstLevel(topic))].load(std::memory_order_acquire) != 0;
  }

  // Whether worker `worker` has any subscription at all.
  bool Any(std::uint16_t worker) const {
    return workers_[worker].total.load(std::memory_order_acquire) != 0;
  }

 private:
  static constexpr std::size_t kBuckets = 4096;
  struct alignas(64) Worker {
    std::atomic<std::uint32_t> total{0};
    std::atomic<std::uint32_t> leading_wildcard{0};
    std::array<std::atomic<std::uint32_t>, kBuckets> exact{};
    std::array<std::atomic<std::uint32_t>, kBuckets> first_level{};
  };

  static std::size_t Bucket(std::string_view s) {
    return std::hash<std::string_view>{}(s) % kBuckets;
  }
  static std::string_view FirstLevel(std::string_view s) { return s.substr(0, s.find('/')); }

  void Count(std::uint16_t worker, std::string_view filter, int delta) {
    Worker& w = workers_[worker];
    const auto d = static_cast<std::uint32_t>(delta);  // -1 wraps: an atomic subtraction
    const std::string_view first = FirstLevel(filter);
    if (first == "#" || first == "+") {
      w.leading_wildcard.fetch_add(d, std::memory_order_release);
    } else if (filter.find_first_of("+#") == std::string_view::npos) {
      w.exact[Bucket(filter)].fetch_add(d, std::memory_order_release);
    } else {
      w.first_level[Bucket(first)].fetch_add(d, std::memory_order_release);
    }
    w.total.fetch_add(d, std::memory_order_release);
  }

  std::unique_ptr<Worker[]> workers_;
};

}  // namespace tinymq::broker
