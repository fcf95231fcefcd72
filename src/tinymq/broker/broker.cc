#include "tinymq/broker/broker.h"

#include <algorithm>
#include <cstdio>
#include <list>
#include <unordered_set>
#include <utility>

#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker_internal.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/topic.h"
#include "tinymq/util/check.h"
#include "tinymq/util/fifo.h"

namespace tinymq::broker {

Broker::Broker(Limits limits, LogFn log, Cluster cluster)
    : limits_(limits),
      log_(std::move(log)),
      cluster_(cluster),
      messages_(cluster.pool != nullptr ? *cluster.pool : own_messages_),
      retained_(cluster.retained) {
  TINYMQ_CHECK(cluster_.count >= 1 && cluster_.index < cluster_.count &&
               cluster_.count <= kWorkerMask);
  if (retained_ == nullptr) {
    own_retained_ = std::make_unique<ConcurrentRetainedStore>();
    retained_ = own_retained_.get();
  }
}

Broker::~Broker() = default;

Broker::Session* Broker::FindSession(SubscriberId id) const {
  if ((id & kSharedBit) != 0 || WorkerOf(id) != cluster_.index) {
    return nullptr;
  }
  const SubscriberId slot = id & kSessionSlotMask;
  if (slot >= session_slots_.size()) {
    return nullptr;
  }
  Session& s = session_slots_[slot];
  return s.id == id ? &s : nullptr;
}

Broker::Connection* Broker::Find(ConnectionId id) const {
  const std::uint32_t slot = SlotOf(id);
  if (id == 0 || slot >= connections_.size()) {
    return nullptr;
  }
  Connection& c = connections_[slot];
  return c.id == id ? &c : nullptr;
}

void Broker::Forget(ConnectionId id) {
  const std::uint32_t slot = SlotOf(id);
  Connection& c = connections_[slot];
  std::destroy_at(&c);  // frees what it holds; the slot is a fresh, unused (id 0) Connection
  std::construct_at(&c);
  free_slots_.push_back(slot);
  --connection_count_;
}

std::size_t Broker::connection_count() const { return connection_count_; }

std::size_t Broker::session_count() const { return sessions_.size(); }

const Broker::SessionGauges& Broker::StepSessionGauges(std::size_t max_slots) {
  TINYMQ_CHECK(max_slots > 0);
  // Slots never move, so a cursor into them survives sessions coming and going between calls
  // (a free slot is a fresh Session, id 0).
  const std::size_t end = std::min(session_slots_.size(), gauge_cursor_ + max_slots);
  for (; gauge_cursor_ < end; ++gauge_cursor_) {
    const Session& s = session_slots_[gauge_cursor_];
    if (s.id == 0) {
      continue;
    }
    gauge_sums_.clients_connected += s.connection != nullptr ? 1 : 0;
    gauge_sums_.queued += s.queue.size() + (s.stored != nullptr ? s.stored->spilled : 0);
    gauge_sums_.inflight += s.inflight.size();
  }
  if (gauge_cursor_ >= session_slots_.size()) {
    gauges_ = gauge_sums_;
    gauge_sums_ = SessionGauges{};
    gauge_cursor_ = 0;
  }
  return gauges_;
}

void Broker::SetLimits(const Limits& limits) {
  // The resource limits only. What a CONNACK announces (maximum QoS, topic alias and receive
  // maximums, the features offered) stays: connected clients were told it, and per-connection
  // state is sized by it (a connection's topic alias table). The seed keeps generated ids unique.
  limits_.connect_timeout = limits.connect_timeout;
  limits_.max_packet_size = limits.max_packet_size;
  limits_.max_connect_packet_size = limits.max_connect_packet_size;
  limits_.max_connections = limits.max_connections;
  limits_.max_connections_per_address = limits.max_connections_per_address;
  limits_.max_topic_length = limits.max_topic_length;
  limits_.max_topic_levels = limits.max_topic_levels;
  limits_.max_subscriptions_per_client = limits.max_subscriptions_per_client;
  limits_.max_retained_messages = limits.max_retained_messages;
  limits_.max_retained_bytes = limits.max_retained_bytes;
  limits_.max_publish_rate = limits.max_publish_rate;
  limits_.publish_rate_burst = limits.publish_rate_burst;
  limits_.publish_rate_grace = limits.publish_rate_grace;
  limits_.max_inflight = limits.max_inflight;
  limits_.max_queued_messages = limits.max_queued_messages;
  limits_.max_queued_bytes = limits.max_queued_bytes;
  limits_.output_high_water = limits.output_high_water;
  limits_.max_client_id_length = limits.max_client_id_length;
}

void Broker::PublishSystem(std::string_view topic, std::string_view payload, bool retain,
                           Instant now) {
  last_now_ = now;
  // (Publish keeps it as the topic's retained message, unless over the retained limits.)
  Publish(messages_.Make(topic, mqtt::BinaryView::Of(payload), QoS::k0, retain, {}, now),
          /*publisher=*/0, /*publisher_id=*/{});
}

void Broker::BeginShutdown(Instant now) {
  last_now_ = now;
  shutting_down_ = true;
  for (std::size_t slot = 0; slot < connections_.size(); ++slot) {
    Connection& c = connections_[slot];
    if (c.id == 0 || c.state == Connection::State::kClosing) {
      continue;
    }
    if (c.state == Connection::State::kConnected) {
      SendDisconnect(c, ReasonCode::kServerShuttingDown, "server shutting down");
    }
    if (Session* s = c.session) {
      if (s->ends_with_connection || s->expiry_s == 0) {
        // A session that ends with its connection ends now, as with any connection the server
        // closes: its will goes out ([MQTT-3.1.2-8]), to sessions that the store keeps.
        Close(c, "server shutting down", /*publish_will=*/true, now);
        continue;
      }
      if (log_) {
        log_(LogLevel::kInfo,
             "client " + s->client_id + " disconnected from " + c.peer + " (server shutting down)");
      }
      // A session that outlives its connection is left as it is, in memory and in the store, its
      // will included: the next start restores it as after a crash (the will then goes out if
      // the client does not return within its delay or the session's expiry).
      s->connection = nullptr;
      c.session = nullptr;
    }
    c.state = Connection::State::kClosing;
    MarkDirty(c);
  }
}

void Broker::Reject(Connection& c, ReasonCode reason, std::string_view why, Instant now) {
  ++counters_.protocol_errors;
  SendDisconnect(c, reason, why);
  Close(c, why, /*publish_will=*/true, now);
}

void Broker::Close(Connection& c, std::string_view why, bool publish_will, Instant now) {
  if (c.state == Connection::State::kClosing) {
    return;
  }
  const bool was_connected = c.state == Connection::State::kConnected;
  std::unique_ptr<Will> will;
  if (c.extras != nullptr) {
    will = std::move(c.extras->will);
    c.extras->auth.reset();
  }
  c.state = Connection::State::kClosing;
  MarkDirty(c);
  Session* s = c.session;
  c.session = nullptr;
  std::uint32_t will_delay_s = 0;
  if (publish_will && will && s != nullptr && !s->ends_with_connection && s->expiry_s != 0 &&
      c.version == ProtocolVersion::kV5) {
    // 5.0 §3.1.3.2.2: the will waits for its delay, unless the session ends first.
    will_delay_s = mqtt::Properties::FromValidated(mqtt::BinaryView(will->properties))
                       .Number(mqtt::PropertyId::kWillDelayInterval)
                       .value_or(0);
  }
  if (log_ && was_connected && s != nullptr) {
    log_(LogLevel::kInfo,
         "client " + s->client_id + " disconnected from " + c.peer + " (" + std::string(why) + ")");
  } else if (log_) {
    log_(LogLevel::kDebug, "connection from " + c.peer + " closed before CONNECT completed (" +
                               std::string(why) + ")");
  }
  // The session when it outlives this connection (Detach ends the others).
  Session* const kept = s != nullptr && !s->ends_with_connection && s->expiry_s != 0 ? s : nullptr;
  if (s != nullptr) {
    Detach(*s, now);  // may end the session (then `s` is gone)
  }
  if (!publish_will || !will) {
    if (kept != nullptr) {
      StoreWill(*kept, nullptr, kNever);  // a clean DISCONNECT: no will waits
    }
    return;
  }
  if (will_delay_s != 0 && kept != nullptr) {
    kept->delayed_will = std::move(will);
    const Instant due = now + std::chrono::seconds(will_delay_s);
    PushSessionTimer(*kept, due, /*will=*/true);
    StoreWill(*kept, kept->delayed_will.get(), due);
    return;
  }
  if (kept != nullptr) {
    StoreWill(*kept, nullptr, kNever);
  }
  // The will goes out after the session is detached, as if its client had published it last
  // ([MQTT-3.1.2-8]).
  PublishWill(std::move(*will), now);
}

void Broker::PublishWill(Will will, Instant now) {
  const mqtt::Properties props = mqtt::Properties::FromValidated(mqtt::BinaryView(will.properties));
  MessageRef m = restoring_ ? MakeMessage(will.topic, mqtt::BinaryView(will.payload), will.qos,
                                          will.retain, props, now)
                            : messages_.Make(will.topic, mqtt::BinaryView(will.payload), will.qos,
                                             will.retain, props, now);
  Publish(m, /*publisher=*/0, /*publisher_id=*/{});
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

void Broker::PushSessionTimer(Session& s, Instant when, bool will) {
  session_timers_.push_back({when, s.id, s.generation, will});
  std::push_heap(session_timers_.begin(), session_timers_.end(),
                 [](const SessionTimer& a, const SessionTimer& b) { return TimerLater(a, b); });
}

std::optional<Instant> Broker::NextDeadline() const {
  std::optional<Instant> next;
  if (!timers_.empty()) {
    next = timers_.front().when;
  }
  if (!session_timers_.empty() && (!next || session_timers_.front().when < *next)) {
    next = session_timers_.front().when;
  }
  if (!resume_timers_.empty() && (!next || resume_timers_.front().when < *next)) {
    next = resume_timers_.front().when;
  }
  return next;
}

void Broker::OnTimer(Instant now) {
  last_now_ = now;
  if (shutting_down_) {
    return;  // every connection is closing; what sessions wait for waits for the restart
  }
  auto session_later = [](const SessionTimer& a, const SessionTimer& b) {
    return TimerLater(a, b);
  };
  while (!session_timers_.empty() && session_timers_.front().when <= now) {
    std::pop_heap(session_timers_.begin(), session_timers_.end(), session_later);
    const SessionTimer t = session_timers_.back();
    session_timers_.pop_back();
    Session* found = FindSession(t.session);
    if (found == nullptr || found->generation != t.generation || found->connection != nullptr) {
      continue;  // gone, resumed or rescheduled since
    }
    Session& s = *found;
    if (t.will) {
      if (s.delayed_will) {  // [MQTT-3.1.3-9]: the delay passed and no connection came back
        Will will = std::move(*s.delayed_will);
        s.delayed_will.reset();
        StoreWill(s, nullptr, kNever);
        PublishWill(std::move(will), now);
      }
      continue;
    }
    if (log_) {
      log_(LogLevel::kInfo, "session " + s.client_id + " expired");
    }
    DestroySession(s);  // 5.0 §3.1.2.11.2
  }
  auto later = [](const TimerEntry& a, const TimerEntry& b) { return TimerLater(a, b); };
  while (!resume_timers_.empty() && resume_timers_.front().when <= now) {
    std::pop_heap(resume_timers_.begin(), resume_timers_.end(), later);
    const ConnectionId id = resume_timers_.back().id;
    resume_timers_.pop_back();
    Connection* c = Find(id);
    if (c == nullptr || !c->throttled()) {
      continue;
    }
    c->extras->rate->paused = false;  // the bucket has a token again (TakePublishToken)
    MarkDirty(*c);                    // the net layer reads it again
    DrainInput(*c, now);
    if (c->extras != nullptr && c->extras->rate != nullptr && !c->extras->rate->paused) {
      c->extras->rate->over_since = kNever;  // what waited fitted: not over the rate any more
    }
  }
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
    if (c->state == Connection::State::kRefusing) {
      // The failure delay passed: the refusal goes out (no Reason String, which would tell a
      // guesser more than the code does).
      ++counters_.refused_auth;
      Send(*c, mqtt::Connack{false, c->extras->refusal, {}});
      if (log_) {
        log_(LogLevel::kInfo, "connection from " + c->peer + " refused: " + c->extras->refusal_why);
      }
      Close(*c, c->extras->refusal_why, /*publish_will=*/false, now);
    } else if (c->state != Connection::State::kConnected) {
      Close(*c, "no CONNECT in time", /*publish_will=*/false, now);
    } else if (c->throttled()) {
      // Held back by its publish rate, not silent: its packets wait unread.
      c->deadline = now + KeepAliveWindow(c->keep_alive);
      ArmTimer(*c);
    } else {
      SendDisconnect(*c, ReasonCode::kKeepAliveTimeout, "keep-alive timeout");
      Close(*c, "keep-alive timeout", /*publish_will=*/true, now);  // [MQTT-3.1.2-24]
    }
  }
}

void Broker::HandleDecodeError(Connection& c, mqtt::DecodeError error, Instant now) {
  ++counters_.protocol_errors;
  const ReasonCode reason = mqtt::ToReasonCode(error);
  const std::string why = "protocol error: " + std::string(mqtt::Describe(error));
  if (c.state != Connection::State::kConnected) {
    if (error == mqtt::DecodeError::kUnsupportedProtocolLevel &&
        c.state == Connection::State::kAwaitConnect) {
      // [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then close. The level is not
      // one we speak, so the CONNACK takes the 3.1.1 form every MQTT client reads.
      c.version = ProtocolVersion::kV311;
      Send(c, mqtt::Connack{false, ReasonCode::kUnsupportedProtocolVersion, {}});
    } else if (c.state == Connection::State::kAuthenticating ||
               c.decoder.version() == ProtocolVersion::kV5) {
      // 5.0 [MQTT-3.1.4-2]: a CONNACK with a reason code of 0x80 or more may precede the close
      // (also mid-authentication, whatever the bad packet claims to be).
      // No Reason String: the client's Maximum Packet Size is in the CONNECT that did not decode
      // ([MQTT-3.2.2-19]).
      c.version = ProtocolVersion::kV5;
      Send(c, mqtt::Connack{false, reason, {}});
    }
    // 3.1.1 [MQTT-3.1.4-1]: otherwise close without a CONNACK.
    Close(c, why, /*publish_will=*/false, now);
    return;
  }
  // 5.0 §4.13: DISCONNECT with the reason, then close.
  SendDisconnect(c, reason, mqtt::Describe(error));
  Close(c, why, /*publish_will=*/true, now);
}

void Broker::HandlePacket(Connection& c, const mqtt::Packet& packet, Instant now) {
  if (const auto* connect = std::get_if<mqtt::Connect>(&packet)) {
    HandleConnect(c, *connect, now);
    return;
  }
  if (const auto* auth = std::get_if<mqtt::Auth>(&packet)) {
    HandleAuth(c, *auth, now);
    return;
  }
  if (c.state == Connection::State::kAuthenticating) {
    // 5.0 §4.12: only AUTH may come between a CONNECT that starts an exchange and its CONNACK.
    ++counters_.protocol_errors;
    Send(c, mqtt::Connack{false, ReasonCode::kProtocolError, {}});
    Close(c, "protocol error: packet other than AUTH during authentication", false, now);
    return;
  }
  TINYMQ_DCHECK(c.state == Connection::State::kConnected);  // the decoder enforces CONNECT first
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Publish>) {
          HandlePublish(c, p, now);
          if (limits_.max_publish_rate != 0 && c.state == Connection::State::kConnected) {
            TakePublishToken(c, now);
          }
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
          HandleDisconnect(c, p, now);
        } else {
          // CONNACK, SUBACK, UNSUBACK and PINGRESP are not for a server.
          Reject(c, ReasonCode::kProtocolError,
                 "protocol error: " + std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) +
                     " sent by a client",
                 now);
        }
      },
      packet);
}

void Broker::HandleDisconnect(Connection& c, const mqtt::Disconnect& p, Instant now) {
  if (c.version == ProtocolVersion::kV5) {
    if (auto expiry = p.properties.Number(mqtt::PropertyId::kSessionExpiryInterval)) {
      Session& s = *c.session;
      if (s.expiry_s == 0 && *expiry != 0) {
        // 5.0 [MQTT-3.14.2-2]: a session that was to end with the connection cannot be given a
        // lifetime on the way out.
        Reject(c, ReasonCode::kProtocolError,
               "protocol error: session expiry raised from 0 in DISCONNECT", now);
        return;
      }
      s.expiry_s = *expiry;
      if (limits_.max_session_expiry_s != 0 && s.expiry_s > limits_.max_session_expiry_s) {
        s.expiry_s = limits_.max_session_expiry_s;
      }
      s.ends_with_connection = s.expiry_s == 0;
    }
  }
  // [MQTT-3.14.4-3]: a normal DISCONNECT (0x00, the only one 3.1.x has) discards the will; any
  // other 5.0 reason (0x04 asks for it, 0x80 and up report an error) leaves it to be published
  // ([MQTT-3.1.2-8]).
  const bool with_will = p.reason != ReasonCode::kSuccess;
  if (c.version == ProtocolVersion::kV5 && p.reason != ReasonCode::kSuccess) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02X", static_cast<unsigned>(p.reason));
    Close(c,
          std::string("client sent DISCONNECT ") + code + " " +
              std::string(mqtt::ReasonCodeName(p.reason)),
          with_will, now);
    return;
  }
  Close(c, "client sent DISCONNECT", with_will, now);
}

}  // namespace tinymq::broker
