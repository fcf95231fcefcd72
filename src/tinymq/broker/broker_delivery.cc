// Outgoing messages: session queues, the in-flight window, PUBLISH encoding per receiver,
// resending, and the acknowledgement flows (PUBACK, PUBREC, PUBREL, PUBCOMP).

#include <algorithm>
#include <cstdio>
#include <list>
#include <unordered_set>
#include <utility>

#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"
#include "tinymq/broker/broker_internal.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/topic.h"
#include "tinymq/util/check.h"
#include "tinymq/util/fifo.h"

namespace tinymq::broker {

bool Broker::Ready(const Session& s) const {
  const Connection* c = s.connection;
  return c != nullptr && c->state == Connection::State::kConnected && s.queue.empty() &&
         (!s.stored || s.stored->spilled == 0) && s.awaiting_resend == 0 &&
         s.inflight.size() < Window(*c) && c->pending() <= limits_.output_high_water;
}

void Broker::Deliver(Session& s, Delivery d) {
  if (d.message->expired(last_now_)) {
    ++counters_.dropped_expired;  // [MQTT-3.3.2-5]
    return;
  }
  Connection* c = s.connection;
  const bool online = c != nullptr && c->state == Connection::State::kConnected;
  if (d.qos == QoS::k0) {
    if (!online) {
      ++counters_.dropped_offline_qos0;  // QoS 0 is not kept for offline sessions
    } else if (c->pending() > limits_.output_high_water) {
      ++counters_.dropped_slow_qos0;
    } else {
      Transmit(s, *c, std::move(d));
    }
    return;
  }
  if (Ready(s)) {
    Transmit(s, *c, std::move(d));
    return;
  }
  Enqueue(s, std::move(d));
}

bool Broker::Enqueue(Session& s, Delivery d) {
  const std::size_t bytes = d.message->payload.size();
  const std::size_t spilled = s.stored ? s.stored->spilled : 0;
  const std::size_t spilled_bytes = s.stored ? s.stored->spilled_bytes : 0;
  if (s.queue.size() + spilled >= limits_.max_queued_messages ||
      s.queued_bytes + spilled_bytes + bytes > limits_.max_queued_bytes) {
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
  if (Spill(s, d)) {
    return true;  // in the store only: the queue in memory holds its head
  }
  StoreDelivery(s, d, store::DeliveryState::kQueued, 0);
  s.queue.push_back(std::move(d));
  s.queued_bytes += bytes;
  return true;
}

void Broker::Pump(Session& s) {
  Connection* c = s.connection;
  if (c == nullptr || c->state != Connection::State::kConnected) {
    return;
  }
  // Messages in flight from an earlier connection go again first, in order, as the window allows
  // ([MQTT-4.4.0-1] with [MQTT-3.3.4-9]).
  for (auto it = s.inflight.begin(); it != s.inflight.end() && s.awaiting_resend != 0 &&
                                     s.inflight.size() - s.awaiting_resend < Window(*c) &&
                                     c->pending() <= limits_.output_high_water;) {
    if (!it->awaiting_resend) {
      ++it;
      continue;
    }
    it->awaiting_resend = false;
    --s.awaiting_resend;
    if (!MayRead(*c, it->delivery) || !SendPublish(*c, it->delivery, it->packet_id, true)) {
      // Not for this connection's eyes (another user took the session over), or too large for
      // what the client now takes: given up.
      UnstoreDelivery(s, it->delivery);
      it = s.EraseInFlight(it);
      continue;
    }
    ++it;
  }
  auto room = [&] {
    return s.inflight.size() < Window(*c) && c->pending() <= limits_.output_high_water &&
           c->state == Connection::State::kConnected;
  };
  while (room()) {
    if (s.queue.empty() && (!s.stored || !LoadSpilled(s))) {
      break;  // nothing more here (or in the store, readable now)
    }
    Delivery d = std::move(s.queue.front());
    s.queue.pop_front();
    s.queued_bytes -= d.message->payload.size();
    if (d.message->expired(last_now_)) {
      ++counters_.dropped_expired;  // [MQTT-3.3.2-5]: expired while it waited
      UnstoreDelivery(s, d);
      continue;
    }
    Transmit(s, *c, std::move(d));
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
  } while (s.last_packet_id == 0 || s.FindInFlight(s.last_packet_id) != s.inflight.end());
  return s.last_packet_id;
}

bool Broker::MayRead(const Connection& c, const Delivery& d) {
  const auth::ClientAcl* acl = c.acl();
  if (acl == nullptr || acl->MayReceive(d.message->topic)) {
    return true;
  }
  ++counters_.dropped_acl;
  return false;
}

void Broker::Transmit(Session& s, Connection& c, Delivery d) {
  if (!MayRead(c, d)) {
    // The ACL decides at the last moment, with the connection's rights (retained messages and
    // queued ones included): a message the client may not read is dropped, never sent.
    UnstoreDelivery(s, d);
    return;
  }
  const std::uint16_t packet_id = d.qos == QoS::k0 ? 0 : NextPacketId(s);
  if (s.stored && d.qos != QoS::k0) {
    StoreDelivery(s, d, store::DeliveryState::kSent, packet_id);
    if (d.qos == QoS::k2) {
      // Exactly once: the client must not see it unless the broker will remember it was sent.
      Hold(c);
    }
  }
  if (!SendPublish(c, d, packet_id, /*dup=*/false) || d.qos == QoS::k0) {
    UnstoreDelivery(s, d);
    return;  // QoS 0 is done; a message that could not go out is not in flight either
  }
  s.AddInFlight({packet_id, std::move(d), false});
}

bool Broker::SendPublish(Connection& c, const Delivery& d, std::uint16_t packet_id, bool dup) {
  const Message& m = *d.message;
  mqtt::Publish p;
  p.dup = dup;
  p.qos = d.qos;
  p.retain = d.retain;
  p.topic = m.topic;
  p.packet_id = packet_id;
  p.payload = m.payload_view();
  p.properties = m.properties_view();  // dropped by the 3.1.x encoder
  OutboundAliases* aliases = c.version == ProtocolVersion::kV5 ? c.aliases_out() : nullptr;
  std::uint16_t alias = 0;
  auto known = aliases != nullptr ? aliases->by_topic.find(m.topic)
                                  : decltype(aliases->by_topic)::iterator{};
  if (aliases != nullptr) {
    if (known != aliases->by_topic.end()) {
      alias = known->second->alias;
      p.topic = {};  // 5.0 §3.3.2.3.4: the alias stands for the topic
    } else {
      alias = aliases->lru.size() < aliases->capacity
                  ? static_cast<std::uint16_t>(aliases->lru.size() + 1)
                  : aliases->lru.back().alias;  // the least recently used one is reassigned
    }
  }
  if (d.qos == QoS::k0 && d.ids.empty() && !m.expires() && aliases == nullptr) {
    if (std::optional<bool> sent = SendSharedHeader(c, d, p)) {
      return *sent;
    }
  }
  if (c.version == ProtocolVersion::kV5 && (m.expires() || !d.ids.empty() || alias != 0)) {
    mqtt::PropertiesBuilder& props = publish_properties_;
    props.Clear();
    if (m.expires()) {
      // [MQTT-3.3.2-6]: the interval less the time the message has waited.
      props.Add(mqtt::PropertyId::kMessageExpiryInterval, m.remaining_expiry_s(last_now_));
    }
    if (alias != 0) {
      props.Add(mqtt::PropertyId::kTopicAlias, alias);
    }
    for (std::uint32_t id : d.ids) {
      props.Add(mqtt::PropertyId::kSubscriptionIdentifier, id);
    }
    for (const mqtt::Property& property : m.properties_view()) {
      props.Append(property);
    }
    p.properties = props.view();
  }
  if (c.state == Connection::State::kClosing) {
    return false;
  }
  // The header goes into the connection's buffer; the payload stays in the message and is
  // written from there (Output chunks, one writev per connection).
  std::vector<std::uint8_t>& out = AcquireOut(c).out;
  const std::size_t before = out.size();
  if (!EncodeHeader(p, c.version, out)) {
    return false;
  }
  const std::size_t written = out.size() - before + m.payload.size();
  if (written > c.client_max_packet_size) {
    // [MQTT-3.1.2-25]: not sent to a client that cannot take it; as if it had been delivered.
    out.resize(before);
    ++counters_.dropped_too_large;
    return false;
  }
  if (!m.payload.empty()) {
    AppendRef(c, PayloadRef{out.size(), d.message, 0});
  }
  MarkDirty(c);
  if (aliases != nullptr) {
    if (known != aliases->by_topic.end()) {  // most recently used now
      aliases->lru.splice(aliases->lru.begin(), aliases->lru, known->second);
    } else {
      if (aliases->lru.size() == aliases->capacity) {
        aliases->by_topic.erase(aliases->lru.back().topic);
        aliases->lru.pop_back();
      }
      aliases->lru.push_front({m.topic, alias});
      aliases->by_topic.emplace(aliases->lru.front().topic, aliases->lru.begin());
    }
  }
  ++counters_.messages_sent;
  ++counters_.sent_by_qos[static_cast<std::size_t>(d.qos)];
  counters_.publish_bytes_sent[static_cast<std::size_t>(d.qos)] += m.payload.size();
  return true;
}

std::optional<bool> Broker::SendSharedHeader(Connection& c, const Delivery& d,
                                             const mqtt::Publish& p) {
  // Nothing in this PUBLISH is the receiver's own: its header is encoded once per message (and
  // version and RETAIN) and, like the payload, written from the message itself.
  const Message& m = *d.message;
  const std::size_t index = Message::HeaderIndex(c.version == ProtocolVersion::kV5, d.retain);
  const std::vector<std::uint8_t>* header = m.SharedHeader(
      index, [&](std::vector<std::uint8_t>& out) { return EncodeHeader(p, c.version, out); });
  if (header == nullptr) {
    return std::nullopt;  // being encoded by another worker, or unencodable: the general path
  }
  const std::size_t size = header->size() + m.payload.size();
  if (size > c.client_max_packet_size) {
    ++counters_.dropped_too_large;  // [MQTT-3.1.2-25]
    return false;
  }
  if (c.state == Connection::State::kClosing) {
    return false;
  }
  AppendRef(c,
            PayloadRef{AcquireOut(c).out.size(), d.message, static_cast<std::uint8_t>(index + 1)});
  MarkDirty(c);
  ++counters_.messages_sent;
  ++counters_.sent_by_qos[0];
  counters_.publish_bytes_sent[0] += m.payload.size();
  return true;
}

bool Broker::EncodeHeader(const mqtt::Publish& p, ProtocolVersion version,
                          std::vector<std::uint8_t>& out) {
  if (auto r = mqtt::EncodePublishHeader(p, version, out); !r) {
    // Only an unencodable forward gets here (a 256 MiB 3.1.1 message to a 5.0 client, say).
    if (log_) {
      log_(LogLevel::kWarning, "cannot forward a PUBLISH on " + std::string(p.topic) + ": " +
                                   std::string(mqtt::Describe(r.error())));
    }
    return false;
  }
  return true;
}

void Broker::AppendRef(Connection& c, PayloadRef ref) {
  PendingOutput& o = AcquireOut(c);
  o.refs_pending += ref.size();
  o.ref_total += ref.size();
  o.refs.push_back(std::move(ref));
}

void Broker::Resend(Session& s, Connection& c) {
  // [MQTT-4.4.0-1]: everything in flight goes again with its packet id, in order. PUBRELs all go
  // (they take nothing more from the client's Receive Maximum); the PUBLISHes go while the new
  // connection's window allows, and the rest as acknowledgements make room ([MQTT-3.3.4-9]).
  const std::size_t window = Window(c);
  std::size_t used = static_cast<std::size_t>(std::count_if(
      s.inflight.begin(), s.inflight.end(), [](const Session::InFlight& f) { return f.released; }));
  s.awaiting_resend = 0;
  for (auto it = s.inflight.begin(); it != s.inflight.end();) {
    it->awaiting_resend = false;
    if (it->released) {
      Send(c, mqtt::Pubrel{it->packet_id, ReasonCode::kSuccess, {}});
    } else if (!MayRead(c, it->delivery)) {
      UnstoreDelivery(s, it->delivery);
      it = s.EraseInFlight(it);  // this connection may not read it (another user's, say)
      continue;
    } else if (s.awaiting_resend != 0 || used >= window) {
      it->awaiting_resend = true;
      ++s.awaiting_resend;
    } else if (SendPublish(c, it->delivery, it->packet_id, /*dup=*/true)) {
      ++used;
    } else {
      UnstoreDelivery(s, it->delivery);
      it = s.EraseInFlight(it);  // too large for what the client now takes: given up
      continue;
    }
    ++it;
  }
  Pump(s);
}

void Broker::HandlePuback(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.FindInFlight(packet_id);
  if (it == s.inflight.end() || it->delivery.qos != QoS::k1) {
    return;  // unknown or not a QoS 1 id: nothing to release
  }
  UnstoreDelivery(s, it->delivery);
  s.EraseInFlight(it);
  Pump(s);
}

void Broker::HandlePubrec(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.FindInFlight(packet_id);
  if (it != s.inflight.end() && it->delivery.qos == QoS::k2) {
    if (it->awaiting_resend) {  // the client had it from an earlier connection
      it->awaiting_resend = false;
      --s.awaiting_resend;
    }
    it->released = true;           // [MQTT-4.3.3-1]: from now on only PUBREL is resent
    it->delivery.message.reset();  // the payload is no longer needed
    it->delivery.ids.clear();
    if (s.stored) {
      // Once the client has the PUBREL it forgets the id: a resent PUBLISH would be new to it.
      StoreDelivery(s, it->delivery, store::DeliveryState::kReleased, packet_id);
      Hold(c);
    }
    // [MQTT-4.6.0-3]: PUBRELs go (and are resent) in the order the PUBRECs came; moving the entry
    // to the end keeps the PUBLISHes still unacknowledged in their own order ([MQTT-4.6.0-1]).
    s.inflight.splice(s.inflight.end(), s.inflight, it);
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
  const bool known = s.TakePubrel(packet_id);
  if (known && s.stored) {
    const std::string key = store::IncomingKey(s.client_id, packet_id);
    for (std::uint16_t w = 0; w < cluster_.count && cluster_.count > 1; ++w) {
      if (w != cluster_.index) {
        writes_.Delete(store::Kind::kIncoming, store::RoutedMarkerKey(key, w));
      }
    }
    writes_.Delete(store::Kind::kIncoming, key);
    Hold(c);  // a PUBCOMP lets the client reuse the id: the broker must have forgotten it for good
  }
  // [MQTT-4.3.3-2]: PUBCOMP even for an id already released (the PUBCOMP may have been lost).
  Send(c, mqtt::Pubcomp{packet_id,
                        known || c.version != ProtocolVersion::kV5
                            ? ReasonCode::kSuccess
                            : ReasonCode::kPacketIdentifierNotFound,
                        {}});
}

void Broker::HandlePubcomp(Connection& c, std::uint16_t packet_id) {
  Session& s = *c.session;
  auto it = s.FindInFlight(packet_id);
  if (it == s.inflight.end() || !it->released) {
    return;
  }
  UnstoreDelivery(s, it->delivery);
  s.EraseInFlight(it);
  Pump(s);
}

}  // namespace tinymq::broker
