#include "tools/bench/runner.h"

#include <netdb.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "tools/bench/clock.h"
#include "tools/bench/histogram.h"
#include "tools/bench/plan.h"
#include "tools/bench/worker.h"

namespace tinymq::bench {
namespace {

// File descriptors needed besides the connections (stdio, epoll instances, JSON file, slack).
constexpr rlim_t kSpareFiles = 64;
// Set-up must finish within this, plus a millisecond per connection.
constexpr double kSetUpSeconds = 30;
constexpr std::int64_t kStartDelayNs = 20'000'000;  // lets every worker see t0 before it comes

util::Result<BrokerAddress, std::string> Resolve(const Options& o) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(o.port);
  const int rc = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    return util::Unexpected("cannot resolve host '" + o.host + "': " + ::gai_strerror(rc));
  }
  BrokerAddress a;
  std::memcpy(&a.addr, found->ai_addr, found->ai_addrlen);
  a.len = found->ai_addrlen;
  ::freeaddrinfo(found);
  a.text = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" + port;
  return a;
}

util::Result<void, std::string> EnsureOpenFiles(std::uint32_t connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return util::Unexpected(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  const rlim_t need = rlim_t{connections} + kSpareFiles;
  if (limit.rlim_cur >= need) {
    return {};
  }
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < need) {
    return util::Unexpected(
        std::to_string(connections) + " connections need " + std::to_string(need) +
        " open files, but RLIMIT_NOFILE allows " + std::to_string(limit.rlim_max) +
        " (hard limit); raise it (ulimit -Hn / limits.conf) or open fewer connections");
  }
  limit.rlim_cur = need;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return util::Unexpected(std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  return {};
}

// CPU time (user + system, every thread) of a process, from /proc/<pid>/stat.
std::optional<double> ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) {
    return std::nullopt;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // utime is field 14, stime 15
    if (i == 14) {
      utime = std::stoull(field);
    } else if (i == 15) {
      stime = std::stoull(field);
    }
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

struct Totals {
  std::uint64_t ready = 0, lost = 0, sent = 0, sent_measured = 0, completed_measured = 0,
                inflight = 0, refused = 0, received = 0, delivered = 0, duplicates = 0,
                out_of_order = 0, foreign = 0, final_pings = 0, final_pongs = 0;
  std::int64_t last_ready_ns = 0;
  bool final_round_done = true;
};

Totals Sum(const std::vector<std::unique_ptr<Worker>>& workers) {
  Totals t;
  constexpr auto r = std::memory_order_relaxed;
  for (const auto& w : workers) {
    const WorkerCounters& c = w->counters();
    t.ready += c.ready.load(r);
    t.lost += c.lost.load(r);
    t.sent += c.sent.load(r);
    t.sent_measured += c.sent_measured.load(r);
    t.completed_measured += c.completed_measured.load(r);
    t.inflight += c.inflight.load(r);
    t.refused += c.refused.load(r);
    t.received += c.received.load(r);
    t.delivered += c.delivered.load(r);
    t.duplicates += c.duplicates.load(r);
    t.out_of_order += c.out_of_order.load(r);
    t.foreign += c.foreign.load(r);
    t.final_pings += c.final_pings.load(r);
    t.final_pongs += c.final_pongs.load(r);
    t.last_ready_ns = std::max(t.last_ready_ns, c.last_ready_ns.load(r));
    t.final_round_done = t.final_round_done && c.final_round_done.load(r);
  }
  return t;
}

std::string FirstError(const std::vector<std::unique_ptr<Worker>>& workers) {
  for (const auto& w : workers) {
    if (std::string e = w->error(); !e.empty()) {
      return e;
    }
  }
  return "a worker thread failed";
}

// One progress line a second on stderr.
class Progress {
 public:
  Progress(const Options& o, std::int64_t begin)
      : o_(o), begin_(begin), next_(begin + kNsPerSecond) {}

  void Maybe(std::int64_t now, const char* phase, const Totals& t,
             const std::vector<std::unique_ptr<Worker>>& workers) {
    if (now < next_) {
      return;
    }
    while (next_ <= now) {
      next_ += kNsPerSecond;
    }
    if (o_.quiet) {
      return;
    }
    const double dt = static_cast<double>(now - last_ns_) / kNsPerSecond;
    std::string line;
    char buf[256];
    if (std::string_view(phase) == "setup") {
      std::snprintf(buf, sizeof buf, "set-up %llu/%u connections",
                    static_cast<unsigned long long>(t.ready), o_.TotalConnections());
      line = buf;
    } else if (o_.scenario == Scenario::kConn) {
      std::snprintf(buf, sizeof buf, "%s connections=%llu closed=%llu", phase,
                    static_cast<unsigned long long>(t.ready - t.lost),
                    static_cast<unsigned long long>(t.lost));
      line = buf;
    } else {
      LatencyHistogram h;
      for (const auto& w : workers) {
        h.Merge(w->LatencySnapshot());
      }
      char p99[32] = "-";
      if (h.count() > 0) {
        std::snprintf(p99, sizeof p99, "%.1fus", static_cast<double>(h.Percentile(0.99)) / 1000);
      }
      std::snprintf(
          buf, sizeof buf, "%-7s sent/s=%.0f delivered/s=%.0f p99=%s inflight=%llu closed=%llu",
          phase, dt > 0 ? static_cast<double>(t.sent - last_sent_) / dt : 0.0,
          dt > 0 ? static_cast<double>(t.received - last_received_) / dt : 0.0, p99,
          static_cast<unsigned long long>(t.inflight), static_cast<unsigned long long>(t.lost));
      line = buf;
    }
    std::fprintf(stderr, "[%5.1fs] %s\n", static_cast<double>(now - begin_) / kNsPerSecond,
                 line.c_str());
    last_ns_ = now;
    last_sent_ = t.sent;
    last_received_ = t.received;
  }

  std::int64_t next() const { return next_; }

 private:
  const Options& o_;
  const std::int64_t begin_;
  std::int64_t next_;
  std::int64_t last_ns_ = begin_;
  std::uint64_t last_sent_ = 0;
  std::uint64_t last_received_ = 0;
};

void SleepUntil(std::int64_t deadline, std::int64_t at_most_ns) {
  const std::int64_t now = NowNs();
  const std::int64_t ns = std::clamp<std::int64_t>(deadline - now, 0, at_most_ns);
  if (ns > 0) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
  }
}

bool Interrupted(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

}  // namespace

util::Result<Report, std::string> RunBenchmark(const Options& o,
                                               const std::atomic<bool>* interrupted) {
  auto broker = Resolve(o);
  if (!broker) {
    return util::Unexpected(broker.error());
  }
  if (auto files = EnsureOpenFiles(o.TotalConnections()); !files) {
    return util::Unexpected(files.error());
  }
  std::optional<double> cpu_before;
  if (o.broker_pid != 0 && !ProcessCpuSeconds(o.broker_pid)) {
    return util::Unexpected("--broker-pid: cannot read /proc/" + std::to_string(o.broker_pid) +
                            "/stat (no such process on this machine?)");
  }

  Control control;
  control.warmup_ns = static_cast<std::int64_t>(o.warmup_s * kNsPerSecond);
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::vector<ConnSpec>& specs : BuildPlan(o)) {
    workers.push_back(std::make_unique<Worker>(o, *broker, control, std::move(specs)));
  }
  std::vector<std::thread> threads;
  auto stop_all = [&] {
    control.stop.store(true, std::memory_order_release);
    for (std::thread& t : threads) {
      t.join();
    }
    threads.clear();
  };
  const std::int64_t begin = NowNs();
  try {
    for (const auto& w : workers) {
      threads.emplace_back([worker = w.get()] { worker->Run(); });
    }
  } catch (const std::system_error& e) {
    stop_all();
    return util::Unexpected(std::string("cannot start a thread: ") + e.what());
  }
  Progress progress(o, begin);
  auto fail = [&](std::string message) -> util::Result<Report, std::string> {
    control.abort.store(true);
    stop_all();
    return util::Unexpected(std::move(message));
  };

  // Set-up: every connection connected, CONNACKed and (subscribers) SUBACKed.
  const std::uint32_t total = o.TotalConnections();
  const std::int64_t setup_deadline =
      begin + static_cast<std::int64_t>((kSetUpSeconds + total / 1000.0) * kNsPerSecond);
  for (;;) {
    if (control.abort.load()) {
      return fail(FirstError(workers));
    }
    const Totals t = Sum(workers);
    if (t.ready == total) {
      break;
    }
    const std::int64_t now = NowNs();
    if (now >= setup_deadline) {
      return fail("only " + std::to_string(t.ready) + " of " + std::to_string(total) +
                  " connections were set up within " +
                  std::to_string(static_cast<int>((setup_deadline - begin) / kNsPerSecond)) +
                  " s (CONNACK/SUBACK missing)");
    }
    if (Interrupted(interrupted)) {
      return fail("interrupted during set-up");
    }
    progress.Maybe(now, "setup", t, workers);
    SleepUntil(now + 2'000'000, 2'000'000);
  }
  Report report;
  report.options = o;
  report.connections = total;
  report.connect_s = static_cast<double>(Sum(workers).last_ready_ns - begin) / kNsPerSecond;

  // Warm-up and measurement.
  const std::int64_t start = NowNs() + kStartDelayNs;
  const std::int64_t measure_start = start + control.warmup_ns;
  const std::int64_t planned_end =
      measure_start + static_cast<std::int64_t>(o.duration_s * kNsPerSecond);
  control.send_end_ns.store(planned_end, std::memory_order_relaxed);
  control.start_ns.store(start, std::memory_order_release);
  std::int64_t send_end = planned_end;
  for (;;) {
    if (control.abort.load()) {
      return fail(FirstError(workers));
    }
    const std::int64_t now = NowNs();
    if (!cpu_before && o.broker_pid != 0 && now >= measure_start) {
      cpu_before = ProcessCpuSeconds(o.broker_pid);
    }
    if (now >= planned_end) {
      break;
    }
    if (Interrupted(interrupted)) {
      send_end = std::max(now, measure_start);
      control.send_end_ns.store(send_end, std::memory_order_relaxed);
      report.interrupted = true;
      if (!o.quiet) {
        std::fprintf(stderr, "interrupted: stopping, draining and reporting\n");
      }
      break;
    }
    progress.Maybe(now,
                   now < measure_start ? "warmup" : (o.IsMessageScenario() ? "measure" : "hold"),
                   Sum(workers), workers);
    std::int64_t wake = std::min(progress.next(), planned_end);
    if (now < measure_start) {
      wake = std::min(wake, measure_start);
    }
    SleepUntil(wake, 50'000'000);
  }
  // Sending stops at send_end; the workers see it by themselves.
  SleepUntil(send_end, kNsPerSecond);
  if (o.broker_pid != 0 && cpu_before) {
    if (const auto cpu_after = ProcessCpuSeconds(o.broker_pid)) {
      report.broker_cpu_s = *cpu_after - *cpu_before;
    }
  }
  report.measured_s = static_cast<double>(send_end - measure_start) / kNsPerSecond;

  // Drain: wait for what is still in flight.
  const std::uint64_t per_message = o.SubscribersPerMessage();
  const std::int64_t drain_end = send_end + static_cast<std::int64_t>(o.drain_s * kNsPerSecond);
  for (;;) {
    if (control.abort.load()) {
      return fail(FirstError(workers));
    }
    const std::int64_t now = NowNs();
    const Totals t = Sum(workers);
    const bool complete = o.IsMessageScenario()
                              ? t.inflight == 0 && t.received >= t.sent * per_message
                              : t.final_round_done && t.final_pongs == t.final_pings;
    if (complete || now >= drain_end) {
      report.drained = complete;
      report.drain_s = static_cast<double>(now - send_end) / kNsPerSecond;
      break;
    }
    progress.Maybe(now, "drain", t, workers);
    SleepUntil(now + 1'000'000, 1'000'000);
  }
  stop_all();
  if (control.abort.load()) {
    return util::Unexpected(FirstError(workers));
  }

  const Totals t = Sum(workers);
  LatencyHistogram latency;
  for (const auto& w : workers) {
    latency.Merge(w->latency());
    if (report.lost_reason.empty()) {
      report.lost_reason = w->lost_reason();
    }
  }
  report.sent = t.sent_measured;
  report.published = o.qos == mqtt::QoS::k0 ? t.sent_measured : t.completed_measured;
  report.refused = t.refused;
  report.expected = t.sent_measured * per_message;
  report.delivered = t.delivered;
  report.loss = report.expected > t.delivered ? report.expected - t.delivered : 0;
  report.duplicates = t.duplicates;
  report.out_of_order = t.out_of_order;
  report.foreign = t.foreign;
  report.latency_samples = latency.count();
  report.p50_ns = latency.Percentile(0.5);
  report.p99_ns = latency.Percentile(0.99);
  report.p999_ns = latency.Percentile(0.999);
  report.max_ns = latency.max();
  report.mean_ns = latency.Mean();
  report.lost_connections = t.lost;
  report.stayed_up = t.final_pongs;
  return report;
}

}  // namespace tinymq::bench
