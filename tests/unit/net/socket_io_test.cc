#include "tinymq/net/socket_io.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string_view>

#include "tinymq/net/fd.h"

namespace tinymq::net {
namespace {

struct Pair {
  Fd a;
  Fd b;
};

Pair SocketPair() {
  std::array<int, 2> fds{};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()), 0);
  return Pair{Fd(fds[0]), Fd(fds[1])};
}

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(SocketIoTest, SendThenReceive) {
  Pair p = SocketPair();
  const IoResult sent = Send(p.a.get(), Bytes("hello"));
  EXPECT_EQ(sent.status, IoStatus::kOk);
  EXPECT_EQ(sent.bytes, 5u);
  std::array<std::uint8_t, 16> buf{};
  const IoResult got = Receive(p.b.get(), buf);
  EXPECT_EQ(got.status, IoStatus::kOk);
  ASSERT_EQ(got.bytes, 5u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(buf.data()), got.bytes), "hello");
}

TEST(SocketIoTest, EmptySocketWouldBlock) {
  Pair p = SocketPair();
  std::array<std::uint8_t, 16> buf{};
  EXPECT_EQ(Receive(p.a.get(), buf).status, IoStatus::kWouldBlock);
}

TEST(SocketIoTest, PeerCloseIsEndOfStream) {
  Pair p = SocketPair();
  p.b.Reset();
  std::array<std::uint8_t, 16> buf{};
  EXPECT_EQ(Receive(p.a.get(), buf).status, IoStatus::kClosed);
}

TEST(SocketIoTest, SendToClosedPeerIsAnErrorNotASignal) {
  Pair p = SocketPair();
  p.b.Reset();
  const IoResult r = Send(p.a.get(), Bytes("x"));  // SIGPIPE would end the test binary here
  EXPECT_EQ(r.status, IoStatus::kError);
  EXPECT_EQ(r.error, EPIPE);
}

TEST(SocketIoTest, FullSocketWouldBlock) {
  Pair p = SocketPair();
  std::array<std::uint8_t, 65536> chunk{};
  IoResult r;
  for (int i = 0; i < 1000 && r.status == IoStatus::kOk; ++i) {
    r = Send(p.a.get(), chunk);
  }
  EXPECT_EQ(r.status, IoStatus::kWouldBlock);
}

}  // namespace
}  // namespace tinymq::net
