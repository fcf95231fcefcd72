// Worker: the TLS side of its connections (see worker.h, "TLS"): the handshake driven by the
// socket's readiness, decrypting reads into the broker, and output coalesced into records.

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <span>

#include "tinymq/server/worker.h"

namespace tinymq::server {

namespace {

using broker::ConnectionId;
using broker::Instant;

// Failed handshakes logged per worker and window; the rest are counted, and the count logged with
// the first failure of a later window.
constexpr int kTlsLogLines = 5;
constexpr std::chrono::seconds kTlsLogWindow{10};

}  // namespace

bool Worker::Handshake(ConnectionId id, Connection& c, Instant now) noexcept {
  Transport& tls = *c.transport;
  const net::TlsResult r = tls.tls->Handshake();
  switch (r.status) {
    case net::TlsStatus::kOk: break;
    case net::TlsStatus::kWantRead: SetInterest(id, c, net::kReadable); return false;
    case net::TlsStatus::kWantWrite: SetInterest(id, c, net::kWritable); return false;
    case net::TlsStatus::kClosed:
      // A client that connects and goes away without a word (a port check, a load balancer's
      // probe) is not news: the broker logs it at debug level, as any connection that ends
      // before its CONNECT.
      PeerGone(id, "closed during the TLS handshake", now);
      return false;
    case net::TlsStatus::kError: {
      const std::string why = tls.tls->error();
      RefuseTls(id, c, why, now);
      return false;
    }
  }
  if (tls.username_from != config::CertUsername::kNone) {
    std::string name = tls.tls->PeerName(tls.username_from);
    if (name.empty()) {
      RefuseTls(id, c,
                tls.username_from == config::CertUsername::kCommonName
                    ? "its certificate has no single usable common name (username_from_cert)"
                    : "its certificate has no usable subject (username_from_cert)",
                now);
      return false;
    }
    broker_.SetCertUsername(id, std::move(name));
  }
  if (tls.ws == nullptr) {
    tls.peer = std::string();  // only failed handshakes (and WebSocket upgrades) name it
  }
  SetInterest(id, c, net::kReadable);
  return true;
}

void Worker::RefuseTls(ConnectionId id, Connection& c, std::string_view why, Instant now) noexcept {
  ++transport_counters_.refused_tls;
  LogTransportFailure("TLS handshake", c.transport->peer, why, now);
  PeerGone(id, why, now);
}

void Worker::LogTransportFailure(std::string_view what, std::string_view peer, std::string_view why,
                                 Instant now) noexcept {
  if (now >= tls_log_.window_end) {
    if (tls_log_.suppressed != 0) {
      spdlog::info(
          "{} more failed TLS handshake(s), WebSocket upgrade(s) or PROXY header(s) not "
          "logged in the last {} s",
          tls_log_.suppressed, kTlsLogWindow.count());
    }
    tls_log_ = LogBudget{.window_end = now + kTlsLogWindow, .lines = 0, .suppressed = 0};
  }
  if (tls_log_.lines < kTlsLogLines) {
    ++tls_log_.lines;
    spdlog::info("{} with {} failed: {}", what, peer, why);
  } else {
    ++tls_log_.suppressed;
  }
}

Worker::ReadEnd Worker::ReadTls(ConnectionId id, Connection& c, Instant now) noexcept {
  net::TlsSession& tls = *c.transport->tls;
  std::size_t total = 0;
  // A read stops at a record's end only: plaintext left inside OpenSSL would get no readiness
  // event (what is left in the socket does, level-triggered).
  while (total < kMaxReadPerTurn || tls.buffered_input()) {
    if (broker_.ShouldClose(id) || broker_.InputPaused(id)) {
      return ReadEnd::kMore;  // the broker is done with it, or wants no more for now
    }
    const std::span<std::uint8_t> buffer = broker_.ReadBuffer(id);
    const net::TlsResult r = tls.Read(buffer);
    switch (r.status) {
      case net::TlsStatus::kOk:
        broker_.OnRead(id, r.bytes, now);
        total += r.bytes;
        continue;
      case net::TlsStatus::kWantRead: return ReadEnd::kDrained;
      case net::TlsStatus::kWantWrite:
        c.transport->read_wants_write = true;
        SetInterest(id, c, c.interest | net::kWritable);
        return ReadEnd::kMore;
      case net::TlsStatus::kClosed: PeerGone(id, "closed by peer", now); return ReadEnd::kGone;
      case net::TlsStatus::kError: PeerGone(id, tls.error(), now); return ReadEnd::kGone;
    }
  }
  return ReadEnd::kMore;
}

bool Worker::WriteTls(ConnectionId id, Connection& c, Instant now) noexcept {
  net::TlsSession& tls = *c.transport->tls;
  if (tls_staging_.empty()) {
    tls_staging_.resize(net::TlsSession::kMaxRecord);
  }
  std::array<broker::Broker::OutputChunk, net::kMaxGather> chunks;
  std::array<net::ByteRange, net::kMaxGather> pieces;
  for (;;) {
    // The pending record first (Write() sends it), then up to one record of the broker's pieces.
    const std::size_t n = broker_.Output(id, chunks);
    if (n == 0 && !tls.pending_output()) {
      return true;
    }
    for (std::size_t i = 0; i < n; ++i) {
      pieces[i] = net::ByteRange{chunks[i].data, chunks[i].size};
    }
    const net::TlsResult r = tls.Write(std::span(pieces.data(), n), tls_staging_);
    if (r.bytes != 0) {
      broker_.OnWritten(id, r.bytes, now);  // sent, or in the session's pending record
    }
    switch (r.status) {
      case net::TlsStatus::kOk:
        if (r.bytes == 0 && n != 0) {
          return true;  // empty pieces only: nothing to send (cannot loop forever)
        }
        continue;
      case net::TlsStatus::kWantRead:  // (renegotiation is off: a write should never read)
      case net::TlsStatus::kWantWrite: return true;
      case net::TlsStatus::kClosed:
      case net::TlsStatus::kError: PeerGone(id, tls.error(), now); return false;
    }
  }
}

}  // namespace tinymq::server
