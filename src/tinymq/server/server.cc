#include "tinymq/server/server.h"

#include <chrono>
#include <csignal>
#include <random>
#include <utility>

#include "tinymq/net/listener.h"

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

std::uint64_t RandomSeed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ std::uint64_t{device()};
}

}  // namespace

broker::Limits ToBrokerLimits(const config::LimitsConfig& limits, std::uint64_t client_id_seed) {
  broker::Limits out;
  out.connect_timeout = std::chrono::milliseconds(limits.connect_timeout_ms);
  out.max_packet_size = limits.max_packet_size;
  out.max_inflight = limits.max_inflight;
  out.max_queued_messages = limits.max_queued_messages;
  out.max_queued_bytes = limits.max_queued_bytes;
  out.output_high_water = limits.output_high_water;
  out.max_client_id_length = limits.max_client_id_length;
  out.client_id_seed = client_id_seed;
  return out;
}

util::Result<Server, std::string> Server::Create(const config::Config& config) {
  // First, so that a signal during start-up already ends in a clean stop.
  util::Result<net::SignalFd, std::string> signals = net::SignalFd::Create({SIGINT, SIGTERM});
  if (!signals) {
    return util::Unexpected(signals.error());
  }
  std::vector<net::Listener> listeners;
  std::vector<std::string> addresses;
  for (const config::ListenerConfig& l : config.listeners) {
    util::Result<net::Listener, std::string> listener = net::Listener::Bind(l.bind, l.port);
    if (!listener) {
      return util::Unexpected(listener.error());
    }
    addresses.push_back(listener->address());
    listeners.push_back(std::move(*listener));
  }
  util::Result<std::unique_ptr<Worker>, std::string> worker =
      Worker::Create(std::move(listeners), ToBrokerLimits(config.limits, RandomSeed()));
  if (!worker) {
    return util::Unexpected(worker.error());
  }
  return Server(std::move(*signals), std::move(*worker), std::move(addresses));
}

util::Result<void, std::string> Server::Run() noexcept { return worker_->Run(signals_); }

}  // namespace tinymq::server
