#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/broker/message.h"
#include "tinymq/broker/retained_store.h"
#include "tinymq/net/event_loop.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/listener.h"
#include "tinymq/net/tls.h"
#include "tinymq/server/committer.h"
#include "tinymq/server/connection_caps.h"
#include "tinymq/server/mail.h"
#include "tinymq/server/mailbox.h"
#include "tinymq/server/metrics.h"
#include "tinymq/server/transport.h"
#include "tinymq/server/verifier.h"
#include "tinymq/store/store.h"
#include "tinymq/util/result.h"

// Worker: one event loop driving one broker core, on a thread of its own. It accepts connections
// from its listeners (its own sockets of SO_REUSEPORT groups), moves bytes between their sockets
// and the broker, runs the broker's timers, and exchanges work with the other workers through
// their mailboxes, until a stop arrives in its mailbox. With a store, it hands the broker's writes
// to the committer once per turn and tells the broker when they are durable.
//
// Set-up, before Run(): Create(); with a store, AttachStore() then Restore(); then AddListeners()
// or AddListener() (so that the broker has restored everything before a client can connect).
//
// One loop turn:
//   1. epoll_wait, with the broker's NextDeadline() as the timeout;
//   2. the mailbox, first (so that work another worker posted before this turn's input was sent
//      is seen before that input): envelopes go to the broker, handed-over connections join
//      this loop with the bytes they brought, the committer's reports go to OnDurable() (which
//      releases the output held for them);
//   3. per ready socket: accept (listeners: over a connection cap the socket is closed at once,
//      nothing read); read into ReadBuffer()/OnRead() until the socket is drained; write pending
//      output (writable); OnPeerClosed() on EOF, reset or hang-up;
//   4. OnTimer() when the deadline has passed; lingering connections past their time are closed;
//   5. flush every connection TakeDirty() names (a connection whose CONNECT belongs to another
//      worker is handed over instead: out of this loop, into that worker's mailbox): write its
//      Output() pieces (its own bytes and shared payloads, up to 64 per sendmsg) until none is left
//      or the socket is full (then wait for writability, and stop waiting once it drained); a
//      connection whose output is written and that ShouldClose() is half-closed (shutdown, input
//      read and dropped until EOF or 5 s), then closed and Release()d;
//   6. with a store: TakeWrites() and, when it returns an epoch, the batch to the committer; then
//      flush again what that released (a turn that wrote nothing releases the acknowledgements
//      that waited for nothing), until a flush finds nothing (flushing can make writes: a drained
//      connection takes messages from its queue), at most a few rounds (then the next turn does
//      not sleep);
//   7. the broker's envelopes for other workers go to their mailboxes, one Post() per worker and
//      turn. What a full mailbox cannot take waits here, in order, and is tried again every turn;
//      meanwhile this worker reads no client input (the backlog stays bounded);
//   8. the turn's time goes into the loop-latency histogram; once per kStatsInterval the worker's
//      figures go to WorkerGroup::stats and, on the worker that has them, the $SYS/ topics are
//      published every sys_interval.
//
// Shutdown (Mail::kShutdown): the listeners close, the broker sends DISCONNECT 0x8B to MQTT 5
// clients and closes every connection (BeginShutdown); connections still open after
// kShutdownLinger are closed; the worker then counts itself in WorkerGroup::drained and goes on
// handling mail until kStop.
//
// TLS (worker_tls.cc): a connection accepted on a TLS listener gets a net::TlsSession at once and
// is given to the broker as any other (so that its CONNECT timeout bounds the handshake too). The
// handshake runs on the socket's readiness events, waiting for what OpenSSL asks (readable or
// writable), before any byte reaches the broker; a failed one is logged (a few lines per 10 s per
// worker, then a count) and closed. With username_from_cert the verified certificate's name goes
// to the broker (SetCertUsername) before its first byte. The broker then sees only plaintext:
// reads decrypt into ReadBuffer(), and flushes copy its output pieces into records of up to
// 16 KiB (one SSL_write and one send() each).
//
// PROXY protocol and WebSocket (worker_transport.cc; transport.h): a PROXY header is peeked and
// taken off the socket before TLS; WebSocket frames are decoded into ReadBuffer() and the
// broker's output is framed as binary frames. A connection handed to another worker takes its
// whole Transport (TLS session, WebSocket state) along in the mail.
//
// Threading: Run() on one thread; the rest of the class belongs to that thread (the set-up calls
//            to the thread that creates it, before Run()). Workers meet only in the WorkerGroup
//            (mailboxes, retained store, counters) and the Committer, which are thread-safe.
// Lifetime:  owns its listeners, its connections' sockets and transports, and its broker. It
//            shares its listeners' TlsContexts. The WorkerGroup, and the store and committer given
//            to AttachStore(), must outlive every worker.
// Errors:    Create(), AddListeners(), Restore() and Run() return one line of text. Run() fails
//            only when the loop itself does (epoll); a failing connection is closed and logged,
//            and the loop goes on.

namespace tinymq::server {

// What the workers of one server share. Built before the workers and destroyed after them.
struct WorkerGroup {
  // Mail one worker may have waiting for another before the sender holds back.
  static constexpr std::size_t kMailboxCapacity = 65536;

  static util::Result<std::unique_ptr<WorkerGroup>, std::string> Create(std::uint16_t workers);

  std::uint16_t size() const { return static_cast<std::uint16_t>(mailboxes.size()); }
  std::vector<Mailbox<Mail>*> MailboxPointers() const {
    std::vector<Mailbox<Mail>*> out;
    for (const std::unique_ptr<Mailbox<Mail>>& box : mailboxes) {
      out.push_back(box.get());
    }
    return out;
  }

  // First, so that they outlive every message the rest holds.
  std::vector<std::unique_ptr<broker::MessagePool>> pools;
  broker::ConcurrentRetainedStore retained;
  std::unique_ptr<broker::SubscriptionSummary> summary;
  std::vector<std::unique_ptr<Mailbox<Mail>>> mailboxes;
  // Checks the passwords of every worker's CONNECTs (null: no password file; a check that
  // comes up anyway is refused). Last, so that its threads stop before the mailboxes go.
  std::unique_ptr<Verifier> verifier;
  // Connections open across all workers, against max_connections and
  // max_connections_per_address (null: no caps).
  std::unique_ptr<ConnectionCaps> caps;
  // Workers that, after Mail::kShutdown, have no connection left.
  std::atomic<std::uint16_t> drained{0};
  // Every worker's figures, published by each once a second (Worker::kStatsInterval).
  std::unique_ptr<StatsBoard> stats;
  // The process-wide figures (retained messages, the store, connection caps), for the $SYS/
  // topics and the metrics listener; set by the server before the workers run. Thread-safe.
  std::function<ServerStats()> server_stats;
};

class Worker {
 public:
  // A connection whose output cannot drain is closed this long after the broker asked to close it.
  static constexpr std::chrono::milliseconds kCloseLinger{5000};
  // At shutdown, how long clients get to read their DISCONNECT and close before the worker closes
  // what is left.
  static constexpr std::chrono::milliseconds kShutdownLinger{2000};
  // How often a worker publishes its figures (WorkerGroup::stats).
  static constexpr std::chrono::seconds kStatsInterval{1};
  // Session slots the stats tick counts (Broker::StepSessionGauges): up to this many sessions the
  // queued/in-flight/connected figures are a second old at most; beyond, a walk takes one tick
  // per this many slots, and no tick stalls the worker for longer than walking them.
  static constexpr std::size_t kGaugeSlotsPerTick = 65536;
  // How long accepting pauses when the process is out of descriptors or memory.
  static constexpr std::chrono::milliseconds kAcceptBackoff{100};
  // Per connection and turn, so that one fast sender cannot starve the others (level-triggered:
  // the rest is read on the next turn).
  static constexpr std::size_t kMaxReadPerTurn = std::size_t{1} << 20;
  static constexpr int kMaxAcceptsPerTurn = 64;
  // Flush-and-commit rounds at the end of a turn (step 6) before the rest waits for the next turn.
  static constexpr int kMaxCommitRounds = 4;

  // Worker `index` of `group`, with no listener yet.
  static util::Result<std::unique_ptr<Worker>, std::string> Create(const broker::Limits& limits,
                                                                   std::uint16_t index,
                                                                   WorkerGroup& group);

  // Gives the broker its store (broker::Broker::AttachStore); its writes go to `committer`, whose
  // reports come back as kDurable mail.
  // REQUIRES: before Restore(), AddListeners() and Run(); `durability.store` is not null.
  void AttachStore(const broker::Durability& durability, Committer& committer);
  // Rebuilds this worker's sessions (and, when `retained`, the retained messages) from the store
  // (broker::Broker::Restore). Errors name the damaged record.
  // REQUIRES: after AttachStore(), before AddListeners() and Run().
  util::Result<broker::RestoreCounts, std::string> Restore(broker::Instant now, bool retained,
                                                           bool sessions = true);
  // Who may connect and what they may do (broker::Broker::SetAccess); later changes go by
  // Mail::kAccess. REQUIRES: before Run().
  void SetAccess(std::shared_ptr<const broker::AccessPolicy> policy) {
    broker_.SetAccess(std::move(policy));
  }
  // Starts accepting on `listeners` (its sockets of each listener group) once Run() runs.
  // REQUIRES: before Run().
  util::Result<void, std::string> AddListeners(std::vector<net::Listener> listeners);
  // What a listener's connections speak beyond TCP (config::ListenerConfig).
  struct ListenerOptions {
    bool websocket = false;       // MQTT over WebSocket
    bool proxy_protocol = false;  // a PROXY protocol header first
  };
  // The same for one listener, which speaks TLS with `tls` (null: plain TCP). The workers'
  // sockets of one listener share its TlsContext, so that a reload reaches them all.
  // REQUIRES: before Run().
  util::Result<void, std::string> AddListener(net::Listener listener,
                                              std::shared_ptr<net::TlsContext> tls,
                                              ListenerOptions options);
  // The WebSocket frame and message limits of its WebSocket connections. REQUIRES: before Run().
  void SetWebSocketLimits(net::WebSocketDecoder::Limits limits) { ws_limits_ = limits; }
  // This worker publishes the $SYS/ topics every `interval` (0: never), with `version` in
  // $SYS/broker/version. One worker of a group does. REQUIRES: before Run().
  void PublishSysTopics(std::chrono::seconds interval, std::string version);

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  // For Create() only (make_unique needs a public constructor; Key keeps it private in effect).
  Worker(Key, net::EventLoop loop, const broker::Limits& limits, std::uint16_t index,
         WorkerGroup& group);

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Runs loop turns until a kStop mail arrives; then closes every connection.
  util::Result<void, std::string> Run() noexcept;

  const broker::Broker& broker() const { return broker_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Connection {
    // The broker id's sequence number (the bits above its slot; never 0); 0: a free slot.
    std::uint32_t sequence = 0;
    net::Fd fd;
    net::EventMask interest = net::kReadable;
    bool lingering = false;  // ShouldClose() with output still to write, or half closed
    // Everything is written and the sending side is shut down: what the peer still sends is read
    // and dropped until its EOF (or the linger time), so that closing does not reset the
    // connection and destroy the last packets (a DISCONNECT, a refusing CONNACK) in transit.
    bool half_closed = false;
    std::unique_ptr<Transport> transport;  // null: plain TCP
  };
  // The connections by their broker slot (broker::SlotOf), so that each costs its 24 bytes and no
  // hash node.
  class ConnectionTable {
   public:
    // The connection `id`; nullptr when it is gone (its slot may be another connection's now).
    Connection* Find(broker::ConnectionId id) {
      const std::uint32_t slot = broker::SlotOf(id);
      return slot < slots_.size() && slots_[slot].sequence == Sequence(id) ? &slots_[slot]
                                                                           : nullptr;
    }
    // REQUIRES: the slot of `id` is free. References to other entries may move.
    void Insert(broker::ConnectionId id, Connection c) {
      const std::uint32_t slot = broker::SlotOf(id);
      if (slot >= slots_.size()) {
        slots_.resize(std::size_t{slot} + 1);
      }
      c.sequence = Sequence(id);
      slots_[slot] = std::move(c);
      ++size_;
    }
    // Frees the slot of `id` (closing its socket if it still holds one).
    void Erase(broker::ConnectionId id) {
      if (Connection* c = Find(id)) {
        *c = Connection{};
        --size_;
      }
    }
    std::size_t size() const { return size_; }
    void Clear() {
      slots_.clear();
      size_ = 0;
    }

   private:
    static std::uint32_t Sequence(broker::ConnectionId id) {
      return static_cast<std::uint32_t>(id >> 32);
    }
    std::vector<Connection> slots_;
    std::size_t size_ = 0;
  };
  enum class ReadEnd : std::uint8_t { kDrained, kMore, kGone };

  struct ListenerEntry {
    net::Listener socket;
    std::shared_ptr<net::TlsContext> tls;  // null: plain TCP
    ListenerOptions options;
  };
  // A connection to adopt: just accepted, or handed over by another worker.
  struct Arrival {
    net::Fd fd;
    std::string peer;
    std::unique_ptr<Transport> transport;  // null: plain TCP
    std::string cert_username;             // from a handed-over connection's certificate
    AddressKey address{};                  // counted in group_.caps already
  };

  void AcceptFrom(std::size_t index, broker::Instant now) noexcept;
  // Counts a connection just accepted from `peer` against group_.caps (`keyed` false: its address
  // is not known yet, ConnectionCaps::kUnkeyed); false (the refusal counted and, now and then,
  // logged) when it is over a cap.
  bool Admit(const std::string& peer, bool keyed, AddressKey& address,
             broker::Instant now) noexcept;
  // Adds an accepted (or handed-over) socket to the loop and the broker; nullopt when it cannot
  // be watched (then it is closed).
  std::optional<broker::ConnectionId> Adopt(Arrival arrival, broker::Instant now) noexcept;
  // A connection handed over by another worker (Mail::kConnection): adopted, and the bytes it
  // brought read as if they had just arrived.
  void TakeOver(Mail& mail, broker::Instant now) noexcept;
  // Handles this turn's mail (`signaled`: the mailbox's eventfd was readable); false when it
  // said stop.
  bool ReadMail(broker::Instant now, bool signaled) noexcept;
  // Gives connection `id` (HandoffTarget() says where) to its worker; true when it was one.
  bool HandOff(broker::ConnectionId id) noexcept;
  // Posts what the broker has for other workers; sets backlog_ when a mailbox was full.
  // Hands the broker's password checks to the group's Verifier (step 6, with the commit).
  void SubmitCredentialChecks() noexcept;
  void SendMail() noexcept;
  // Step 5 and, with a store, step 6 of a turn.
  void FlushAndCommit(broker::Instant now) noexcept;
  // The broker's writes of the turn, if any, to the committer.
  void Commit() noexcept;
  void OnConnectionEvent(broker::ConnectionId id, net::EventMask events,
                         broker::Instant now) noexcept;
  ReadEnd ReadFrom(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Writes what the broker has for `id` until it has nothing or the socket is full; false once
  // closed (plain TCP: gathered sendmsg; TLS: records).
  bool WriteOutput(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // TLS (worker_tls.cc). Runs the handshake as far as it goes; true once it is complete (the
  // broker has the certificate's username), false while it waits or when it failed (closed).
  bool Handshake(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Logs (within the budget) why the TLS connection `id` ends before its first byte reached the
  // broker, and closes it.
  void RefuseTls(broker::ConnectionId id, Connection& c, std::string_view why,
                 broker::Instant now) noexcept;
  ReadEnd ReadTls(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  bool WriteTls(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // PROXY protocol and WebSocket (worker_transport.cc). Reads the PROXY header as far as it has
  // come; true once it is complete (the broker has the client's address; `c` may have lost its
  // transport, when nothing else was in it), false while it waits or when it failed (closed).
  bool ReadProxyHeader(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Reads a WebSocket connection: the upgrade request, then frames into the broker.
  ReadEnd ReadWebSocket(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Passes received bytes through the WebSocket stream; returns how many it took (the rest
  // waits while the broker's input is paused).
  std::size_t FeedWebSocket(broker::ConnectionId id, Connection& c,
                            std::span<const std::uint8_t> in, broker::Instant now) noexcept;
  // Writes the WebSocket stream's own bytes and the broker's output as binary frames.
  bool WriteWebSocket(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Queues a close frame once the broker is done with an upgraded connection and nothing of a
  // data frame is left; true when it queued one.
  bool QueueWebSocketClose(broker::ConnectionId id, Connection& c) noexcept;
  // One write of `pieces` (an empty span only pushes a pending TLS record) on the connection's
  // stream: the socket, or its TLS session.
  struct Sent {
    std::size_t bytes = 0;
    enum class Status : std::uint8_t { kOk, kBlocked, kFailed } status = Status::kOk;
    std::string error;
  };
  Sent SendOn(Connection& c, std::span<const net::ByteRange> pieces) noexcept;
  // Logs (within a budget shared by transport failures) why connection `id` ends before its first
  // byte reached the broker.
  void LogTransportFailure(std::string_view what, std::string_view peer, std::string_view why,
                           broker::Instant now) noexcept;
  // Reads and drops the input of a half-closed connection; closes it at EOF or on an error.
  void Discard(broker::ConnectionId id, Connection& c) noexcept;
  // The broker is done with `id` and its output is written: shut down the sending side and wait
  // for the peer's EOF (closes at once when that fails). False once closed.
  bool HalfClose(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Writes what the broker has for `id`; closes it when the broker is done. False once closed.
  bool Flush(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Flushes the connections TakeDirty() names; true when there was any. Sets dirty_left_ when it
  // stopped before the broker ran out of dirty connections.
  bool FlushDirty(broker::Instant now) noexcept;
  void PeerGone(broker::ConnectionId id, std::string_view why, broker::Instant now) noexcept;
  void Close(broker::ConnectionId id) noexcept;
  // Forgets and returns the connection's source address (addresses_; zeros when none is kept).
  AddressKey TakeAddress(broker::ConnectionId id) noexcept;
  void SetInterest(broker::ConnectionId id, Connection& c, net::EventMask interest) noexcept;
  void PauseAccepting(broker::Instant now) noexcept;
  // Once per kStatsInterval: this worker's figures to WorkerGroup::stats and, when due, the
  // $SYS/ topics (the worker that has them).
  void PublishStats(broker::Instant now) noexcept;
  // The server is stopping (Mail::kShutdown): no more accepting; the broker says goodbye to every
  // client (broker::Broker::BeginShutdown); what is left open at the deadline is closed.
  void BeginShutdown(broker::Instant now) noexcept;
  void HousekeepAccepting(broker::Instant now) noexcept;
  void CloseExpiredLingerers(broker::Instant now) noexcept;
  std::optional<std::chrono::milliseconds> Timeout(broker::Instant now) const noexcept;

  // Worker-owned.
  std::uint16_t index_;
  WorkerGroup& group_;
  net::EventLoop loop_;
  std::vector<ListenerEntry> listeners_;
  broker::Broker broker_;
  ConnectionTable connections_;
  // With a per-address cap only: each connection's source address (what it counts against in
  // group_.caps), by broker slot; kept out of Connection so that it costs nothing otherwise.
  std::unordered_map<std::uint32_t, AddressKey> addresses_;
  std::deque<std::pair<broker::Instant, broker::ConnectionId>> lingering_;  // by deadline
  std::optional<broker::Instant> accept_paused_until_;
  // Work is left for the next turn (FlushDirty or the commit rounds stopped early, or Restore()
  // made writes and mail): do not sleep on the next wait.
  bool dirty_left_ = false;
  // Mail for each worker that its mailbox could not take yet, and the broker's envelopes of the
  // turn; reused every turn.
  std::vector<std::vector<Mail>> outgoing_;
  std::vector<broker::Letter> letters_;
  std::vector<broker::CredentialCheck> checks_;
  std::vector<Mail> incoming_;
  bool backlog_ = false;            // some of outgoing_ is left: read no client input, retry soon
  Committer* committer_ = nullptr;  // null: no store
  store::Batch writes_;             // the turn's writes, reused
  // TLS: where Write() stages a record (allocated with the first TLS connection), and the log
  // budget of failed handshakes (a scanner or a misconfigured fleet must not flood the log).
  std::vector<std::uint8_t> tls_staging_;
  // WebSocket: where received bytes are decoded from (allocated with the first one), and limits.
  std::vector<std::uint8_t> ws_scratch_;
  net::WebSocketDecoder::Limits ws_limits_{.max_frame_size = std::uint64_t{4} << 20,
                                           .max_message_size = std::uint64_t{16} << 20};
  // Connections refused before the broker saw a byte of them, by cause (metrics).
  struct TransportCounters {
    std::uint64_t refused_tls = 0;
    std::uint64_t refused_websocket = 0;
    std::uint64_t refused_proxy = 0;
    std::uint64_t websocket_errors = 0;  // closed for a WebSocket protocol violation
  };
  TransportCounters transport_counters_;
  // What connections handed over by other workers brought here (counted where they were read).
  struct HandedIn {
    std::uint64_t connections = 0;
    std::uint64_t bytes = 0;
  };
  HandedIn handed_in_;
  // Metrics: the time each turn's work took, when the next figures are due, the $SYS/ topics.
  Histogram loop_latency_;
  broker::Instant next_stats_{};
  std::unique_ptr<SysTopics> sys_;  // null: this worker does not publish them
  std::chrono::seconds sys_interval_{0};
  broker::Instant next_sys_{};
  // Shutdown: when it began (nullopt: running), and when what is still open gets closed.
  std::optional<broker::Instant> shutdown_deadline_;
  bool drained_reported_ = false;
  struct LogBudget {
    broker::Instant window_end{};
    int lines = 0;
    std::uint64_t suppressed = 0;
  };
  LogBudget tls_log_;
};

}  // namespace tinymq::server
