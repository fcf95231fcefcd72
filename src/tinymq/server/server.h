#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/config/config.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/signal_fd.h"
#include "tinymq/server/worker.h"
#include "tinymq/util/result.h"

// Server: a running tinymq built from a Config: `workers` worker threads (default: one per core),
// each with its own socket of every listener (SO_REUSEPORT) and its own broker, and SIGINT/SIGTERM
// handling (a signalfd read by the calling thread, which then tells every worker to stop).
//
// Threading: Owned by one thread; not thread-safe. Create() blocks SIGINT and SIGTERM in the
//            calling thread (the workers inherit the mask); create the Server before starting
//            other threads.
// Lifetime:  owns everything it builds; destroying it closes every socket and unblocks the
//            signals again.
// Errors:    Create() returns one line naming the cause, e.g.
//            "127.0.0.1:1883: address already in use"; Run() fails only if the event loop does.

namespace tinymq::server {

// The broker's limits from the configuration's. `client_id_seed` seeds generated client ids.
broker::Limits ToBrokerLimits(const config::LimitsConfig& limits, const config::MqttConfig& mqtt,
                              std::uint64_t client_id_seed);

class Server {
 public:
  static util::Result<Server, std::string> Create(const config::Config& config);

  // The listening addresses with their actual ports, e.g. {"127.0.0.1:1883", "[::1]:1883"}.
  const std::vector<std::string>& addresses() const { return addresses_; }

  std::size_t worker_count() const { return workers_.size(); }

  // Serves clients until SIGINT or SIGTERM (or a worker fails); then every worker closes its
  // connections, and Run() returns when all have stopped.
  util::Result<void, std::string> Run() noexcept;

 private:
  Server(net::SignalFd signals, net::Fd worker_ended, std::unique_ptr<WorkerGroup> group,
         std::vector<std::unique_ptr<Worker>> workers, std::vector<std::string> addresses)
      : signals_(std::move(signals)),
        worker_ended_(std::move(worker_ended)),
        group_(std::move(group)),
        workers_(std::move(workers)),
        addresses_(std::move(addresses)) {}

  net::SignalFd signals_;
  net::Fd worker_ended_;  // an eventfd a worker thread writes when its Run() returns
  // Before the workers, so that it outlives them.
  std::unique_ptr<WorkerGroup> group_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::string> addresses_;
};

// The worker count `configured` means: itself, or 0 for one per core (at least one).
std::uint16_t ResolveWorkerCount(std::uint16_t configured);

}  // namespace tinymq::server
