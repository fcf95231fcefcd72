#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/config/config.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/signal_fd.h"
#include "tinymq/net/tls.h"
#include "tinymq/server/committer.h"
#include "tinymq/server/metrics_http.h"
#include "tinymq/server/worker.h"
#include "tinymq/store/store.h"
#include "tinymq/util/result.h"

// Server: a running tinymq built from a Config: `workers` worker threads (default: one per core),
// each with its own socket of every listener (SO_REUSEPORT) and its own broker, and signal
// handling (a signalfd read by the calling thread): SIGINT/SIGTERM shut down (Run()), SIGHUP
// reloads what can change live (Reload()). With [metrics] enabled it also runs the metrics HTTP
// listener (MetricsHttpServer, a thread of its own); worker 0 publishes the $SYS/ topics.
//
// A TLS listener's certificates are loaded (net::TlsContext) before anything else starts, so that
// a bad file stops the start at once. Create() raises the soft limit on open files to the hard
// one (every connection is a descriptor) and warns when max_connections cannot fit under it.
//
// With a data directory, Create() opens the RocksDB store there (creating it, or repairing it
// first with config.repair), starts the committer (the thread that writes the workers' batches),
// attaches the store to every broker and restores each broker's sessions (worker 0 also the
// retained messages) before any listener is bound, then logs what it restored. Run() stops the
// committer after the workers, so that their last writes are written and synced.
//
// Threading: Owned by one thread; not thread-safe. Create() blocks SIGINT, SIGTERM and SIGHUP in
//            the calling thread (the workers inherit the mask); create the Server before starting
//            other threads.
// Lifetime:  owns everything it builds; destroying it closes every socket and unblocks the
//            signals again. The metrics listener stops before the workers and the group it reads
//            are destroyed.
// Errors:    Create() returns one line naming the cause, e.g.
//            "127.0.0.1:1883: address already in use", "metrics: 127.0.0.1:9883: address already
//            in use", "127.0.0.1:8883: tls.cert server.pem:
//            cannot read: no such file or directory", or the store's "data/: cannot open the
//            store (...)", or "data/: cannot restore: ..."; Run() fails only if the event loop
//            does.

namespace tinymq::server {

// The broker's limits from the configuration's. `client_id_seed` seeds generated client ids.
broker::Limits ToBrokerLimits(const config::LimitsConfig& limits, const config::MqttConfig& mqtt,
                              std::uint64_t client_id_seed);

// What the server asks of the program around it.
struct ServerHooks {
  // The version $SYS/broker/version and the metrics report.
  std::string version = "unknown";
  // Reads the configuration again (the file and the command line it started with), for a reload;
  // null: a reload reads only the files the running configuration names.
  std::function<util::Result<config::Config, std::string>()> reread;
  // Applies a reloaded configuration's logging settings (level, destination); null: none.
  std::function<util::Result<void, std::string>(const config::Config&)> apply_logging;
};

class Server {
 public:
  static util::Result<Server, std::string> Create(const config::Config& config,
                                                  ServerHooks hooks = {});

  // The listening addresses with their actual ports, e.g. {"127.0.0.1:1883", "[::1]:1883"}.
  const std::vector<std::string>& addresses() const { return addresses_; }

  std::size_t worker_count() const { return workers_.size(); }

  // Serves clients until SIGINT or SIGTERM (or a worker fails), then shuts down: the listeners
  // close, MQTT 5 clients get DISCONNECT 0x8B (Server shutting down), every connection is closed
  // once its output is written (or after Worker::kShutdownLinger), the workers finish the work
  // they still exchange, the committer writes and syncs what they left, and Run() returns, within
  // about kShutdownTimeout. A second signal meanwhile stops at once. SIGHUP: Reload().
  util::Result<void, std::string> Run() noexcept;

  // The longest a shutdown waits for the workers to finish before it stops them anyway.
  static constexpr std::chrono::milliseconds kShutdownTimeout{4000};

  // What SIGHUP does, on the calling thread while the workers run: reads the configuration again
  // (ServerHooks::reread) and gives the workers what can change live; no connection is dropped.
  // A configuration that does not parse changes nothing. Otherwise each part logs its result and,
  // on error, keeps what it had: the log level and destination; every TLS listener's certificate,
  // key and CAs, read again from their files (new connections get them; open ones keep their
  // session); the password file and the ACL (new connections are checked against them; open ones
  // keep the rights they connected with); the [limits] settings (for new connections, sessions
  // and packets). What needs a restart (listeners, workers, the data directory and durability,
  // the metrics listener, [mqtt], which CONNACKs announce) is logged as such and stays. False
  // when any part failed.
  bool Reload() noexcept;

  // A TLS listener: its address (as bound) and its certificates, shared with its sockets'
  // workers.
  struct TlsListener {
    std::string address;
    std::shared_ptr<net::TlsContext> context;
  };

 private:
  Server(net::SignalFd signals, net::Fd worker_ended, std::unique_ptr<store::Store> store,
         std::unique_ptr<WorkerGroup> group, std::unique_ptr<Committer> committer,
         std::vector<std::unique_ptr<Worker>> workers, std::unique_ptr<MetricsHttpServer> metrics,
         std::vector<std::string> addresses, std::vector<TlsListener> tls, config::Config config,
         ServerHooks hooks)
      : signals_(std::move(signals)),
        worker_ended_(std::move(worker_ended)),
        store_(std::move(store)),
        group_(std::move(group)),
        committer_(std::move(committer)),
        workers_(std::move(workers)),
        metrics_(std::move(metrics)),
        addresses_(std::move(addresses)),
        tls_(std::move(tls)),
        config_(std::move(config)),
        hooks_(std::move(hooks)) {}

  // Run()'s end: tells every worker to shut down, waits (at most kShutdownTimeout) until all have
  // closed their connections and no mail is left between them, then tells them to stop.
  void ShutDown() noexcept;
  // Posts one mail of `kind`, which `fill` (if any) completes, to every worker (waiting while a
  // mailbox is full).
  void PostToAll(Mail::Kind kind, const std::function<void(Mail&)>& fill = {}) noexcept;

  net::SignalFd signals_;
  net::Fd worker_ended_;  // an eventfd a worker thread writes when its Run() returns
  // Destroyed in reverse order: the workers, then the committer (which posts to the group's
  // mailboxes and writes to the store), then the group, then the store (the brokers keep a pointer
  // to it).
  std::unique_ptr<store::Store> store_;  // null: no data directory
  std::unique_ptr<WorkerGroup> group_;
  std::unique_ptr<Committer> committer_;  // null: no data directory
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<MetricsHttpServer> metrics_;  // null: no metrics listener
  std::vector<std::string> addresses_;
  std::vector<TlsListener> tls_;  // Reload() reloads them
  // The configuration running now (Reload() replaces what it applied).
  config::Config config_;
  ServerHooks hooks_;
};

// The worker count `configured` means: itself, or 0 for one per core (at least one).
std::uint16_t ResolveWorkerCount(std::uint16_t configured);

}  // namespace tinymq::server
