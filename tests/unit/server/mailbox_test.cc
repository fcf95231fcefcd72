#include "tinymq/server/mailbox.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace tinymq::server {
namespace {

template <typename T>
std::unique_ptr<Mailbox<T>> MakeMailbox(std::size_t capacity) {
  auto box = Mailbox<T>::Create(capacity);
  EXPECT_TRUE(box) << box.error();
  return std::move(*box);
}

bool Readable(int fd, int timeout_ms = 0) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

TEST(MailboxTest, ZeroCapacityIsRefused) {
  const auto box = Mailbox<int>::Create(0);
  ASSERT_FALSE(box);
  EXPECT_EQ(box.error(), "mailbox: capacity must be at least 1");
}

TEST(MailboxTest, DrainReturnsPostsInOrder) {
  auto box = MakeMailbox<int>(16);
  std::vector<int> first{1, 2, 3};
  std::vector<int> second{4, 5};
  EXPECT_EQ(box->Post(first), 3U);
  EXPECT_EQ(box->Post(second), 2U);
  EXPECT_TRUE(first.empty());
  EXPECT_TRUE(second.empty());
  EXPECT_FALSE(box->empty());

  std::vector<int> out;
  box->Drain(out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(box->empty());
}

TEST(MailboxTest, DrainAppendsAfterWhatOutHolds) {
  auto box = MakeMailbox<int>(16);
  std::vector<int> items{3, 4};
  ASSERT_EQ(box->Post(items), 2U);
  std::vector<int> out{1, 2};
  box->Drain(out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
}

TEST(MailboxTest, FullMailboxTakesWhatFitsAndLeavesTheRest) {
  auto box = MakeMailbox<int>(4);
  std::vector<int> items{1, 2, 3, 4, 5, 6};
  EXPECT_EQ(box->Post(items), 4U);
  EXPECT_EQ(items, (std::vector<int>{5, 6}));
  EXPECT_EQ(box->Post(items), 0U);  // full: nothing moves, nothing is lost
  EXPECT_EQ(items, (std::vector<int>{5, 6}));

  std::vector<int> out;
  box->Drain(out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(box->Post(items), 2U);
  EXPECT_TRUE(items.empty());
  out.clear();
  box->Drain(out);
  EXPECT_EQ(out, (std::vector<int>{5, 6}));
}

TEST(MailboxTest, MoveOnlyItemsAreMoved) {
  auto box = MakeMailbox<std::unique_ptr<std::string>>(4);
  std::vector<std::unique_ptr<std::string>> items;
  items.push_back(std::make_unique<std::string>("a"));
  items.push_back(std::make_unique<std::string>("b"));
  ASSERT_EQ(box->Post(items), 2U);
  std::vector<std::unique_ptr<std::string>> out;
  box->Drain(out);
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(*out[0], "a");
  EXPECT_EQ(*out[1], "b");
}

TEST(MailboxTest, FdIsReadableFromFirstPostUntilDrain) {
  auto box = MakeMailbox<int>(16);
  EXPECT_FALSE(Readable(box->fd()));
  std::vector<int> items{1};
  ASSERT_EQ(box->Post(items), 1U);
  EXPECT_TRUE(Readable(box->fd()));

  std::vector<int> out;
  box->Drain(out);
  EXPECT_FALSE(Readable(box->fd()));
  box->Drain(out);  // nothing queued, eventfd already reset: still fine
  EXPECT_EQ(out, (std::vector<int>{1}));

  items = {2};
  ASSERT_EQ(box->Post(items), 1U);
  EXPECT_TRUE(Readable(box->fd()));
}

TEST(MailboxTest, OnlyThePostToAnEmptyMailboxWakes) {
  auto box = MakeMailbox<int>(16);
  for (int i = 0; i < 3; ++i) {
    std::vector<int> items{i};
    ASSERT_EQ(box->Post(items), 1U);
  }
  // Three posts, one eventfd write: the counter reads 1.
  std::uint64_t count = 0;
  ASSERT_EQ(::read(box->fd(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(count, 1U);
}

// Four producers post their own numbered sequences in batches of random size into a small
// mailbox (so it fills and they must retry); the consumer wakes only on poll(), so a lost wake-up
// stalls the test until the deadline fails it.
TEST(MailboxTest, FourProducerThreadsArriveCompleteAndInOrder) {
  constexpr std::uint64_t kProducers = 4;
  constexpr std::uint64_t kPerProducer = 100'000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto box = MakeMailbox<std::uint64_t>(1024);
  std::atomic<bool> stop{false};

  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&box, &stop, p] {
      std::mt19937 rng(static_cast<std::mt19937::result_type>(p + 1));
      std::uniform_int_distribution<std::uint64_t> batch_size(1, 300);
      std::vector<std::uint64_t> pending;
      std::uint64_t next = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (pending.empty()) {
          if (next == kPerProducer) {
            return;
          }
          const std::uint64_t n = std::min(batch_size(rng), kPerProducer - next);
          for (std::uint64_t i = 0; i < n; ++i) {
            pending.push_back(p << 32 | next++);
          }
        }
        if (box->Post(pending) == 0) {
          std::this_thread::yield();  // full: keep the rest for the next turn
        }
      }
    });
  }

  std::array<std::uint64_t, kProducers> expected{};
  std::uint64_t received = 0;
  bool in_order = true;
  std::vector<std::uint64_t> out;
  while (received < kProducers * kPerProducer && in_order &&
         std::chrono::steady_clock::now() < deadline) {
    if (!Readable(box->fd(), 100)) {
      continue;
    }
    out.clear();
    box->Drain(out);
    for (const std::uint64_t item : out) {
      const std::uint64_t p = item >> 32;
      const std::uint64_t seq = item & 0xffff'ffffU;
      if (p >= kProducers || seq != expected[p]) {
        ADD_FAILURE() << "producer " << p << ": got " << seq << ", expected "
                      << (p < kProducers ? expected[p] : 0);
        in_order = false;
        break;
      }
      ++expected[p];
      ++received;
    }
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& t : producers) {
    t.join();
  }

  EXPECT_EQ(received, kProducers * kPerProducer);
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    EXPECT_EQ(expected[p], kPerProducer) << "producer " << p;
  }
  EXPECT_TRUE(box->empty());
}

}  // namespace
}  // namespace tinymq::server
