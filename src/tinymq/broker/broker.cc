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
namespace {

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

// Buffer pools (read, write, payload references): at most kPoolMax buffers each.
constexpr std::size_t kPoolMax = 256;

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
mqtt::PropertiesBuilder ReasonString(std::string_view text) {
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

}  // namespace

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

ConnectionId Broker::Accept(std::string peer, Instant now, std::string cert_username) {
  last_now_ = now;
  std::uint32_t slot = 0;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(connections_.size());
    connections_.grow();
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  Connection& ref = connections_[slot];
  // A slot is reused, its id never: the sequence number above the slot is new every time.
  // (1 to 2^32 - 1: an id is never 0, and its sequence fits the net layer's 32-bit check.)
  const std::uint64_t sequence = next_connection_id_++ % 0xFFFFFFFFU + 1;
  ref.id = (sequence << 32) | slot;
  ref.peer = std::move(peer);
  // Until its CONNECT is in, a connection may send no more than this (5.0 [MQTT-3.1.0-1]: the
  // first packet is a CONNECT, which needs no more than a will and a few properties).
  ref.decoder.set_max_packet_size(
      std::min(limits_.max_packet_size, limits_.max_connect_packet_size));
  ref.deadline = now + limits_.connect_timeout;
  if (!cert_username.empty()) {
    ref.Extra().username = std::move(cert_username);
    ref.extras->cert_user = true;
  }
  ++connection_count_;
  ++counters_.connections_accepted;
  ArmTimer(ref);
  return ref.id;
}

void Broker::SetPeer(ConnectionId id, std::string peer) {
  if (Connection* c = Find(id); c != nullptr && c->state == Connection::State::kAwaitConnect) {
    c->peer = std::move(peer);
  }
}

void Broker::SetCertUsername(ConnectionId id, std::string username) {
  if (Connection* c = Find(id); c != nullptr && c->state == Connection::State::kAwaitConnect) {
    c->Extra().username = std::move(username);
    c->extras->cert_user = true;
  }
}

bool Broker::InputPaused(ConnectionId id) const {
  const Connection* c = Find(id);
  return c != nullptr && (c->state == Connection::State::kVerifying ||
                          c->state == Connection::State::kRefusing || c->throttled());
}

std::span<std::uint8_t> Broker::ReadBuffer(ConnectionId id) {
  Connection* c = Find(id);
  TINYMQ_CHECK(c != nullptr);
  if (c->decoder.capacity() == 0 && !read_pool_.empty()) {
    c->decoder.AdoptBuffer(std::move(read_pool_.back()));
    read_pool_.pop_back();
  }
  return c->decoder.PrepareRead();
}

void Broker::OnRead(ConnectionId id, std::size_t n, Instant now) {
  last_now_ = now;
  counters_.bytes_received += n;
  Connection* c = Find(id);
  if (c == nullptr) {
    return;
  }
  c->decoder.CommitRead(n);
  if (c->state == Connection::State::kHandedOff) {
    return;  // kept for the worker that takes the connection
  }
  DrainInput(*c, now);
}

void Broker::DrainInput(Connection& c, Instant now) {
  auto may_decode = [&c] {
    switch (c.state) {
      case Connection::State::kClosing:
      case Connection::State::kHandedOff:
      case Connection::State::kVerifying:
      case Connection::State::kRefusing: return false;
      default: return !c.throttled();
    }
  };
  while (may_decode()) {
    auto next = c.decoder.Next();
    if (!next) {
      HandleDecodeError(c, next.error(), now);
      break;
    }
    if (!next->has_value()) {
      break;
    }
    if (c.state == Connection::State::kConnected && c.keep_alive != 0) {
      c.deadline = now + KeepAliveWindow(c.keep_alive);  // [MQTT-3.1.2-24]
    }
    HandlePacket(c, **next, now);
  }
  if (c.state == Connection::State::kHandedOff) {
    return;
  }
  // Nothing half-read: the buffer goes back to the pool, so an idle connection holds none.
  // (A decoder buffer keeps its size: the decoder reads into all of it. TakeBuffer gives nothing
  // while bytes are pending, e.g. behind a paused input.)
  std::vector<std::uint8_t> buffer = c.decoder.TakeBuffer();
  ReturnToPool(read_pool_, buffer, kPooledBufferMax);
}

void Broker::OnPeerClosed(ConnectionId id, Instant now) {
  last_now_ = now;
  if (Connection* c = Find(id)) {
    Close(*c, "connection lost", /*publish_will=*/true, now);
  }
}

std::size_t Broker::Output(ConnectionId id, std::span<OutputChunk> chunks) const {
  const Connection* c = Find(id);
  std::size_t n = 0;
  if (c != nullptr && !chunks.empty()) {
    c->ForEachPending([&](const std::uint8_t* data, std::size_t size) {
      chunks[n++] = OutputChunk{data, size};
      return n < chunks.size();
    });
  }
  return n;
}

std::size_t Broker::OutputSize(ConnectionId id) const {
  const Connection* c = Find(id);
  return c == nullptr || c->io == nullptr ? 0 : c->io->writable();
}

std::vector<std::uint8_t> Broker::CopyOutput(ConnectionId id) const {
  std::vector<std::uint8_t> bytes;
  if (const Connection* c = Find(id)) {
    c->ForEachPending([&](const std::uint8_t* data, std::size_t size) {
      bytes.insert(bytes.end(), data, data + size);
      return true;
    });
  }
  return bytes;
}

void Broker::OnWritten(ConnectionId id, std::size_t n, Instant) {
  Connection* c = Find(id);
  if (c == nullptr) {
    return;
  }
  PendingOutput* o = c->io.get();
  TINYMQ_CHECK(n == 0 || (o != nullptr && n <= o->writable()));
  counters_.bytes_sent += n;
  if (o != nullptr) {
    o->written += n;
  }
  while (n > 0) {
    const std::size_t owned_end =
        o->ref_begin < o->refs.size() ? o->refs[o->ref_begin].at : o->out.size();
    if (o->out_begin < owned_end) {
      const std::size_t k = std::min(n, owned_end - o->out_begin);
      o->out_begin += k;
      n -= k;
      continue;
    }
    PayloadRef& ref = o->refs[o->ref_begin];
    const std::size_t size = ref.size();
    const std::size_t k = std::min(n, size - o->ref_offset);
    o->ref_offset += k;
    o->refs_pending -= k;
    n -= k;
    if (o->ref_offset == size) {
      ref.message.reset();  // written: the connection no longer holds the message
      ++o->ref_begin;
      o->ref_offset = 0;
    }
  }
  if (o != nullptr && o->pending() == 0) {
    // All written: the output goes back to the pool, so an idle connection holds none.
    ReleaseOutput(*c);
  }
  // Below half the high-water mark, messages held back for this connection may go out.
  if (c->session != nullptr &&
      (!c->session->queue.empty() || (c->session->stored && c->session->stored->spilled != 0)) &&
      c->pending() <= limits_.output_high_water / 2) {
    Pump(*c->session);
  }
}

bool Broker::ShouldClose(ConnectionId id) const {
  const Connection* c = Find(id);
  return c == nullptr ||
         (c->state == Connection::State::kClosing && (c->io == nullptr || !c->io->held()));
}

std::uint16_t Broker::HomeOf(std::string_view client_id) const {
  return HomeAmong(client_id, cluster_.count);
}

std::uint16_t HomeAmong(std::string_view client_id, std::uint16_t workers) {
  if (workers <= 1) {
    return 0;
  }
  return static_cast<std::uint16_t>(std::hash<std::string_view>{}(client_id) % workers);
}

std::optional<std::uint16_t> Broker::HandoffTarget(ConnectionId id) const {
  const Connection* c = Find(id);
  if (c == nullptr || c->state != Connection::State::kHandedOff) {
    return std::nullopt;
  }
  return c->handoff_to;
}

Broker::Handoff Broker::TakeHandoff(ConnectionId id) {
  Handoff out;
  Connection* c = Find(id);
  if (c == nullptr || c->state != Connection::State::kHandedOff) {
    return out;
  }
  out.peer = std::move(c->peer);
  if (c->extras != nullptr && c->extras->cert_user) {
    out.cert_username = std::move(c->extras->username);
  }
  const mqtt::BinaryView input = c->decoder.pending_bytes();
  out.input.assign(input.begin(), input.end());
  Forget(id);  // a stale timer entry or dirty mark finds nothing
  return out;
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
  ++counters_.connections_closed;
  Forget(id);
}

std::span<const ConnectionId> Broker::TakeDirty() {
  taken_dirty_.clear();
  taken_dirty_.swap(dirty_);  // both keep their capacity: no allocation in the steady state
  for (ConnectionId id : taken_dirty_) {
    if (Connection* c = Find(id)) {
      c->dirty = false;
    }
  }
  return taken_dirty_;
}

void Broker::MarkDirty(Connection& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(c.id);
  }
}

Broker::PendingOutput& Broker::AcquireOut(Connection& c) {
  if (c.io == nullptr) {
    if (output_pool_.empty()) {
      c.io = std::make_unique<PendingOutput>();
    } else {
      c.io = std::move(output_pool_.back());
      output_pool_.pop_back();
    }
  }
  return *c.io;
}

void Broker::ReleaseOutput(Connection& c) {
  std::unique_ptr<PendingOutput> o = std::move(c.io);
  o->out.clear();
  o->refs.clear();  // (drops the connection's references to the messages)
  o->out_begin = o->ref_begin = o->ref_offset = o->refs_pending = 0;
  o->holds.clear();
  o->hold_begin = o->ref_total = o->written = 0;
  o->listed = false;
  // Kept with its buffers unless they grew large (one big burst must not pin its memory).
  if (o->out.capacity() > kPooledBufferMax) {
    std::vector<std::uint8_t>().swap(o->out);
  }
  if (o->refs.capacity() > kPooledRefsMax) {
    std::vector<PayloadRef>().swap(o->refs);
  }
  if (output_pool_.size() < kPoolMax) {
    output_pool_.push_back(std::move(o));
  }
}

void Broker::Send(Connection& c, const mqtt::Packet& packet) {
  if (c.state == Connection::State::kClosing) {
    return;
  }
  if (auto r = mqtt::Encode(packet, c.version, AcquireOut(c).out); !r) {
    // Only a bug can get here (every field came through the decoder or from the broker itself).
    if (log_) {
      log_(LogLevel::kWarning,
           std::string("cannot encode ") + std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) +
               " for " + (c.session != nullptr ? c.session->client_id : c.peer) + ": " +
               std::string(mqtt::Describe(r.error())));
    }
    return;
  }
  MarkDirty(c);
}

void Broker::SendFitting(Connection& c, const mqtt::Packet& with, const mqtt::Packet& without,
                         std::uint32_t max_packet_size) {
  if (c.state == Connection::State::kClosing) {
    return;
  }
  std::vector<std::uint8_t>& out = AcquireOut(c).out;
  const std::size_t before = out.size();
  Send(c, with);
  const std::size_t written = out.size() - before;
  if (written == 0 || written > max_packet_size) {
    out.resize(before);
    Send(c, without);
  }
}

void Broker::SendDisconnect(Connection& c, ReasonCode reason, std::string_view why) {
  if (c.version != ProtocolVersion::kV5) {
    return;  // 3.1.x has no server DISCONNECT: the connection is just closed
  }
  // [MQTT-3.14.2-3]: the Reason String only if the packet stays within the client's maximum.
  SendFitting(c, mqtt::Disconnect{reason, ReasonString(why).view()}, mqtt::Disconnect{reason, {}},
              c.client_max_packet_size);
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

void Broker::HandleAuth(Connection& c, const mqtt::Auth& auth, Instant now) {
  const std::string_view method =
      auth.properties.Text(mqtt::PropertyId::kAuthenticationMethod).value_or("");
  const mqtt::BinaryView data =
      auth.properties.Binary(mqtt::PropertyId::kAuthenticationData).value_or(mqtt::BinaryView{});
  const bool connecting = c.state == Connection::State::kAuthenticating;
  auto fail = [&](ReasonCode reason, std::string_view why) {
    ++counters_.protocol_errors;
    if (connecting) {
      Send(c, mqtt::Connack{false, reason, {}});
      Close(c, why, /*publish_will=*/false, now);
    } else {
      SendDisconnect(c, reason, why);
      Close(c, why, /*publish_will=*/true, now);
    }
  };
  // [MQTT-4.12.0-5] / [MQTT-4.12.1-1]: AUTH only within an exchange, with the method it began.
  if (c.auth() == nullptr || method != c.auth()->method) {
    fail(ReasonCode::kProtocolError, "protocol error: AUTH without enhanced authentication");
    return;
  }
  std::unique_ptr<AuthExchange>& exchange = c.auth()->exchange;
  if (auth.reason == ReasonCode::kReAuthenticate && exchange == nullptr && !connecting) {
    exchange =
        authenticator_ != nullptr ? authenticator_->Begin(method, c.session->client_id) : nullptr;
    if (exchange == nullptr) {
      fail(ReasonCode::kBadAuthenticationMethod, "authentication method no longer supported");
      return;
    }
  } else if (auth.reason != ReasonCode::kContinueAuthentication || exchange == nullptr) {
    fail(ReasonCode::kProtocolError, "protocol error: unexpected AUTH");
    return;
  }
  AuthStep step = exchange->Next(data);
  mqtt::PropertiesBuilder props;
  props.Add(mqtt::PropertyId::kAuthenticationMethod, c.auth()->method);
  if (!step.data.empty()) {
    props.AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView(step.data));
  }
  switch (step.outcome) {
    case AuthStep::Outcome::kContinue:
      Send(c, mqtt::Auth{ReasonCode::kContinueAuthentication, props.view()});
      return;
    case AuthStep::Outcome::kFail:
      exchange.reset();
      if (connecting) {
        Send(c, mqtt::Connack{false, step.reason, {}});
        Close(c, "authentication failed", /*publish_will=*/false, now);
      } else {
        SendDisconnect(c, step.reason, "re-authentication failed");
        Close(c, "re-authentication failed", /*publish_will=*/true, now);
      }
      return;
    case AuthStep::Outcome::kSuccess: break;
  }
  exchange.reset();
  if (!connecting) {
    Send(c, mqtt::Auth{ReasonCode::kSuccess, props.view()});  // 5.0 §4.12.1: re-authenticated
    return;
  }
  // The CONNECT that waited for the exchange goes on (it decoded once, so it decodes again).
  const std::vector<std::uint8_t> bytes = std::move(c.auth()->pending_connect);
  c.auth()->pending_connect.clear();
  auto header = mqtt::ParseFixedHeader(mqtt::BinaryView(bytes), mqtt::kMaxRemainingLength + 5);
  TINYMQ_CHECK(header && header->has_value());
  const std::size_t at = (*header)->size;
  auto packet = mqtt::DecodePacket(**header, mqtt::BinaryView(bytes.data() + at, bytes.size() - at),
                                   c.version);
  TINYMQ_CHECK(packet && std::holds_alternative<mqtt::Connect>(*packet));
  AcceptConnect(c, std::get<mqtt::Connect>(*packet), now, mqtt::BinaryView(step.data));
}

std::string Broker::GenerateClientId() {
  for (;;) {
    const std::uint64_t x = SplitMix64(limits_.client_id_seed + generated_ids_++);
    char buf[32];
    std::snprintf(buf, sizeof buf, "tinymq-%016llx", static_cast<unsigned long long>(x));
    // An identifier of this worker's, so that the client finds its session here next time.
    if (HomeOf(buf) == cluster_.index && !sessions_.contains(buf)) {
      return buf;
    }
  }
}

void Broker::HandleConnect(Connection& c, const mqtt::Connect& connect, Instant now) {
  if (c.state != Connection::State::kAwaitConnect) {
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
    if (c.state == Connection::State::kAuthenticating) {
      ++counters_.protocol_errors;
      Send(c, mqtt::Connack{false, ReasonCode::kProtocolError, {}});
      Close(c, "protocol error: second CONNECT", /*publish_will=*/false, now);
      return;
    }
    Reject(c, ReasonCode::kProtocolError, "protocol error: second CONNECT", now);
    return;
  }
  if (cluster_.count > 1 && !connect.client_id.empty()) {
    const std::uint16_t home = HomeOf(connect.client_id);
    if (home != cluster_.index) {
      // The session of this client id lives on another worker, which takes the connection with
      // the bytes read so far and handles this CONNECT as if it had arrived there.
      c.state = Connection::State::kHandedOff;
      c.handoff_to = home;
      c.decoder.Rewind();  // the CONNECT was the first packet: nothing was dropped from the buffer
      MarkDirty(c);
      return;
    }
  }
  c.version = connect.version;
  const bool v5 = connect.version == ProtocolVersion::kV5;
  auto refuse = [&](ReasonCode reason, std::string_view why) {
    RefuseConnect(c, connect, reason, why, now);
  };

  if (connect.client_id.empty() &&
      (connect.version == ProtocolVersion::kV31 || (!v5 && !connect.clean_start))) {
    // 3.1 needs an identifier; 3.1.1 gives one only to a clean session ([MQTT-3.1.3-6],
    // [MQTT-3.1.3-8]); 5.0 assigns one in every case (§3.1.3.1).
    refuse(ReasonCode::kClientIdentifierNotValid, "empty client identifier");
    return;
  }
  if (connect.client_id.size() > limits_.max_client_id_length) {
    refuse(ReasonCode::kClientIdentifierNotValid, "client identifier too long");
    return;
  }
  if (connect.will &&
      static_cast<unsigned>(connect.will->qos) > static_cast<unsigned>(limits_.maximum_qos)) {
    refuse(ReasonCode::kQosNotSupported, "will QoS above the maximum QoS");  // [MQTT-3.2.2-12]
    return;
  }
  if (connect.will && connect.will->retain && !limits_.retain_available) {
    refuse(ReasonCode::kRetainNotSupported, "retained wills are not available");  // [MQTT-3.2.2-13]
    return;
  }
  if (connect.will && !WithinTopicLimits(connect.will->topic, connect.will->topic)) {
    // (3.1.x has no code for it; 5 "not authorized" is the closest a client shows.)
    refuse(v5 ? ReasonCode::kTopicNameInvalid : ReasonCode::kNotAuthorized,
           "will topic over the topic limits");
    return;
  }
  ReasonCode refusal = ReasonCode::kNotAuthorized;
  std::string why;
  const std::optional<bool> allowed = CheckCredentials(c, connect, refusal, why);
  if (!allowed) {
    // A password to check, off this thread: the CONNECT waits (and so does the input after it).
    c.state = Connection::State::kVerifying;
    MarkDirty(c);  // the net layer stops reading it
    TINYMQ_CHECK(
        mqtt::Encode(mqtt::Packet(connect), c.version, c.Extra().held_connect).has_value());
    return;
  }
  if (!*allowed) {
    RefuseLater(c, refusal, std::move(why), now);
    return;
  }
  ContinueConnect(c, connect, now);
}

std::optional<bool> Broker::CheckCredentials(Connection& c, const mqtt::Connect& connect,
                                             ReasonCode& refusal, std::string& why) {
  if (access_ == nullptr) {
    if (connect.user_name) {
      c.Extra().username = std::string(*connect.user_name);
    }
    return true;  // no access control at all (tests, tools)
  }
  // 3.1.1 has one code for both (0x05 Not authorized, what clients show as "not authorised");
  // 5.0 tells a bad password (0x86) from a client that may not connect (0x87).
  const bool v5 = connect.version == ProtocolVersion::kV5;
  const ReasonCode bad_password =
      v5 ? ReasonCode::kBadUserNameOrPassword : ReasonCode::kNotAuthorized;
  if (c.extras != nullptr && c.extras->cert_user) {
    return true;  // the certificate says who it is; User Name and Password are not looked at
  }
  if (connect.user_name) {
    c.Extra().username = std::string(*connect.user_name);
  }
  if (!connect.user_name || access_->passwords == nullptr) {
    // Anonymous: no username, or one nobody can check (no password file), which the ACL still
    // sees and the log shows.
    if (access_->allow_anonymous) {
      return true;
    }
    refusal = ReasonCode::kNotAuthorized;
    why = connect.user_name ? "no password file to check user '" + std::string(*connect.user_name) +
                                  "' against, and anonymous clients are not allowed"
                            : "anonymous clients are not allowed";
    return false;
  }
  if (!access_->passwords->Contains(*connect.user_name) || !connect.password) {
    refusal = bad_password;
    why = connect.password ? "unknown user '" + std::string(*connect.user_name) + "'"
                           : "no password for user '" + std::string(*connect.user_name) + "'";
    return false;
  }
  credential_checks_.push_back(
      CredentialCheck{c.id, std::string(*connect.user_name),
                      std::string(reinterpret_cast<const char*>(connect.password->data()),
                                  connect.password->size()),
                      access_->passwords});
  return std::nullopt;
}

void Broker::RefuseLater(Connection& c, ReasonCode reason, std::string why, Instant now) {
  Connection::Extras& extras = c.Extra();
  extras.refusal = reason;
  extras.refusal_why = std::move(why);
  extras.held_connect.clear();
  extras.held_connect.shrink_to_fit();
  c.state = Connection::State::kRefusing;
  c.deadline = now + (access_ != nullptr ? access_->failure_delay : Duration::zero());
  ArmTimer(c);
  MarkDirty(c);  // the net layer stops reading it
}

void Broker::TakeCredentialChecks(std::vector<CredentialCheck>& out) {
  MoveAppend(credential_checks_, out);
}

void Broker::OnCredentialResult(ConnectionId id, bool ok, Instant now) {
  last_now_ = now;
  Connection* c = Find(id);
  if (c == nullptr || c->state != Connection::State::kVerifying) {
    return;  // gone (or timed out) meanwhile
  }
  const bool v5 = c->version == ProtocolVersion::kV5;
  if (!ok) {
    RefuseLater(*c, v5 ? ReasonCode::kBadUserNameOrPassword : ReasonCode::kNotAuthorized,
                "wrong password for user '" + c->extras->username + "'", now);
    return;
  }
  // The CONNECT decoded once, so it decodes again.
  const std::vector<std::uint8_t> bytes = std::move(c->extras->held_connect);
  c->extras->held_connect.clear();
  auto header = mqtt::ParseFixedHeader(mqtt::BinaryView(bytes), mqtt::kMaxRemainingLength + 5);
  TINYMQ_CHECK(header && header->has_value());
  const std::size_t at = (*header)->size;
  auto packet = mqtt::DecodePacket(**header, mqtt::BinaryView(bytes.data() + at, bytes.size() - at),
                                   c->version);
  TINYMQ_CHECK(packet && std::holds_alternative<mqtt::Connect>(*packet));
  c->state = Connection::State::kAwaitConnect;
  MarkDirty(*c);  // input again (and a CONNACK to write)
  ContinueConnect(*c, std::get<mqtt::Connect>(*packet), now);
  DrainInput(*c, now);  // what the client sent after its CONNECT
}

void Broker::RefuseConnect(Connection& c, const mqtt::Connect& connect, ReasonCode reason,
                           std::string_view why, Instant now) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  // [MQTT-3.2.2-19]: the Reason String only if the CONNACK stays within the client's maximum.
  SendFitting(
      c, mqtt::Connack{false, reason, v5 ? ReasonString(why).view() : mqtt::Properties{}},
      mqtt::Connack{false, reason, {}},
      v5 ? connect.properties.Number(mqtt::PropertyId::kMaximumPacketSize).value_or(UINT32_MAX)
         : UINT32_MAX);
  Close(c, why, /*publish_will=*/false, now);
}

void Broker::ContinueConnect(Connection& c, const mqtt::Connect& connect, Instant now) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  auto refuse = [&](ReasonCode reason, std::string_view why) {
    RefuseConnect(c, connect, reason, why, now);
  };
  const std::optional<std::string_view> method =
      v5 ? connect.properties.Text(mqtt::PropertyId::kAuthenticationMethod) : std::nullopt;
  if (!method) {
    AcceptConnect(c, connect, now, {});
    return;
  }
  // 5.0 §4.12: enhanced authentication, through the Authenticator.
  std::unique_ptr<AuthExchange> exchange =
      authenticator_ != nullptr ? authenticator_->Begin(*method, connect.client_id) : nullptr;
  if (exchange == nullptr) {
    refuse(ReasonCode::kBadAuthenticationMethod,
           "authentication method '" + std::string(*method) + "' not supported");
    return;
  }
  AuthStep step = exchange->Next(connect.properties.Binary(mqtt::PropertyId::kAuthenticationData)
                                     .value_or(mqtt::BinaryView{}));
  auto state = std::make_unique<Connection::AuthState>();
  Connection::AuthState& auth = *state;
  auth.method = *method;
  c.Extra().auth = std::move(state);
  switch (step.outcome) {
    case AuthStep::Outcome::kFail: refuse(step.reason, "authentication failed"); return;
    case AuthStep::Outcome::kSuccess:
      AcceptConnect(c, connect, now, mqtt::BinaryView(step.data));
      return;
    case AuthStep::Outcome::kContinue: break;
  }
  auth.exchange = std::move(exchange);
  c.state = Connection::State::kAuthenticating;
  TINYMQ_CHECK(mqtt::Encode(mqtt::Packet(connect), c.version, auth.pending_connect).has_value());
  mqtt::PropertiesBuilder props;
  props.Add(mqtt::PropertyId::kAuthenticationMethod, auth.method);
  if (!step.data.empty()) {
    props.AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView(step.data));
  }
  Send(c, mqtt::Auth{ReasonCode::kContinueAuthentication, props.view()});
}

void Broker::AcceptConnect(Connection& c, const mqtt::Connect& connect, Instant now,
                           mqtt::BinaryView auth_data) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  std::string client_id(connect.client_id);
  const bool assigned = client_id.empty();
  if (assigned) {
    client_id = GenerateClientId();
  }
  if (access_ != nullptr && access_->acl != nullptr) {
    const std::string& user = c.Extra().username;
    c.extras->acl = access_->acl->For(
        client_id, user.empty() ? std::nullopt : std::optional<std::string_view>(user));
    if (connect.will && !c.extras->acl->MayPublish(connect.will->topic)) {
      // A will is a PUBLISH the client asks for in advance: the ACL applies now, when the client
      // can still be told (5.0 0x87, 3.1.x 0x05).
      ++counters_.refused_auth;
      if (log_) {
        log_(LogLevel::kInfo, "connection from " + c.peer + " refused: client " + client_id +
                                  " may not publish its will to " +
                                  std::string(connect.will->topic));
      }
      Send(c, mqtt::Connack{false, ReasonCode::kNotAuthorized, {}});
      Close(c, "will topic not authorized", /*publish_will=*/false, now);
      return;
    }
  }
  c.decoder.set_max_packet_size(limits_.max_packet_size);  // past the CONNECT cap
  c.keep_alive = connect.keep_alive;
  bool keep_alive_changed = false;
  if (v5 && limits_.max_keep_alive_s != 0 &&
      (c.keep_alive == 0 || c.keep_alive > limits_.max_keep_alive_s)) {
    c.keep_alive = limits_.max_keep_alive_s;  // 5.0 §3.2.2.3.14: Server Keep Alive
    keep_alive_changed = true;
  }
  if (v5) {
    // 5.0 §3.1.2.11: what the client can take.
    c.client_receive_maximum = static_cast<std::uint16_t>(
        connect.properties.Number(mqtt::PropertyId::kReceiveMaximum).value_or(65535));
    c.client_max_packet_size =
        connect.properties.Number(mqtt::PropertyId::kMaximumPacketSize).value_or(UINT32_MAX);
    c.problem_information =
        connect.properties.Number(mqtt::PropertyId::kRequestProblemInformation).value_or(1) != 0;
    const auto alias_max = static_cast<std::uint16_t>(std::min<std::uint32_t>(
        connect.properties.Number(mqtt::PropertyId::kTopicAliasMaximum).value_or(0),
        limits_.outbound_topic_alias_maximum));
    if (alias_max != 0) {
      auto aliases = std::make_unique<OutboundAliases>();
      aliases->capacity = alias_max;
      c.Extra().aliases_out = std::move(aliases);
    }
  }
  if (connect.will) {
    const mqtt::BinaryView will_props = connect.will->properties.bytes();
    c.Extra().will =
        std::make_unique<Will>(Will{std::string(connect.will->topic),
                                    {connect.will->payload.begin(), connect.will->payload.end()},
                                    connect.will->qos,
                                    connect.will->retain,
                                    {will_props.begin(), will_props.end()}});
  }

  // Session takeover: [MQTT-3.1.4-2] the server disconnects the existing client.
  auto existing = sessions_.find(client_id);
  if (existing != sessions_.end() && existing->second->connection != nullptr) {
    Connection& old = *existing->second->connection;
    SendDisconnect(old, ReasonCode::kSessionTakenOver, "session taken over");
    Close(old, "session taken over by a new connection", /*publish_will=*/true, now);
    existing = sessions_.find(client_id);  // Close may have ended a clean session
  }
  // 3.1.1 Clean Session / 5.0 Clean Start discard the old state ([MQTT-3.1.2-6]); 5.0 keeps the
  // session after the connection only when the Session Expiry Interval is above 0.
  const std::uint32_t asked_expiry_s =
      v5 ? connect.properties.Number(mqtt::PropertyId::kSessionExpiryInterval).value_or(0)
         : (connect.clean_start ? 0 : kNeverExpires);
  const std::uint32_t expiry_s = limits_.max_session_expiry_s != 0
                                     ? std::min(asked_expiry_s, limits_.max_session_expiry_s)
                                     : asked_expiry_s;
  const bool ends_with_connection = expiry_s == 0;
  bool session_present = false;
  Session* session = nullptr;
  if (existing != sessions_.end() && connect.clean_start) {
    DestroySession(*existing->second);  // a delayed will goes out now: its session ended
  } else if (existing != sessions_.end()) {
    session = existing->second;
    session_present = true;         // [MQTT-3.2.2-2]
    session->delayed_will.reset();  // [MQTT-3.1.3-9]: back before the delay passed
  }
  if (session == nullptr) {
    session = &CreateSession(client_id, ends_with_connection);
  }
  session->ends_with_connection = ends_with_connection;
  session->expiry_s = expiry_s;
  ++session->generation;  // pending session timers no longer apply
  session->connection = &c;
  c.session = session;
  c.state = Connection::State::kConnected;
  if (storing() && (!ends_with_connection || session->stored)) {
    // (A stored session resumed as one that ends with its connection stays stored, expiry 0,
    // until it ends: what it has in the store only is not lost meanwhile.)
    if (!session->stored) {
      session->stored = std::make_unique<Session::Stored>();
    }
    session->stored->level =
        v5 ? 5 : (connect.version == ProtocolVersion::kV31 ? std::uint8_t{3} : std::uint8_t{4});
    StoreSession(*session, kNever);
    StoreWill(*session, c.extras != nullptr ? c.extras->will.get() : nullptr, kNever);
  }
  if (session_present) {
    AnnounceOnline(*session, /*online=*/true);
  }
  c.deadline = c.keep_alive != 0 ? now + KeepAliveWindow(c.keep_alive) : kNever;
  ArmTimer(c);

  mqtt::PropertiesBuilder props;
  if (v5) {
    // 5.0 §3.2.2.3: what this broker allows. An absent property means its default: Receive
    // Maximum 65535, Maximum QoS 2, Retain Available, no Maximum Packet Size, Topic Alias Maximum
    // 0, wildcard, identifier and shared subscriptions available.
    if (assigned) {
      props.Add(mqtt::PropertyId::kAssignedClientIdentifier, client_id);
    }
    if (expiry_s != asked_expiry_s) {
      props.Add(mqtt::PropertyId::kSessionExpiryInterval, expiry_s);
    }
    if (limits_.receive_maximum != 65535) {
      props.Add(mqtt::PropertyId::kReceiveMaximum, limits_.receive_maximum);
    }
    if (limits_.maximum_qos != QoS::k2) {
      props.Add(mqtt::PropertyId::kMaximumQos, static_cast<std::uint32_t>(limits_.maximum_qos));
    }
    if (!limits_.retain_available) {
      props.Add(mqtt::PropertyId::kRetainAvailable, 0U);
    }
    if (limits_.max_packet_size < mqtt::kMaxRemainingLength + 5) {
      props.Add(mqtt::PropertyId::kMaximumPacketSize, limits_.max_packet_size);
    }
    if (limits_.topic_alias_maximum != 0) {
      props.Add(mqtt::PropertyId::kTopicAliasMaximum, limits_.topic_alias_maximum);
    }
    if (!limits_.wildcard_subscriptions) {
      props.Add(mqtt::PropertyId::kWildcardSubscriptionAvailable, 0U);
    }
    if (!limits_.subscription_identifiers) {
      props.Add(mqtt::PropertyId::kSubscriptionIdentifierAvailable, 0U);
    }
    if (!limits_.shared_subscriptions) {
      props.Add(mqtt::PropertyId::kSharedSubscriptionAvailable, 0U);
    }
    if (keep_alive_changed) {
      props.Add(mqtt::PropertyId::kServerKeepAlive, c.keep_alive);
    }
    if (c.auth() != nullptr) {
      props.Add(mqtt::PropertyId::kAuthenticationMethod, c.auth()->method);
      if (!auth_data.empty()) {
        props.AddBinary(mqtt::PropertyId::kAuthenticationData, auth_data);
      }
    }
  }
  Send(c, mqtt::Connack{session_present, ReasonCode::kSuccess, props.view()});
  if (log_) {
    log_(LogLevel::kInfo,
         "client " + client_id + " connected from " + c.peer + " (" +
             std::string(VersionName(c.version)) +
             (ends_with_connection ? ", clean session" : ", persistent session") +
             (session_present ? ", session resumed" : "") +
             (c.extras != nullptr && !c.extras->username.empty() ? ", user " + c.extras->username
                                                                 : "") +
             ", keep-alive " + std::to_string(c.keep_alive) + " s)");
  }
  // [MQTT-4.4.0-1]: unacknowledged PUBLISH and PUBREL packets go again, then the queue.
  Resend(*session, c);
}

Broker::Session& Broker::CreateSession(const std::string& client_id, bool ends_with_connection) {
  std::uint32_t slot = 0;
  if (free_session_slots_.empty()) {
    TINYMQ_CHECK(session_slots_.size() <= kSessionSlotMask);  // 16.7 million sessions a worker
    slot = static_cast<std::uint32_t>(session_slots_.size());
    session_slots_.grow();
  } else {
    slot = free_session_slots_.back();
    free_session_slots_.pop_back();
  }
  Session& ref = session_slots_[slot];
  // The worker's index, a sequence number (so that an id outlives its slot's reuse), the slot.
  const SubscriberId seq = next_session_seq_++ % kSessionSeqModulus + 1;
  ref.id = (SubscriberId{cluster_.index} << kWorkerShift) | (seq << kSessionSeqShift) | slot;
  ref.client_id = client_id;
  ref.ends_with_connection = ends_with_connection;
  sessions_.emplace(std::string_view(ref.client_id), &ref);
  return ref;
}

void Broker::DestroySession(Session& s) {
  TINYMQ_CHECK(s.connection == nullptr);
  UnstoreSession(s);  // first: what follows must not write for it
  RehomeShared(s, /*session_ends=*/true);
  if (s.subscriptions != nullptr) {
    for (const auto& [key, subscribed] : *s.subscriptions) {
      RemoveSubscription(s, key, subscribed.shared);
    }
  }
  std::unique_ptr<Will> will = std::move(s.delayed_will);
  sessions_.erase(s.client_id);
  const auto slot = static_cast<std::uint32_t>(s.id & kSessionSlotMask);
  std::destroy_at(&s);  // frees what it holds; the slot is a fresh, unused (id 0) Session
  std::construct_at(&s);
  free_session_slots_.push_back(slot);
  if (will) {
    PublishWill(std::move(*will), last_now_);  // 5.0 §3.1.3.2.2: the session ended first
  }
}

void Broker::Detach(Session& s, Instant now) {
  s.connection = nullptr;
  if (s.ends_with_connection || s.expiry_s == 0) {
    DestroySession(s);
    return;
  }
  AnnounceOnline(s, /*online=*/false);
  RehomeShared(s, /*session_ends=*/false);
  StoreSession(s, now);
  ++s.generation;
  if (s.expiry_s != kNeverExpires) {
    PushSessionTimer(s, now + std::chrono::seconds(s.expiry_s), /*will=*/false);
  }
}

void Broker::RehomeShared(Session& s, bool session_ends) {
  std::vector<Delivery> moving;
  s.queue.remove_if([](const Delivery& d) { return d.group != 0; },
                    [&](Delivery&& d) {
                      s.queued_bytes -= d.message->payload.size();
                      UnstoreDelivery(s, d);
                      moving.push_back(std::move(d));
                    });
  // Unacknowledged QoS 1 goes too (at least once allows the copy this member may have got); QoS 2
  // stays, since exactly once forbids a second receiver.
  for (auto it = s.inflight.begin(); it != s.inflight.end();) {
    if (it->delivery.group != 0 && it->delivery.qos == QoS::k1) {
      UnstoreDelivery(s, it->delivery);
      Delivery d = std::move(it->delivery);
      it = s.EraseInFlight(it);
      moving.push_back(std::move(d));
    } else {
      ++it;
    }
  }
  for (Delivery& d : moving) {
    const std::uint16_t home = WorkerOf(d.group);
    if (home == cluster_.index) {
      Reroute(d.group, s.id, session_ends, std::move(d));
    } else {
      Envelope e;
      e.kind = Envelope::Kind::kSharedReroute;
      e.flag = session_ends;
      e.message = std::move(d.message);
      e.member.subscriber = s.id;
      e.group = d.group;
      Post(home, std::move(e));
    }
  }
}

void Broker::Reroute(SubscriberId group_id, SubscriberId from, bool session_ended, Delivery d) {
  auto group = shared_by_id_.find(group_id);
  const Subscription* member =
      group == shared_by_id_.end()
          ? nullptr
          : PickMember(*group->second, 0, /*exclude=*/from, /*online_only=*/!session_ended);
  if (member != nullptr) {
    GiveToMember(*group->second, *member, std::move(d));
    return;
  }
  if (session_ended) {
    return;  // nobody left to take it
  }
  // Nobody else can take it: it waits in the session of the member that had it.
  Subscription back;
  back.subscriber = from;
  back.options.max_qos = d.qos;
  if (!d.ids.empty()) {
    back.identifier = d.ids.front();
  }
  if (group != shared_by_id_.end()) {
    for (const Subscription& m : group->second->members) {
      if (m.subscriber == from) {
        back = m;
      }
    }
    GiveToMember(*group->second, back, std::move(d), /*keep=*/true);
  }
}

void Broker::GiveToMember(const SharedGroup& group, const Subscription& member, Delivery d,
                          bool keep) {
  d.qos = MinQos(d.message->qos, member.options.max_qos);
  d.retain = member.options.retain_as_published && d.message->retain;
  d.group = group.id;
  d.ids.clear();
  if (member.identifier != 0) {
    d.ids.push_back(member.identifier);
  }
  const std::uint16_t worker = WorkerOf(member.subscriber);
  if (worker != cluster_.index) {
    Envelope e;
    e.kind = Envelope::Kind::kSharedDeliver;
    e.flag = keep;
    e.message = std::move(d.message);
    e.member = member;
    e.group = group.id;
    if (d.qos != QoS::k0 && storing() && durability_.acks_wait) {
      e.confirm = ++confirm_sent_[worker];
      ++confirm_posts_;
    }
    Post(worker, std::move(e));
    return;
  }
  if (Session* s = FindSession(member.subscriber)) {
    Deliver(*s, std::move(d));
  }
}

void Broker::HandlePublish(Connection& c, const mqtt::Publish& p, Instant now) {
  Session& s = *c.session;
  const bool v5 = c.version == ProtocolVersion::kV5;
  ++counters_.messages_received;
  ++counters_.received_by_qos[static_cast<std::size_t>(p.qos)];
  counters_.publish_bytes_received[static_cast<std::size_t>(p.qos)] += p.payload.size();
  std::string_view topic = p.topic;
  if (v5) {
    if (auto alias = p.properties.Number(mqtt::PropertyId::kTopicAlias)) {
      // 5.0 §3.3.2.3.4: 1 to the CONNACK's Topic Alias Maximum [MQTT-3.3.2-9].
      if (*alias == 0 || *alias > limits_.topic_alias_maximum) {
        Reject(c, ReasonCode::kTopicAliasInvalid, "topic alias out of range", now);
        return;
      }
      std::unique_ptr<std::string[]>& aliases_in = c.Extra().aliases_in;
      if (aliases_in == nullptr) {
        aliases_in = std::make_unique<std::string[]>(limits_.topic_alias_maximum);
      }
      std::string& known = aliases_in[*alias - 1];
      if (!topic.empty()) {
        known.assign(topic);  // [MQTT-3.3.2-12]: a name with an alias sets (or resets) it
      } else if (known.empty()) {
        Reject(c, ReasonCode::kProtocolError, "protocol error: topic alias not set", now);
        return;
      } else {
        topic = known;
      }
    }
    if (p.properties.Find(mqtt::PropertyId::kSubscriptionIdentifier)) {
      // [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
      Reject(c, ReasonCode::kProtocolError,
             "protocol error: subscription identifier in a client PUBLISH", now);
      return;
    }
  }
  if (static_cast<unsigned>(p.qos) > static_cast<unsigned>(limits_.maximum_qos)) {
    Reject(c, ReasonCode::kQosNotSupported, "QoS above the maximum QoS", now);  // [MQTT-3.2.2-11]
    return;
  }
  if (!WithinTopicLimits(topic, topic)) {
    // A well-formed name this server does not take: 5.0 says so in the acknowledgement (0x90 is
    // "not accepted by the Server"); 3.1.x can only acknowledge it or close [MQTT-3.3.5-2].
    if (!v5) {
      Close(c, "topic over the topic limits", /*publish_will=*/true, now);
    } else if (p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, ReasonCode::kTopicNameInvalid, {}});
    } else if (p.qos == QoS::k2) {
      Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kTopicNameInvalid, {}});
    }
    return;
  }
  if (const auth::ClientAcl* acl = c.acl();
      IsSystemTopic(topic) || (acl != nullptr && !acl->MayPublish(topic))) {
    // $SYS/ belongs to the broker (PublishSystem): no client may publish there, whatever the ACL
    // says, so that what subscribers read there is the broker's own figures.
    // 5.0: 0x87 in the acknowledgement. 3.1.x has no way to say it [MQTT-3.3.5-2]: the message
    // is acknowledged as usual and dropped (so a client does not resend it forever).
    ++counters_.denied_publish;
    const ReasonCode code = v5 ? ReasonCode::kNotAuthorized : ReasonCode::kSuccess;
    if (p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, code, {}});
    } else if (p.qos == QoS::k2) {
      Send(c, mqtt::Pubrec{p.packet_id, code, {}});  // a 3.1.x PUBREL then gets its PUBCOMP
    }
    if (log_) {
      log_(LogLevel::kDebug, "client " + s.client_id + " may not publish to " + std::string(topic));
    }
    return;
  }
  if (p.retain && !limits_.retain_available) {
    Reject(c, ReasonCode::kRetainNotSupported, "retain not available", now);  // [MQTT-3.2.2-14]
    return;
  }
  if (p.qos != QoS::k0 && durability_.failed != nullptr &&
      durability_.failed->load(std::memory_order_relaxed)) {
    // The store cannot write (a full disk): nothing more is promised until it can. 5.0 says so;
    // a 3.1.x client gets no acknowledgement and sends the message again later.
    ++counters_.refused_store_failed;
    if (v5 && p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, ReasonCode::kQuotaExceeded, {}});
    } else if (v5) {
      Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kQuotaExceeded, {}});
    }
    return;
  }
  if (p.qos == QoS::k2 && s.AwaitsPubrel(p.packet_id)) {
    // Resent before our PUBREC arrived: acknowledge again, never route twice ([MQTT-4.3.3-2]).
    Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
    return;
  }
  if (v5 && p.qos == QoS::k2 && s.incoming_qos2 != nullptr &&
      s.incoming_qos2->size() >= limits_.receive_maximum) {
    // [MQTT-3.3.4-8]: more unfinished QoS 2 PUBLISHes than the CONNACK's Receive Maximum.
    Reject(c, ReasonCode::kReceiveMaximumExceeded, "receive maximum exceeded", now);
    return;
  }
  MessageRef m = messages_.Make(topic, p.payload, p.qos, p.retain, p.properties, now);
  const std::uint64_t promised = promises();
  bool retained = false;
  if (m->retain) {
    retained = Retain(m);
    if (!retained && v5 && p.qos != QoS::k0) {
      // The retained limits: 5.0 refuses the message (0x97), which is then not delivered either.
      if (p.qos == QoS::k1) {
        Send(c, mqtt::Puback{p.packet_id, ReasonCode::kQuotaExceeded, {}});
      } else {
        Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kQuotaExceeded, {}});
      }
      return;
    }
    if (!retained) {
      // Delivered as any message, not kept: 3.1.x and QoS 0 have no way to be told. A retained
      // message it was to replace goes: a subscriber must not get a value older than this one.
      Retain(messages_.Make(topic, {}, p.qos, /*retain=*/true, {}, now));
      m = messages_.Make(topic, p.payload, p.qos, /*retain=*/false, p.properties, now);
    }
  }
  const std::size_t outbox_before = outbox_.size();
  const bool matched = Publish(m, s.id, s.client_id, /*retained=*/retained);
  // 5.0 §3.4.2.1: 0x10 tells the publisher that nobody subscribes to the topic.
  const ReasonCode ack = matched || !v5 ? ReasonCode::kSuccess : ReasonCode::kNoMatchingSubscribers;
  if (p.qos == QoS::k2) {
    s.AwaitPubrel(p.packet_id);
    if (s.stored) {
      // Other workers it went to write a marker with their part of the routing; with the message
      // in the record, a restore can route it again where a marker is missing.
      std::string key = store::IncomingKey(s.client_id, p.packet_id);
      store::IncomingRecord record;
      for (std::size_t i = outbox_before; i < outbox_.size(); ++i) {
        Envelope& e = outbox_[i].envelope;
        if (e.kind == Envelope::Kind::kPublish && e.message == m) {
          e.origin = key;
          record.routed_to.push_back(outbox_[i].to);
        }
      }
      std::string value;
      if (!record.routed_to.empty()) {
        record.message = ToRecord(*m);
        record.workers = cluster_.count;
        value = store::Encode(record);
      }
      writes_.Put(store::Kind::kIncoming, std::move(key), std::move(value), /*fresh=*/true);
    }
  }
  if (p.qos != QoS::k0 && promises() != promised) {
    Hold(c);  // acknowledged once what routing it wrote is durable, here and elsewhere
  }
  switch (p.qos) {
    case QoS::k0: break;
    case QoS::k1: Send(c, mqtt::Puback{p.packet_id, ack, {}}); break;
    case QoS::k2: Send(c, mqtt::Pubrec{p.packet_id, ack, {}}); break;
  }
}

bool Broker::WithinTopicLimits(std::string_view whole, std::string_view matched) {
  if (whole.size() > limits_.max_topic_length ||
      static_cast<std::size_t>(std::count(matched.begin(), matched.end(), '/')) >=
          limits_.max_topic_levels) {
    ++counters_.refused_topic_limits;
    return false;
  }
  return true;
}

void Broker::ArmResume(Connection& c, Instant when) {
  resume_timers_.push_back({when, c.id});
  std::push_heap(resume_timers_.begin(), resume_timers_.end(),
                 [](const TimerEntry& a, const TimerEntry& b) { return TimerLater(a, b); });
}

void Broker::TakePublishToken(Connection& c, Instant now) {
  const double rate = limits_.max_publish_rate;
  const double burst = limits_.publish_rate_burst != 0 ? limits_.publish_rate_burst : rate;
  std::unique_ptr<Connection::Extras::Rate>& state = c.Extra().rate;
  if (state == nullptr) {
    state = std::make_unique<Connection::Extras::Rate>();
    state->tokens = burst;
    state->refilled = now;
  }
  Connection::Extras::Rate& r = *state;
  const double elapsed = std::chrono::duration<double>(now - r.refilled).count();
  r.tokens = std::min(burst, r.tokens + elapsed * rate);
  r.refilled = now;
  r.tokens -= 1;
  if (r.tokens >= 1) {
    r.over_since = kNever;  // room to spare: not over the rate
    return;
  }
  if (r.over_since == kNever) {
    r.over_since = now;
  } else if (limits_.publish_rate_grace != Duration::zero() &&
             now - r.over_since >= limits_.publish_rate_grace) {
    ++counters_.rate_disconnects;
    SendDisconnect(c, ReasonCode::kMessageRateTooHigh, "message rate too high");
    Close(c, "message rate too high for too long", /*publish_will=*/true, now);
    return;
  }
  // Input waits until a whole token is back.
  ++counters_.throttled;
  r.paused = true;
  const double wait_s = (1 - r.tokens) / rate;
  ArmResume(c, now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(wait_s)) +
                   Duration(1));
  MarkDirty(c);
}

bool Broker::Retain(const MessageRef& message) {
  // [MQTT-3.3.1-5]; an empty payload deletes ([MQTT-3.3.1-10]), which the limits never refuse.
  if (!retained_->TrySet(message, limits_.max_retained_messages, limits_.max_retained_bytes)) {
    ++counters_.refused_retained_limit;
    return false;
  }
  if (!IsSystemTopic(message->topic)) {  // $SYS/ values are the running broker's only
    StoreRetained(*message);
  }
  return true;
}

bool Broker::Publish(const MessageRef& message, SubscriberId publisher,
                     std::string_view publisher_id, bool retained) {
  if (message->retain && !retained) {
    Retain(message);  // a will over the limits is delivered, not kept
  }
  // Only the publisher_hash policy looks at it (and 0 means none, so a hash is never 0).
  const std::uint64_t publisher_hash =
      limits_.shared_policy != SharedPolicy::kPublisherHash || publisher_id.empty()
          ? 0
          : std::hash<std::string_view>{}(publisher_id) | 1;
  bool matched = Route(message, publisher, publisher_hash);
  for (std::uint16_t w = 0; w < cluster_.count; ++w) {
    if (w == cluster_.index) {
      continue;
    }
    if (cluster_.summary != nullptr && !cluster_.summary->MayMatch(w, message->topic)) {
      continue;  // nothing there can match
    }
    matched = true;  // may match there: 0x00, not 0x10
    Envelope e;
    e.kind = Envelope::Kind::kPublish;
    e.message = message;
    e.publisher_hash = publisher_hash;
    if (message->qos != QoS::k0 && storing() && durability_.acks_wait) {
      e.confirm = ++confirm_sent_[w];  // its acknowledgement waits for that worker's writes too
      ++confirm_posts_;
    }
    Post(w, std::move(e));
  }
  return matched;
}

void Broker::Post(std::uint16_t to, Envelope envelope) {
  envelope.from = cluster_.index;
  outbox_.push_back(Letter{to, std::move(envelope)});
}

void Broker::TakeOutbox(std::vector<Letter>& out) { MoveAppend(outbox_, out); }

void Broker::IndexAdd(std::string_view filter, const Subscription& subscription) {
  if (index_.Subscribe(filter, subscription) && cluster_.summary != nullptr) {
    cluster_.summary->Add(cluster_.index, filter);
  }
}

void Broker::IndexRemove(std::string_view filter, SubscriberId subscriber) {
  if (index_.Unsubscribe(filter, subscriber) && cluster_.summary != nullptr) {
    cluster_.summary->Remove(cluster_.index, filter);
  }
}

bool Broker::Route(const MessageRef& message, SubscriberId publisher,
                   std::uint64_t publisher_hash) {
  matches_.clear();
  index_.Match(message->topic, matches_);
  if (matches_.empty()) {
    return false;
  }
  // A subscriber with overlapping filters gets the message once, at the highest QoS granted
  // among them, with the identifiers of all of them (3.1.1 §3.3.5, 5.0 §3.3.4).
  std::sort(matches_.begin(), matches_.end(), [](const Subscription* a, const Subscription* b) {
    return a->subscriber < b->subscriber;
  });
  for (std::size_t i = 0; i < matches_.size();) {
    const SubscriberId id = matches_[i]->subscriber;
    if ((id & kSharedBit) != 0) {
      auto group = shared_by_id_.find(id);
      ++i;
      if (group != shared_by_id_.end() && restore_homes_ == nullptr) {
        RouteShared(*group->second, message, publisher_hash);
      }
      continue;
    }
    Delivery d;
    d.message = message;
    bool any = false;
    QoS granted = QoS::k0;
    for (; i < matches_.size() && matches_[i]->subscriber == id; ++i) {
      const Subscription& sub = *matches_[i];
      if (sub.options.no_local && id == publisher) {
        continue;  // 5.0 [MQTT-3.8.3-3]: not back to its own publisher
      }
      any = true;
      granted = MaxQos(granted, sub.options.max_qos);
      // [MQTT-3.3.1-12] / [MQTT-3.3.1-13]: RETAIN as published, or 0 ([MQTT-3.3.1-9]).
      d.retain = d.retain || (sub.options.retain_as_published && message->retain);
      if (sub.identifier != 0) {
        d.ids.push_back(sub.identifier);  // [MQTT-3.3.4-3]
      }
    }
    Session* s = any ? FindSession(id) : nullptr;
    if (s != nullptr && restore_homes_ != nullptr &&
        std::find(restore_homes_->begin(), restore_homes_->end(),
                  HomeAmong(s->client_id, restore_workers_)) == restore_homes_->end()) {
      s = nullptr;  // (restore) had it already
    }
    if (s != nullptr) {
      d.qos = MinQos(message->qos, granted);
      Deliver(*s, std::move(d));
    }
  }
  return true;
}

void Broker::RouteShared(SharedGroup& group, const MessageRef& message,
                         std::uint64_t publisher_hash) {
  // QoS 0 goes only to a member that is online; QoS 1/2 may wait in an offline member's session.
  const Subscription* member =
      PickMember(group, publisher_hash, /*exclude=*/0, /*online_only=*/message->qos == QoS::k0);
  if (member == nullptr) {
    ++counters_.dropped_offline_qos0;
    return;
  }
  Delivery d;
  d.message = message;
  GiveToMember(group, *member, std::move(d));
}

const Subscription* Broker::PickMember(SharedGroup& group, std::uint64_t publisher_hash,
                                       SubscriberId exclude, bool online_only) {
  const std::size_t n = group.members.size();
  if (n == 0) {
    return nullptr;
  }
  const bool hashed = limits_.shared_policy == SharedPolicy::kPublisherHash && publisher_hash != 0;
  const std::size_t start = hashed ? publisher_hash % n : group.next % n;
  // First choice: a member that can take the message now; then one that is online; then (QoS 1/2
  // only) any member, whose session keeps it until it comes back. By publisher: the publisher's
  // member while it is online, ready or not (a busy member keeps its publishers).
  for (int pass = hashed ? 1 : 0; pass < 3; ++pass) {
    if (pass == 2 && online_only) {
      break;
    }
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (start + k) % n;
      const Subscription& m = group.members[i];
      if (m.subscriber == exclude) {
        continue;
      }
      bool ready = false;
      bool online = false;
      if (WorkerOf(m.subscriber) != cluster_.index) {
        // A member on another worker: whether it is online is all this broker knows.
        online = std::find(group.offline.begin(), group.offline.end(), m.subscriber) ==
                 group.offline.end();
        ready = online;
      } else {
        const Session* found = FindSession(m.subscriber);
        if (found == nullptr) {
          continue;
        }
        const Session& s = *found;
        online = s.connection != nullptr && s.connection->state == Connection::State::kConnected;
        ready = Ready(s);
      }
      if ((pass == 0 && !ready) || (pass == 1 && !online)) {
        continue;
      }
      if (!hashed) {
        group.next = i + 1;
      }
      return &m;
    }
  }
  return nullptr;
}

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

void Broker::HandleSubscribe(Connection& c, const mqtt::Subscribe& sub) {
  Session& s = *c.session;
  const bool v5 = c.version == ProtocolVersion::kV5;
  const std::uint32_t identifier =
      v5 ? sub.properties.Number(mqtt::PropertyId::kSubscriptionIdentifier).value_or(0) : 0;
  if (identifier != 0 && !limits_.subscription_identifiers) {
    // The CONNACK said Subscription Identifier Available 0 (5.0 §3.2.2.3.12).
    Reject(c, ReasonCode::kSubscriptionIdentifiersNotSupported,
           "subscription identifiers not supported", last_now_);
    return;
  }
  std::vector<ReasonCode> codes;
  std::vector<Delivery> retained;
  std::string reason_text;
  const std::uint64_t promised = promises();
  auto fail = [&](ReasonCode v5_code, std::string_view filter, std::string_view why) {
    codes.push_back(v5 ? v5_code : ReasonCode::kUnspecifiedError);  // 3.1.1: 0x80
    if (reason_text.empty()) {
      reason_text = std::string(filter) + ": " + std::string(why);
    }
  };
  for (const mqtt::TopicSubscription& t : sub.subscriptions) {
    std::optional<mqtt::SharedSubscription> shared;
    std::string_view filter = t.filter;
    if (v5) {  // "$share/" means nothing special to a 3.1.x client
      auto parsed = mqtt::ParseSharedSubscription(t.filter);
      if (!parsed) {
        fail(ReasonCode::kTopicFilterInvalid, t.filter, "invalid shared subscription");
        continue;
      }
      shared = *parsed;
      if (shared) {
        filter = shared->filter;
      }
    }
    if (!mqtt::ValidateTopicFilter(filter)) {
      fail(ReasonCode::kTopicFilterInvalid, t.filter, "invalid topic filter");
      continue;
    }
    if (!WithinTopicLimits(t.filter, filter)) {
      fail(ReasonCode::kTopicFilterInvalid, t.filter, "topic filter over the topic limits");
      continue;
    }
    if (const auth::ClientAcl* acl = c.acl();
        acl != nullptr && acl->MaySubscribe(filter) == auth::SubscribeAccess::kDeny) {
      // (A filter only partly readable is granted: each message is checked as it goes out.)
      ++counters_.denied_subscribe;
      fail(ReasonCode::kNotAuthorized, t.filter, "not authorized");
      continue;
    }
    if (!limits_.wildcard_subscriptions && mqtt::HasWildcard(filter)) {
      fail(ReasonCode::kWildcardSubscriptionsNotSupported, t.filter,
           "wildcard subscriptions are not available");
      continue;
    }
    if (shared && !limits_.shared_subscriptions) {
      fail(ReasonCode::kSharedSubscriptionsNotSupported, t.filter,
           "shared subscriptions are not available");
      continue;
    }
    // 5.0 [MQTT-3.2.2-10]: never granted above the Maximum QoS.
    const QoS granted = MinQos(t.options.max_qos, limits_.maximum_qos);
    mqtt::SubscriptionOptions options = t.options;
    options.max_qos = granted;
    const std::string key(t.filter);
    if (s.subscriptions == nullptr) {
      s.subscriptions = std::make_unique<Session::Subscriptions>();
    }
    auto old = s.subscriptions->find(key);
    bool existed = old != s.subscriptions->end();
    if (!existed && s.subscriptions->size() >= limits_.max_subscriptions_per_client) {
      ++counters_.refused_subscription_limit;
      fail(ReasonCode::kQuotaExceeded, t.filter, "too many subscriptions");
      continue;
    }
    if (existed && old->second.shared != shared.has_value()) {
      // "$share/..." subscribed by this session as a 3.1.x client, now as a 5.0 one (or back).
      RemoveSubscription(s, key, old->second.shared);
      existed = false;
    }
    // [MQTT-3.8.4-3]: a subscription to a filter already subscribed replaces the old one.
    (*s.subscriptions)[key] = Session::Subscribed{granted, shared.has_value()};
    codes.push_back(static_cast<ReasonCode>(granted));
    StoreSubscription(s, key, Subscription{s.id, options, identifier}, shared.has_value());
    if (shared) {
      JoinGroupAtHome(key, Subscription{s.id, options, identifier});
      continue;  // 5.0 §4.8.2: retained messages are not sent on a shared subscription
    }
    IndexAdd(filter, Subscription{s.id, options, identifier});
    // 5.0 §3.8.3.1: Retain Handling 0 sends the retained messages, 1 only for a new subscription
    // [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
    if (options.retain_handling == 2 || (options.retain_handling == 1 && existed)) {
      continue;
    }
    retained_scratch_.clear();
    retained_->Match(filter, retained_scratch_);
    for (MessageRef& m : retained_scratch_) {
      if (m->expired(last_now_)) {
        retained_->Erase(m);  // expired: forget it
        continue;
      }
      Delivery d;
      d.qos = MinQos(m->qos, granted);
      d.retain = true;  // [MQTT-3.3.1-8]
      if (identifier != 0) {
        d.ids.push_back(identifier);
      }
      d.message = std::move(m);
      retained.push_back(std::move(d));
    }
  }
  if (promises() != promised) {
    Hold(c);  // a SUBACK promises that the subscription survives a restart
  }
  const mqtt::Suback plain{sub.packet_id, {}, mqtt::ReasonCodeList(codes)};
  if (v5 && !reason_text.empty() && c.problem_information) {
    // [MQTT-3.9.2-1]: the Reason String only if the SUBACK stays within the client's maximum.
    SendFitting(
        c,
        mqtt::Suback{sub.packet_id, ReasonString(reason_text).view(), mqtt::ReasonCodeList(codes)},
        plain, c.client_max_packet_size);
  } else {
    Send(c, plain);
  }
  // [MQTT-3.3.1-6], [MQTT-3.3.1-8]: matching retained messages follow, with RETAIN set.
  for (Delivery& d : retained) {
    Deliver(s, std::move(d));
  }
}

void Broker::RemoveSubscription(Session& s, const std::string& key, bool shared) {
  // (A 3.1.x session's "$share/..." is an ordinary filter, even beside a 5.0 group of that name.)
  if (!shared) {
    IndexRemove(key, s.id);
    return;
  }
  const std::uint16_t home = HomeOf(key);
  if (home == cluster_.index) {
    LeaveGroup(key, s.id);
    return;
  }
  Envelope e;
  e.kind = Envelope::Kind::kSharedLeave;
  e.member.subscriber = s.id;
  e.key = key;
  Post(home, std::move(e));
}

void Broker::JoinGroupAtHome(const std::string& key, const Subscription& member) {
  const std::uint16_t home = HomeOf(key);
  if (home == cluster_.index) {
    JoinGroup(key, member);
    return;
  }
  Envelope e;
  e.kind = Envelope::Kind::kSharedJoin;
  e.member = member;
  e.key = key;
  Post(home, std::move(e));
}

void Broker::JoinGroup(const std::string& key, const Subscription& member) {
  auto [it, created] = shared_groups_.try_emplace(key);
  if (created) {
    const auto parsed = mqtt::ParseSharedSubscription(key);
    TINYMQ_CHECK(parsed.has_value() && parsed->has_value());  // the member's broker parsed it
    it->second = std::make_unique<SharedGroup>();
    SharedGroup& g = *it->second;
    g.id = kSharedBit | (SubscriberId{cluster_.index} << kWorkerShift) | next_group_id_++;
    g.key = key;
    g.filter = std::string((*parsed)->filter);
    shared_by_id_.emplace(g.id, &g);
    mqtt::SubscriptionOptions group_options;
    group_options.max_qos = QoS::k2;
    IndexAdd(g.filter, Subscription{g.id, group_options, 0});
  }
  SharedGroup& g = *it->second;
  std::erase(g.offline, member.subscriber);  // it subscribes: it is online
  auto m = std::find_if(g.members.begin(), g.members.end(),
                        [&](const Subscription& x) { return x.subscriber == member.subscriber; });
  if (m == g.members.end()) {
    g.members.push_back(member);
  } else {
    *m = member;
  }
}

void Broker::LeaveGroup(const std::string& key, SubscriberId member) {
  auto group = shared_groups_.find(key);
  if (group == shared_groups_.end()) {
    return;
  }
  SharedGroup& g = *group->second;
  std::erase_if(g.members, [&](const Subscription& m) { return m.subscriber == member; });
  std::erase(g.offline, member);
  if (g.members.empty()) {
    IndexRemove(g.filter, g.id);
    shared_by_id_.erase(g.id);
    shared_groups_.erase(group);
  }
}

void Broker::SetMemberOnline(const std::string& key, SubscriberId member, bool online) {
  auto group = shared_groups_.find(key);
  if (group == shared_groups_.end() || WorkerOf(member) == cluster_.index) {
    return;  // members here are looked up directly
  }
  std::vector<SubscriberId>& offline = group->second->offline;
  std::erase(offline, member);
  if (!online) {
    offline.push_back(member);
  }
}

void Broker::AnnounceOnline(const Session& s, bool online) {
  if (cluster_.count == 1 || s.subscriptions == nullptr) {
    return;
  }
  for (const auto& [key, subscribed] : *s.subscriptions) {
    const std::uint16_t home = subscribed.shared ? HomeOf(key) : cluster_.index;
    if (home == cluster_.index) {
      continue;
    }
    Envelope e;
    e.kind = Envelope::Kind::kSharedOnline;
    e.flag = online;
    e.member.subscriber = s.id;
    e.key = key;
    Post(home, std::move(e));
  }
}

void Broker::OnEnvelope(Envelope e, Instant now) {
  last_now_ = now;
  if (e.confirm != 0 && e.kind != Envelope::Kind::kConfirm && e.from < confirm_seen_.size()) {
    // Confirmed to the sender once what handling it writes is durable (TakeWrites, OnDurable).
    confirm_seen_[e.from] = std::max(confirm_seen_[e.from], e.confirm);
  }
  switch (e.kind) {
    case Envelope::Kind::kConfirm:
      if (e.from < confirmed_.size()) {
        confirmed_[e.from] = std::max(confirmed_[e.from], e.confirm);
        ReleaseHolds();
      }
      return;
    case Envelope::Kind::kPublish:
      Route(e.message, /*publisher=*/0, e.publisher_hash);
      if (!e.origin.empty() && storing()) {
        // With what Route queued, atomically: this worker has its part of the message.
        writes_.Put(store::Kind::kIncoming, store::RoutedMarkerKey(e.origin, cluster_.index), {});
      }
      return;
    case Envelope::Kind::kSharedJoin: JoinGroup(e.key, e.member); return;
    case Envelope::Kind::kSharedLeave: LeaveGroup(e.key, e.member.subscriber); return;
    case Envelope::Kind::kSharedOnline: SetMemberOnline(e.key, e.member.subscriber, e.flag); return;
    case Envelope::Kind::kSharedDeliver: {
      Session* found = FindSession(e.member.subscriber);
      Delivery d;
      d.message = std::move(e.message);
      d.qos = MinQos(d.message->qos, e.member.options.max_qos);
      d.retain = e.member.options.retain_as_published && d.message->retain;
      d.group = e.group;
      if (e.member.identifier != 0) {
        d.ids.push_back(e.member.identifier);
      }
      if (found != nullptr) {
        Session& s = *found;
        if (s.connection == nullptr && d.qos != QoS::k0 && !e.flag) {
          // Went offline after the group's home picked it: another member may take it.
          Envelope back;
          back.kind = Envelope::Kind::kSharedReroute;
          back.message = std::move(d.message);
          back.member.subscriber = s.id;
          back.group = d.group;
          Post(WorkerOf(d.group), std::move(back));
          return;
        }
        Deliver(s, std::move(d));
      } else if (d.qos != QoS::k0) {
        Envelope back;  // the session ended meanwhile
        back.kind = Envelope::Kind::kSharedReroute;
        back.flag = true;
        back.message = std::move(d.message);
        back.member.subscriber = e.member.subscriber;
        back.group = d.group;
        Post(WorkerOf(d.group), std::move(back));
      }
      return;
    }
    case Envelope::Kind::kSharedReroute: {
      Delivery d;
      d.message = std::move(e.message);
      d.qos = d.message->qos;
      Reroute(e.group, e.member.subscriber, e.flag, std::move(d));
      return;
    }
  }
}

void Broker::HandleUnsubscribe(Connection& c, const mqtt::Unsubscribe& unsub) {
  Session& s = *c.session;
  std::vector<ReasonCode> codes;
  const std::uint64_t promised = promises();
  for (std::string_view filter : unsub.filters) {
    const std::string key(filter);
    auto it = s.subscriptions != nullptr ? s.subscriptions->find(key)
                                         : Session::Subscriptions::iterator();
    const bool existed = s.subscriptions != nullptr && it != s.subscriptions->end();
    if (existed) {
      const bool shared = it->second.shared;
      s.subscriptions->erase(it);
      RemoveSubscription(s, key, shared);
      UnstoreSubscription(s, key);
    }
    codes.push_back(existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted);
  }
  if (promises() != promised) {
    Hold(c);
  }
  // [MQTT-3.10.4-5]: UNSUBACK even when nothing was subscribed.
  Send(c, mqtt::Unsuback{unsub.packet_id, {}, mqtt::ReasonCodeList(codes)});
}

}  // namespace tinymq::broker
