#include "tinymq/server/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace tinymq::server {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

// ---- A small parser of the Prometheus text format 0.0.4, checking its rules as it goes ----------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, std::string> helps;  // family -> help
  std::vector<Sample> samples;
  std::vector<std::string> errors;  // broken rules, one line each

  // The value of the one sample with this name and these labels ("" when there is none).
  std::string Value(std::string_view name,
                    const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name == name && s.labels == labels) {
        return s.value;
      }
    }
    return "";
  }
  std::size_t CountOf(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(samples.begin(), samples.end(),
                                                  [&](const Sample& s) { return s.name == name; }));
  }
};

bool IsMetricName(std::string_view s) {
  if (s.empty() || (std::isdigit(static_cast<unsigned char>(s[0])) != 0)) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
  });
}

bool IsNumber(const std::string& s) {
  if (s == "+Inf" || s == "-Inf" || s == "NaN") {
    return true;
  }
  if (s.empty()) {
    return false;
  }
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// The family a sample belongs to: its own name, or (histograms) its name without _bucket, _sum or
// _count.
std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.contains(name)) {
    return name;
  }
  for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.ends_with(suffix)) {
      const std::string base = name.substr(0, name.size() - suffix.size());
      const auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") {
        return base;
      }
    }
  }
  return "";
}

Exposition Parse(std::string_view text) {
  Exposition out;
  auto error = [&](std::string e) { out.errors.push_back(std::move(e)); };
  if (text.empty() || text.back() != '\n') {
    error("the text does not end with a line feed");
  }
  std::set<std::string> families_done;  // families whose samples have ended
  std::string current;                  // the family whose lines come now
  std::set<std::string> series;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string line(text.substr(start, end - start));
    start = end + 1;
    if (line.empty()) {
      error("empty line");
      continue;
    }
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const bool help = line[2] == 'H';
      const std::string rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      if (space == std::string::npos) {
        error("no text after the name: " + line);
        continue;
      }
      const std::string name = rest.substr(0, space);
      const std::string what = rest.substr(space + 1);
      if (!IsMetricName(name)) {
        error("bad name: " + line);
      }
      if (name != current) {
        if (!current.empty()) {
          families_done.insert(current);
        }
        if (families_done.contains(name)) {
          error("family declared again after its samples: " + name);
        }
        current = name;
      }
      auto& map = help ? out.helps : out.types;
      if (map.contains(name)) {
        error(std::string(help ? "HELP" : "TYPE") + " twice: " + name);
      }
      map[name] = what;
      if (!help && what != "counter" && what != "gauge" && what != "histogram" &&
          what != "summary" && what != "untyped") {
        error("bad type: " + line);
      }
      continue;
    }
    if (line[0] == '#') {
      continue;  // a comment
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') {
      ++i;
    }
    s.name = line.substr(0, i);
    if (!IsMetricName(s.name)) {
      error("bad sample name: " + line);
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          error("bad label: " + line);
          break;
        }
        const std::string key = line.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 2;
        bool closed = false;
        for (; j < line.size(); ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            const char n = line[++j];
            value += n == 'n' ? '\n' : n;
          } else if (line[j] == '"') {
            closed = true;
            break;
          } else {
            value += line[j];
          }
        }
        if (!closed || !IsMetricName(key) || s.labels.contains(key)) {
          error("bad label: " + line);
          break;
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') {
          ++i;
        }
      }
      if (i >= line.size() || line[i] != '}') {
        error("labels not closed: " + line);
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error("no value: " + line);
      continue;
    }
    s.value = line.substr(i + 1);
    if (!IsNumber(s.value)) {
      error("bad value: " + line);
    }
    const std::string family = FamilyOf(s.name, out.types);
    if (family.empty()) {
      error("sample before its TYPE: " + line);
    } else if (family != current) {
      error("sample outside its family's group: " + line);
    } else if (!out.helps.contains(family)) {
      error("sample before its HELP: " + line);
    }
    std::string key = s.name + "{";
    for (const auto& [k, v] : s.labels) {
      key += k + "=" + v + ",";
    }
    if (!series.insert(key).second) {
      error("duplicate series: " + line);
    }
    out.samples.push_back(std::move(s));
  }
  for (const auto& [name, type] : out.types) {
    if (!out.helps.contains(name)) {
      error("TYPE without HELP: " + name);
    }
    if (type == "counter" && !name.ends_with("_total")) {
      error("counter not ending in _total: " + name);
    }
    if (type != "counter" && name.ends_with("_total")) {
      error("_total on a " + type + ": " + name);
    }
  }
  for (const auto& [name, help] : out.helps) {
    if (!out.types.contains(name)) {
      error("HELP without TYPE: " + name);
    }
  }
  return out;
}

// Checks every histogram of `e`: per label set, buckets in ascending `le` order, cumulative,
// ending with +Inf equal to _count, and a _sum.
void ExpectHistogramsWellFormed(const Exposition& e) {
  for (const auto& [family, type] : e.types) {
    if (type != "histogram") {
      continue;
    }
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, std::uint64_t>>>
        buckets;
    for (const Sample& s : e.samples) {
      if (s.name != family + "_bucket") {
        continue;
      }
      std::map<std::string, std::string> rest = s.labels;
      ASSERT_TRUE(rest.contains("le")) << family;
      const std::string le = rest["le"];
      rest.erase("le");
      const double bound = le == "+Inf" ? INFINITY : std::strtod(le.c_str(), nullptr);
      buckets[rest].emplace_back(bound, std::stoull(s.value));
    }
    EXPECT_FALSE(buckets.empty()) << family;
    for (const auto& [labels, list] : buckets) {
      ASSERT_EQ(list.size(), Histogram::kBuckets) << family;
      for (std::size_t i = 1; i < list.size(); ++i) {
        EXPECT_LT(list[i - 1].first, list[i].first) << family;
        EXPECT_LE(list[i - 1].second, list[i].second) << family;
      }
      EXPECT_TRUE(std::isinf(list.back().first)) << family;
      EXPECT_EQ(e.Value(family + "_count", labels), std::to_string(list.back().second)) << family;
      EXPECT_FALSE(e.Value(family + "_sum", labels).empty()) << family;
    }
  }
}

// ---- Histogram ----------------------------------------------------------------------------------

TEST(HistogramTest, BoundsAreInclusiveUpperLimits) {
  Histogram h;
  h.Observe(nanoseconds{0});
  h.Observe(nanoseconds{100'000});  // exactly 0.0001 s: the first bucket
  h.Observe(nanoseconds{100'001});  // just above: the second
  h.Observe(seconds{10});           // the last finite bucket
  h.Observe(seconds{10} + nanoseconds{1});
  h.Observe(seconds{3600});
  const std::array<std::uint64_t, Histogram::kBuckets>& c = h.counts();
  EXPECT_EQ(c[0], 2U);
  EXPECT_EQ(c[1], 1U);
  EXPECT_EQ(c[15], 1U);
  EXPECT_EQ(c[16], 2U);  // +Inf
  EXPECT_EQ(h.count(), 6U);
  EXPECT_EQ(h.Cumulative(0), 2U);
  EXPECT_EQ(h.Cumulative(1), 3U);
  EXPECT_EQ(h.Cumulative(15), 4U);
  EXPECT_EQ(h.Cumulative(16), 6U);
  EXPECT_EQ(h.sum_ns(),
            100'000U + 100'001U + 10'000'000'000U + 10'000'000'001U + 3'600'000'000'000U);
}

TEST(HistogramTest, LabelsMatchBounds) {
  for (std::size_t i = 0; i < Histogram::kFiniteBuckets; ++i) {
    const double label = std::strtod(std::string(Histogram::kLabels[i]).c_str(), nullptr);
    EXPECT_DOUBLE_EQ(label * 1e9, static_cast<double>(Histogram::kBounds[i].count())) << i;
  }
  EXPECT_EQ(Histogram::kLabels.back(), "+Inf");
  EXPECT_TRUE(std::is_sorted(Histogram::kBounds.begin(), Histogram::kBounds.end()));
}

TEST(HistogramTest, NegativeDurationCountsAsZero) {
  Histogram h;
  h.Observe(nanoseconds{-5});
  EXPECT_EQ(h.counts()[0], 1U);
  EXPECT_EQ(h.sum_ns(), 0U);
  EXPECT_EQ(h.count(), 1U);
}

TEST(HistogramTest, MergeAddsCountsAndSums) {
  Histogram a;
  Histogram b;
  a.Observe(std::chrono::microseconds{50});
  a.Observe(std::chrono::milliseconds{3});
  b.Observe(std::chrono::milliseconds{3});
  b.Observe(seconds{20});
  Histogram both;
  for (const nanoseconds d : {nanoseconds{50'000}, nanoseconds{3'000'000}, nanoseconds{3'000'000},
                              nanoseconds{20'000'000'000}}) {
    both.Observe(d);
  }
  a.Merge(b);
  EXPECT_EQ(a, both);
  EXPECT_EQ(a.count(), 4U);
  EXPECT_DOUBLE_EQ(a.sum_seconds(), 20.00605);
}

// ---- StatsBoard ---------------------------------------------------------------------------------

TEST(StatsBoardTest, UnpublishedSlotsReadAsZerosWithTheirIndex) {
  const StatsBoard board(3);
  const std::vector<WorkerStats> read = board.Read();
  ASSERT_EQ(read.size(), 3U);
  for (std::uint16_t i = 0; i < 3; ++i) {
    EXPECT_EQ(read[i].worker, i);
    EXPECT_EQ(read[i].connections, 0U);
    EXPECT_EQ(read[i].loop_latency.count(), 0U);
  }
}

TEST(StatsBoardTest, PublishReplacesTheWorkersSlotOnly) {
  StatsBoard board(2);
  WorkerStats s;
  s.worker = 1;
  s.connections = 5;
  s.messages_sent = {1, 2, 3};
  s.loop_latency.Observe(std::chrono::milliseconds{1});
  board.Publish(s);
  s.connections = 7;
  board.Publish(s);
  const std::vector<WorkerStats> read = board.Read();
  EXPECT_EQ(read[0].connections, 0U);
  EXPECT_EQ(read[1].connections, 7U);
  EXPECT_EQ(read[1].messages_sent[2], 3U);
  EXPECT_EQ(read[1].loop_latency.count(), 1U);
}

// Threads (the TSan stage runs suites with Thread in their name): each worker publishes stats
// whose fields all carry one number; a reader must never see a slot mixing two publications.
TEST(StatsBoardThreadTest, ReadersSeeWholePublications) {
  constexpr std::uint16_t kWorkers = 4;
  constexpr std::uint64_t kRounds = 2000;
  StatsBoard board(kWorkers);
  std::atomic<bool> done{false};
  std::atomic<bool> reading{false};
  std::vector<std::thread> writers;
  for (std::uint16_t w = 0; w < kWorkers; ++w) {
    writers.emplace_back([&board, &reading, w] {
      while (!reading.load()) {  // the reader runs first, so that the two overlap
        std::this_thread::yield();
      }
      WorkerStats s;
      s.worker = w;
      for (std::uint64_t k = 1; k <= kRounds; ++k) {
        s.connections = k;
        s.bytes_sent = k;
        s.messages_received = {k, k, k};
        s.loop_latency.Observe(nanoseconds{1});
        board.Publish(s);
      }
    });
  }
  std::uint64_t reads = 0;
  std::thread reader([&] {
    do {
      for (const WorkerStats& s : board.Read()) {
        EXPECT_EQ(s.connections, s.bytes_sent);
        EXPECT_EQ(s.messages_received[2], s.connections);
        EXPECT_EQ(s.loop_latency.count(), s.connections);
      }
      ++reads;
      reading = true;
    } while (!done.load());
  });
  for (std::thread& t : writers) {
    t.join();
  }
  done = true;
  reader.join();
  for (const WorkerStats& s : board.Read()) {
    EXPECT_EQ(s.connections, kRounds);
  }
  EXPECT_GT(reads, 0U);
}

// ---- RenderPrometheus ---------------------------------------------------------------------------

// Two workers with distinct numbers in every field, and server values.
std::vector<WorkerStats> TwoWorkers() {
  std::vector<WorkerStats> workers(2);
  for (std::uint16_t i = 0; i < 2; ++i) {
    WorkerStats& w = workers[i];
    const std::uint64_t k = i + 1;  // 1 and 2: sums are 3 * the unit
    w.worker = i;
    w.connections = 10 * k;
    w.clients_connected = 8 * k;
    w.sessions = 20 * k;
    w.subscriptions = 30 * k;
    w.queued_messages = 40 * k;
    w.inflight_messages = 50 * k;
    w.connections_accepted = 100 * k;
    w.connections_closed = 90 * k;
    w.messages_received = {1000 * k, 100 * k, 10 * k};
    w.messages_sent = {2000 * k, 200 * k, 20 * k};
    w.publish_bytes_received = {4000 * k, 900 * k, 100 * k};
    w.publish_bytes_sent = {5000 * k, 900 * k, 100 * k};
    w.bytes_received = 7000 * k;
    w.bytes_sent = 8000 * k;
    w.dropped_queue_full = 1 * k;
    w.dropped_slow_qos0 = 2 * k;
    w.dropped_offline_qos0 = 3 * k;
    w.dropped_too_large = 4 * k;
    w.dropped_expired = 5 * k;
    w.dropped_acl = 6 * k;
    w.refused_auth = 11 * k;
    w.refused_tls = 12 * k;
    w.refused_websocket = 13 * k;
    w.refused_proxy = 14 * k;
    w.protocol_errors = 15 * k;
    w.rate_disconnects = 16 * k;
    w.denied_publish = 17 * k;
    w.denied_subscribe = 18 * k;
  }
  workers[0].loop_latency.Observe(std::chrono::microseconds{50});   // le 0.0001
  workers[0].loop_latency.Observe(std::chrono::microseconds{300});  // le 0.0005
  workers[1].loop_latency.Observe(seconds{11});                     // +Inf
  return workers;
}

ServerStats Server() {
  ServerStats s;
  s.refused_max_connections = 21;
  s.refused_max_connections_per_address = 22;
  s.retained_messages = 23;
  s.retained_bytes = 24;
  s.store_write_latency.Observe(std::chrono::milliseconds{2});
  s.store_write_latency.Observe(nanoseconds{1'500'000'001});
  s.store_batches = 25;
  s.uptime = seconds{3600};
  s.version = "0.1.0";
  return s;
}

TEST(RenderPrometheusTest, FollowsTheTextFormatRules) {
  const std::string text = RenderPrometheus(TwoWorkers(), Server());
  const Exposition e = Parse(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << text;
  for (const auto& [name, type] : e.types) {
    EXPECT_TRUE(name.starts_with("tinymq_")) << name;
  }
  ExpectHistogramsWellFormed(e);
}

TEST(RenderPrometheusTest, GaugesAndCountersAreSumsOverWorkers) {
  const Exposition e = Parse(RenderPrometheus(TwoWorkers(), Server()));
  const std::map<std::string, std::string> expected = {
      {"tinymq_connections", "30"},
      {"tinymq_clients_connected", "24"},
      {"tinymq_sessions", "60"},
      {"tinymq_subscriptions", "90"},
      {"tinymq_queued_messages", "120"},
      {"tinymq_inflight_messages", "150"},
      {"tinymq_retained_messages", "23"},
      {"tinymq_retained_bytes", "24"},
      {"tinymq_connections_accepted_total", "300"},
      {"tinymq_connections_closed_total", "270"},
      {"tinymq_bytes_received_total", "21000"},
      {"tinymq_bytes_sent_total", "24000"},
      {"tinymq_uptime_seconds", "3600"},
      {"tinymq_store_batches_total", "25"},
  };
  for (const auto& [name, value] : expected) {
    EXPECT_EQ(e.Value(name), value) << name;
    EXPECT_EQ(e.CountOf(name), 1U) << name;
  }
  EXPECT_EQ(e.types.at("tinymq_connections"), "gauge");
  EXPECT_EQ(e.types.at("tinymq_uptime_seconds"), "gauge");
  EXPECT_EQ(e.types.at("tinymq_bytes_sent_total"), "counter");
  EXPECT_EQ(e.Value("tinymq_build_info", {{"version", "0.1.0"}}), "1");
}

TEST(RenderPrometheusTest, LabelledFamilies) {
  const Exposition e = Parse(RenderPrometheus(TwoWorkers(), Server()));
  EXPECT_EQ(e.Value("tinymq_publish_bytes_received_total", {{"qos", "0"}}), "12000");
  EXPECT_EQ(e.Value("tinymq_publish_bytes_received_total", {{"qos", "1"}}), "2700");
  EXPECT_EQ(e.Value("tinymq_publish_bytes_sent_total", {{"qos", "0"}}), "15000");
  EXPECT_EQ(e.Value("tinymq_publish_bytes_sent_total", {{"qos", "2"}}), "300");
  EXPECT_EQ(e.Value("tinymq_messages_received_total", {{"qos", "0"}}), "3000");
  EXPECT_EQ(e.Value("tinymq_messages_received_total", {{"qos", "1"}}), "300");
  EXPECT_EQ(e.Value("tinymq_messages_received_total", {{"qos", "2"}}), "30");
  EXPECT_EQ(e.Value("tinymq_messages_sent_total", {{"qos", "0"}}), "6000");
  EXPECT_EQ(e.Value("tinymq_messages_sent_total", {{"qos", "2"}}), "60");
  const std::map<std::string, std::string> dropped = {{"queue_full", "3"},   {"slow_qos0", "6"},
                                                      {"offline_qos0", "9"}, {"too_large", "12"},
                                                      {"expired", "15"},     {"acl", "18"}};
  for (const auto& [cause, value] : dropped) {
    EXPECT_EQ(e.Value("tinymq_dropped_deliveries_total", {{"cause", cause}}), value) << cause;
  }
  EXPECT_EQ(e.CountOf("tinymq_dropped_deliveries_total"), dropped.size());
  const std::map<std::string, std::string> refused = {{"auth", "33"},
                                                      {"tls", "36"},
                                                      {"websocket", "39"},
                                                      {"proxy", "42"},
                                                      {"max_connections", "21"},
                                                      {"max_connections_per_address", "22"}};
  for (const auto& [reason, value] : refused) {
    EXPECT_EQ(e.Value("tinymq_connections_refused_total", {{"reason", reason}}), value) << reason;
  }
  EXPECT_EQ(e.CountOf("tinymq_connections_refused_total"), refused.size());
  EXPECT_EQ(e.Value("tinymq_forced_disconnects_total", {{"reason", "protocol_error"}}), "45");
  EXPECT_EQ(e.Value("tinymq_forced_disconnects_total", {{"reason", "rate"}}), "48");
  EXPECT_EQ(e.Value("tinymq_acl_denied_total", {{"action", "publish"}}), "51");
  EXPECT_EQ(e.Value("tinymq_acl_denied_total", {{"action", "subscribe"}}), "54");
}

TEST(RenderPrometheusTest, HistogramsPerWorkerAndForTheStore) {
  const std::string text = RenderPrometheus(TwoWorkers(), Server());
  // Exact lines: le labels as written, cumulative counts, sums in exact decimal seconds.
  for (const std::string_view line : {
           "# TYPE tinymq_worker_loop_seconds histogram\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"0\",le=\"0.0001\"} 1\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"0\",le=\"0.00025\"} 1\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"0\",le=\"0.0005\"} 2\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"0\",le=\"+Inf\"} 2\n",
           "tinymq_worker_loop_seconds_sum{worker=\"0\"} 0.00035\n",
           "tinymq_worker_loop_seconds_count{worker=\"0\"} 2\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"1\",le=\"10\"} 0\n",
           "tinymq_worker_loop_seconds_bucket{worker=\"1\",le=\"+Inf\"} 1\n",
           "tinymq_worker_loop_seconds_sum{worker=\"1\"} 11\n",
           "tinymq_store_write_seconds_bucket{le=\"0.0025\"} 1\n",
           "tinymq_store_write_seconds_bucket{le=\"2.5\"} 2\n",
           "tinymq_store_write_seconds_sum 1.502000001\n",
           "tinymq_store_write_seconds_count 2\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  const Exposition e = Parse(text);
  EXPECT_EQ(e.CountOf("tinymq_worker_loop_seconds_bucket"), 2 * Histogram::kBuckets);
}

TEST(RenderPrometheusTest, NoWorkersAndZeros) {
  const std::string text = RenderPrometheus({}, ServerStats{});
  const Exposition e = Parse(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << text;
  EXPECT_EQ(e.Value("tinymq_connections"), "0");
  EXPECT_EQ(e.Value("tinymq_store_write_seconds_sum"), "0");
  EXPECT_EQ(e.CountOf("tinymq_worker_loop_seconds_bucket"), 0U);
  EXPECT_EQ(e.Value("tinymq_build_info", {{"version", ""}}), "1");
}

TEST(RenderPrometheusTest, VersionLabelIsEscaped) {
  ServerStats s;
  s.version = "1\"2\\3\n4";
  const std::string text = RenderPrometheus({}, s);
  EXPECT_NE(text.find("tinymq_build_info{version=\"1\\\"2\\\\3\\n4\"} 1\n"), std::string::npos)
      << text;
  const Exposition e = Parse(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors);
  EXPECT_EQ(e.Value("tinymq_build_info", {{"version", s.version}}), "1");
}

TEST(RenderPrometheusTest, LargeCountersPrintAsIntegers) {
  std::vector<WorkerStats> workers(1);
  workers[0].bytes_sent = 18'446'744'073'709'551'615ULL;
  const Exposition e = Parse(RenderPrometheus(workers, ServerStats{}));
  EXPECT_EQ(e.Value("tinymq_bytes_sent_total"), "18446744073709551615");
}

// The parser itself catches what it is there for.
TEST(RenderPrometheusTest, ParserRejectsBrokenText) {
  EXPECT_FALSE(Parse("a_total 1\n").errors.empty());  // no TYPE
  EXPECT_FALSE(
      Parse("# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n").errors.empty());
  EXPECT_FALSE(Parse("# HELP a x\n# TYPE a counter\na 1\n").errors.empty());  // no _total
  EXPECT_FALSE(Parse("# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\na 1\n")
                   .errors.empty());  // a's sample outside its group
  EXPECT_FALSE(Parse("# HELP a x\n# TYPE a gauge\na{x=\"1} 1\n").errors.empty());
  EXPECT_TRUE(Parse("# HELP a x\n# TYPE a gauge\na{x=\"1\",y=\"\\\"\"} 1.5\n").errors.empty());
}

// ---- SysTopics ----------------------------------------------------------------------------------

using Topics = std::vector<std::pair<std::string, std::string>>;
using TimePoint = std::chrono::steady_clock::time_point;

std::map<std::string, std::string> AsMap(const Topics& topics) {
  std::map<std::string, std::string> m;
  for (const auto& [topic, payload] : topics) {
    EXPECT_TRUE(m.emplace(topic, payload).second) << "twice: " << topic;
  }
  return m;
}

const TimePoint kT0 = TimePoint{} + std::chrono::hours{1};  // a fake clock

TEST(SysTopicsTest, FirstUpdateReturnsEveryTopicUnderMosquittosNames) {
  SysTopics sys("0.1.0");
  const std::map<std::string, std::string> m = AsMap(sys.Update(TwoWorkers(), Server(), kT0));
  const std::map<std::string, std::string> expected = {
      {"$SYS/broker/version", "tinymq 0.1.0"},
      {"$SYS/broker/uptime", "3600 seconds"},
      {"$SYS/broker/clients/connected", "24"},
      {"$SYS/broker/clients/active", "24"},
      {"$SYS/broker/clients/disconnected", "36"},
      {"$SYS/broker/clients/inactive", "36"},
      {"$SYS/broker/clients/total", "60"},
      {"$SYS/broker/clients/maximum", "24"},
      {"$SYS/broker/messages/received", "3330"},
      {"$SYS/broker/messages/sent", "6660"},
      {"$SYS/broker/messages/stored", "143"},  // 23 retained + 120 queued
      {"$SYS/broker/store/messages/count", "143"},
      {"$SYS/broker/store/messages/bytes", "24"},
      {"$SYS/broker/retained messages/count", "23"},
      {"$SYS/broker/subscriptions/count", "90"},
      {"$SYS/broker/publish/messages/received", "3330"},
      {"$SYS/broker/publish/messages/sent", "6660"},
      {"$SYS/broker/publish/messages/dropped", "45"},  // 3+6+9+12+15: not the ACL's 18
      {"$SYS/broker/publish/bytes/received", "15000"},
      {"$SYS/broker/publish/bytes/sent", "18000"},
      {"$SYS/broker/bytes/received", "21000"},
      {"$SYS/broker/bytes/sent", "24000"},
  };
  for (const auto& [topic, payload] : expected) {
    ASSERT_TRUE(m.contains(topic)) << topic;
    EXPECT_EQ(m.at(topic), payload) << topic;
  }
  std::size_t loads = 0;
  for (const std::string_view name :
       {"messages/received", "messages/sent", "publish/received", "publish/sent", "publish/dropped",
        "bytes/received", "bytes/sent", "connections", "sockets"}) {
    for (const std::string_view period : {"1min", "5min", "15min"}) {
      const std::string topic = "$SYS/broker/load/" + std::string(name) + "/" + std::string(period);
      ASSERT_TRUE(m.contains(topic)) << topic;
      EXPECT_EQ(m.at(topic), "0.00") << topic;
      ++loads;
    }
  }
  EXPECT_EQ(m.size(), expected.size() + loads);
}

TEST(SysTopicsTest, LaterUpdatesReturnOnlyWhatChanged) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers = TwoWorkers();
  ServerStats server = Server();
  (void)sys.Update(workers, server, kT0);
  EXPECT_TRUE(sys.Update(workers, server, kT0 + seconds{10}).empty());

  server.uptime += seconds{10};
  workers[0].subscriptions += 1;
  const Topics changed = sys.Update(workers, server, kT0 + seconds{20});
  EXPECT_EQ(AsMap(changed), (std::map<std::string, std::string>{
                                {"$SYS/broker/uptime", "3610 seconds"},
                                {"$SYS/broker/subscriptions/count", "91"},
                            }));
}

TEST(SysTopicsTest, LoadIsAnExponentialMovingAverageOfTheRatePerMinute) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  (void)sys.Update(workers, ServerStats{}, kT0);

  // 600 PUBLISH in a minute: 600/min folded in with 1 - exp(-60/period).
  workers[0].messages_received[1] = 600;
  std::map<std::string, std::string> m =
      AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{60}));
  EXPECT_EQ(m["$SYS/broker/load/messages/received/1min"], "379.27");  // 600 * (1 - e^-1)
  EXPECT_EQ(m["$SYS/broker/load/messages/received/5min"], "108.76");  // 600 * (1 - e^-0.2)
  EXPECT_EQ(m["$SYS/broker/load/messages/received/15min"], "38.70");  // 600 * (1 - e^-1/15)
  EXPECT_EQ(m["$SYS/broker/load/publish/received/1min"], "379.27");
  EXPECT_FALSE(m.contains("$SYS/broker/load/messages/sent/1min"));  // unchanged: 0.00

  // A quiet minute: each average decays by exp(-60/period).
  m = AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{120}));
  EXPECT_EQ(m["$SYS/broker/load/messages/received/1min"], "139.53");
  EXPECT_EQ(m["$SYS/broker/load/messages/received/5min"], "89.05");
  EXPECT_EQ(m["$SYS/broker/load/messages/received/15min"], "36.20");
}

TEST(SysTopicsTest, LoadRateScalesWithTheInterval) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  (void)sys.Update(workers, ServerStats{}, kT0);
  // 100 bytes in 10 s is 600 per minute.
  workers[0].bytes_sent = 100;
  workers[0].connections_accepted = 10;
  const std::map<std::string, std::string> m =
      AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{10}));
  const double keep = std::exp(-10.0 / 60.0);
  char expected[32];
  std::snprintf(expected, sizeof expected, "%.2f", (1.0 - keep) * 600.0);
  EXPECT_EQ(m.at("$SYS/broker/load/bytes/sent/1min"), expected);
  std::snprintf(expected, sizeof expected, "%.2f", (1.0 - keep) * 60.0);
  EXPECT_EQ(m.at("$SYS/broker/load/connections/1min"), expected);
  EXPECT_EQ(m.at("$SYS/broker/load/sockets/1min"), expected);
}

TEST(SysTopicsTest, AnUpdateWithoutTimePassingLeavesTheLoadForTheNext) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  (void)sys.Update(workers, ServerStats{}, kT0);
  workers[0].messages_sent[0] = 600;
  std::map<std::string, std::string> m = AsMap(sys.Update(workers, ServerStats{}, kT0));
  EXPECT_EQ(m.at("$SYS/broker/messages/sent"), "600");
  EXPECT_FALSE(m.contains("$SYS/broker/load/messages/sent/1min"));
  m = AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{60}));
  EXPECT_EQ(m.at("$SYS/broker/load/messages/sent/1min"), "379.27");
}

TEST(SysTopicsTest, MaximumKeepsTheHighestConnectedSeen) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  workers[0].clients_connected = 5;
  workers[0].sessions = 5;
  (void)sys.Update(workers, ServerStats{}, kT0);
  workers[0].clients_connected = 2;
  const std::map<std::string, std::string> m =
      AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{10}));
  EXPECT_EQ(m.at("$SYS/broker/clients/connected"), "2");
  EXPECT_EQ(m.at("$SYS/broker/clients/disconnected"), "3");
  EXPECT_FALSE(m.contains("$SYS/broker/clients/maximum"));  // still 5
}

TEST(SysTopicsTest, DisconnectedNeverGoesBelowZero) {
  // The counts come from different moments of different workers; connected may pass sessions.
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  workers[0].clients_connected = 4;
  workers[0].sessions = 3;
  const std::map<std::string, std::string> m = AsMap(sys.Update(workers, ServerStats{}, kT0));
  EXPECT_EQ(m.at("$SYS/broker/clients/disconnected"), "0");
}

TEST(SysTopicsTest, ACounterGoingBackDoesNotMakeANegativeLoad) {
  SysTopics sys("0.1.0");
  std::vector<WorkerStats> workers(1);
  workers[0].bytes_received = 1000;
  (void)sys.Update(workers, ServerStats{}, kT0);
  workers[0].bytes_received = 10;
  const std::map<std::string, std::string> m =
      AsMap(sys.Update(workers, ServerStats{}, kT0 + seconds{60}));
  EXPECT_FALSE(m.contains("$SYS/broker/load/bytes/received/1min"));  // still 0.00
}

}  // namespace
}  // namespace tinymq::server
