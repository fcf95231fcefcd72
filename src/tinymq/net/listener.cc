#include "tinymq/net/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "tinymq/net/errno_text.h"

namespace tinymq::net {

namespace {

// Most sockets waiting to be accepted; the kernel caps it at net.core.somaxconn.
constexpr int kBacklog = 4096;

std::string BindErrorText(int error) {
  switch (error) {
    case EACCES: return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
    case EADDRNOTAVAIL: return "address not available (it is not an address of this machine)";
    default: return ErrnoText(error);
  }
}

// The numeric address and port of `addr` (AF_INET or AF_INET6).
std::string FormatSockaddr(const sockaddr_storage& addr) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (addr.ss_family == AF_INET6) {
    sockaddr_in6 a6{};
    std::memcpy(&a6, &addr, sizeof a6);
    if (::inet_ntop(AF_INET6, &a6.sin6_addr, text.data(), text.size()) == nullptr) {
      return "?";
    }
    return FormatAddress(text.data(), ntohs(a6.sin6_port));
  }
  sockaddr_in a4{};
  std::memcpy(&a4, &addr, sizeof a4);
  if (::inet_ntop(AF_INET, &a4.sin_addr, text.data(), text.size()) == nullptr) {
    return "?";
  }
  return FormatAddress(text.data(), ntohs(a4.sin_port));
}

}  // namespace

std::string FormatAddress(std::string_view ip, std::uint16_t port) {
  std::string s;
  const bool v6 = ip.find(':') != std::string_view::npos;
  if (v6) {
    s += '[';
  }
  s += ip;
  if (v6) {
    s += ']';
  }
  s += ':';
  s += std::to_string(port);
  return s;
}

util::Result<Listener, std::string> Listener::Bind(std::string_view ip, std::uint16_t port) {
  const std::string where = FormatAddress(ip, port);
  const std::string ip_text(ip);
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  sockaddr_in a4{};
  sockaddr_in6 a6{};
  if (::inet_pton(AF_INET, ip_text.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    std::memcpy(&addr, &a4, sizeof a4);
    addr_len = sizeof a4;
  } else if (::inet_pton(AF_INET6, ip_text.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    std::memcpy(&addr, &a6, sizeof a6);
    addr_len = sizeof a6;
  } else {
    return util::Unexpected(where + ": not a numeric IPv4 or IPv6 address");
  }

  Fd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return util::Unexpected(where + ": socket: " + ErrnoText(errno));
  }
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    return util::Unexpected(where + ": setsockopt(SO_REUSEADDR): " + ErrnoText(errno));
  }
  if (addr.ss_family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
    return util::Unexpected(where + ": setsockopt(IPV6_V6ONLY): " + ErrnoText(errno));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0) {
    return util::Unexpected(where + ": " + BindErrorText(errno));
  }
  if (::listen(fd.get(), kBacklog) != 0) {
    return util::Unexpected(where + ": listen: " + ErrnoText(errno));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    return util::Unexpected(where + ": getsockname: " + ErrnoText(errno));
  }
  std::uint16_t actual_port = 0;
  if (bound.ss_family == AF_INET6) {
    std::memcpy(&a6, &bound, sizeof a6);
    actual_port = ntohs(a6.sin6_port);
  } else {
    std::memcpy(&a4, &bound, sizeof a4);
    actual_port = ntohs(a4.sin_port);
  }
  return Listener(std::move(fd), FormatAddress(ip, actual_port), actual_port);
}

AcceptResult Listener::Accept() noexcept {
  AcceptResult result;
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof peer;
  int fd = -1;
  do {
    fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    result.error = errno;
    switch (result.error) {
      case EAGAIN: result.status = AcceptStatus::kWouldBlock; break;
      // accept(2): pending network errors on the new socket are reported by accept() and mean
      // only that this connection failed.
      case ECONNABORTED:
      case EPROTO:
      case EPERM:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH: result.status = AcceptStatus::kAborted; break;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM: result.status = AcceptStatus::kNoResources; break;
      default: result.status = AcceptStatus::kError; break;
    }
    return result;
  }
  result.status = AcceptStatus::kAccepted;
  result.fd = Fd(fd);
  // MQTT packets are small and latency matters more than segment count: no Nagle. Failure only
  // costs latency, so it is not an error.
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  result.peer = FormatSockaddr(peer);
  return result;
}

}  // namespace tinymq::net
