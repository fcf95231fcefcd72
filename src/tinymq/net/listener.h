#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/net/fd.h"
#include "tinymq/util/result.h"

// Listener: a non-blocking TCP listening socket on one numeric IPv4 or IPv6 address, and the
// accept() of connections from it. SO_REUSEADDR is set, so a restart does not wait for old
// connections in TIME_WAIT; an IPv6 listener is IPv6 only (IPV6_V6ONLY), so "::" and "0.0.0.0"
// on one port are two listeners that do not collide.
//
// BindGroup() makes one listener per worker on the same address with SO_REUSEPORT, so the kernel
// spreads new connections over the workers' accept queues instead of waking them all for each.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  owns its socket. Accepted sockets are returned as owned Fds.
// Errors:    Bind() and BindGroup() return one line naming the address, e.g.
//            "127.0.0.1:1883: address already in use". Accept() never throws; its errno values
//            are sorted into AcceptStatus (EAGAIN and EINTR never leave this layer as errors).

namespace tinymq::net {

// "127.0.0.1:1883", or "[::1]:1883" for IPv6.
std::string FormatAddress(std::string_view ip, std::uint16_t port);

enum class AcceptStatus : std::uint8_t {
  kAccepted,     // `fd` and `peer` are set
  kWouldBlock,   // no connection pending
  kAborted,      // the connection went away before it was accepted: try the next one
  kNoResources,  // out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): back off
  kError,        // anything else; `error` holds errno
};

struct AcceptResult {
  AcceptStatus status = AcceptStatus::kWouldBlock;
  Fd fd;             // non-blocking, close-on-exec, TCP_NODELAY
  std::string peer;  // the client's address, as FormatAddress writes it
  int error = 0;
};

class Listener {
 public:
  // Creates, binds and listens. `ip` is numeric ("127.0.0.1", "::1", "0.0.0.0", "::"); port 0
  // picks a free port, which port() then reports.
  static util::Result<Listener, std::string> Bind(std::string_view ip, std::uint16_t port);

  // `count` listeners on one address and port, for one worker each. count == 1 is Bind(). For
  // count > 1 each socket has SO_REUSEPORT, and port 0 gives all of them the one free port the
  // first one gets (port() of each reports it).
  //
  // SO_REUSEPORT lets any process of the same user join the group and take a share of the
  // connections, and it would hide "address already in use" from a second broker started on the
  // same port. So before any socket listens, a probe socket without SO_REUSEPORT binds the
  // address: it collides with anything already listening there (a plain listener or another
  // group) but not with the group's own bound, not yet listening sockets, and its failure is
  // reported as Bind() reports it. Two groups started at the same instant on one port can both
  // pass the probe; the check is for the common case of a broker that is already running.
  //
  // REQUIRES: count >= 1.
  static util::Result<std::vector<Listener>, std::string> BindGroup(std::string_view ip,
                                                                    std::uint16_t port,
                                                                    std::size_t count);

  int fd() const noexcept { return fd_.get(); }
  // The bound address with its actual port, e.g. "127.0.0.1:1883".
  const std::string& address() const noexcept { return address_; }
  std::uint16_t port() const noexcept { return port_; }

  // Accepts one pending connection.
  AcceptResult Accept() noexcept;

 private:
  Listener(Fd fd, std::string address, std::uint16_t port)
      : fd_(std::move(fd)), address_(std::move(address)), port_(port) {}

  Fd fd_;
  std::string address_;
  std::uint16_t port_;
};

}  // namespace tinymq::net
