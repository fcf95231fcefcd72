#include "tinymq/server/worker.h"

#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <span>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/socket_io.h"
#include "tinymq/util/check.h"

namespace tinymq::server {

namespace {

using broker::Clock;
using broker::ConnectionId;
using broker::Instant;

// epoll tokens: a connection's token is its ConnectionId (never reused, so an event that arrives
// for a connection closed earlier in the same turn finds nothing); listeners and the signal
// descriptor use the top of the range.
constexpr std::uint64_t kListenerTokenBase = std::uint64_t{1} << 63;
constexpr std::uint64_t kSignalToken = ~std::uint64_t{0};

// More TakeDirty() rounds than this in one turn means output keeps regenerating; the rest waits
// for the next turn (which then does not sleep).
constexpr int kMaxFlushRounds = 16;

spdlog::level::level_enum ToSpdlog(broker::LogLevel level) {
  switch (level) {
    case broker::LogLevel::kDebug: return spdlog::level::debug;
    case broker::LogLevel::kInfo: return spdlog::level::info;
    case broker::LogLevel::kWarning: return spdlog::level::warn;
  }
  return spdlog::level::info;
}

std::string SignalName(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

}  // namespace

util::Result<std::unique_ptr<Worker>, std::string> Worker::Create(
    std::vector<net::Listener> listeners, const broker::Limits& limits) {
  util::Result<net::EventLoop, std::string> loop = net::EventLoop::Create();
  if (!loop) {
    return util::Unexpected(loop.error());
  }
  auto worker = std::make_unique<Worker>(Key(), std::move(*loop), std::move(listeners), limits);
  for (std::size_t i = 0; i < worker->listeners_.size(); ++i) {
    const net::Listener& l = worker->listeners_[i];
    if (auto added = worker->loop_.Add(l.fd(), net::kReadable, kListenerTokenBase + i); !added) {
      return util::Unexpected(l.address() + ": " + added.error());
    }
  }
  return worker;
}

Worker::Worker(Key /*only Create*/, net::EventLoop loop, std::vector<net::Listener> listeners,
               const broker::Limits& limits)
    : loop_(std::move(loop)),
      listeners_(std::move(listeners)),
      broker_(limits, [](broker::LogLevel level, std::string_view text) {
        spdlog::log(ToSpdlog(level), "{}", text);
      }) {}

Worker::~Worker() = default;

util::Result<void, std::string> Worker::Run(net::SignalFd& stop) noexcept {
  if (auto added = loop_.Add(stop.fd(), net::kReadable, kSignalToken); !added) {
    return util::Unexpected("signalfd: " + added.error());
  }
  bool running = true;
  while (running) {
    const auto ready = loop_.Wait(Timeout(Clock::now()));
    if (!ready) {
      return util::Unexpected(ready.error());
    }
    Instant now = Clock::now();
    for (const net::Event& e : *ready) {
      if (e.token == kSignalToken) {
        while (const std::optional<int> signal = stop.Read()) {
          spdlog::info("{} received: closing {} connection(s) and stopping", SignalName(*signal),
                       connections_.size());
          running = false;
        }
      } else if (e.token >= kListenerTokenBase) {
        AcceptFrom(static_cast<std::size_t>(e.token - kListenerTokenBase), now);
      } else {
        OnConnectionEvent(e.token, e.events, now);
      }
    }
    now = Clock::now();
    if (const std::optional<Instant> deadline = broker_.NextDeadline();
        deadline && *deadline <= now) {
      broker_.OnTimer(now);
    }
    FlushDirty(now);
    CloseExpiredLingerers(now);
    HousekeepAccepting(now);
  }
  (void)loop_.Remove(stop.fd());
  // The sockets close with the map; the broker forgets its connections when it is destroyed.
  connections_.clear();
  return {};
}

void Worker::AcceptFrom(std::size_t index, Instant now) noexcept {
  net::Listener& listener = listeners_[index];
  for (int i = 0; i < kMaxAcceptsPerTurn; ++i) {
    net::AcceptResult r = listener.Accept();
    switch (r.status) {
      case net::AcceptStatus::kAccepted: {
        spdlog::debug("{}: new connection from {}", listener.address(), r.peer);
        const ConnectionId id = broker_.Accept(std::move(r.peer), now);
        TINYMQ_CHECK(id < kListenerTokenBase);
        if (auto added = loop_.Add(r.fd.get(), net::kReadable, id); !added) {
          spdlog::warn("{}: cannot watch a new connection: {}", listener.address(), added.error());
          broker_.OnPeerClosed(id, now);
          broker_.Release(id);
          continue;
        }
        connections_.emplace(id, Connection{std::move(r.fd)});
        continue;
      }
      case net::AcceptStatus::kWouldBlock: return;
      case net::AcceptStatus::kAborted: continue;
      case net::AcceptStatus::kNoResources:
      case net::AcceptStatus::kError:
        // Level-triggered: the pending connection would wake every turn; back off instead.
        spdlog::warn("{}: accept: {}; not accepting for {} ms", listener.address(),
                     net::ErrnoText(r.error), kAcceptBackoff.count());
        PauseAccepting(now);
        return;
    }
  }
}

void Worker::OnConnectionEvent(ConnectionId id, net::EventMask events, Instant now) noexcept {
  auto it = connections_.find(id);
  if (it == connections_.end()) {
    return;  // closed earlier in this turn
  }
  if (it->second.half_closed) {
    Discard(id, it->second);
    return;
  }
  if ((events & net::kWritable) != 0 && !Flush(id, it->second, now)) {
    return;
  }
  if ((events & (net::kHangup | net::kSocketError)) != 0 && broker_.ShouldClose(id)) {
    Close(id);  // closing anyway, and its output can no longer be delivered
    return;
  }
  if ((events & (net::kReadable | net::kHangup | net::kSocketError)) == 0) {
    return;
  }
  const ReadEnd end = ReadFrom(id, it->second, now);
  if (end == ReadEnd::kDrained && (events & (net::kHangup | net::kSocketError)) != 0) {
    // Hang-up or error with nothing left to read (recv() reported neither): the peer is gone.
    PeerGone(id, (events & net::kSocketError) != 0 ? "socket error" : "hang-up", now);
  }
}

Worker::ReadEnd Worker::ReadFrom(ConnectionId id, const Connection& c, Instant now) noexcept {
  std::size_t total = 0;
  while (total < kMaxReadPerTurn) {
    if (broker_.ShouldClose(id)) {
      return ReadEnd::kMore;  // the broker is done with it: what else arrives is not read
    }
    const std::span<std::uint8_t> buffer = broker_.ReadBuffer(id);
    const net::IoResult r = net::Receive(c.fd.get(), buffer);
    switch (r.status) {
      case net::IoStatus::kOk:
        broker_.OnRead(id, r.bytes, now);
        total += r.bytes;
        if (r.bytes < buffer.size()) {
          // A short read drained the socket; anything that arrives later wakes the loop again
          // (level-triggered), so this saves the recv() that would only say EAGAIN.
          return ReadEnd::kMore;
        }
        continue;
      case net::IoStatus::kWouldBlock: return ReadEnd::kDrained;
      case net::IoStatus::kClosed: PeerGone(id, "closed by peer", now); return ReadEnd::kGone;
      case net::IoStatus::kError: PeerGone(id, net::ErrnoText(r.error), now); return ReadEnd::kGone;
    }
  }
  return ReadEnd::kMore;
}

bool Worker::Flush(ConnectionId id, Connection& c, Instant now) noexcept {
  std::array<broker::Broker::OutputChunk, net::kMaxGather> chunks;
  std::array<net::ByteRange, net::kMaxGather> pieces;
  for (;;) {
    // Everything pending, up to kMaxGather pieces (headers and shared payloads), in one sendmsg.
    const std::size_t n = broker_.Output(id, chunks);
    if (n == 0) {
      break;
    }
    for (std::size_t i = 0; i < n; ++i) {
      pieces[i] = net::ByteRange{chunks[i].data, chunks[i].size};
    }
    const net::IoResult r = net::SendGather(c.fd.get(), std::span(pieces.data(), n));
    if (r.status == net::IoStatus::kOk) {
      broker_.OnWritten(id, r.bytes, now);
      continue;
    }
    if (r.status == net::IoStatus::kWouldBlock) {
      break;
    }
    PeerGone(id, net::ErrnoText(r.error), now);
    return false;
  }
  const bool pending = broker_.OutputSize(id) != 0;
  const bool closing = broker_.ShouldClose(id);
  if (closing && !pending) {
    return HalfClose(id, c, now);
  }
  if (closing && !c.lingering) {
    c.lingering = true;
    lingering_.emplace_back(now + kCloseLinger, id);
  }
  // Once closing, input is no longer read; hang-ups and errors are reported regardless.
  SetInterest(id, c, (closing ? 0 : net::kReadable) | (pending ? net::kWritable : 0));
  return true;
}

bool Worker::HalfClose(ConnectionId id, Connection& c, Instant now) noexcept {
  if (c.half_closed) {
    return true;
  }
  if (net::ShutdownWrite(c.fd.get()) != 0) {
    Close(id);  // not connected any more: nothing to wait for
    return false;
  }
  c.half_closed = true;
  if (!c.lingering) {
    c.lingering = true;
    lingering_.emplace_back(now + kCloseLinger, id);
  }
  SetInterest(id, c, net::kReadable);
  return true;
}

void Worker::Discard(ConnectionId id, Connection& c) noexcept {
  std::array<std::uint8_t, 16384> scratch;
  for (std::size_t total = 0; total < kMaxReadPerTurn; total += scratch.size()) {
    const net::IoResult r = net::Receive(c.fd.get(), scratch);
    if (r.status == net::IoStatus::kWouldBlock) {
      return;
    }
    if (r.status != net::IoStatus::kOk) {
      Close(id);  // EOF: the peer has read everything and closed; or the connection failed
      return;
    }
  }
}

void Worker::FlushDirty(Instant now) noexcept {
  dirty_left_ = false;
  for (int round = 0; round < kMaxFlushRounds; ++round) {
    const std::span<const ConnectionId> dirty = broker_.TakeDirty();
    if (dirty.empty()) {
      return;
    }
    for (const ConnectionId id : dirty) {
      if (auto it = connections_.find(id); it != connections_.end()) {
        (void)Flush(id, it->second, now);
      }
    }
  }
  dirty_left_ = true;
}

void Worker::PeerGone(ConnectionId id, std::string_view why, Instant now) noexcept {
  spdlog::debug("connection {}: {}", id, why);
  broker_.OnPeerClosed(id, now);
  Close(id);
}

void Worker::Close(ConnectionId id) noexcept {
  auto it = connections_.find(id);
  TINYMQ_DCHECK(it != connections_.end());
  (void)loop_.Remove(it->second.fd.get());
  connections_.erase(it);  // closes the socket
  broker_.Release(id);
}

void Worker::SetInterest(ConnectionId id, Connection& c, net::EventMask interest) noexcept {
  if (interest == c.interest) {
    return;
  }
  if (auto changed = loop_.Modify(c.fd.get(), interest, id); !changed) {
    spdlog::error("connection {}: {}", id, changed.error());  // a bug: the fd is registered
    return;
  }
  c.interest = interest;
}

void Worker::CloseExpiredLingerers(Instant now) noexcept {
  while (!lingering_.empty() && lingering_.front().first <= now) {
    const ConnectionId id = lingering_.front().second;
    lingering_.pop_front();
    if (connections_.contains(id)) {
      spdlog::debug("connection {}: output not drained {} ms after close; dropping it", id,
                    kCloseLinger.count());
      Close(id);  // ShouldClose(id) holds, so Release is allowed
    }
  }
}

void Worker::PauseAccepting(Instant now) noexcept {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    (void)loop_.Modify(listeners_[i].fd(), 0, kListenerTokenBase + i);
  }
  accept_paused_until_ = now + kAcceptBackoff;
}

void Worker::HousekeepAccepting(Instant now) noexcept {
  if (!accept_paused_until_ || *accept_paused_until_ > now) {
    return;
  }
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    (void)loop_.Modify(listeners_[i].fd(), net::kReadable, kListenerTokenBase + i);
  }
  accept_paused_until_.reset();
}

std::optional<std::chrono::milliseconds> Worker::Timeout(Instant now) const noexcept {
  if (dirty_left_) {
    return std::chrono::milliseconds(0);
  }
  std::optional<Instant> next = broker_.NextDeadline();
  const auto consider = [&next](Instant t) {
    if (!next || t < *next) {
      next = t;
    }
  };
  if (accept_paused_until_) {
    consider(*accept_paused_until_);
  }
  if (!lingering_.empty()) {
    consider(lingering_.front().first);
  }
  if (!next) {
    return std::nullopt;  // nothing is due: sleep until a socket or a signal wakes us
  }
  if (*next <= now) {
    return std::chrono::milliseconds(0);
  }
  // Rounded up: waking a little early would only spin until the deadline.
  return std::chrono::ceil<std::chrono::milliseconds>(*next - now);
}

}  // namespace tinymq::server
