#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "tinymq/config/config.h"
#include "tinymq/util/result.h"

// tinymq's command line (CLI11): what it asks for, and how it overrides the configuration file.
//
//   tinymq [--config FILE] [--bind ADDR] [--port N] [--log-level LEVEL] [--log-file PATH]
//          [--workers N] [--data-dir DIR] [--durability MODE] [--repair] [--version] [--help]
//
// Precedence: defaults < the file named by --config < the other options. --bind and --port
// replace the file's listeners with a single one; the half not given is taken from the file's
// first listener (or the default 127.0.0.1:1883). --data-dir may be given more than once (the last
// one counts, so that `make run ARGS="--data-dir x"` overrides the Makefile's own); an empty DIR
// means no data directory. --log-file PATH sets log_destination = "file" and log_file = PATH
// together, whatever the file says about either.
//
// Threading: Thread-safe (no shared state).
// Lifetime:  results own all their strings; nothing refers to argv afterwards.
// Errors:    never throws. A bad command line is one line of text naming the option, e.g.
//            "unknown option '--no-such-option' (try --help)" or
//            "--port: must be a number between 0 and 65535, got '70000'"; the configuration
//            file's errors are as config_file.h describes. ResolveConfig also refuses --repair
//            without a data directory.

namespace tinymq::config {

struct CommandLine {
  enum class Action : std::uint8_t { kRun, kPrintVersion, kPrintHelp };

  Action action = Action::kRun;
  std::string help;  // the usage text, filled for kPrintHelp
  std::optional<std::string> config_file;
  std::optional<std::string> bind;
  std::optional<std::uint16_t> port;
  std::optional<LogLevel> log_level;
  std::optional<std::string> log_file;   // non-empty; also makes log_destination kFile
  std::optional<std::uint16_t> workers;  // 0..kMaxWorkers
  std::optional<std::string> data_dir;   // empty: none (overrides the file's)
  std::optional<Durability> durability;
  bool repair = false;
};

// Parses the options; argv[0] is the program name and is skipped. Values are validated here, so
// that ApplyCommandLine cannot fail.
// REQUIRES: argc >= 1 and argv[0..argc) are terminated strings.
util::Result<CommandLine, std::string> ParseCommandLine(int argc, const char* const* argv);

// `config` with the command line's overrides applied (--config itself is not read here).
Config ApplyCommandLine(Config config, const CommandLine& command_line);

// The configuration to run with: defaults, then the --config file if given, then the overrides.
util::Result<Config, std::string> ResolveConfig(const CommandLine& command_line);

}  // namespace tinymq::config
