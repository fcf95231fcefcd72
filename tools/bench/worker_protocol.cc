#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tools/bench/clock.h"
#include "tools/bench/connection.h"
#include "tools/bench/stamp.h"
#include "tools/bench/worker.h"

// The MQTT side of a Worker: CONNECT and SUBSCRIBE at set-up, publishing on schedule or within
// the window, acknowledging deliveries, checking them against the stamps, keep-alive. Everything
// here appends to the connection's output; the loop in worker.cc writes it once per turn.

namespace tinymq::bench {
namespace {

// A publisher produces nothing while this much of its output is unsent (TCP pushes back).
constexpr std::size_t kOutputHighWater = 64 * 1024;
// At most this many bytes of PUBLISH per publisher per loop turn, so that one publisher catching
// up cannot starve the others or the subscribers on the same thread.
constexpr std::size_t kTurnBytes = 32 * 1024;
constexpr std::uint32_t kFiltersPerSubscribe = 100;

std::string ReasonText(mqtt::ReasonCode code) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto v = static_cast<std::uint8_t>(code);
  return std::string(mqtt::ReasonCodeName(code)) + " (0x" + kDigits[v >> 4] + kDigits[v & 15] + ")";
}

template <typename A>
A Ack(std::uint16_t packet_id) {
  A ack;
  ack.packet_id = packet_id;
  return ack;
}

}  // namespace

template <typename P>
void Worker::Send(Connection& c, const P& packet) {
  const auto result = mqtt::Encode(packet, options_.version, c.out);
  if (!result) {
    Fail("cannot encode a packet: " + std::string(mqtt::Describe(result.error())));
    return;
  }
  MarkDirty(c);
}

void Worker::MarkDirty(Connection& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(&c);
  }
}

// Set-up ------------------------------------------------------------------------------------

void Worker::OnConnected(Connection& c) {
  c.state = Connection::State::kAwaitConnack;
  mqtt::Connect connect;
  connect.version = options_.version;
  const bool v5 = options_.version == mqtt::ProtocolVersion::kV5;
  connect.clean_start = !options_.persistent || v5;
  connect.keep_alive = options_.keepalive_s;
  connect.client_id = c.spec.client_id;
  mqtt::PropertiesBuilder props;
  if (options_.persistent && v5) {
    props.Add(mqtt::PropertyId::kSessionExpiryInterval, 3600U);
    connect.properties = props.view();
  }
  Send(c, connect);
}

void Worker::OnConnack(Connection& c, const mqtt::Connack& connack, std::int64_t now) {
  if (c.state != Connection::State::kAwaitConnack) {
    Close(c, "unexpected CONNACK from the broker");
    return;
  }
  if (mqtt::IsFailure(connack.reason)) {
    Fail(c.spec.client_id + ": the broker refused the connection: " + ReasonText(connack.reason));
    return;
  }
  std::uint32_t window = options_.inflight;
  if (options_.version == mqtt::ProtocolVersion::kV5) {
    using mqtt::PropertyId;
    const mqtt::Properties& props = connack.properties;
    if (const auto m = props.Number(PropertyId::kReceiveMaximum)) {
      window = std::min(window, *m);  // 5.0 §3.3.4: never more unacknowledged than this
    }
    if (const auto q = props.Number(PropertyId::kMaximumQos);
        q && *q < static_cast<std::uint32_t>(options_.qos) && c.spec.role != Role::kIdle) {
      Fail("the broker supports QoS " + std::to_string(*q) + " at most (--qos " +
           std::to_string(static_cast<int>(options_.qos)) + ")");
      return;
    }
    // Fixed header (5) + topic (2 + n) + packet id (2) + property length (1) + payload.
    const std::uint64_t publish_size = 10 + c.spec.topic.size() + options_.payload;
    if (const auto m = props.Number(PropertyId::kMaximumPacketSize);
        m && c.spec.role == Role::kPublisher && *m < publish_size) {
      Fail("the broker's Maximum Packet Size is " + std::to_string(*m) +
           " bytes: too small for --payload " + std::to_string(options_.payload));
      return;
    }
    if (const auto k = props.Number(PropertyId::kServerKeepAlive)) {  // 5.0 §3.2.2.3.14
      c.keepalive_ns = std::int64_t{*k} * kNsPerSecond;
      if (c.keepalive_ns > 0) {
        keepalive_scan_ns_ = std::min(keepalive_scan_ns_, c.keepalive_ns / 4);
      }
    }
  }
  if (c.spec.role == Role::kPublisher && options_.qos != mqtt::QoS::k0) {
    c.id_state.assign(window + 1, 0);
    c.free_ids.clear();
    for (std::uint32_t id = window; id >= 1; --id) {
      c.free_ids.push_back(static_cast<std::uint16_t>(id));
    }
  }
  if (c.spec.role == Role::kSubscriber || c.spec.role == Role::kIdleSubscriber) {
    Subscribe(c);
  } else {
    OnSetUp(c, now);
  }
}

void Worker::Subscribe(Connection& c) {
  c.state = Connection::State::kSubscribing;
  mqtt::SubscriptionOptions sub_options;
  sub_options.max_qos = options_.qos;
  std::uint16_t packet_id = 0;
  auto send = [&](const mqtt::SubscriptionListBuilder& list) {
    mqtt::Subscribe s;
    s.packet_id = ++packet_id;
    s.subscriptions = list.view();
    Send(c, s);
    ++c.subacks_pending;
  };
  if (c.spec.role == Role::kSubscriber) {
    mqtt::SubscriptionListBuilder list;
    list.Add(c.spec.topic, sub_options);
    send(list);
    return;
  }
  for (std::uint32_t k = 0; k < c.spec.idle_count; k += kFiltersPerSubscribe) {
    mqtt::SubscriptionListBuilder list;
    const std::uint32_t end = std::min(c.spec.idle_count, k + kFiltersPerSubscribe);
    for (std::uint32_t j = k; j < end; ++j) {
      list.Add(IdleTopic(options_, c.spec.idle_first + j), sub_options);
    }
    send(list);
  }
  if (c.subacks_pending == 0) {
    OnSetUp(c, NowNs());
  }
}

void Worker::OnSuback(Connection& c, const mqtt::Suback& suback, std::int64_t now) {
  if (c.state != Connection::State::kSubscribing || c.subacks_pending == 0) {
    Close(c, "unexpected SUBACK from the broker");
    return;
  }
  for (std::size_t i = 0; i < suback.reason_codes.size(); ++i) {
    if (mqtt::IsFailure(suback.reason_codes[i])) {
      Fail(c.spec.client_id +
           ": the broker refused a subscription: " + ReasonText(suback.reason_codes[i]));
      return;
    }
  }
  if (--c.subacks_pending == 0) {
    OnSetUp(c, now);
  }
}

void Worker::OnSetUp(Connection& c, std::int64_t now) {
  c.state = Connection::State::kReady;
  --pending_;
  WorkerCounters::Add(counters_.ready);
  counters_.last_ready_ns.store(now, std::memory_order_relaxed);
}

// Packets -----------------------------------------------------------------------------------

void Worker::OnPacket(Connection& c, const mqtt::Packet& packet, std::int64_t now) {
  using mqtt::PacketType;
  if (const auto* p = std::get_if<mqtt::Publish>(&packet)) {
    OnDelivery(c, *p, now);
  } else if (const auto* a = std::get_if<mqtt::Puback>(&packet)) {
    OnPublisherAck(c, PacketType::kPuback, a->packet_id, a->reason);
  } else if (const auto* rec = std::get_if<mqtt::Pubrec>(&packet)) {
    OnPublisherAck(c, PacketType::kPubrec, rec->packet_id, rec->reason);
  } else if (const auto* comp = std::get_if<mqtt::Pubcomp>(&packet)) {
    OnPublisherAck(c, PacketType::kPubcomp, comp->packet_id, comp->reason);
  } else if (const auto* rel = std::get_if<mqtt::Pubrel>(&packet)) {
    Send(c, Ack<mqtt::Pubcomp>(rel->packet_id));
  } else if (std::holds_alternative<mqtt::Pingresp>(packet)) {
    if (c.final_ping) {
      c.final_ping = false;
      WorkerCounters::Add(counters_.final_pongs);
    }
  } else if (const auto* connack = std::get_if<mqtt::Connack>(&packet)) {
    OnConnack(c, *connack, now);
  } else if (const auto* suback = std::get_if<mqtt::Suback>(&packet)) {
    OnSuback(c, *suback, now);
  } else if (const auto* d = std::get_if<mqtt::Disconnect>(&packet)) {
    Close(c, "the broker sent DISCONNECT " + ReasonText(d->reason));
  } else {
    Close(c, "unexpected " + std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) +
                 " from the broker");
  }
}

void Worker::OnDelivery(Connection& c, const mqtt::Publish& publish, std::int64_t now) {
  if (publish.qos == mqtt::QoS::k1) {
    Send(c, Ack<mqtt::Puback>(publish.packet_id));
  } else if (publish.qos == mqtt::QoS::k2) {
    Send(c, Ack<mqtt::Pubrec>(publish.packet_id));
  }
  const std::optional<Stamp> stamp = ReadStamp(publish.payload.span());
  if (!stamp || c.spec.role != Role::kSubscriber) {
    WorkerCounters::Add(counters_.foreign);
    return;
  }
  if (c.cached_tracker == nullptr || c.cached_publisher != stamp->publisher) {
    c.cached_tracker = &c.trackers[stamp->publisher];
    c.cached_publisher = stamp->publisher;
  }
  switch (c.cached_tracker->Observe(stamp->sequence)) {
    case SequenceTracker::Outcome::kDuplicate: WorkerCounters::Add(counters_.duplicates); return;
    case SequenceTracker::Outcome::kNewOutOfOrder:
      WorkerCounters::Add(counters_.out_of_order);
      break;
    case SequenceTracker::Outcome::kNew: break;
  }
  WorkerCounters::Add(counters_.received);
  const std::int64_t measure_start =
      control_.start_ns.load(std::memory_order_relaxed) + control_.warmup_ns;
  const std::int64_t send_end = control_.send_end_ns.load(std::memory_order_relaxed);
  if (stamp->send_ns >= measure_start && stamp->send_ns < send_end) {
    WorkerCounters::Add(counters_.delivered);
    latency_.Record(now - stamp->send_ns);
  }
}

void Worker::OnPublisherAck(Connection& c, mqtt::PacketType type, std::uint16_t packet_id,
                            mqtt::ReasonCode reason) {
  const bool known = c.spec.role == Role::kPublisher && packet_id < c.id_state.size();
  const std::uint8_t state = known ? c.id_state[packet_id] : 0;
  const bool qos2 = options_.qos == mqtt::QoS::k2;
  bool expected = false;
  if ((state & kIdInFlight) != 0) {
    switch (type) {
      case mqtt::PacketType::kPuback: expected = !qos2; break;
      case mqtt::PacketType::kPubrec: expected = qos2 && (state & kIdReleased) == 0; break;
      case mqtt::PacketType::kPubcomp: expected = qos2 && (state & kIdReleased) != 0; break;
      default: break;
    }
  }
  if (!expected) {
    Close(c, "unexpected " + std::string(mqtt::PacketTypeName(type)) + " for packet id " +
                 std::to_string(packet_id));
    return;
  }
  const bool refused = mqtt::IsFailure(reason);
  if (type == mqtt::PacketType::kPubrec && !refused) {
    c.id_state[packet_id] |= kIdReleased;
    Send(c, Ack<mqtt::Pubrel>(packet_id));
    return;
  }
  // The flow is complete: PUBACK, PUBCOMP, or a PUBREC refusing the message (5.0 §4.3.3).
  c.id_state[packet_id] = 0;
  c.free_ids.push_back(packet_id);
  WorkerCounters::Sub(counters_.inflight);
  if (refused) {
    WorkerCounters::Add(counters_.refused);
  } else if ((state & kIdMeasured) != 0) {
    WorkerCounters::Add(counters_.completed_measured);
  }
}

// Publishing and keep-alive ---------------------------------------------------------------------

std::int64_t Worker::Publish(std::int64_t now, std::int64_t start) {
  const bool measured = now >= start + control_.warmup_ns;
  const bool windowed = options_.qos != mqtt::QoS::k0;
  std::int64_t wake = kNever;
  for (Connection* cp : publishers_) {
    Connection& c = *cp;
    if (c.state != Connection::State::kReady) {
      continue;
    }
    std::uint64_t allowed = std::numeric_limits<std::uint64_t>::max();
    if (rate_per_publisher_ > 0) {
      // Message k of each publisher is due at start + k / rate.
      const auto due =
          static_cast<std::uint64_t>(static_cast<double>(now - start) * rate_per_publisher_) + 1;
      allowed = due > c.next_seq ? due - c.next_seq : 0;
    }
    if (windowed) {
      allowed = std::min<std::uint64_t>(allowed, c.free_ids.size());
    }
    const std::size_t before = c.out.size();
    while (allowed > 0 && c.unsent() < kOutputHighWater && c.out.size() - before < kTurnBytes) {
      PublishOne(c, now, measured);
      --allowed;
    }
    if (c.unsent() >= kOutputHighWater || (windowed && c.free_ids.empty())) {
      continue;  // goes on when the socket drains or an acknowledgement comes
    }
    if (allowed > 0) {
      wake = now;  // stopped by the per-turn cap: more at once
    } else if (rate_per_publisher_ > 0) {
      const double due_in = static_cast<double>(c.next_seq) / rate_per_publisher_;
      wake = std::min(wake, start + static_cast<std::int64_t>(std::ceil(due_in)) + 1);
    }
  }
  return wake;
}

void Worker::PublishOne(Connection& c, std::int64_t now, bool measured) {
  WriteStamp(Stamp{.publisher = c.spec.index, .sequence = c.next_seq, .send_ns = now}, payload_);
  ++c.next_seq;
  mqtt::Publish p;
  p.qos = options_.qos;
  p.topic = c.spec.topic;
  p.payload = mqtt::BinaryView(payload_);
  if (options_.qos != mqtt::QoS::k0) {
    const std::uint16_t id = c.free_ids.back();
    c.free_ids.pop_back();
    c.id_state[id] = static_cast<std::uint8_t>(kIdInFlight | (measured ? kIdMeasured : 0));
    p.packet_id = id;
    WorkerCounters::Add(counters_.inflight);
  }
  Send(c, p);
  WorkerCounters::Add(counters_.sent);
  if (measured) {
    WorkerCounters::Add(counters_.sent_measured);
  }
}

void Worker::KeepAlive(std::int64_t now) {
  for (const auto& cp : conns_) {
    Connection& c = *cp;
    if (c.state != Connection::State::kReady || c.keepalive_ns == 0) {
      continue;
    }
    // [MQTT-3.1.2-23]: a packet within every keep-alive period; half of it leaves margin.
    if (now - c.last_write_ns >= c.keepalive_ns / 2) {
      Send(c, mqtt::Pingreq{});
      c.last_write_ns = now;  // not twice before the flush
    }
  }
}

void Worker::FinalPing() {
  final_ping_done_ = true;
  for (const auto& cp : conns_) {
    Connection& c = *cp;
    if (c.state == Connection::State::kReady) {
      c.final_ping = true;
      Send(c, mqtt::Pingreq{});
      WorkerCounters::Add(counters_.final_pings);
    }
  }
  counters_.final_round_done.store(true, std::memory_order_relaxed);
}

void Worker::SendDisconnect(Connection& c) { Send(c, mqtt::Disconnect{}); }

}  // namespace tinymq::bench
