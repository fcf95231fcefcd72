#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/net/event_loop.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/listener.h"
#include "tinymq/net/signal_fd.h"
#include "tinymq/util/result.h"

// Worker: one event loop driving one broker core. It accepts connections from its listeners,
// moves bytes between their sockets and the broker, and runs the broker's timers, until a stop
// signal arrives.
//
// One loop turn:
//   1. epoll_wait, with the broker's NextDeadline() as the timeout;
//   2. per ready socket: accept (listeners); read into ReadBuffer()/OnRead() until the socket is
//      drained; write pending output (writable); OnPeerClosed() on EOF, reset or hang-up;
//   3. OnTimer() when the deadline has passed;
//   4. flush every connection TakeDirty() names: write its Output() pieces (its own bytes and
//      shared payloads, up to 64 per sendmsg) until none is left or the socket is full (then
//      wait for writability, and stop waiting once it drained); a connection whose output is
//      written and that ShouldClose() is half-closed (shutdown, input read and dropped until EOF
//      or 5 s), then closed and Release()d.
//
// Nothing is global: one Worker per core can run side by side, each with its own listeners
// (SO_REUSEPORT) and broker.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  owns its listeners, its connections' sockets and its broker. The SignalFd passed to
//            Run() must outlive the call.
// Errors:    Create() and Run() return one line of text. Run() fails only when the loop itself
//            does (epoll); a failing connection is closed and logged, and the loop goes on.

namespace tinymq::server {

class Worker {
 public:
  // A connection whose output cannot drain is closed this long after the broker asked to close it.
  static constexpr std::chrono::milliseconds kCloseLinger{5000};
  // How long accepting pauses when the process is out of descriptors or memory.
  static constexpr std::chrono::milliseconds kAcceptBackoff{100};
  // Per connection and turn, so that one fast sender cannot starve the others (level-triggered:
  // the rest is read on the next turn).
  static constexpr std::size_t kMaxReadPerTurn = std::size_t{1} << 20;
  static constexpr int kMaxAcceptsPerTurn = 64;

  static util::Result<std::unique_ptr<Worker>, std::string> Create(
      std::vector<net::Listener> listeners, const broker::Limits& limits);

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  // For Create() only (make_unique needs a public constructor; Key keeps it private in effect).
  Worker(Key, net::EventLoop loop, std::vector<net::Listener> listeners,
         const broker::Limits& limits);

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Runs loop turns until one of `stop`'s signals arrives; then closes every connection.
  util::Result<void, std::string> Run(net::SignalFd& stop) noexcept;

  const broker::Broker& broker() const { return broker_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Connection {
    net::Fd fd;
    net::EventMask interest = net::kReadable;
    bool lingering = false;  // ShouldClose() with output still to write, or half closed
    // Everything is written and the sending side is shut down: what the peer still sends is read
    // and dropped until its EOF (or the linger time), so that closing does not reset the
    // connection and destroy the last packets (a DISCONNECT, a refusing CONNACK) in transit.
    bool half_closed = false;
  };
  enum class ReadEnd : std::uint8_t { kDrained, kMore, kGone };

  void AcceptFrom(std::size_t index, broker::Instant now) noexcept;
  void OnConnectionEvent(broker::ConnectionId id, net::EventMask events,
                         broker::Instant now) noexcept;
  ReadEnd ReadFrom(broker::ConnectionId id, const Connection& c, broker::Instant now) noexcept;
  // Reads and drops the input of a half-closed connection; closes it at EOF or on an error.
  void Discard(broker::ConnectionId id, Connection& c) noexcept;
  // The broker is done with `id` and its output is written: shut down the sending side and wait
  // for the peer's EOF (closes at once when that fails). False once closed.
  bool HalfClose(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  // Writes what the broker has for `id`; closes it when the broker is done. False once closed.
  bool Flush(broker::ConnectionId id, Connection& c, broker::Instant now) noexcept;
  void FlushDirty(broker::Instant now) noexcept;
  void PeerGone(broker::ConnectionId id, std::string_view why, broker::Instant now) noexcept;
  void Close(broker::ConnectionId id) noexcept;
  void SetInterest(broker::ConnectionId id, Connection& c, net::EventMask interest) noexcept;
  void PauseAccepting(broker::Instant now) noexcept;
  void HousekeepAccepting(broker::Instant now) noexcept;
  void CloseExpiredLingerers(broker::Instant now) noexcept;
  std::optional<std::chrono::milliseconds> Timeout(broker::Instant now) const noexcept;

  // Worker-owned.
  net::EventLoop loop_;
  std::vector<net::Listener> listeners_;
  broker::Broker broker_;
  std::unordered_map<broker::ConnectionId, Connection> connections_;
  std::deque<std::pair<broker::Instant, broker::ConnectionId>> lingering_;  // by deadline
  std::optional<broker::Instant> accept_paused_until_;
  bool dirty_left_ = false;  // FlushDirty stopped early: do not sleep on the next wait
};

}  // namespace tinymq::server
