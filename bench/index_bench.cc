// The subscription index at scale (issue #5): 1,000,000 subscriptions over 100,000 topics plus
// 10,000 wildcard filters. Reports the memory the index holds (RSS growth while it is built, in
// the "index_rss_MiB" counter) and the cost of one Match() of a published topic name (ns per
// match; each match finds the ~10 exact subscribers of its topic and the wildcard filters that
// cover it), against the same topic in an index of 100 topics.
//
//   Match/100000    topic "site/<s>/device/<d>/temp" among 100,000 topics x 10 subscribers, plus
//                   10,000 filters "site/<s>/+/<d>/#" and "site/<s>/device/+/temp"
//   Match/100       the same shape with 100 topics x 10 subscribers and their wildcard share

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/broker/subscription_index.h"

namespace tinymq::broker {
namespace {

long RssKib() {
  long kib = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
        break;
      }
    }
    std::fclose(f);
  }
  return kib;
}

std::string Topic(int site, int device) {
  return "site/" + std::to_string(site) + "/device/" + std::to_string(device) + "/temp";
}

struct Index {
  SubscriptionIndex index;
  std::vector<std::string> topics;
  long rss_kib = 0;
};

// `topics` topics (100 devices per site) x 10 subscribers each, and topics / 10 wildcard filters.
std::unique_ptr<Index> Build(int topics) {
  const long before = RssKib();
  auto built = std::make_unique<Index>();
  SubscriberId next = 1;
  for (int t = 0; t < topics; ++t) {
    built->topics.push_back(Topic(t / 100, t % 100));
    for (int s = 0; s < 10; ++s) {
      built->index.Subscribe(built->topics.back(), Subscription{next++, {}, 0});
    }
  }
  for (int w = 0; w < topics / 10; ++w) {
    const int site = w % (topics / 100 == 0 ? 1 : topics / 100);
    const std::string filter =
        w % 2 == 0 ? "site/" + std::to_string(site) + "/+/" + std::to_string(w % 100) + "/#"
                   : "site/" + std::to_string(site) + "/device/+/temp";
    built->index.Subscribe(filter, Subscription{next++, {}, 0});
  }
  built->rss_kib = RssKib() - before;
  return built;
}

void Match(benchmark::State& state) {
  static std::unique_ptr<Index> big;
  static std::unique_ptr<Index> small;
  std::unique_ptr<Index>& slot = state.range(0) == 100'000 ? big : small;
  if (slot == nullptr) {
    slot = Build(static_cast<int>(state.range(0)));
  }
  const Index& idx = *slot;
  std::vector<const Subscription*> out;
  out.reserve(1024);
  std::size_t i = 0;
  std::size_t found = 0;
  for (auto _ : state) {
    out.clear();
    idx.index.Match(idx.topics[i], out);
    found += out.size();
    i = (i + 7919) % idx.topics.size();  // walk the topics in a scattered order
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
  state.counters["subscriptions"] = static_cast<double>(idx.index.size());
  state.counters["index_rss_MiB"] = static_cast<double>(idx.rss_kib) / 1024.0;
  state.counters["matches_per_publish"] =
      static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(Match)->Arg(100'000)->Arg(100);

}  // namespace
}  // namespace tinymq::broker
