#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/config/config.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/signal_fd.h"
#include "tinymq/net/tls.h"
#include "tinymq/server/committer.h"
#include "tinymq/server/worker.h"
#include "tinymq/store/store.h"
#include "tinymq/util/result.h"

// Server: a running tinymq built from a Config: `workers` worker threads (default: one per core),
// each with its own socket of every listener (SO_REUSEPORT) and its own broker, and signal
// handling (a signalfd read by the calling thread): SIGINT/SIGTERM tell every worker to stop,
// SIGHUP reloads what can change live (Reload()).
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
//            signals again.
// Errors:    Create() returns one line naming the cause, e.g.
//            "127.0.0.1:1883: address already in use", "127.0.0.1:8883: tls.cert server.pem:
//            cannot read: no such file or directory", or the store's "data/: cannot open the
//            store (...)", or "data/: cannot restore: ..."; Run() fails only if the event loop
//            does.

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
  // connections, the committer writes what they left, and Run() returns. SIGHUP meanwhile:
  // Reload().
  util::Result<void, std::string> Run() noexcept;

  // What SIGHUP does, on the calling thread while the workers run: reads again what can change
  // live and gives it to the workers; no connection is dropped. Each part logs its result and,
  // on error, keeps what it had. Today: every TLS listener's certificate, key and CAs (new
  // connections get them; open ones keep their session), and the password file and the ACL (new
  // connections are checked against them; open ones keep the rights they connected with). False
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
         std::vector<std::unique_ptr<Worker>> workers, std::vector<std::string> addresses,
         std::vector<TlsListener> tls, config::AuthConfig auth, bool allow_anonymous)
      : signals_(std::move(signals)),
        worker_ended_(std::move(worker_ended)),
        store_(std::move(store)),
        group_(std::move(group)),
        committer_(std::move(committer)),
        workers_(std::move(workers)),
        addresses_(std::move(addresses)),
        tls_(std::move(tls)),
        auth_(std::move(auth)),
        allow_anonymous_(allow_anonymous) {}

  net::SignalFd signals_;
  net::Fd worker_ended_;  // an eventfd a worker thread writes when its Run() returns
  // Destroyed in reverse order: the workers, then the committer (which posts to the group's
  // mailboxes and writes to the store), then the group, then the store (the brokers keep a pointer
  // to it).
  std::unique_ptr<store::Store> store_;  // null: no data directory
  std::unique_ptr<WorkerGroup> group_;
  std::unique_ptr<Committer> committer_;  // null: no data directory
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::string> addresses_;
  std::vector<TlsListener> tls_;  // Reload() reloads them
  // What Reload() reads the password file and the ACL from (the anonymous rule, resolved at
  // start-up with the listeners, stays).
  config::AuthConfig auth_;
  bool allow_anonymous_ = false;
};

// The worker count `configured` means: itself, or 0 for one per core (at least one).
std::uint16_t ResolveWorkerCount(std::uint16_t configured);

}  // namespace tinymq::server
