#include "tinymq/config/command_line.h"

// CLI11's header-only code trips GCC 12's -Wnull-dereference once inlined at -O2 (a false
// positive inside std::string in CLI::detail::split); it is not our code to change.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <charconv>
#include <exception>
#include <string_view>
#include <utility>

#include "tinymq/config/cli_parse.h"
#include "tinymq/config/config_file.h"

namespace tinymq::config {

namespace {

std::optional<std::uint16_t> ParsePort(std::string_view text) {
  std::uint16_t port = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, port);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return port;
}

// A worker count: 0 (one per core) to kMaxWorkers.
std::optional<std::uint16_t> ParseWorkers(std::string_view text) {
  std::uint16_t workers = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, workers);
  if (text.empty() || ec != std::errc() || ptr != end || workers > kMaxWorkers) {
    return std::nullopt;
  }
  return workers;
}

util::Result<CommandLine, std::string> Parse(int argc, const char* const* argv) {
  CLI::App app("tinymq: an MQTT broker for MQTT 3.1, 3.1.1 and 5.0.", "tinymq");
  // Unknown arguments are collected and reported by us, in the form the CLI checks expect.
  app.allow_extras();
  std::string config_file;
  std::string bind;
  std::string port;
  std::string log_level;
  std::string log_file;
  std::string workers;
  std::string data_dir;
  std::string durability;
  bool repair = false;
  bool version = false;
  app.add_option("-c,--config", config_file,
                 "TOML configuration file (see docs/configuration.md); the options below "
                 "override it")
      ->type_name("FILE");
  app.add_option("--bind", bind,
                 "Listen on this numeric IPv4 or IPv6 address only (default 127.0.0.1)")
      ->type_name("ADDR");
  app.add_option("-p,--port", port, "Listen on this TCP port (default 1883; 0: any free port)")
      ->type_name("N");
  app.add_option("--log-level", log_level, "trace, debug, info (default), warn or error")
      ->type_name("LEVEL");
  app.add_option("--log-file", log_file,
                 "Log to this file instead of stderr (appended, created 0640; reopened on SIGHUP, "
                 "for logrotate); the same as log_destination = \"file\" and log_file = PATH")
      ->type_name("PATH");
  app.add_option("--workers", workers,
                 "Worker threads, each with its own event loop (default 0: one per CPU core)")
      ->type_name("N");
  app.add_option("--data-dir", data_dir,
                 "Keep sessions, queued messages and retained messages in this directory "
                 "(created when missing) so that they survive a restart (default: none, "
                 "nothing is kept; the last --data-dir counts, an empty DIR means none)")
      ->type_name("DIR")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--durability", durability,
                 "When acknowledgements go out relative to the disk: always, batch (default) or "
                 "none")
      ->type_name("MODE");
  app.add_flag("--repair", repair,
               "Run RocksDB's repair on the data directory before opening it (after a damaged "
               "store refused to open)");
  app.add_flag("--version", version, "Print the version and exit");

  CommandLine result;
  util::Result<std::optional<std::string>, std::string> parsed = RunCliParser(app, argc, argv);
  if (!parsed) {
    return util::Unexpected(std::move(parsed.error()));
  }
  if (*parsed) {
    result.action = CommandLine::Action::kPrintHelp;
    result.help = std::move(**parsed);
    return result;
  }
  if (version) {
    result.action = CommandLine::Action::kPrintVersion;
    return result;
  }
  if (app.count("--config") > 0) {
    result.config_file = config_file;
  }
  if (app.count("--bind") > 0) {
    if (!IsIpAddress(bind)) {
      return util::Unexpected(
          "--bind: must be a numeric IPv4 or IPv6 address (no host name, no brackets), got " +
          Quoted(bind));
    }
    result.bind = bind;
  }
  if (app.count("--port") > 0) {
    result.port = ParsePort(port);
    if (!result.port) {
      return util::Unexpected("--port: must be a number between 0 and 65535, got " + Quoted(port));
    }
  }
  if (app.count("--log-level") > 0) {
    result.log_level = ParseLogLevel(log_level);
    if (!result.log_level) {
      return util::Unexpected("--log-level: must be one of trace, debug, info, warn, error, got " +
                              Quoted(log_level));
    }
  }
  if (app.count("--log-file") > 0) {
    if (log_file.empty()) {
      return util::Unexpected(std::string("--log-file: must not be empty"));
    }
    result.log_file = log_file;
  }
  if (app.count("--workers") > 0) {
    result.workers = ParseWorkers(workers);
    if (!result.workers) {
      return util::Unexpected("--workers: must be a number between 0 and " +
                              std::to_string(kMaxWorkers) + ", got " + Quoted(workers));
    }
  }
  if (app.count("--data-dir") > 0) {
    result.data_dir = data_dir;
  }
  if (app.count("--durability") > 0) {
    result.durability = ParseDurability(durability);
    if (!result.durability) {
      return util::Unexpected("--durability: must be one of always, batch, none, got " +
                              Quoted(durability));
    }
  }
  result.repair = repair;
  return result;
}

}  // namespace

util::Result<CommandLine, std::string> ParseCommandLine(int argc, const char* const* argv) {
  try {
    return Parse(argc, argv);
  } catch (const std::exception& e) {  // CLI11 set-up errors or bad_alloc: never escape
    return util::Unexpected(std::string("command line: ") + e.what());
  }
}

Config ApplyCommandLine(Config config, const CommandLine& command_line) {
  if (command_line.bind || command_line.port) {
    ListenerConfig listener =
        config.listeners.empty() ? ListenerConfig{} : config.listeners.front();
    if (command_line.bind) {
      listener.bind = *command_line.bind;
    }
    if (command_line.port) {
      listener.port = *command_line.port;
    }
    config.listeners = {std::move(listener)};
  }
  if (command_line.log_level) {
    config.log_level = *command_line.log_level;
  }
  if (command_line.log_file) {
    config.log_destination = LogDestination::kFile;
    config.log_file = *command_line.log_file;
  }
  if (command_line.workers) {
    config.workers = *command_line.workers;
  }
  if (command_line.data_dir) {
    config.data_dir = *command_line.data_dir;
  }
  if (command_line.durability) {
    config.durability = *command_line.durability;
  }
  if (command_line.repair) {
    config.repair = true;
  }
  return config;
}

namespace {

util::Result<Config, std::string> Checked(Config config) {
  if (config.repair && config.data_dir.empty()) {
    return util::Unexpected(std::string(
        "--repair: there is no data directory to repair (give --data-dir DIR, or data_dir in "
        "the configuration file)"));
  }
  return config;
}

}  // namespace

util::Result<Config, std::string> ResolveConfig(const CommandLine& command_line) {
  if (!command_line.config_file) {
    return Checked(ApplyCommandLine(Config{}, command_line));
  }
  util::Result<Config, std::string> loaded = LoadConfigFile(*command_line.config_file);
  if (!loaded) {
    return loaded;
  }
  return Checked(ApplyCommandLine(std::move(*loaded), command_line));
}

}  // namespace tinymq::config
