#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The validated settings of one tinymq process: where to listen (TCP, TLS, WebSocket, behind a
// PROXY-protocol load balancer), the limits the broker enforces, where and how durably it keeps its
// state, where and how much to log, and how it reports metrics. Filled from defaults, then the
// TOML file (config_file.h), then the command line (command_line.h); docs/configuration.md
// documents every field and its default.
//
// Threading: Thread-compatible.
// Lifetime:  plain values; owns all its strings.
// Errors:    none here; the parsers report bad values as text naming the key.

namespace tinymq::config {

enum class LogLevel : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError };

// "trace", "debug", "info", "warn" or "error".
std::string_view LogLevelName(LogLevel level);
// The level named `name` (exactly as LogLevelName spells it), or nullopt.
std::optional<LogLevel> ParseLogLevel(std::string_view name);

// Where the log goes (`log_destination`; docs/operations.md).
enum class LogDestination : std::uint8_t {
  kStderr,  // standard error, coloured when it is a terminal
  kFile,    // appended to Config::log_file, reopened on SIGHUP (logrotate)
  kSyslog,  // syslog(3), ident "tinymq", facility LOG_DAEMON
};
// "stderr", "file" or "syslog".
std::string_view LogDestinationName(LogDestination destination);
std::optional<LogDestination> ParseLogDestination(std::string_view name);

// `value` as an error message quotes it: between single quotes, control characters and bytes
// above 0x7E as \xNN (so a message stays one printable line), cut after 64 bytes with "...".
std::string Quoted(std::string_view value);

// True when `address` is a numeric IPv4 ("127.0.0.1") or IPv6 ("::1", no brackets) address.
// Host names are refused: resolving them would block start-up on DNS and hide which address is
// actually bound.
bool IsIpAddress(std::string_view address);

inline constexpr std::string_view kDefaultBindAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultPort = 1883;

// Whether a TLS listener asks for, and verifies, a client certificate.
enum class ClientCerts : std::uint8_t {
  kNone,      // not asked for
  kOptional,  // asked for; one that is sent must verify against `ca`
  kRequired,  // a client without a certificate that verifies against `ca` is refused
};
// "none", "optional" or "required".
std::string_view ClientCertsName(ClientCerts mode);
std::optional<ClientCerts> ParseClientCerts(std::string_view name);

// Where the username of a client with a verified certificate comes from.
enum class CertUsername : std::uint8_t {
  kNone,        // the CONNECT's User Name, checked against the password file as usual
  kCommonName,  // the certificate subject's CN; the CONNECT's User Name and Password are ignored
  kSubject,     // the whole subject, RFC 2253 form ("CN=dev1,O=Acme"); likewise
};
// "none", "cn" or "subject".
std::string_view CertUsernameName(CertUsername from);
std::optional<CertUsername> ParseCertUsername(std::string_view name);

// A TLS version, as "1.2" or "1.3" in the file.
enum class TlsVersion : std::uint8_t { k1_2, k1_3 };
std::string_view TlsVersionName(TlsVersion version);
std::optional<TlsVersion> ParseTlsVersion(std::string_view name);

// [listeners.tls]: the listener speaks TLS (OpenSSL). Paths are relative to the working
// directory; the files are read at start-up and again on SIGHUP.
struct TlsConfig {
  std::string cert;  // PEM certificate chain, the server's own first (required)
  std::string key;   // PEM private key of `cert` (required)
  std::string ca;    // PEM CA certificates client certificates must verify against
  ClientCerts client_certs = ClientCerts::kNone;          // kOptional/kRequired need `ca`
  CertUsername username_from_cert = CertUsername::kNone;  // needs client_certs = kRequired
  TlsVersion min_version = TlsVersion::k1_2;
  TlsVersion max_version = TlsVersion::k1_3;
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites;  // TLS 1.3 cipher suites (OpenSSL syntax); empty: OpenSSL's default

  bool operator==(const TlsConfig&) const = default;
};

struct ListenerConfig {
  std::string bind = std::string(kDefaultBindAddress);  // numeric IPv4 or IPv6 address
  std::uint16_t port = kDefaultPort;                    // 0: any free port (logged at start)
  std::optional<TlsConfig> tls;                         // none: plain TCP
  // MQTT over WebSocket (RFC 6455, subprotocol "mqtt"); with `tls`, over wss.
  bool websocket = false;
  // Every connection starts with a PROXY protocol v1 or v2 header (from a load balancer); the
  // client address in it is the one logs and per-address limits use.
  bool proxy_protocol = false;

  bool operator==(const ListenerConfig&) const = default;
};

// True when `address` (numeric, as ListenerConfig::bind) is a loopback address (127.0.0.0/8,
// ::1): only this machine can connect through it.
bool IsLoopbackAddress(std::string_view address);

// [auth]: who may connect, and what they may do.
struct AuthConfig {
  // Users and their password hashes (docs/security.md; written by tinymq-passwd or
  // mosquitto_passwd). Empty: no passwords.
  std::string password_file;
  // Who may publish and subscribe to what (docs/acl.md; Mosquitto's ACL format). Empty: anyone
  // connected may do anything.
  std::string acl_file;
  // Whether a client without a username is let in. Unset: only when there is no password_file
  // and every listener is on a loopback address (nothing from another machine can connect).
  std::optional<bool> allow_anonymous;
  // How long a refused CONNECT (wrong password, unknown user) waits for its CONNACK, so that
  // guessing passwords is slow. The worker goes on meanwhile.
  std::uint32_t failure_delay_ms = 1000;

  bool operator==(const AuthConfig&) const = default;
};

// Whether `config` lets in clients without a username (AuthConfig::allow_anonymous, resolved).
struct Config;
bool AnonymousAllowed(const Config& config);

// The broker's limits. The defaults equal broker::Limits' (server.cc checks this at compile time;
// this layer sits below the broker and does not include it).
struct LimitsConfig {
  std::uint32_t connect_timeout_ms = 10'000;
  std::uint32_t max_packet_size = 1'048'576;  // fixed header included
  // The largest first packet (the CONNECT) of a connection not yet connected (the broker uses
  // the smaller of this and max_packet_size).
  std::uint32_t max_connect_packet_size = 65'536;
  std::uint16_t max_inflight = 20;
  std::size_t max_queued_messages = 1000;
  std::size_t max_queued_bytes = std::size_t{64} << 20;
  std::size_t output_high_water = std::size_t{1} << 20;
  std::size_t max_client_id_length = 65535;
  // Connections at once, in all and from one source address (0: no limit per address).
  std::size_t max_connections = 100'000;
  std::size_t max_connections_per_address = 0;
  // Topic names and filters: bytes, and levels ('/'-separated parts).
  std::size_t max_topic_length = 65535;
  std::size_t max_topic_levels = 128;
  std::size_t max_subscriptions_per_client = 10'000;
  // Retained messages kept, in all, and their topic and payload bytes.
  std::size_t max_retained_messages = 1'000'000;
  std::size_t max_retained_bytes = std::size_t{1} << 30;
  // PUBLISH packets a connection may send per second (0: no limit), the burst above that rate
  // (0: one second's worth), and how long a connection may stay throttled before it is
  // disconnected (0: never).
  std::uint32_t max_publish_rate = 0;
  std::uint32_t publish_rate_burst = 0;
  std::uint32_t publish_rate_grace_s = 30;
  // WebSocket listeners only (the net layer enforces them; they have no broker::Limits twin):
  // the largest frame payload and the largest message (all its frames) accepted from a client.
  // REQUIRES (checked by the parser): max_websocket_message_size >= max_websocket_frame_size.
  std::uint32_t max_websocket_frame_size = 4'194'304;     // 4 MiB
  std::uint32_t max_websocket_message_size = 16'777'216;  // 16 MiB

  bool operator==(const LimitsConfig&) const = default;
};

// How a shared subscription picks the member that gets a message ([mqtt]
// shared_subscription_policy).
enum class SharedPolicy : std::uint8_t { kRoundRobin, kPublisherHash };

// "round_robin" or "publisher_hash".
std::string_view SharedPolicyName(SharedPolicy policy);
std::optional<SharedPolicy> ParseSharedPolicy(std::string_view name);

// What the broker offers MQTT 5 clients (announced in CONNACK, 5.0 §3.2.2.3) and enforces for
// every version where it can. The defaults equal broker::Limits'.
struct MqttConfig {
  std::uint8_t maximum_qos = 2;
  bool retain_available = true;
  bool wildcard_subscriptions = true;
  bool subscription_identifiers = true;
  bool shared_subscriptions = true;
  SharedPolicy shared_subscription_policy = SharedPolicy::kRoundRobin;
  std::uint16_t topic_alias_maximum = 10;
  std::uint16_t outbound_topic_alias_maximum = 10;
  std::uint16_t receive_maximum = 1024;
  std::uint16_t max_keep_alive_s = 0;      // 0: no maximum
  std::uint32_t max_session_expiry_s = 0;  // 0: no cap

  bool operator==(const MqttConfig&) const = default;
};

// [metrics]: an HTTP listener that serves the broker's metrics in Prometheus' text format at
// /metrics.
struct MetricsConfig {
  bool enabled = false;
  std::string bind = std::string(kDefaultBindAddress);  // numeric IPv4 or IPv6 address
  std::uint16_t port = 9883;                            // 0: any free port (logged at start)

  bool operator==(const MetricsConfig&) const = default;
};

// When an acknowledgement that promises something is kept (PUBACK, PUBREC, SUBACK, ...) goes out,
// relative to the disk (`durability`; docs/configuration.md).
enum class Durability : std::uint8_t {
  kAlways,  // after its writes are synced (one synced write per round of writes)
  kBatch,   // after its writes are synced; while writes keep coming, one sync per sync_interval_ms
  kNone,    // at once; writes reach the disk when the OS writes them back
};

// "always", "batch" or "none".
std::string_view DurabilityName(Durability durability);
std::optional<Durability> ParseDurability(std::string_view name);

// Valid ranges, shared by the file parser, its messages and the tests.
inline constexpr std::uint32_t kMinConnectTimeoutMs = 1;
inline constexpr std::uint32_t kMaxConnectTimeoutMs = 3'600'000;  // one hour
// The smallest CONNECT (3.1.1, empty client id) is 14 bytes; anything under 16 cannot work.
inline constexpr std::uint32_t kMinPacketSize = 16;
inline constexpr std::uint32_t kMaxPacketSize = 268'435'460;  // 5 + 268,435,455 (§1.5.5)
// [MQTT-3.1.3-5]: a server MUST accept client ids of 1 to 23 bytes; strings end at 65,535 bytes.
inline constexpr std::size_t kMinClientIdLength = 23;
inline constexpr std::size_t kMaxClientIdLength = 65535;
// More worker threads than this is a typo, not a machine (0 asks for one per core).
inline constexpr std::uint16_t kMaxWorkers = 1024;
// The longest sync_interval_ms: an acknowledgement may wait this long for its sync.
inline constexpr std::uint32_t kMinSyncIntervalMs = 1;
inline constexpr std::uint32_t kMaxSyncIntervalMs = 10'000;
// The longest AuthConfig::failure_delay_ms.
inline constexpr std::uint32_t kMaxAuthFailureDelayMs = 60'000;
// WebSocket sizes: a frame payload of at least 1 KiB (control frames alone may carry 125 bytes;
// anything near that would split every real packet), up to the uint32 range.
inline constexpr std::uint32_t kMinWebSocketFrameSize = 1024;
inline constexpr std::uint32_t kMaxWebSocketSize = 0xFFFF'FFFF;
// The longest sys_interval (0 turns the $SYS/ topics off): one day.
inline constexpr std::uint32_t kMaxSysIntervalS = 86'400;

struct Config {
  std::vector<ListenerConfig> listeners = {ListenerConfig{}};
  LimitsConfig limits;
  MqttConfig mqtt;
  AuthConfig auth;
  MetricsConfig metrics;
  LogLevel log_level = LogLevel::kInfo;
  // Where the log goes. kFile needs log_file, and log_file is only allowed with kFile (the
  // parsers check both; --log-file sets the two together).
  LogDestination log_destination = LogDestination::kStderr;
  std::string log_file;  // relative paths are from the working directory
  // Seconds between two updates of the $SYS/ topics; 0: no $SYS/ topics.
  std::uint32_t sys_interval_s = 10;
  // Worker threads, each with its own epoll loop and listening sockets. 0: one per CPU core, which
  // the server resolves at start-up (this layer does not ask the machine).
  std::uint16_t workers = 0;
  // Where the state that survives a restart is kept (a RocksDB database, created when missing).
  // Empty: nothing is kept.
  std::string data_dir;
  // Run RocksDB's repair on data_dir before opening it (command line only: a one-off).
  bool repair = false;
  Durability durability = Durability::kBatch;
  // kBatch: the least time between two syncs.
  std::uint32_t sync_interval_ms = 10;

  bool operator==(const Config&) const = default;
};

}  // namespace tinymq::config
