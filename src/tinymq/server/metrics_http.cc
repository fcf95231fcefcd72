#include "tinymq/server/metrics_http.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/event_loop.h"
#include "tinymq/net/fd.h"
#include "tinymq/net/listener.h"

namespace tinymq::server {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kWakeToken = 0;
constexpr std::uint64_t kListenerToken = 1;
constexpr std::uint64_t kFirstConnectionToken = 2;
// How long accepting pauses when the process is out of descriptors (the listener stays readable:
// level-triggered, it would spin otherwise).
constexpr std::chrono::milliseconds kAcceptBackoff{100};
constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";

// RFC 9110 §5.6.2: tchar, the characters of a method or a header name.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (const char c : s) {
    if (!IsTokenChar(c)) {
      return false;
    }
  }
  return true;
}

// Visible ASCII only: a request target has no spaces or controls (RFC 9112 §3.2).
bool IsTarget(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (const char c : s) {
    if (c <= ' ' || c == '\x7f') {  // char may be signed: bytes over 0x7f are below ' ' too
      return false;
    }
  }
  return true;
}

// A header field value: no control characters but horizontal tab (RFC 9110 §5.5).
bool IsFieldValue(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

// Where the head ends (the index just past its blank line), if it has ended. RFC 9112 §2.2 lets a
// recipient take a bare LF as a line terminator, so "\n\n" ends it too.
std::optional<std::size_t> HeadEnd(std::string_view in) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\n') {
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '\n') {
      return i + 2;
    }
    if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') {
      return i + 3;
    }
  }
  return std::nullopt;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    default: return "Error";
  }
}

// A whole response. `head_only`: the headers of what GET would answer, without the body.
std::string Response(int status, std::string_view content_type, std::string_view body,
                     bool head_only = false, std::string_view extra_header = {}) {
  std::string out;
  out.reserve(160 + (head_only ? 0 : body.size()));
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += ReasonPhrase(status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\nConnection: close\r\n";
  if (!extra_header.empty()) {
    out += extra_header;
    out += "\r\n";
  }
  out += "\r\n";
  if (!head_only) {
    out += body;
  }
  return out;
}

std::string ErrorResponse(int status, std::string_view extra_header = {}) {
  std::string body(ReasonPhrase(status));
  body += '\n';
  return Response(status, kTextContentType, body, /*head_only=*/false, extra_header);
}

// The answer to a complete head (the bytes up to and including its blank line).
std::string Answer(std::string_view head, const std::function<std::string()>& render) {
  // Lines without their terminators; the last (empty) line is the blank one.
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < head.size()) {
    std::size_t end = head.find('\n', start);
    if (end == std::string_view::npos) {
      end = head.size();
    }
    std::string_view line = head.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    lines.push_back(line);
    start = end + 1;
  }
  if (!lines.empty() && lines.back().empty()) {
    lines.pop_back();  // the blank line that ends the head
  }
  if (lines.empty()) {
    return ErrorResponse(400);
  }

  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3): single spaces.
  const std::string_view request_line = lines.front();
  const std::size_t sp1 = request_line.find(' ');
  const std::size_t sp2 =
      sp1 == std::string_view::npos ? std::string_view::npos : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return ErrorResponse(400);
  }
  const std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = request_line.substr(sp2 + 1);
  if (!IsToken(method) || !IsTarget(target) || (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return ErrorResponse(400);
  }
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const std::size_t colon = line.find(':');
    // No obsolete line folding (a line starting with whitespace has no token before its colon),
    // no whitespace between the name and the colon (RFC 9112 §5.1).
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon)) ||
        !IsFieldValue(line.substr(colon + 1))) {
      return ErrorResponse(400);
    }
  }

  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return ErrorResponse(405, "Allow: GET, HEAD");
  }
  // The absolute form (RFC 9112 §3.2.2), which a server must accept: keep its path.
  for (const std::string_view scheme :
       {std::string_view("http://"), std::string_view("https://")}) {
    if (target.starts_with(scheme)) {
      const std::size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path == "/metrics") {
    std::string body;
    try {
      body = render();
    } catch (...) {  // a bug in the renderer (or bad_alloc) costs this scrape, not the process
      return ErrorResponse(500);
    }
    return Response(200, kMetricsContentType, body, head_only);
  }
  if (path == "/") {
    return Response(200, kTextContentType, "tinymq: the metrics are at /metrics\n", head_only);
  }
  return ErrorResponse(404);
}

}  // namespace

// The server's thread: its loop, listener and connections.
class MetricsHttpServer::Loop {
 public:
  Loop(net::Listener listener, net::EventLoop loop, net::Fd wake,
       std::function<std::string()> render, std::chrono::milliseconds timeout)
      : listener_(std::move(listener)),
        loop_(std::move(loop)),
        wake_(std::move(wake)),
        render_(std::move(render)),
        timeout_(timeout) {}

  // Ends Run() (from any thread).
  void Wake() noexcept {
    const std::uint64_t one = 1;
    // An eventfd write fails only when its counter would overflow: it is awake then anyway.
    [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
  }

  util::Result<void, std::string> Register() {
    if (auto r = loop_.Add(wake_.get(), net::kReadable, kWakeToken); !r) {
      return r;
    }
    return loop_.Add(listener_.fd(), net::kReadable, kListenerToken);
  }

  // Serves until Wake(); then closes every connection (the listener goes with this object).
  void Run() noexcept {
    while (true) {
      auto ready = loop_.Wait(NextTimeout(Clock::now()));
      if (!ready) {
        spdlog::error("metrics {}: {}; the metrics listener stops answering", listener_.address(),
                      ready.error());
        break;
      }
      const Clock::time_point now = Clock::now();
      bool stop = false;
      for (const net::Event& e : *ready) {
        if (e.token == kWakeToken) {
          stop = true;
        } else if (e.token == kListenerToken) {
          AcceptAll(now);
        } else {
          OnConnection(e.token, e.events, now);
        }
      }
      if (stop) {
        break;
      }
      Expire(now);
    }
    connections_.clear();
  }

 private:
  enum class Phase : std::uint8_t {
    kReading,   // the head, until its blank line
    kWriting,   // the answer
    kDraining,  // answer written, sending side shut down: reading and dropping until EOF
  };
  struct Connection {
    net::Fd fd;
    std::uint64_t token = 0;  // its key in connections_ and in the epoll set
    Phase phase = Phase::kReading;
    net::EventMask interest = net::kReadable;
    std::string in;   // the head so far (at most kMaxHeadBytes)
    std::string out;  // the answer
    std::size_t written = 0;
    Clock::time_point deadline;
  };

  std::optional<std::chrono::milliseconds> NextTimeout(Clock::time_point now) const {
    std::optional<Clock::time_point> next = accept_paused_until_;
    // At most kMaxConnections: a scan is cheaper than keeping a heap.
    for (const auto& [token, c] : connections_) {
      if (!next || c.deadline < *next) {
        next = c.deadline;
      }
    }
    if (!next) {
      return std::nullopt;
    }
    if (*next <= now) {
      return std::chrono::milliseconds{0};
    }
    return std::chrono::ceil<std::chrono::milliseconds>(*next - now);
  }

  void AcceptAll(Clock::time_point now) {
    while (true) {
      net::AcceptResult a = listener_.Accept();
      switch (a.status) {
        case net::AcceptStatus::kAccepted: break;
        case net::AcceptStatus::kAborted: continue;
        case net::AcceptStatus::kWouldBlock: return;
        case net::AcceptStatus::kNoResources:
        case net::AcceptStatus::kError: PauseAccepting(now); return;
      }
      if (connections_.size() >= kMaxConnections) {
        continue;  // `a.fd` closes here: the client sees its connection end at once
      }
      const std::uint64_t token = next_token_++;
      if (!loop_.Add(a.fd.get(), net::kReadable, token)) {
        continue;
      }
      Connection c;
      c.fd = std::move(a.fd);
      c.token = token;
      c.deadline = now + timeout_;
      connections_.emplace(token, std::move(c));
    }
  }

  void PauseAccepting(Clock::time_point now) {
    if (loop_.Remove(listener_.fd())) {
      accept_paused_until_ = now + kAcceptBackoff;
    }
  }

  void Expire(Clock::time_point now) {
    if (accept_paused_until_ && *accept_paused_until_ <= now) {
      if (loop_.Add(listener_.fd(), net::kReadable, kListenerToken)) {
        accept_paused_until_.reset();
      } else {
        accept_paused_until_ = now + kAcceptBackoff;
      }
    }
    std::erase_if(connections_, [now](const auto& entry) { return entry.second.deadline <= now; });
  }

  void OnConnection(std::uint64_t token, net::EventMask events, Clock::time_point now) {
    const auto it = connections_.find(token);
    if (it == connections_.end()) {
      return;  // closed earlier in this turn
    }
    Connection& c = it->second;
    bool open = true;
    switch (c.phase) {
      case Phase::kReading: open = Read(c, now); break;
      case Phase::kWriting: open = Write(c, now); break;
      case Phase::kDraining: open = Drain(c); break;
    }
    // A reset or hang-up with nothing more to read or write: gone.
    if (open && (events & net::kSocketError) != 0) {
      open = false;
    }
    if (!open) {
      connections_.erase(it);  // closes the socket, which leaves the epoll set
    }
  }

  // Reads what the head has; answers once it is whole or too long. False once closed.
  bool Read(Connection& c, Clock::time_point now) {
    std::array<char, 4096> buf;
    while (c.in.size() < kMaxHeadBytes) {
      const std::size_t want = std::min(buf.size(), kMaxHeadBytes - c.in.size());
      const ssize_t n = ::recv(c.fd.get(), buf.data(), want, 0);
      if (n > 0) {
        const std::size_t old_size = c.in.size();
        c.in.append(buf.data(), static_cast<std::size_t>(n));
        // The terminator may straddle the old end: look from just before it.
        const std::size_t from = old_size >= 2 ? old_size - 2 : 0;
        if (const std::optional<std::size_t> end = HeadEnd(std::string_view(c.in).substr(from))) {
          return Respond(c, Answer(std::string_view(c.in).substr(0, from + *end), render_), now);
        }
        continue;
      }
      if (n == 0) {
        return false;  // the client gave up before its head ended
      }
      if (errno == EINTR) {
        continue;
      }
      return errno == EAGAIN;
    }
    return Respond(c, ErrorResponse(431), now);
  }

  bool Respond(Connection& c, std::string answer, Clock::time_point now) {
    c.out = std::move(answer);
    c.in = std::string();
    c.phase = Phase::kWriting;
    c.deadline = now + timeout_;
    return Write(c, now);
  }

  // Writes what is left of the answer; then shuts down the sending side. False once closed.
  bool Write(Connection& c, Clock::time_point now) {
    while (c.written < c.out.size()) {
      const ssize_t n =
          ::send(c.fd.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n >= 0) {
        c.written += static_cast<std::size_t>(n);
        continue;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        return SetInterest(c, net::kWritable);
      }
      return false;
    }
    if (::shutdown(c.fd.get(), SHUT_WR) != 0) {
      return false;
    }
    c.out = std::string();
    c.phase = Phase::kDraining;
    c.deadline = now + timeout_;
    return SetInterest(c, net::kReadable) && Drain(c);
  }

  // Reads and drops what the client still sends; false (close) at its EOF or an error.
  bool Drain(Connection& c) {
    std::array<char, 4096> buf;
    while (true) {
      const ssize_t n = ::recv(c.fd.get(), buf.data(), buf.size(), 0);
      if (n > 0) {
        continue;  // bounded by the deadline, not by a byte count
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return n < 0 && errno == EAGAIN;
    }
  }

  bool SetInterest(Connection& c, net::EventMask interest) {
    if (c.interest == interest) {
      return true;
    }
    if (!loop_.Modify(c.fd.get(), interest, c.token)) {
      return false;
    }
    c.interest = interest;
    return true;
  }

  net::Listener listener_;
  net::EventLoop loop_;
  net::Fd wake_;
  std::function<std::string()> render_;
  std::chrono::milliseconds timeout_;
  std::unordered_map<std::uint64_t, Connection> connections_;
  std::uint64_t next_token_ = kFirstConnectionToken;  // never reused: a stale event finds nothing
  std::optional<Clock::time_point> accept_paused_until_;
};

util::Result<std::unique_ptr<MetricsHttpServer>, std::string> MetricsHttpServer::Start(
    const std::string& bind, std::uint16_t port, std::function<std::string()> render,
    std::chrono::milliseconds timeout) {
  auto listener = net::Listener::Bind(bind, port);
  if (!listener) {
    return util::Unexpected(listener.error());
  }
  std::string address = listener->address();
  auto loop = net::EventLoop::Create();
  if (!loop) {
    return util::Unexpected(address + ": " + loop.error());
  }
  net::Fd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) {
    return util::Unexpected(address + ": eventfd: " + net::ErrnoText(errno));
  }
  auto state = std::make_unique<Loop>(std::move(*listener), std::move(*loop), std::move(wake),
                                      std::move(render), timeout);
  if (auto r = state->Register(); !r) {
    return util::Unexpected(address + ": " + r.error());
  }
  return std::make_unique<MetricsHttpServer>(Key{}, std::move(address), std::move(state));
}

MetricsHttpServer::MetricsHttpServer(Key, std::string address, std::unique_ptr<Loop> loop)
    : address_(std::move(address)), loop_(std::move(loop)) {
  thread_ = std::thread([state = loop_.get()] { state->Run(); });
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  const std::lock_guard<std::mutex> lock(stop_mu_);
  if (thread_.joinable()) {
    loop_->Wake();
    thread_.join();
  }
  loop_.reset();
}

}  // namespace tinymq::server
