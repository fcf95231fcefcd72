#include "tinymq/config/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tinymq/config/config_file.h"

namespace tinymq::config {
namespace {

// The error of parsing `text` as "t.toml"; fails the test if it parses.
std::string ErrorOf(std::string_view text) {
  const util::Result<Config, std::string> r = ParseConfig(text, "t.toml");
  if (r) {
    ADD_FAILURE() << "parsed, but an error was expected:\n" << text;
    return "";
  }
  return r.error();
}

Config Parsed(std::string_view text) {
  const util::Result<Config, std::string> r = ParseConfig(text, "t.toml");
  if (!r) {
    ADD_FAILURE() << r.error();
    return Config{};
  }
  return *r;
}

TEST(ConfigTest, DefaultsAreTheDocumentedOnes) {
  const Config c;
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].bind, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 1883);
  EXPECT_EQ(c.limits.connect_timeout_ms, 10'000u);
  EXPECT_EQ(c.limits.max_packet_size, 1'048'576u);
  EXPECT_EQ(c.limits.max_inflight, 20);
  EXPECT_EQ(c.limits.max_queued_messages, 1000u);
  EXPECT_EQ(c.limits.max_queued_bytes, 64u << 20);
  EXPECT_EQ(c.limits.output_high_water, 1u << 20);
  EXPECT_EQ(c.limits.max_client_id_length, 65535u);
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.workers, 0);
  EXPECT_EQ(c.data_dir, "");  // nothing kept
  EXPECT_FALSE(c.repair);
  EXPECT_EQ(c.durability, Durability::kBatch);
  EXPECT_EQ(c.sync_interval_ms, 10u);
  EXPECT_FALSE(c.listeners[0].websocket);
  EXPECT_FALSE(c.listeners[0].proxy_protocol);
  EXPECT_EQ(c.limits.max_websocket_frame_size, 4'194'304u);     // 4 MiB
  EXPECT_EQ(c.limits.max_websocket_message_size, 16'777'216u);  // 16 MiB
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.bind, "127.0.0.1");
  EXPECT_EQ(c.metrics.port, 9883);
  EXPECT_EQ(c.sys_interval_s, 10u);
  EXPECT_EQ(c.log_destination, LogDestination::kStderr);
  EXPECT_EQ(c.log_file, "");
}

TEST(ConfigTest, EmptyFileGivesDefaults) { EXPECT_EQ(Parsed(""), Config{}); }

TEST(ConfigTest, ExampleFileParsesToTheDefaults) {
  const auto r = LoadConfigFile(std::string(TINYMQ_SOURCE_DIR) + "/tinymq.example.toml");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, Config{});
}

TEST(ConfigTest, ReadsEveryKey) {
  const Config c = Parsed(R"(
log_level = "debug"
workers = 4
[[listeners]]
bind = "0.0.0.0"
port = 1884
[[listeners]]
bind = "::1"
port = 0
[limits]
connect_timeout_ms = 2500
max_packet_size = 65536
max_inflight = 100
max_queued_messages = 5000
max_queued_bytes = 1048576
output_high_water = 262144
max_client_id_length = 128
)");
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.workers, 4);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0], (ListenerConfig{"0.0.0.0", 1884, {}}));
  EXPECT_EQ(c.listeners[1], (ListenerConfig{"::1", 0, {}}));
  EXPECT_EQ(c.limits.connect_timeout_ms, 2500u);
  EXPECT_EQ(c.limits.max_packet_size, 65536u);
  EXPECT_EQ(c.limits.max_inflight, 100);
  EXPECT_EQ(c.limits.max_queued_messages, 5000u);
  EXPECT_EQ(c.limits.max_queued_bytes, 1048576u);
  EXPECT_EQ(c.limits.output_high_water, 262144u);
  EXPECT_EQ(c.limits.max_client_id_length, 128u);
}

TEST(ConfigTest, ReadsThePersistenceKeys) {
  const Config c = Parsed(R"(
data_dir = "/var/lib/tinymq"
durability = "always"
sync_interval_ms = 250
[limits]
max_inflight = 9
)");
  EXPECT_EQ(c.data_dir, "/var/lib/tinymq");
  EXPECT_EQ(c.durability, Durability::kAlways);
  EXPECT_EQ(c.sync_interval_ms, 250u);
  EXPECT_FALSE(c.repair);
  EXPECT_EQ(c.limits.max_inflight, 9);
}

TEST(ConfigTest, AcceptsEveryDurabilityAndTheSyncIntervalEnds) {
  EXPECT_EQ(Parsed("durability = 'always'").durability, Durability::kAlways);
  EXPECT_EQ(Parsed("durability = 'batch'").durability, Durability::kBatch);
  EXPECT_EQ(Parsed("durability = 'none'").durability, Durability::kNone);
  EXPECT_EQ(Parsed("sync_interval_ms = 1").sync_interval_ms, kMinSyncIntervalMs);
  EXPECT_EQ(Parsed("sync_interval_ms = 10000").sync_interval_ms, kMaxSyncIntervalMs);
  EXPECT_EQ(Parsed("data_dir = ''").data_dir, "");  // explicitly none
  EXPECT_EQ(Parsed("data_dir = 'data'").data_dir, "data");
}

TEST(ConfigTest, ReadsTheOperationsKeys) {
  const Config c = Parsed(R"(
log_destination = "file"
log_file = "/var/log/tinymq/tinymq.log"
sys_interval = 60
[[listeners]]
port = 1883
[[listeners]]
bind = "0.0.0.0"
port = 8080
websocket = true
[[listeners]]
bind = "0.0.0.0"
port = 8443
websocket = true
proxy_protocol = true
[listeners.tls]
cert = "c.pem"
key = "k.pem"
[[listeners]]
bind = "0.0.0.0"
port = 1884
proxy_protocol = true
[limits]
max_websocket_frame_size = 65536
max_websocket_message_size = 1048576
[metrics]
enabled = true
bind = "::"
port = 9100
)");
  EXPECT_EQ(c.log_destination, LogDestination::kFile);
  EXPECT_EQ(c.log_file, "/var/log/tinymq/tinymq.log");
  EXPECT_EQ(c.sys_interval_s, 60u);
  ASSERT_EQ(c.listeners.size(), 4u);
  EXPECT_EQ(c.listeners[0], ListenerConfig{});
  EXPECT_TRUE(c.listeners[1].websocket);
  EXPECT_FALSE(c.listeners[1].proxy_protocol);
  EXPECT_FALSE(c.listeners[1].tls.has_value());
  EXPECT_TRUE(c.listeners[2].websocket);  // wss: WebSocket over TLS
  EXPECT_TRUE(c.listeners[2].proxy_protocol);
  EXPECT_TRUE(c.listeners[2].tls.has_value());
  EXPECT_FALSE(c.listeners[3].websocket);
  EXPECT_TRUE(c.listeners[3].proxy_protocol);
  EXPECT_EQ(c.limits.max_websocket_frame_size, 65536u);
  EXPECT_EQ(c.limits.max_websocket_message_size, 1048576u);
  EXPECT_EQ(c.metrics, (MetricsConfig{.enabled = true, .bind = "::", .port = 9100}));
  // The listener flags take part in ==: a reload can tell that a listener changed.
  ListenerConfig ws;
  ws.websocket = true;
  EXPECT_NE(ws, ListenerConfig{});
}

TEST(ConfigTest, AcceptsTheOperationsKeysRangeEnds) {
  EXPECT_EQ(Parsed("sys_interval = 0").sys_interval_s, 0u);  // no $SYS/ topics
  EXPECT_EQ(Parsed("sys_interval = 86400").sys_interval_s, kMaxSysIntervalS);
  EXPECT_EQ(Parsed("log_destination = 'syslog'").log_destination, LogDestination::kSyslog);
  EXPECT_EQ(Parsed("log_destination = 'stderr'\nlog_file = ''").log_destination,
            LogDestination::kStderr);
  EXPECT_EQ(Parsed("[metrics]\nport = 0").metrics.port, 0);
  EXPECT_EQ(Parsed("[metrics]\nport = 65535").metrics.port, 65535);
  EXPECT_FALSE(Parsed("[metrics]\nenabled = false").metrics.enabled);
  // Both WebSocket sizes at their least, and equal: a message may be a single frame.
  const Config low =
      Parsed("[limits]\nmax_websocket_frame_size = 1024\nmax_websocket_message_size = 1024\n");
  EXPECT_EQ(low.limits.max_websocket_frame_size, kMinWebSocketFrameSize);
  EXPECT_EQ(low.limits.max_websocket_message_size, kMinWebSocketFrameSize);
  const Config high = Parsed(
      "[limits]\nmax_websocket_frame_size = 4294967295\n"
      "max_websocket_message_size = 4294967295\n");
  EXPECT_EQ(high.limits.max_websocket_frame_size, kMaxWebSocketSize);
  EXPECT_EQ(high.limits.max_websocket_message_size, kMaxWebSocketSize);
  // Only the message size raised, or the frame size lowered: checked against the other's default.
  EXPECT_EQ(
      Parsed("[limits]\nmax_websocket_message_size = 4194304\n").limits.max_websocket_message_size,
      4'194'304u);
  EXPECT_EQ(Parsed("[limits]\nmax_websocket_frame_size = 2048\n").limits.max_websocket_frame_size,
            2048u);
  // The metrics listener may share a port with an MQTT listener on another address.
  const Config shared = Parsed(
      "[[listeners]]\nbind = '127.0.0.1'\nport = 9883\n[metrics]\nenabled = true\nbind = "
      "'::1'\n");
  EXPECT_TRUE(shared.metrics.enabled);
  // A disabled metrics table is not checked against the listeners.
  EXPECT_FALSE(Parsed("[[listeners]]\nport = 9883\n[metrics]\nport = 9883\n").metrics.enabled);
}

TEST(ConfigTest, LogDestinationNamesRoundTrip) {
  for (LogDestination d :
       {LogDestination::kStderr, LogDestination::kFile, LogDestination::kSyslog}) {
    EXPECT_EQ(ParseLogDestination(LogDestinationName(d)), d);
  }
  EXPECT_EQ(LogDestinationName(LogDestination::kSyslog), "syslog");
  EXPECT_EQ(ParseLogDestination("Syslog"), std::nullopt);
  EXPECT_EQ(ParseLogDestination("journal"), std::nullopt);
}

TEST(ConfigTest, DurabilityNamesRoundTrip) {
  for (Durability d : {Durability::kAlways, Durability::kBatch, Durability::kNone}) {
    EXPECT_EQ(ParseDurability(DurabilityName(d)), d);
  }
  EXPECT_EQ(DurabilityName(Durability::kBatch), "batch");
  EXPECT_EQ(ParseDurability("Batch"), std::nullopt);
  EXPECT_EQ(ParseDurability("sync"), std::nullopt);
}

TEST(ConfigTest, ReadsEveryMqttKey) {
  const Config c = Parsed(R"([mqtt]
maximum_qos = 1
retain_available = false
wildcard_subscriptions = false
subscription_identifiers = false
shared_subscriptions = false
shared_subscription_policy = "publisher_hash"
topic_alias_maximum = 0
outbound_topic_alias_maximum = 100
receive_maximum = 65535
max_keep_alive_s = 600
max_session_expiry_s = 4294967295
)");
  EXPECT_EQ(c.mqtt.maximum_qos, 1);
  EXPECT_FALSE(c.mqtt.retain_available);
  EXPECT_FALSE(c.mqtt.wildcard_subscriptions);
  EXPECT_FALSE(c.mqtt.subscription_identifiers);
  EXPECT_FALSE(c.mqtt.shared_subscriptions);
  EXPECT_EQ(c.mqtt.shared_subscription_policy, SharedPolicy::kPublisherHash);
  EXPECT_EQ(c.mqtt.topic_alias_maximum, 0);
  EXPECT_EQ(c.mqtt.outbound_topic_alias_maximum, 100);
  EXPECT_EQ(c.mqtt.receive_maximum, 65535);
  EXPECT_EQ(c.mqtt.max_keep_alive_s, 600);
  EXPECT_EQ(c.mqtt.max_session_expiry_s, 4294967295U);
  EXPECT_EQ(c.limits, LimitsConfig{});
}

TEST(ConfigTest, MqttDefaultsOfferEveryFeature) {
  const MqttConfig m;
  EXPECT_EQ(m.maximum_qos, 2);
  EXPECT_TRUE(m.retain_available && m.wildcard_subscriptions && m.subscription_identifiers &&
              m.shared_subscriptions);
  EXPECT_EQ(m.shared_subscription_policy, SharedPolicy::kRoundRobin);
  EXPECT_EQ(m.topic_alias_maximum, 10);
  EXPECT_EQ(m.receive_maximum, 1024);
  EXPECT_EQ(SharedPolicyName(SharedPolicy::kPublisherHash), "publisher_hash");
  EXPECT_EQ(ParseSharedPolicy("round_robin"), SharedPolicy::kRoundRobin);
  EXPECT_EQ(ParseSharedPolicy("random"), std::nullopt);
}

TEST(ConfigTest, AbsentKeysKeepTheirDefaults) {
  const Config c = Parsed("[limits]\nmax_inflight = 7\n[[listeners]]\nport = 1999\n");
  EXPECT_EQ(c.limits.max_inflight, 7);
  EXPECT_EQ(c.limits.max_packet_size, LimitsConfig{}.max_packet_size);
  EXPECT_EQ(c.listeners, (std::vector<ListenerConfig>{{"127.0.0.1", 1999, {}}}));
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
}

TEST(ConfigTest, AcceptsEveryLogLevel) {
  EXPECT_EQ(Parsed("log_level = 'trace'").log_level, LogLevel::kTrace);
  EXPECT_EQ(Parsed("log_level = 'debug'").log_level, LogLevel::kDebug);
  EXPECT_EQ(Parsed("log_level = 'info'").log_level, LogLevel::kInfo);
  EXPECT_EQ(Parsed("log_level = 'warn'").log_level, LogLevel::kWarn);
  EXPECT_EQ(Parsed("log_level = 'error'").log_level, LogLevel::kError);
}

TEST(ConfigTest, AcceptsEveryWorkerCountInRange) {
  EXPECT_EQ(Parsed("workers = 0").workers, 0);  // one per core, resolved by the server
  EXPECT_EQ(Parsed("workers = 1").workers, 1);
  EXPECT_EQ(Parsed("workers = 16").workers, 16);
  EXPECT_EQ(Parsed("workers = 1024").workers, kMaxWorkers);
  const Config c = Parsed("workers = 2\n[limits]\nmax_inflight = 5\n");
  EXPECT_EQ(c.workers, 2);
  EXPECT_EQ(c.limits.max_inflight, 5);
}

TEST(ConfigTest, AcceptsTheRangeEnds) {
  const Config low = Parsed(
      "[limits]\nconnect_timeout_ms = 1\nmax_packet_size = 16\nmax_inflight = 1\n"
      "max_queued_messages = 1\nmax_queued_bytes = 1\noutput_high_water = 1\n"
      "max_client_id_length = 23\n");
  EXPECT_EQ(low.limits.max_client_id_length, 23u);
  const Config high = Parsed(
      "[limits]\nconnect_timeout_ms = 3600000\nmax_packet_size = 268435460\n"
      "max_inflight = 65535\nmax_client_id_length = 65535\n");
  EXPECT_EQ(high.limits.max_inflight, 65535);
  EXPECT_EQ(high.limits.connect_timeout_ms, 3'600'000u);
}

struct BadValue {
  const char* toml;
  const char* error;  // the whole message
};

class ConfigBadValueTest : public testing::TestWithParam<BadValue> {};

TEST_P(ConfigBadValueTest, NamesTheKeyAndTheProblem) {
  EXPECT_EQ(ErrorOf(GetParam().toml), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    EveryKey, ConfigBadValueTest,
    testing::Values(
        BadValue{"[limits]\nmax_inflight = 0",
                 "t.toml: limits.max_inflight: must be between 1 and 65535, got 0"},
        BadValue{"[limits]\nmax_inflight = 65536",
                 "t.toml: limits.max_inflight: must be between 1 and 65535, got 65536"},
        BadValue{"[limits]\nmax_inflight = '20'",
                 "t.toml: limits.max_inflight: must be an integer, got a string"},
        BadValue{"[limits]\nmax_inflight = 2.5",
                 "t.toml: limits.max_inflight: must be an integer, got a float"},
        BadValue{"[limits]\nconnect_timeout_ms = 0",
                 "t.toml: limits.connect_timeout_ms: must be between 1 and 3600000, got 0"},
        BadValue{"[limits]\nconnect_timeout_ms = -5",
                 "t.toml: limits.connect_timeout_ms: must be between 1 and 3600000, got -5"},
        BadValue{"[limits]\nmax_packet_size = 15",
                 "t.toml: limits.max_packet_size: must be between 16 and 268435460, got 15"},
        BadValue{"[limits]\nmax_packet_size = 268435461",
                 "t.toml: limits.max_packet_size: must be between 16 and 268435460, got "
                 "268435461"},
        BadValue{"[limits]\nmax_queued_messages = 0",
                 "t.toml: limits.max_queued_messages: must be at least 1, got 0"},
        BadValue{"[limits]\nmax_queued_bytes = -1",
                 "t.toml: limits.max_queued_bytes: must be at least 1, got -1"},
        BadValue{"[limits]\noutput_high_water = 0",
                 "t.toml: limits.output_high_water: must be at least 1, got 0"},
        BadValue{"[limits]\nmax_client_id_length = 22",
                 "t.toml: limits.max_client_id_length: must be between 23 and 65535, got 22"},
        BadValue{"[limits]\nmax_client_id_length = true",
                 "t.toml: limits.max_client_id_length: must be an integer, got a boolean"},
        BadValue{"[limits]\nmax_topic_levels = 0",
                 "t.toml: limits.max_topic_levels: must be between 1 and 65536, got 0"},
        BadValue{"[limits]\nmax_topic_length = 65536",
                 "t.toml: limits.max_topic_length: must be between 1 and 65535, got 65536"},
        BadValue{"[limits]\nmax_connections = 0",
                 "t.toml: limits.max_connections: must be at least 1, got 0"},
        BadValue{"[limits]\nmax_subscriptions_per_client = 0",
                 "t.toml: limits.max_subscriptions_per_client: must be at least 1, got 0"},
        BadValue{"[limits]\npublish_rate_grace_s = 86401",
                 "t.toml: limits.publish_rate_grace_s: must be between 0 and 86400, got 86401"},
        BadValue{
            "[limits]\nmax_connect_packet_size = 15",
            "t.toml: limits.max_connect_packet_size: must be between 16 and 268435460, got 15"},
        BadValue{"auth = 1", "t.toml: auth: must be a table ([auth]), got an integer"},
        BadValue{"[auth]\npasswords = 'x'", "t.toml: auth.passwords: unknown key"},
        BadValue{"[auth]\npassword_file = 5",
                 "t.toml: auth.password_file: must be a string, got an integer"},
        BadValue{"[auth]\nallow_anonymous = 'yes'",
                 "t.toml: auth.allow_anonymous: must be true or false, got a string"},
        BadValue{"[auth]\nfailure_delay_ms = 60001",
                 "t.toml: auth.failure_delay_ms: must be between 0 and 60000, got 60001"},
        BadValue{"password_file = 'p'",
                 "t.toml: password_file: unknown key (it belongs in the [auth] table)"},
        BadValue{"[[listeners]]\nport = 8883\n[listeners.tls]\nkey = 'k.pem'",
                 "t.toml: listeners[0].tls: needs cert (the server's PEM certificate chain)"},
        BadValue{"[[listeners]]\nport = 8883\n[listeners.tls]\ncert = 'c.pem'",
                 "t.toml: listeners[0].tls: needs key (the PEM private key of cert)"},
        BadValue{"[[listeners]]\nport = 8883\n[listeners.tls]\ncert = ''\nkey = 'k'",
                 "t.toml: listeners[0].tls.cert: must not be empty"},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nclient_certs = 'yes'",
                 "t.toml: listeners[0].tls.client_certs: must be \"none\", \"optional\" or "
                 "\"required\", got 'yes'"},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nclient_certs = "
                 "'required'",
                 "t.toml: listeners[0].tls.client_certs: needs ca (the CA certificates client "
                 "certificates verify against)"},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nca = 'a'\n"
                 "username_from_cert = 'cn'",
                 "t.toml: listeners[0].tls.username_from_cert: needs client_certs = \"required\""},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nmin_version = '1.3'\n"
                 "max_version = '1.2'",
                 "t.toml: listeners[0].tls.min_version: must not be above max_version"},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nmin_version = '1.1'",
                 "t.toml: listeners[0].tls.min_version: must be \"1.2\" or \"1.3\", got '1.1'"},
        BadValue{"[[listeners]]\n[listeners.tls]\ncert = 'c'\nkey = 'k'\nsni = 'x'",
                 "t.toml: listeners[0].tls.sni: unknown key"},
        BadValue{"limits = 5", "t.toml: limits: must be a table ([limits]), got an integer"},
        BadValue{"mqtt = 5", "t.toml: mqtt: must be a table ([mqtt]), got an integer"},
        BadValue{"[mqtt]\nmaximum_qos = 3",
                 "t.toml: mqtt.maximum_qos: must be between 0 and 2, got 3"},
        BadValue{"[mqtt]\nretain_available = 1",
                 "t.toml: mqtt.retain_available: must be true or false, got an integer"},
        BadValue{"[mqtt]\nshared_subscriptions = 'yes'",
                 "t.toml: mqtt.shared_subscriptions: must be true or false, got a string"},
        BadValue{"[mqtt]\nshared_subscription_policy = 'random'",
                 "t.toml: mqtt.shared_subscription_policy: must be \"round_robin\" or "
                 "\"publisher_hash\", got 'random'"},
        BadValue{"[mqtt]\nreceive_maximum = 0",
                 "t.toml: mqtt.receive_maximum: must be between 1 and 65535, got 0"},
        BadValue{"[mqtt]\ntopic_alias_maximum = 65536",
                 "t.toml: mqtt.topic_alias_maximum: must be between 0 and 65535, got 65536"},
        BadValue{"[mqtt]\nmax_session_expiry_s = 4294967296",
                 "t.toml: mqtt.max_session_expiry_s: must be between 0 and 4294967295, got "
                 "4294967296"},
        BadValue{"log_level = 'verbose'",
                 "t.toml: log_level: must be one of trace, debug, info, warn, error, got "
                 "'verbose'"},
        BadValue{"log_level = 'INFO'",
                 "t.toml: log_level: must be one of trace, debug, info, warn, error, got 'INFO'"},
        BadValue{"log_level = 3", "t.toml: log_level: must be a string, got an integer"},
        BadValue{"workers = 1025", "t.toml: workers: must be between 0 and 1024, got 1025"},
        BadValue{"workers = 65536", "t.toml: workers: must be between 0 and 1024, got 65536"},
        BadValue{"workers = -1", "t.toml: workers: must be between 0 and 1024, got -1"},
        BadValue{"workers = '4'", "t.toml: workers: must be an integer, got a string"},
        BadValue{"workers = 4.0", "t.toml: workers: must be an integer, got a float"},
        BadValue{"workers = true", "t.toml: workers: must be an integer, got a boolean"},
        BadValue{"data_dir = 5", "t.toml: data_dir: must be a string, got an integer"},
        BadValue{"data_dir = ['a']", "t.toml: data_dir: must be a string, got an array"},
        BadValue{"data_dir = \"a\\u0000b\"", "t.toml: data_dir: must not contain a NUL character"},
        BadValue{"durability = 'fsync'",
                 "t.toml: durability: must be \"always\", \"batch\" or \"none\", got 'fsync'"},
        BadValue{"durability = 'ALWAYS'",
                 "t.toml: durability: must be \"always\", \"batch\" or \"none\", got 'ALWAYS'"},
        BadValue{"durability = true", "t.toml: durability: must be a string, got a boolean"},
        BadValue{"sync_interval_ms = 0",
                 "t.toml: sync_interval_ms: must be between 1 and 10000, got 0"},
        BadValue{"sync_interval_ms = 10001",
                 "t.toml: sync_interval_ms: must be between 1 and 10000, got 10001"},
        BadValue{"sync_interval_ms = -10",
                 "t.toml: sync_interval_ms: must be between 1 and 10000, got -10"},
        BadValue{"sync_interval_ms = '10'",
                 "t.toml: sync_interval_ms: must be an integer, got a string"},
        BadValue{"[[listeners]]\nport = 65536",
                 "t.toml: listeners[0].port: must be between 0 and 65535, got 65536"},
        BadValue{"[[listeners]]\nport = -1",
                 "t.toml: listeners[0].port: must be between 0 and 65535, got -1"},
        BadValue{"[[listeners]]\nbind = 'localhost'",
                 "t.toml: listeners[0].bind: must be a numeric IPv4 or IPv6 address (no host "
                 "name, no brackets), got 'localhost'"},
        BadValue{"[[listeners]]\nbind = '[::1]'",
                 "t.toml: listeners[0].bind: must be a numeric IPv4 or IPv6 address (no host "
                 "name, no brackets), got '[::1]'"},
        BadValue{"[[listeners]]\nbind = '127.0.0.256'",
                 "t.toml: listeners[0].bind: must be a numeric IPv4 or IPv6 address (no host "
                 "name, no brackets), got '127.0.0.256'"},
        BadValue{"[[listeners]]\nbind = 1",
                 "t.toml: listeners[0].bind: must be a string, got "
                 "an integer"},
        BadValue{"[[listeners]]\nport = 1\n[[listeners]]\nport = 'x'",
                 "t.toml: listeners[1].port: must be an integer, got a string"},
        BadValue{"listeners = []", "t.toml: listeners: must contain at least one listener"},
        BadValue{"listeners = [1]", "t.toml: listeners[0]: must be a table, got an integer"},
        BadValue{"[listeners]\nport = 1",
                 "t.toml: listeners: must be an array of tables ([[listeners]]), got a table"},
        BadValue{"[[listeners]]\nport = 1884\n[[listeners]]\nbind = '127.0.0.1'\nport = 1884",
                 "t.toml: listeners[1]: same bind and port as listeners[0]"}));

INSTANTIATE_TEST_SUITE_P(
    OperationsKeys, ConfigBadValueTest,
    testing::Values(
        BadValue{"[[listeners]]\nwebsocket = 'yes'",
                 "t.toml: listeners[0].websocket: must be true or false, got a string"},
        BadValue{"[[listeners]]\nport = 1\n[[listeners]]\nport = 2\nproxy_protocol = 1",
                 "t.toml: listeners[1].proxy_protocol: must be true or false, got an integer"},
        BadValue{"[limits]\nmax_websocket_frame_size = 1023",
                 "t.toml: limits.max_websocket_frame_size: must be between 1024 and 4294967295, "
                 "got 1023"},
        BadValue{"[limits]\nmax_websocket_frame_size = 4294967296",
                 "t.toml: limits.max_websocket_frame_size: must be between 1024 and 4294967295, "
                 "got 4294967296"},
        BadValue{"[limits]\nmax_websocket_message_size = 0",
                 "t.toml: limits.max_websocket_message_size: must be between 1024 and "
                 "4294967295, got 0"},
        BadValue{"[limits]\nmax_websocket_message_size = '16MiB'",
                 "t.toml: limits.max_websocket_message_size: must be an integer, got a string"},
        BadValue{"[limits]\nmax_websocket_frame_size = 8192\nmax_websocket_message_size = 4096",
                 "t.toml: limits.max_websocket_message_size: must be at least "
                 "limits.max_websocket_frame_size (8192), got 4096"},
        BadValue{"[limits]\nmax_websocket_message_size = 4194303",
                 "t.toml: limits.max_websocket_message_size: must be at least "
                 "limits.max_websocket_frame_size (4194304), got 4194303"},
        BadValue{"[limits]\nmax_websocket_frame_size = 16777217",
                 "t.toml: limits.max_websocket_message_size: must be at least "
                 "limits.max_websocket_frame_size (16777217), got 16777216"},
        BadValue{"metrics = true", "t.toml: metrics: must be a table ([metrics]), got a boolean"},
        BadValue{"[metrics]\nenabled = 'true'",
                 "t.toml: metrics.enabled: must be true or false, got a string"},
        BadValue{"[metrics]\nbind = 'localhost'",
                 "t.toml: metrics.bind: must be a numeric IPv4 or IPv6 address (no host name, no "
                 "brackets), got 'localhost'"},
        BadValue{"[metrics]\nbind = 127", "t.toml: metrics.bind: must be a string, got an integer"},
        BadValue{"[metrics]\nport = 65536",
                 "t.toml: metrics.port: must be between 0 and 65535, got 65536"},
        BadValue{"[metrics]\nport = -1",
                 "t.toml: metrics.port: must be between 0 and 65535, got -1"},
        BadValue{"[metrics]\npath = '/metrics'", "t.toml: metrics.path: unknown key"},
        BadValue{"[metrics]\nenable = true",
                 "t.toml: metrics.enable: unknown key (did you mean 'enabled'?)"},
        BadValue{"[[listeners]]\nport = 9883\n[metrics]\nenabled = true",
                 "t.toml: metrics: same bind and port as listeners[0]"},
        BadValue{"sys_interval = -1", "t.toml: sys_interval: must be between 0 and 86400, got -1"},
        BadValue{"sys_interval = 86401",
                 "t.toml: sys_interval: must be between 0 and 86400, got 86401"},
        BadValue{"sys_interval = 1.5", "t.toml: sys_interval: must be an integer, got a float"},
        BadValue{"sys_interval_s = 10",
                 "t.toml: sys_interval_s: unknown key (did you mean 'sys_interval'?)"},
        BadValue{"log_destination = 'journal'",
                 "t.toml: log_destination: must be \"stderr\", \"file\" or \"syslog\", got "
                 "'journal'"},
        BadValue{"log_destination = 'STDERR'",
                 "t.toml: log_destination: must be \"stderr\", \"file\" or \"syslog\", got "
                 "'STDERR'"},
        BadValue{"log_destination = 1",
                 "t.toml: log_destination: must be a string, got an integer"},
        BadValue{"log_destination = 'file'",
                 "t.toml: log_destination: \"file\" needs log_file (the path of the file to log "
                 "to)"},
        BadValue{"log_destination = 'file'\nlog_file = ''",
                 "t.toml: log_destination: \"file\" needs log_file (the path of the file to log "
                 "to)"},
        BadValue{"log_file = 'tinymq.log'",
                 "t.toml: log_file: is only used with log_destination = \"file\" "
                 "(log_destination is \"stderr\")"},
        BadValue{"log_destination = 'syslog'\nlog_file = 'tinymq.log'",
                 "t.toml: log_file: is only used with log_destination = \"file\" "
                 "(log_destination is \"syslog\")"},
        BadValue{"log_destination = 'file'\nlog_file = 5",
                 "t.toml: log_file: must be a string, got an integer"},
        BadValue{"log_destination = 'file'\nlog_file = \"a\\u0000b\"",
                 "t.toml: log_file: must not contain a NUL character"},
        BadValue{"logfile = 'x'", "t.toml: logfile: unknown key (did you mean 'log_file'?)"},
        BadValue{"enabled = true",
                 "t.toml: enabled: unknown key (it belongs in the [metrics] table)"},
        BadValue{"websocket = true",
                 "t.toml: websocket: unknown key (it belongs in a [[listeners]] table)"},
        BadValue{"max_websocket_frame_size = 2048",
                 "t.toml: max_websocket_frame_size: unknown key (it belongs in the [limits] "
                 "table)"},
        // Written after a table header, a top-level key belongs to that table.
        BadValue{"[metrics]\nsys_interval = 5", "t.toml: metrics.sys_interval: unknown key"}));

INSTANTIATE_TEST_SUITE_P(
    UnknownKeys, ConfigBadValueTest,
    testing::Values(
        BadValue{"[limits]\nmax_infligt = 5",
                 "t.toml: limits.max_infligt: unknown key (did you mean 'max_inflight'?)"},
        BadValue{"[limits]\nfrobnicate = 5", "t.toml: limits.frobnicate: unknown key"},
        BadValue{"loglevel = 'info'", "t.toml: loglevel: unknown key (did you mean 'log_level'?)"},
        BadValue{"worker = 4", "t.toml: worker: unknown key (did you mean 'workers'?)"},
        BadValue{"datadir = 'x'", "t.toml: datadir: unknown key (did you mean 'data_dir'?)"},
        BadValue{"repair = true",
                 "t.toml: repair: unknown key (repair is the command-line option --repair)"},
        BadValue{"[limits]\ndurability = 'none'", "t.toml: limits.durability: unknown key"},
        // Written after a table header, a top-level key belongs to that table.
        BadValue{"[limits]\nworkers = 4", "t.toml: limits.workers: unknown key"},
        BadValue{"[listener]\nport = 1",
                 "t.toml: listener: unknown key (did you mean 'listeners'?)"},
        BadValue{"max_inflight = 5",
                 "t.toml: max_inflight: unknown key (it belongs in the [limits] table)"},
        BadValue{"port = 1884", "t.toml: port: unknown key (it belongs in a [[listeners]] table)"},
        BadValue{"maximum_qos = 1",
                 "t.toml: maximum_qos: unknown key (it belongs in the [mqtt] table)"},
        BadValue{"[mqtt]\nmaximum_qso = 1",
                 "t.toml: mqtt.maximum_qso: unknown key (did you mean 'maximum_qos'?)"},
        BadValue{"[[listeners]]\nadress = '::'", "t.toml: listeners[0].adress: unknown key"},
        BadValue{"[[listeners]]\nprot = 1",
                 "t.toml: listeners[0].prot: unknown key (did you mean 'port'?)"},
        BadValue{"[limits.nested]\nx = 1", "t.toml: limits.nested: unknown key"}));

TEST(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  const std::string e = ErrorOf("log_level = 'info'\n[limits\n");
  EXPECT_EQ(e.rfind("t.toml:2:", 0), 0u) << e;
}

TEST(ConfigTest, DuplicateKeyIsAnError) {
  const std::string e = ErrorOf("[limits]\nmax_inflight = 1\nmax_inflight = 2\n");
  EXPECT_EQ(e.rfind("t.toml:3:", 0), 0u) << e;
}

TEST(ConfigTest, PortZeroMayRepeat) {
  // Each port-0 listener gets its own free port, so two of them do not collide.
  const Config c = Parsed("[[listeners]]\nport = 0\n[[listeners]]\nport = 0\n");
  EXPECT_EQ(c.listeners.size(), 2u);
}

TEST(ConfigTest, MissingFileNamesPathAndReason) {
  const auto r = LoadConfigFile("/nonexistent/tinymq.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "/nonexistent/tinymq.toml: cannot read: no such file or directory");
}

TEST(ConfigTest, LoadsAFileAndNamesItInErrors) {
  const std::string path = testing::TempDir() + "config_test_limits.toml";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("[limits]\nmax_inflight = 0\n", f);
  std::fclose(f);
  const auto r = LoadConfigFile(path);
  std::remove(path.c_str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), path + ": limits.max_inflight: must be between 1 and 65535, got 0");
}

TEST(ConfigTest, LogLevelNamesRoundTrip) {
  for (LogLevel level :
       {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    EXPECT_EQ(ParseLogLevel(LogLevelName(level)), level);
  }
  EXPECT_EQ(ParseLogLevel("warning"), std::nullopt);
}

TEST(ConfigTest, IpAddressesAreNumericOnly) {
  EXPECT_TRUE(IsIpAddress("127.0.0.1"));
  EXPECT_TRUE(IsIpAddress("0.0.0.0"));
  EXPECT_TRUE(IsIpAddress("::"));
  EXPECT_TRUE(IsIpAddress("::1"));
  EXPECT_TRUE(IsIpAddress("fe80::1:2"));
  EXPECT_FALSE(IsIpAddress("localhost"));
  EXPECT_FALSE(IsIpAddress("[::1]"));
  EXPECT_FALSE(IsIpAddress(""));
  EXPECT_FALSE(IsIpAddress("1.2.3"));
}

}  // namespace

TEST(ConfigFileTest, AuthAndTlsParse) {
  const auto r = ParseConfig(
      "[[listeners]]\nbind = '0.0.0.0'\nport = 8883\n[listeners.tls]\ncert = 'c.pem'\n"
      "key = 'k.pem'\nca = 'ca.pem'\nclient_certs = 'required'\nusername_from_cert = "
      "'subject'\nmin_version = '1.3'\nciphersuites = 'TLS_AES_256_GCM_SHA384'\n"
      "[auth]\npassword_file = 'pw'\nacl_file = 'acl'\nallow_anonymous = true\n"
      "failure_delay_ms = 0\n[limits]\nmax_publish_rate = 100\nmax_topic_levels = 8\n",
      "t.toml");
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_TRUE(r->listeners[0].tls.has_value());
  const TlsConfig& tls = *r->listeners[0].tls;
  EXPECT_EQ(tls.cert, "c.pem");
  EXPECT_EQ(tls.key, "k.pem");
  EXPECT_EQ(tls.ca, "ca.pem");
  EXPECT_EQ(tls.client_certs, ClientCerts::kRequired);
  EXPECT_EQ(tls.username_from_cert, CertUsername::kSubject);
  EXPECT_EQ(tls.min_version, TlsVersion::k1_3);
  EXPECT_EQ(tls.max_version, TlsVersion::k1_3);
  EXPECT_EQ(tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(r->auth.password_file, "pw");
  EXPECT_EQ(r->auth.acl_file, "acl");
  EXPECT_EQ(r->auth.allow_anonymous, std::optional<bool>(true));
  EXPECT_EQ(r->auth.failure_delay_ms, 0U);
  EXPECT_EQ(r->limits.max_publish_rate, 100U);
  EXPECT_EQ(r->limits.max_topic_levels, 8U);
}

TEST(ConfigFileTest, AnonymousOnlyOnLoopbackWithoutPasswordsUnlessSaidSo) {
  Config c;
  EXPECT_TRUE(AnonymousAllowed(c));  // 127.0.0.1, no password file
  c.listeners = {ListenerConfig{"::1", 1883, {}}, ListenerConfig{"127.9.9.9", 1884, {}}};
  EXPECT_TRUE(AnonymousAllowed(c));
  c.listeners.push_back(ListenerConfig{"0.0.0.0", 1885, {}});
  EXPECT_FALSE(AnonymousAllowed(c));  // reachable from elsewhere
  c.auth.allow_anonymous = true;
  EXPECT_TRUE(AnonymousAllowed(c));
  c = Config{};
  c.auth.password_file = "pw";
  EXPECT_FALSE(AnonymousAllowed(c));
  c.auth.allow_anonymous = true;
  EXPECT_TRUE(AnonymousAllowed(c));
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("localhost"));
}

TEST(ConfigFileTest, NonAsciiOutsideStringsIsRefusedBeforeTomlSeesIt) {
  // Inputs that reach undefined behaviour inside toml++ 3.3.0 (found by the config fuzzer).
  EXPECT_EQ(ParseConfig("caf\xC3\xA9 = 1\n", "t.toml").error(),
            "t.toml:1: a non-ASCII character outside a string or comment (TOML allows them only "
            "there; quote a key that needs one)");
  EXPECT_TRUE(ParseConfig("log_level = 'info'\nlosync_i\xEF\xBB\xAFrval = 1\n", "t.toml")
                  .error()
                  .starts_with("t.toml:2: a non-ASCII character"));
  EXPECT_TRUE(ParseConfig("s = \"\"\"\\\n\xC2\xA7\"\"\"\n", "t.toml")
                  .error()
                  .starts_with("t.toml:2: a non-ASCII character"));
  // Where TOML allows them, they pass on to toml++ (and to the usual checks).
  EXPECT_TRUE(ParseConfig("# caf\xC3\xA9\ndata_dir = \"caf\xC3\xA9\"\n", "t.toml").has_value());
  EXPECT_TRUE(ParseConfig("data_dir = '''x\n\xC3\xA9'''\n", "t.toml").has_value());
  EXPECT_TRUE(ParseConfig("data_dir = \"\"\"a\\\n  b\xC3\xA9\"\"\"\n", "t.toml").has_value());
  EXPECT_EQ(ParseConfig("\"caf\xC3\xA9\" = 1\n", "t.toml").error().find("non-ASCII"),
            std::string::npos);
  EXPECT_TRUE(ParseConfig("\xEF\xBB\xBFlog_level = 'info'\n", "t.toml").has_value());
}

}  // namespace tinymq::config
