#include "tinymq/server/metrics_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tinymq/net/fd.h"

// The server is a thread of its own and these tests talk to it over loopback sockets, so they
// wait (with deadlines far above what a sanitizer build needs); the suite name has "Thread" in it
// so that the TSan stage of scripts/run-tests.sh runs it.

namespace tinymq::server {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kPatience{10'000};  // how long a test waits for what must happen

std::uint16_t PortOf(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// A blocking IPv4 loopback client socket connected to `address` ("127.0.0.1:N").
net::Fd Connect(const std::string& address) {
  net::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(PortOf(address));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{};
  tv.tv_sec = kPatience.count() / 1000;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
  EXPECT_EQ(rc, 0) << std::strerror(errno);
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Everything the server sends until it closes (a reset after some bytes ends it too).
std::string ReadToEnd(int fd) {
  std::string out;
  char buf[16384];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    EXPECT_FALSE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "no EOF in time";
    return out;
  }
}

std::string Fetch(const std::string& address, std::string_view request) {
  const net::Fd fd = Connect(address);
  EXPECT_TRUE(SendAll(fd.get(), request));
  return ReadToEnd(fd.get());
}

struct Response {
  std::string status_line;
  std::vector<std::string> headers;
  std::string body;

  bool HasHeader(std::string_view line) const {
    for (const std::string& h : headers) {
      if (h == line) {
        return true;
      }
    }
    return false;
  }
};

Response Split(const std::string& raw) {
  Response r;
  const std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) {
    r.status_line = raw;
    return r;
  }
  std::size_t start = 0;
  bool first = true;
  while (start < end) {
    std::size_t eol = raw.find("\r\n", start);
    const std::string line = raw.substr(start, eol - start);
    if (first) {
      r.status_line = line;
      first = false;
    } else {
      r.headers.push_back(line);
    }
    start = eol + 2;
  }
  r.body = raw.substr(end + 4);
  return r;
}

class MetricsHttpThreadTest : public ::testing::Test {
 protected:
  void StartServer(milliseconds timeout = MetricsHttpServer::kDefaultTimeout) {
    auto started = MetricsHttpServer::Start(
        "127.0.0.1", 0,
        [this] {
          ++renders_;
          const std::lock_guard<std::mutex> lock(body_mu_);
          return body_;
        },
        timeout);
    ASSERT_TRUE(started.has_value()) << started.error();
    server_ = std::move(*started);
    address_ = server_->address();
  }

  // The body render() returns; set it with SetBody() once the server runs.
  void SetBody(std::string body) {
    const std::lock_guard<std::mutex> lock(body_mu_);
    body_ = std::move(body);
  }

  std::mutex body_mu_;
  std::string body_ = "# HELP tinymq_x x\n# TYPE tinymq_x gauge\ntinymq_x 1\n";
  std::atomic<int> renders_{0};
  std::unique_ptr<MetricsHttpServer> server_;
  std::string address_;
};

TEST_F(MetricsHttpThreadTest, AddressHasTheRealPort) {
  StartServer();
  EXPECT_TRUE(address_.starts_with("127.0.0.1:")) << address_;
  EXPECT_NE(PortOf(address_), 0);
}

TEST_F(MetricsHttpThreadTest, GetMetricsAnswersWithTheRenderedText) {
  StartServer();
  const Response r = Split(Fetch(address_, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.HasHeader("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  EXPECT_TRUE(r.HasHeader("Content-Length: " + std::to_string(body_.size())));
  EXPECT_TRUE(r.HasHeader("Connection: close"));
  EXPECT_EQ(r.body, body_);
  EXPECT_EQ(renders_.load(), 1);
}

TEST_F(MetricsHttpThreadTest, HeadHasTheLengthAndNoBody) {
  StartServer();
  const Response r = Split(Fetch(address_, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(r.HasHeader("Content-Length: " + std::to_string(body_.size())));
  EXPECT_EQ(r.body, "");
}

TEST_F(MetricsHttpThreadTest, QueryBareLineFeedsAndAbsoluteFormAreAccepted) {
  StartServer();
  EXPECT_EQ(Split(Fetch(address_, "GET /metrics?x=1 HTTP/1.1\r\n\r\n")).body, body_);
  EXPECT_EQ(Split(Fetch(address_, "GET /metrics HTTP/1.0\n\n")).status_line.substr(0, 12),
            "HTTP/1.1 200");
  EXPECT_EQ(Split(Fetch(address_, "GET http://h:1/metrics HTTP/1.1\r\n\r\n")).body, body_);
}

TEST_F(MetricsHttpThreadTest, RootPointsAtMetrics) {
  StartServer();
  const Response r = Split(Fetch(address_, "GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(r.body.find("/metrics"), std::string::npos);
  EXPECT_EQ(renders_.load(), 0);
}

TEST_F(MetricsHttpThreadTest, OtherPathsAre404) {
  StartServer();
  EXPECT_EQ(Split(Fetch(address_, "GET /metricsx HTTP/1.1\r\n\r\n")).status_line,
            "HTTP/1.1 404 Not Found");
  EXPECT_EQ(Split(Fetch(address_, "GET /favicon.ico HTTP/1.1\r\n\r\n")).status_line,
            "HTTP/1.1 404 Not Found");
}

TEST_F(MetricsHttpThreadTest, OtherMethodsAre405) {
  StartServer();
  const Response r =
      Split(Fetch(address_, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_TRUE(r.HasHeader("Allow: GET, HEAD"));
  EXPECT_EQ(renders_.load(), 0);
}

TEST_F(MetricsHttpThreadTest, MalformedRequestsAre400) {
  StartServer();
  for (const std::string_view request : {
           std::string_view("\x01\x02garbage\r\n\r\n"),
           std::string_view("GET /metrics\r\n\r\n"),             // HTTP/0.9
           std::string_view("GET /metrics HTTP/2.0\r\n\r\n"),    // not 1.x
           std::string_view("GET  /metrics HTTP/1.1\r\n\r\n"),   // two spaces
           std::string_view("GET /metrics HTTP/1.1 x\r\n\r\n"),  // a fourth part
           std::string_view("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"),
           std::string_view("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n"),  // space before colon
           std::string_view("GET /metrics HTTP/1.1\r\n folded\r\n\r\n"),
           std::string_view("GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n"),
           std::string_view("G(T /metrics HTTP/1.1\r\n\r\n"),
           std::string_view("GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n"),
           std::string_view("\r\n\r\n"),
       }) {
    EXPECT_EQ(Split(Fetch(address_, request)).status_line, "HTTP/1.1 400 Bad Request")
        << ::testing::PrintToString(std::string(request));
  }
  const std::string with_nul("GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n", 33);
  EXPECT_EQ(Split(Fetch(address_, with_nul)).status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(renders_.load(), 0);
}

TEST_F(MetricsHttpThreadTest, AHeadOver8KiBIs431) {
  StartServer();
  std::string request = "GET /metrics HTTP/1.1\r\nX-Filler: ";
  request.append(MetricsHttpServer::kMaxHeadBytes, 'a');
  request += "\r\n\r\n";
  EXPECT_EQ(Split(Fetch(address_, request)).status_line,
            "HTTP/1.1 431 Request Header Fields Too Large");

  // Exactly at the limit is still a head.
  std::string fits = "GET /metrics HTTP/1.1\r\nX-Filler: ";
  fits.append(MetricsHttpServer::kMaxHeadBytes - fits.size() - 4, 'a');
  fits += "\r\n\r\n";
  ASSERT_EQ(fits.size(), MetricsHttpServer::kMaxHeadBytes);
  EXPECT_EQ(Split(Fetch(address_, fits)).body, body_);
}

TEST_F(MetricsHttpThreadTest, AHeadSentByteByByteIsAnswered) {
  StartServer();
  const net::Fd fd = Connect(address_);
  for (const char c : std::string_view("GET /metrics HTTP/1.1\r\n\r\n")) {
    ASSERT_TRUE(SendAll(fd.get(), std::string_view(&c, 1)));
    std::this_thread::sleep_for(milliseconds{1});
  }
  EXPECT_EQ(Split(ReadToEnd(fd.get())).body, body_);
}

TEST_F(MetricsHttpThreadTest, ALargeBodyIsWrittenWhole) {
  body_.assign(std::size_t{8} << 20, 'x');  // far more than a socket buffer
  StartServer();
  const net::Fd fd = Connect(address_);
  ASSERT_TRUE(SendAll(fd.get(), "GET /metrics HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds{50});  // let the server fill the socket and wait
  const Response r = Split(ReadToEnd(fd.get()));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body.size(), body_.size());
}

TEST_F(MetricsHttpThreadTest, ARenderThatThrowsIs500) {
  auto started = MetricsHttpServer::Start(
      "127.0.0.1", 0, []() -> std::string { throw std::runtime_error("broken"); });
  ASSERT_TRUE(started.has_value()) << started.error();
  EXPECT_EQ(Split(Fetch((*started)->address(), "GET /metrics HTTP/1.1\r\n\r\n")).status_line,
            "HTTP/1.1 500 Internal Server Error");
  // The server goes on.
  EXPECT_EQ(Split(Fetch((*started)->address(), "GET / HTTP/1.1\r\n\r\n")).status_line,
            "HTTP/1.1 200 OK");
}

TEST_F(MetricsHttpThreadTest, ASilentClientIsClosedAfterTheTimeout) {
  StartServer(milliseconds{200});
  const Clock::time_point start = Clock::now();
  const net::Fd fd = Connect(address_);
  EXPECT_EQ(ReadToEnd(fd.get()), "");  // closed without an answer
  const Clock::duration took = Clock::now() - start;
  EXPECT_GE(took, milliseconds{190});
  EXPECT_LT(took, kPatience);
}

TEST_F(MetricsHttpThreadTest, AnUnfinishedHeadIsClosedAfterTheTimeout) {
  StartServer(milliseconds{200});
  const net::Fd fd = Connect(address_);
  ASSERT_TRUE(SendAll(fd.get(), "GET /metrics HTTP/1.1\r\nHost"));
  EXPECT_EQ(ReadToEnd(fd.get()), "");
}

TEST_F(MetricsHttpThreadTest, AClientThatNeverReadsIsClosedAfterTheTimeout) {
  body_.assign(std::size_t{32} << 20, 'x');  // cannot fit in the socket buffers
  StartServer(milliseconds{200});
  const net::Fd fd = Connect(address_);
  ASSERT_TRUE(SendAll(fd.get(), "GET /metrics HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(milliseconds{600});
  // The server gave up: what it had written arrives, then the end, well short of the body.
  const std::string got = ReadToEnd(fd.get());
  EXPECT_LT(got.size(), body_.size());
  // And it still serves others.
  SetBody("ok\n");
  EXPECT_EQ(Split(Fetch(address_, "GET /metrics HTTP/1.1\r\n\r\n")).body, "ok\n");
}

TEST_F(MetricsHttpThreadTest, ConnectionsOverTheLimitAreClosedAtOnce) {
  StartServer();
  std::vector<net::Fd> idle;
  for (std::size_t i = 0; i < MetricsHttpServer::kMaxConnections; ++i) {
    idle.push_back(Connect(address_));
  }
  // The accept queue is first in, first out: this one is accepted after the 64 and closed.
  const net::Fd extra = Connect(address_);
  EXPECT_EQ(ReadToEnd(extra.get()), "");

  // Once one of the 64 is gone, a new connection is served again.
  idle.pop_back();
  const Clock::time_point deadline = Clock::now() + kPatience;
  bool served = false;
  while (!served && Clock::now() < deadline) {
    served = Split(Fetch(address_, "GET /metrics HTTP/1.1\r\n\r\n")).body == body_;
    if (!served) {
      std::this_thread::sleep_for(milliseconds{10});
    }
  }
  EXPECT_TRUE(served);
}

TEST_F(MetricsHttpThreadTest, StopWhileAClientIsConnected) {
  StartServer(milliseconds{60'000});  // a Stop() that waited for the client would take a minute
  const net::Fd fd = Connect(address_);
  ASSERT_TRUE(SendAll(fd.get(), "GET /metr"));
  // Make sure the server has accepted it (a request on another connection is answered after).
  EXPECT_EQ(Split(Fetch(address_, "GET / HTTP/1.1\r\n\r\n")).status_line, "HTTP/1.1 200 OK");
  const Clock::time_point start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, kPatience);
  EXPECT_EQ(ReadToEnd(fd.get()), "");
  // The port is closed.
  net::Fd again(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(PortOf(address_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(again.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  server_->Stop();  // idempotent; the destructor stops once more
}

TEST_F(MetricsHttpThreadTest, StopFromAnotherThreadWhileOneIsStopping) {
  StartServer();
  std::thread other([this] { server_->Stop(); });
  server_->Stop();
  other.join();
}

TEST_F(MetricsHttpThreadTest, ABusyPortIsAnErrorNamingTheAddress) {
  StartServer();
  auto second = MetricsHttpServer::Start("127.0.0.1", PortOf(address_), [] { return ""; });
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error(), address_ + ": address already in use");
}

TEST_F(MetricsHttpThreadTest, ABadAddressIsAnError) {
  auto started = MetricsHttpServer::Start("localhost", 0, [] { return ""; });
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error(), "localhost:0: not a numeric IPv4 or IPv6 address");
}

TEST_F(MetricsHttpThreadTest, ServesOnIpv6Loopback) {
  auto started = MetricsHttpServer::Start("::1", 0, [] { return std::string("v6\n"); });
  if (!started.has_value()) {
    GTEST_SKIP() << "no IPv6 loopback here: " << started.error();
  }
  const std::string address = (*started)->address();
  EXPECT_TRUE(address.starts_with("[::1]:")) << address;
  net::Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(PortOf(address));
  a.sin6_addr = in6addr_loopback;
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  ASSERT_TRUE(SendAll(fd.get(), "GET /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(Split(ReadToEnd(fd.get())).body, "v6\n");
}

}  // namespace
}  // namespace tinymq::server
