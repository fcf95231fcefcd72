#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tinymq/mqtt/packet.h"
#include "tools/bench/histogram.h"
#include "tools/bench/options.h"
#include "tools/bench/plan.h"
#include "tools/bench/ws_client.h"

// One load-generating thread: an epoll loop that drives its share of the run's connections
// (connect, subscribe, publish on schedule or as the window allows, acknowledge, measure) and
// reports through counters the runner reads at any time.
//
// Threading: Run() is the body of one thread; the Worker is owned by that thread while it runs.
//            counters(), error() and LatencySnapshot() may be called from any thread; the rest
//            only after the thread has been joined.
// Lifetime:  `options`, `control` and `broker` must outlive the Worker. It owns its
//            connections and closes their sockets at the end of Run() (or when destroyed).
// Errors:    a connection that cannot be set up (refused, closed, CONNACK or SUBACK refusal,
//            undecodable packet) is fatal: error() says why and control.abort is set. A connection
//            the broker closes after it was set up is counted in `lost` (first reason: error()
//            stays empty, lost_reason() has it).

namespace tinymq::bench {

// Broker address, resolved once.
struct BrokerAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // host:port, for messages
};

// The run's timeline and stop signals, set by the runner. Times are CLOCK_MONOTONIC ns.
struct Control {
  std::atomic<std::int64_t> start_ns{0};     // 0 until every connection is ready: then t0
  std::int64_t warmup_ns = 0;                // measurement starts at t0 + warmup
  std::atomic<std::int64_t> send_end_ns{0};  // publishing stops here (may be moved earlier)
  std::atomic<bool> stop{false};             // disconnect everything and return
  std::atomic<bool> abort{false};            // a worker failed: stop at once
};

// Written by the owning worker only; read by anyone (relaxed).
struct WorkerCounters {
  std::atomic<std::uint64_t> ready{0};  // connections set up (CONNACK, and SUBACKs)
  std::atomic<std::uint64_t> lost{0};   // set-up connections the broker closed
  std::atomic<std::int64_t> last_ready_ns{0};
  std::atomic<std::uint64_t> sent{0};                // PUBLISHes written, whole run
  std::atomic<std::uint64_t> sent_measured{0};       // ... stamped inside the measurement
  std::atomic<std::uint64_t> completed_measured{0};  // QoS 1/2 flows completed, of those
  std::atomic<std::uint64_t> inflight{0};            // QoS 1/2 flows not completed
  std::atomic<std::uint64_t> refused{0};             // PUBACK/PUBREC with a failure reason code
  std::atomic<std::uint64_t> received{0};            // distinct deliveries, whole run
  std::atomic<std::uint64_t> delivered{0};           // distinct deliveries of measured messages
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::uint64_t> foreign{0};      // PUBLISHes without our stamp (other clients)
  std::atomic<std::uint64_t> final_pings{0};  // conn: PINGREQs of the final round
  std::atomic<std::uint64_t> final_pongs{0};  // conn: their PINGRESPs
  std::atomic<bool> final_round_done{false};  // conn: the final PINGREQs are out

  // The single writer's increment: a relaxed load and store, no locked instruction.
  static void Add(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void Sub(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
};

struct Connection;

class Worker {
 public:
  Worker(const Options& options, const BrokerAddress& broker, Control& control,
         std::vector<ConnSpec> specs);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Run() noexcept;

  const WorkerCounters& counters() const { return counters_; }
  // Empty unless the worker failed.
  std::string error() const;
  // Why the first set-up connection was closed; empty when none was.
  std::string lost_reason() const;
  // The latencies of measured messages as of the last half second (any thread).
  LatencyHistogram LatencySnapshot() const;
  // After join: every latency of measured messages.
  const LatencyHistogram& latency() const { return latency_; }

 private:
  static constexpr std::int64_t kNever = INT64_MAX;

  // Sockets and the loop (worker.cc).
  void Loop();
  void StartConnects();
  void StartConnect(Connection& c);
  void OnTcpConnected(Connection& c);
  void OnEvent(Connection& c, std::uint32_t events);
  void OnReadable(Connection& c);
  void Flush();
  void FlushOne(Connection& c);
  void SetWriteInterest(Connection& c, bool want);
  void Close(Connection& c, const std::string& why);
  void Fail(const std::string& message);
  void Snapshot();
  void Shutdown();

  // WebSocket (worker_websocket.cc).
  void StartUpgrade(Connection& c);
  // Turns `bytes`, just read into the MQTT decoder's read space, into MQTT bytes at its start:
  // the upgrade response is checked and dropped, frames are decoded in place, pings answered.
  // Returns how many MQTT bytes there are, or nullopt when the connection was closed.
  std::optional<std::size_t> Unwrap(Connection& c, std::span<std::uint8_t> bytes);
  // Moves the MQTT bytes waiting in c.out to c.ws->wire as masked frames.
  void FrameOutput(Connection& c);

  // MQTT (worker_protocol.cc).
  void OnConnected(Connection& c);
  void OnPacket(Connection& c, const mqtt::Packet& packet, std::int64_t now);
  void OnConnack(Connection& c, const mqtt::Connack& connack, std::int64_t now);
  void Subscribe(Connection& c);
  void OnSuback(Connection& c, const mqtt::Suback& suback, std::int64_t now);
  void OnSetUp(Connection& c, std::int64_t now);
  void OnDelivery(Connection& c, const mqtt::Publish& publish, std::int64_t now);
  void OnPublisherAck(Connection& c, mqtt::PacketType type, std::uint16_t packet_id,
                      mqtt::ReasonCode reason);
  // Publishes what is due; returns when to come back: now (more is due at once), the next due
  // time, or never (every publisher waits for its socket or an acknowledgement).
  std::int64_t Publish(std::int64_t now, std::int64_t start);
  void PublishOne(Connection& c, std::int64_t now, bool measured);
  void KeepAlive(std::int64_t now);
  void FinalPing();
  void SendDisconnect(Connection& c);
  template <typename P>
  void Send(Connection& c, const P& packet);
  void MarkDirty(Connection& c);

  // Const after construction.
  const Options& options_;
  const BrokerAddress& broker_;
  Control& control_;
  const std::vector<ConnSpec> specs_;
  const std::int64_t keepalive_ns_;
  const double rate_per_publisher_;  // messages per ns per publisher; 0: no schedule

  // Worker-owned.
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::vector<Connection*> publishers_;
  std::vector<Connection*> dirty_;  // to flush at the end of the turn
  std::vector<std::uint8_t> payload_;
  WsRandom ws_random_;            // --websocket: mask keys and Sec-WebSocket-Keys
  std::int64_t turn_now_ns_ = 0;  // the time read after this turn's events
  std::uint32_t next_connect_ = 0;
  std::uint32_t pending_ = 0;       // connections being set up
  std::int64_t keepalive_scan_ns_;  // a quarter of the shortest keep-alive, at most 1 s
  std::int64_t next_keepalive_scan_ns_ = 0;
  std::int64_t next_snapshot_ns_ = 0;
  bool final_ping_done_ = false;
  LatencyHistogram latency_;
  WorkerCounters counters_;  // written here only

  mutable std::mutex mu_;
  std::string error_;          // guarded by mu_
  std::string lost_reason_;    // guarded by mu_
  LatencyHistogram snapshot_;  // guarded by mu_
};

}  // namespace tinymq::bench
