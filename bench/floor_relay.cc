// floor_relay: the least an epoll MQTT broker can do for QoS 0, to measure the system-call floor
// under the QoS 0 CPU targets of issue #5 (docs/benchmarks.md). Not a broker: it answers CONNECT,
// SUBSCRIBE and PINGREQ, and forwards every QoS 0 PUBLISH, byte for byte, to every connection that
// has subscribed (no topic matching, no sessions, no limits). Its loop is tinymq's: level-triggered
// epoll, one recv per readable socket until a short read, every whole packet handled, then one
// send per connection with output at the end of the turn.
//
// Usage: tinymq_floor_relay PORT   (listens on 127.0.0.1; stops on SIGINT/SIGTERM)
// Run tinymq-bench against it with --broker-pid to read its CPU per delivery.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <unordered_map>
#include <vector>

namespace {

volatile std::sig_atomic_t stop = 0;

struct Conn {
  int fd = -1;
  bool subscriber = false;
  bool dirty = false;
  std::vector<std::uint8_t> in;
  std::vector<std::uint8_t> out;
};

// Length of the whole packet at the start of `p` (n bytes), 0 when incomplete.
std::size_t PacketSize(const std::uint8_t* p, std::size_t n) {
  std::size_t len = 0;
  int shift = 0;
  for (std::size_t i = 1; i < n && i <= 4; ++i) {
    len |= static_cast<std::size_t>(p[i] & 0x7F) << shift;
    shift += 7;
    if ((p[i] & 0x80) == 0) {
      return n >= i + 1 + len ? i + 1 + len : 0;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tinymq_floor_relay PORT\n");
    return 2;
  }
  std::signal(SIGINT, [](int) { stop = 1; });
  std::signal(SIGTERM, [](int) { stop = 1; });
  std::signal(SIGPIPE, SIG_IGN);
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 1024) != 0) {
    std::perror("tinymq_floor_relay: bind");
    return 1;
  }
  const int ep = ::epoll_create1(0);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  std::unordered_map<int, Conn> conns;
  std::vector<int> subscribers;
  std::vector<int> dirty;
  std::array<epoll_event, 256> events;
  std::array<std::uint8_t, 65536> buf;
  while (stop == 0) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int e = 0; e < n; ++e) {
      const int fd = events[e].data.fd;
      if (fd == lfd) {
        for (;;) {
          const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
          if (c < 0) {
            break;
          }
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns[c].fd = c;
        }
        continue;
      }
      Conn& c = conns[fd];
      const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) {
        ::close(fd);
        std::erase(subscribers, fd);
        conns.erase(fd);
        continue;
      }
      c.in.insert(c.in.end(), buf.data(), buf.data() + r);
      std::size_t at = 0;
      while (const std::size_t size = PacketSize(c.in.data() + at, c.in.size() - at)) {
        const std::uint8_t* p = c.in.data() + at;
        auto reply = [&](Conn& to, std::initializer_list<std::uint8_t> bytes) {
          to.out.insert(to.out.end(), bytes);
          if (!to.dirty) {
            to.dirty = true;
            dirty.push_back(to.fd);
          }
        };
        switch (p[0] >> 4) {
          case 1: reply(c, {0x20, 0x02, 0x00, 0x00}); break;  // CONNECT -> CONNACK
          case 8: {                                           // SUBSCRIBE -> SUBACK, QoS 0
            std::size_t i = 1;
            while ((p[i] & 0x80) != 0) {
              ++i;
            }
            const std::size_t vh = i + 1;
            std::vector<std::uint8_t> codes;
            for (std::size_t k = vh + 2; k + 2 < size;) {
              const std::size_t flen = (std::size_t{p[k]} << 8) | p[k + 1];
              k += 2 + flen + 1;
              codes.push_back(0);
            }
            reply(c, {0x90, static_cast<std::uint8_t>(2 + codes.size()), p[vh], p[vh + 1]});
            c.out.insert(c.out.end(), codes.begin(), codes.end());
            if (!c.subscriber) {
              c.subscriber = true;
              subscribers.push_back(fd);
            }
            break;
          }
          case 3:  // PUBLISH (QoS 0): to every subscriber, as it came
            for (int s : subscribers) {
              Conn& to = conns[s];
              to.out.insert(to.out.end(), p, p + size);
              if (!to.dirty) {
                to.dirty = true;
                dirty.push_back(s);
              }
            }
            break;
          case 12: reply(c, {0xD0, 0x00}); break;  // PINGREQ -> PINGRESP
          default: break;
        }
        at += size;
      }
      c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(at));
    }
    for (int fd : dirty) {  // one send per connection per turn
      auto it = conns.find(fd);
      if (it == conns.end()) {
        continue;
      }
      Conn& c = it->second;
      c.dirty = false;
      const ssize_t w = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (w > 0) {
        c.out.erase(c.out.begin(), c.out.begin() + w);  // (a floor: no EPOLLOUT handling)
      }
    }
    dirty.clear();
  }
  return 0;
}
