#include "tinymq/server/server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
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
#include "tinymq/server/access.h"
#include "tinymq/server/metrics.h"
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
static_assert(kConfigDefaults.max_connect_packet_size == kBrokerDefaults.max_connect_packet_size);
static_assert(kConfigDefaults.max_connections == kBrokerDefaults.max_connections);
static_assert(kConfigDefaults.max_connections_per_address ==
              kBrokerDefaults.max_connections_per_address);
static_assert(kConfigDefaults.max_topic_length == kBrokerDefaults.max_topic_length);
static_assert(kConfigDefaults.max_topic_levels == kBrokerDefaults.max_topic_levels);
static_assert(kConfigDefaults.max_subscriptions_per_client ==
              kBrokerDefaults.max_subscriptions_per_client);
static_assert(kConfigDefaults.max_retained_messages == kBrokerDefaults.max_retained_messages);
static_assert(kConfigDefaults.max_retained_bytes == kBrokerDefaults.max_retained_bytes);
static_assert(kConfigDefaults.max_publish_rate == kBrokerDefaults.max_publish_rate);
static_assert(kConfigDefaults.publish_rate_burst == kBrokerDefaults.publish_rate_burst);
static_assert(std::chrono::seconds(kConfigDefaults.publish_rate_grace_s) ==
              kBrokerDefaults.publish_rate_grace);
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

// Descriptors that are not client connections, beyond those of the workers (each has an epoll
// instance, a mailbox eventfd and a socket per listener): the store's files, the signalfd and
// eventfds, standard streams, password and certificate files being read, and a margin.
constexpr std::size_t kDescriptorReserve = 512;

// Raises the soft limit on open files to the hard limit (each connection holds a descriptor), and
// warns when max_connections plus the reserve does not fit under it: the descriptor limit is then
// the real cap (accept() fails with EMFILE and the workers back off).
void RaiseDescriptorLimit(const config::Config& config, std::uint16_t workers) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("getrlimit(RLIMIT_NOFILE): {}", net::ErrnoText(errno));
    return;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      limit = raised;
    } else {
      spdlog::warn("cannot raise the open-file limit from {} to {}: {}", limit.rlim_cur,
                   limit.rlim_max, net::ErrnoText(errno));
    }
  }
  const std::size_t reserve =
      kDescriptorReserve + std::size_t{workers} * (2 + config.listeners.size());
  if (limit.rlim_cur != RLIM_INFINITY && config.limits.max_connections + reserve > limit.rlim_cur) {
    const std::size_t room = limit.rlim_cur > reserve ? limit.rlim_cur - reserve : 0;
    spdlog::warn(
        "limits.max_connections is {} but the open-file limit is {} ({} kept for other uses): "
        "at most about {} connections can be open at once (raise the hard limit: ulimit -Hn, "
        "systemd LimitNOFILE=)",
        config.limits.max_connections, limit.rlim_cur, reserve, room);
  }
}

// The TLS context of each listener of `config` (null for a plain one), its files read now.
// Errors name the listener: "127.0.0.1:8883: tls.cert server.pem: cannot read: ...".
util::Result<std::vector<std::shared_ptr<net::TlsContext>>, std::string> LoadTls(
    const config::Config& config) {
  std::vector<std::shared_ptr<net::TlsContext>> contexts;
  for (const config::ListenerConfig& l : config.listeners) {
    if (!l.tls) {
      contexts.emplace_back();
      continue;
    }
    util::Result<std::unique_ptr<net::TlsContext>, std::string> context =
        net::TlsContext::Create(*l.tls);
    if (!context) {
      return util::Unexpected(net::FormatAddress(l.bind, l.port) + ": " + context.error());
    }
    contexts.push_back(std::move(*context));
  }
  return contexts;
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
  std::vector<Mailbox<Mail>*> mailboxes = group.MailboxPointers();
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
  out.max_connect_packet_size = limits.max_connect_packet_size;
  out.max_connections = limits.max_connections;
  out.max_connections_per_address = limits.max_connections_per_address;
  out.max_topic_length = limits.max_topic_length;
  out.max_topic_levels = limits.max_topic_levels;
  out.max_subscriptions_per_client = limits.max_subscriptions_per_client;
  out.max_retained_messages = limits.max_retained_messages;
  out.max_retained_bytes = limits.max_retained_bytes;
  out.max_publish_rate = limits.max_publish_rate;
  out.publish_rate_burst = limits.publish_rate_burst;
  out.publish_rate_grace = std::chrono::seconds(limits.publish_rate_grace_s);
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

util::Result<Server, std::string> Server::Create(const config::Config& config, ServerHooks hooks) {
  // First, so that a signal during start-up already ends in a clean stop.
  util::Result<net::SignalFd, std::string> signals =
      net::SignalFd::Create({SIGINT, SIGTERM, SIGHUP});
  if (!signals) {
    return util::Unexpected(signals.error());
  }
  const std::uint16_t count = ResolveWorkerCount(config.workers);
  RaiseDescriptorLimit(config, count);
  // Certificates before anything slow (a restore): a bad file should stop the start at once.
  util::Result<std::vector<std::shared_ptr<net::TlsContext>>, std::string> tls = LoadTls(config);
  if (!tls) {
    return util::Unexpected(tls.error());
  }
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
  (*group)->caps =
      std::make_unique<ConnectionCaps>(limits.max_connections, limits.max_connections_per_address);
  (*group)->stats = std::make_unique<StatsBoard>(count);
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
    (*worker)->SetWebSocketLimits({.max_frame_size = config.limits.max_websocket_frame_size,
                                   .max_message_size = config.limits.max_websocket_message_size});
    workers.push_back(std::move(*worker));
  }
  // Who may connect, before anyone can.
  util::Result<std::shared_ptr<const broker::AccessPolicy>, std::string> access =
      LoadAccess(config);
  if (!access) {
    return util::Unexpected(access.error());
  }
  {
    // PBKDF2 runs on threads of its own: at most half the cores, so that a flood of CONNECTs
    // with wrong passwords cannot take the workers' CPU. (Made even without a password file: a
    // reload may bring one.)
    (*group)->verifier = std::make_unique<Verifier>(
        (*group)->MailboxPointers(),
        Verifier::Options{
            .threads = std::max<std::size_t>(1, count / 2),
            .stale_after = std::chrono::milliseconds(config.limits.connect_timeout_ms)});
  }
  for (const std::unique_ptr<Worker>& worker : workers) {
    worker->SetAccess(*access);
  }
  spdlog::info("access: {}", DescribeAccess(config, **access));
  if ((*access)->acl != nullptr && (*access)->passwords == nullptr &&
      !std::any_of(config.listeners.begin(), config.listeners.end(), [](const auto& l) {
        return l.tls && l.tls->username_from_cert != config::CertUsername::kNone;
      })) {
    spdlog::warn(
        "the ACL's user rules rest on usernames nobody checks: without a password file "
        "(or certificate usernames) a client may claim any username");
  }
  if (!(*access)->allow_anonymous && (*access)->passwords == nullptr &&
      !std::any_of(config.listeners.begin(), config.listeners.end(), [](const auto& l) {
        return l.tls && l.tls->username_from_cert != config::CertUsername::kNone;
      })) {
    spdlog::warn(
        "anonymous clients are not allowed and there is no password file: no client can "
        "connect (set [auth] password_file, or allow_anonymous = true)");
  }
  // The store and what it restores come before the listeners: no client may connect to a broker
  // that does not know its session yet.
  if (!config.data_dir.empty()) {
    if (auto restored = OpenAndRestore(config, **group, workers, store, committer); !restored) {
      return util::Unexpected(restored.error());
    }
  }
  // The process-wide figures, for the $SYS/ topics (worker 0 publishes them) and the metrics
  // listener. (The committer and the group outlive every caller: the workers and the metrics
  // listener stop first.)
  {
    WorkerGroup* g = group->get();
    Committer* c = committer.get();
    const auto started = std::chrono::steady_clock::now();
    g->server_stats = [g, c, started, version = hooks.version] {
      ServerStats out;
      out.refused_max_connections = g->caps->refused(ConnectionCaps::Verdict::kOverTotal);
      out.refused_max_connections_per_address =
          g->caps->refused(ConnectionCaps::Verdict::kOverAddress);
      out.retained_messages = g->retained.size();
      out.retained_bytes = g->retained.bytes();
      if (c != nullptr) {
        out.store_write_latency = c->write_latency();
        out.store_batches = out.store_write_latency.count();
      }
      out.uptime = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - started);
      out.version = version;
      return out;
    };
  }
  workers.front()->PublishSysTopics(std::chrono::seconds(config.sys_interval_s), hooks.version);
  std::unique_ptr<MetricsHttpServer> metrics;
  if (config.metrics.enabled) {
    WorkerGroup* g = group->get();
    util::Result<std::unique_ptr<MetricsHttpServer>, std::string> started =
        MetricsHttpServer::Start(config.metrics.bind, config.metrics.port, [g] {
          return RenderPrometheus(g->stats->Read(), g->server_stats());
        });
    if (!started) {
      return util::Unexpected("metrics: " + started.error());
    }
    metrics = std::move(*started);
    spdlog::info("metrics: Prometheus text at http://{}/metrics", metrics->address());
  }
  std::vector<std::string> addresses;
  std::vector<TlsListener> tls_listeners;
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const config::ListenerConfig& l = config.listeners[i];
    util::Result<std::vector<net::Listener>, std::string> sockets =
        net::Listener::BindGroup(l.bind, l.port, count);
    if (!sockets) {
      return util::Unexpected(sockets.error());
    }
    addresses.push_back(sockets->front().address());
    const std::shared_ptr<net::TlsContext>& context = (*tls)[i];
    if (context != nullptr) {
      tls_listeners.push_back(TlsListener{addresses.back(), context});
    }
    for (std::uint16_t w = 0; w < count; ++w) {
      if (auto added =
              workers[w]->AddListener(std::move((*sockets)[w]), context,
                                      Worker::ListenerOptions{.websocket = l.websocket,
                                                              .proxy_protocol = l.proxy_protocol});
          !added) {
        return util::Unexpected(added.error());
      }
    }
  }
  return Server(std::move(*signals), std::move(worker_ended), std::move(store), std::move(*group),
                std::move(committer), std::move(workers), std::move(metrics), std::move(addresses),
                std::move(tls_listeners), config, std::move(hooks));
}

namespace {

// What a reload cannot change, named for its warning; empty when nothing of it changed.
std::vector<std::string> NeedRestart(const config::Config& running, const config::Config& read) {
  std::vector<std::string> changed;
  if (running.listeners != read.listeners) {
    changed.emplace_back("listeners");
  }
  if (running.workers != read.workers) {
    changed.emplace_back("workers");
  }
  if (running.data_dir != read.data_dir || running.durability != read.durability ||
      running.sync_interval_ms != read.sync_interval_ms) {
    changed.emplace_back("data_dir, durability, sync_interval_ms");
  }
  if (running.metrics != read.metrics) {
    changed.emplace_back("[metrics]");
  }
  if (running.mqtt != read.mqtt) {
    changed.emplace_back("[mqtt] (announced to connected clients in their CONNACK)");
  }
  if (running.sys_interval_s != read.sys_interval_s) {
    changed.emplace_back("sys_interval");
  }
  if (running.limits.max_websocket_frame_size != read.limits.max_websocket_frame_size ||
      running.limits.max_websocket_message_size != read.limits.max_websocket_message_size) {
    changed.emplace_back("max_websocket_frame_size, max_websocket_message_size");
  }
  if ((running.limits.max_connections_per_address != 0) !=
      (read.limits.max_connections_per_address != 0)) {
    changed.emplace_back("max_connections_per_address on or off");
  }
  return changed;
}

}  // namespace

void Server::PostToAll(Mail::Kind kind, const std::function<void(Mail&)>& fill) noexcept {
  for (const std::unique_ptr<Mailbox<Mail>>& box : group_->mailboxes) {
    std::vector<Mail> mail(1);
    mail.front().kind = kind;
    if (fill) {
      fill(mail.front());
    }
    while (box->Post(mail) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // full: the worker drains it
    }
  }
}

bool Server::Reload() noexcept {
  bool ok = true;
  // The configuration again; one that does not parse changes nothing.
  config::Config read = config_;
  if (hooks_.reread) {
    util::Result<config::Config, std::string> reread = hooks_.reread();
    if (!reread) {
      spdlog::error("configuration not reloaded, everything stays as it is: {}", reread.error());
      return false;
    }
    read = std::move(*reread);
  }
  if (const std::vector<std::string> changed = NeedRestart(config_, read); !changed.empty()) {
    std::string list;
    for (const std::string& c : changed) {
      list += (list.empty() ? "" : "; ") + c;
    }
    spdlog::warn("changed in the configuration but needs a restart, kept as they are: {}", list);
  }
  // Logging first, so that what follows is logged at the new level.
  if (hooks_.apply_logging) {
    if (util::Result<void, std::string> applied = hooks_.apply_logging(read); !applied) {
      spdlog::error("logging settings not reloaded, the old ones stay: {}", applied.error());
      ok = false;
    } else {
      config_.log_level = read.log_level;
      config_.log_destination = read.log_destination;
      config_.log_file = read.log_file;
    }
  }
  // TLS: each listener's certificate chain, key and CAs, read again. Connections accepted from now
  // on get them; open ones keep the session they have. A listener whose files fail keeps the ones
  // it had.
  for (const TlsListener& l : tls_) {
    if (util::Result<void, std::string> reloaded = l.context->Reload(); !reloaded) {
      spdlog::error("{}: TLS certificates not reloaded, the old ones stay: {}", l.address,
                    reloaded.error());
      ok = false;
    } else {
      spdlog::info("{}: TLS certificates reloaded", l.address);
    }
  }
  // The password file and the ACL: read again and posted to every worker (Mail::kAccess); the
  // old ones stay when either fails. (The anonymous rule's default depends on the listeners,
  // which stay.)
  config::Config access_config = config_;
  access_config.auth = read.auth;
  util::Result<std::shared_ptr<const broker::AccessPolicy>, std::string> access =
      LoadAccess(access_config);
  if (!access) {
    spdlog::error("access not reloaded, the old password file and ACL stay: {}", access.error());
    ok = false;
  } else {
    PostToAll(Mail::Kind::kAccess, [&](Mail& mail) { mail.access = *access; });
    config_.auth = read.auth;
    spdlog::info("access reloaded: {}", DescribeAccess(access_config, **access));
  }
  // The resource limits: for what comes next (Broker::SetLimits takes the [limits] fields only).
  if (read.limits != config_.limits) {
    auto limits =
        std::make_shared<const broker::Limits>(ToBrokerLimits(read.limits, config_.mqtt, 0));
    PostToAll(Mail::Kind::kLimits, [&](Mail& mail) { mail.limits = limits; });
    if (group_->caps != nullptr) {
      (void)group_->caps->SetCaps(
          limits->max_connections,
          group_->caps->per_address() ? read.limits.max_connections_per_address : 0);
    }
    const std::uint32_t frame = config_.limits.max_websocket_frame_size;
    const std::uint32_t message = config_.limits.max_websocket_message_size;
    const std::size_t per_address = config_.limits.max_connections_per_address;
    config_.limits = read.limits;
    config_.limits.max_websocket_frame_size = frame;  // these stay (NeedRestart)
    config_.limits.max_websocket_message_size = message;
    if ((per_address != 0) != (read.limits.max_connections_per_address != 0)) {
      config_.limits.max_connections_per_address = per_address;
    }
    spdlog::info("limits reloaded");
  }
  return ok;
}

void Server::ShutDown() noexcept {
  PostToAll(Mail::Kind::kShutdown);
  const auto deadline = std::chrono::steady_clock::now() + kShutdownTimeout;
  // Done once every worker has closed its connections and no mail is left between them twice in
  // a row (a worker's last turn may still post to another).
  int quiet = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::array<pollfd, 2> fds{pollfd{signals_.fd(), POLLIN, 0},
                              pollfd{worker_ended_.get(), POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), 10) > 0) {
      if ((fds[1].revents & POLLIN) != 0) {
        return;  // a worker failed: stop the others now
      }
      if (const std::optional<int> signal = signals_.Read(); signal && *signal != SIGHUP) {
        spdlog::info("{} received again: stopping now", SignalName(*signal));
        return;
      }
    }
    const bool drained = group_->drained.load(std::memory_order_relaxed) == group_->size();
    const bool idle = std::all_of(group_->mailboxes.begin(), group_->mailboxes.end(),
                                  [](const auto& box) { return box->empty(); }) &&
                      (committer_ == nullptr || !committer_->backlogged());
    quiet = drained && idle ? quiet + 1 : 0;
    if (quiet >= 2) {
      return;
    }
  }
  spdlog::warn("shutdown: workers still busy after {} ms; stopping them anyway",
               kShutdownTimeout.count());
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
      if (*signal == SIGHUP) {
        spdlog::info("SIGHUP received: reloading");
        (void)Reload();
        continue;
      }
      spdlog::info("{} received: closing every connection and stopping", SignalName(*signal));
      if (threads.size() == workers_.size()) {
        ShutDown();
      }
      break;
    }
  }
  PostToAll(Mail::Kind::kStop);
  for (std::thread& t : threads) {
    t.join();
  }
  if (metrics_ != nullptr) {
    metrics_->Stop();
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
