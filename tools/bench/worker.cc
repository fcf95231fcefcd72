#include "tools/bench/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "tools/bench/clock.h"
#include "tools/bench/connection.h"

// The socket side of a Worker: the epoll loop, connecting, reading into the decoder, flushing
// output once per turn, closing. The MQTT side is in worker_protocol.cc.

namespace tinymq::bench {
namespace {

// Set-ups (TCP connect, CONNECT, SUBSCRIBE) in progress at once per thread: enough to connect
// thousands per second, few enough not to overflow a broker's listen backlog.
constexpr std::uint32_t kMaxPendingSetUps = 200;
// Sent bytes are dropped from the front of an output buffer once this many have accumulated.
constexpr std::size_t kCompactAfter = 256 * 1024;
// Reads per readable connection per turn (level-triggered: the rest comes next turn).
constexpr int kReadsPerTurn = 4;
constexpr std::size_t kPublisherReadChunk = 4096;        // acknowledgements only
constexpr std::size_t kSubscriberReadChunk = 64 * 1024;  // deliveries
constexpr int kMaxEvents = 512;
constexpr std::int64_t kMaxSleepNs = 10'000'000;  // control flags are seen within 10 ms

std::string ErrnoText(int err) { return std::strerror(err); }

std::uint64_t RandomSeed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ device();
}

mqtt::Decoder::Options DecoderOptions(Role role) {
  mqtt::Decoder::Options o;
  o.read_chunk = role == Role::kPublisher ? kPublisherReadChunk : kSubscriberReadChunk;
  return o;
}

}  // namespace

Worker::Worker(const Options& options, const BrokerAddress& broker, Control& control,
               std::vector<ConnSpec> specs)
    : options_(options),
      broker_(broker),
      control_(control),
      specs_(std::move(specs)),
      keepalive_ns_(std::int64_t{options.keepalive_s} * kNsPerSecond),
      rate_per_publisher_(options.rate > 0 && options.publishers > 0
                              ? options.rate / options.publishers / kNsPerSecond
                              : 0.0),
      payload_(options.payload, static_cast<std::uint8_t>('x')),
      ws_random_(RandomSeed()),
      keepalive_scan_ns_(keepalive_ns_ > 0 ? std::min(kNsPerSecond, keepalive_ns_ / 4)
                                           : kNsPerSecond) {
  conns_.reserve(specs_.size());
  for (std::uint32_t i = 0; i < specs_.size(); ++i) {
    conns_.push_back(std::make_unique<Connection>(i, specs_[i], DecoderOptions(specs_[i].role),
                                                  options_.version));
    conns_.back()->keepalive_ns = keepalive_ns_;
    if (specs_[i].role == Role::kPublisher) {
      publishers_.push_back(conns_.back().get());
    }
  }
}

Worker::~Worker() {
  for (const auto& c : conns_) {
    if (c->fd >= 0) {
      ::close(c->fd);
    }
  }
  if (epoll_fd_ >= 0) {
    ::close(epoll_fd_);
  }
}

std::string Worker::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

std::string Worker::lost_reason() const {
  std::lock_guard lock(mu_);
  return lost_reason_;
}

LatencyHistogram Worker::LatencySnapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

void Worker::Fail(const std::string& message) {
  {
    std::lock_guard lock(mu_);
    if (error_.empty()) {
      error_ = message;
    }
  }
  control_.abort.store(true);
}

void Worker::Snapshot() {
  std::lock_guard lock(mu_);
  snapshot_ = latency_;
}

void Worker::Run() noexcept {
  // Sleeps end within 1 us of their deadline instead of the default 50 us slack: pacing at a
  // fixed rate depends on it.
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    Fail("epoll_create1: " + ErrnoText(errno));
    return;
  }
  Loop();
  Shutdown();
}

// One turn: wait for events (or the next due time), read and handle every readable connection,
// start more connects, publish what is due, send keep-alives, then flush every connection with
// output: one write per connection per turn.
void Worker::Loop() {
  std::array<epoll_event, kMaxEvents> events{};
  bool have_pwait2 = true;
  std::int64_t timeout_ns = 0;
  while (!control_.stop.load(std::memory_order_acquire) &&
         !control_.abort.load(std::memory_order_relaxed)) {
    int n = -1;
    if (have_pwait2) {
      const timespec ts{.tv_sec = timeout_ns / kNsPerSecond, .tv_nsec = timeout_ns % kNsPerSecond};
      n = ::epoll_pwait2(epoll_fd_, events.data(), kMaxEvents, &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {  // kernels before 5.11: millisecond sleeps
        have_pwait2 = false;
      }
    }
    if (!have_pwait2) {
      const auto ms = static_cast<int>((timeout_ns + 999'999) / 1'000'000);
      n = ::epoll_wait(epoll_fd_, events.data(), kMaxEvents, ms);
    }
    if (n < 0 && errno != EINTR) {
      Fail("epoll_wait: " + ErrnoText(errno));
      return;
    }
    for (int e = 0; e < n; ++e) {
      const epoll_event& ev = events[static_cast<std::size_t>(e)];
      OnEvent(*conns_[ev.data.u32], ev.events);
    }

    const std::int64_t now = NowNs();
    turn_now_ns_ = now;
    StartConnects();
    std::int64_t wake = now + kMaxSleepNs;
    const std::int64_t start = control_.start_ns.load(std::memory_order_acquire);
    if (start != 0) {
      const std::int64_t send_end = control_.send_end_ns.load(std::memory_order_relaxed);
      const std::int64_t measure_start = start + control_.warmup_ns;
      if (now < start) {
        wake = std::min(wake, start);
      } else if (now < send_end) {
        wake = std::min({wake, Publish(now, start), send_end});
        if (now < measure_start) {
          wake = std::min(wake, measure_start);
        }
      } else if (options_.scenario == Scenario::kConn && !final_ping_done_) {
        FinalPing();
      }
    }
    if (now >= next_keepalive_scan_ns_) {
      KeepAlive(now);
      next_keepalive_scan_ns_ = now + keepalive_scan_ns_;
    }
    if (now >= next_snapshot_ns_) {
      Snapshot();
      next_snapshot_ns_ = now + kNsPerSecond / 2;
    }
    Flush();
    timeout_ns = std::max<std::int64_t>(0, wake - now);
  }
}

void Worker::StartConnects() {
  while (pending_ < kMaxPendingSetUps && next_connect_ < conns_.size() &&
         !control_.abort.load(std::memory_order_relaxed)) {
    ++pending_;
    StartConnect(*conns_[next_connect_++]);
  }
}

void Worker::StartConnect(Connection& c) {
  const int fd = ::socket(broker_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    Fail("socket: " + ErrnoText(err) +
         (err == EMFILE || err == ENFILE ? " (too many open files: raise ulimit -n)" : ""));
    return;
  }
  c.fd = fd;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&broker_.addr), broker_.len);
  if (r != 0 && errno != EINPROGRESS) {
    Fail("cannot connect to " + broker_.text + ": " + ErrnoText(errno));
    return;
  }
  epoll_event ev{};
  ev.data.u32 = c.index;
  ev.events = r == 0 ? EPOLLIN : EPOLLOUT;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    Fail("epoll_ctl: " + ErrnoText(errno));
    return;
  }
  if (r == 0) {
    OnTcpConnected(c);
  } else {
    c.state = Connection::State::kConnecting;
    c.write_interest = true;
  }
}

void Worker::OnTcpConnected(Connection& c) {
  if (options_.websocket) {
    StartUpgrade(c);
  } else {
    OnConnected(c);
  }
}

void Worker::SetWriteInterest(Connection& c, bool want) {
  if (c.write_interest == want || c.fd < 0) {
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  ev.data.u32 = c.index;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
    Fail("epoll_ctl: " + ErrnoText(errno));
    return;
  }
  c.write_interest = want;
}

void Worker::OnEvent(Connection& c, std::uint32_t events) {
  if (c.state == Connection::State::kClosed) {
    return;
  }
  if (c.state == Connection::State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      Fail("cannot connect to " + broker_.text + ": " + ErrnoText(err));
      return;
    }
    if ((events & EPOLLOUT) != 0) {
      SetWriteInterest(c, false);
      OnTcpConnected(c);
    }
    return;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
    OnReadable(c);
  }
  if (c.state != Connection::State::kClosed && (events & EPOLLOUT) != 0) {
    FlushOne(c);
  }
}

void Worker::Close(Connection& c, const std::string& why) {
  if (c.state == Connection::State::kClosed) {
    return;
  }
  if (c.state != Connection::State::kReady) {
    Fail(c.spec.client_id + ": " + why);
  } else if (!control_.stop.load(std::memory_order_relaxed)) {
    WorkerCounters::Add(counters_.lost);
    std::lock_guard lock(mu_);
    if (lost_reason_.empty()) {
      lost_reason_ = c.spec.client_id + ": " + why;
    }
  }
  // Its unfinished flows will never complete: the drain must not wait for them.
  std::uint64_t open = 0;
  for (const std::uint8_t s : c.id_state) {
    open += (s & kIdInFlight) != 0 ? 1 : 0;
  }
  WorkerCounters::Sub(counters_.inflight, open);
  c.id_state.clear();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  c.state = Connection::State::kClosed;
  c.out.clear();
  c.out_done = 0;
  c.ws.reset();
}

void Worker::OnReadable(Connection& c) {
  for (int r = 0; r < kReadsPerTurn; ++r) {
    const std::span<std::uint8_t> room = c.decoder.PrepareRead();
    const ssize_t n = ::recv(c.fd, room.data(), room.size(), 0);
    if (n > 0) {
      const std::int64_t now = NowNs();  // the arrival time of every packet in these bytes
      std::size_t mqtt_bytes = static_cast<std::size_t>(n);
      if (c.ws) {
        const std::optional<std::size_t> unwrapped =
            Unwrap(c, room.first(static_cast<std::size_t>(n)));
        if (!unwrapped) {
          return;
        }
        mqtt_bytes = *unwrapped;
      }
      c.decoder.CommitRead(mqtt_bytes);
      for (;;) {
        auto next = c.decoder.Next();
        if (!next) {
          Close(c,
                "cannot decode what the broker sent: " + std::string(mqtt::Describe(next.error())));
          return;
        }
        if (!*next) {
          break;
        }
        OnPacket(c, **next, now);
        if (c.state == Connection::State::kClosed) {
          return;
        }
      }
      if (static_cast<std::size_t>(n) < room.size()) {
        break;
      }
      continue;
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
      std::string why = n == 0 ? "the broker closed the connection" : "read: " + ErrnoText(errno);
      if (c.state == Connection::State::kUpgrading) {
        // What a port that does not speak WebSocket does: it closes or resets the connection.
        why += " instead of answering the WebSocket upgrade (not a WebSocket listener?)";
      }
      Close(c, why);
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    break;  // EAGAIN
  }
  // Idle connections hold no read buffer between packets (15,000 of them would otherwise hold
  // 1 GB); busy ones keep theirs.
  if ((c.spec.role == Role::kIdle || c.spec.role == Role::kIdleSubscriber) &&
      c.decoder.buffered() == 0) {
    c.decoder.Release();
  }
}

void Worker::Flush() {
  for (Connection* c : dirty_) {
    c->dirty = false;
    if (!c->write_interest) {  // else EPOLLOUT flushes it
      FlushOne(*c);
    }
  }
  dirty_.clear();
}

// With --websocket what is written is ws->wire: the MQTT bytes gathered in `out` since the last
// flush become one frame first (FrameOutput).
void Worker::FlushOne(Connection& c) {
  if (c.ws) {
    FrameOutput(c);
  }
  std::vector<std::uint8_t>& buf = c.ws ? c.ws->wire : c.out;
  std::size_t& done = c.ws ? c.ws->wire_done : c.out_done;
  while (c.state != Connection::State::kClosed && done < buf.size()) {
    const ssize_t n = ::send(c.fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      c.last_write_ns = turn_now_ns_;  // keep-alive needs no finer time
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (done >= kCompactAfter) {
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(done));
        done = 0;
      }
      SetWriteInterest(c, true);
      return;
    }
    Close(c, "write: " + ErrnoText(errno));
    return;
  }
  if (c.state == Connection::State::kClosed) {
    return;
  }
  buf.clear();
  done = 0;
  SetWriteInterest(c, false);
}

void Worker::Shutdown() {
  const bool polite = !control_.abort.load(std::memory_order_relaxed);
  for (const auto& cp : conns_) {
    Connection& c = *cp;
    if (c.fd < 0) {
      continue;
    }
    if (polite && c.state == Connection::State::kReady) {
      SendDisconnect(c);
      std::vector<std::uint8_t>* buf = &c.out;
      std::size_t done = c.out_done;
      if (c.ws) {  // DISCONNECT, then a close frame (RFC 6455 §5.5.1)
        FrameOutput(c);
        const std::array<std::uint8_t, 2> normal = {net::kWsCloseNormal >> 8,
                                                    net::kWsCloseNormal & 0xff};
        AppendWsControl(net::WsOpcode::kClose, normal, ws_random_, c.ws->wire);
        buf = &c.ws->wire;
        done = c.ws->wire_done;
      }
      if (!c.write_interest) {  // best effort: one write, no waiting
        ::send(c.fd, buf->data() + done, buf->size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    ::close(c.fd);
    c.fd = -1;
    c.state = Connection::State::kClosed;
  }
  Snapshot();
}

}  // namespace tinymq::bench
