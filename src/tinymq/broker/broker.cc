#include "tinymq/broker/broker.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <list>
#include <unordered_set>
#include <utility>

#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/topic.h"
#include "tinymq/util/check.h"

namespace tinymq::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;

constexpr Instant kNever = Instant::max();
constexpr std::uint32_t kNeverExpires = 0xFFFFFFFF;  // 5.0 §3.1.2.11.2

QoS MinQos(QoS a, QoS b) { return static_cast<unsigned>(a) < static_cast<unsigned>(b) ? a : b; }
QoS MaxQos(QoS a, QoS b) { return static_cast<unsigned>(a) > static_cast<unsigned>(b) ? a : b; }

std::string_view VersionName(ProtocolVersion v) {
  switch (v) {
    case ProtocolVersion::kV31: return "MQTT 3.1";
    case ProtocolVersion::kV311: return "MQTT 3.1.1";
    case ProtocolVersion::kV5: return "MQTT 5.0";
  }
  return "MQTT ?";
}

// 3.1.1 §3.1.2.10: the server allows one and a half keep-alive periods between packets.
Duration KeepAliveWindow(std::uint16_t keep_alive_s) {
  return std::chrono::milliseconds(std::uint64_t{keep_alive_s} * 1500);
}

std::uint64_t SplitMix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

bool TimerLater(const auto& a, const auto& b) { return a.when > b.when; }

}  // namespace

struct Broker::Session {
  // A QoS 1/2 PUBLISH sent and not yet fully acknowledged. The list keeps PUBLISHes in the order
  // first sent; an entry moves to the end when its PUBREC arrives (see HandlePubrec).
  struct InFlight {
    std::uint16_t packet_id = 0;
    MessageRef message;
    QoS qos = QoS::k1;
    bool retain = false;
    bool released = false;  // QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP
  };
  // A message waiting for the client to connect, the in-flight window or the output to drain.
  struct Pending {
    MessageRef message;
    QoS qos = QoS::k1;
    bool retain = false;
  };

  SubscriberId id = 0;
  std::string client_id;
  // Discarded when its connection ends (3.1.1 Clean Session 1; 5.0 Session Expiry 0).
  bool ends_with_connection = true;
  // 5.0 Session Expiry Interval in seconds once the connection has ended; kNeverExpires for a
  // 3.1.x persistent session and for 0xFFFFFFFF.
  std::uint32_t expiry_s = 0;
  std::uint64_t generation = 0;  // bumped on every attach: older expiry timers are stale
  Connection* connection = nullptr;
  std::unordered_map<std::string, QoS> subscriptions;  // filter -> granted QoS
  std::list<InFlight> inflight;
  std::unordered_map<std::uint16_t, std::list<InFlight>::iterator> inflight_by_id;
  std::deque<Pending> queue;
  std::size_t queued_bytes = 0;
  bool dropping = false;  // a drop was logged; cleared when the queue has room again
  std::unordered_set<std::uint16_t> incoming_qos2;  // PUBLISH QoS 2 received, PUBREL awaited
  std::uint16_t last_packet_id = 0;
};

struct Broker::Connection {
  enum class State : std::uint8_t { kAwaitConnect, kConnected, kClosing };
  struct OwnedWill {
    std::string topic;
    std::vector<std::uint8_t> payload;
    QoS qos = QoS::k0;
    bool retain = false;
    std::vector<std::uint8_t> properties;  // 5.0 will properties as received
  };

  ConnectionId id = 0;
  std::string peer;
  mqtt::Decoder decoder;
  std::vector<std::uint8_t> out;
  std::size_t out_begin = 0;  // bytes of `out` already written
  State state = State::kAwaitConnect;
  ProtocolVersion version = ProtocolVersion::kV311;
  Session* session = nullptr;
  std::string client_id;  // for logs
  std::uint16_t keep_alive = 0;
  Instant deadline = kNever;  // CONNECT timeout, then keep-alive
  bool in_timer_heap = false;
  Instant heap_deadline = kNever;  // `when` of this connection's live entry in the timer heap
  bool dirty = false;
  std::optional<OwnedWill> will;
  // What a 5.0 client said it can take (CONNECT properties); 3.1.x clients have no limits here.
  std::uint16_t client_receive_maximum = 65535;
  std::uint32_t client_max_packet_size = UINT32_MAX;

  std::size_t pending() const { return out.size() - out_begin; }
};

Broker::Broker(Limits limits, LogFn log) : limits_(limits), log_(std::move(log)) {}

Broker::~Broker() = default;

Broker::Connection* Broker::Find(ConnectionId id) const {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

std::size_t Broker::connection_count() const { return connections_.size(); }

std::size_t Broker::session_count() const { return sessions_.size(); }

ConnectionId Broker::Accept(std::string peer, Instant now) {
  last_now_ = now;
  auto c = std::make_unique<Connection>();
  c->id = next_connection_id_++;
  c->peer = std::move(peer);
  c->decoder.set_max_packet_size(limits_.max_packet_size);
  c->deadline = now + limits_.connect_timeout;
  Connection& ref = *c;
  connections_.emplace(ref.id, std::move(c));
  ++counters_.connections_accepted;
  ArmTimer(ref);
  return ref.id;
}

std::span<std::uint8_t> Broker::ReadBuffer(ConnectionId id) {
  Connection* c = Find(id);
  TINYMQ_CHECK(c != nullptr);
  return c->decoder.PrepareRead();
}

void Broker::OnRead(ConnectionId id, std::size_t n, Instant now) {
  last_now_ = now;
  Connection* c = Find(id);
  if (c == nullptr) {
    return;
  }
  c->decoder.CommitRead(n);
  while (c->state != Connection::State::kClosing) {
    auto next = c->decoder.Next();
    if (!next) {
      HandleDecodeError(*c, next.error(), now);
      break;
    }
    if (!next->has_value()) {
      break;
    }
    if (c->state == Connection::State::kConnected && c->keep_alive != 0) {
      c->deadline = now + KeepAliveWindow(c->keep_alive);  // [MQTT-3.1.2-24]
    }
    HandlePacket(*c, **next, now);
  }
}

void Broker::OnPeerClosed(ConnectionId id, Instant now) {
  last_now_ = now;
  if (Connection* c = Find(id)) {
    Close(*c, "connection lost", /*publish_will=*/true, now);
  }
}

std::span<const std::uint8_t> Broker::Output(ConnectionId id) const {
  const Connection* c = Find(id);
  if (c == nullptr) {
    return {};
  }
  return {c->out.data() + c->out_begin, c->pending()};
}

void Broker::OnWritten(ConnectionId id, std::size_t n, Instant) {
  Connection* c = Find(id);
  if (c == nullptr) {
    return;
  }
  TINYMQ_CHECK(n <= c->pending());
  c->out_begin += n;
  if (c->out_begin == c->out.size()) {
    c->out.clear();
    c->out_begin = 0;
  }
  // Below half the high-water mark, messages held back for this connection may go out.
  if (c->session != nullptr && !c->session->queue.empty() &&
      c->pending() <= limits_.output_high_water / 2) {
    Pump(*c->session);
  }
}

bool Broker::ShouldClose(ConnectionId id) const {
  const Connection* c = Find(id);
  return c == nullptr || c->state == Connection::State::kClosing;
}

void Broker::Release(ConnectionId id) {
  Connection* c = Find(id);
  if (c == nullptr) {
    return;
  }
  if (c->state != Connection::State::kClosing) {
    // The net layer dropped a socket it had not reported: treat it as a lost connection.
    Close(*c, "connection released", /*publish_will=*/true, last_now_);
  }
  connections_.erase(id);
}

std::vector<ConnectionId> Broker::TakeDirty() {
  std::vector<ConnectionId> dirty;
  dirty.swap(dirty_);
  for (ConnectionId id : dirty) {
    if (Connection* c = Find(id)) {
      c->dirty = false;
    }
  }
  return dirty;
}

void Broker::MarkDirty(Connection& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(c.id);
  }
}

void Broker::Send(Connection& c, const mqtt::Packet& packet) {
  if (c.state == Connection::State::kClosing) {
    return;
  }
  if (auto r = mqtt::Encode(packet, c.version, c.out); !r) {
    // Only a bug can get here (every field came through the decoder or from the broker itself).
    if (log_) {
      log_(LogLevel::kWarning,
           std::string("cannot encode ") + std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) +
               " for " + c.client_id + ": " + std::string(mqtt::Describe(r.error())));
    }
    return;
  }
  MarkDirty(c);
}

void Broker::Close(Connection& c, std::string_view why, bool publish_will, Instant now) {
  if (c.state == Connection::State::kClosing) {
    return;
  }
  const bool was_connected = c.state == Connection::State::kConnected;
  std::optional<Connection::OwnedWill> will = std::move(c.will);
  c.will.reset();
  c.state = Connection::State::kClosing;
  MarkDirty(c);
  if (c.session != nullptr) {
    Detach(*c.session, now);
    c.session = nullptr;
  }
  if (log_ && was_connected) {
    log_(LogLevel::kInfo,
         "client " + c.client_id + " disconnected from " + c.peer + " (" + std::string(why) + ")");
  } else if (log_) {
    log_(LogLevel::kDebug, "connection from " + c.peer + " closed before CONNECT completed (" +
                               std::string(why) + ")");
  }
  // The will goes out after the session is detached, as if its client had published it last
  // ([MQTT-3.1.2-8]).
  if (publish_will && will) {
    MessageRef m =
        MakeMessage(will->topic, mqtt::BinaryView(will->payload), will->qos, will->retain,
                    mqtt::Properties::FromValidated(mqtt::BinaryView(will->properties)));
    if (m->retain) {
      retained_.Set(m);
    }
    Route(m);
  }
}

void Broker::ArmTimer(Connection& c) {
  // A later deadline needs no new entry (the old one re-arms when it comes up); an earlier one
  // does, and turns the old entry stale.
  if (c.deadline == kNever || (c.in_timer_heap && c.heap_deadline <= c.deadline)) {
    return;
  }
  c.in_timer_heap = true;
  c.heap_deadline = c.deadline;
  timers_.push_back({c.deadline, c.id});
  std::push_heap(timers_.begin(), timers_.end(),
                 [](const TimerEntry& a, const TimerEntry& b) { return TimerLater(a, b); });
}

std::optional<Instant> Broker::NextDeadline() const {
  std::optional<Instant> next;
  if (!timers_.empty()) {
    next = timers_.front().when;
  }
  if (!session_timers_.empty() && (!next || session_timers_.front().when < *next)) {
    next = session_timers_.front().when;
  }
  return next;
}

void Broker::OnTimer(Instant now) {
  last_now_ = now;
  auto session_later = [](const SessionTimer& a, const SessionTimer& b) {
    return TimerLater(a, b);
  };
  while (!session_timers_.empty() && session_timers_.front().when <= now) {
    std::pop_heap(session_timers_.begin(), session_timers_.end(), session_later);
    const SessionTimer t = session_timers_.back();
    session_timers_.pop_back();
    auto it = sessions_by_id_.find(t.session);
    if (it == sessions_by_id_.end() || it->second->generation != t.generation ||
        it->second->connection != nullptr) {
      continue;  // gone, resumed or rescheduled since
    }
    if (log_) {
      log_(LogLevel::kInfo, "session " + it->second->client_id + " expired");
    }
    DestroySession(*it->second);  // 5.0 §3.1.2.11.2
  }
  auto later = [](const TimerEntry& a, const TimerEntry& b) { return TimerLater(a, b); };
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), later);
    const TimerEntry entry = timers_.back();
    timers_.pop_back();
    Connection* c = Find(entry.id);
    if (c == nullptr || !c->in_timer_heap || entry.when != c->heap_deadline) {
      continue;  // a stale entry: the connection is gone or has an earlier one
    }
    c->in_timer_heap = false;
    if (c->state == Connection::State::kClosing || c->deadline == kNever) {
      continue;
    }
    if (c->deadline > now) {
      ArmTimer(*c);  // activity moved the deadline since this entry was pushed
      continue;
    }
    if (c->state == Connection::State::kAwaitConnect) {
      Close(*c, "no CONNECT in time", /*publish_will=*/false, now);
    } else {
      if (c->version == ProtocolVersion::kV5) {
        Send(*c, mqtt::Disconnect{ReasonCode::kKeepAliveTimeout, {}});
      }
      Close(*c, "keep-alive timeout", /*publish_will=*/true, now);  // [MQTT-3.1.2-24]
    }
  }
}

void Broker::HandleDecodeError(Connection& c, mqtt::DecodeError error, Instant now) {
  ++counters_.protocol_errors;
  const ReasonCode reason = mqtt::ToReasonCode(error);
  const std::string why = "protocol error: " + std::string(mqtt::Describe(error));
  if (c.state == Connection::State::kAwaitConnect) {
    if (error == mqtt::DecodeError::kUnsupportedProtocolLevel) {
      // [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then close. The level is not
      // one we speak, so the CONNACK takes the 3.1.1 form every MQTT client reads.
      c.version = ProtocolVersion::kV311;
      Send(c, mqtt::Connack{false, ReasonCode::kUnsupportedProtocolVersion, {}});
    } else if (c.decoder.version() == ProtocolVersion::kV5) {
      // 5.0 [MQTT-3.1.4-2]: a CONNACK with a reason code of 0x80 or more may precede the close.
      c.version = ProtocolVersion::kV5;
      Send(c, mqtt::Connack{false, reason, {}});
    }
    // 3.1.1 [MQTT-3.1.4-1]: otherwise close without a CONNACK.
    Close(c, why, /*publish_will=*/false, now);
    return;
  }
  if (c.version == ProtocolVersion::kV5) {
    Send(c, mqtt::Disconnect{reason, {}});  // 5.0 §4.13: DISCONNECT with the reason, then close
  }
  Close(c, why, /*publish_will=*/true, now);
}

void Broker::HandlePacket(Connection& c, const mqtt::Packet& packet, Instant now) {
  if (const auto* connect = std::get_if<mqtt::Connect>(&packet)) {
    HandleConnect(c, *connect, now);
    return;
  }
  TINYMQ_DCHECK(c.state == Connection::State::kConnected);  // the decoder enforces CONNECT first
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Publish>) {
          HandlePublish(c, p, now);
        } else if constexpr (std::is_same_v<T, mqtt::Puback>) {
          HandlePuback(c, p.packet_id);
        } else if constexpr (std::is_same_v<T, mqtt::Pubrec>) {
          HandlePubrec(c, p.packet_id);
        } else if constexpr (std::is_same_v<T, mqtt::Pubrel>) {
          HandlePubrel(c, p.packet_id);
        } else if constexpr (std::is_same_v<T, mqtt::Pubcomp>) {
          HandlePubcomp(c, p.packet_id);
        } else if constexpr (std::is_same_v<T, mqtt::Subscribe>) {
          HandleSubscribe(c, p);
        } else if constexpr (std::is_same_v<T, mqtt::Unsubscribe>) {
          HandleUnsubscribe(c, p);
        } else if constexpr (std::is_same_v<T, mqtt::Pingreq>) {
          Send(c, mqtt::Pingresp{});  // [MQTT-3.12.4-1]
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          if (c.version == ProtocolVersion::kV5) {
            if (auto expiry = p.properties.Number(mqtt::PropertyId::kSessionExpiryInterval)) {
              if (c.session->expiry_s == 0 && *expiry != 0) {
                // 5.0 [MQTT-3.14.2-2]: a session that was to end with the connection cannot be
                // given a lifetime on the way out.
                ++counters_.protocol_errors;
                Send(c, mqtt::Disconnect{ReasonCode::kProtocolError, {}});
                Close(c, "protocol error: session expiry raised from 0 in DISCONNECT",
                      /*publish_will=*/true, now);
                return;
              }
              c.session->expiry_s = *expiry;
              c.session->ends_with_connection = *expiry == 0;
            }
          }
          // [MQTT-3.14.4-3]: a DISCONNECT discards the will; 5.0 reason 0x04 asks for it.
          const bool with_will = p.reason == ReasonCode::kDisconnectWithWill;
          Close(c, "client sent DISCONNECT", with_will, now);
        } else {
          // CONNACK, SUBACK, UNSUBACK, PINGRESP and AUTH (not supported yet) are not for a server.
          ++counters_.protocol_errors;
          if (c.version == ProtocolVersion::kV5) {
            Send(c, mqtt::Disconnect{ReasonCode::kProtocolError, {}});
          }
          Close(c,
                "protocol error: " + std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) +
                    " sent by a client",
                /*publish_will=*/true, now);
        }
      },
      packet);
}

std::string Broker::GenerateClientId() {
  for (;;) {
    const std::uint64_t x = SplitMix64(limits_.client_id_seed + generated_ids_++);
    char buf[32];
    std::snprintf(buf, sizeof buf, "tinymq-%016llx", static_cast<unsigned long long>(x));
    if (!sessions_.contains(buf)) {
      return buf;
    }
  }
}

void Broker::HandleConnect(Connection& c, const mqtt::Connect& connect, Instant now) {
  if (c.state != Connection::State::kAwaitConnect) {
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
    ++counters_.protocol_errors;
    if (c.version == ProtocolVersion::kV5) {
      Send(c, mqtt::Disconnect{ReasonCode::kProtocolError, {}});
    }
    Close(c, "protocol error: second CONNECT", /*publish_will=*/true, now);
    return;
  }
  c.version = connect.version;
  const bool v5 = connect.version == ProtocolVersion::kV5;
  auto refuse = [&](ReasonCode reason, std::string_view why) {
    Send(c, mqtt::Connack{false, reason, {}});
    Close(c, why, /*publish_will=*/false, now);
  };

  std::string client_id(connect.client_id);
  bool assigned = false;
  if (client_id.empty()) {
    // 3.1 needs an identifier; 3.1.1 gives one only to a clean session ([MQTT-3.1.3-6],
    // [MQTT-3.1.3-8]); 5.0 assigns one in every case (§3.1.3.1).
    if (connect.version == ProtocolVersion::kV31 || (!v5 && !connect.clean_start)) {
      refuse(ReasonCode::kClientIdentifierNotValid, "empty client identifier");
      return;
    }
    client_id = GenerateClientId();
    assigned = true;
  }
  if (client_id.size() > limits_.max_client_id_length) {
    refuse(ReasonCode::kClientIdentifierNotValid, "client identifier too long");
    return;
  }
  // 5.0: Topic Alias Maximum is not offered (0) and AUTH is not supported yet (issue #4).
  if (v5 && connect.properties.Find(mqtt::PropertyId::kAuthenticationMethod)) {
    refuse(ReasonCode::kBadAuthenticationMethod, "enhanced authentication not supported");
    return;
  }

  c.client_id = client_id;
  c.keep_alive = connect.keep_alive;
  if (v5) {
    // 5.0 §3.1.2.11.3 / §3.1.2.11.4: the client's receive window and largest packet it accepts.
    c.client_receive_maximum = static_cast<std::uint16_t>(
        connect.properties.Number(mqtt::PropertyId::kReceiveMaximum).value_or(65535));
    c.client_max_packet_size =
        connect.properties.Number(mqtt::PropertyId::kMaximumPacketSize).value_or(UINT32_MAX);
  }
  if (connect.will) {
    const mqtt::BinaryView will_props = connect.will->properties.bytes();
    c.will = Connection::OwnedWill{std::string(connect.will->topic),
                                   {connect.will->payload.begin(), connect.will->payload.end()},
                                   connect.will->qos,
                                   connect.will->retain,
                                   {will_props.begin(), will_props.end()}};
  }

  // Session takeover: [MQTT-3.1.4-2] the server disconnects the existing client.
  auto existing = sessions_.find(client_id);
  if (existing != sessions_.end() && existing->second->connection != nullptr) {
    Connection& old = *existing->second->connection;
    if (old.version == ProtocolVersion::kV5) {
      Send(old, mqtt::Disconnect{ReasonCode::kSessionTakenOver, {}});
    }
    Close(old, "session taken over by a new connection", /*publish_will=*/true, now);
    existing = sessions_.find(client_id);  // Close may have ended a clean session
  }
  // 3.1.1 Clean Session / 5.0 Clean Start discard the old state ([MQTT-3.1.2-6]); 5.0 keeps the
  // session after the connection only when the Session Expiry Interval is above 0.
  const std::uint32_t expiry_s =
      v5 ? connect.properties.Number(mqtt::PropertyId::kSessionExpiryInterval).value_or(0)
         : (connect.clean_start ? 0 : kNeverExpires);
  const bool ends_with_connection = expiry_s == 0;
  bool session_present = false;
  Session* session = nullptr;
  if (existing != sessions_.end() && connect.clean_start) {
    DestroySession(*existing->second);
  } else if (existing != sessions_.end()) {
    session = existing->second.get();
    session_present = true;  // [MQTT-3.2.2-2]
  }
  if (session == nullptr) {
    session = &CreateSession(client_id, ends_with_connection);
  }
  session->ends_with_connection = ends_with_connection;
  session->expiry_s = expiry_s;
  ++session->generation;  // a pending expiry timer no longer applies
  session->connection = &c;
  c.session = session;
  c.state = Connection::State::kConnected;
  c.deadline = c.keep_alive != 0 ? now + KeepAliveWindow(c.keep_alive) : kNever;
  ArmTimer(c);

  mqtt::PropertiesBuilder props;
  if (v5) {
    // 5.0 §3.2.2.3: what this broker allows. Absent properties mean their defaults (Maximum QoS
    // 2, Retain Available, Wildcard Subscription Available, Topic Alias Maximum 0).
    if (assigned) {
      props.Add(mqtt::PropertyId::kAssignedClientIdentifier, client_id);
    }
    if (limits_.max_packet_size < mqtt::kMaxRemainingLength + 5) {
      props.Add(mqtt::PropertyId::kMaximumPacketSize, limits_.max_packet_size);
    }
    // Not supported yet (issue #4): say so, so that clients do not try.
    props.Add(mqtt::PropertyId::kSubscriptionIdentifierAvailable, 0U);
    props.Add(mqtt::PropertyId::kSharedSubscriptionAvailable, 0U);
  }
  Send(c, mqtt::Connack{session_present, ReasonCode::kSuccess, props.view()});
  if (log_) {
    log_(LogLevel::kInfo, "client " + client_id + " connected from " + c.peer + " (" +
                              std::string(VersionName(c.version)) +
                              (ends_with_connection ? ", clean session" : ", persistent session") +
                              (session_present ? ", session resumed" : "") + ", keep-alive " +
                              std::to_string(c.keep_alive) + " s)");
  }
  // [MQTT-4.4.0-1]: unacknowledged PUBLISH and PUBREL packets go again, then the queue.
  Resend(*session, c);
}

Broker::Session& Broker::CreateSession(const std::string& client_id, bool ends_with_connection) {
  auto s = std::make_unique<Session>();
  s->id = next_session_id_++;
  s->client_id = client_id;
  s->ends_with_connection = ends_with_connection;
  Session& ref = *s;
  sessions_by_id_.emplace(ref.id, &ref);
  sessions_.emplace(client_id, std::move(s));
  return ref;
}

void Broker::DestroySession(Session& s) {
  TINYMQ_CHECK(s.connection == nullptr);
  for (const auto& [filter, qos] : s.subscriptions) {
    index_.Unsubscribe(filter, s.id);
  }
  sessions_by_id_.erase(s.id);
  sessions_.erase(s.client_id);  // destroys `s`
}

void Broker::Detach(Session& s, Instant now) {
  s.connection = nullptr;
  if (s.ends_with_connection || s.expiry_s == 0) {
    DestroySession(s);
    return;
  }
  if (s.expiry_s != kNeverExpires) {
    session_timers_.push_back({now + std::chrono::seconds(s.expiry_s), s.id, ++s.generation});
    std::push_heap(session_timers_.begin(), session_timers_.end(),
                   [](const SessionTimer& a, const SessionTimer& b) { return TimerLater(a, b); });
  }
}

void Broker::HandlePublish(Connection& c, const mqtt::Publish& p, Instant now) {
  Session& s = *c.session;
  ++counters_.messages_received;
  if (c.version == ProtocolVersion::kV5 && p.properties.Find(mqtt::PropertyId::kTopicAlias)) {
    // The CONNACK offered no Topic Alias Maximum, so any alias is out of range (5.0 §3.3.2.3.4).
    ++counters_.protocol_errors;
    Send(c, mqtt::Disconnect{ReasonCode::kTopicAliasInvalid, {}});
    Close(c, "protocol error: topic alias not allowed", /*publish_will=*/true, now);
    return;
  }
  if (c.version == ProtocolVersion::kV5 &&
      p.properties.Find(mqtt::PropertyId::kSubscriptionIdentifier)) {
    // [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
    ++counters_.protocol_errors;
    Send(c, mqtt::Disconnect{ReasonCode::kProtocolError, {}});
    Close(c, "protocol error: subscription identifier in a client PUBLISH", true, now);
    return;
  }
  if (p.qos == QoS::k2 && s.incoming_qos2.contains(p.packet_id)) {
    // Resent before our PUBREC arrived: acknowledge again, never route twice ([MQTT-4.3.3-2]).
    Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
    return;
  }
  MessageRef m = MakeMessage(p.topic, p.payload, p.qos, p.retain, p.properties);
  if (p.retain) {
    retained_.Set(m);  // [MQTT-3.3.1-5]; an empty payload deletes ([MQTT-3.3.1-10])
  }
  Route(m);
  switch (p.qos) {
    case QoS::k0: break;
    case QoS::k1: Send(c, mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}}); break;
    case QoS::k2:
      s.incoming_qos2.insert(p.packet_id);
      Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
      break;
  }
}

void Broker::Route(const MessageRef& message) {
  matches_.clear();
  index_.Match(message->topic, matches_);
  if (matches_.empty()) {
    return;
  }
  // A subscriber with overlapping filters gets the message once, at the highest QoS granted
  // among them (3.1.1 §3.3.5).
  std::sort(matches_.begin(), matches_.end(), [](const Subscription* a, const Subscription* b) {
    return a->subscriber < b->subscriber;
  });
  for (std::size_t i = 0; i < matches_.size();) {
    const SubscriberId id = matches_[i]->subscriber;
    QoS granted = matches_[i]->options.max_qos;
    for (++i; i < matches_.size() && matches_[i]->subscriber == id; ++i) {
      granted = MaxQos(granted, matches_[i]->options.max_qos);
    }
    auto it = sessions_by_id_.find(id);
    if (it != sessions_by_id_.end()) {
      // [MQTT-3.3.1-9]: a message routed to existing subscriptions goes out with RETAIN 0.
      Deliver(*it->second, message, MinQos(message->qos, granted), /*retain=*/false);
    }
  }
}

void Broker::Deliver(Session& s, const MessageRef& message, QoS qos, bool retain) {
  Connection* c = s.connection;
  const bool online = c != nullptr && c->state == Connection::State::kConnected;
  if (qos == QoS::k0) {
    if (!online) {
      ++counters_.dropped_offline_qos0;  // QoS 0 is not kept for offline sessions
    } else if (c->pending() > limits_.output_high_water) {
      ++counters_.dropped_slow_qos0;
    } else {
      SendPublish(s, *c, message, qos, retain, 0, false);
    }
    return;
  }
  if (online && s.queue.empty() && s.inflight.size() < Window(*c) &&
      c->pending() <= limits_.output_high_water) {
    SendPublish(s, *c, message, qos, retain, NextPacketId(s), false);
    return;
  }
  Enqueue(s, message, qos, retain);
}

bool Broker::Enqueue(Session& s, const MessageRef& message, QoS qos, bool retain) {
  const std::size_t bytes = message->payload.size();
  if (s.queue.size() >= limits_.max_queued_messages ||
      s.queued_bytes + bytes > limits_.max_queued_bytes) {
    // The documented policy: a full queue refuses the newest message (what is queued keeps its
    // order and is delivered); each drop is counted, and logged once per incident.
    ++counters_.dropped_queue_full;
    if (!s.dropping && log_) {
      log_(LogLevel::kWarning, "client " + s.client_id + ": queue full (" +
                                   std::to_string(s.queue.size()) + " messages, " +
                                   std::to_string(s.queued_bytes) +
                                   " bytes); dropping new messages until it drains");
    }
    s.dropping = true;
    return false;
  }
  s.queue.push_back({message, qos, retain});
  s.queued_bytes += bytes;
  return true;
}

void Broker::Pump(Session& s) {
  Connection* c = s.connection;
  if (c == nullptr || c->state != Connection::State::kConnected) {
    return;
  }
  while (!s.queue.empty() && s.inflight.size() < Window(*c) &&
         c->pending() <= limits_.output_high_water) {
    Session::Pending p = std::move(s.queue.front());
    s.queue.pop_front();
    s.queued_bytes -= p.message->payload.size();
    SendPublish(s, *c, p.message, p.qos, p.retain, NextPacketId(s), false);
  }
  if (s.dropping && s.queue.size() < limits_.max_queued_messages / 2) {
    s.dropping = false;
  }
}

std::size_t Broker::Window(const Connection& c) const {
  // [MQTT-3.3.4-9]: never more unacknowledged QoS 1/2 PUBLISHes than the client's Receive Maximum.
  return std::min<std::size_t>(limits_.max_inflight, c.client_receive_maximum);
}

std::uint16_t Broker::NextPacketId(Session& s) {
  // At most max_inflight (<= 65535) ids are in use, so a free one exists.
  do {
    s.last_packet_id = static_cast<std::uint16_t>(s.last_packet_id + 1);
  } while (s.last_packet_id == 0 || s.inflight_by_id.contains(s.last_packet_id));
  return s.last_packet_id;
}

void Broker::SendPublish(Session& s, Connection& c, const MessageRef& message, QoS qos, bool retain,
                         std::uint16_t packet_id, bool dup) {
  mqtt::Publish p;
  p.dup = dup;
  p.qos = qos;
  p.retain = retain;
  p.topic = message->topic;
  p.packet_id = packet_id;
  p.payload = message->payload_view();
  p.properties = message->properties_view();  // dropped by the 3.1.x encoder
  const std::size_t before = c.out.size();
  Send(c, p);
  const std::size_t written = c.out.size() - before;
  if (written > c.client_max_packet_size) {
    // [MQTT-3.1.2-25]: not sent to a client that cannot take it; as if it had been delivered.
    c.out.resize(before);
    ++counters_.dropped_too_large;
    if (dup) {  // a resend to a client that now takes less: give the message up
      if (auto it = s.inflight_by_id.find(packet_id); it != s.inflight_by_id.end()) {
        s.inflight.erase(it->second);
        s.inflight_by_id.erase(it);
      }
    }
    return;
  }
  if (written == 0) {
    return;  // closing, or not encodable (logged by Send): nothing went out, nothing in flight
  }
  if (qos != QoS::k0 && !dup) {
    s.inflight.push_back({packet_id, message, qos, retain, false});
    s.inflight_by_id.emplace(packet_id, std::prev(s.inflight.end()));
  }
  ++counters_.messages_sent;
}

void Broker::Resend(Session& s, Connection& c) {
  for (const Session::InFlight& f : s.inflight) {
    if (f.released) {
      Send(c, mqtt::Pubrel{f.packet_id, ReasonCode::kSuccess, {}});
    } else {
      SendPublish(s, c, f.message, f.qos, f.retain, f.packet_id, /*dup=*/true);
    }
  }
  Pump(s);
}

void Broker::HandlePuback(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.inflight_by_id.find(packet_id);
  if (it == s.inflight_by_id.end() || it->second->qos != QoS::k1) {
    return;  // unknown or not a QoS 1 id: nothing to release
  }
  s.inflight.erase(it->second);
  s.inflight_by_id.erase(it);
  Pump(s);
}

void Broker::HandlePubrec(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.inflight_by_id.find(packet_id);
  if (it != s.inflight_by_id.end() && it->second->qos == QoS::k2) {
    it->second->released = true;  // [MQTT-4.3.3-1]: from now on only PUBREL is resent
    it->second->message.reset();  // the payload is no longer needed
    // [MQTT-4.6.0-3]: PUBRELs go (and are resent) in the order the PUBRECs came; moving the entry
    // to the end keeps the PUBLISHes still unacknowledged in their own order ([MQTT-4.6.0-1]).
    s.inflight.splice(s.inflight.end(), s.inflight, it->second);
    Send(c, mqtt::Pubrel{packet_id, ReasonCode::kSuccess, {}});
    return;
  }
  Send(c, mqtt::Pubrel{packet_id,
                       c.version == ProtocolVersion::kV5 ? ReasonCode::kPacketIdentifierNotFound
                                                         : ReasonCode::kSuccess,
                       {}});
}

void Broker::HandlePubrel(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  const bool known = s.incoming_qos2.erase(packet_id) != 0;
  // [MQTT-4.3.3-2]: PUBCOMP even for an id already released (the PUBCOMP may have been lost).
  Send(c, mqtt::Pubcomp{packet_id,
                        known || c.version != ProtocolVersion::kV5
                            ? ReasonCode::kSuccess
                            : ReasonCode::kPacketIdentifierNotFound,
                        {}});
}

void Broker::HandlePubcomp(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.inflight_by_id.find(packet_id);
  if (it == s.inflight_by_id.end() || !it->second->released) {
    return;
  }
  s.inflight.erase(it->second);
  s.inflight_by_id.erase(it);
  Pump(s);
}

void Broker::HandleSubscribe(Connection& c, const mqtt::Subscribe& sub) {
  Session& s = *c.session;
  const bool v5 = c.version == ProtocolVersion::kV5;
  if (v5 && sub.properties.Find(mqtt::PropertyId::kSubscriptionIdentifier)) {
    // The CONNACK said Subscription Identifier Available 0 (5.0 §3.2.2.3.12).
    ++counters_.protocol_errors;
    Send(c, mqtt::Disconnect{ReasonCode::kSubscriptionIdentifiersNotSupported, {}});
    Close(c, "subscription identifiers not supported", /*publish_will=*/true, last_now_);
    return;
  }
  std::vector<ReasonCode> codes;
  std::vector<std::pair<MessageRef, QoS>> retained;
  for (const mqtt::TopicSubscription& t : sub.subscriptions) {
    if (!mqtt::ValidateTopicFilter(t.filter)) {
      // 3.1.1 SUBACK 0x80 for this filter; 5.0 0x8F Topic Filter invalid.
      codes.push_back(v5 ? ReasonCode::kTopicFilterInvalid : ReasonCode::kUnspecifiedError);
      continue;
    }
    if (v5 && t.filter.starts_with("$share/")) {
      codes.push_back(ReasonCode::kSharedSubscriptionsNotSupported);  // issue #4
      continue;
    }
    const QoS granted = t.options.max_qos;  // every QoS is supported
    mqtt::SubscriptionOptions options = t.options;
    options.max_qos = granted;
    // [MQTT-3.8.4-3]: a subscription to a filter already subscribed replaces the old one.
    index_.Subscribe(t.filter, Subscription{s.id, options, 0});
    s.subscriptions[std::string(t.filter)] = granted;
    codes.push_back(static_cast<ReasonCode>(granted));
    retained_scratch_.clear();
    retained_.Match(t.filter, retained_scratch_);
    for (MessageRef& m : retained_scratch_) {
      const QoS q = MinQos(m->qos, granted);
      retained.emplace_back(std::move(m), q);
    }
  }
  Send(c, mqtt::Suback{sub.packet_id, {}, mqtt::ReasonCodeList(codes)});
  // [MQTT-3.3.1-6], [MQTT-3.3.1-8]: matching retained messages follow, with RETAIN set.
  for (auto& [message, qos] : retained) {
    Deliver(s, message, qos, /*retain=*/true);
  }
}

void Broker::HandleUnsubscribe(Connection& c, const mqtt::Unsubscribe& unsub) {
  Session& s = *c.session;
  std::vector<ReasonCode> codes;
  for (std::string_view filter : unsub.filters) {
    const bool existed = s.subscriptions.erase(std::string(filter)) != 0;
    if (existed) {
      index_.Unsubscribe(filter, s.id);
    }
    codes.push_back(existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted);
  }
  // [MQTT-3.10.4-5]: UNSUBACK even when nothing was subscribed.
  Send(c, mqtt::Unsuback{unsub.packet_id, {}, mqtt::ReasonCodeList(codes)});
}

}  // namespace tinymq::broker
