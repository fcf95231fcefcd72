#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tinymq/util/result.h"

// MetricsHttpServer: the minimal HTTP/1.1 server behind [metrics]: GET /metrics answers with what
// `render` returns (the Prometheus text format, metrics.h), on a thread of its own with one epoll
// loop, so that a slow or hostile scraper costs the workers nothing.
//
// What it answers, always with `Connection: close` (one request per connection; the connection is
// closed once the answer is written):
//   GET or HEAD /metrics  200, Content-Type: text/plain; version=0.0.4; charset=utf-8, the body
//                         from render() (HEAD: its Content-Length, no body)
//   GET or HEAD /         200, a line pointing at /metrics
//   another path          404
//   another method        405 (with Allow: GET, HEAD)
//   a malformed head      400 (request line not `METHOD /path HTTP/1.x`, a header line without
//                         a colon, control characters)
//   a head over 8 KiB     431
//   render() throws       500
// A query string (`/metrics?x=1`) is ignored; a request body is never read.
//
// Limits: a connection gets `timeout` to send its head and then `timeout` to take the answer;
// past either it is closed without an answer. At most kMaxConnections are open at once; one
// more is closed as soon as it is accepted. After the answer the sending side is shut down and
// what the client still sends is read and dropped until it closes (or the timeout), so that the
// close does not reset the connection and destroy the answer in transit.
//
// Threading: Thread-safe. Start() starts the thread; Stop() (from any thread, any number of
//            times; the destructor calls it) wakes it through an eventfd and joins it. render()
//            runs on the server's thread, so it must be safe to call from there (StatsBoard::Read
//            is).
// Lifetime:  owns the listening socket, the connections and the thread; keeps `render` until
//            destroyed.
// Errors:    Start() returns one line naming the address, as net::Listener::Bind does
//            ("127.0.0.1:9883: address already in use"), or the setup call that failed. A
//            failing connection is closed; a failure of the loop itself (epoll) ends the thread
//            and is logged: the listener stays open but unanswered until Stop().

namespace tinymq::server {

class MetricsHttpServer {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};
  static constexpr std::size_t kMaxHeadBytes = 8192;
  static constexpr std::size_t kMaxConnections = 64;

  // Binds `bind` (a numeric IPv4 or IPv6 address) on `port` (0: any free port; address() tells
  // which) and starts serving.
  static util::Result<std::unique_ptr<MetricsHttpServer>, std::string> Start(
      const std::string& bind, std::uint16_t port, std::function<std::string()> render,
      std::chrono::milliseconds timeout = kDefaultTimeout);

 private:
  class Loop;
  struct Key {
    explicit Key() = default;
  };

 public:
  // For Start() only (make_unique needs a public constructor; Key keeps it private in effect).
  MetricsHttpServer(Key, std::string address, std::unique_ptr<Loop> loop);
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer();

  // The bound address with its actual port: "127.0.0.1:9883", "[::1]:9883".
  std::string address() const { return address_; }

  // Stops the thread, then closes every connection and the listening socket; returns once the
  // thread has ended. Idempotent.
  void Stop();

 private:
  // Const after construction.
  std::string address_;
  // Guarded by stop_mu_. The loop belongs to the thread while it runs; Stop() wakes it through
  // its eventfd, joins the thread, then destroys it.
  std::mutex stop_mu_;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace tinymq::server
