#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tinymq/mqtt/types.h"
#include "tinymq/util/result.h"

// The command line of tinymq-bench, validated: what to run, against which broker, for how long.
// Every option and its bounds is in tools/bench/README.md.
//
// Threading: Immutable after construction; safe to share across threads.
// Errors:    ParseCommandLine returns a one-line message naming the bad option (exit status 2).

namespace tinymq::bench {

enum class Scenario : std::uint8_t {
  kFanIn,   // P publishers on <prefix>/p<i>, S subscribers on <prefix>/#
  kFanOut,  // 1 publisher on <prefix>/fanout, S subscribers on that topic
  kPairs,   // publisher i on <prefix>/pair/<i>, subscriber i on that topic; idle subscriptions
  kConn,    // N idle connections held with keep-alive
};

std::string_view ScenarioName(Scenario scenario);

// Connections tinymq-bench opens at most in one run.
inline constexpr std::uint32_t kMaxConnections = 15000;
// Idle subscriptions (pairs --idle-topics) one idle subscriber connection holds.
inline constexpr std::uint32_t kIdleTopicsPerConnection = 1000;

struct Options {
  Scenario scenario = Scenario::kFanIn;
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  mqtt::QoS qos = mqtt::QoS::k0;
  std::uint32_t payload = 64;   // bytes, >= kStampSize
  double rate = 0;              // messages per second over all publishers; 0: flow control only
  std::uint32_t inflight = 32;  // unacknowledged QoS 1/2 messages per publisher

  std::uint32_t publishers = 0;   // fanin: P; fanout: 1; pairs: the pairs; conn: 0
  std::uint32_t subscribers = 0;  // fanin, fanout: S; pairs: the pairs; conn: 0
  std::uint32_t idle_topics = 0;  // fanin, fanout, pairs
  std::uint32_t connections = 0;  // conn only

  double duration_s = 10;
  double warmup_s = 1;
  double drain_s = 2;
  std::uint16_t keepalive_s = 30;
  std::uint32_t threads = 1;

  std::string topic_prefix;      // default: tmqb/<run id>
  std::string client_id_prefix;  // default: tmqb-<run id>-
  std::string json_file;         // empty: no JSON; "-": stdout
  int broker_pid = 0;            // 0: do not measure the broker's CPU time
  bool quiet = false;            // no progress lines
  // Persistent sessions (3.1.1 Clean Session 0; 5.0 Clean Start 1 with a Session Expiry
  // Interval of an hour), so that a broker with a store writes what it queues.
  bool persistent = false;
  // MQTT over WebSocket (RFC 6455, subprotocol "mqtt"): an HTTP upgrade to ws_path after the TCP
  // connect, then masked binary frames.
  bool websocket = false;
  std::string ws_path = "/mqtt";

  std::uint32_t IdleSubscriberConnections() const;
  // Every connection the run opens.
  std::uint32_t TotalConnections() const;
  // Subscribers that should receive each message.
  std::uint32_t SubscribersPerMessage() const;
  bool IsMessageScenario() const { return scenario != Scenario::kConn; }
};

struct CommandLine {
  enum class Action : std::uint8_t { kRun, kPrintHelp };
  Action action = Action::kRun;
  Options options;
  std::string help;
};

// `run_id` names this run in the default topic prefix and client ids (so that runs against the
// same broker never mix).
util::Result<CommandLine, std::string> ParseCommandLine(int argc, const char* const* argv,
                                                        std::string_view run_id);

std::string_view VersionName(mqtt::ProtocolVersion version);

}  // namespace tinymq::bench
