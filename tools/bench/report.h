#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tools/bench/options.h"

// The outcome of one run and its two printed forms: the one-line summary (stdout) and the JSON
// object (--json). tools/bench/README.md says what each number means.
//
// Threading: Thread-compatible.

namespace tinymq::bench {

struct Report {
  Options options;
  std::uint32_t connections = 0;  // connections opened
  double connect_s = 0;           // from the first connect to the last connection set up
  double measured_s = 0;          // length of the measurement (the --duration, unless cut short)
  bool interrupted = false;       // SIGINT/SIGTERM cut the run short

  // Message scenarios. Counted over messages stamped inside the measurement.
  std::uint64_t sent = 0;          // PUBLISHes written
  std::uint64_t published = 0;     // QoS 0: = sent; QoS 1/2: flows completed (PUBACK / PUBCOMP)
  std::uint64_t refused = 0;       // PUBACK/PUBREC with a failure reason code (5.0), whole run
  std::uint64_t expected = 0;      // sent x subscribers per message
  std::uint64_t delivered = 0;     // distinct deliveries received
  std::uint64_t loss = 0;          // expected - delivered, after the drain
  std::uint64_t duplicates = 0;    // deliveries received again (whole run)
  std::uint64_t out_of_order = 0;  // deliveries after a later one of the same publisher (whole run)
  std::uint64_t foreign = 0;       // PUBLISHes without our stamp
  std::uint64_t latency_samples = 0;
  std::int64_t p50_ns = 0;
  std::int64_t p99_ns = 0;
  std::int64_t p999_ns = 0;
  std::int64_t max_ns = 0;
  double mean_ns = 0;
  bool drained = false;  // every expected delivery and acknowledgement arrived in the drain
  double drain_s = 0;    // how long the drain took

  // Every scenario.
  std::uint64_t lost_connections = 0;  // set-up connections the broker closed before the end
  std::string lost_reason;             // the first one's
  // conn: connections that answered the final PINGREQ after --duration.
  std::uint64_t stayed_up = 0;

  // --broker-pid: the broker's CPU time (user + system) during the measurement.
  std::optional<double> broker_cpu_s;

  double PublishRate() const;    // published / measured_s
  double DeliveredRate() const;  // delivered / measured_s
  double ConnectRate() const;    // connections / connect_s
};

std::string FormatSummary(const Report& report);
std::string FormatJson(const Report& report);

}  // namespace tinymq::bench
