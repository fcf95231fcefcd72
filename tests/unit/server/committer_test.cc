#include "tinymq/server/committer.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// The committer is a thread of its own, so these tests use threads and wait (with deadlines far
// above what a sanitizer build needs); the suite name has "Thread" in it so that the TSan stage of
// scripts/run-tests.sh runs it.

namespace tinymq::server {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kPatience{10'000};  // how long a test waits for what must happen

store::Batch Put(std::string_view key, std::string_view value) {
  store::Batch b;
  b.Put(store::Kind::kSessions, key, value);
  return b;
}

// A memory store that records every call, can fail writes (a number of times, or until told
// otherwise) and can hold writes back (a gate) so that batches queue up behind one.
class FakeStore final : public store::Store {
 public:
  struct WriteCall {
    std::vector<std::string> keys;  // of its ops, in order
    bool sync = false;
    bool failed = false;
  };

  util::Result<void, std::string> Write(const store::Batch& batch, bool sync) override {
    const store::Batch* one = &batch;
    return WriteAll(std::span<const store::Batch* const>(&one, 1), sync);
  }
  util::Result<void, std::string> WriteAll(std::span<const store::Batch* const> batches,
                                           bool sync) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++writes_entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !gate_closed_; });
    if (write_delay_.count() != 0) {
      const std::chrono::milliseconds d = write_delay_;
      lock.unlock();
      std::this_thread::sleep_for(d);
      lock.lock();
    }
    WriteCall call;
    call.sync = sync;
    for (const store::Batch* batch : batches) {
      for (const store::Batch::Op& op : batch->ops()) {
        call.keys.push_back(op.key);
      }
    }
    if (fail_forever_ || fail_writes_ > 0) {
      if (fail_writes_ > 0) {
        --fail_writes_;
      }
      call.failed = true;
      writes_.push_back(std::move(call));
      cv_.notify_all();
      return util::Unexpected(
          std::string("fake/: cannot write (IO error: No space left on device)"));
    }
    writes_.push_back(std::move(call));
    cv_.notify_all();
    return memory_->WriteAll(batches, sync);
  }
  util::Result<std::optional<std::string>, std::string> Get(store::Kind kind,
                                                            std::string_view key) override {
    return memory_->Get(kind, key);
  }
  util::Result<void, std::string> Scan(store::Kind kind, std::string_view prefix, const Visitor& f,
                                       std::string_view from) override {
    return memory_->Scan(kind, prefix, f, from);
  }
  util::Result<void, std::string> Sync() override {
    const std::lock_guard<std::mutex> lock(mu_);
    ++syncs_;
    sync_times_.push_back(Clock::now());
    if (fail_syncs_ > 0) {
      --fail_syncs_;
      return util::Unexpected(std::string("fake/: cannot sync (IO error)"));
    }
    return {};
  }
  util::Result<void, std::string> Resume() override {
    const std::lock_guard<std::mutex> lock(mu_);
    ++resumes_;
    return {};
  }

  void set_write_delay(std::chrono::milliseconds d) {
    const std::lock_guard<std::mutex> lock(mu_);
    write_delay_ = d;
  }
  void FailWrites(int n) {
    const std::lock_guard<std::mutex> lock(mu_);
    fail_writes_ = n;
  }
  void FailSyncs(int n) {
    const std::lock_guard<std::mutex> lock(mu_);
    fail_syncs_ = n;
  }
  void FailForever(bool on) {
    const std::lock_guard<std::mutex> lock(mu_);
    fail_forever_ = on;
  }
  void CloseGate() {
    const std::lock_guard<std::mutex> lock(mu_);
    gate_closed_ = true;
  }
  void OpenGate() {
    {
      const std::lock_guard<std::mutex> lock(mu_);
      gate_closed_ = false;
    }
    cv_.notify_all();
  }
  // Waits until `n` Write() calls have begun (and maybe wait at the gate).
  bool WaitForWritesEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return writes_entered_ >= n; });
  }
  // Waits until `n` Write() calls have returned.
  bool WaitForWrites(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return writes_.size() >= n; });
  }

  std::vector<WriteCall> writes() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return writes_;
  }
  int syncs() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return syncs_;
  }
  std::vector<Clock::time_point> sync_times() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return sync_times_;
  }
  int resumes() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return resumes_;
  }
  // The keys of the successful writes, in order.
  std::vector<std::string> written_keys() const {
    const std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> keys;
    for (const WriteCall& w : writes_) {
      if (!w.failed) {
        keys.insert(keys.end(), w.keys.begin(), w.keys.end());
      }
    }
    return keys;
  }
  std::optional<std::string> Value(std::string_view key) {
    auto r = memory_->Get(store::Kind::kSessions, key);
    return r ? *r : std::nullopt;
  }

 private:
  std::unique_ptr<store::Store> memory_ = store::MakeMemoryStore();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WriteCall> writes_;
  std::vector<Clock::time_point> sync_times_;
  int writes_entered_ = 0;
  int syncs_ = 0;
  int resumes_ = 0;
  int fail_writes_ = 0;
  int fail_syncs_ = 0;
  bool fail_forever_ = false;
  bool gate_closed_ = false;
  std::chrono::milliseconds write_delay_{0};
};

// The mailboxes of `n` workers.
class Boxes {
 public:
  explicit Boxes(std::size_t n, std::size_t capacity = 1024) {
    for (std::size_t i = 0; i < n; ++i) {
      auto box = Mailbox<Mail>::Create(capacity);
      EXPECT_TRUE(box);
      boxes_.push_back(std::move(*box));
    }
  }
  std::vector<Mailbox<Mail>*> pointers() const {
    std::vector<Mailbox<Mail>*> out;
    for (const auto& b : boxes_) {
      out.push_back(b.get());
    }
    return out;
  }
  Mailbox<Mail>& operator[](std::size_t i) { return *boxes_[i]; }

  // The epochs of the kDurable mail worker `w` receives until it has `want` of them (or the
  // patience runs out).
  std::vector<std::uint64_t> Reports(std::size_t w, std::size_t want,
                                     milliseconds patience = kPatience) {
    std::vector<std::uint64_t> epochs;
    const auto deadline = Clock::now() + patience;
    while (epochs.size() < want) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        break;
      }
      pollfd p{boxes_[w]->fd(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      std::vector<Mail> mail;
      boxes_[w]->Drain(mail);
      for (const Mail& m : mail) {
        EXPECT_EQ(m.kind, Mail::Kind::kDurable);
        epochs.push_back(m.epoch);
      }
    }
    return epochs;
  }

  // The reports worker `w` receives until one says `epoch` (or the patience runs out).
  std::vector<std::uint64_t> ReportsUntil(std::size_t w, std::uint64_t epoch) {
    std::vector<std::uint64_t> epochs;
    while (epochs.empty() || epochs.back() < epoch) {
      const std::vector<std::uint64_t> more = Reports(w, 1);
      if (more.empty()) {
        ADD_FAILURE() << "worker " << w << " never heard of epoch " << epoch;
        break;
      }
      epochs.insert(epochs.end(), more.begin(), more.end());
    }
    return epochs;
  }

 private:
  std::vector<std::unique_ptr<Mailbox<Mail>>> boxes_;
};

std::unique_ptr<Committer> StartCommitter(store::Store& store, const Boxes& boxes,
                                          config::Durability durability,
                                          milliseconds sync_interval = milliseconds(10),
                                          milliseconds retry = milliseconds(20)) {
  auto c = Committer::Start(
      store, boxes.pointers(),
      {.durability = durability, .sync_interval = sync_interval, .retry_interval = retry});
  EXPECT_TRUE(c) << c.error();
  return std::move(*c);
}

bool Eventually(const std::function<bool()>& condition) {
  const auto deadline = Clock::now() + kPatience;
  while (!condition()) {
    if (Clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST(CommitterThreadTest, WritesToTheMemoryStoreAndReportsInEveryMode) {
  for (config::Durability mode :
       {config::Durability::kAlways, config::Durability::kBatch, config::Durability::kNone}) {
    SCOPED_TRACE(std::string(config::DurabilityName(mode)));
    const std::unique_ptr<store::Store> store = store::MakeMemoryStore();
    Boxes boxes(2);
    const std::unique_ptr<Committer> committer = StartCommitter(*store, boxes, mode);
    committer->Submit(1, 1, Put("a", "1"));
    EXPECT_EQ(boxes.Reports(1, 1), std::vector<std::uint64_t>{1});
    auto got = store->Get(store::Kind::kSessions, "a");
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, "1");
    committer->Submit(0, 1, Put("b", "2"));
    committer->Submit(1, 2, Put("a", "3"));
    EXPECT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
    EXPECT_EQ(boxes.Reports(1, 1), std::vector<std::uint64_t>{2});
    EXPECT_EQ(**store->Get(store::Kind::kSessions, "a"), "3");
    EXPECT_FALSE(committer->failed().load());
    committer->Stop();
  }
}

TEST(CommitterThreadTest, SyncsAsTheModeSays) {
  {
    FakeStore store;
    Boxes boxes(1);
    auto committer = StartCommitter(store, boxes, config::Durability::kAlways);
    committer->Submit(0, 1, Put("k", "v"));
    ASSERT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
    committer->Stop();
    ASSERT_EQ(store.writes().size(), 1u);
    EXPECT_TRUE(store.writes()[0].sync);  // the write itself is synced
    EXPECT_EQ(store.syncs(), 0);
  }
  {
    FakeStore store;
    Boxes boxes(1);
    auto committer = StartCommitter(store, boxes, config::Durability::kBatch);
    committer->Submit(0, 1, Put("k", "v"));
    ASSERT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
    ASSERT_EQ(store.writes().size(), 1u);
    EXPECT_FALSE(store.writes()[0].sync);
    EXPECT_EQ(store.syncs(), 1);  // reported only after a sync
    committer->Stop();
  }
  {
    FakeStore store;
    Boxes boxes(1);
    auto committer = StartCommitter(store, boxes, config::Durability::kNone);
    committer->Submit(0, 1, Put("k", "v"));
    ASSERT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
    committer->Stop();
    ASSERT_EQ(store.writes().size(), 1u);
    EXPECT_FALSE(store.writes()[0].sync);
    EXPECT_EQ(store.syncs(), 0);  // never, not even at the stop
  }
}

TEST(CommitterThreadTest, BatchModeSyncsOnceForWhatQueuedMeanwhile) {
  FakeStore store;
  Boxes boxes(1);
  constexpr milliseconds kInterval{60'000};  // never reached here
  auto committer = StartCommitter(store, boxes, config::Durability::kBatch, kInterval);
  // A lone write waits for nothing: synced and reported at once.
  committer->Submit(0, 1, Put("a", "1"));
  ASSERT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
  EXPECT_EQ(store.syncs(), 1);
  // Batches that come while a write is under way are written, without a sync in between, and
  // one sync covers them all once nothing more waits.
  store.CloseGate();
  committer->Submit(0, 2, Put("b", "2"));
  ASSERT_TRUE(store.WaitForWritesEntered(2));
  committer->Submit(0, 3, Put("c", "3"));
  committer->Submit(0, 4, Put("d", "4"));
  store.OpenGate();
  EXPECT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{4});
  EXPECT_EQ(store.syncs(), 2);
  EXPECT_EQ(store.writes().size(), 3u);
  committer->Stop();
  EXPECT_EQ(store.syncs(), 2);  // nothing left to sync
}

TEST(CommitterThreadTest, BatchModeSyncsAtMostOncePerIntervalWhileBatchesKeepComing) {
  FakeStore store;
  store.set_write_delay(milliseconds(20));  // batches pile up behind every write
  Boxes boxes(1);
  constexpr milliseconds kInterval{200};
  auto committer = StartCommitter(store, boxes, config::Durability::kBatch, kInterval);
  std::uint64_t epoch = 0;
  const auto until = Clock::now() + milliseconds(1000);
  while (Clock::now() < until) {
    ++epoch;
    committer->Submit(0, epoch, Put("k" + std::to_string(epoch), "v"));
    std::this_thread::sleep_for(milliseconds(2));
  }
  committer->Stop();
  const int writes = static_cast<int>(store.writes().size());
  // Every write but the last had more waiting behind it: the syncs are those the interval
  // allowed (about 1000 / 200), the final one, and one at the start; never one per write.
  EXPECT_GT(writes, 20);
  EXPECT_LE(store.syncs(), 1000 / 200 + 3);
  EXPECT_GE(store.syncs(), 2);
}

TEST(CommitterThreadTest, WritesInSubmissionOrderAndMergesWhatQueued) {
  FakeStore store;
  Boxes boxes(3);
  auto committer = StartCommitter(store, boxes, config::Durability::kAlways);
  store.CloseGate();
  committer->Submit(0, 1, Put("w0-1", "x"));
  ASSERT_TRUE(store.WaitForWritesEntered(1));  // held at the gate; what follows queues up
  committer->Submit(1, 1, Put("w1-1", "x"));
  committer->Submit(0, 2, Put("w0-2", "x"));
  committer->Submit(2, 1, Put("w2-1", "x"));
  committer->Submit(0, 3, Put("w0-3", "x"));
  committer->Submit(1, 2, Put("w1-2", "x"));
  store.OpenGate();
  // Group commit: the five queued batches go in one write, in the order submitted.
  ASSERT_TRUE(store.WaitForWrites(2));
  const std::vector<FakeStore::WriteCall> writes = store.writes();
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].keys, std::vector<std::string>{"w0-1"});
  EXPECT_EQ(writes[1].keys, (std::vector<std::string>{"w1-1", "w0-2", "w2-1", "w0-3", "w1-2"}));
  // One report per worker and round, with its highest epoch.
  EXPECT_EQ(boxes.Reports(0, 2), (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(boxes.Reports(1, 1), std::vector<std::uint64_t>{2});
  EXPECT_EQ(boxes.Reports(2, 1), std::vector<std::uint64_t>{1});
  EXPECT_TRUE(boxes.Reports(0, 1, milliseconds(20)).empty());  // no report for epoch 2 alone
  committer->Stop();
}

TEST(CommitterThreadTest, KeepsTheOrderOfConcurrentSubmitters) {
  FakeStore store;
  constexpr int kWorkers = 4;
  constexpr int kBatches = 200;
  Boxes boxes(kWorkers, 65536);
  auto committer = StartCommitter(store, boxes, config::Durability::kBatch, milliseconds(1));
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&committer, w] {
      for (int e = 1; e <= kBatches; ++e) {
        committer->Submit(static_cast<std::uint16_t>(w), static_cast<std::uint64_t>(e),
                          Put(std::to_string(w) + "/" + std::to_string(e), "x"));
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  // Every worker hears about its last epoch; the reports it gets increase.
  for (int w = 0; w < kWorkers; ++w) {
    const std::vector<std::uint64_t> epochs =
        boxes.ReportsUntil(static_cast<std::size_t>(w), kBatches);
    EXPECT_TRUE(std::is_sorted(epochs.begin(), epochs.end()));
    EXPECT_EQ(epochs.back(), std::uint64_t{kBatches});
  }
  committer->Stop();
  // Each worker's batches were written in its order.
  std::vector<int> next(kWorkers, 1);
  for (const std::string& key : store.written_keys()) {
    const int w = std::stoi(key.substr(0, key.find('/')));
    const int e = std::stoi(key.substr(key.find('/') + 1));
    EXPECT_EQ(e, next[static_cast<std::size_t>(w)]) << key;
    next[static_cast<std::size_t>(w)] = e + 1;
  }
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_EQ(next[static_cast<std::size_t>(w)], kBatches + 1);
  }
}

TEST(CommitterThreadTest, RetriesAFailedWriteAndKeepsLaterOnesBehindIt) {
  FakeStore store;
  Boxes boxes(2);
  auto committer = StartCommitter(store, boxes, config::Durability::kAlways, milliseconds(10),
                                  /*retry=*/milliseconds(50));
  store.FailWrites(3);
  store.CloseGate();
  committer->Submit(0, 1, Put("first", "1"));
  ASSERT_TRUE(store.WaitForWritesEntered(1));
  store.OpenGate();
  ASSERT_TRUE(Eventually([&] { return committer->failed().load(); }));
  // Submitted while failing: waits behind the failed one.
  committer->Submit(1, 1, Put("second", "2"));
  committer->Submit(0, 2, Put("third", "3"));
  EXPECT_TRUE(boxes.Reports(0, 1, milliseconds(30)).empty());  // nothing durable, nothing said
  // After three failures the fourth attempt succeeds: both workers hear, the flag clears.
  EXPECT_EQ(boxes.ReportsUntil(0, 2).back(), 2u);
  EXPECT_EQ(boxes.Reports(1, 1), std::vector<std::uint64_t>{1});
  EXPECT_FALSE(committer->failed().load());
  EXPECT_EQ(store.resumes(), 3);  // before each retry
  const std::vector<FakeStore::WriteCall> writes = store.writes();
  ASSERT_GE(writes.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(writes[i].keys, std::vector<std::string>{"first"}) << i;  // the same batch
    EXPECT_EQ(writes[i].failed, i < 3) << i;
  }
  EXPECT_EQ(store.written_keys(), (std::vector<std::string>{"first", "second", "third"}));
  EXPECT_EQ(store.Value("third"), "3");
  committer->Stop();
}

TEST(CommitterThreadTest, RetriesAFailedSync) {
  FakeStore store;
  Boxes boxes(1);
  auto committer = StartCommitter(store, boxes, config::Durability::kBatch, milliseconds(1),
                                  /*retry=*/milliseconds(20));
  store.FailSyncs(2);
  committer->Submit(0, 1, Put("k", "v"));
  EXPECT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});
  EXPECT_EQ(store.syncs(), 3);
  EXPECT_EQ(store.resumes(), 2);
  EXPECT_FALSE(committer->failed().load());
  ASSERT_EQ(store.writes().size(), 1u);  // the write itself succeeded and is not repeated
  committer->Stop();
}

TEST(CommitterThreadTest, NeverDropsAReportWhenTheMailboxIsFull) {
  FakeStore store;
  Boxes boxes(1, /*capacity=*/1);
  std::vector<Mail> filler(1);
  ASSERT_EQ(boxes[0].Post(filler), 1u);  // full
  auto committer = StartCommitter(store, boxes, config::Durability::kNone);
  committer->Submit(0, 7, Put("k", "v"));
  ASSERT_TRUE(store.WaitForWrites(1));
  std::this_thread::sleep_for(milliseconds(20));  // the committer is retrying the post
  std::vector<Mail> drained;
  boxes[0].Drain(drained);
  ASSERT_EQ(drained.size(), 1u);
  EXPECT_EQ(drained[0].kind, Mail::Kind::kEnvelope);  // the filler
  EXPECT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{7});
  committer->Stop();
}

TEST(CommitterThreadTest, StopWritesAndSyncsWhatIsQueued) {
  FakeStore store;
  Boxes boxes(2);
  // An interval no test waits for: only the stop can make the sync happen.
  auto committer = StartCommitter(store, boxes, config::Durability::kBatch, milliseconds(10'000));
  committer->Submit(0, 1, Put("a", "1"));
  ASSERT_EQ(boxes.Reports(0, 1), std::vector<std::uint64_t>{1});  // the first sync is at once
  store.CloseGate();
  committer->Submit(0, 2, Put("b", "2"));
  ASSERT_TRUE(store.WaitForWritesEntered(2));
  committer->Submit(1, 1, Put("c", "3"));
  std::thread opener([&store] {
    std::this_thread::sleep_for(milliseconds(20));
    store.OpenGate();
  });
  committer->Stop();
  opener.join();
  EXPECT_EQ(store.written_keys(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(store.syncs(), 2);  // the last writes were synced before the stop returned
  EXPECT_EQ(store.Value("c"), "3");
}

TEST(CommitterThreadTest, StopEndsOnAStoreThatKeepsFailing) {
  FakeStore store;
  Boxes boxes(1);
  auto committer = StartCommitter(store, boxes, config::Durability::kAlways, milliseconds(10),
                                  /*retry=*/milliseconds(10));
  store.FailForever(true);
  committer->Submit(0, 1, Put("lost", "x"));
  ASSERT_TRUE(Eventually([&] { return committer->failed().load(); }));
  committer->Stop();  // returns: a few more attempts, then it gives up (and logs it)
  EXPECT_TRUE(store.written_keys().empty());
  EXPECT_TRUE(boxes.Reports(0, 1, milliseconds(20)).empty());  // never reported as durable
}

}  // namespace
}  // namespace tinymq::server
