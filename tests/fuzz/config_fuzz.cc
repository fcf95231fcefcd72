// libFuzzer target for the configuration parsers: the TOML file (config::ParseConfig) and the
// command line (config::ParseCommandLine, ApplyCommandLine, ResolveConfig).
//
// Input: a mode byte, then the rest.
//   bit 0 clear: the rest is the text of a configuration file, parsed as "fuzz.toml".
//   bit 0 set:   a command line. Bits 1-4 give N (0-15): the rest starts with up to N arguments
//                (argv[1..], after argv[0] = "tinymq"), each ended by a NUL byte or by the end of
//                the input; what follows the N-th NUL is the text of the file --config names.
//
// The target uses the config layer's public API only (config_file.h, command_line.h, config.h),
// so that it keeps compiling while the configuration grows. Properties, each checked with Fail()
// (which aborts, so libFuzzer keeps the input):
//  1. Never throws, never crashes, no undefined behaviour, no leak (ASan, UBSan, LSan). toml++ is
//     compiled into this target header-only (tests/fuzz/CMakeLists.txt), so its parser is
//     instrumented too; UBSan's "unreachable" check alone is off, for a toml++ 3.3.0 bug that
//     CMakeLists.txt describes.
//  2. Ranges. A Config that parses has its values inside the ranges config.h documents: at least
//     one listener, numeric bind addresses, no two listeners on the same bind and port (port 0
//     excepted), every limit within its kMin/kMax, enum values that name themselves.
//  3. Errors. A refused file yields a non-empty message that starts with "fuzz.toml:" (the source
//     it was given); a refused command line yields a non-empty message.
//  4. Overrides. What ParseCommandLine accepts, ApplyCommandLine applies to a parsed file exactly
//     (--bind/--port leave one listener, the other options replace their field), and the result
//     still satisfies 2. Without --config, ResolveConfig succeeds unless --repair comes without a
//     data directory, and then equals the overrides applied to the defaults.
//
// No state outlives one input; nothing touches the file system.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/config/command_line.h"
#include "tinymq/config/config.h"
#include "tinymq/config/config_file.h"

namespace tinymq::config {
namespace {

constexpr std::string_view kSource = "fuzz.toml";

// Reports a broken property, then aborts so libFuzzer keeps the input.
[[noreturn]] void Fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "config_fuzz: %.*s", static_cast<int>(what.size()), what.data());
  if (!detail.empty()) {
    std::fprintf(stderr, ": %.*s", static_cast<int>(detail.size()), detail.data());
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

void Expect(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) [[unlikely]] {
    Fail(what, detail);
  }
}

template <typename T>
void ExpectInRange(T value, std::uint64_t min, std::uint64_t max, std::string_view what) {
  const auto v = static_cast<std::uint64_t>(value);
  if (v < min || v > max) [[unlikely]] {
    Fail(what,
         std::to_string(v) + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
}

// Property 2, on any Config the parsers hand out.
void CheckRanges(const Config& config) {
  Expect(!config.listeners.empty(), "no listener");
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& a = config.listeners[i];
    Expect(IsIpAddress(a.bind), "listener bind is not a numeric address", a.bind);
    for (std::size_t j = 0; j < i && a.port != 0; ++j) {
      const ListenerConfig& b = config.listeners[j];
      Expect(a.bind != b.bind || a.port != b.port, "two listeners on the same bind and port",
             a.bind + ":" + std::to_string(a.port));
    }
  }

  const LimitsConfig& limits = config.limits;
  ExpectInRange(limits.connect_timeout_ms, kMinConnectTimeoutMs, kMaxConnectTimeoutMs,
                "limits.connect_timeout_ms");
  ExpectInRange(limits.max_packet_size, kMinPacketSize, kMaxPacketSize, "limits.max_packet_size");
  ExpectInRange(limits.max_inflight, 1, 65535, "limits.max_inflight");
  ExpectInRange(limits.max_queued_messages, 1, UINT64_MAX, "limits.max_queued_messages");
  ExpectInRange(limits.max_queued_bytes, 1, UINT64_MAX, "limits.max_queued_bytes");
  ExpectInRange(limits.output_high_water, 1, UINT64_MAX, "limits.output_high_water");
  ExpectInRange(limits.max_client_id_length, kMinClientIdLength, kMaxClientIdLength,
                "limits.max_client_id_length");

  const MqttConfig& mqtt = config.mqtt;
  ExpectInRange(mqtt.maximum_qos, 0, 2, "mqtt.maximum_qos");
  ExpectInRange(mqtt.receive_maximum, 1, 65535, "mqtt.receive_maximum");
  Expect(ParseSharedPolicy(SharedPolicyName(mqtt.shared_subscription_policy)) ==
             mqtt.shared_subscription_policy,
         "mqtt.shared_subscription_policy is not a policy");

  Expect(ParseLogLevel(LogLevelName(config.log_level)) == config.log_level,
         "log_level is not a level");
  ExpectInRange(config.workers, 0, kMaxWorkers, "workers");
  Expect(config.data_dir.find('\0') == std::string::npos, "data_dir holds a NUL");
  Expect(ParseDurability(DurabilityName(config.durability)) == config.durability,
         "durability is not a mode");
  ExpectInRange(config.sync_interval_ms, kMinSyncIntervalMs, kMaxSyncIntervalMs,
                "sync_interval_ms");
}

util::Result<Config, std::string> Parse(std::string_view text, std::string_view source) {
  try {
    return ParseConfig(text, source);
  } catch (const std::exception& e) {
    Fail("ParseConfig threw", e.what());
  } catch (...) {
    Fail("ParseConfig threw something that is not a std::exception");
  }
}

// Properties 2 and 3 for the result of parsing one file.
void CheckParsed(const util::Result<Config, std::string>& parsed, std::string_view source) {
  if (!parsed) {
    const std::string& error = parsed.error();
    Expect(error.size() > source.size() && error.starts_with(source) && error[source.size()] == ':',
           "error does not start with the source name", error);
    return;
  }
  CheckRanges(*parsed);
  Expect(!parsed->repair, "repair set by a file (it is command-line only)");
}

struct SplitInput {
  std::vector<std::string> args;
  std::string_view rest;  // into the fuzzer's input
};

// Splits off at most `count` NUL-ended arguments from the start of `input`.
SplitInput SplitArguments(std::string_view input, unsigned count) {
  SplitInput out;
  while (out.args.size() < count && !input.empty()) {
    const std::size_t end = input.find('\0');
    if (end == std::string_view::npos) {
      out.args.emplace_back(input);
      input = {};
      break;
    }
    out.args.emplace_back(input.substr(0, end));
    input.remove_prefix(end + 1);
  }
  out.rest = input;
  return out;
}

void CheckCommandLine(std::string_view input, unsigned count) {
  const SplitInput split = SplitArguments(input, count);
  std::vector<const char*> argv = {"tinymq"};
  for (const std::string& arg : split.args) {
    argv.push_back(arg.c_str());
  }
  argv.push_back(nullptr);  // as the kernel hands it over

  util::Result<CommandLine, std::string> parsed = util::Unexpected(std::string());
  try {
    parsed = ParseCommandLine(static_cast<int>(argv.size() - 1), argv.data());
  } catch (const std::exception& e) {
    Fail("ParseCommandLine threw", e.what());
  }
  if (!parsed) {
    Expect(!parsed.error().empty(), "empty command-line error");
    return;
  }
  const CommandLine& cl = *parsed;
  if (cl.action == CommandLine::Action::kPrintHelp) {
    Expect(!cl.help.empty(), "empty help");
    return;
  }
  if (cl.action != CommandLine::Action::kRun) {
    return;
  }
  Expect(!cl.bind || IsIpAddress(*cl.bind), "--bind accepted a host name", cl.bind.value_or(""));
  Expect(!cl.workers || *cl.workers <= kMaxWorkers, "--workers accepted too many");

  Config base;
  if (cl.config_file) {
    util::Result<Config, std::string> file = Parse(split.rest, kSource);
    CheckParsed(file, kSource);
    if (!file) {
      return;
    }
    base = std::move(*file);
  } else {
    util::Result<Config, std::string> resolved = util::Unexpected(std::string());
    try {
      resolved = ResolveConfig(cl);  // reads no file without --config
    } catch (const std::exception& e) {
      Fail("ResolveConfig threw", e.what());
    }
    const Config applied = ApplyCommandLine(Config{}, cl);
    const bool refusable = applied.repair && applied.data_dir.empty();
    Expect(resolved.has_value() != refusable, "ResolveConfig: --repair check",
           resolved.has_value() ? "" : resolved.error());
    if (resolved.has_value()) {
      Expect(*resolved == applied, "ResolveConfig differs from ApplyCommandLine on the defaults");
    }
  }

  const Config out = ApplyCommandLine(base, cl);
  if (cl.bind || cl.port) {
    Expect(out.listeners.size() == 1, "--bind/--port left more than one listener");
    const ListenerConfig& first = base.listeners.front();
    Expect(out.listeners[0].bind == cl.bind.value_or(first.bind), "--bind not applied");
    Expect(out.listeners[0].port == cl.port.value_or(first.port), "--port not applied");
  } else {
    Expect(out.listeners == base.listeners, "listeners changed without --bind/--port");
  }
  Expect(out.log_level == cl.log_level.value_or(base.log_level), "--log-level not applied");
  Expect(out.workers == cl.workers.value_or(base.workers), "--workers not applied");
  Expect(out.data_dir == cl.data_dir.value_or(base.data_dir), "--data-dir not applied");
  Expect(out.durability == cl.durability.value_or(base.durability), "--durability not applied");
  Expect(out.repair == cl.repair, "--repair not applied");
  CheckRanges(out);
}

}  // namespace
}  // namespace tinymq::config

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((mode & 1U) == 0) {
    const auto parsed = tinymq::config::Parse(rest, tinymq::config::kSource);
    tinymq::config::CheckParsed(parsed, tinymq::config::kSource);
  } else {
    tinymq::config::CheckCommandLine(rest, (mode >> 1) & 15U);
  }
  return 0;
}
