#include "tinymq/net/signal_fd.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace tinymq::net {
namespace {

bool Blocked(int signal) {
  sigset_t mask;
  sigemptyset(&mask);
  EXPECT_EQ(::pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
  return sigismember(&mask, signal) == 1;
}

TEST(SignalFdTest, DeliversABlockedSignalAsData) {
  ASSERT_FALSE(Blocked(SIGUSR1));
  {
    auto s = SignalFd::Create({SIGUSR1});
    ASSERT_TRUE(s) << s.error();
    EXPECT_TRUE(Blocked(SIGUSR1));
    EXPECT_EQ(s->Read(), std::nullopt);
    ASSERT_EQ(::raise(SIGUSR1), 0);  // would end the test binary if it were not blocked
    EXPECT_EQ(s->Read(), SIGUSR1);
    EXPECT_EQ(s->Read(), std::nullopt);
  }
  EXPECT_FALSE(Blocked(SIGUSR1));  // restored
}

TEST(SignalFdTest, PendingSignalIsDrainedBeforeUnblocking) {
  {
    auto s = SignalFd::Create({SIGUSR2});
    ASSERT_TRUE(s) << s.error();
    ASSERT_EQ(::raise(SIGUSR2), 0);
  }  // not read: destruction must consume it, or unblocking would deliver it and end the binary
  EXPECT_FALSE(Blocked(SIGUSR2));
}

TEST(SignalFdTest, MoveCarriesTheRestore) {
  auto s = SignalFd::Create({SIGUSR1});
  ASSERT_TRUE(s) << s.error();
  {
    SignalFd moved = std::move(*s);
    EXPECT_TRUE(Blocked(SIGUSR1));
  }
  EXPECT_FALSE(Blocked(SIGUSR1));
}

}  // namespace
}  // namespace tinymq::net
