#include "tinymq/server/worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
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
// for a connection closed earlier in the same turn finds nothing); listeners and the mailbox use
// the top of the range.
constexpr std::uint64_t kListenerTokenBase = std::uint64_t{1} << 63;
constexpr std::uint64_t kMailToken = ~std::uint64_t{0};
// How long a worker with mail that a full mailbox could not take waits before trying again.
constexpr std::chrono::milliseconds kBacklogRetry{1};

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

}  // namespace

util::Result<std::unique_ptr<WorkerGroup>, std::string> WorkerGroup::Create(std::uint16_t workers) {
  auto group = std::make_unique<WorkerGroup>();
  group->summary = std::make_unique<broker::SubscriptionSummary>(workers);
  for (std::uint16_t i = 0; i < workers; ++i) {
    group->pools.push_back(std::make_unique<broker::MessagePool>());
    util::Result<std::unique_ptr<Mailbox<Mail>>, std::string> box =
        Mailbox<Mail>::Create(kMailboxCapacity);
    if (!box) {
      return util::Unexpected(box.error());
    }
    group->mailboxes.push_back(std::move(*box));
  }
  return group;
}

util::Result<std::unique_ptr<Worker>, std::string> Worker::Create(const broker::Limits& limits,
                                                                  std::uint16_t index,
                                                                  WorkerGroup& group) {
  util::Result<net::EventLoop, std::string> loop = net::EventLoop::Create();
  if (!loop) {
    return util::Unexpected(loop.error());
  }
  auto worker = std::make_unique<Worker>(Key(), std::move(*loop), limits, index, group);
  if (auto added = worker->loop_.Add(group.mailboxes[index]->fd(), net::kReadable, kMailToken);
      !added) {
    return util::Unexpected("mailbox: " + added.error());
  }
  return worker;
}

void Worker::AttachStore(const broker::Durability& durability, Committer& committer) {
  TINYMQ_CHECK(durability.store != nullptr && committer_ == nullptr && listeners_.empty());
  broker_.AttachStore(durability);
  committer_ = &committer;
}

util::Result<broker::RestoreCounts, std::string> Worker::Restore(Instant now, bool retained,
                                                                 bool sessions) {
  TINYMQ_CHECK(committer_ != nullptr && listeners_.empty());
  util::Result<broker::RestoreCounts, std::string> counts =
      broker_.Restore(now, retained, sessions);
  // What restoring changed (expired sessions and messages deleted, wills published to other
  // workers) is committed and posted at the end of the first turn, which must not sleep first.
  dirty_left_ = true;
  return counts;
}

util::Result<void, std::string> Worker::AddListeners(std::vector<net::Listener> listeners) {
  for (net::Listener& l : listeners) {
    if (auto added = AddListener(std::move(l), nullptr, ListenerOptions{}); !added) {
      return added;
    }
  }
  return {};
}

util::Result<void, std::string> Worker::AddListener(net::Listener listener,
                                                    std::shared_ptr<net::TlsContext> tls,
                                                    ListenerOptions options) {
  const std::size_t i = listeners_.size();
  if (auto added = loop_.Add(listener.fd(), net::kReadable, kListenerTokenBase + i); !added) {
    return util::Unexpected(listener.address() + ": " + added.error());
  }
  listeners_.push_back(ListenerEntry{std::move(listener), std::move(tls), options});
  return {};
}

Worker::Worker(Key /*only Create*/, net::EventLoop loop, const broker::Limits& limits,
               std::uint16_t index, WorkerGroup& group)
    : index_(index),
      group_(group),
      loop_(std::move(loop)),
      broker_(
          limits,
          [](broker::LogLevel level, std::string_view text) {
            spdlog::log(ToSpdlog(level), "{}", text);
          },
          broker::Cluster{index, group.size(), &group.retained, group.pools[index].get(),
                          group.summary.get()}),
      outgoing_(group.size()) {}

Worker::~Worker() = default;

util::Result<void, std::string> Worker::Run() noexcept {
  bool running = true;
  while (running) {
    const auto ready = loop_.Wait(Timeout(Clock::now()));
    if (!ready) {
      return util::Unexpected(ready.error());
    }
    Instant now = Clock::now();
    const Instant turn_started = now;
    // Mail first: whatever another worker posted before this turn's input was sent is handled
    // before that input (a retained message, a subscription's first PUBLISH).
    const bool signaled = std::any_of(ready->begin(), ready->end(),
                                      [](const net::Event& e) { return e.token == kMailToken; });
    running = ReadMail(now, signaled);
    for (const net::Event& e : *ready) {
      if (e.token == kMailToken) {
        continue;
      }
      if (e.token >= kListenerTokenBase) {
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
    CloseExpiredLingerers(now);  // before the commit: releasing a connection may make writes
    FlushAndCommit(now);
    SubmitCredentialChecks();
    SendMail();
    HousekeepAccepting(now);
    const Instant turn_ended = Clock::now();
    loop_latency_.Observe(turn_ended - turn_started);
    PublishStats(turn_ended);
    if (shutdown_deadline_) {
      if (now >= *shutdown_deadline_ && connections_.size() != 0) {
        spdlog::debug("worker {}: closing {} connection(s) still open at the shutdown deadline",
                      index_, connections_.size());
        connections_.Clear();  // (the broker forgets them when it is destroyed)
        addresses_.clear();
      }
      if (connections_.size() == 0 && !drained_reported_) {
        drained_reported_ = true;
        group_.drained.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  spdlog::debug("worker {}: closing {} connection(s)", index_, connections_.size());
  // The sockets close with the map; the broker forgets its connections when it is destroyed.
  connections_.Clear();
  return {};
}

bool Worker::ReadMail(Instant now, bool signaled) noexcept {
  Mailbox<Mail>& box = *group_.mailboxes[index_];
  // Drained when its eventfd says so even if it looks empty: a sender writes the eventfd after
  // its items went in, so a drain in between leaves the eventfd set with nothing queued, and
  // (level-triggered) it would wake every wait until reset.
  if (box.empty() && !signaled) {
    return true;
  }
  incoming_.clear();
  box.Drain(incoming_);
  bool running = true;
  for (Mail& mail : incoming_) {
    switch (mail.kind) {
      case Mail::Kind::kEnvelope: broker_.OnEnvelope(std::move(mail.envelope), now); break;
      case Mail::Kind::kConnection: TakeOver(mail, now); break;
      case Mail::Kind::kDurable: broker_.OnDurable(mail.epoch, now); break;
      case Mail::Kind::kCredentials:
        broker_.OnCredentialResult(mail.connection, mail.ok, now);
        break;
      case Mail::Kind::kAccess: broker_.SetAccess(std::move(mail.access)); break;
      case Mail::Kind::kLimits: broker_.SetLimits(*mail.limits); break;
      case Mail::Kind::kShutdown: BeginShutdown(now); break;
      case Mail::Kind::kStop: running = false; break;
    }
  }
  incoming_.clear();
  return running;
}

void Worker::FlushAndCommit(Instant now) noexcept {
  dirty_left_ = false;
  (void)FlushDirty(now);
  if (committer_ == nullptr) {
    return;
  }
  for (int round = 0;; ++round) {
    Commit();
    // TakeWrites() may have released output (acknowledgements that waited for no write), and
    // flushing it may make writes: again until a flush after the last commit finds nothing.
    if (!FlushDirty(now)) {
      return;
    }
    if (dirty_left_ || round + 1 == kMaxCommitRounds) {
      dirty_left_ = true;  // the next turn does not sleep, and commits what this one left
      return;
    }
  }
}

void Worker::Commit() noexcept {
  const std::uint64_t epoch = broker_.TakeWrites(writes_);
  if (epoch != 0) {
    committer_->Submit(index_, epoch, std::move(writes_));
  }
  writes_.Clear();  // moved from, or unused
}

void Worker::SubmitCredentialChecks() noexcept {
  broker_.TakeCredentialChecks(checks_);
  for (broker::CredentialCheck& check : checks_) {
    if (group_.verifier != nullptr) {
      group_.verifier->Submit(index_, std::move(check));
    } else {
      broker_.OnCredentialResult(check.id, false, Clock::now());  // nobody to check it: refused
    }
  }
  checks_.clear();
}

void Worker::SendMail() noexcept {
  broker_.TakeOutbox(letters_);
  for (broker::Letter& letter : letters_) {
    Mail mail;
    mail.envelope = std::move(letter.envelope);
    outgoing_[letter.to].push_back(std::move(mail));
  }
  letters_.clear();
  backlog_ = false;
  for (std::size_t w = 0; w < outgoing_.size(); ++w) {
    if (!outgoing_[w].empty()) {
      group_.mailboxes[w]->Post(outgoing_[w]);
      backlog_ = backlog_ || !outgoing_[w].empty();
    }
  }
}

bool Worker::HandOff(ConnectionId id) noexcept {
  const std::optional<std::uint16_t> to = broker_.HandoffTarget(id);
  Connection* c = connections_.Find(id);
  if (!to || c == nullptr) {
    return false;
  }
  Mail mail;
  mail.kind = Mail::Kind::kConnection;
  (void)loop_.Remove(c->fd.get());
  mail.fd = std::move(c->fd);
  mail.transport = std::move(c->transport);  // this thread is done with it
  mail.address = TakeAddress(id);            // the count in group_.caps goes along
  connections_.Erase(id);
  broker::Broker::Handoff handoff = broker_.TakeHandoff(id);
  mail.peer = std::move(handoff.peer);
  mail.cert_username = std::move(handoff.cert_username);
  mail.input = std::move(handoff.input);
  outgoing_[*to].push_back(std::move(mail));
  return true;
}

void Worker::TakeOver(Mail& mail, Instant now) noexcept {
  if (shutdown_deadline_) {
    if (group_.caps != nullptr) {
      group_.caps->Remove(mail.address);
    }
    return;  // stopping: the socket closes, and the client comes back to the next process
  }
  Arrival arrival{.fd = std::move(mail.fd),
                  .peer = std::move(mail.peer),
                  .transport = std::move(mail.transport),
                  .cert_username = std::move(mail.cert_username),
                  .address = mail.address};
  const std::optional<ConnectionId> id = Adopt(std::move(arrival), now);
  // Counted by the worker that accepted it, with the bytes it read (PublishStats).
  ++handed_in_.connections;
  // The bytes it brought, as if just read here (the CONNECT first).
  for (std::size_t at = 0; id && at < mail.input.size() && !broker_.ShouldClose(*id);) {
    const std::span<std::uint8_t> buffer = broker_.ReadBuffer(*id);
    const std::size_t n = std::min(buffer.size(), mail.input.size() - at);
    std::memcpy(buffer.data(), mail.input.data() + at, n);
    broker_.OnRead(*id, n, now);
    handed_in_.bytes += n;
    at += n;
  }
  // Plaintext its TLS session decrypted before the hand-over, and WebSocket bytes not decoded
  // yet, get no readiness event here; bytes of the transport's own may wait to be written.
  if (Connection* c = id ? connections_.Find(*id) : nullptr; c != nullptr && c->transport) {
    const Transport& t = *c->transport;
    if ((t.tls != nullptr && t.tls->buffered_input()) || (t.ws != nullptr && t.ws->has_input())) {
      if (ReadFrom(*id, *c, now) == ReadEnd::kGone) {
        return;
      }
    }
    if (Connection* again = connections_.Find(*id);
        again != nullptr && again->transport != nullptr && again->transport->has_output()) {
      (void)Flush(*id, *again, now);
    }
  }
}

std::optional<ConnectionId> Worker::Adopt(Arrival arrival, Instant now) noexcept {
  const ConnectionId id =
      broker_.Accept(std::move(arrival.peer), now, std::move(arrival.cert_username));
  TINYMQ_CHECK(id < kListenerTokenBase);
  if (auto added = loop_.Add(arrival.fd.get(), net::kReadable, id); !added) {
    spdlog::warn("cannot watch a new connection: {}", added.error());
    broker_.OnPeerClosed(id, now);
    broker_.Release(id);
    if (group_.caps != nullptr) {
      group_.caps->Remove(arrival.address);
    }
    return std::nullopt;  // the socket closes
  }
  Connection c;
  c.fd = std::move(arrival.fd);
  c.transport = std::move(arrival.transport);
  if (group_.caps != nullptr && group_.caps->per_address()) {
    addresses_[broker::SlotOf(id)] = arrival.address;
  }
  connections_.Insert(id, std::move(c));
  return id;
}

bool Worker::Admit(const std::string& peer, bool keyed, AddressKey& address, Instant now) noexcept {
  ConnectionCaps* caps = group_.caps.get();
  if (caps == nullptr) {
    return true;
  }
  if (caps->per_address()) {
    address = keyed ? ConnectionCaps::KeyOf(peer) : ConnectionCaps::kUnkeyed;
  }
  const ConnectionCaps::Verdict verdict = caps->TryAdd(address);
  if (verdict == ConnectionCaps::Verdict::kAdmitted) {
    return true;
  }
  // No CONNACK: the protocol version is not known yet, and reading the CONNECT would cost what
  // the cap is there to save.
  if (const std::optional<std::uint64_t> refused = caps->TakeReport(verdict, now)) {
    if (verdict == ConnectionCaps::Verdict::kOverTotal) {
      spdlog::warn(
          "limits.max_connections ({}) reached: refused {} connection(s) (the latest "
          "from {}) since the last report",
          caps->max_total(), *refused, peer);
    } else {
      spdlog::warn(
          "limits.max_connections_per_address ({}) reached: refused {} connection(s) "
          "(the latest from {}) since the last report",
          caps->max_per_address(), *refused, peer);
    }
  }
  return false;
}

void Worker::AcceptFrom(std::size_t index, Instant now) noexcept {
  if (index >= listeners_.size()) {
    return;  // closed earlier in this turn (shutdown)
  }
  ListenerEntry& listener = listeners_[index];
  for (int i = 0; i < kMaxAcceptsPerTurn; ++i) {
    net::AcceptResult r = listener.socket.Accept();
    switch (r.status) {
      case net::AcceptStatus::kAccepted: {
        Arrival arrival;
        // Behind a PROXY protocol listener, the address that counts is the header's.
        if (!Admit(r.peer, !listener.options.proxy_protocol, arrival.address, now)) {
          continue;  // over a cap: `r.fd` closes, unread
        }
        spdlog::debug("{}: new connection from {}", listener.socket.address(), r.peer);
        if (listener.tls != nullptr || listener.options.websocket ||
            listener.options.proxy_protocol) {
          arrival.transport = std::make_unique<Transport>();
          Transport& t = *arrival.transport;
          t.peer = r.peer;
          if (listener.tls != nullptr) {
            util::Result<std::unique_ptr<net::TlsSession>, std::string> session =
                listener.tls->NewSession(r.fd.get());
            if (!session) {
              spdlog::warn("{}: {}", listener.socket.address(), session.error());
              if (group_.caps != nullptr) {
                group_.caps->Remove(arrival.address);
              }
              continue;
            }
            t.tls = std::move(*session);
            t.username_from = listener.tls->config().username_from_cert;
          }
          if (listener.options.websocket) {
            t.ws = std::make_unique<WebSocketStream>(ws_limits_);
          }
          if (listener.options.proxy_protocol) {
            t.proxy = std::make_unique<net::ProxyHeaderParser>();
          }
        }
        arrival.fd = std::move(r.fd);
        arrival.peer = std::move(r.peer);
        (void)Adopt(std::move(arrival), now);
        continue;
      }
      case net::AcceptStatus::kWouldBlock: return;
      case net::AcceptStatus::kAborted: continue;
      case net::AcceptStatus::kNoResources:
      case net::AcceptStatus::kError:
        // Level-triggered: the pending connection would wake every turn; back off instead.
        spdlog::warn("{}: accept: {}; not accepting for {} ms", listener.socket.address(),
                     net::ErrnoText(r.error), kAcceptBackoff.count());
        PauseAccepting(now);
        return;
    }
  }
}

void Worker::OnConnectionEvent(ConnectionId id, net::EventMask events, Instant now) noexcept {
  Connection* c = connections_.Find(id);
  if (c == nullptr) {
    return;  // closed earlier in this turn
  }
  if (c->half_closed) {
    Discard(id, *c);
    return;
  }
  if (c->transport != nullptr && c->transport->proxy != nullptr) {
    if (!ReadProxyHeader(id, *c, now)) {
      return;  // waiting for the rest of the header, or refused (closed)
    }
    events |= net::kReadable;  // what the client sent behind the header
  }
  if (c->transport != nullptr) {
    if (!c->transport->tls_ready()) {
      if (!Handshake(id, *c, now)) {
        return;  // waiting for the socket, or failed (closed)
      }
      events |= net::kReadable;  // the client's first packets may have come with its Finished
    }
    if ((events & net::kWritable) != 0 && c->transport->read_wants_write) {
      c->transport->read_wants_write = false;
      events |= net::kReadable;
    }
  }
  if ((events & net::kWritable) != 0 && !Flush(id, *c, now)) {
    return;
  }
  if ((events & (net::kHangup | net::kSocketError)) != 0 && broker_.ShouldClose(id)) {
    Close(id);  // closing anyway, and its output can no longer be delivered
    return;
  }
  if ((events & (net::kReadable | net::kHangup | net::kSocketError)) == 0 || backlog_ ||
      (committer_ != nullptr && committer_->backlogged())) {
    // With a backlog of mail or of writes, input waits (level-triggered: it is still there).
    return;
  }
  const ReadEnd end = ReadFrom(id, *c, now);
  if (end == ReadEnd::kDrained && (events & (net::kHangup | net::kSocketError)) != 0) {
    // Hang-up or error with nothing left to read (recv() reported neither): the peer is gone.
    PeerGone(id, (events & net::kSocketError) != 0 ? "socket error" : "hang-up", now);
    return;
  }
  // The transport's own answers (the WebSocket upgrade's response, a pong) are not the broker's
  // output: the broker does not mark the connection dirty for them.
  if (end != ReadEnd::kGone) {
    if (Connection* again = connections_.Find(id);
        again != nullptr && again->transport != nullptr && again->transport->has_output()) {
      (void)Flush(id, *again, now);
    }
  }
}

Worker::ReadEnd Worker::ReadFrom(ConnectionId id, Connection& c, Instant now) noexcept {
  if (c.transport != nullptr) {
    if (c.transport->ws != nullptr) {
      return ReadWebSocket(id, c, now);
    }
    if (c.transport->tls != nullptr) {
      return ReadTls(id, c, now);
    }
  }
  std::size_t total = 0;
  while (total < kMaxReadPerTurn) {
    if (broker_.ShouldClose(id) || broker_.InputPaused(id)) {
      return ReadEnd::kMore;  // the broker is done with it, or wants no more for now
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

bool Worker::WriteOutput(ConnectionId id, Connection& c, Instant now) noexcept {
  if (c.transport != nullptr) {
    const Transport& t = *c.transport;
    if (t.proxy != nullptr || !t.tls_ready()) {
      return true;  // nothing to write before the PROXY header and the TLS handshake
    }
    if (t.ws != nullptr) {
      return WriteWebSocket(id, c, now);
    }
    if (t.tls != nullptr) {
      return WriteTls(id, c, now);
    }
  }
  std::array<broker::Broker::OutputChunk, net::kMaxGather> chunks;
  std::array<net::ByteRange, net::kMaxGather> pieces;
  for (;;) {
    // Everything pending, up to kMaxGather pieces (headers and shared payloads), in one sendmsg.
    const std::size_t n = broker_.Output(id, chunks);
    if (n == 0) {
      return true;
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
      return true;
    }
    PeerGone(id, net::ErrnoText(r.error), now);
    return false;
  }
}

bool Worker::Flush(ConnectionId id, Connection& c, Instant now) noexcept {
  if (!WriteOutput(id, c, now)) {
    return false;
  }
  const bool closing = broker_.ShouldClose(id);
  if (closing && QueueWebSocketClose(id, c) && !WriteOutput(id, c, now)) {
    return false;
  }
  // A TLS record the socket could not take yet, and WebSocket framing, are output too.
  const bool pending =
      broker_.OutputSize(id) != 0 || (c.transport != nullptr && c.transport->has_output());
  if (closing && !pending) {
    return HalfClose(id, c, now);
  }
  if (closing && !c.lingering) {
    c.lingering = true;
    lingering_.emplace_back(now + kCloseLinger, id);
  }
  // Once closing, input is no longer read, nor while the broker pauses it (a CONNECT waiting for
  // its password check, a publisher over its rate); hang-ups and errors are reported regardless.
  const bool reading = !closing && !broker_.InputPaused(id);
  const bool writing = pending || (c.transport != nullptr && c.transport->read_wants_write);
  SetInterest(id, c, (reading ? net::kReadable : 0) | (writing ? net::kWritable : 0));
  if (reading && c.transport != nullptr && c.transport->proxy == nullptr &&
      c.transport->tls_ready() &&
      ((c.transport->tls != nullptr && c.transport->tls->buffered_input()) ||
       (c.transport->ws != nullptr && c.transport->ws->has_input()))) {
    // Plaintext OpenSSL decrypted, or WebSocket bytes received, while the broker paused the
    // input get no readiness event: the broker wants input again, so read them now.
    return ReadFrom(id, c, now) != ReadEnd::kGone;
  }
  return true;
}

bool Worker::HalfClose(ConnectionId id, Connection& c, Instant now) noexcept {
  if (c.half_closed) {
    return true;
  }
  if (c.transport != nullptr && c.transport->tls != nullptr && c.transport->tls_ready()) {
    c.transport->tls->Close();  // close_notify, before the TCP stream's end
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

bool Worker::FlushDirty(Instant now) noexcept {
  for (int round = 0; round < kMaxFlushRounds; ++round) {
    const std::span<const ConnectionId> dirty = broker_.TakeDirty();
    if (dirty.empty()) {
      return round > 0;
    }
    for (const ConnectionId id : dirty) {
      if (Connection* c = connections_.Find(id); c != nullptr && !HandOff(id)) {
        (void)Flush(id, *c, now);
      }
    }
  }
  dirty_left_ = true;
  return true;
}

void Worker::PeerGone(ConnectionId id, std::string_view why, Instant now) noexcept {
  if (HandOff(id)) {
    return;  // its worker reads the end of the stream itself, after the bytes it brought
  }
  spdlog::debug("connection {}: {}", id, why);
  broker_.OnPeerClosed(id, now);
  Close(id);
}

AddressKey Worker::TakeAddress(ConnectionId id) noexcept {
  AddressKey key{};  // any key does without a per-address cap (ConnectionCaps::per_address)
  if (const auto it = addresses_.find(broker::SlotOf(id)); it != addresses_.end()) {
    key = it->second;
    addresses_.erase(it);
  }
  return key;
}

void Worker::Close(ConnectionId id) noexcept {
  Connection* c = connections_.Find(id);
  if (c == nullptr) {
    TINYMQ_DCHECK(false);  // closed twice: a bug
    return;
  }
  (void)loop_.Remove(c->fd.get());
  if (group_.caps != nullptr) {
    group_.caps->Remove(TakeAddress(id));
  }
  connections_.Erase(id);  // closes the socket (and frees its transport)
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
    if (connections_.Find(id) != nullptr) {
      spdlog::debug("connection {}: output not drained {} ms after close; dropping it", id,
                    kCloseLinger.count());
      Close(id);  // ShouldClose(id) holds, so Release is allowed
    }
  }
}

void Worker::PublishSysTopics(std::chrono::seconds interval, std::string version) {
  sys_interval_ = interval;
  sys_ = interval.count() != 0 ? std::make_unique<SysTopics>(std::move(version)) : nullptr;
}

void Worker::PublishStats(Instant now) noexcept {
  if (now < next_stats_ || group_.stats == nullptr) {
    return;
  }
  next_stats_ = now + kStatsInterval;
  const broker::Counters& k = broker_.counters();
  WorkerStats st;
  st.worker = index_;
  st.connections = connections_.size();
  const broker::Broker::SessionGauges& gauges = broker_.StepSessionGauges(kGaugeSlotsPerTick);
  st.clients_connected = gauges.clients_connected;
  st.sessions = broker_.session_count();
  st.subscriptions = broker_.subscription_count();
  st.queued_messages = gauges.queued;
  st.inflight_messages = gauges.inflight;
  // Less what connections handed over from other workers brought: counted there.
  st.connections_accepted = k.connections_accepted - handed_in_.connections;
  st.connections_closed = k.connections_closed;
  st.messages_received = k.received_by_qos;
  st.messages_sent = k.sent_by_qos;
  st.publish_bytes_received = k.publish_bytes_received;
  st.publish_bytes_sent = k.publish_bytes_sent;
  st.bytes_received = k.bytes_received - handed_in_.bytes;
  st.bytes_sent = k.bytes_sent;
  st.dropped_queue_full = k.dropped_queue_full;
  st.dropped_slow_qos0 = k.dropped_slow_qos0;
  st.dropped_offline_qos0 = k.dropped_offline_qos0;
  st.dropped_too_large = k.dropped_too_large;
  st.dropped_expired = k.dropped_expired;
  st.dropped_acl = k.dropped_acl;
  st.refused_auth = k.refused_auth;
  st.refused_tls = transport_counters_.refused_tls;
  st.refused_websocket = transport_counters_.refused_websocket;
  st.refused_proxy = transport_counters_.refused_proxy;
  st.protocol_errors = k.protocol_errors + transport_counters_.websocket_errors;
  st.rate_disconnects = k.rate_disconnects;
  st.denied_publish = k.denied_publish;
  st.denied_subscribe = k.denied_subscribe;
  st.loop_latency = loop_latency_;
  group_.stats->Publish(st);
  if (sys_ != nullptr && now >= next_sys_ && !shutdown_deadline_) {
    next_sys_ = now + sys_interval_;
    const ServerStats server = group_.server_stats ? group_.server_stats() : ServerStats{};
    for (const auto& [topic, payload] :
         sys_->Update(group_.stats->Read(), server, std::chrono::steady_clock::now())) {
      broker_.PublishSystem(topic, payload, /*retain=*/true, now);
    }
    dirty_left_ = true;  // what that made goes out on the next turn, which does not sleep
  }
}

void Worker::BeginShutdown(Instant now) noexcept {
  if (shutdown_deadline_) {
    return;
  }
  shutdown_deadline_ = now + kShutdownLinger;
  for (ListenerEntry& l : listeners_) {
    (void)loop_.Remove(l.socket.fd());
  }
  listeners_.clear();  // the sockets close: new connections are refused by the kernel
  accept_paused_until_.reset();
  broker_.BeginShutdown(now);  // DISCONNECT 0x8B to MQTT 5 clients; every connection closes
}

void Worker::PauseAccepting(Instant now) noexcept {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    (void)loop_.Modify(listeners_[i].socket.fd(), 0, kListenerTokenBase + i);
  }
  accept_paused_until_ = now + kAcceptBackoff;
}

void Worker::HousekeepAccepting(Instant now) noexcept {
  if (!accept_paused_until_ || *accept_paused_until_ > now) {
    return;
  }
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    (void)loop_.Modify(listeners_[i].socket.fd(), net::kReadable, kListenerTokenBase + i);
  }
  accept_paused_until_.reset();
}

std::optional<std::chrono::milliseconds> Worker::Timeout(Instant now) const noexcept {
  if (dirty_left_) {
    return std::chrono::milliseconds(0);
  }
  if (backlog_ || (committer_ != nullptr && committer_->backlogged())) {
    return kBacklogRetry;
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
  if (shutdown_deadline_ && connections_.size() != 0) {
    consider(*shutdown_deadline_);
  }
  if (group_.stats != nullptr) {
    consider(next_stats_);
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
