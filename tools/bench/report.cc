#include "tools/bench/report.h"

#include <fmt/format.h>

#include <string_view>

namespace tinymq::bench {
namespace {

double Us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

double PerSecond(double n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// Appends `"key": value` pairs, comma-separated.
class JsonObject {
 public:
  void Raw(std::string_view key, std::string_view value) {
    out_ += first_ ? "{" : ", ";
    first_ = false;
    out_ += JsonString(key);
    out_ += ": ";
    out_ += value;
  }
  void Str(std::string_view key, std::string_view value) { Raw(key, JsonString(value)); }
  void Int(std::string_view key, std::uint64_t value) { Raw(key, fmt::format("{}", value)); }
  void Num(std::string_view key, double value) { Raw(key, fmt::format("{:.3f}", value)); }
  void Bool(std::string_view key, bool value) { Raw(key, value ? "true" : "false"); }
  std::string Done() { return out_ + "}"; }

 private:
  std::string out_;
  bool first_ = true;
};

}  // namespace

double Report::PublishRate() const { return PerSecond(static_cast<double>(published), measured_s); }
double Report::DeliveredRate() const {
  return PerSecond(static_cast<double>(delivered), measured_s);
}
double Report::ConnectRate() const {
  return PerSecond(static_cast<double>(connections), connect_s);
}

std::string FormatSummary(const Report& r) {
  const Options& o = r.options;
  std::string s =
      fmt::format("scenario={} mqtt={}", ScenarioName(o.scenario), VersionName(o.version));
  if (o.websocket) {
    s += " transport=websocket";
  }
  if (o.scenario == Scenario::kConn) {
    s += fmt::format(
        " connections={} connect={:.2f}s conn/s={:.0f} duration={:.1f}s stayed_up={}"
        " closed={}",
        r.connections, r.connect_s, r.ConnectRate(), r.measured_s, r.stayed_up, r.lost_connections);
  } else {
    s += fmt::format(" qos={} payload={} publishers={} subscribers={}", static_cast<int>(o.qos),
                     o.payload, o.publishers, o.subscribers);
    if (o.idle_topics > 0) {
      s += fmt::format(" idle_topics={}", o.idle_topics);
    }
    s += fmt::format(" rate={:.0f}", o.rate);
    if (o.qos != mqtt::QoS::k0) {
      s += fmt::format(" inflight={}", o.inflight);
    }
    s += fmt::format(
        " duration={:.1f}s sent={} published={} delivered={} pub/s={:.0f} msg/s={:.0f}"
        " p50={:.1f}us p99={:.1f}us p99.9={:.1f}us max={:.1f}us loss={} dup={} ooo={}",
        r.measured_s, r.sent, r.published, r.delivered, r.PublishRate(), r.DeliveredRate(),
        Us(r.p50_ns), Us(r.p99_ns), Us(r.p999_ns), Us(r.max_ns), r.loss, r.duplicates,
        r.out_of_order);
    if (r.refused > 0) {
      s += fmt::format(" refused={}", r.refused);
    }
    if (!r.drained) {
      s += fmt::format(" drain=timeout({:.1f}s)", o.drain_s);
    }
    if (r.lost_connections > 0) {
      s += fmt::format(" closed={}", r.lost_connections);
    }
  }
  if (r.broker_cpu_s) {
    s += fmt::format(" broker_cpu={:.2f}s", *r.broker_cpu_s);
    if (o.scenario != Scenario::kConn && r.delivered > 0) {
      s += fmt::format(" cpu/msg={:.2f}us",
                       *r.broker_cpu_s * 1e6 / static_cast<double>(r.delivered));
    }
  }
  if (r.interrupted) {
    s += " interrupted";
  }
  return s;
}

std::string FormatJson(const Report& r) {
  const Options& o = r.options;
  JsonObject j;
  j.Str("scenario", ScenarioName(o.scenario));
  j.Str("mqtt", VersionName(o.version));
  j.Str("host", o.host);
  j.Int("port", o.port);
  j.Str("transport", o.websocket ? "websocket" : "tcp");
  if (o.websocket) {
    j.Str("ws_path", o.ws_path);
  }
  j.Int("threads", o.threads);
  j.Int("connections", r.connections);
  j.Num("connect_s", r.connect_s);
  j.Num("connect_rate", r.ConnectRate());
  j.Num("duration_s", r.measured_s);
  j.Num("warmup_s", o.warmup_s);
  j.Bool("interrupted", r.interrupted);
  j.Int("closed_connections", r.lost_connections);
  if (!r.lost_reason.empty()) {
    j.Str("closed_reason", r.lost_reason);
  }
  if (o.scenario == Scenario::kConn) {
    j.Int("stayed_up", r.stayed_up);
  } else {
    j.Int("qos", static_cast<std::uint64_t>(o.qos));
    j.Int("payload", o.payload);
    j.Num("rate", o.rate);
    j.Int("inflight", o.inflight);
    j.Int("publishers", o.publishers);
    j.Int("subscribers", o.subscribers);
    j.Int("subscribers_per_message", o.SubscribersPerMessage());
    j.Int("idle_topics", o.idle_topics);
    j.Str("topic_prefix", o.topic_prefix);
    j.Int("sent", r.sent);
    j.Int("published", r.published);
    j.Int("refused", r.refused);
    j.Int("expected", r.expected);
    j.Int("delivered", r.delivered);
    j.Int("loss", r.loss);
    j.Int("duplicates", r.duplicates);
    j.Int("out_of_order", r.out_of_order);
    j.Int("foreign", r.foreign);
    j.Num("publish_rate", r.PublishRate());
    j.Num("delivered_rate", r.DeliveredRate());
    j.Int("latency_samples", r.latency_samples);
    j.Num("p50_us", Us(r.p50_ns));
    j.Num("p99_us", Us(r.p99_ns));
    j.Num("p999_us", Us(r.p999_ns));
    j.Num("max_us", Us(r.max_ns));
    j.Num("mean_us", r.mean_ns / 1000.0);
    j.Bool("drained", r.drained);
    j.Num("drain_s", r.drain_s);
  }
  if (r.broker_cpu_s) {
    j.Num("broker_cpu_s", *r.broker_cpu_s);
    if (o.scenario != Scenario::kConn && r.delivered > 0) {
      j.Num("broker_cpu_us_per_delivery", *r.broker_cpu_s * 1e6 / static_cast<double>(r.delivered));
    }
  }
  return j.Done();
}

}  // namespace tinymq::bench
