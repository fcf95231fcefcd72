#pragma once

// The broker core's own types (broker*.cc): sessions, connections, deliveries
// and the ids' layout. Not part of the broker's interface; nothing outside the broker includes it.

#include <algorithm>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/util/fifo.h"

namespace tinymq::broker {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

inline constexpr Instant kNever = Instant::max();
inline constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;  // 5.0 §3.1.2.11.2
// Shared subscription groups are subscribers in the index too; this bit keeps their ids apart from
// the sessions'.
inline constexpr SubscriberId kSharedBit = SubscriberId{1} << 63;
// Session and group ids carry the index of their worker above this bit, so that any broker can
// tell where a member's session or a group lives.
inline constexpr int kWorkerShift = 48;
inline constexpr SubscriberId kWorkerMask = 0x7FFF;

inline std::uint16_t WorkerOf(SubscriberId id) {
  return static_cast<std::uint16_t>((id >> kWorkerShift) & kWorkerMask);
}
// Below the worker: a session id's sequence number (bits 24-47, never 0) and slot (bits 0-23).
inline constexpr int kSessionSeqShift = 24;
inline constexpr SubscriberId kSessionSlotMask = (SubscriberId{1} << kSessionSeqShift) - 1;
inline constexpr SubscriberId kSessionSeqModulus =
    (SubscriberId{1} << (kWorkerShift - kSessionSeqShift)) - 1;

inline QoS MinQos(QoS a, QoS b) {
  return static_cast<unsigned>(a) < static_cast<unsigned>(b) ? a : b;
}
inline QoS MaxQos(QoS a, QoS b) {
  return static_cast<unsigned>(a) > static_cast<unsigned>(b) ? a : b;
}

// A will as the broker keeps it once its CONNECT buffer is gone.
struct Broker::Will {
  std::string topic;
  std::vector<std::uint8_t> payload;
  QoS qos = QoS::k0;
  bool retain = false;
  std::vector<std::uint8_t> properties;  // 5.0 will properties as received
};

// One message on its way to one session.
struct Broker::Delivery {
  MessageRef message;
  QoS qos = QoS::k1;
  bool retain = false;
  // The shared subscription group it was given to this session through (0: none), so that it
  // can go to another member if this one goes away.
  SubscriberId group = 0;
  // 5.0 Subscription Identifiers of the matching subscriptions (§3.3.2.3.8); usually none or one.
  std::vector<std::uint32_t> ids;
  // Its record in the store (QueueKey(client id, seq)) when its session is persistent; 0: none.
  std::uint64_t seq = 0;
};

// A shared subscription "$share/{name}/{filter}" (5.0 §4.8.2): one entry in the index, whose
// matches go to one member each.
struct Broker::SharedGroup {
  SubscriberId id = 0;  // its subscriber id in index_ (kSharedBit set)
  std::string key;      // "$share/{name}/{filter}"
  std::string filter;
  std::vector<Subscription> members;  // each member session's options and identifier
  std::vector<SubscriberId> offline;  // members on other workers that are offline
  std::size_t next = 0;               // round robin position
};

struct Broker::Session {
  // A QoS 1/2 PUBLISH sent and not yet fully acknowledged. The list keeps PUBLISHes in the order
  // first sent; an entry moves to the end when its PUBREC arrives (see HandlePubrec).
  struct InFlight {
    std::uint16_t packet_id = 0;
    Delivery delivery;
    bool released = false;  // QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP
    // Not yet sent again on the current connection: on reconnection the client's Receive Maximum
    // may be smaller than what was in flight, and the rest waits for acknowledgements.
    bool awaiting_resend = false;
  };

  SubscriberId id = 0;
  std::string client_id;
  Connection* connection = nullptr;
  struct Subscribed {
    QoS qos = QoS::k0;    // granted
    bool shared = false;  // a 5.0 "$share/{name}/{filter}" (to a 3.1.x client, a plain filter)
  };
  // By the filter as subscribed; allocated with the first (a session without any holds nothing).
  using Subscriptions = std::unordered_map<std::string, Subscribed>;
  std::unique_ptr<Subscriptions> subscriptions;
  std::list<InFlight> inflight;
  // Packet id -> entry of `inflight`; allocated with the first message in flight.
  using InFlightIndex = std::unordered_map<std::uint16_t, std::list<InFlight>::iterator>;
  std::unique_ptr<InFlightIndex> inflight_by_id;
  util::Fifo<Delivery> queue;  // waiting for the client, the in-flight window or the output
  std::size_t queued_bytes = 0;
  // Packet ids of QoS 2 PUBLISHes received whose PUBREL is awaited, sorted (at most the broker's
  // Receive Maximum for 5.0 clients; a vector is smaller than a hash set and fast at that size),
  // allocated with the first.
  std::unique_ptr<std::vector<std::uint16_t>> incoming_qos2;
  // 5.0: the will of the last connection, waiting for its Will Delay Interval [MQTT-3.1.3-9].
  std::unique_ptr<Will> delayed_will;
  // What a persistent session of a broker with a store keeps about its records; null otherwise
  // (a session that ends with its connection, or no store), so that only those pay for it.
  struct Stored {
    std::uint64_t next_seq = 1;  // the sequence number of its next queue record
    // Queued messages kept in the store only (they follow `queue`): how many, their payload bytes,
    // the sequence number of the first, and up to which sequence number they are written (can be
    // read back); spilled ones are contiguous except where a restore found gaps.
    std::size_t spilled = 0;
    std::size_t spilled_bytes = 0;
    std::uint64_t spill_from = 0;
    std::uint64_t spill_written = 0;
    std::uint8_t level = 4;     // protocol level of its last connection (3, 4, 5)
    bool has_will = false;      // a will record is stored
    bool load_waiting = false;  // Pump wants spilled messages that are not written yet
  };
  std::unique_ptr<Stored> stored;
  // The small fields together, so that padding does not grow every session.
  std::uint32_t generation = 0;       // bumped on every attach: older session timers are stale
  std::uint32_t awaiting_resend = 0;  // in-flight entries with awaiting_resend set
  // 5.0 Session Expiry Interval in seconds once the connection has ended; kNeverExpires for a
  // 3.1.x persistent session and for 0xFFFFFFFF.
  std::uint32_t expiry_s = 0;
  std::uint16_t last_packet_id = 0;
  // Discarded when its connection ends (3.1.1 Clean Session 1; 5.0 Session Expiry 0).
  bool ends_with_connection = true;
  bool dropping = false;  // a drop was logged; cleared when the queue has room again

  // The in-flight entry of `packet_id`, or inflight.end().
  std::list<InFlight>::iterator FindInFlight(std::uint16_t packet_id) {
    if (inflight_by_id == nullptr) {
      return inflight.end();
    }
    auto it = inflight_by_id->find(packet_id);
    return it == inflight_by_id->end() ? inflight.end() : it->second;
  }
  void AddInFlight(InFlight entry) {
    if (inflight_by_id == nullptr) {
      inflight_by_id = std::make_unique<InFlightIndex>();
    }
    inflight.push_back(std::move(entry));
    inflight_by_id->emplace(inflight.back().packet_id, std::prev(inflight.end()));
  }
  // Forgets an in-flight entry; returns the one after it.
  std::list<InFlight>::iterator EraseInFlight(std::list<InFlight>::iterator it) {
    if (it->awaiting_resend) {
      --awaiting_resend;
    }
    inflight_by_id->erase(it->packet_id);
    return inflight.erase(it);
  }

  bool AwaitsPubrel(std::uint16_t packet_id) const {
    return incoming_qos2 != nullptr &&
           std::binary_search(incoming_qos2->begin(), incoming_qos2->end(), packet_id);
  }
  void AwaitPubrel(std::uint16_t packet_id) {
    if (incoming_qos2 == nullptr) {
      incoming_qos2 = std::make_unique<std::vector<std::uint16_t>>();
    }
    incoming_qos2->insert(std::lower_bound(incoming_qos2->begin(), incoming_qos2->end(), packet_id),
                          packet_id);
  }
  // False when `packet_id` was not awaited.
  bool TakePubrel(std::uint16_t packet_id) {
    if (incoming_qos2 == nullptr) {
      return false;
    }
    auto it = std::lower_bound(incoming_qos2->begin(), incoming_qos2->end(), packet_id);
    if (it == incoming_qos2->end() || *it != packet_id) {
      return false;
    }
    incoming_qos2->erase(it);
    return true;
  }
};

// The topic aliases the broker has set up towards one 5.0 client (5.0 §3.3.2.3.4): the most
// recently used topics keep theirs; a new topic takes a free alias or the least recently used.
struct Broker::OutboundAliases {
  struct Entry {
    std::string topic;
    std::uint16_t alias = 0;
  };
  std::uint16_t capacity = 0;
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> by_topic;  // keys: lru topics
};

// A connection's pending output: its own bytes (packets, PUBLISH headers) and the payloads it
// sends by reference.
struct Broker::PendingOutput {
  std::vector<std::uint8_t> out;
  std::size_t out_begin = 0;  // bytes of `out` already written
  // Payloads sent by reference (copy-free fan-out: one copy of a payload, in its Message, goes to
  // every subscriber): the payload of `message` goes out right after out[0, at). In order of `at`.
  std::vector<PayloadRef> refs;
  std::size_t ref_begin = 0;     // refs already written
  std::size_t ref_offset = 0;    // bytes of refs[ref_begin]'s payload already written
  std::size_t refs_pending = 0;  // payload bytes of refs not yet written
  // Output held back until what it promises is durable (Broker::Hold): from byte `at` of the
  // stream (counted from the first byte this PendingOutput took) nothing is written before ticket
  // `ticket` is released. In order of `at` and `ticket`.
  struct Hold {
    std::size_t at = 0;
    std::uint64_t ticket = 0;
  };
  std::vector<Hold> holds;
  std::size_t hold_begin = 0;  // holds released
  std::size_t ref_total = 0;   // payload bytes of every ref appended, written or not
  std::size_t written = 0;     // bytes written
  bool listed = false;         // in Broker::held_

  std::size_t pending() const { return out.size() - out_begin + refs_pending; }
  // The stream position after the last byte appended.
  std::size_t end() const { return out.size() + ref_total; }
  bool held() const { return hold_begin < holds.size(); }
  // Bytes that may be written now: up to the first hold.
  std::size_t writable() const { return held() ? holds[hold_begin].at - written : pending(); }

  // Calls f(data, size) for each piece of the pending output, in order, until f returns false.
  template <typename F>
  void ForEachPending(F f) const {
    if (held()) {  // only what comes before the first hold
      std::size_t left = writable();
      ForEachAll([&](const std::uint8_t* data, std::size_t size) {
        if (left == 0) {
          return false;
        }
        const std::size_t n = std::min(size, left);
        left -= n;
        return f(data, n) && left > 0;
      });
      return;
    }
    ForEachAll(f);
  }
  template <typename F>
  void ForEachAll(F f) const {
    std::size_t at = out_begin;
    std::size_t offset = ref_offset;
    for (std::size_t i = ref_begin; i < refs.size(); ++i) {
      if (refs[i].at > at && !f(out.data() + at, refs[i].at - at)) {
        return;
      }
      at = refs[i].at;
      const mqtt::BinaryView header = refs[i].header_view();
      if (offset < header.size() && !f(header.data() + offset, header.size() - offset)) {
        return;
      }
      const mqtt::BinaryView payload = refs[i].message->payload_view();
      const std::size_t into = offset > header.size() ? offset - header.size() : 0;
      if (payload.size() > into && !f(payload.data() + into, payload.size() - into)) {
        return;
      }
      offset = 0;
    }
    if (out.size() > at) {
      f(out.data() + at, out.size() - at);
    }
  }
};

struct Broker::Connection {
  // kHandedOff: the CONNECT belongs to another worker's session; input is kept, not decoded.
  // kVerifying: the CONNECT waits for its password check; kRefusing: for its refusal's delay.
  // Input is paused in both (InputPaused).
  enum class State : std::uint8_t {
    kAwaitConnect,
    kVerifying,
    kRefusing,
    kAuthenticating,
    kConnected,
    kClosing,
    kHandedOff
  };

  ConnectionId id = 0;
  std::string peer;
  mqtt::Decoder decoder;
  // What is waiting to be written; from the broker's pool while there is some (an idle
  // connection holds none).
  std::unique_ptr<PendingOutput> io;
  Session* session = nullptr;
  Instant deadline = kNever;       // CONNECT timeout, then keep-alive
  Instant heap_deadline = kNever;  // `when` of this connection's live entry in the timer heap
  // The small fields together, so that padding does not grow every connection.
  // What a 5.0 client said it can take (CONNECT properties); 3.1.x clients have no limits here.
  std::uint32_t client_max_packet_size = UINT32_MAX;
  std::uint16_t client_receive_maximum = 65535;
  std::uint16_t keep_alive = 0;
  std::uint16_t handoff_to = 0;  // the worker, in kHandedOff
  State state = State::kAwaitConnect;
  ProtocolVersion version = ProtocolVersion::kV311;
  bool in_timer_heap = false;
  bool dirty = false;
  // 5.0 Request Problem Information: 0 forbids Reason Strings outside CONNACK, DISCONNECT and
  // PUBLISH [MQTT-3.1.2-29].
  bool problem_information = true;
  // Enhanced authentication (5.0 §4.12), for a connection that asked for it: the method, the
  // exchange in progress, and the CONNECT (re-encoded) that waits for it to succeed.
  struct AuthState {
    std::string method;
    std::unique_ptr<AuthExchange> exchange;
    std::vector<std::uint8_t> pending_connect;
  };
  // What few connections use, in one allocation made with the first of it (Extra()), so that an
  // idle connection pays one pointer for all of it.
  struct Extras {
    std::unique_ptr<Will> will;
    // Inbound topic aliases: the topic of alias i at index i - 1 (allocated on first use).
    std::unique_ptr<std::string[]> aliases_in;
    std::unique_ptr<OutboundAliases> aliases_out;  // null when no alias is used towards the client
    std::unique_ptr<AuthState> auth;
    // The username the connection was let in with: its certificate's (`cert_user`) or its
    // CONNECT's; empty for an anonymous client.
    std::string username;
    bool cert_user = false;
    // kVerifying: the CONNECT (re-encoded) waiting for its password check. kRefusing: the
    // CONNACK's reason and the log's, sent once the failure delay passed.
    std::vector<std::uint8_t> held_connect;
    mqtt::ReasonCode refusal = mqtt::ReasonCode::kNotAuthorized;
    std::string refusal_why;
    // What the ACL lets this client do (null: no ACL).
    std::shared_ptr<const auth::ClientAcl> acl;
    // Limits::max_publish_rate: a token bucket.
    struct Rate {
      double tokens = 0;
      Instant refilled{};
      Instant over_since = kNever;  // since when the bucket keeps running dry; kNever: it is not
      bool paused = false;
    };
    std::unique_ptr<Rate> rate;
  };
  std::unique_ptr<Extras> extras;

  Extras& Extra() {
    if (extras == nullptr) {
      extras = std::make_unique<Extras>();
    }
    return *extras;
  }
  AuthState* auth() const { return extras == nullptr ? nullptr : extras->auth.get(); }
  const auth::ClientAcl* acl() const { return extras == nullptr ? nullptr : extras->acl.get(); }
  bool throttled() const {
    return extras != nullptr && extras->rate != nullptr && extras->rate->paused;
  }
  OutboundAliases* aliases_out() const {
    return extras == nullptr ? nullptr : extras->aliases_out.get();
  }

  std::size_t pending() const { return io == nullptr ? 0 : io->pending(); }
  template <typename F>
  void ForEachPending(F f) const {
    if (io != nullptr) {
      io->ForEachPending(f);
    }
  }
};

// Helpers the broker's .cc files share. ------------------------------------------------------

// Moves everything in `from` to the end of `out`, leaving `from` empty (a swap when `out` is
// empty, so that buffers are reused rather than copied).
template <typename T>
void MoveAppend(std::vector<T>& from, std::vector<T>& out) {
  if (out.empty()) {
    out.swap(from);
    return;
  }
  for (T& item : from) {
    out.push_back(std::move(item));
  }
  from.clear();
}

inline std::string_view VersionName(ProtocolVersion v) {
  switch (v) {
    case ProtocolVersion::kV31: return "MQTT 3.1";
    case ProtocolVersion::kV311: return "MQTT 3.1.1";
    case ProtocolVersion::kV5: return "MQTT 5.0";
  }
  return "MQTT ?";
}

// 3.1.1 §3.1.2.10: the server allows one and a half keep-alive periods between packets.
inline Duration KeepAliveWindow(std::uint16_t keep_alive_s) {
  return std::chrono::milliseconds(std::uint64_t{keep_alive_s} * 1500);
}

inline std::uint64_t SplitMix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline bool TimerLater(const auto& a, const auto& b) { return a.when > b.when; }

// Buffer pools (read, write, payload references): at most kPoolMax buffers each.
inline constexpr std::size_t kPoolMax = 256;

// Takes `buffer` away (it then holds no memory) and keeps it, contents as they are, in `pool`
// for the next connection that needs one, unless it is larger than `max_capacity` elements or the
// pool is full.
template <typename T>
void ReturnToPool(std::vector<std::vector<T>>& pool, std::vector<T>& buffer,
                  std::size_t max_capacity) {
  std::vector<T> taken;
  taken.swap(buffer);
  if (taken.capacity() != 0 && taken.capacity() <= max_capacity && pool.size() < kPoolMax) {
    pool.push_back(std::move(taken));
  }
}

// A Reason String property holding `text`, cut to 256 bytes at a character boundary (it may
// quote a client's topic filter, which can be long).
inline mqtt::PropertiesBuilder ReasonString(std::string_view text) {
  constexpr std::size_t kMax = 256;
  if (text.size() > kMax) {
    std::size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
      --n;  // text[n] continues a character: cut before that character
    }
    text = text.substr(0, n);
  }
  mqtt::PropertiesBuilder props;
  props.Add(mqtt::PropertyId::kReasonString, text);
  return props;
}

}  // namespace tinymq::broker
