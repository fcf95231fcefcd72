#include "tinymq/server/server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

#include "tinymq/net/errno_text.h"
#include "tinymq/net/listener.h"
#include "tinymq/store/rocks_store.h"

namespace tinymq::server {

namespace {

// The config layer sits below the broker and cannot include its header, so the two sets of
// defaults are kept equal here, where both are visible.
constexpr config::LimitsConfig kConfigDefaults{};
constexpr broker::Limits kBrokerDefaults{};
static_assert(std::chrono::milliseconds(kConfigDefaults.connect_timeout_ms) ==
              kBrokerDefaults.connect_timeout);
static_assert(kConfigDefaults.max_packet_size == kBrokerDefaults.max_packet_size);
static_assert(kConfigDefaults.max_inflight == kBrokerDefaults.max_inflight);
static_assert(kConfigDefaults.max_queued_messages == kBrokerDefaults.max_queued_messages);
static_assert(kConfigDefaults.max_queued_bytes == kBrokerDefaults.max_queued_bytes);
static_assert(kConfigDefaults.output_high_water == kBrokerDefaults.output_high_water);
static_assert(kConfigDefaults.max_client_id_length == kBrokerDefaults.max_client_id_length);
constexpr config::MqttConfig kMqttDefaults{};
static_assert(kMqttDefaults.maximum_qos == static_cast<std::uint8_t>(kBrokerDefaults.maximum_qos));
static_assert(kMqttDefaults.retain_available == kBrokerDefaults.retain_available);
static_assert(kMqttDefaults.wildcard_subscriptions == kBrokerDefaults.wildcard_subscriptions);
static_assert(kMqttDefaults.subscription_identifiers == kBrokerDefaults.subscription_identifiers);
static_assert(kMqttDefaults.shared_subscriptions == kBrokerDefaults.shared_subscriptions);
static_assert(kMqttDefaults.topic_alias_maximum == kBrokerDefaults.topic_alias_maximum);
static_assert(kMqttDefaults.outbound_topic_alias_maximum ==
              kBrokerDefaults.outbound_topic_alias_maximum);
static_assert(kMqttDefaults.receive_maximum == kBrokerDefaults.receive_maximum);
static_assert(kMqttDefaults.max_keep_alive_s == kBrokerDefaults.max_keep_alive_s);
static_assert(kMqttDefaults.max_session_expiry_s == kBrokerDefaults.max_session_expiry_s);

std::string SignalName(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
}

std::uint64_t RandomSeed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ std::uint64_t{device()};
}

// "data" -> "data/", for messages that name the directory.
std::string DirName(const std::string& dir) { return dir.ends_with('/') ? dir : dir + '/'; }

// Wall-clock milliseconds since the Unix epoch at broker::Instant{} (broker::Durability).
std::int64_t WallOffsetMs() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const auto wall =
      duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  const auto steady = duration_cast<milliseconds>(broker::Clock::now().time_since_epoch());
  return static_cast<std::int64_t>((wall - steady).count());
}

std::string Counted(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

broker::RestoreCounts& operator+=(broker::RestoreCounts& a, const broker::RestoreCounts& b) {
  a.sessions += b.sessions;
  a.subscriptions += b.subscriptions;
  a.queued += b.queued;
  a.inflight += b.inflight;
  a.incoming += b.incoming;
  a.wills += b.wills;
  a.retained += b.retained;
  a.expired_sessions += b.expired_sessions;
  a.expired_messages += b.expired_messages;
  a.rerouted += b.rerouted;
  return a;
}

// Opens the store in config.data_dir, starts the committer, attaches both to every worker's broker
// and restores them (before any listener exists); logs the totals.
util::Result<void, std::string> OpenAndRestore(const config::Config& config, WorkerGroup& group,
                                               std::vector<std::unique_ptr<Worker>>& workers,
                                               std::unique_ptr<store::Store>& store,
                                               std::unique_ptr<Committer>& committer) {
  const std::string dir = DirName(config.data_dir);
  const auto started = broker::Clock::now();
  util::Result<std::unique_ptr<store::Store>, std::string> opened = store::OpenRocksStore(
      config.data_dir, {.create = true, .repair = config.repair, .log = [](std::string_view line) {
                          spdlog::warn("RocksDB: {}", line);
                        }});
  if (!opened) {
    return util::Unexpected(opened.error());
  }
  store = std::move(*opened);
  std::vector<Mailbox<Mail>*> mailboxes;
  for (const std::unique_ptr<Mailbox<Mail>>& box : group.mailboxes) {
    mailboxes.push_back(box.get());
  }
  util::Result<std::unique_ptr<Committer>, std::string> started_committer = Committer::Start(
      *store, std::move(mailboxes),
      Committer::Options{.durability = config.durability,
                         .sync_interval = std::chrono::milliseconds(config.sync_interval_ms)});
  if (!started_committer) {
    return util::Unexpected(started_committer.error());
  }
  committer = std::move(*started_committer);
  const broker::Durability durability{
      .store = store.get(),
      .acks_wait = config.durability != config::Durability::kNone,
      .wall_offset_ms = WallOffsetMs(),
      .failed = &committer->failed(),
  };
  for (const std::unique_ptr<Worker>& worker : workers) {
    worker->AttachStore(durability, *committer);
  }
  // The retained messages first (a will a restore publishes may replace one), then every
  // worker's sessions at once, each on a thread of its own (they share only thread-safe parts).
  std::vector<util::Result<broker::RestoreCounts, std::string>> results;
  results.push_back(workers.front()->Restore(broker::Clock::now(), /*retained=*/true,
                                             /*sessions=*/false));
  results.resize(workers.size() + 1, broker::RestoreCounts{});
  if (results.front()) {
    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < workers.size(); ++w) {
      threads.emplace_back([&, w] {
        results[w + 1] = workers[w]->Restore(broker::Clock::now(), /*retained=*/false);
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
  }
  broker::RestoreCounts total;
  for (const util::Result<broker::RestoreCounts, std::string>& counts : results) {
    if (!counts) {
      // The store's own errors name the directory already.
      const bool named = counts.error().starts_with(config.data_dir);
      return util::Unexpected(named ? counts.error() : dir + ": cannot restore: " + counts.error());
    }
    total += *counts;
    if (!results.front()) {
      break;
    }
  }
  const std::chrono::duration<double> took = broker::Clock::now() - started;
  spdlog::info(
      "restored from {}: {}, {}, {} queued and {} in-flight messages, {} incoming QoS 2, {}, {} "
      "retained ({}, {} dropped) in {:.2f} s",
      dir, Counted(total.sessions, "session", "sessions"),
      Counted(total.subscriptions, "subscription", "subscriptions"), total.queued, total.inflight,
      total.incoming, Counted(total.wills, "will", "wills"), total.retained,
      Counted(total.expired_sessions, "expired session", "expired sessions"),
      Counted(total.expired_messages, "expired message", "expired messages"), took.count());
  if (total.rerouted != 0) {
    spdlog::info(
        "{} QoS 2 message(s) routed again to the sessions of a worker that had not "
        "written its part when the broker stopped",
        total.rerouted);
  }
  return {};
}

}  // namespace

broker::Limits ToBrokerLimits(const config::LimitsConfig& limits, const config::MqttConfig& mqtt,
                              std::uint64_t client_id_seed) {
  broker::Limits out;
  out.connect_timeout = std::chrono::milliseconds(limits.connect_timeout_ms);
  out.max_packet_size = limits.max_packet_size;
  out.max_inflight = limits.max_inflight;
  out.max_queued_messages = limits.max_queued_messages;
  out.max_queued_bytes = limits.max_queued_bytes;
  out.output_high_water = limits.output_high_water;
  out.max_client_id_length = limits.max_client_id_length;
  out.client_id_seed = client_id_seed;
  out.maximum_qos = static_cast<mqtt::QoS>(mqtt.maximum_qos);
  out.retain_available = mqtt.retain_available;
  out.wildcard_subscriptions = mqtt.wildcard_subscriptions;
  out.subscription_identifiers = mqtt.subscription_identifiers;
  out.shared_subscriptions = mqtt.shared_subscriptions;
  out.shared_policy = mqtt.shared_subscription_policy == config::SharedPolicy::kPublisherHash
                          ? broker::SharedPolicy::kPublisherHash
                          : broker::SharedPolicy::kRoundRobin;
  out.topic_alias_maximum = mqtt.topic_alias_maximum;
  out.outbound_topic_alias_maximum = mqtt.outbound_topic_alias_maximum;
  out.receive_maximum = mqtt.receive_maximum;
  out.max_keep_alive_s = mqtt.max_keep_alive_s;
  out.max_session_expiry_s = mqtt.max_session_expiry_s;
  return out;
}

util::Result<Server, std::string> Server::Create(const config::Config& config) {
  // First, so that a signal during start-up already ends in a clean stop.
  util::Result<net::SignalFd, std::string> signals = net::SignalFd::Create({SIGINT, SIGTERM});
  if (!signals) {
    return util::Unexpected(signals.error());
  }
  const std::uint16_t count = ResolveWorkerCount(config.workers);
  const int ended = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ended < 0) {
    return util::Unexpected("eventfd: " + net::ErrnoText(errno));
  }
  net::Fd worker_ended(ended);
  util::Result<std::unique_ptr<WorkerGroup>, std::string> group = WorkerGroup::Create(count);
  if (!group) {
    return util::Unexpected(group.error());
  }
  const broker::Limits limits = ToBrokerLimits(config.limits, config.mqtt, RandomSeed());
  // Declared in this order so that a failed start destroys the workers, then the committer (which
  // posts to the group's mailboxes and writes to the store), then the store.
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Committer> committer;
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::uint16_t w = 0; w < count; ++w) {
    util::Result<std::unique_ptr<Worker>, std::string> worker = Worker::Create(limits, w, **group);
    if (!worker) {
      return util::Unexpected(worker.error());
    }
    workers.push_back(std::move(*worker));
  }
  // The store and what it restores come before the listeners: no client may connect to a broker
  // that does not know its session yet.
  if (!config.data_dir.empty()) {
    if (auto restored = OpenAndRestore(config, **group, workers, store, committer); !restored) {
      return util::Unexpected(restored.error());
    }
  }
  std::vector<std::string> addresses;
  for (const config::ListenerConfig& l : config.listeners) {
    util::Result<std::vector<net::Listener>, std::string> sockets =
        net::Listener::BindGroup(l.bind, l.port, count);
    if (!sockets) {
      return util::Unexpected(sockets.error());
    }
    addresses.push_back(sockets->front().address());
    for (std::uint16_t w = 0; w < count; ++w) {
      std::vector<net::Listener> one;
      one.push_back(std::move((*sockets)[w]));
      if (auto added = workers[w]->AddListeners(std::move(one)); !added) {
        return util::Unexpected(added.error());
      }
    }
  }
  return Server(std::move(*signals), std::move(worker_ended), std::move(store), std::move(*group),
                std::move(committer), std::move(workers), std::move(addresses));
}

std::uint16_t ResolveWorkerCount(std::uint16_t configured) {
  if (configured != 0) {
    return configured;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return static_cast<std::uint16_t>(std::clamp(cores, 1U, unsigned{config::kMaxWorkers}));
}

util::Result<void, std::string> Server::Run() noexcept {
  std::vector<util::Result<void, std::string>> results(workers_.size());
  std::vector<std::thread> threads;
  try {
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      threads.emplace_back([this, w, &results] {
        results[w] = workers_[w]->Run();
        const std::uint64_t one = 1;
        (void)!::write(worker_ended_.get(), &one, sizeof one);
      });
    }
  } catch (const std::system_error& e) {  // no thread: stop those that started
    results.front() = util::Unexpected(std::string("cannot start a worker thread: ") + e.what());
  }
  spdlog::debug("{} worker(s) running", threads.size());
  // Wait for a stop signal, or for a worker that ended on its own (its loop failed).
  while (threads.size() == workers_.size()) {
    std::array<pollfd, 2> fds{pollfd{signals_.fd(), POLLIN, 0},
                              pollfd{worker_ended_.get(), POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      results.front() = util::Unexpected("poll: " + net::ErrnoText(errno));
      break;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      break;
    }
    if (const std::optional<int> signal = signals_.Read()) {
      spdlog::info("{} received: closing every connection and stopping", SignalName(*signal));
      break;
    }
  }
  for (const std::unique_ptr<Mailbox<Mail>>& box : group_->mailboxes) {
    std::vector<Mail> stop(1);
    stop.front().kind = Mail::Kind::kStop;
    while (box->Post(stop) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // full: the worker drains it
    }
  }
  for (std::thread& t : threads) {
    t.join();
  }
  if (committer_ != nullptr) {
    committer_->Stop();  // writes and syncs what the workers' last turns submitted
  }
  for (util::Result<void, std::string>& r : results) {
    if (!r) {
      return r;
    }
  }
  return {};
}

}  // namespace tinymq::server
