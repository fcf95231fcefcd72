#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"
#include "tinymq/server/mail.h"
#include "tinymq/server/mailbox.h"

// Verifier: the threads that check passwords for the workers. A password hash takes PBKDF2 with
// hundreds of thousands of iterations (tens of milliseconds of CPU), which a worker must not
// spend while its other connections wait, so each worker hands its brokers' CredentialChecks
// here (Submit) and gets each answer back as kCredentials mail. Passwords that verified are
// remembered (auth::PasswordChecker), so a fleet reconnecting at once costs one hash per user.
//
// A check that waited longer than `stale_after` is dropped unanswered: its connection has been
// closed by its CONNECT timeout meanwhile, and spending the CPU on it would only let a flood of
// CONNECTs delay everyone else's.
//
// Threading: Submit() from any thread; the rest belongs to the thread that made it.
// Lifetime:  the mailboxes must outlive the Verifier; the destructor stops and joins the threads
//            (unanswered checks are dropped).
// Errors:    none; a full mailbox is retried until the answer fits.

namespace tinymq::server {

class Verifier {
 public:
  struct Options {
    std::size_t threads = 1;
    std::chrono::steady_clock::duration stale_after = std::chrono::seconds(10);
  };

  Verifier(std::vector<Mailbox<Mail>*> mailboxes, Options options);
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // Checks `check` for worker `worker`, whose mailbox gets the answer.
  void Submit(std::uint16_t worker, broker::CredentialCheck check);

  std::uint64_t remembered_hits() const { return checker_.remembered_hits(); }

 private:
  struct Job {
    std::uint16_t worker = 0;
    std::chrono::steady_clock::time_point submitted;
    broker::CredentialCheck check;
  };
  void Run();

  std::vector<Mailbox<Mail>*> mailboxes_;
  Options options_;
  auth::PasswordChecker checker_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tinymq::server
