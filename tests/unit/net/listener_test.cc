#include "tinymq/net/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <vector>

#include "tinymq/net/fd.h"

namespace tinymq::net {
namespace {

// Every test binds 127.0.0.1 only, on a port the kernel picks.
Listener BindLoopback() {
  auto l = Listener::Bind("127.0.0.1", 0);
  EXPECT_TRUE(l) << l.error();
  return std::move(*l);
}

// A blocking client socket connected to 127.0.0.1:port (loopback connect completes at once).
Fd Connect(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

TEST(ListenerTest, PortZeroReportsTheChosenPort) {
  const Listener l = BindLoopback();
  EXPECT_NE(l.port(), 0);
  EXPECT_EQ(l.address(), "127.0.0.1:" + std::to_string(l.port()));
}

TEST(ListenerTest, PortInUseIsNamedInTheError) {
  const Listener first = BindLoopback();
  const auto second = Listener::Bind("127.0.0.1", first.port());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(),
            "127.0.0.1:" + std::to_string(first.port()) + ": address already in use");
}

TEST(ListenerTest, HostNameIsRefused) {
  const auto l = Listener::Bind("localhost", 1883);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error(), "localhost:1883: not a numeric IPv4 or IPv6 address");
}

TEST(ListenerTest, AcceptWithNothingPendingWouldBlock) {
  Listener l = BindLoopback();
  EXPECT_EQ(l.Accept().status, AcceptStatus::kWouldBlock);
}

TEST(ListenerTest, AcceptedSocketIsNonBlockingWithNoDelay) {
  Listener l = BindLoopback();
  const Fd client = Connect(l.port());
  AcceptResult r = l.Accept();
  ASSERT_EQ(r.status, AcceptStatus::kAccepted);
  ASSERT_TRUE(r.fd);
  EXPECT_NE(::fcntl(r.fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(r.fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  ASSERT_EQ(::getsockopt(r.fd.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_NE(nodelay, 0);

  sockaddr_in local{};
  socklen_t local_len = sizeof local;
  ASSERT_EQ(::getsockname(client.get(), reinterpret_cast<sockaddr*>(&local), &local_len), 0);
  EXPECT_EQ(r.peer, "127.0.0.1:" + std::to_string(ntohs(local.sin_port)));
  EXPECT_EQ(l.Accept().status, AcceptStatus::kWouldBlock);
}

// SO_REUSEPORT as getsockopt reports it.
bool ReusePort(const Listener& l) {
  int on = 0;
  socklen_t len = sizeof on;
  EXPECT_EQ(::getsockopt(l.fd(), SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
  return on != 0;
}

std::string InUse(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port) + ": address already in use";
}

TEST(ListenerTest, GroupOfOneIsAPlainListener) {
  auto group = Listener::BindGroup("127.0.0.1", 0, 1);
  ASSERT_TRUE(group) << group.error();
  ASSERT_EQ(group->size(), 1U);
  EXPECT_NE((*group)[0].port(), 0);
  EXPECT_FALSE(ReusePort((*group)[0]));
}

TEST(ListenerTest, GroupOnPortZeroSharesOnePort) {
  auto group = Listener::BindGroup("127.0.0.1", 0, 3);
  ASSERT_TRUE(group) << group.error();
  ASSERT_EQ(group->size(), 3U);
  const std::uint16_t port = (*group)[0].port();
  EXPECT_NE(port, 0);
  for (const Listener& l : *group) {
    EXPECT_EQ(l.port(), port);
    EXPECT_EQ(l.address(), "127.0.0.1:" + std::to_string(port));
    EXPECT_TRUE(ReusePort(l));
  }
  EXPECT_NE((*group)[0].fd(), (*group)[1].fd());
}

TEST(ListenerTest, GroupAcceptsEveryConnectionToItsPort) {
  auto group = Listener::BindGroup("127.0.0.1", 0, 3);
  ASSERT_TRUE(group) << group.error();
  constexpr std::size_t kClients = 64;
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    clients.push_back(Connect((*group)[0].port()));
  }
  std::size_t total = 0;
  std::size_t sockets_used = 0;
  for (Listener& l : *group) {
    std::size_t accepted = 0;
    while (l.Accept().status == AcceptStatus::kAccepted) {
      ++accepted;
    }
    total += accepted;
    sockets_used += accepted > 0 ? 1 : 0;
  }
  EXPECT_EQ(total, kClients);
  // The kernel picks the socket by a hash of the connection's addresses and ports, so the split
  // is not even; all 64 on one of the three would take a hash that ignores the client's port.
  EXPECT_GE(sockets_used, 2U);
}

TEST(ListenerTest, GroupOnAFreeExplicitPortBinds) {
  std::uint16_t port = 0;
  {
    const Listener probe = BindLoopback();
    port = probe.port();
  }  // free again: no connection was made, so nothing lingers in TIME_WAIT
  auto group = Listener::BindGroup("127.0.0.1", port, 2);
  ASSERT_TRUE(group) << group.error();
  ASSERT_EQ(group->size(), 2U);
  EXPECT_EQ((*group)[1].port(), port);
}

TEST(ListenerTest, GroupOnAPortHeldByAListenerIsRefused) {
  const Listener held = BindLoopback();
  const auto group = Listener::BindGroup("127.0.0.1", held.port(), 3);
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error(), InUse(held.port()));
}

TEST(ListenerTest, GroupOnAPortHeldByAGroupIsRefused) {
  auto held = Listener::BindGroup("127.0.0.1", 0, 3);
  ASSERT_TRUE(held) << held.error();
  const std::uint16_t port = (*held)[0].port();
  // Same user, so SO_REUSEPORT alone would let this group in; the probe refuses it.
  const auto group = Listener::BindGroup("127.0.0.1", port, 3);
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error(), InUse(port));
  const auto one = Listener::BindGroup("127.0.0.1", port, 1);
  ASSERT_FALSE(one);
  EXPECT_EQ(one.error(), InUse(port));
}

TEST(ListenerTest, ListenerOnAPortHeldByAGroupIsRefused) {
  auto held = Listener::BindGroup("127.0.0.1", 0, 3);
  ASSERT_TRUE(held) << held.error();
  const std::uint16_t port = (*held)[0].port();
  const auto l = Listener::Bind("127.0.0.1", port);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error(), InUse(port));
}

TEST(ListenerTest, GroupWithAHostNameIsRefused) {
  const auto group = Listener::BindGroup("localhost", 1883, 3);
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error(), "localhost:1883: not a numeric IPv4 or IPv6 address");
}

TEST(ListenerTest, FormatAddressBracketsIpv6) {
  EXPECT_EQ(FormatAddress("127.0.0.1", 1883), "127.0.0.1:1883");
  EXPECT_EQ(FormatAddress("::1", 1883), "[::1]:1883");
  EXPECT_EQ(FormatAddress("::", 0), "[::]:0");
}

}  // namespace
}  // namespace tinymq::net
