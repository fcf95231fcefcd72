#include "tinymq/server/committer.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "tinymq/util/check.h"

namespace tinymq::server {

namespace {

// How long the thread waits before posting again to a full mailbox.
constexpr std::chrono::milliseconds kMailboxRetry{1};

std::size_t Bytes(const store::Batch& batch) {
  std::size_t n = 0;
  for (const store::Batch::Op& op : batch.ops()) {
    n += op.key.size() + op.value.size();
  }
  return n;
}

}  // namespace

util::Result<std::unique_ptr<Committer>, std::string> Committer::Start(
    store::Store& store, std::vector<Mailbox<Mail>*> mailboxes, const Options& options) {
  auto committer = std::make_unique<Committer>(Key(), store, std::move(mailboxes), options);
  try {
    committer->thread_ = std::thread([c = committer.get()] { c->Run(); });
  } catch (const std::system_error& e) {
    return util::Unexpected(std::string("cannot start the store's writer thread: ") + e.what());
  }
  return committer;
}

Committer::Committer(Key /*only Start*/, store::Store& store, std::vector<Mailbox<Mail>*> mailboxes,
                     const Options& options)
    : store_(store),
      mailboxes_(std::move(mailboxes)),
      options_(options),
      unsynced_(mailboxes_.size()),
      report_(mailboxes_.size()),
      // The first sync is due at once.
      last_sync_(Clock::now() - options.sync_interval) {}

Committer::~Committer() { Stop(); }

void Committer::Submit(std::uint16_t worker, std::uint64_t epoch, store::Batch&& batch) {
  TINYMQ_DCHECK(worker < mailboxes_.size());
  bool was_empty = false;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    TINYMQ_DCHECK(!stop_.load(std::memory_order_relaxed));
    was_empty = queue_.empty();
    backlog_bytes_.fetch_add(Bytes(batch), std::memory_order_relaxed);
    queue_.push_back(Item{worker, epoch, std::move(batch)});
  }
  if (was_empty) {  // otherwise the thread has been woken already and not yet taken the queue
    wake_.notify_one();
  }
}

void Committer::Stop() {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_relaxed);
  }
  wake_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Committer::Run() noexcept {
  for (;;) {
    const std::optional<Clock::time_point> wake = NextWake(stop_seen_);
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Once the stop is seen, only the deadlines (retries) wake the thread.
      const auto ready = [&] {
        return !queue_.empty() || (!stop_seen_ && stop_.load(std::memory_order_relaxed));
      };
      if (wake) {
        wake_.wait_until(lock, *wake, ready);
      } else {
        wake_.wait(lock, ready);
      }
      for (Item& item : queue_) {
        pending_.push_back(std::move(item));
      }
      queue_.clear();
      stopping = stop_.load(std::memory_order_relaxed);
    }
    if (stopping && !stop_seen_) {
      stop_seen_ = true;
      retry_at_ = Clock::now();  // a failing store gets its first attempt of the stop at once
    }
    const bool ok = Step(stopping);
    if (!stopping) {
      continue;
    }
    if (ok && pending_.empty() && !any_unsynced_) {
      const std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) {
        return;
      }
      continue;
    }
    if (!ok && attempts_after_stop_ >= kStopAttempts) {
      std::size_t batches = pending_.size();
      {
        const std::lock_guard<std::mutex> lock(mu_);
        batches += queue_.size();
      }
      spdlog::error("{}; stopping anyway: {} batch(es) not written{}", failure_, batches,
                    any_unsynced_ ? ", and the last writes not synced" : "");
      return;
    }
  }
}

std::optional<Committer::Clock::time_point> Committer::NextWake(bool stopping) const {
  if (failing_) {
    return retry_at_;
  }
  if (!pending_.empty() || (any_unsynced_ && stopping)) {
    return Clock::now();
  }
  if (any_unsynced_) {
    return last_sync_ + options_.sync_interval;
  }
  if (freed_since_trim_ != 0) {
    return last_trim_ + kTrimInterval;  // the memory of the last burst goes back too
  }
  return std::nullopt;
}

bool Committer::Step(bool stopping) {
  const bool retrying = failing_;
  if (failing_) {
    if (Clock::now() < retry_at_) {
      return false;
    }
    if (auto resumed = store_.Resume(); !resumed) {
      spdlog::debug("{}", resumed.error());
      Fail(failure_);
      return false;
    }
  }
  if (!WritePending()) {
    return false;
  }
  // kBatch: a sync once nothing more waits, or once the interval since the last has passed while
  // batches keep coming; at once when stopping, and when retrying (the failure may have been the
  // sync, and the interval has passed anyway).
  bool idle = false;
  if (any_unsynced_) {
    const std::lock_guard<std::mutex> lock(mu_);
    idle = queue_.empty();
  }
  if (any_unsynced_ &&
      (retrying || stopping || idle || Clock::now() >= last_sync_ + options_.sync_interval)) {
    if (!SyncNow()) {
      return false;
    }
  }
  if (failing_) {
    failing_ = false;
    failure_.clear();
    failed_.store(false, std::memory_order_release);
    spdlog::info("store writable again");
  }
  PostReports(stopping);
  if (pending_.empty()) {
    Trim(/*idle=*/true);
  }
  return true;
}

bool Committer::WritePending() {
  const bool sync = options_.durability == config::Durability::kAlways;
  while (!pending_.empty()) {
    if (merged_items_ == 0) {
      // Merge from the front while it stays under kMaxMergeBytes (a single batch may be larger).
      merged_items_ = 1;
      std::size_t bytes = Bytes(pending_.front().batch);
      while (merged_items_ < pending_.size()) {
        const std::size_t more = Bytes(pending_[merged_items_].batch);
        if (bytes + more > kMaxMergeBytes) {
          break;
        }
        bytes += more;
        ++merged_items_;
      }
    }
    merged_.clear();
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < merged_items_; ++i) {
      merged_.push_back(&pending_[i].batch);
      bytes += Bytes(pending_[i].batch);
    }
    const Clock::time_point write_started = Clock::now();
    if (auto written = store_.WriteAll(merged_, sync); !written) {
      Fail(written.error());
      return false;  // the same merged_items_ (and merged_) are tried again
    }
    ObserveLatency(Clock::now() - write_started);
    for (std::size_t i = 0; i < merged_items_; ++i) {
      const Item& item = pending_.front();
      std::uint64_t& epoch = options_.durability == config::Durability::kBatch
                                 ? unsynced_[item.worker]
                                 : report_[item.worker];
      epoch = std::max(epoch, item.epoch);
      backlog_bytes_.fetch_sub(Bytes(pending_.front().batch), std::memory_order_relaxed);
      pending_.pop_front();
    }
    any_unsynced_ = any_unsynced_ || options_.durability == config::Durability::kBatch;
    merged_.clear();
    merged_items_ = 0;
    freed_since_trim_ += bytes;
  }
  Trim(/*idle=*/false);
  return true;
}

void Committer::Trim(bool idle) {
  // The batches were allocated by the workers and are freed here: after a burst, give the memory
  // they took back to the system (glibc keeps freed heap memory in its arenas otherwise, and a
  // burst of queued messages would leave the process that much larger for good). During a burst
  // every kTrimAfterBytes, at most once per kTrimInterval; after it, once.
  if (freed_since_trim_ == 0 || (!idle && freed_since_trim_ < kTrimAfterBytes) ||
      Clock::now() < last_trim_ + kTrimInterval) {
    return;
  }
  ::malloc_trim(0);
  freed_since_trim_ = 0;
  last_trim_ = Clock::now();
}

bool Committer::SyncNow() {
  const Clock::time_point started = Clock::now();
  if (auto synced = store_.Sync(); !synced) {
    Fail(synced.error());
    return false;
  }
  ObserveLatency(Clock::now() - started);
  last_sync_ = started;
  for (std::size_t w = 0; w < unsynced_.size(); ++w) {
    report_[w] = std::max(report_[w], unsynced_[w]);
    unsynced_[w] = 0;
  }
  any_unsynced_ = false;
  return true;
}

void Committer::Fail(const std::string& cause) {
  if (!failing_) {
    spdlog::error(
        "{}; QoS 1 and 2 PUBLISHes are refused and nothing new is acknowledged until it works "
        "again (retrying every {} ms)",
        cause, options_.retry_interval.count());
    failing_ = true;
    failure_ = cause;
    failed_.store(true, std::memory_order_release);
  }
  retry_at_ = Clock::now() + options_.retry_interval;
  if (stop_seen_) {
    ++attempts_after_stop_;
  }
}

void Committer::PostReports(bool stopping) {
  for (std::size_t w = 0; w < report_.size(); ++w) {
    if (report_[w] == 0) {
      continue;
    }
    mail_.clear();
    mail_.emplace_back();
    mail_.back().kind = Mail::Kind::kDurable;
    mail_.back().epoch = report_[w];
    report_[w] = 0;
    // Never dropped while the worker runs: it would hold its acknowledgements forever. After a
    // stop the workers are gone, and a full mailbox would never drain.
    while (mailboxes_[w]->Post(mail_) == 0 && !stopping && !stop_.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(kMailboxRetry);
    }
  }
  mail_.clear();
}

}  // namespace tinymq::server
