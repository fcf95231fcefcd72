#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/config/config.h"
#include "tinymq/net/signal_fd.h"
#include "tinymq/server/worker.h"
#include "tinymq/util/result.h"

// Server: a running tinymq built from a Config: the listeners, the worker that serves them, and
// SIGINT/SIGTERM handling (a signalfd, so a signal stops the loop cleanly instead of killing the
// process). Today one worker on the calling thread serves every listener.
//
// Threading: Owned by one thread; not thread-safe. Create() blocks SIGINT and SIGTERM in the
//            calling thread; create the Server before starting other threads.
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

  // Serves clients until SIGINT or SIGTERM; then closes every connection and returns.
  util::Result<void, std::string> Run() noexcept;

 private:
  Server(net::SignalFd signals, std::unique_ptr<Worker> worker, std::vector<std::string> addresses)
      : signals_(std::move(signals)),
        worker_(std::move(worker)),
        addresses_(std::move(addresses)) {}

  net::SignalFd signals_;
  std::unique_ptr<Worker> worker_;
  std::vector<std::string> addresses_;
};

}  // namespace tinymq::server
