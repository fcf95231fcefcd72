#include "tools/bench/options.h"

// CLI11's header-only code trips GCC 12's -Wnull-dereference once inlined at -O2 (a false
// positive inside std::string in CLI::detail::split); it is not our code to change.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <vector>

#include "tinymq/config/cli_parse.h"
#include "tools/bench/stamp.h"

namespace tinymq::bench {
namespace {

constexpr std::uint32_t kMaxPayload = 16 * 1024 * 1024;
constexpr double kMaxRate = 10'000'000;
constexpr double kMaxDuration = 3600;
constexpr double kMaxWarmup = 600;
constexpr double kMaxDrain = 60;
constexpr std::uint32_t kMaxThreads = 64;
constexpr std::uint32_t kMaxIdleTopics = 1'000'000;

struct ScenarioDefaults {
  std::uint32_t publishers;
  std::uint32_t subscribers;
};

std::string Fmt(double v) {
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') {
    s.pop_back();
  }
  if (!s.empty() && s.back() == '.') {
    s.pop_back();
  }
  return s;
}

// Checks that only the count options of the chosen scenario were given.
std::string CountOptionNotFor(const CLI::App& app, Scenario scenario) {
  struct Rule {
    const char* option;
    bool allowed;
  };
  const Rule rules[] = {
      {"--publishers", scenario == Scenario::kFanIn},
      {"--subscribers", scenario == Scenario::kFanIn || scenario == Scenario::kFanOut},
      {"--pairs", scenario == Scenario::kPairs},
      {"--idle-topics", scenario != Scenario::kConn},
      {"--connections", scenario == Scenario::kConn},
  };
  for (const Rule& r : rules) {
    if (!r.allowed && app.count(r.option) > 0) {
      return r.option;
    }
  }
  return {};
}

util::Result<CommandLine, std::string> Parse(int argc, const char* const* argv,
                                             std::string_view run_id) {
  CLI::App app(
      "tinymq-bench: a load generator for any MQTT broker. Measures delivered messages per "
      "second, loss, duplicates, reordering and publish-to-delivery latency.",
      "tinymq-bench");
  app.allow_extras();
  Options o;
  std::string scenario = "fanin";
  std::string version = "3.1.1";
  int qos = 0;
  std::uint32_t pairs = 10;
  app.add_option("--scenario", scenario, "fanin (default), fanout, pairs or conn")
      ->type_name("NAME");
  app.add_option("--host", o.host, "Broker address or name (default 127.0.0.1)")->type_name("HOST");
  app.add_option("--port", o.port, "Broker TCP port (default 1883)")
      ->type_name("N")
      ->check(CLI::Range(1, 65535));
  app.add_option("--mqtt", version, "Protocol version: 3.1.1 (default) or 5")->type_name("VERSION");
  app.add_option("--qos", qos, "QoS of publishes and subscriptions: 0 (default), 1 or 2")
      ->type_name("N")
      ->check(CLI::Range(0, 2));
  app.add_option("--payload", o.payload,
                 "Payload size in bytes, at least 24 (the stamp); default 64")
      ->type_name("BYTES")
      ->check(CLI::Range(static_cast<std::uint32_t>(kStampSize), kMaxPayload));
  app.add_option("--rate", o.rate,
                 "Messages per second over all publishers; 0 (default): as fast as TCP and "
                 "the QoS 1/2 window allow")
      ->type_name("MSGS_PER_S")
      ->check(CLI::Range(0.0, kMaxRate));
  app.add_option("--inflight", o.inflight,
                 "Unacknowledged QoS 1/2 messages per publisher (default 32)")
      ->type_name("N")
      ->check(CLI::Range(1, 65535));
  app.add_option("--publishers", o.publishers, "fanin: publishers (default 4)")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{1}, kMaxConnections));
  app.add_option("--subscribers", o.subscribers,
                 "fanin: subscribers on <prefix>/# (default 1); fanout: subscribers (default 10)")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{1}, kMaxConnections));
  app.add_option("--pairs", pairs, "pairs: publisher/subscriber pairs (default 10)")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{1}, kMaxConnections / 2));
  app.add_option("--idle-topics", o.idle_topics,
                 "fanin, fanout, pairs: extra subscriptions on as many other topics, held by "
                 "idle subscribers "
                 "(1000 per connection); default 0")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{0}, kMaxIdleTopics));
  app.add_option("--connections", o.connections, "conn: idle connections (default 1000)")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{1}, kMaxConnections));
  app.add_option("--duration", o.duration_s, "Seconds of measurement (default 10)")->type_name("S");
  app.add_option("--warmup", o.warmup_s,
                 "Seconds of load before the measurement, not counted (default 1)")
      ->type_name("S");
  app.add_option("--drain", o.drain_s,
                 "Seconds to wait after sending stops for deliveries in flight (default 2)")
      ->type_name("S");
  app.add_option("--keepalive", o.keepalive_s, "MQTT keep-alive in seconds (default 30; 0: none)")
      ->type_name("S");
  app.add_option("--threads", o.threads,
                 "Threads to spread the connections over, each with its own epoll loop (default 1)")
      ->type_name("N")
      ->check(CLI::Range(std::uint32_t{1}, kMaxThreads));
  app.add_option("--topic-prefix", o.topic_prefix,
                 "Topic prefix (default tmqb/<random run id>, so runs never mix)")
      ->type_name("PREFIX");
  app.add_option("--client-id-prefix", o.client_id_prefix,
                 "Client identifier prefix (default tmqb-<run id>-)")
      ->type_name("PREFIX");
  app.add_option("--json", o.json_file, "Also write the results as one JSON object ('-': stdout)")
      ->type_name("FILE");
  app.add_option("--broker-pid", o.broker_pid,
                 "Process id of a broker on this machine: report its CPU time during the "
                 "measurement (from /proc)")
      ->type_name("PID")
      ->check(CLI::PositiveNumber);
  app.add_flag("-q,--quiet", o.quiet, "No progress lines on stderr");
  app.add_flag("--websocket", o.websocket,
               "MQTT over WebSocket (RFC 6455, subprotocol mqtt): each connection upgrades with "
               "an HTTP request first, then sends masked binary frames");
  app.add_option("--ws-path", o.ws_path, "--websocket: the request path (default /mqtt)")
      ->type_name("PATH");
  app.add_flag("--persistent", o.persistent,
               "Persistent sessions (3.1.1: Clean Session 0, so use client ids no earlier run "
               "left a session for; 5.0: Session Expiry Interval 3600)");

  CommandLine result;
  util::Result<std::optional<std::string>, std::string> parsed =
      config::RunCliParser(app, argc, argv);
  if (!parsed) {
    return util::Unexpected(std::move(parsed.error()));
  }
  if (*parsed) {
    result.action = CommandLine::Action::kPrintHelp;
    result.help = std::move(**parsed);
    return result;
  }

  if (scenario == "fanin") {
    o.scenario = Scenario::kFanIn;
  } else if (scenario == "fanout") {
    o.scenario = Scenario::kFanOut;
  } else if (scenario == "pairs") {
    o.scenario = Scenario::kPairs;
  } else if (scenario == "conn") {
    o.scenario = Scenario::kConn;
  } else {
    return util::Unexpected("--scenario: must be fanin, fanout, pairs or conn, got '" + scenario +
                            "'");
  }
  if (const std::string bad = CountOptionNotFor(app, o.scenario); !bad.empty()) {
    return util::Unexpected(bad + ": does not apply to --scenario " + scenario);
  }
  if (version == "3.1.1" || version == "311" || version == "4") {
    o.version = mqtt::ProtocolVersion::kV311;
  } else if (version == "5" || version == "5.0") {
    o.version = mqtt::ProtocolVersion::kV5;
  } else {
    return util::Unexpected("--mqtt: must be 3.1.1 or 5, got '" + version + "'");
  }
  o.qos = static_cast<mqtt::QoS>(qos);

  switch (o.scenario) {
    case Scenario::kFanIn:
      o.publishers = app.count("--publishers") > 0 ? o.publishers : 4;
      o.subscribers = app.count("--subscribers") > 0 ? o.subscribers : 1;
      break;
    case Scenario::kFanOut:
      o.publishers = 1;
      o.subscribers = app.count("--subscribers") > 0 ? o.subscribers : 10;
      break;
    case Scenario::kPairs:
      o.publishers = pairs;
      o.subscribers = pairs;
      break;
    case Scenario::kConn:
      o.publishers = 0;
      o.subscribers = 0;
      o.connections = app.count("--connections") > 0 ? o.connections : 1000;
      break;
  }

  // Durations: finite, bounded, and a measurement that lasts.
  struct Bound {
    const char* option;
    double value;
    double low;
    double high;
    bool low_open;
  };
  const Bound bounds[] = {{"--duration", o.duration_s, 0, kMaxDuration, true},
                          {"--warmup", o.warmup_s, 0, kMaxWarmup, false},
                          {"--drain", o.drain_s, 0, kMaxDrain, false}};
  for (const Bound& b : bounds) {
    const bool low_ok = b.low_open ? b.value > b.low : b.value >= b.low;
    if (!std::isfinite(b.value) || !low_ok || b.value > b.high) {
      return util::Unexpected(
          std::string(b.option) + ": must be " + (b.low_open ? "above " : "between ") + Fmt(b.low) +
          (b.low_open ? " and at most " : " and ") + Fmt(b.high) + " seconds, got " + Fmt(b.value));
    }
  }
  if (o.scenario == Scenario::kConn) {
    o.warmup_s = 0;
  }
  if (o.TotalConnections() > kMaxConnections) {
    return util::Unexpected("this run needs " + std::to_string(o.TotalConnections()) +
                            " connections; at most " + std::to_string(kMaxConnections) +
                            " are allowed");
  }
  if (o.threads > o.TotalConnections()) {
    o.threads = o.TotalConnections();
  }
  if (o.host.empty()) {
    return util::Unexpected("--host: must not be empty");
  }
  if (app.count("--ws-path") > 0 && !o.websocket) {
    return util::Unexpected("--ws-path: applies to --websocket only");
  }
  // The path goes into the request line as it is: visible ASCII only, starting with '/'.
  if (o.ws_path.empty() || o.ws_path.front() != '/' ||
      !std::all_of(o.ws_path.begin(), o.ws_path.end(),
                   [](char ch) { return ch > ' ' && ch < 127; })) {
    std::string shown = o.ws_path;  // the message stays one line
    std::replace_if(
        shown.begin(), shown.end(), [](char ch) { return ch < ' ' || ch == 127; }, '?');
    return util::Unexpected("--ws-path: must start with / and hold visible ASCII only, got '" +
                            shown + "'");
  }
  if (o.topic_prefix.empty()) {
    o.topic_prefix = "tmqb/" + std::string(run_id);
  } else if (o.topic_prefix.find_first_of("+#") != std::string::npos ||
             o.topic_prefix.back() == '/') {
    return util::Unexpected("--topic-prefix: must not contain + or # nor end with /, got '" +
                            o.topic_prefix + "'");
  }
  if (app.count("--client-id-prefix") == 0) {
    o.client_id_prefix = "tmqb-" + std::string(run_id) + "-";
  }
  result.options = std::move(o);
  return result;
}

}  // namespace

std::string_view ScenarioName(Scenario scenario) {
  switch (scenario) {
    case Scenario::kFanIn: return "fanin";
    case Scenario::kFanOut: return "fanout";
    case Scenario::kPairs: return "pairs";
    case Scenario::kConn: return "conn";
  }
  return "?";
}

std::string_view VersionName(mqtt::ProtocolVersion version) {
  switch (version) {
    case mqtt::ProtocolVersion::kV31: return "3.1";
    case mqtt::ProtocolVersion::kV311: return "3.1.1";
    case mqtt::ProtocolVersion::kV5: return "5";
  }
  return "?";
}

std::uint32_t Options::IdleSubscriberConnections() const {
  if (scenario == Scenario::kConn) {
    return 0;
  }
  return (idle_topics + kIdleTopicsPerConnection - 1) / kIdleTopicsPerConnection;
}

std::uint32_t Options::TotalConnections() const {
  if (scenario == Scenario::kConn) {
    return connections;
  }
  return publishers + subscribers + IdleSubscriberConnections();
}

std::uint32_t Options::SubscribersPerMessage() const {
  switch (scenario) {
    case Scenario::kFanIn:
    case Scenario::kFanOut: return subscribers;
    case Scenario::kPairs: return 1;
    case Scenario::kConn: return 0;
  }
  return 0;
}

util::Result<CommandLine, std::string> ParseCommandLine(int argc, const char* const* argv,
                                                        std::string_view run_id) {
  return Parse(argc, argv, run_id);
}

}  // namespace tinymq::bench
