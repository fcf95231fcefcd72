// tinymq entry point: the command line and the configuration file, logging (app/logging.h:
// stderr, a file or syslog, written by a thread of its own), then the server until SIGINT or
// SIGTERM.
//
// Exit status: 0 after a clean stop (SIGINT and SIGTERM included) and for --version and --help;
// 2 for a bad command line or configuration; 1 when the server cannot start (e.g. the port is in
// use) or its event loop fails. Every failure is one line on stderr naming the cause.

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "tinymq/app/logging.h"
#include "tinymq/config/command_line.h"
#include "tinymq/config/config.h"
#include "tinymq/server/server.h"
#include "tinymq/util/check.h"

namespace {

namespace config = tinymq::config;

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) {
      out += ", ";
    }
    out += p;
  }
  return out;
}

// While alive, a failed TINYMQ_CHECK first writes out the log lines still queued (at most about
// a second's wait: Logging::Flush).
class FlushLogOnCheckFailure {
 public:
  explicit FlushLogOnCheckFailure(tinymq::app::Logging& logging) {
    logging_ = &logging;
    tinymq::util::SetCheckFailureHook([] { logging_->Flush(); });
  }
  ~FlushLogOnCheckFailure() {
    tinymq::util::SetCheckFailureHook(nullptr);
    logging_ = nullptr;
  }
  FlushLogOnCheckFailure(const FlushLogOnCheckFailure&) = delete;
  FlushLogOnCheckFailure& operator=(const FlushLogOnCheckFailure&) = delete;

 private:
  static inline tinymq::app::Logging* logging_ = nullptr;
};

// Where the state is kept, for the first log line.
std::string Persistence(const config::Config& cfg) {
  if (cfg.data_dir.empty()) {
    return "no data directory: nothing survives a restart";
  }
  std::string dir = cfg.data_dir;
  if (!dir.ends_with('/')) {
    dir += '/';
  }
  std::string how;
  switch (cfg.durability) {
    case config::Durability::kAlways: how = "durability always: every write synced"; break;
    case config::Durability::kBatch:
      how = "durability batch, sync every " + std::to_string(cfg.sync_interval_ms) + " ms";
      break;
    case config::Durability::kNone:
      how = "durability none: acknowledgements do not wait for the disk";
      break;
  }
  return "state kept in " + dir + " (" + how + ")";
}

int Main(int argc, char** argv) {
  const auto command_line = config::ParseCommandLine(argc, argv);
  if (!command_line) {
    std::fprintf(stderr, "tinymq: %s\n", command_line.error().c_str());
    return kExitUsage;
  }
  switch (command_line->action) {
    case config::CommandLine::Action::kPrintVersion:
      std::printf("tinymq %s (MQTT 3.1, 3.1.1, 5.0)\n", TINYMQ_VERSION);
      return 0;
    case config::CommandLine::Action::kPrintHelp:
      std::fputs(command_line->help.c_str(), stdout);
      return 0;
    case config::CommandLine::Action::kRun: break;
  }
  const auto cfg = config::ResolveConfig(*command_line);
  if (!cfg) {
    std::fprintf(stderr, "tinymq: %s\n", cfg.error().c_str());
    return kExitUsage;
  }

  // A server must not die because whoever reads its stderr went away; sockets are written with
  // MSG_NOSIGNAL already.
  std::signal(SIGPIPE, SIG_IGN);
  // Declared before the server, so that it outlives every thread that logs. Its destructor, at
  // every return below, writes the lines still queued (the last "stopped" included) and stops the
  // logging thread.
  auto logging = tinymq::app::Logging::Start(*cfg);
  if (!logging) {
    std::fprintf(stderr, "tinymq: %s\n", logging.error().c_str());
    return kExitFailure;
  }
  // A failed invariant check writes out the lines still queued before it aborts: those that led
  // to it. (Destroyed before `logging`, and after the server and its threads.)
  const FlushLogOnCheckFailure flush_on_failure(*logging);

  // SIGHUP reads the file and the command line again; the logging part is applied here.
  tinymq::server::ServerHooks hooks;
  hooks.version = TINYMQ_VERSION;
  hooks.reread = [&command_line] { return config::ResolveConfig(*command_line); };
  hooks.apply_logging = [&logging](const config::Config& next) { return logging->Apply(next); };
  auto server = tinymq::server::Server::Create(*cfg, std::move(hooks));
  if (!server) {
    logging->Flush();  // what Create() logged (e.g. a restore) comes before the error
    std::fprintf(stderr, "tinymq: %s\n", server.error().c_str());
    return kExitFailure;
  }
  spdlog::info(
      "tinymq {} listening on {} (MQTT 3.1, 3.1.1, 5.0) with {} worker thread(s); {}; {}",
      TINYMQ_VERSION, Join(server->addresses()), server->worker_count(),
      config::AnonymousAllowed(*cfg) ? "anonymous clients allowed" : "no anonymous clients",
      Persistence(*cfg));
  spdlog::debug("configuration: {}; log level {}",
                command_line->config_file ? *command_line->config_file : "built-in defaults",
                config::LogLevelName(cfg->log_level));
  if (auto ran = server->Run(); !ran) {
    spdlog::error("{}", ran.error());
    return kExitFailure;
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // start-up only (allocation, logger set-up): no loop runs
    std::fprintf(stderr, "tinymq: %s\n", e.what());
    return kExitFailure;
  }
}
