#include "tinymq/server/verifier.h"

#include <algorithm>
#include <utility>

namespace tinymq::server {

Verifier::Verifier(std::vector<Mailbox<Mail>*> mailboxes, Options options)
    : mailboxes_(std::move(mailboxes)), options_(options) {
  const std::size_t n = std::max<std::size_t>(1, options_.threads);
  threads_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    threads_.emplace_back([this] { Run(); });
  }
}

Verifier::~Verifier() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) {
    t.join();
  }
}

void Verifier::Submit(std::uint16_t worker, broker::CredentialCheck check) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(Job{worker, std::chrono::steady_clock::now(), std::move(check)});
  }
  wake_.notify_one();
}

void Verifier::Run() {
  std::vector<Mail> answer;
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) {
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (std::chrono::steady_clock::now() - job.submitted > options_.stale_after) {
      continue;  // its connection timed out meanwhile
    }
    const bool ok = job.check.passwords != nullptr &&
                    checker_.Check(*job.check.passwords, job.check.username, job.check.password);
    // The password leaves memory as soon as it is checked.
    std::fill(job.check.password.begin(), job.check.password.end(), '\0');
    Mail mail;
    mail.kind = Mail::Kind::kCredentials;
    mail.connection = job.check.id;
    mail.ok = ok;
    answer.push_back(std::move(mail));
    Mailbox<Mail>& box = *mailboxes_.at(job.worker);
    while (box.Post(answer) == 0) {
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) {
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // full: the worker catches up
    }
  }
}

}  // namespace tinymq::server
