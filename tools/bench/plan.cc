#include "tools/bench/plan.h"

#include <algorithm>

namespace tinymq::bench {

std::string IdleTopic(const Options& options, std::uint32_t k) {
  return options.topic_prefix + "/idle/" + std::to_string(k);
}

std::vector<std::vector<ConnSpec>> BuildPlan(const Options& o) {
  std::vector<std::vector<ConnSpec>> plan(o.threads);
  auto add = [&](std::uint32_t n, auto&& make) {
    for (std::uint32_t i = 0; i < n; ++i) {
      plan[i % o.threads].push_back(make(i));
    }
  };
  const std::string& prefix = o.topic_prefix;
  const std::string& cid = o.client_id_prefix;
  switch (o.scenario) {
    case Scenario::kFanIn:
    case Scenario::kFanOut:
    case Scenario::kPairs: {
      const bool fanout = o.scenario == Scenario::kFanOut;
      const bool pairs = o.scenario == Scenario::kPairs;
      auto publisher_topic = [&](std::uint32_t i) {
        if (fanout) {
          return prefix + "/fanout";
        }
        return pairs ? prefix + "/pair/" + std::to_string(i) : prefix + "/p" + std::to_string(i);
      };
      // Subscribers first: they are all subscribed before anything is published anyway, but a
      // broker that accepts in order then sets them up first.
      add(o.subscribers, [&](std::uint32_t i) {
        ConnSpec s;
        s.role = Role::kSubscriber;
        s.index = i;
        s.client_id = cid + "s" + std::to_string(i);
        s.topic = fanout ? prefix + "/fanout" : pairs ? publisher_topic(i) : prefix + "/#";
        return s;
      });
      add(o.IdleSubscriberConnections(), [&](std::uint32_t j) {
        ConnSpec s;
        s.role = Role::kIdleSubscriber;
        s.index = j;
        s.client_id = cid + "i" + std::to_string(j);
        s.idle_first = j * kIdleTopicsPerConnection;
        s.idle_count = std::min(kIdleTopicsPerConnection, o.idle_topics - s.idle_first);
        return s;
      });
      add(o.publishers, [&](std::uint32_t i) {
        ConnSpec s;
        s.role = Role::kPublisher;
        s.index = i;
        s.client_id = cid + "p" + std::to_string(i);
        s.topic = publisher_topic(i);
        return s;
      });
      break;
    }
    case Scenario::kConn:
      add(o.connections, [&](std::uint32_t i) {
        ConnSpec s;
        s.role = Role::kIdle;
        s.index = i;
        s.client_id = cid + "c" + std::to_string(i);
        return s;
      });
      break;
  }
  return plan;
}

}  // namespace tinymq::bench
