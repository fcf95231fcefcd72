#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tinymq/config/config.h"
#include "tinymq/server/mail.h"
#include "tinymq/server/mailbox.h"
#include "tinymq/server/metrics.h"
#include "tinymq/store/store.h"
#include "tinymq/util/result.h"

// Committer: the one thread that writes the workers' batches (broker::Broker::TakeWrites) to the
// store, so that no worker loop ever waits for the disk, and tells each worker when what it
// submitted is durable (a Mail::Kind::kDurable with the highest epoch covered, in its mailbox).
//
// Batches are written in submission order. Everything queued when the thread gets to it is
// written with one Write() call (group commit across workers; up to kMaxMergeBytes at a time), so
// that a burst from many workers costs one write and one sync. By durability mode:
//   always: Write(sync=true), then report;
//   batch:  Write(sync=false) at once; Sync() as soon as no more batches are waiting (nothing to
//           gain by waiting: the clients wait for their acknowledgements), and while batches keep
//           coming, once sync_interval has passed since the last sync (one sync for all of them);
//           then report every epoch the sync covered. So under a continuous stream of writes it
//           syncs at most once per interval, and an acknowledgement waits at most about that;
//   none:   Write(sync=false), then report; never synced (the OS writes it back).
//
// A write or sync that fails (a full disk, say) is logged once, sets failed() (the brokers then
// refuse QoS 1/2 PUBLISHes: broker::Durability::failed) and is retried every retry_interval, with
// Store::Resume() first, the same batch, later ones waiting behind it in order. Once it succeeds
// failed() is cleared and "store writable again" logged. Nothing is reported before it is
// durable, so a worker whose batch cannot be written keeps its acknowledgements back.
//
// A full mailbox (a worker far behind) is retried every millisecond: a report is never dropped,
// since the worker would hold its acknowledgements forever.
//
// Threading: Thread-safe. Submit() from any worker thread; Stop() and the destructor from the
//            thread that started it.
// Lifetime:  the store and the mailboxes must outlive the committer (its thread uses them until
//            Stop() returns). Submit() takes the batch over.
// Errors:    Start() fails only when the thread cannot be started (one line of text). Store errors
//            are logged (spdlog) and retried, never returned.

namespace tinymq::server {

class Committer {
 public:
  // How often a failed write or sync is tried again.
  static constexpr std::chrono::milliseconds kRetryInterval{1000};
  // How much one Write() carries at most when several batches are queued (keys plus values); a
  // larger batch is written on its own.
  static constexpr std::size_t kMaxMergeBytes = std::size_t{4} << 20;
  // After Stop(), how many more times a failing write or sync is tried before what is left is
  // given up (and logged): a stop must end even on a disk that stays full.
  static constexpr int kStopAttempts = 3;

  struct Options {
    config::Durability durability = config::Durability::kBatch;
    std::chrono::milliseconds sync_interval{10};                // kBatch only
    std::chrono::milliseconds retry_interval = kRetryInterval;  // tests shorten it
  };

  // Starts the thread. `mailboxes[w]` is worker w's.
  // Bytes submitted and not yet written past which workers stop reading client input until the
  // committer catches up (in `none` nothing else holds clients back).
  static constexpr std::size_t kMaxBacklogBytes = std::size_t{64} << 20;
  bool backlogged() const {
    return backlog_bytes_.load(std::memory_order_relaxed) > kMaxBacklogBytes;
  }

  static util::Result<std::unique_ptr<Committer>, std::string> Start(
      store::Store& store, std::vector<Mailbox<Mail>*> mailboxes, const Options& options);

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  // For Start() only.
  Committer(Key, store::Store& store, std::vector<Mailbox<Mail>*> mailboxes,
            const Options& options);
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;
  // Stop()s.
  ~Committer();

  // Queues worker `worker`'s batch `epoch` (epochs of one worker increase with each call). Never
  // waits for I/O: it takes a lock only long enough to append.
  // REQUIRES: worker < the number of mailboxes; Stop() has not been called.
  void Submit(std::uint16_t worker, std::uint64_t epoch, store::Batch&& batch);

  // Writes (and syncs, unless durability is none) everything submitted, then ends the thread. Call
  // it once the workers have stopped: the reports of this last round are posted only where a
  // mailbox has room. A store that keeps failing is tried kStopAttempts more times; what it still
  // cannot take is then logged as lost. Idempotent.
  void Stop();

  // True while the store cannot write (broker::Durability::failed points here).
  const std::atomic<bool>& failed() const { return failed_; }

  // How long the store's writes and syncs took (each WriteAll and each Sync one observation),
  // since the start. Any thread.
  Histogram write_latency() const {
    const std::lock_guard<std::mutex> lock(latency_mu_);
    return write_latency_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  void ObserveLatency(Clock::duration took) {
    const std::lock_guard<std::mutex> lock(latency_mu_);
    write_latency_.Observe(std::chrono::duration_cast<std::chrono::nanoseconds>(took));
  }
  mutable std::mutex latency_mu_;
  Histogram write_latency_;  // guarded by latency_mu_

  struct Item {
    std::uint16_t worker = 0;
    std::uint64_t epoch = 0;
    store::Batch batch;
  };

  void Run() noexcept;
  // When the thread next has something to do by itself (nullopt: only when woken).
  std::optional<Clock::time_point> NextWake(bool stopping) const;
  // Writes what is pending, syncs when due, posts the reports. False while the store fails (also
  // when a retry is not due yet).
  bool Step(bool stopping);
  bool WritePending();
  bool SyncNow();
  void Fail(const std::string& cause);
  void PostReports(bool stopping);

  // Const after construction.
  store::Store& store_;
  const std::vector<Mailbox<Mail>*> mailboxes_;
  const Options options_;

  // Guarded by mu_.
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Item> queue_;
  // Set under mu_ (so that the thread cannot miss the wake-up); read without it by the loop that
  // waits for a full mailbox.
  std::atomic<bool> stop_{false};

  std::atomic<bool> failed_{false};

  // Owned by the committer thread.
  std::deque<Item> pending_;  // taken from queue_, not written yet; in order
  // The write being tried: the first merged_items_ pending batches, written as one.
  std::vector<const store::Batch*> merged_;
  std::size_t merged_items_ = 0;
  std::vector<std::uint64_t> unsynced_;  // per worker: highest epoch written, not yet synced
  bool any_unsynced_ = false;
  std::vector<std::uint64_t> report_;  // per worker: highest epoch durable, not yet reported
  Clock::time_point last_sync_;
  // Batch bytes freed since the last malloc_trim, and when that was.
  static constexpr std::size_t kTrimAfterBytes = std::size_t{32} << 20;
  static constexpr std::chrono::seconds kTrimInterval{1};
  std::size_t freed_since_trim_ = 0;
  std::atomic<std::size_t> backlog_bytes_{0};
  void Trim(bool idle);
  Clock::time_point last_trim_;
  bool failing_ = false;
  std::string failure_;  // what failed, while failing_
  Clock::time_point retry_at_;
  bool stop_seen_ = false;       // the thread has seen stop_ (and drains what is left)
  int attempts_after_stop_ = 0;  // failed writes and syncs since
  std::vector<Mail> mail_;       // reused for posting

  std::thread thread_;  // last: started once everything above is built
};

}  // namespace tinymq::server
