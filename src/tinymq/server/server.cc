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

std::uint64_t RandomSeed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ std::uint64_t{device()};
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
  util::Result<std::unique_ptr<Worker>, std::string> worker = Worker::Create(
      std::move(listeners), ToBrokerLimits(config.limits, config.mqtt, RandomSeed()));
  if (!worker) {
    return util::Unexpected(worker.error());
  }
  return Server(std::move(*signals), std::move(*worker), std::move(addresses));
}

util::Result<void, std::string> Server::Run() noexcept { return worker_->Run(signals_); }

}  // namespace tinymq::server
