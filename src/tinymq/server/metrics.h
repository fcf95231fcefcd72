#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Metrics (issue #8): what the workers and the server report about themselves, and the two ways
// out of the process: the Prometheus text exposition format (served by MetricsHttpServer,
// metrics_http.h) and Mosquitto-compatible $SYS/ topics. docs/metrics.md lists every metric and
// topic.
//
// The flow: each worker fills a WorkerStats from its own thread once a second and Publish()es it
// to the group's StatsBoard; a reader (the HTTP thread, the $SYS/ timer) takes Read()'s copies,
// adds a ServerStats of process-wide values, and renders them with RenderPrometheus() or
// SysTopics::Update(). Nothing here touches a socket or a clock of its own.

namespace tinymq::server {

// A latency histogram with fixed buckets (Prometheus' cumulative `le` buckets, from 100 µs to
// 10 s, plus +Inf). Counts are kept per bucket (not cumulative); the sum is kept in whole
// nanoseconds, so Merge() is exact and rendering prints it exactly.
//
// Threading: Thread-compatible (one writer; share it by copying under the writer's lock, or
//            through StatsBoard).
// Lifetime:  a plain value.
// Errors:    none. A negative duration counts as 0.
class Histogram {
 public:
  // Upper bounds (inclusive, as Prometheus' `le`) of the finite buckets; the last bucket is +Inf.
  static constexpr std::size_t kFiniteBuckets = 16;
  static constexpr std::size_t kBuckets = kFiniteBuckets + 1;
  static constexpr std::array<std::chrono::nanoseconds, kFiniteBuckets> kBounds = {
      std::chrono::nanoseconds{100'000},       std::chrono::nanoseconds{250'000},
      std::chrono::nanoseconds{500'000},       std::chrono::nanoseconds{1'000'000},
      std::chrono::nanoseconds{2'500'000},     std::chrono::nanoseconds{5'000'000},
      std::chrono::nanoseconds{10'000'000},    std::chrono::nanoseconds{25'000'000},
      std::chrono::nanoseconds{50'000'000},    std::chrono::nanoseconds{100'000'000},
      std::chrono::nanoseconds{250'000'000},   std::chrono::nanoseconds{500'000'000},
      std::chrono::nanoseconds{1'000'000'000}, std::chrono::nanoseconds{2'500'000'000},
      std::chrono::nanoseconds{5'000'000'000}, std::chrono::nanoseconds{10'000'000'000}};
  // The bounds in seconds as the `le` label prints them ("0.0001", ..., "10"), then "+Inf".
  static constexpr std::array<std::string_view, kBuckets> kLabels = {
      "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
      "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};

  // Counts `d` in the first bucket whose bound is >= d.
  void Observe(std::chrono::nanoseconds d) noexcept;
  // Adds `other`'s counts and sum to this one.
  void Merge(const Histogram& other) noexcept;

  // Per bucket (index i counts observations in (kBounds[i-1], kBounds[i]]; the last, above 10 s).
  const std::array<std::uint64_t, kBuckets>& counts() const noexcept { return counts_; }
  // Observations up to and including bucket `i` (Prometheus' `_bucket{le=kLabels[i]}`).
  std::uint64_t Cumulative(std::size_t i) const noexcept;
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t sum_ns() const noexcept { return sum_ns_; }
  double sum_seconds() const noexcept { return static_cast<double>(sum_ns_) / 1e9; }

  bool operator==(const Histogram&) const = default;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t sum_ns_ = 0;
  std::uint64_t count_ = 0;
};

// What one worker publishes about itself: gauges are values at the moment it was filled, counters
// are monotonic since the start. Filled once a second by the worker, from its own thread.
struct WorkerStats {
  std::uint16_t worker = 0;
  // Gauges
  std::uint64_t connections = 0;        // open network connections (MQTT connected or not)
  std::uint64_t clients_connected = 0;  // MQTT sessions with a connection
  std::uint64_t sessions = 0;           // sessions kept (online and offline)
  std::uint64_t subscriptions = 0;
  std::uint64_t queued_messages = 0;    // QoS 1/2 messages waiting in session queues
  std::uint64_t inflight_messages = 0;  // sent, not yet acknowledged
  // Counters (monotonic since start)
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_closed = 0;
  std::array<std::uint64_t, 3> messages_received{};       // PUBLISH from clients, by QoS
  std::array<std::uint64_t, 3> messages_sent{};           // PUBLISH to clients, by QoS
  std::array<std::uint64_t, 3> publish_bytes_received{};  // payload bytes of those, by QoS
  std::array<std::uint64_t, 3> publish_bytes_sent{};
  std::uint64_t bytes_received = 0;  // network bytes, all packets (after TLS/WebSocket: MQTT bytes)
  std::uint64_t bytes_sent = 0;
  // Deliveries dropped, by cause
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t dropped_slow_qos0 = 0;
  std::uint64_t dropped_offline_qos0 = 0;
  std::uint64_t dropped_too_large = 0;
  std::uint64_t dropped_expired = 0;
  std::uint64_t dropped_acl = 0;
  // Connections refused or closed, by reason
  std::uint64_t refused_auth = 0;       // bad password / user / anonymous not allowed
  std::uint64_t refused_tls = 0;        // TLS handshake failed
  std::uint64_t refused_websocket = 0;  // bad WebSocket upgrade
  std::uint64_t refused_proxy = 0;      // missing/bad PROXY header
  std::uint64_t protocol_errors = 0;    // closed for a protocol violation
  std::uint64_t rate_disconnects = 0;   // closed for exceeding the publish rate
  std::uint64_t denied_publish = 0;
  std::uint64_t denied_subscribe = 0;
  Histogram loop_latency;  // time from epoll_wait's return to the end of the turn's work
};

// Process-wide values, filled by the reader (the server) when it renders.
struct ServerStats {
  // Counters
  std::uint64_t refused_max_connections = 0;
  std::uint64_t refused_max_connections_per_address = 0;
  // Gauges
  std::uint64_t retained_messages = 0;
  std::uint64_t retained_bytes = 0;
  // Each committed write of the store: write + sync time.
  Histogram store_write_latency;
  std::uint64_t store_batches = 0;  // counter
  std::chrono::seconds uptime{0};
  std::string version;  // e.g. "0.1.0"
};

// The latest WorkerStats of every worker of a group: workers write their own slot, readers copy
// them all.
//
// Threading: Thread-safe. Each slot has its own mutex, so a worker's Publish() waits at most for
//            one reader copying that slot, never for the other workers.
// Lifetime:  Read() returns copies.
// Errors:    none.
class StatsBoard {
 public:
  // REQUIRES: workers >= 1.
  explicit StatsBoard(std::uint16_t workers);
  StatsBoard(const StatsBoard&) = delete;
  StatsBoard& operator=(const StatsBoard&) = delete;

  std::uint16_t size() const noexcept { return size_; }

  // Replaces the slot of `stats.worker` with a copy of `stats`.
  // REQUIRES: stats.worker < size().
  void Publish(const WorkerStats& stats);
  // Copies of every slot, by worker index. A worker that has not published yet reads as zeros
  // (with its `worker` index set).
  std::vector<WorkerStats> Read() const;

 private:
  struct Slot {
    mutable std::mutex mu;
    WorkerStats stats;  // Guarded by mu.
  };

  // Const after construction.
  std::uint16_t size_;
  std::unique_ptr<Slot[]> slots_;
};

// The metrics in the Prometheus text exposition format 0.0.4 (what GET /metrics returns). Sums
// over the workers, except tinymq_worker_loop_seconds, which has one histogram per worker (label
// worker="N"). docs/metrics.md lists every family.
//
// REQUIRES: the `worker` fields of `workers` are distinct (StatsBoard::Read() gives that).
std::string RenderPrometheus(const std::vector<WorkerStats>& workers, const ServerStats& server);

// Mosquitto-compatible $SYS/ topics: turns the stats into (topic, payload) pairs for the caller to
// publish as retained QoS 0 messages. Like Mosquitto it returns only the topics whose payload
// changed since the previous Update() (the first returns them all), and keeps 1, 5 and 15 minute
// load averages: per-minute rates smoothed as exponential moving averages.
//
// Threading: Thread-compatible (one caller at a time: the thread that runs the $SYS/ timer).
// Lifetime:  returned pairs own their strings.
// Errors:    none.
class SysTopics {
 public:
  // The periods of the load averages (the 1min, 5min and 15min topics), in seconds.
  static constexpr std::array<double, 3> kLoadPeriodsS = {60.0, 300.0, 900.0};

  // `version` without the name, e.g. "0.1.0": $SYS/broker/version reads "tinymq 0.1.0".
  explicit SysTopics(std::string version);

  // The topics whose payload changed since the previous call (all of them on the first), in a
  // fixed order. `now` is the time of this update; the load averages fold in what the counters
  // gained since the previous call, over the time between the two (nothing when `now` is not
  // later than the previous call's: the gain then counts in the next update).
  std::vector<std::pair<std::string, std::string>> Update(
      const std::vector<WorkerStats>& workers, const ServerStats& server,
      std::chrono::steady_clock::time_point now);

 private:
  // The counters behind the load topics, in the order of kLoadNames in metrics.cc.
  static constexpr std::size_t kLoads = 9;
  struct Load {
    std::uint64_t last = 0;              // the counter at the previous update
    std::array<double, 3> average = {};  // per minute: 1, 5, 15 minute averages
  };

  // Const after construction.
  std::string version_;
  // Changed by Update() only (one caller at a time).
  bool started_ = false;
  std::chrono::steady_clock::time_point last_update_{};
  std::uint64_t max_connected_ = 0;
  std::array<Load, kLoads> loads_{};
  std::vector<std::string> last_payloads_;  // by topic, in the order Update() builds them
};

}  // namespace tinymq::server
