#include "tinymq/server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "tinymq/util/check.h"

namespace tinymq::server {

namespace {

// ---- Histogram and sums -----------------------------------------------------------------------

std::uint64_t SumOf(const std::vector<WorkerStats>& workers, std::uint64_t WorkerStats::*field) {
  std::uint64_t sum = 0;
  for (const WorkerStats& w : workers) {
    sum += w.*field;
  }
  return sum;
}

std::uint64_t SumOf(const std::vector<WorkerStats>& workers,
                    std::array<std::uint64_t, 3> WorkerStats::*field, std::size_t qos) {
  std::uint64_t sum = 0;
  for (const WorkerStats& w : workers) {
    sum += (w.*field)[qos];
  }
  return sum;
}

std::uint64_t SumOf(const std::vector<WorkerStats>& workers,
                    std::array<std::uint64_t, 3> WorkerStats::*field) {
  return SumOf(workers, field, 0) + SumOf(workers, field, 1) + SumOf(workers, field, 2);
}

// Deliveries lost on the way to a subscriber that wanted them: every cause but the ACL (a
// delivery the subscriber may not read was never meant for it). Mosquitto's "dropped" counts
// only its queue limits; these are our equivalents of those and of the other losses.
std::uint64_t DroppedOf(const std::vector<WorkerStats>& workers) {
  return SumOf(workers, &WorkerStats::dropped_queue_full) +
         SumOf(workers, &WorkerStats::dropped_slow_qos0) +
         SumOf(workers, &WorkerStats::dropped_offline_qos0) +
         SumOf(workers, &WorkerStats::dropped_too_large) +
         SumOf(workers, &WorkerStats::dropped_expired);
}

// ---- Prometheus text format -------------------------------------------------------------------

// Whole nanoseconds as seconds, exactly: "0", "1.5", "0.000000001".
std::string Seconds(std::uint64_t ns) {
  constexpr std::uint64_t kPerSecond = 1'000'000'000;
  std::string s = fmt::format("{}", ns / kPerSecond);
  const std::uint64_t fraction = ns % kPerSecond;
  if (fraction != 0) {
    std::string digits = fmt::format("{:09}", fraction);
    digits.erase(digits.find_last_not_of('0') + 1);
    s += '.';
    s += digits;
  }
  return s;
}

// Text format 0.0.4: a label value escapes backslash, double quote and line feed.
std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c; break;
    }
  }
  return out;
}

// Builds the exposition text. Each family is written whole (HELP, TYPE, then its samples) before
// the next begins, as the format requires.
class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  // `labels`: `a="x",b="y"` (already escaped), or empty.
  void Sample(std::string_view name, std::string_view labels, std::string_view value) {
    if (labels.empty()) {
      fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
    } else {
      fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
  }
  void Sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    Sample(name, labels, std::string_view(fmt::format("{}", value)));
  }
  // One family with a single unlabelled sample.
  void Single(std::string_view name, std::string_view type, std::string_view help,
              std::uint64_t value) {
    Family(name, type, help);
    Sample(name, {}, value);
  }
  // The samples of one histogram: cumulative buckets, sum and count. `labels` as Sample's.
  void HistogramSamples(std::string_view name, std::string_view labels, const Histogram& h) {
    const std::string bucket = fmt::format("{}_bucket", name);
    const std::string separator = labels.empty() ? "" : ",";
    for (std::size_t i = 0; i < Histogram::kBuckets; ++i) {
      Sample(bucket, fmt::format("{}{}le=\"{}\"", labels, separator, Histogram::kLabels[i]),
             h.Cumulative(i));
    }
    Sample(fmt::format("{}_sum", name), labels, Seconds(h.sum_ns()));
    Sample(fmt::format("{}_count", name), labels, h.count());
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// ---- $SYS/ topics -----------------------------------------------------------------------------

// The load topics ($SYS/broker/load/<name>/1min ...), in the order of SysTopics::loads_.
constexpr std::array<std::string_view, 9> kLoadNames = {
    "messages/received", "messages/sent", "publish/received", "publish/sent", "publish/dropped",
    "bytes/received",    "bytes/sent",    "connections",      "sockets"};
constexpr std::array<std::string_view, 3> kLoadSuffixes = {"1min", "5min", "15min"};

}  // namespace

// ---- Histogram ----------------------------------------------------------------------------------

void Histogram::Observe(std::chrono::nanoseconds d) noexcept {
  const std::chrono::nanoseconds clamped = std::max(d, std::chrono::nanoseconds{0});
  // The first bound >= d: Prometheus buckets are "less than or equal".
  const auto* bound = std::lower_bound(kBounds.begin(), kBounds.end(), clamped);
  ++counts_[static_cast<std::size_t>(bound - kBounds.begin())];
  sum_ns_ += static_cast<std::uint64_t>(clamped.count());
  ++count_;
}

void Histogram::Merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    counts_[i] += other.counts_[i];
  }
  sum_ns_ += other.sum_ns_;
  count_ += other.count_;
}

std::uint64_t Histogram::Cumulative(std::size_t i) const noexcept {
  std::uint64_t sum = 0;
  for (std::size_t j = 0; j <= i && j < kBuckets; ++j) {
    sum += counts_[j];
  }
  return sum;
}

// ---- StatsBoard ---------------------------------------------------------------------------------

StatsBoard::StatsBoard(std::uint16_t workers)
    : size_(workers), slots_(std::make_unique<Slot[]>(workers)) {
  TINYMQ_CHECK(workers >= 1);
  for (std::uint16_t i = 0; i < workers; ++i) {
    slots_[i].stats.worker = i;
  }
}

void StatsBoard::Publish(const WorkerStats& stats) {
  TINYMQ_CHECK(stats.worker < size_);
  Slot& slot = slots_[stats.worker];
  const std::lock_guard<std::mutex> lock(slot.mu);
  slot.stats = stats;
}

std::vector<WorkerStats> StatsBoard::Read() const {
  std::vector<WorkerStats> out;
  out.reserve(size_);
  for (std::uint16_t i = 0; i < size_; ++i) {
    const std::lock_guard<std::mutex> lock(slots_[i].mu);
    out.push_back(slots_[i].stats);
  }
  return out;
}

// ---- RenderPrometheus ---------------------------------------------------------------------------

std::string RenderPrometheus(const std::vector<WorkerStats>& workers, const ServerStats& server) {
  const auto sum = [&](std::uint64_t WorkerStats::*field) { return SumOf(workers, field); };
  Exposition e;

  e.Family("tinymq_build_info", "gauge", "Always 1; the version of tinymq is its label.");
  e.Sample("tinymq_build_info", fmt::format("version=\"{}\"", EscapeLabelValue(server.version)),
           std::uint64_t{1});
  e.Single("tinymq_uptime_seconds", "gauge", "Seconds since the broker started.",
           static_cast<std::uint64_t>(std::max<std::int64_t>(server.uptime.count(), 0)));

  // Gauges.
  e.Single("tinymq_connections", "gauge",
           "Open network connections, whether their client has sent CONNECT or not.",
           sum(&WorkerStats::connections));
  e.Single("tinymq_clients_connected", "gauge", "MQTT sessions that have a connection.",
           sum(&WorkerStats::clients_connected));
  e.Single("tinymq_sessions", "gauge", "Sessions kept, connected or not.",
           sum(&WorkerStats::sessions));
  e.Single("tinymq_subscriptions", "gauge", "Subscriptions of all sessions.",
           sum(&WorkerStats::subscriptions));
  e.Single("tinymq_queued_messages", "gauge",
           "QoS 1 and 2 messages waiting in session queues, not yet sent.",
           sum(&WorkerStats::queued_messages));
  e.Single("tinymq_inflight_messages", "gauge",
           "QoS 1 and 2 messages sent to clients and not yet acknowledged.",
           sum(&WorkerStats::inflight_messages));
  e.Single("tinymq_retained_messages", "gauge", "Retained messages kept.",
           server.retained_messages);
  e.Single("tinymq_retained_bytes", "gauge", "Payload bytes of the retained messages kept.",
           server.retained_bytes);

  // Connections.
  e.Single("tinymq_connections_accepted_total", "counter", "Network connections accepted.",
           sum(&WorkerStats::connections_accepted));
  e.Single("tinymq_connections_closed_total", "counter",
           "Network connections closed, for any reason.", sum(&WorkerStats::connections_closed));
  e.Family("tinymq_connections_refused_total", "counter",
           "Connections refused before their session began, by reason.");
  const std::pair<std::string_view, std::uint64_t> refused[] = {
      {"auth", sum(&WorkerStats::refused_auth)},
      {"tls", sum(&WorkerStats::refused_tls)},
      {"websocket", sum(&WorkerStats::refused_websocket)},
      {"proxy", sum(&WorkerStats::refused_proxy)},
      {"max_connections", server.refused_max_connections},
      {"max_connections_per_address", server.refused_max_connections_per_address},
  };
  for (const auto& [reason, value] : refused) {
    e.Sample("tinymq_connections_refused_total", fmt::format("reason=\"{}\"", reason), value);
  }
  e.Family("tinymq_forced_disconnects_total", "counter",
           "Connections the broker closed because of what their client did, by reason.");
  e.Sample("tinymq_forced_disconnects_total", "reason=\"protocol_error\"",
           sum(&WorkerStats::protocol_errors));
  e.Sample("tinymq_forced_disconnects_total", "reason=\"rate\"",
           sum(&WorkerStats::rate_disconnects));

  // Messages and bytes.
  e.Family("tinymq_messages_received_total", "counter", "PUBLISH packets received, by QoS.");
  for (std::size_t qos = 0; qos < 3; ++qos) {
    e.Sample("tinymq_messages_received_total", fmt::format("qos=\"{}\"", qos),
             SumOf(workers, &WorkerStats::messages_received, qos));
  }
  e.Family("tinymq_messages_sent_total", "counter", "PUBLISH packets sent, by QoS.");
  for (std::size_t qos = 0; qos < 3; ++qos) {
    e.Sample("tinymq_messages_sent_total", fmt::format("qos=\"{}\"", qos),
             SumOf(workers, &WorkerStats::messages_sent, qos));
  }
  e.Family("tinymq_publish_bytes_received_total", "counter",
           "Payload bytes of the PUBLISH packets received, by QoS.");
  for (std::size_t qos = 0; qos < 3; ++qos) {
    e.Sample("tinymq_publish_bytes_received_total", fmt::format("qos=\"{}\"", qos),
             SumOf(workers, &WorkerStats::publish_bytes_received, qos));
  }
  e.Family("tinymq_publish_bytes_sent_total", "counter",
           "Payload bytes of the PUBLISH packets sent, by QoS.");
  for (std::size_t qos = 0; qos < 3; ++qos) {
    e.Sample("tinymq_publish_bytes_sent_total", fmt::format("qos=\"{}\"", qos),
             SumOf(workers, &WorkerStats::publish_bytes_sent, qos));
  }
  e.Single("tinymq_bytes_received_total", "counter",
           "MQTT bytes received, all packets (after TLS and WebSocket decoding).",
           sum(&WorkerStats::bytes_received));
  e.Single("tinymq_bytes_sent_total", "counter",
           "MQTT bytes sent, all packets (before TLS and WebSocket encoding).",
           sum(&WorkerStats::bytes_sent));

  e.Family("tinymq_dropped_deliveries_total", "counter",
           "Deliveries to subscribers that were dropped, by cause.");
  const std::pair<std::string_view, std::uint64_t> dropped[] = {
      {"queue_full", sum(&WorkerStats::dropped_queue_full)},
      {"slow_qos0", sum(&WorkerStats::dropped_slow_qos0)},
      {"offline_qos0", sum(&WorkerStats::dropped_offline_qos0)},
      {"too_large", sum(&WorkerStats::dropped_too_large)},
      {"expired", sum(&WorkerStats::dropped_expired)},
      {"acl", sum(&WorkerStats::dropped_acl)},
  };
  for (const auto& [cause, value] : dropped) {
    e.Sample("tinymq_dropped_deliveries_total", fmt::format("cause=\"{}\"", cause), value);
  }
  e.Family("tinymq_acl_denied_total", "counter",
           "PUBLISH packets and subscription filters the ACL refused, by action.");
  e.Sample("tinymq_acl_denied_total", "action=\"publish\"", sum(&WorkerStats::denied_publish));
  e.Sample("tinymq_acl_denied_total", "action=\"subscribe\"", sum(&WorkerStats::denied_subscribe));

  // Latencies.
  e.Family("tinymq_worker_loop_seconds", "histogram",
           "Time a worker's loop turn spent working, from epoll_wait's return to the end of the "
           "turn, by worker.");
  for (const WorkerStats& w : workers) {
    e.HistogramSamples("tinymq_worker_loop_seconds", fmt::format("worker=\"{}\"", w.worker),
                       w.loop_latency);
  }
  e.Family("tinymq_store_write_seconds", "histogram",
           "Time each committed write to the store took, sync included.");
  e.HistogramSamples("tinymq_store_write_seconds", {}, server.store_write_latency);
  e.Single("tinymq_store_batches_total", "counter", "Batches of writes committed to the store.",
           server.store_batches);
  return e.Take();
}

// ---- SysTopics ----------------------------------------------------------------------------------

SysTopics::SysTopics(std::string version) : version_(std::move(version)) {}

std::vector<std::pair<std::string, std::string>> SysTopics::Update(
    const std::vector<WorkerStats>& workers, const ServerStats& server,
    std::chrono::steady_clock::time_point now) {
  const auto sum = [&](std::uint64_t WorkerStats::*field) { return SumOf(workers, field); };
  const std::uint64_t connected = sum(&WorkerStats::clients_connected);
  const std::uint64_t sessions = sum(&WorkerStats::sessions);
  // Counted on different threads at slightly different moments: never below zero.
  const std::uint64_t disconnected = sessions > connected ? sessions - connected : 0;
  max_connected_ = std::max(max_connected_, connected);
  const std::uint64_t received = SumOf(workers, &WorkerStats::messages_received);
  const std::uint64_t sent = SumOf(workers, &WorkerStats::messages_sent);
  const std::uint64_t dropped = DroppedOf(workers);
  const std::uint64_t stored = server.retained_messages + sum(&WorkerStats::queued_messages);

  // The load averages (Mosquitto's sys_tree.c method): the counter's gain since the previous
  // update as a rate per minute, folded into each average with weight 1 - exp(-interval/period).
  const std::array<std::uint64_t, kLoads> counters = {
      received,
      sent,
      received,
      sent,
      dropped,
      sum(&WorkerStats::bytes_received),
      sum(&WorkerStats::bytes_sent),
      sum(&WorkerStats::connections_accepted),
      sum(&WorkerStats::connections_accepted),
  };
  if (!started_) {
    for (std::size_t i = 0; i < kLoads; ++i) {
      loads_[i].last = counters[i];
    }
    last_update_ = now;
    started_ = true;
  } else if (now > last_update_) {
    const double interval = std::chrono::duration<double>(now - last_update_).count();
    for (std::size_t i = 0; i < kLoads; ++i) {
      Load& load = loads_[i];
      const std::uint64_t gain = counters[i] >= load.last ? counters[i] - load.last : 0;
      const double per_minute = static_cast<double>(gain) * 60.0 / interval;
      for (std::size_t p = 0; p < kLoadPeriodsS.size(); ++p) {
        const double keep = std::exp(-interval / kLoadPeriodsS[p]);
        load.average[p] = keep * load.average[p] + (1.0 - keep) * per_minute;
      }
      load.last = counters[i];
    }
    last_update_ = now;
  }

  const auto integer = [](std::uint64_t v) { return fmt::format("{}", v); };
  std::vector<std::pair<std::string, std::string>> all;
  all.reserve(22 + kLoads * 3);
  const auto add = [&](std::string_view topic, std::string payload) {
    all.emplace_back(fmt::format("$SYS/broker/{}", topic), std::move(payload));
  };
  add("version", "tinymq " + version_);
  add("uptime", fmt::format("{} seconds", std::max<std::int64_t>(server.uptime.count(), 0)));
  add("clients/connected", integer(connected));
  add("clients/active", integer(connected));  // Mosquitto's deprecated alias
  add("clients/disconnected", integer(disconnected));
  add("clients/inactive", integer(disconnected));  // Mosquitto's deprecated alias
  add("clients/total", integer(sessions));
  add("clients/maximum", integer(max_connected_));
  add("messages/received", integer(received));  // Mosquitto: packets of every type
  add("messages/sent", integer(sent));
  add("messages/stored", integer(stored));
  add("store/messages/count", integer(stored));
  add("store/messages/bytes", integer(server.retained_bytes));
  add("retained messages/count", integer(server.retained_messages));  // the space is Mosquitto's
  add("subscriptions/count", integer(sum(&WorkerStats::subscriptions)));
  add("publish/messages/received", integer(received));
  add("publish/messages/sent", integer(sent));
  add("publish/messages/dropped", integer(dropped));
  add("publish/bytes/received", integer(SumOf(workers, &WorkerStats::publish_bytes_received)));
  add("publish/bytes/sent", integer(SumOf(workers, &WorkerStats::publish_bytes_sent)));
  add("bytes/received", integer(sum(&WorkerStats::bytes_received)));
  add("bytes/sent", integer(sum(&WorkerStats::bytes_sent)));
  for (std::size_t i = 0; i < kLoads; ++i) {
    for (std::size_t p = 0; p < kLoadSuffixes.size(); ++p) {
      add(fmt::format("load/{}/{}", kLoadNames[i], kLoadSuffixes[p]),
          fmt::format("{:.2f}", loads_[i].average[p]));
    }
  }

  // Only what changed (Mosquitto republishes a value when it differs from the last one sent).
  std::vector<std::pair<std::string, std::string>> changed;
  if (last_payloads_.size() != all.size()) {
    last_payloads_.assign(all.size(), std::string());
    changed = all;
  } else {
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (all[i].second != last_payloads_[i]) {
        changed.push_back(all[i]);
      }
    }
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    last_payloads_[i] = std::move(all[i].second);
  }
  return changed;
}

}  // namespace tinymq::server
