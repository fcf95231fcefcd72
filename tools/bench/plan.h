#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/bench/options.h"

// Which connections a run opens, what each one does, and which thread drives it.
//
// Topics: fanin publisher i publishes to <prefix>/p<i> and every subscriber subscribes to
// <prefix>/#; fanout's publisher publishes to <prefix>/fanout, the subscribers subscribe to it;
// pairs publisher i publishes to <prefix>/pair/<i>, subscriber i subscribes to it; idle subscriber
// j subscribes to <prefix>/idle/<k> for k in [1000 j, 1000 (j + 1)).
//
// Threading: Immutable after construction; safe to share across threads.

namespace tinymq::bench {

enum class Role : std::uint8_t {
  kPublisher,
  kSubscriber,
  kIdleSubscriber,  // subscribed to topics nobody publishes to
  kIdle,            // connected, nothing else (conn)
};

struct ConnSpec {
  Role role = Role::kIdle;
  std::uint32_t index = 0;  // publishers: the publisher index in the stamp; others: their number
  std::string client_id;
  std::string topic;             // publisher: its topic; subscriber: its filter
  std::uint32_t idle_first = 0;  // idle subscriber: first idle topic number
  std::uint32_t idle_count = 0;  // idle subscriber: how many idle topics
};

// Connections per thread: thread t gets every role's connections t, t + threads, t + 2 threads...
std::vector<std::vector<ConnSpec>> BuildPlan(const Options& options);

std::string IdleTopic(const Options& options, std::uint32_t k);

}  // namespace tinymq::bench
