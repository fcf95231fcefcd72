#include "tinymq/net/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <utility>

namespace tinymq::net {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

std::array<int, 2> Pipe() {
  std::array<int, 2> fds{};
  EXPECT_EQ(::pipe2(fds.data(), O_CLOEXEC), 0);
  return fds;
}

TEST(FdTest, ClosesWhenDestroyed) {
  const auto [r, w] = Pipe();
  { const Fd owner(r); }
  EXPECT_FALSE(IsOpen(r));
  ::close(w);
}

TEST(FdTest, MoveTransfersOwnership) {
  const auto [r, w] = Pipe();
  Fd a(r);
  Fd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_EQ(b.get(), r);
  Fd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), r);
  EXPECT_TRUE(IsOpen(r));
  c = Fd(w);  // closes r, takes w
  EXPECT_FALSE(IsOpen(r));
  EXPECT_EQ(c.get(), w);
}

TEST(FdTest, ReleaseGivesUpWithoutClosing) {
  const auto [r, w] = Pipe();
  Fd owner(r);
  const int released = owner.Release();
  EXPECT_EQ(released, r);
  EXPECT_FALSE(owner);
  owner.Reset();
  EXPECT_TRUE(IsOpen(r));
  ::close(r);
  ::close(w);
}

}  // namespace
}  // namespace tinymq::net
