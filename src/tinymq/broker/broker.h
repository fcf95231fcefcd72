#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinymq/broker/authenticator.h"
#include "tinymq/broker/message.h"
#include "tinymq/broker/retained_store.h"
#include "tinymq/broker/subscription_index.h"
#include "tinymq/broker/subscription_summary.h"
#include "tinymq/broker/write_set.h"
#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/types.h"
#include "tinymq/store/records.h"
#include "tinymq/store/store.h"
#include "tinymq/util/result.h"
#include "tinymq/util/stable_slots.h"

// The broker core: every MQTT rule between bytes-in and bytes-out, with no I/O of its own (with a
// store it reads spilled queue records and, in Restore(), everything back through the
// store::Store interface, which tests give a memory store). The net layer
// owns sockets and calls in with what happened (a connection accepted, bytes read, bytes written,
// the peer gone, time passed); the broker decodes, applies the protocol (CONNECT, sessions, QoS
// flows, subscriptions, retained messages, wills, keep-alive) and leaves for each connection the
// bytes to write and whether to close it.
//
// Use by the net layer, per loop turn:
//   id = Accept(peer, now)                       when accept() returns a socket
//   read into ReadBuffer(id), then OnRead(id, n) for the bytes read
//   OnPeerClosed(id, now)                        on EOF or a socket error
//   OnTimer(now) when NextDeadline() has passed  (epoll_wait timeout = NextDeadline() - now)
//   for id in TakeDirty(): write the Output(id, chunks), call OnWritten(id, n, now) for what was
//     written; when OutputSize(id) is 0 and ShouldClose(id): close the socket, then Release(id)
//
// Several workers: each worker thread has a Broker of its own (Cluster says which, and what they
// share). A client's session lives on the worker its client identifier hashes to (HomeOf): a
// CONNECT that arrives on another worker is handed over with its bytes (HandoffTarget,
// TakeHandoff), so that session takeover never crosses workers. Each broker indexes the
// subscriptions of its own sessions only; a PUBLISH is routed where it arrives and sent to every
// other worker (an Envelope in TakeOutbox), which routes it to its own sessions. A shared
// subscription group lives on the worker its "$share/{name}/{filter}" hashes to, which picks the
// member of each message wherever that member's session is. Retained messages are in one store
// that all workers share (ConcurrentRetainedStore).
//
// Persistence (AttachStore): with a store, the broker turns every change to what must survive a
// restart (persistent sessions, their subscriptions, queued and in-flight QoS 1/2 messages and
// incoming QoS 2 ids, retained messages, wills of persistent sessions) into writes, which the net
// layer takes once per loop turn (TakeWrites) as one batch and reports durable (OnDurable). An
// acknowledgement that promises something is kept (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK,
// PUBREL, a QoS 2 PUBLISH to a persistent session) is written to the connection only once the
// writes before it are durable, here and on every worker it sent work to (Envelope::kConfirm);
// output before it goes out at once. Restore() rebuilds this worker's sessions from the store.
//
// Threading: Owned by one worker thread; not thread-safe. Envelopes carry work between threads.
// Lifetime:  ReadBuffer spans and Output chunks are valid until the next call into the broker.
// Errors:    never throws on input; protocol violations close the offending connection only.

namespace tinymq::auth {
class PasswordFile;
class AclFile;
class ClientAcl;
}  // namespace tinymq::auth

namespace tinymq::broker {

// A connection's id: a sequence number (1 to 2^32 - 1, reused only after 4 billion connections)
// above a slot (reused) in its low 32 bits.
using ConnectionId = std::uint64_t;

// The slot of a connection: a small number, below the most connections the broker had at once,
// unique among the connections it has now (for tables the net layer keeps by connection).
constexpr std::uint32_t SlotOf(ConnectionId id) { return static_cast<std::uint32_t>(id); }

// A broker's place among the workers of one server, and what they share. The defaults are one
// broker on its own (tests, tools).
struct Cluster {
  std::uint16_t index = 0;  // this broker's worker
  std::uint16_t count = 1;  // workers in all
  // Shared by all workers; null: the broker keeps its own.
  ConcurrentRetainedStore* retained = nullptr;
  // Where the broker makes its messages; it must outlive every broker of the cluster (messages go
  // back to the pool of the broker that made them). Null: the broker's own.
  MessagePool* pool = nullptr;
  // What each worker subscribes to (each broker keeps its own part up to date): a PUBLISH goes
  // only to the workers where it may match, and gets 0x10 No matching subscribers only when it
  // can match nowhere. Null: unknown (every worker is sent every PUBLISH).
  SubscriptionSummary* summary = nullptr;
};

// Work one broker sends another (through the receiving worker's mailbox).
struct Envelope {
  enum class Kind : std::uint8_t {
    kPublish,        // route `message` to this worker's sessions; `publisher_hash` for groups
    kSharedJoin,     // to a group's home: `member` joins group `key` (or changes its options)
    kSharedLeave,    // to a group's home: session `member.subscriber` leaves group `key`
    kSharedOnline,   // to a group's home: session `member.subscriber` is online (`flag`) or not
    kSharedDeliver,  // to a member's worker: `message` for `member` from group `group` (`flag`:
                     // kept even if the member went offline, else given back to the group)
    kSharedReroute,  // to a group's home: `message`, given to `member`, goes to another member
                     // (`flag`: that member's session ended; else it went offline)
    kConfirm,        // to `from`: what it sent here numbered up to `confirm` is durable here
  };
  Kind kind = Kind::kPublish;
  bool flag = false;
  std::uint16_t from = 0;  // the sending worker (set by the sender)
  // kPublish, kSharedDeliver: nonzero when the sender waits for this work to be durable here
  // (numbered per sender and receiver, from 1); kConfirm: the highest such number now durable.
  std::uint64_t confirm = 0;
  // kPublish of a QoS 2 message from a persistent session: the key of its incoming record
  // (store::IncomingKey); the receiver writes its marker with what it queues (IncomingRecord).
  std::string origin;
  MessageRef message;
  Subscription member;
  SubscriberId group = 0;
  std::uint64_t publisher_hash = 0;  // 0: none
  std::string key;                   // "$share/{name}/{filter}"
};

// An envelope and the worker it goes to.
struct Letter {
  std::uint16_t to = 0;
  Envelope envelope;
};

// How a message on a shared subscription picks the group member that gets it (5.0 §4.8.2).
enum class SharedPolicy : std::uint8_t {
  kRoundRobin,     // each member in turn, skipping members that are offline or full
  kPublisherHash,  // all of one publisher's messages to the same member while it is online
};

// Every limit the core enforces. The config layer fills it; the defaults are the documented ones.
struct Limits {
  // A connection that has not sent CONNECT by then is closed.
  Duration connect_timeout = std::chrono::seconds(10);
  // Largest packet accepted from a client (fixed header included).
  std::uint32_t max_packet_size = 1'048'576;
  // Largest first packet (the CONNECT) of a connection (the smaller of this and max_packet_size
  // applies): a stranger cannot make the broker hold much before it is known.
  std::uint32_t max_connect_packet_size = 65'536;
  // Connections at once, across all workers, and from one source address (0: no limit). The net
  // layer enforces them at accept (the broker core sees one worker's connections only).
  std::size_t max_connections = 100'000;
  std::size_t max_connections_per_address = 0;
  // Topic names and filters longer (bytes) or deeper (levels) than this are refused: a PUBLISH
  // with 5.0 PUBACK/PUBREC 0x90 (QoS 0: dropped; 3.1.x: the connection is closed), a filter with
  // SUBACK 0x8F (3.1.x: 0x80).
  std::size_t max_topic_length = 65535;
  std::size_t max_topic_levels = 128;
  // Subscriptions a session may hold; more get SUBACK 0x97 (3.1.x: 0x80).
  std::size_t max_subscriptions_per_client = 10'000;
  // Retained messages kept (all workers together), and their topic and payload bytes. A new
  // retained topic beyond either, or a replacement that grows the bytes beyond the limit, is not
  // kept: a 5.0 QoS 1/2 PUBLISH gets 0x97 and is not delivered (what was retained stays);
  // otherwise the message is delivered without being retained, and the topic's older retained
  // message is deleted (never a stale value). Deleting always works.
  std::size_t max_retained_messages = 1'000'000;
  std::size_t max_retained_bytes = std::size_t{1} << 30;
  // PUBLISH packets a connection may send per second (0: no limit), and the burst above it (0:
  // one second's worth). Past it the connection's input is paused until tokens come back; a
  // connection throttled without a break for publish_rate_grace is disconnected (5.0: 0x96).
  // Zero grace: never disconnected.
  std::uint32_t max_publish_rate = 0;
  std::uint32_t publish_rate_burst = 0;
  Duration publish_rate_grace = std::chrono::seconds(30);
  // Outgoing QoS 1/2 PUBLISH packets a session may have unacknowledged at once.
  std::uint16_t max_inflight = 20;
  // Messages (QoS 1/2 while offline or beyond the in-flight window) a session may queue, and their
  // payload bytes. Past either, new messages for that session are dropped and counted.
  std::size_t max_queued_messages = 1000;
  std::size_t max_queued_bytes = std::size_t{64} << 20;
  // A connection's unsent output above this stops new PUBLISH packets to it: QoS 0 ones are
  // dropped (counted), QoS 1/2 ones wait in the session queue until the output drains.
  std::size_t output_high_water = std::size_t{1} << 20;
  // Longest client identifier accepted (3.1.1 allows any length; 3.1 said 23).
  std::size_t max_client_id_length = 65535;
  // Seed for generated client identifiers (the server passes a random one).
  std::uint64_t client_id_seed = 0;

  // What the broker offers an MQTT 5 client, announced in CONNACK (5.0 §3.2.2.3) and enforced for
  // every version where the version can express it.
  //
  // Highest QoS accepted in a PUBLISH or a will, and granted to a subscription.
  mqtt::QoS maximum_qos = mqtt::QoS::k2;
  // Whether PUBLISH and wills may set RETAIN.
  bool retain_available = true;
  bool wildcard_subscriptions = true;
  bool subscription_identifiers = true;
  bool shared_subscriptions = true;
  // Which member of a shared subscription group gets a message.
  SharedPolicy shared_policy = SharedPolicy::kRoundRobin;
  // Topic aliases a 5.0 client may set up towards the broker (CONNACK Topic Alias Maximum).
  std::uint16_t topic_alias_maximum = 10;
  // Topic aliases the broker sets up towards a 5.0 client, at most the client's own maximum.
  std::uint16_t outbound_topic_alias_maximum = 10;
  // Incoming QoS 2 PUBLISHes a 5.0 client may have unfinished at once (CONNACK Receive Maximum).
  std::uint16_t receive_maximum = 1024;
  // Longest keep-alive a 5.0 client gets, in seconds (0: the client's own, whatever it is); a
  // longer one, or none, is replaced by this in CONNACK's Server Keep Alive.
  std::uint16_t max_keep_alive_s = 0;
  // Longest Session Expiry Interval granted, in seconds (0: no cap); also caps how long a 3.1.x
  // persistent session outlives its connection.
  std::uint32_t max_session_expiry_s = 0;
};

// Who may connect and what they may do (SetAccess). Shared by every worker's broker and replaced
// whole (a reload makes a new one); a connection keeps what it was let in with.
struct AccessPolicy {
  // Clients without a username (and without one from their certificate) are let in.
  bool allow_anonymous = true;
  // Users and their password hashes. Null: usernames are not checked (any is accepted).
  std::shared_ptr<const auth::PasswordFile> passwords;
  // Who may publish and subscribe to what. Null: every client may do anything.
  std::shared_ptr<const auth::AclFile> acl;
  // How long a refused CONNECT (bad password, unknown user, anonymous) waits for its CONNACK,
  // without holding up anything else, so that guessing passwords is slow.
  Duration failure_delay = std::chrono::seconds(1);
};

// A password to check against the password file, off the worker thread: PBKDF2 with hundreds of
// thousands of iterations takes milliseconds of CPU, which a worker must not spend while its
// other connections wait (TakeCredentialChecks, OnCredentialResult).
struct CredentialCheck {
  ConnectionId id = 0;
  std::string username;
  std::string password;
  std::shared_ptr<const auth::PasswordFile> passwords;  // the file to check against
};

// How the broker keeps its state (AttachStore).
struct Durability {
  // Where writes go and spilled queues are read back from. Null: nothing is kept.
  store::Store* store = nullptr;
  // True (durability = always | batch): acknowledgements wait for OnDurable. False (none): they
  // go at once, and OnDurable is only needed to read back spilled queue entries.
  bool acks_wait = true;
  // Wall-clock milliseconds since the Unix epoch at Instant{} (steady clock origin), so that
  // deadlines that outlive the process (session expiry, will delay, message expiry) are stored as
  // wall-clock times: wall(now) = wall_offset_ms + ms since Instant{}.
  std::int64_t wall_offset_ms = 0;
  // Set (by whoever writes the batches) while the store cannot write, a full disk say: QoS 1/2
  // PUBLISHes are then refused (5.0: PUBACK/PUBREC 0x97 Quota exceeded; 3.1.x: not
  // acknowledged) and nothing new is promised. Null: never.
  const std::atomic<bool>* failed = nullptr;
  // Queued messages of a persistent session kept in memory; the rest wait in the store only and
  // are read back as the head drains (an offline session costs memory for its head only).
  std::size_t queue_head = 32;
};

// What Restore() found.
struct RestoreCounts {
  std::size_t sessions = 0;
  std::size_t subscriptions = 0;
  std::size_t queued = 0;    // messages waiting in sessions' queues
  std::size_t inflight = 0;  // QoS 1/2 messages sent and not yet acknowledged, PUBRELs
  std::size_t incoming = 0;  // QoS 2 PUBLISHes received whose PUBREL is awaited
  std::size_t wills = 0;     // delayed wills pending (published on restore when due)
  std::size_t retained = 0;
  std::size_t expired_sessions = 0;  // dropped: their expiry passed while the broker was down
  std::size_t expired_messages = 0;  // dropped: their Message Expiry Interval passed
  // QoS 2 messages routed again to the sessions of workers that had not written their part.
  std::size_t rerouted = 0;
};

// Counters an operator cares about; monotonic.
struct Counters {
  std::uint64_t connections_accepted = 0;
  std::uint64_t messages_received = 0;                    // PUBLISH packets accepted from clients
  std::uint64_t messages_sent = 0;                        // PUBLISH packets written to clients
  std::array<std::uint64_t, 3> received_by_qos{};         // messages_received, by their QoS
  std::array<std::uint64_t, 3> sent_by_qos{};             // messages_sent, by their QoS
  std::array<std::uint64_t, 3> publish_bytes_received{};  // their payload bytes, by QoS
  std::array<std::uint64_t, 3> publish_bytes_sent{};
  std::uint64_t bytes_received = 0;        // MQTT bytes read (OnRead)
  std::uint64_t bytes_sent = 0;            // MQTT bytes written (OnWritten)
  std::uint64_t connections_closed = 0;    // connections released
  std::uint64_t dropped_queue_full = 0;    // QoS 1/2 deliveries dropped: session queue full
  std::uint64_t dropped_slow_qos0 = 0;     // QoS 0 deliveries dropped: output over high water
  std::uint64_t dropped_offline_qos0 = 0;  // QoS 0 deliveries to offline sessions (not queued)
  std::uint64_t dropped_too_large = 0;     // larger than the client's Maximum Packet Size (5.0)
  std::uint64_t dropped_expired = 0;       // Message Expiry Interval passed before sending (5.0)
  std::uint64_t protocol_errors = 0;       // connections closed for a protocol violation
  std::uint64_t refused_store_failed = 0;  // QoS 1/2 PUBLISHes refused: the store cannot write
  std::uint64_t refused_auth = 0;          // CONNECTs refused: password, user, anonymous, will ACL
  std::uint64_t denied_publish = 0;        // PUBLISHes the ACL did not allow (dropped)
  std::uint64_t denied_subscribe = 0;      // topic filters the ACL did not allow (SUBACK failure)
  std::uint64_t dropped_acl = 0;           // deliveries the ACL did not let the subscriber read
  std::uint64_t refused_topic_limits = 0;  // topics over max_topic_length / max_topic_levels
  std::uint64_t refused_subscription_limit = 0;  // filters over max_subscriptions_per_client
  std::uint64_t refused_retained_limit = 0;      // retained messages over the retained limits
  std::uint64_t throttled = 0;                   // times a connection's input paused for its rate
  std::uint64_t rate_disconnects = 0;            // connections closed for exceeding the rate
};

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarning };
using LogFn = std::function<void(LogLevel, std::string_view)>;

// The worker that keeps the session of `client_id` when there are `workers` workers.
std::uint16_t HomeAmong(std::string_view client_id, std::uint16_t workers);

class Broker {
 public:
  explicit Broker(Limits limits, LogFn log = {}, Cluster cluster = {});
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // A new network connection from `peer` (text for logs, e.g. "127.0.0.1:50312"). `cert_username`:
  // as SetCertUsername (for a connection handed over from another worker).
  ConnectionId Accept(std::string peer, Instant now, std::string cert_username = {});
  // The connection's client is at `peer` rather than where its socket says (a PROXY protocol
  // header): used for its log lines from now on. Before any byte of it is read.
  void SetPeer(ConnectionId id, std::string peer);
  // The connection's username comes from its verified TLS certificate (before any byte of it is
  // read): its CONNECT's User Name and Password are ignored, and no password is checked.
  void SetCertUsername(ConnectionId id, std::string username);
  // True while the broker wants no input from the connection: its CONNECT waits for a password
  // check or for its refusal, or it publishes faster than Limits::max_publish_rate. The net layer
  // stops reading it (and stops waiting for it to be readable); the broker marks it dirty
  // (TakeDirty) when it wants input again, and decodes what it has buffered meanwhile.
  bool InputPaused(ConnectionId id) const;
  // Where to read the connection's next bytes (at least one byte).
  std::span<std::uint8_t> ReadBuffer(ConnectionId id);
  // `n` bytes were read into ReadBuffer(id): decodes and handles every whole packet.
  void OnRead(ConnectionId id, std::size_t n, Instant now);
  // The peer closed the connection or the socket failed (no DISCONNECT: the will is published).
  void OnPeerClosed(ConnectionId id, Instant now);

  // A piece of a connection's pending output: bytes of the broker's (a packet header, a small
  // packet) or a payload shared by every subscriber it goes to.
  struct OutputChunk {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
  };
  // Fills `chunks` with the first pieces of the output waiting to be written, in order (for one
  // writev); returns how many it filled. More may follow: OutputSize() says how much in all.
  std::size_t Output(ConnectionId id, std::span<OutputChunk> chunks) const;
  // Bytes waiting to be written on the connection.
  std::size_t OutputSize(ConnectionId id) const;
  // The pending output as one copy, for tests and tools.
  std::vector<std::uint8_t> CopyOutput(ConnectionId id) const;
  // `n` bytes of the output were written.
  void OnWritten(ConnectionId id, std::size_t n, Instant now);
  // True when the connection is to be closed once its output is written.
  bool ShouldClose(ConnectionId id) const;
  // The socket is closed; forget the connection. Normally after ShouldClose(id) or
  // OnPeerClosed(id); otherwise the connection counts as lost (its will is published).
  void Release(ConnectionId id);
  // Connections with new output or a close request since the last call. The span is valid until
  // the next call (connections that become dirty meanwhile go to the next one); no allocation.
  std::span<const ConnectionId> TakeDirty();

  // Several workers. The worker whose broker keeps the session of `client_id` (or the shared
  // subscription group `key`).
  std::uint16_t HomeOf(std::string_view client_id) const;
  // Set when the connection's CONNECT belongs to another worker's session: the net layer then
  // calls TakeHandoff(id) and gives that worker the socket, the peer and the bytes, which it
  // passes to its broker's Accept() and OnRead() as if they had just arrived.
  std::optional<std::uint16_t> HandoffTarget(ConnectionId id) const;
  struct Handoff {
    std::string peer;
    std::string cert_username;        // SetCertUsername's, if any
    std::vector<std::uint8_t> input;  // every byte read from the connection, CONNECT first
  };
  // Forgets a connection HandoffTarget() names, without a trace (no will, no log) and returns what
  // the receiving worker needs.
  Handoff TakeHandoff(ConnectionId id);
  // Work from another worker's broker.
  void OnEnvelope(Envelope envelope, Instant now);
  // Moves the envelopes for other workers made since the last call into `out` (appended, in
  // order).
  void TakeOutbox(std::vector<Letter>& out);

  // The earliest time OnTimer has work (keep-alive, CONNECT timeout, session expiry), if any.
  std::optional<Instant> NextDeadline() const;
  void OnTimer(Instant now);

  // Persistence. AttachStore first (before any connection or Restore).
  void AttachStore(const Durability& durability);
  // Rebuilds the sessions homed on this worker (HomeOf) from the store, with their subscriptions,
  // in-flight messages, incoming QoS 2 ids and delayed wills, and (when `retained`; one worker
  // does it for all) the retained messages. Sessions and messages that expired meanwhile are
  // dropped (and deleted from the store by the next writes); wills due meanwhile are published.
  // Restored sessions are offline until their clients return. Errors name the damaged record.
  // (`sessions` false: the retained messages only. Workers may restore their sessions in
  // parallel, each on a thread of its own, once the retained messages are restored.)
  util::Result<RestoreCounts, std::string> Restore(Instant now, bool retained,
                                                   bool sessions = true);
  // Moves the writes made since the last call into `batch` (appended, in order) and returns their
  // epoch (1, 2, ... in order), to be passed to OnDurable once the batch is written (and synced,
  // for always and batch) and every batch before it is durable. The batch may be empty (writes
  // that cancelled out, with work waiting for them): it is durable once those before it are. 0
  // when there is nothing to wait for. Call once per loop turn, after the turn's
  // work and before posting TakeOutbox()'s envelopes, so that what this turn sent another worker
  // is written before anything that worker writes about it.
  std::uint64_t TakeWrites(store::Batch& batch);
  // Every batch up to `epoch` is written and durable: held acknowledgements go out, confirmations
  // go to the workers that wait for them, spilled queue entries can be read back.
  void OnDurable(std::uint64_t epoch, Instant now);

  // Who may connect and what they may do; null (the default): anyone, anything. Connections
  // already in keep the policy they were let in with; new ones get this one.
  void SetAccess(std::shared_ptr<const AccessPolicy> policy) { access_ = std::move(policy); }
  // Moves the password checks asked for since the last call into `out` (appended). Each one's
  // answer goes to OnCredentialResult, from the worker's thread, whenever it is ready.
  void TakeCredentialChecks(std::vector<CredentialCheck>& out);
  // The answer to a CredentialCheck: the CONNECT goes on, or is refused after the failure
  // delay. Ignored when the connection is gone.
  void OnCredentialResult(ConnectionId id, bool ok, Instant now);

  // The resource limits from now on (a reload): every field from connect_timeout to
  // max_client_id_length; what is checked per packet or per new connection or session uses them
  // at once, and what a connection was set up with (its decoder's maximum packet size) stays.
  // The fields a CONNACK announces (maximum_qos to max_session_expiry_s) and client_id_seed are
  // not changed: connected clients were told them.
  void SetLimits(const Limits& limits);
  const Limits& limits() const { return limits_; }

  // Publishes a message of the broker's own ($SYS/ topics): QoS 0, retained when `retain`, to
  // every matching subscription (on every worker), as a client's would be.
  void PublishSystem(std::string_view topic, std::string_view payload, bool retain, Instant now);

  // The server is stopping: every MQTT 5 client gets DISCONNECT 0x8B (Server shutting down) and
  // every connection is to be closed once its output is written (ShouldClose). A session that
  // ends with its connection ends, and its will is published; one that outlives it is left as it
  // is, will included (what the store holds is what a restart restores, as after a crash). No
  // input is read any more and the timers stop.
  void BeginShutdown(Instant now);
  bool shutting_down() const { return shutting_down_; }

  // MQTT 5 enhanced authentication; nullptr (the default): every method is refused with 0x8C.
  void set_authenticator(Authenticator* authenticator) { authenticator_ = authenticator; }

  const Counters& counters() const { return counters_; }
  std::size_t connection_count() const;
  std::size_t session_count() const;
  // Figures counted across sessions: those with a connection, messages waiting in session
  // queues (spilled ones included), and messages sent and not yet acknowledged.
  struct SessionGauges {
    std::size_t clients_connected = 0;
    std::size_t queued = 0;
    std::size_t inflight = 0;
  };
  // Walks at most `max_slots` (> 0) session slots on from where the last call stopped; a walk
  // that reaches the last slot makes its sums the figures returned, and the next walk begins.
  // The work per call is bounded however many sessions there are (a stats tick never stalls the
  // worker); with more slots than `max_slots`, the figures are those of the last whole walk.
  const SessionGauges& StepSessionGauges(std::size_t max_slots);
  std::size_t retained_count() const { return retained_->size(); }
  std::size_t subscription_count() const { return index_.size(); }

 private:
  struct Connection;
  struct Session;
  struct Will;
  struct Delivery;
  struct SharedGroup;
  struct OutboundAliases;
  struct PayloadRef;
  struct PendingOutput;

  Connection* Find(ConnectionId id) const;
  // The session with id `id` on this worker, or nullptr.
  Session* FindSession(SubscriberId id) const;
  // Frees the connection's slot (and the connection).
  void Forget(ConnectionId id);
  void MarkDirty(Connection& c);
  // Gives `c` a PendingOutput from the pool when it has none; returns it.
  PendingOutput& AcquireOut(Connection& c);
  // All of `c`'s output is written: its PendingOutput goes back to the pool.
  void ReleaseOutput(Connection& c);
  void Send(Connection& c, const mqtt::Packet& packet);
  // Sends `with` if it encodes to at most `max_packet_size` bytes, else `without` (5.0: optional
  // properties such as a Reason String go only when the packet stays within the client's
  // Maximum Packet Size).
  void SendFitting(Connection& c, const mqtt::Packet& with, const mqtt::Packet& without,
                   std::uint32_t max_packet_size);
  // 5.0: DISCONNECT with `reason` and `why` as its Reason String (3.1.x: nothing is sent).
  void SendDisconnect(Connection& c, mqtt::ReasonCode reason, std::string_view why);
  // Ends a connection for a protocol violation: counted, DISCONNECT `reason` (5.0), will sent.
  void Reject(Connection& c, mqtt::ReasonCode reason, std::string_view why, Instant now);
  void Close(Connection& c, std::string_view why, bool publish_will, Instant now);
  void ArmTimer(Connection& c);

  void HandlePacket(Connection& c, const mqtt::Packet& packet, Instant now);
  void HandleDecodeError(Connection& c, mqtt::DecodeError error, Instant now);
  void HandleConnect(Connection& c, const mqtt::Connect& connect, Instant now);
  // Refuses `connect` with CONNACK `reason` (with `why` as its 5.0 Reason String when it fits the
  // client's Maximum Packet Size) and closes the connection.
  void RefuseConnect(Connection& c, const mqtt::Connect& connect, mqtt::ReasonCode reason,
                     std::string_view why, Instant now);
  // After the credentials are checked: enhanced authentication, then AcceptConnect.
  void ContinueConnect(Connection& c, const mqtt::Connect& connect, Instant now);
  // What the password file, the anonymous rule and a certificate say of `connect`: allowed (true),
  // refused (false, with the reason in `refusal`), or nullopt when a password must be checked
  // (a CredentialCheck is queued).
  std::optional<bool> CheckCredentials(Connection& c, const mqtt::Connect& connect,
                                       mqtt::ReasonCode& refusal, std::string& why);
  // Refuses the CONNECT with `reason` once AccessPolicy::failure_delay has passed.
  void RefuseLater(Connection& c, mqtt::ReasonCode reason, std::string why, Instant now);
  // Decodes and handles the packets buffered for `c`, while its input is not paused.
  void DrainInput(Connection& c, Instant now);
  // The publish rate (Limits::max_publish_rate): takes a token for a PUBLISH; pauses the input
  // when none is left, and closes a connection that stayed over the rate too long.
  void TakePublishToken(Connection& c, Instant now);
  void ArmResume(Connection& c, Instant when);
  // The topic limits: false (counted) when `whole` is longer, or `matched` (what is matched:
  // a shared subscription's filter without its "$share/{group}/") deeper, than they allow.
  bool WithinTopicLimits(std::string_view whole, std::string_view matched);
  // Whether the connection's ACL lets it read `d` (counted when not).
  bool MayRead(const Connection& c, const Delivery& d);
  // The CONNECT is acceptable (and authenticated): attach the session, CONNACK, resend.
  void AcceptConnect(Connection& c, const mqtt::Connect& connect, Instant now,
                     mqtt::BinaryView auth_data);
  void HandleAuth(Connection& c, const mqtt::Auth& auth, Instant now);
  void HandleDisconnect(Connection& c, const mqtt::Disconnect& disconnect, Instant now);
  void HandlePublish(Connection& c, const mqtt::Publish& publish, Instant now);
  void HandlePuback(Connection& c, std::uint16_t packet_id);
  void HandlePubrec(Connection& c, std::uint16_t packet_id);
  void HandlePubrel(Connection& c, std::uint16_t packet_id);
  void HandlePubcomp(Connection& c, std::uint16_t packet_id);
  void HandleSubscribe(Connection& c, const mqtt::Subscribe& subscribe);
  void HandleUnsubscribe(Connection& c, const mqtt::Unsubscribe& unsubscribe);

  // Routing and delivery. Publish keeps a retained message, routes `message` here and sends it
  // to the other workers; false when no subscription can match (5.0: PUBACK 0x10).
  // (`retained`: the caller already kept it as the topic's retained message, with Retain.)
  bool Publish(const MessageRef& message, SubscriberId publisher, std::string_view publisher_id,
               bool retained = false);
  // Keeps a retained message (or deletes one, for an empty payload) within the retained limits,
  // and writes it to the store; false (counted) when the limits refuse it.
  bool Retain(const MessageRef& message);
  // Route returns false when no subscription here matched.
  bool Route(const MessageRef& message, SubscriberId publisher, std::uint64_t publisher_hash);
  void RouteShared(SharedGroup& group, const MessageRef& message, std::uint64_t publisher_hash);
  // Gives `d` to `member` of `group`: delivered here, or sent to its worker. `keep`: the member
  // keeps it even if it went offline meanwhile (nobody else could take it).
  void GiveToMember(const SharedGroup& group, const Subscription& member, Delivery d,
                    bool keep = false);
  void Post(std::uint16_t to, Envelope envelope);
  void Deliver(Session& s, Delivery d);
  bool Enqueue(Session& s, Delivery d);
  void Pump(Session& s);  // sends queued messages while the window and the output allow
  // Sends a new QoS 0 message, or a QoS 1/2 one under a fresh packet id (then in flight).
  void Transmit(Session& s, Connection& c, Delivery d);
  // Encodes the PUBLISH; false when nothing went out (too large for the client, or closing).
  bool SendPublish(Connection& c, const Delivery& d, std::uint16_t packet_id, bool dup);
  // Appends the header of `p` (all but its payload) to `out`; false, logged, when it cannot be
  // encoded for `version`.
  bool EncodeHeader(const mqtt::Publish& p, mqtt::ProtocolVersion version,
                    std::vector<std::uint8_t>& out);
  // Adds `ref` to the output of `c` (after the bytes it has now).
  void AppendRef(Connection& c, PayloadRef ref);
  // SendPublish for a PUBLISH with nothing of the receiver's own (QoS 0, no identifier, alias or
  // expiry): the header shared in the message is written, as the payload is. nullopt when the
  // shared header is not available (another worker is encoding it): SendPublish encodes one.
  std::optional<bool> SendSharedHeader(Connection& c, const Delivery& d, const mqtt::Publish& p);
  void Resend(Session& s, Connection& c);
  std::uint16_t NextPacketId(Session& s);
  // How many QoS 1/2 PUBLISHes may be unacknowledged on `c`.
  std::size_t Window(const Connection& c) const;
  // True when a message to `s` would go out now rather than wait in its queue.
  bool Ready(const Session& s) const;
  void PublishWill(Will will, Instant now);

  // Subscriptions. `key` is the filter as subscribed ("$share/g/f" for a shared one).
  void RemoveSubscription(Session& s, const std::string& key, bool shared);
  // At the home of group `key`: `member` joins it (or changes its options), leaves it, is online
  // or not. The others send these as envelopes to the home.
  void JoinGroup(const std::string& key, const Subscription& member);
  // JoinGroup here when this worker is the group's home, else by envelope to its home.
  void JoinGroupAtHome(const std::string& key, const Subscription& member);
  void LeaveGroup(const std::string& key, SubscriberId member);
  void SetMemberOnline(const std::string& key, SubscriberId member, bool online);
  // Tells the homes of `s`'s groups that it is online or not.
  void AnnounceOnline(const Session& s, bool online);
  // Picks the member of `group` to get a message, skipping `exclude`; nullptr when none can.
  const Subscription* PickMember(SharedGroup& group, std::uint64_t publisher_hash,
                                 SubscriberId exclude, bool online_only);
  // At a group's home: gives `message`, which `from` had, to another member (back to `from` to
  // wait in its session when none can take it and `from` is still there).
  void Reroute(SubscriberId group_id, SubscriberId from, bool session_ended, Delivery d);
  // index_ changes, told to the cluster's summary.
  void IndexAdd(std::string_view filter, const Subscription& subscription);
  void IndexRemove(std::string_view filter, SubscriberId subscriber);
  // QoS 1/2 messages waiting for, or unacknowledged by, a shared subscription member that went
  // away go to another member of their group.
  void RehomeShared(Session& s, bool session_ends);

  // Persistence (broker_store.cc). Each Store*/Unstore* turns one change of a persistent session
  // (Session::stored) into writes; a session without `stored` writes nothing.
  bool storing() const { return durability_.store != nullptr; }
  store::UnixMs Wall(Instant t) const;
  store::MessageRecord ToRecord(const Message& m) const;
  // The message of a record (pooled: from messages_, else allocated on its own, as Restore must,
  // since it runs before the worker thread owns the pool); nullopt when it is damaged or
  // `expired` (set) at `now`.
  std::optional<MessageRef> FromRecord(const store::MessageRecord& r, Instant now, bool pooled,
                                       bool* expired);
  void StoreSession(Session& s, Instant disconnected_at);     // kNever: connected
  void StoreWill(Session& s, const Will* will, Instant due);  // will null: none (deleted)
  void UnstoreSession(Session& s);
  void StoreSubscription(Session& s, const std::string& key, const Subscription& sub, bool shared);
  void UnstoreSubscription(Session& s, const std::string& key);
  // Writes `d`'s record in `state` (giving it a sequence number when it has none).
  // `spilling`: the record stays in the store only, unchanged, until it is read back.
  void StoreDelivery(Session& s, Delivery& d, store::DeliveryState state, std::uint16_t packet_id,
                     bool spilling = false);
  void UnstoreDelivery(Session& s, Delivery& d);
  // Queues `d` in the store only (the session's queue in memory is full); false when it is not.
  bool Spill(Session& s, Delivery& d);
  // Reads spilled messages back into the queue; false when none could be read now.
  bool LoadSpilled(Session& s);
  void StoreRetained(const Message& m);
  // Counted changes that a client is told about only once they are durable: writes and work
  // sent to other workers that they confirm. Compare two readings around handling a packet.
  std::uint64_t promises() const { return writes_.changes() + confirm_posts_; }
  // What `c` is sent from now on waits until everything written (here and on other workers) so
  // far is durable.
  void Hold(Connection& c);
  void ReleaseHolds();
  void SendConfirms(const std::vector<std::uint64_t>& upto);
  // During Restore: routes to sessions only whose worker under `restore_workers_` workers (the
  // count when the record was written) is in `restore_homes_` (a crash came before those workers
  // wrote their part of a QoS 2 message's routing).
  const std::vector<std::uint16_t>* restore_homes_ = nullptr;
  std::uint16_t restore_workers_ = 1;
  // The wills and writes of a restore.
  util::Result<void, std::string> RestoreRetained(Instant now, RestoreCounts& counts);
  util::Result<void, std::string> RestoreSessions(Instant now, RestoreCounts& counts);

  // Sessions.
  Session& CreateSession(const std::string& client_id, bool clean);
  void DestroySession(Session& s);
  void Detach(Session& s, Instant now);
  void PushSessionTimer(Session& s, Instant when, bool will);
  std::string GenerateClientId();

  Limits limits_;
  LogFn log_;
  Cluster cluster_;
  // First, so that it outlives every message the members below hold.
  MessagePool own_messages_;
  MessagePool& messages_;
  Authenticator* authenticator_ = nullptr;
  std::shared_ptr<const AccessPolicy> access_;
  std::vector<CredentialCheck> credential_checks_;
  Counters counters_;
  SubscriptionIndex index_;
  std::unique_ptr<ConcurrentRetainedStore> own_retained_;  // when the cluster has none
  ConcurrentRetainedStore* retained_ = nullptr;
  std::vector<Letter> outbox_;
  std::uint64_t next_connection_id_ = 0;  // counts connections: ids' sequence numbers
  std::uint64_t next_session_seq_ = 0;    // see CreateSession
  std::uint64_t next_group_id_ = 1;
  std::uint64_t generated_ids_ = 0;
  // Connections by slot (SlotOf their id), in place: no allocation, pointer or hash node of their
  // own. A released slot is reset and reused (free_slots_), so the table is as long as the most
  // connections there were at once. (Mutable: Find() is const and returns a usable pointer.)
  mutable util::StableSlots<Connection> connections_;
  std::vector<std::uint32_t> free_slots_;
  std::size_t connection_count_ = 0;
  // Keyed by a view of the session's own client_id.
  std::unordered_map<std::string_view, Session*> sessions_;
  // StepSessionGauges: the last whole walk's figures, and the walk under way.
  SessionGauges gauges_;
  SessionGauges gauge_sums_;
  std::size_t gauge_cursor_ = 0;
  // Sessions in place, by the slot in their id's low bits (FindSession); like connections_.
  mutable util::StableSlots<Session> session_slots_;
  std::vector<std::uint32_t> free_session_slots_;
  // Shared subscription groups by "$share/{group}/{filter}", and by the id they have in index_.
  std::unordered_map<std::string, std::unique_ptr<SharedGroup>> shared_groups_;
  std::unordered_map<SubscriberId, SharedGroup*> shared_by_id_;
  std::vector<ConnectionId> dirty_;
  std::vector<ConnectionId> taken_dirty_;  // what the last TakeDirty() returned
  struct TimerEntry {
    Instant when;
    ConnectionId id;
  };
  // Min-heap of deadlines, at most one entry per connection: a connection whose deadline moved
  // later (keep-alive activity) is pushed again when its old entry comes up, so activity costs
  // no heap operation.
  std::vector<TimerEntry> timers_;
  // Connections whose input is paused for their publish rate, by when they may go on (min-heap).
  std::vector<TimerEntry> resume_timers_;
  // Min-heap of session deadlines: expiry (5.0 Session Expiry Interval) and delayed wills (Will
  // Delay Interval). An entry whose generation no longer matches its session (reconnected, or
  // expiry changed) is stale and skipped.
  struct SessionTimer {
    Instant when;
    SubscriberId session;
    std::uint32_t generation;
    bool will;  // publish the delayed will, rather than end the session
  };
  std::vector<SessionTimer> session_timers_;
  // The latest time any call brought, for the few paths that have no `now` of their own.
  Instant last_now_{};
  // Read buffers and PendingOutputs (with their buffers) of connections that have nothing pending,
  // for the next connection that has (an idle connection holds neither). At most 256 of each
  // (kPoolMax in broker_internal.h); buffers of at most kPooledBufferMax bytes and kPooledRefsMax
  // payload references are kept.
  static constexpr std::size_t kPooledBufferMax = std::size_t{64} << 10;
  std::vector<std::vector<std::uint8_t>> read_pool_;
  std::vector<std::unique_ptr<PendingOutput>> output_pool_;
  struct PayloadRef {
    std::size_t at = 0;  // follows the connection's own bytes [0, at)
    MessageRef message;
    // 1 + the index of the message's shared header that goes first; 0: none (the header is in
    // the connection's own bytes).
    std::uint8_t header = 0;

    mqtt::BinaryView header_view() const {
      return header == 0 ? mqtt::BinaryView() : mqtt::BinaryView(message->header(header - 1));
    }
    std::size_t size() const { return header_view().size() + message->payload.size(); }
  };
  static constexpr std::size_t kPooledRefsMax = 4096;
  // Scratch reused by Route so that a publish does not allocate.
  std::vector<const Subscription*> matches_;
  std::vector<MessageRef> retained_scratch_;
  // Scratch for the properties of an outgoing PUBLISH that differ per receiver.
  mqtt::PropertiesBuilder publish_properties_;

  // Persistence.
  Durability durability_;
  bool shutting_down_ = false;  // BeginShutdown()
  bool restoring_ = false;      // in Restore(): on the main thread, so no pooled messages
  // The message whose record part was encoded last, and that part (StoreDelivery); the part of
  // a released record (no message).
  MessageRef encoded_;
  std::string encoded_part_;
  std::string released_part_ = store::EncodeMessagePart({});
  WriteSet writes_;
  std::uint64_t taken_epoch_ = 0;    // the last epoch TakeWrites returned
  std::uint64_t durable_epoch_ = 0;  // the last epoch OnDurable reported
  // Output held until what it promises is durable: a ticket is released when its epoch is durable
  // and every other worker has confirmed the work sent to it up to `remote` (indexed by worker;
  // empty for one worker). Tickets are released in order of id.
  struct Ticket {
    std::uint64_t id = 0;
    std::uint64_t epoch = 0;
    std::vector<std::uint64_t> remote;
  };
  std::deque<Ticket> tickets_;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t released_ticket_ = 0;  // tickets up to this id are released
  std::vector<ConnectionId> held_;     // connections with held output (PendingOutput::listed)
  // Per other worker: confirmable envelopes posted to it (numbered), how many it confirmed, the
  // highest number received from it, and the highest confirmed back to it.
  std::vector<std::uint64_t> confirm_sent_;
  std::vector<std::uint64_t> confirmed_;
  std::vector<std::uint64_t> confirm_seen_;
  std::vector<std::uint64_t> confirm_told_;
  std::uint64_t confirm_posts_ = 0;
  // Confirmations that go out once an epoch is durable (the work they confirm wrote in it).
  struct DueConfirms {
    std::uint64_t epoch = 0;
    std::vector<std::uint64_t> upto;
  };
  std::deque<DueConfirms> due_confirms_;
  // Spilled queue records and the epoch that writes them: once it is durable they can be read
  // back (Session::Stored::spill_written).
  struct SpillMark {
    std::uint64_t epoch = 0;
    SubscriberId session = 0;
    std::uint64_t seq = 0;
  };
  std::deque<SpillMark> spill_marks_;
};

}  // namespace tinymq::broker
