#include "tinymq/net/event_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "tinymq/net/fd.h"

namespace tinymq::net {
namespace {

using std::chrono::milliseconds;

struct Pair {
  Fd a;
  Fd b;
};

Pair SocketPair() {
  std::array<int, 2> fds{};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()), 0);
  return Pair{Fd(fds[0]), Fd(fds[1])};
}

EventLoop NewLoop() {
  auto loop = EventLoop::Create();
  EXPECT_TRUE(loop) << loop.error();
  return std::move(*loop);
}

// The events of one non-blocking turn.
std::vector<Event> Turn(EventLoop& loop) {
  std::vector<Event> seen;
  const auto n = loop.RunOnce(milliseconds(0), [&seen](std::uint64_t token, EventMask events) {
    seen.push_back(Event{token, events});
  });
  EXPECT_TRUE(n) << n.error();
  return seen;
}

TEST(EventLoopTest, QuietDescriptorGivesNoEvent) {
  EventLoop loop = NewLoop();
  Pair p = SocketPair();
  ASSERT_TRUE(loop.Add(p.a.get(), kReadable, 7));
  EXPECT_TRUE(Turn(loop).empty());
}

TEST(EventLoopTest, ReportsReadableWithItsToken) {
  EventLoop loop = NewLoop();
  Pair p = SocketPair();
  ASSERT_TRUE(loop.Add(p.a.get(), kReadable, 0xabcdef0123ULL));
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
  const std::vector<Event> events = Turn(loop);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token, 0xabcdef0123ULL);
  EXPECT_EQ(events[0].events, kReadable);
  // Level-triggered: still readable while the byte is unread.
  EXPECT_EQ(Turn(loop).size(), 1u);
}

TEST(EventLoopTest, ModifyChangesInterestAndToken) {
  EventLoop loop = NewLoop();
  Pair p = SocketPair();
  ASSERT_TRUE(loop.Add(p.a.get(), kReadable, 1));
  EXPECT_TRUE(Turn(loop).empty());  // nothing to read
  ASSERT_TRUE(loop.Modify(p.a.get(), kReadable | kWritable, 2));
  std::vector<Event> events = Turn(loop);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token, 2u);
  EXPECT_EQ(events[0].events, kWritable);
  ASSERT_TRUE(loop.Modify(p.a.get(), 0, 3));
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
  EXPECT_TRUE(Turn(loop).empty());  // interest 0: readable is not reported
}

TEST(EventLoopTest, RemoveStopsReports) {
  EventLoop loop = NewLoop();
  Pair p = SocketPair();
  ASSERT_TRUE(loop.Add(p.a.get(), kReadable, 1));
  ASSERT_EQ(::write(p.b.get(), "x", 1), 1);
  ASSERT_TRUE(loop.Remove(p.a.get()));
  EXPECT_TRUE(Turn(loop).empty());
}

TEST(EventLoopTest, PeerCloseIsReadableAndHangupOnceBothSidesAreShut) {
  EventLoop loop = NewLoop();
  Pair p = SocketPair();
  ASSERT_TRUE(loop.Add(p.a.get(), kReadable, 1));
  p.b.Reset();
  const std::vector<Event> events = Turn(loop);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].events & kReadable, 0u);  // read() returns 0: end of stream
  EXPECT_NE(events[0].events & kHangup, 0u);
}

TEST(EventLoopTest, ErrorsNameTheCall) {
  EventLoop loop = NewLoop();
  const auto r = loop.Modify(12345, kReadable, 1);  // not registered, not even open
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "epoll_ctl: bad file descriptor");
}

TEST(EventLoopTest, TimeoutReturnsWithoutEvents) {
  EventLoop loop = NewLoop();
  const auto ready = loop.Wait(milliseconds(1));
  ASSERT_TRUE(ready) << ready.error();
  EXPECT_TRUE(ready->empty());
}

}  // namespace
}  // namespace tinymq::net
