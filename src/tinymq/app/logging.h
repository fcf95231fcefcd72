#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "tinymq/config/config.h"
#include "tinymq/util/result.h"

// Logging: the process's log. It installs spdlog's default logger (what spdlog::info() and
// friends write to) as an asynchronous logger: a thread that logs only copies the line into a
// queue (8192 lines) and one logging thread writes it to the destination, so a worker never waits
// for log I/O. When the queue is full the oldest line is dropped rather than making the caller
// wait; the number dropped is logged when Logging ends.
//
// Destinations (config::Config::log_destination, docs/operations.md):
//   stderr: "2024-05-01 12:00:00.123 info text"; coloured only when stderr is a terminal.
//   file:   the same lines appended to log_file (created with mode 0640). Apply() with the same
//           path reopens it, so that after logrotate moved it away (SIGHUP) the log goes on in a
//           new file at the same path.
//   syslog: syslog(3) with ident "tinymq", LOG_PID, facility LOG_DAEMON; the text only (syslog
//           adds the time), levels mapped to priorities (trace and debug: LOG_DEBUG, info:
//           LOG_INFO, warn: LOG_WARNING, error: LOG_ERR).
//
// Threading: Thread-safe. Apply() and Flush() may run on any thread (the server thread, on
//            SIGHUP) while every other thread logs; two Apply() calls are serialised. The logging
//            thread starts with every signal blocked, so that the server's signalfd gets them.
// Lifetime:  one per process, kept by main() for the whole run (it must outlive every thread that
//            logs, i.e. be declared before the server). Move-only. The destructor writes every
//            queued line, reports dropped ones, stops the logging thread and leaves a synchronous
//            stderr logger as spdlog's default, so a stray late line still goes somewhere.
// Errors:    Start() and Apply() return one line, e.g.
//              "log_file /var/log/tinymq.log: cannot open: permission denied"
//            A line that cannot be written (disk full) is lost; the first failure of a run of them
//            is reported on stderr ("tinymq: log_file ...: cannot write: ..."). Never throws
//            (except bad_alloc from Start(), which main() reports like any start-up failure).

namespace tinymq::app {

class Logging {
 public:
  // Opens the destination of `config` (log_destination, log_file, log_level), starts the logging
  // thread and makes it spdlog's default logger.
  static util::Result<Logging, std::string> Start(const config::Config& config);

  Logging(Logging&& other) noexcept;
  Logging& operator=(Logging&& other) noexcept;
  Logging(const Logging&) = delete;
  Logging& operator=(const Logging&) = delete;
  ~Logging();

  // Applies a reloaded configuration (SIGHUP). The level changes at once. With the same
  // destination and path, a log file is reopened (logrotate); a changed destination or path
  // switches to the new one (lines still queued at that moment go to the new one too). On error
  // (the new file cannot be opened) the level is applied and the old destination kept.
  // REQUIRES: this Logging was not moved from.
  util::Result<void, std::string> Apply(const config::Config& config);

  // Waits (at most about a second) until every line logged before the call was written. Lines
  // other threads log meanwhile may make it wait the whole second.
  // REQUIRES: this Logging was not moved from.
  void Flush();

  // Lines dropped so far because the queue was full.
  // REQUIRES: this Logging was not moved from.
  std::size_t dropped() const;

 private:
  struct State;
  explicit Logging(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;  // null once moved from
};

}  // namespace tinymq::app
