#include "tinymq/net/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "tinymq/net/errno_text.h"
#include "tinymq/util/check.h"

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

// A socket bound to an address, not yet listening.
struct BoundSocket {
  Fd fd;
  std::uint16_t port = 0;  // the bound port: the kernel's pick when 0 was asked for
};

// Creates a non-blocking socket with SO_REUSEADDR (and IPV6_V6ONLY for IPv6, SO_REUSEPORT when
// `reuse_port`) and binds it to ip:port. Errors name the address as asked for.
util::Result<BoundSocket, std::string> BindSocket(std::string_view ip, std::uint16_t port,
                                                  bool reuse_port) {
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
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    return util::Unexpected(where + ": setsockopt(SO_REUSEPORT): " + ErrnoText(errno));
  }
  if (addr.ss_family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
    return util::Unexpected(where + ": setsockopt(IPV6_V6ONLY): " + ErrnoText(errno));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0) {
    return util::Unexpected(where + ": " + BindErrorText(errno));
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
  return BoundSocket{std::move(fd), actual_port};
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
  auto bound = BindSocket(ip, port, /*reuse_port=*/false);
  if (!bound) {
    return util::Unexpected(bound.error());
  }
  if (::listen(bound->fd.get(), kBacklog) != 0) {
    return util::Unexpected(FormatAddress(ip, port) + ": listen: " + ErrnoText(errno));
  }
  return Listener(std::move(bound->fd), FormatAddress(ip, bound->port), bound->port);
}

util::Result<std::vector<Listener>, std::string> Listener::BindGroup(std::string_view ip,
                                                                     std::uint16_t port,
                                                                     std::size_t count) {
  TINYMQ_CHECK(count >= 1);
  std::vector<Listener> group;
  group.reserve(count);
  if (count == 1) {
    auto one = Bind(ip, port);
    if (!one) {
      return util::Unexpected(one.error());
    }
    group.push_back(std::move(*one));
    return group;
  }

  // The first socket fixes the port (the kernel's pick for port 0: one nothing is bound to).
  std::vector<BoundSocket> sockets;
  sockets.reserve(count);
  auto first = BindSocket(ip, port, /*reuse_port=*/true);
  if (!first) {
    return util::Unexpected(first.error());
  }
  const std::uint16_t actual_port = first->port;
  sockets.push_back(std::move(*first));

  // The probe (see the header). It must bind before any socket of the group listens: two
  // SO_REUSEADDR sockets collide only when the one bound first is listening, so the probe sees
  // past our own sockets and still collides with a listener of anyone else's.
  if (auto probe = BindSocket(ip, actual_port, /*reuse_port=*/false); !probe) {
    return util::Unexpected(probe.error());
  }  // the probe is closed here

  while (sockets.size() < count) {
    auto next = BindSocket(ip, actual_port, /*reuse_port=*/true);
    if (!next) {
      return util::Unexpected(next.error());
    }
    sockets.push_back(std::move(*next));
  }
  const std::string address = FormatAddress(ip, actual_port);
  for (BoundSocket& s : sockets) {
    if (::listen(s.fd.get(), kBacklog) != 0) {
      return util::Unexpected(address + ": listen: " + ErrnoText(errno));
    }
    group.push_back(Listener(std::move(s.fd), address, actual_port));
  }
  return group;
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
