#include "tinymq/net/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

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

TEST(ListenerTest, FormatAddressBracketsIpv6) {
  EXPECT_EQ(FormatAddress("127.0.0.1", 1883), "127.0.0.1:1883");
  EXPECT_EQ(FormatAddress("::1", 1883), "[::1]:1883");
  EXPECT_EQ(FormatAddress("::", 0), "[::]:0");
}

}  // namespace
}  // namespace tinymq::net
