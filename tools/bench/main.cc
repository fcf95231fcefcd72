// tinymq-bench entry point: the command line, then one benchmark run (runner.h), then the summary
// line on stdout and, with --json, the JSON object.
//
// Exit status: 0 when the run completed (whatever the figures, loss included); 1 when it could
// not run or went wrong (broker unreachable, a refused connection or subscription, a connection
// the broker closed during a message scenario, the JSON file not written); 2 for a bad command
// line. Every failure is one line on stderr.

#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <random>
#include <string>

#include "tools/bench/options.h"
#include "tools/bench/report.h"
#include "tools/bench/runner.h"

namespace {

namespace bench = tinymq::bench;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) { g_interrupted.store(true); }

// Six hex digits, fresh per run: keeps the topics and client ids of runs apart.
std::string RunId() {
  std::random_device rd;
  const unsigned value = rd() & 0xFFFFFFu;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06x", value);
  return buf;
}

bool WriteJson(const std::string& path, const std::string& json) {
  if (path == "-") {
    std::printf("%s\n", json.c_str());
    return true;
  }
  std::ofstream out(path, std::ios::trunc);
  out << json << '\n';
  out.close();
  return static_cast<bool>(out);
}

int Main(int argc, char** argv) {
  const auto command_line = bench::ParseCommandLine(argc, argv, RunId());
  if (!command_line) {
    std::fprintf(stderr, "tinymq-bench: %s\n", command_line.error().c_str());
    return kExitUsage;
  }
  if (command_line->action == bench::CommandLine::Action::kPrintHelp) {
    std::fputs(command_line->help.c_str(), stdout);
    return 0;
  }
  const bench::Options& options = command_line->options;

  // The first SIGINT/SIGTERM ends the run early (it still drains and reports); a second one kills.
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = static_cast<int>(SA_RESETHAND);
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto report = bench::RunBenchmark(options, &g_interrupted);
  if (!report) {
    std::fprintf(stderr, "tinymq-bench: %s\n", report.error().c_str());
    return kExitFailure;
  }
  std::printf("%s\n", bench::FormatSummary(*report).c_str());
  std::fflush(stdout);
  if (!options.json_file.empty() && !WriteJson(options.json_file, bench::FormatJson(*report))) {
    std::fprintf(stderr, "tinymq-bench: cannot write --json %s\n", options.json_file.c_str());
    return kExitFailure;
  }
  if (options.IsMessageScenario() && report->lost_connections > 0) {
    std::fprintf(stderr, "tinymq-bench: the broker closed %llu connection(s) during the run (%s)\n",
                 static_cast<unsigned long long>(report->lost_connections),
                 report->lost_reason.c_str());
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinymq-bench: %s\n", e.what());
    return kExitFailure;
  }
}
