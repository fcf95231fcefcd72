// Worker: the PROXY protocol header and WebSocket sides of its connections (see transport.h): the
// header read straight off the socket before anything else, the HTTP upgrade, the client's frames
// decoded into the broker, and the broker's output written as binary frames.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <span>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/socket_io.h"
#include "tinymq/server/worker.h"

namespace tinymq::server {

namespace {

using broker::ConnectionId;
using broker::Instant;

// The WebSocket scratch buffer: what one receive takes before it is decoded.
constexpr std::size_t kWsScratch = std::size_t{64} << 10;

// RFC 6455 §7.4.1.
constexpr std::uint16_t kCloseNormal = 1000;
constexpr std::uint16_t kCloseGoingAway = 1001;
constexpr std::uint16_t kCloseNoCode = 1005;

}  // namespace

bool Worker::ReadProxyHeader(ConnectionId id, Connection& c, Instant now) noexcept {
  Transport& t = *c.transport;
  net::ProxyHeaderParser& parser = *t.proxy;
  std::array<std::uint8_t, net::ProxyHeaderParser::kMaxPeek> peeked;
  for (;;) {
    // Peeked, then only the header's bytes taken out: what follows it stays in the socket for
    // TLS, WebSocket or MQTT, and level-triggered readiness goes on reporting it.
    const net::IoResult r = net::Peek(c.fd.get(), peeked);
    switch (r.status) {
      case net::IoStatus::kOk: break;
      case net::IoStatus::kWouldBlock: return false;
      case net::IoStatus::kClosed:
        PeerGone(id, "closed before its PROXY header", now);
        return false;
      case net::IoStatus::kError: PeerGone(id, net::ErrnoText(r.error), now); return false;
    }
    const net::ProxyHeaderParser::Result fed =
        parser.Feed(std::span<const std::uint8_t>(peeked.data(), r.bytes));
    if (fed.consumed != 0) {
      const net::IoResult taken =
          net::Receive(c.fd.get(), std::span<std::uint8_t>(peeked.data(), fed.consumed));
      if (taken.status != net::IoStatus::kOk || taken.bytes != fed.consumed) {
        PeerGone(id, "cannot read the PROXY header it peeked", now);
        return false;
      }
    }
    if (fed.status == net::ProxyHeaderParser::Status::kNeedMore) {
      if (fed.consumed == 0) {
        return false;  // (cannot happen: a header's bytes are consumed as they come)
      }
      continue;  // the socket may hold more of it
    }
    if (fed.status == net::ProxyHeaderParser::Status::kError) {
      ++transport_counters_.refused_proxy;
      LogTransportFailure("PROXY protocol header", t.peer, parser.error(), now);
      PeerGone(id, "bad PROXY protocol header", now);
      return false;
    }
    break;
  }
  // The address that counts against the per-address cap from now on: the client's, or the
  // socket's own for a header without one (a health check, UNKNOWN).
  const std::optional<std::string>& source = parser.source();
  if (group_.caps != nullptr && group_.caps->per_address()) {
    const std::string& counted = source ? *source : t.peer;
    const AddressKey from = addresses_[broker::SlotOf(id)];
    const AddressKey to = ConnectionCaps::KeyOf(counted);
    if (!group_.caps->Move(from, to)) {
      if (const std::optional<std::uint64_t> refused =
              group_.caps->TakeReport(ConnectionCaps::Verdict::kOverAddress, now)) {
        spdlog::warn(
            "limits.max_connections_per_address ({}) reached: refused {} connection(s) (the "
            "latest from {}, by PROXY header) since the last report",
            group_.caps->max_per_address(), *refused, counted);
      }
      PeerGone(id, "over max_connections_per_address", now);
      return false;
    }
    addresses_[broker::SlotOf(id)] = to;
  }
  if (source) {
    // The client's own address, from now on, for the logs and the broker.
    spdlog::debug("connection {}: {} by its PROXY header (via {})", id, *source, t.peer);
    broker_.SetPeer(id, *source);
    t.peer = *source;
  }
  t.proxy.reset();
  if (t.tls == nullptr && t.ws == nullptr) {
    c.transport.reset();  // plain TCP from here on
  }
  return true;
}

Worker::ReadEnd Worker::ReadWebSocket(ConnectionId id, Connection& c, Instant now) noexcept {
  Transport& t = *c.transport;
  WebSocketStream& ws = *t.ws;
  // What waited while the broker paused the input, first.
  if (ws.has_input()) {
    const std::span<const std::uint8_t> waiting(ws.input.data() + ws.input_at,
                                                ws.input.size() - ws.input_at);
    ws.input_at += FeedWebSocket(id, c, waiting, now);
    if (ws.has_input()) {
      return ReadEnd::kMore;
    }
    std::vector<std::uint8_t>().swap(ws.input);  // its memory too: it held a burst
    ws.input_at = 0;
  }
  if (ws_scratch_.empty()) {
    ws_scratch_.resize(kWsScratch);
  }
  std::size_t total = 0;
  while (total < kMaxReadPerTurn || (t.tls != nullptr && t.tls->buffered_input())) {
    if (broker_.ShouldClose(id) || broker_.InputPaused(id)) {
      return ReadEnd::kMore;  // the broker is done with it, or wants no more for now
    }
    std::size_t n = 0;
    if (t.tls != nullptr) {
      const net::TlsResult r = t.tls->Read(ws_scratch_);
      switch (r.status) {
        case net::TlsStatus::kOk: n = r.bytes; break;
        case net::TlsStatus::kWantRead: return ReadEnd::kDrained;
        case net::TlsStatus::kWantWrite:
          t.read_wants_write = true;
          SetInterest(id, c, c.interest | net::kWritable);
          return ReadEnd::kMore;
        case net::TlsStatus::kClosed: PeerGone(id, "closed by peer", now); return ReadEnd::kGone;
        case net::TlsStatus::kError: PeerGone(id, t.tls->error(), now); return ReadEnd::kGone;
      }
    } else {
      const net::IoResult r = net::Receive(c.fd.get(), ws_scratch_);
      switch (r.status) {
        case net::IoStatus::kOk: n = r.bytes; break;
        case net::IoStatus::kWouldBlock: return ReadEnd::kDrained;
        case net::IoStatus::kClosed: PeerGone(id, "closed by peer", now); return ReadEnd::kGone;
        case net::IoStatus::kError:
          PeerGone(id, net::ErrnoText(r.error), now);
          return ReadEnd::kGone;
      }
    }
    total += n;
    const std::span<const std::uint8_t> got(ws_scratch_.data(), n);
    const std::size_t used = FeedWebSocket(id, c, got, now);
    if (used < n) {  // the broker paused the input: the rest waits here
      ws.input.assign(got.begin() + static_cast<std::ptrdiff_t>(used), got.end());
      ws.input_at = 0;
      return ReadEnd::kMore;
    }
  }
  return ReadEnd::kMore;
}

std::size_t Worker::FeedWebSocket(ConnectionId id, Connection& c, std::span<const std::uint8_t> in,
                                  Instant now) noexcept {
  Transport& t = *c.transport;
  WebSocketStream& ws = *t.ws;
  std::size_t at = 0;
  while (at < in.size()) {
    if (broker_.ShouldClose(id)) {
      return in.size();  // nobody reads it any more
    }
    if (broker_.InputPaused(id)) {
      return at;
    }
    if (ws.handshake != nullptr) {
      const net::WebSocketHandshake::Result r = ws.handshake->Feed(in.subspan(at));
      at += r.consumed;
      if (r.status == net::WebSocketHandshake::Status::kNeedMore) {
        continue;
      }
      const std::string& response = ws.handshake->response();
      ws.Queue(std::vector<std::uint8_t>(response.begin(), response.end()));
      if (r.status == net::WebSocketHandshake::Status::kRefused) {
        ++transport_counters_.refused_websocket;
        LogTransportFailure("WebSocket upgrade", t.peer, ws.handshake->error(), now);
        ws.handshake.reset();
        ws.close_sent = true;           // an HTTP answer, not a WebSocket close
        broker_.OnPeerClosed(id, now);  // closed once the response is written
        return in.size();
      }
      spdlog::debug("connection {}: WebSocket upgrade (path {}, subprotocol {})", id,
                    ws.handshake->path(),
                    ws.handshake->subprotocol().empty() ? "none" : ws.handshake->subprotocol());
      ws.handshake.reset();
      ws.upgraded = true;
      t.peer = std::string();  // no transport failure is logged from here on
      continue;
    }
    const std::span<std::uint8_t> room = broker_.ReadBuffer(id);
    const net::WsStep step = ws.decoder.Decode(in.subspan(at), room);
    at += step.consumed;
    if (step.produced != 0) {
      broker_.OnRead(id, step.produced, now);
    }
    switch (step.event) {
      case net::WsEvent::kNone:
        if (step.consumed == 0 && step.produced == 0) {
          return at;  // (cannot happen with room to write: a guard against spinning)
        }
        break;
      case net::WsEvent::kPing:
        ws.Queue(net::EncodeWsControl(net::WsOpcode::kPong, ws.decoder.control_payload()));
        break;
      case net::WsEvent::kPong: break;
      case net::WsEvent::kClose: {
        // The client ends the WebSocket (no DISCONNECT: for MQTT the network connection is
        // closed, and a will goes out). The close is answered with its code.
        const std::uint16_t code = ws.decoder.close_code();
        ws.Queue(net::EncodeWsClose(code == kCloseNoCode ? kCloseNormal : code, {}));
        ws.close_sent = true;
        spdlog::debug("connection {}: WebSocket closed by peer (code {})", id, code);
        broker_.OnPeerClosed(id, now);  // closed once the answer is written
        return in.size();
      }
      case net::WsEvent::kError:
        ++transport_counters_.websocket_errors;
        spdlog::debug("connection {}: WebSocket protocol error: {}", id, ws.decoder.error());
        ws.Queue(net::EncodeWsClose(ws.decoder.error_code(), ws.decoder.error()));
        ws.close_sent = true;
        broker_.OnPeerClosed(id, now);  // closed once the close frame is written
        return in.size();
    }
  }
  return at;
}

bool Worker::QueueWebSocketClose(ConnectionId id, Connection& c) noexcept {
  if (c.transport == nullptr || c.transport->ws == nullptr) {
    return false;
  }
  WebSocketStream& ws = *c.transport->ws;
  if (!ws.upgraded || ws.close_sent || !ws.between_frames() || broker_.OutputSize(id) != 0) {
    return false;
  }
  ws.close_sent = true;
  ws.Queue(net::EncodeWsClose(shutdown_deadline_ ? kCloseGoingAway : kCloseNormal, {}));
  return true;
}

Worker::Sent Worker::SendOn(Connection& c, std::span<const net::ByteRange> pieces) noexcept {
  Sent sent;
  if (c.transport != nullptr && c.transport->tls != nullptr) {
    if (tls_staging_.empty()) {
      tls_staging_.resize(net::TlsSession::kMaxRecord);
    }
    const net::TlsResult r = c.transport->tls->Write(pieces, tls_staging_);
    sent.bytes = r.bytes;
    switch (r.status) {
      case net::TlsStatus::kOk: break;
      case net::TlsStatus::kWantRead:
      case net::TlsStatus::kWantWrite: sent.status = Sent::Status::kBlocked; break;
      case net::TlsStatus::kClosed:
      case net::TlsStatus::kError:
        sent.status = Sent::Status::kFailed;
        sent.error = c.transport->tls->error();
        break;
    }
    return sent;
  }
  if (pieces.empty()) {
    return sent;
  }
  const net::IoResult r = net::SendGather(c.fd.get(), pieces);
  sent.bytes = r.bytes;
  if (r.status == net::IoStatus::kWouldBlock) {
    sent.status = Sent::Status::kBlocked;
  } else if (r.status != net::IoStatus::kOk) {
    sent.status = Sent::Status::kFailed;
    sent.error = net::ErrnoText(r.error);
  }
  return sent;
}

bool Worker::WriteWebSocket(ConnectionId id, Connection& c, Instant now) noexcept {
  Transport& t = *c.transport;
  WebSocketStream& ws = *t.ws;
  std::array<broker::Broker::OutputChunk, net::kMaxGather - 1> chunks;
  std::array<net::ByteRange, net::kMaxGather> pieces;
  for (;;) {
    std::size_t n = 0;
    bool own = false;  // the pieces are the stream's own bytes, not a data frame
    if (ws.between_frames()) {
      if (ws.output_at < ws.output.size()) {
        pieces[n++] =
            net::ByteRange{ws.output.data() + ws.output_at, ws.output.size() - ws.output_at};
        own = true;
      } else if (ws.upgraded && !ws.close_sent) {
        const std::size_t pending = broker_.OutputSize(id);
        if (pending != 0) {
          const std::size_t size = std::min(pending, WebSocketStream::kMaxOutFrame);
          ws.header_size = static_cast<std::uint8_t>(
              net::EncodeWsHeader(net::WsOpcode::kBinary, size, std::span(ws.header)));
          ws.header_sent = 0;
          ws.frame_left = size;
        }
      }
    }
    if (!own) {
      if (ws.header_sent < ws.header_size) {
        pieces[n++] = net::ByteRange{ws.header.data() + ws.header_sent,
                                     std::size_t{ws.header_size} - ws.header_sent};
      }
      if (ws.frame_left != 0) {
        const std::size_t got = broker_.Output(id, chunks);
        std::uint64_t room = ws.frame_left;
        for (std::size_t i = 0; i < got && room != 0; ++i) {
          const std::size_t size =
              static_cast<std::size_t>(std::min<std::uint64_t>(chunks[i].size, room));
          pieces[n++] = net::ByteRange{chunks[i].data, size};
          room -= size;
        }
        if (got == 0 && ws.header_sent == ws.header_size) {
          // The broker dropped the rest of this frame's bytes (it closed the connection): the
          // frame cannot be finished, so nothing more may follow it, a close frame included.
          ws.frame_left = 0;
          ws.close_sent = true;
          return true;
        }
      }
    }
    if (n == 0 && !(t.tls != nullptr && t.tls->pending_output())) {
      return true;
    }
    const Sent sent = SendOn(c, std::span<const net::ByteRange>(pieces.data(), n));
    std::size_t bytes = sent.bytes;
    if (own) {
      ws.output_at += bytes;
      if (ws.output_at == ws.output.size()) {
        // Its memory too: an idle connection keeps none (the 101 response was the most of it).
        std::vector<std::uint8_t>().swap(ws.output);
        ws.output_at = 0;
      }
    } else if (bytes != 0) {
      const std::size_t header =
          std::min<std::size_t>(bytes, std::size_t{ws.header_size} - ws.header_sent);
      ws.header_sent = static_cast<std::uint8_t>(ws.header_sent + header);
      bytes -= header;
      if (bytes != 0) {
        broker_.OnWritten(id, bytes, now);  // sent, or in the TLS session's pending record
        ws.frame_left -= bytes;
      }
    }
    switch (sent.status) {
      case Sent::Status::kOk:
        if (sent.bytes == 0 && n != 0) {
          return true;  // empty pieces only: nothing to send (cannot loop forever)
        }
        continue;
      case Sent::Status::kBlocked: return true;
      case Sent::Status::kFailed: PeerGone(id, sent.error, now); return false;
    }
  }
}

}  // namespace tinymq::server
