// The broker's byte side (broker.h: the I/O contract): connections accepted and released, their
// input read into the decoder, their output gathered, written and pooled, and packets encoded into
// it.

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

}  // namespace tinymq::broker
