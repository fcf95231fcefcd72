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
  std::string workers;
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
  app.add_option("--workers", workers,
                 "Worker threads, each with its own event loop (default 0: one per CPU core)")
      ->type_name("N");
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
          "--bind: must be a numeric IPv4 or IPv6 address (no host name, no brackets), got '" +
          bind + "'");
    }
    result.bind = bind;
  }
  if (app.count("--port") > 0) {
    result.port = ParsePort(port);
    if (!result.port) {
      return util::Unexpected("--port: must be a number between 0 and 65535, got '" + port + "'");
    }
  }
  if (app.count("--log-level") > 0) {
    result.log_level = ParseLogLevel(log_level);
    if (!result.log_level) {
      return util::Unexpected("--log-level: must be one of trace, debug, info, warn, error, got '" +
                              log_level + "'");
    }
  }
  if (app.count("--workers") > 0) {
    result.workers = ParseWorkers(workers);
    if (!result.workers) {
      return util::Unexpected("--workers: must be a number between 0 and " +
                              std::to_string(kMaxWorkers) + ", got '" + workers + "'");
    }
  }
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
  if (command_line.workers) {
    config.workers = *command_line.workers;
  }
  return config;
}

util::Result<Config, std::string> ResolveConfig(const CommandLine& command_line) {
  if (!command_line.config_file) {
    return ApplyCommandLine(Config{}, command_line);
  }
  util::Result<Config, std::string> loaded = LoadConfigFile(*command_line.config_file);
  if (!loaded) {
    return loaded;
  }
  return ApplyCommandLine(std::move(*loaded), command_line);
}

}  // namespace tinymq::config
