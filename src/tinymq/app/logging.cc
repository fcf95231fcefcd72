#include "tinymq/app/logging.h"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/fd.h"
#include "tinymq/util/check.h"

namespace tinymq::app {

namespace {

constexpr char kLoggerName[] = "tinymq";
constexpr char kPattern[] = "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v";
// Lines the queue holds before the oldest is dropped: a burst of a few thousand lines (a fleet
// reconnecting at debug level) fits; at about 200 bytes of line and metadata each, 2 MiB.
constexpr std::size_t kQueueLines = 8192;
// A new log file is readable by the group (adm, say), not by everyone: client ids, usernames and
// addresses are in it.
constexpr mode_t kFileMode = 0640;

spdlog::level::level_enum ToSpdlog(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::kTrace: return spdlog::level::trace;
    case config::LogLevel::kDebug: return spdlog::level::debug;
    case config::LogLevel::kInfo: return spdlog::level::info;
    case config::LogLevel::kWarn: return spdlog::level::warn;
    case config::LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

util::Result<net::Fd, std::string> OpenLogFile(const std::string& path, std::string_view verb) {
  net::Fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, kFileMode));
  if (!fd) {
    return util::Unexpected("log_file " + path + ": cannot " + std::string(verb) + ": " +
                            net::ErrnoText(errno));
  }
  return fd;
}

// A sink that appends to a file and can open its path again, for logrotate: after the file was
// renamed, Reopen() creates a new one at the path and the old descriptor is closed. spdlog's own
// file sinks cannot reopen (basic_file_sink) or rotate by themselves (rotating_file_sink), which
// fights with logrotate.
//
// Each line is one write(2) of O_APPEND, with no user-space buffer: a line is in the kernel once
// logged (nothing to lose in a crash of tinymq), and the lines of a file shared with another
// writer never interleave. The cost, a system call per line, is the logging thread's.
//
// Threading: Thread-safe (sink_it_ runs under base_sink's mutex_, which Reopen() takes too).
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ReopenableFileSink(std::string path, net::Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  const std::string& path() const { return path_; }

  // Opens the path again and writes there from now on. On failure the old file stays in use.
  util::Result<void, std::string> Reopen() {
    // Opened outside the lock: the logging thread goes on meanwhile.
    util::Result<net::Fd, std::string> fd = OpenLogFile(path_, "reopen");
    if (!fd) {
      return util::Unexpected(fd.error() + " (still writing to the file it had open)");
    }
    net::Fd old;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      old = std::exchange(fd_, std::move(*fd));
      failing_ = false;
    }
    return {};  // `old` is closed here, outside the lock
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_.get(), p, left);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        Failed(n < 0 ? errno : ENOSPC);
        return;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    failing_ = false;
  }

  void flush_() override {}  // every line is written at once

 private:
  // Reports the first failure of a run on stderr: the log itself is what fails.
  void Failed(int error) {
    if (!failing_) {
      failing_ = true;
      std::fprintf(stderr,
                   "tinymq: log_file %s: cannot write: %s (lines are lost until it works)\n",
                   path_.c_str(), net::ErrnoText(error).c_str());
    }
  }

  // Const after construction.
  const std::string path_;
  // Guarded by mutex_.
  net::Fd fd_;
  bool failing_ = false;
};

// What Apply() needs to know about the sink in use.
struct Destination {
  config::LogDestination kind = config::LogDestination::kStderr;
  spdlog::sink_ptr sink;
  std::shared_ptr<ReopenableFileSink> file;  // set for kFile
};

util::Result<Destination, std::string> OpenDestination(const config::Config& config) {
  Destination d;
  d.kind = config.log_destination;
  switch (config.log_destination) {
    case config::LogDestination::kStderr:
      // color_mode::automatic: colours only when stderr is a terminal (and TERM says it can).
      d.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
      d.sink->set_pattern(kPattern);
      break;
    case config::LogDestination::kFile: {
      util::Result<net::Fd, std::string> fd = OpenLogFile(config.log_file, "open");
      if (!fd) {
        return util::Unexpected(fd.error());
      }
      d.file = std::make_shared<ReopenableFileSink>(config.log_file, std::move(*fd));
      d.file->set_pattern(kPattern);
      d.sink = d.file;
      break;
    }
    case config::LogDestination::kSyslog:
      // enable_formatting = false: the message text only. syslog stamps the time and the pid, and
      // the level is the priority (spdlog's syslog sink maps it).
      d.sink = std::make_shared<spdlog::sinks::syslog_sink_mt>(kLoggerName, LOG_PID, LOG_DAEMON,
                                                               /*enable_formatting=*/false);
      break;
  }
  return d;
}

// Blocks every signal in this thread while it lives (and restores the mask after): a thread
// started meanwhile inherits the full mask, so none of SIGINT, SIGTERM or SIGHUP is ever
// delivered to it instead of the server's signalfd (which reads them only while they are blocked
// in every thread; one delivered to a thread that does not block it runs the default action, and
// SIGTERM's kills the process).
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    const int e = ::pthread_sigmask(SIG_BLOCK, &all, &before_);
    TINYMQ_CHECK(e == 0);  // fails only for a bad `how`
  }
  ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &before_, nullptr); }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;

 private:
  sigset_t before_;
};

}  // namespace

struct Logging::State {
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Writes what is queued, reports drops, and stops the logging thread; spdlog's default logger
  // becomes `fallback`.
  ~State() {
    if (pool == nullptr || logger == nullptr || fallback == nullptr) {
      return;  // Start() failed half-way (bad_alloc): nothing was installed
    }
    if (const std::size_t n = pool->overrun_counter(); n > 0) {
      logger->warn(
          "{} log line(s) were dropped: the log queue was full ({} lines) because the log "
          "destination could not keep up",
          n, kQueueLines);
    }
    fallback->set_level(logger->level());
    spdlog::set_default_logger(fallback);  // the registry lets go of `logger`
    logger.reset();
    // The last reference: ~thread_pool queues a terminate message behind every line and joins the
    // thread, so every line logged before this point is written (the queued lines hold their
    // logger alive until then).
    pool.reset();
  }

  // Const after construction.
  std::shared_ptr<spdlog::details::thread_pool> pool;
  std::shared_ptr<spdlog::async_logger> logger;
  // The logger's only sink: it forwards to the destination's sink, and swapping that one under its
  // mutex is how Apply() changes destination while the logging thread writes (the logger's own
  // sink list has no lock).
  std::shared_ptr<spdlog::sinks::dist_sink_mt> switch_sink;
  // Synchronous stderr logger, made at start so that the destructor cannot fail making it.
  std::shared_ptr<spdlog::logger> fallback;

  std::mutex mu;  // serialises Apply()
  // Guarded by mu.
  Destination destination;
};

Logging::Logging(std::unique_ptr<State> state) : state_(std::move(state)) {}
Logging::Logging(Logging&& other) noexcept = default;
Logging& Logging::operator=(Logging&& other) noexcept = default;
Logging::~Logging() = default;

util::Result<Logging, std::string> Logging::Start(const config::Config& config) {
  util::Result<Destination, std::string> destination = OpenDestination(config);
  if (!destination) {
    return util::Unexpected(destination.error());
  }
  auto state = std::make_unique<State>();
  {
    const AllSignalsBlocked blocked;  // inherited by the logging thread
    state->pool = std::make_shared<spdlog::details::thread_pool>(
        kQueueLines, 1, [] { ::pthread_setname_np(::pthread_self(), "tinymq-log"); });
  }
  state->switch_sink = std::make_shared<spdlog::sinks::dist_sink_mt>(
      std::vector<spdlog::sink_ptr>{destination->sink});
  // overrun_oldest: a full queue drops its oldest line instead of blocking the thread that logs,
  // which may be a worker serving thousands of connections. Dropped lines are counted
  // (thread_pool::overrun_counter) and the count is logged at the end.
  state->logger = std::make_shared<spdlog::async_logger>(
      kLoggerName, state->switch_sink, state->pool, spdlog::async_overflow_policy::overrun_oldest);
  state->logger->set_level(ToSpdlog(config.log_level));
  auto fallback_sink =
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
  fallback_sink->set_pattern(kPattern);
  state->fallback = std::make_shared<spdlog::logger>(kLoggerName, std::move(fallback_sink));
  state->destination = std::move(*destination);
  spdlog::set_default_logger(state->logger);
  return Logging(std::move(state));
}

util::Result<void, std::string> Logging::Apply(const config::Config& config) {
  TINYMQ_CHECK(state_ != nullptr);
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->logger->set_level(ToSpdlog(config.log_level));  // atomic: workers see it at once
  Destination& current = state_->destination;
  if (config.log_destination == current.kind &&
      (current.kind != config::LogDestination::kFile || config.log_file == current.file->path())) {
    if (current.file) {
      return current.file->Reopen();
    }
    return {};
  }
  util::Result<Destination, std::string> next = OpenDestination(config);
  if (!next) {
    return util::Unexpected(next.error() + " (the log stays where it was)");
  }
  // The old sink is released under dist_sink's lock, once no line is being written to it.
  state_->switch_sink->set_sinks({next->sink});
  current = std::move(*next);
  spdlog::info("logging to {}{}", config::LogDestinationName(config.log_destination),
               current.file ? " " + current.file->path() : std::string());
  return {};
}

void Logging::Flush() {
  TINYMQ_CHECK(state_ != nullptr);
  // The flush request queues behind every line logged so far and the logging thread handles the
  // queue in order, so an empty queue means those lines were written. spdlog has no completion
  // signal for it, hence the polling, bounded because other threads may keep the queue busy.
  state_->logger->flush();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (state_->pool->queue_size() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::size_t Logging::dropped() const {
  TINYMQ_CHECK(state_ != nullptr);
  return state_->pool->overrun_counter();
}

}  // namespace tinymq::app
