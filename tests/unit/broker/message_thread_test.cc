// Messages shared between worker threads: the atomic reference count, the pool's return path for
// messages released on another thread, the shared headers filled by whichever thread comes first,
// and the concurrent retained store. Suite names contain "Thread" so that `make test` runs them
// under ThreadSanitizer too (scripts/run-tests.sh).

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tinymq/broker/message.h"
#include "tinymq/broker/retained_store.h"

namespace tinymq::broker {
namespace {

// A header encoder that writes the topic: what a thread got tells which encoding it saw.
bool EncodeTopic(const Message& m, std::vector<std::uint8_t>& out) {
  out.assign(m.topic.begin(), m.topic.end());
  return true;
}

TEST(MessageThreadTest, TheLastReferenceOnAnotherThreadGivesTheMessageBackToItsPool) {
  MessagePool pool;
  std::vector<MessageRef> refs;
  for (int i = 0; i < 100; ++i) {
    refs.push_back(pool.Make("t/" + std::to_string(i), {}, mqtt::QoS::k0, false));
  }
  EXPECT_EQ(pool.size(), 0U);
  std::thread other([moved = std::move(refs)]() mutable { moved.clear(); });
  other.join();
  // Released on another thread: on the pool's list for the owner, which takes them when it runs
  // out of free messages (on the next Make).
  EXPECT_EQ(pool.size(), 0U);
  const MessageRef again = pool.Make("t/again", {}, mqtt::QoS::k0, false);
  EXPECT_EQ(pool.size(), 99U);
  EXPECT_EQ(again->topic, "t/again");
}

TEST(MessageThreadTest, ReferencesCountedOnManyThreadsEndExactlyOnce) {
  MessagePool pool;
  constexpr int kThreads = 4;
  constexpr int kMessages = 2000;
  std::vector<MessageRef> made;
  for (int i = 0; i < kMessages; ++i) {
    made.push_back(pool.Make("m", {}, mqtt::QoS::k1, false));
  }
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&made] {
        for (int round = 0; round < 5; ++round) {
          std::vector<MessageRef> copies(made.begin(), made.end());  // one more reference each
          copies.clear();
        }
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
  }
  for (const MessageRef& m : made) {
    EXPECT_EQ(m.use_count(), 1U);
  }
  made.clear();                               // on the owner thread: straight back to the pool
  EXPECT_EQ(pool.size(), std::size_t{1024});  // the pool keeps at most 1024
}

TEST(MessageThreadTest, ASharedHeaderIsEncodedOnceWhicheverThreadComesFirst) {
  for (int round = 0; round < 200; ++round) {
    const MessageRef m = MakeMessage("topic/" + std::to_string(round), {}, mqtt::QoS::k0, false);
    std::atomic<int> encodings{0};
    std::atomic<int> got{0};
    std::atomic<int> own{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        const std::vector<std::uint8_t>* h =
            m->SharedHeader(0, [&](std::vector<std::uint8_t>& out) {
              encodings.fetch_add(1);
              return EncodeTopic(*m, out);
            });
        if (h == nullptr) {
          own.fetch_add(1);  // another thread was encoding it: the caller encodes its own
          return;
        }
        EXPECT_EQ(std::string(h->begin(), h->end()), m->topic);
        got.fetch_add(1);
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    EXPECT_EQ(encodings.load(), 1);
    EXPECT_EQ(got.load() + own.load(), 4);
    EXPECT_GE(got.load(), 1);
    // Once encoded, every later caller gets it without encoding again.
    const std::vector<std::uint8_t>* later =
        m->SharedHeader(0, [](std::vector<std::uint8_t>&) { return false; });
    ASSERT_NE(later, nullptr);
    EXPECT_EQ(std::string(later->begin(), later->end()), m->topic);
  }
}

TEST(MessageThreadTest, AHeaderThatCannotBeEncodedIsNotRetried) {
  const MessageRef m = MakeMessage("x", {}, mqtt::QoS::k0, false);
  int calls = 0;
  auto fail = [&](std::vector<std::uint8_t>&) {
    ++calls;
    return false;
  };
  EXPECT_EQ(m->SharedHeader(1, fail), nullptr);
  EXPECT_EQ(m->SharedHeader(1, fail), nullptr);
  EXPECT_EQ(calls, 1);
}

TEST(RetainedThreadTest, WritersOnManyThreadsLeaveOneMessagePerTopic) {
  ConcurrentRetainedStore store;
  constexpr int kThreads = 4;
  constexpr int kTopics = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kTopics; ++i) {
        const std::string payload = "from " + std::to_string(t);
        store.Set(MakeMessage("r/" + std::to_string(i), mqtt::BinaryView::Of(payload),
                              mqtt::QoS::k1, true));
        std::vector<MessageRef> seen;
        store.Match("r/#", seen);
        EXPECT_GE(seen.size(), 1U);
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(store.size(), std::size_t{kTopics});
  std::vector<MessageRef> all;
  store.Match("r/+", all);
  EXPECT_EQ(all.size(), std::size_t{kTopics});
  std::vector<MessageRef> one;
  store.Match("r/7", one);
  ASSERT_EQ(one.size(), 1U);
  // Erase removes only the message it names: a newer one stays.
  const MessageRef old = one.front();
  store.Set(
      MakeMessage("r/7", mqtt::BinaryView::Of(std::string_view("newer")), mqtt::QoS::k0, true));
  store.Erase(old);
  one.clear();
  store.Match("r/7", one);
  ASSERT_EQ(one.size(), 1U);
  EXPECT_NE(one.front(), old);
  store.Erase(one.front());
  EXPECT_EQ(store.size(), std::size_t{kTopics - 1});
}

}  // namespace
}  // namespace tinymq::broker
