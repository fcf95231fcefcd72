#include "tinymq/config/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <vector>

namespace tinymq::config {

namespace {

constexpr std::string_view kTopKeys[] = {
    "listeners",  "limits",           "mqtt",        "auth",    "metrics",
    "log_level",  "log_destination",  "log_file",    "workers", "data_dir",
    "durability", "sync_interval_ms", "sys_interval"};
constexpr std::string_view kListenerKeys[] = {"bind", "port", "tls", "websocket", "proxy_protocol"};
constexpr std::string_view kMetricsKeys[] = {"enabled", "bind", "port"};
constexpr std::string_view kTlsKeys[] = {
    "cert",        "key",         "ca",      "client_certs", "username_from_cert",
    "min_version", "max_version", "ciphers", "ciphersuites"};
constexpr std::string_view kAuthKeys[] = {"password_file", "acl_file", "allow_anonymous",
                                          "failure_delay_ms"};
constexpr std::string_view kLimitKeys[] = {"connect_timeout_ms",
                                           "max_packet_size",
                                           "max_connect_packet_size",
                                           "max_inflight",
                                           "max_queued_messages",
                                           "max_queued_bytes",
                                           "output_high_water",
                                           "max_client_id_length",
                                           "max_connections",
                                           "max_connections_per_address",
                                           "max_topic_length",
                                           "max_topic_levels",
                                           "max_subscriptions_per_client",
                                           "max_retained_messages",
                                           "max_retained_bytes",
                                           "max_publish_rate",
                                           "publish_rate_burst",
                                           "publish_rate_grace_s",
                                           "max_websocket_frame_size",
                                           "max_websocket_message_size"};
constexpr std::string_view kMqttKeys[] = {"maximum_qos",
                                          "retain_available",
                                          "wildcard_subscriptions",
                                          "subscription_identifiers",
                                          "shared_subscriptions",
                                          "shared_subscription_policy",
                                          "topic_alias_maximum",
                                          "outbound_topic_alias_maximum",
                                          "receive_maximum",
                                          "max_keep_alive_s",
                                          "max_session_expiry_s"};

constexpr std::int64_t kUnbounded = std::numeric_limits<std::int64_t>::max();

std::string TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "an unknown type";
}

// Edit distance, for "did you mean" hints on unknown keys (keys are short; O(n*m) is fine).
std::size_t Distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string UnknownKeyProblem(std::string_view key, std::span<const std::string_view> known,
                              bool top_level) {
  std::string problem = "unknown key";
  if (top_level) {
    // A limit or a listener field written outside its table is the likeliest mistake.
    if (std::find(std::begin(kLimitKeys), std::end(kLimitKeys), key) != std::end(kLimitKeys)) {
      return problem + " (it belongs in the [limits] table)";
    }
    if (std::find(std::begin(kListenerKeys), std::end(kListenerKeys), key) !=
        std::end(kListenerKeys)) {
      return problem + " (it belongs in a [[listeners]] table)";
    }
    if (std::find(std::begin(kMqttKeys), std::end(kMqttKeys), key) != std::end(kMqttKeys)) {
      return problem + " (it belongs in the [mqtt] table)";
    }
    if (std::find(std::begin(kAuthKeys), std::end(kAuthKeys), key) != std::end(kAuthKeys)) {
      return problem + " (it belongs in the [auth] table)";
    }
    if (key == "enabled") {  // bind and port are hinted as listener keys above
      return problem + " (it belongs in the [metrics] table)";
    }
    if (key == "repair") {  // a one-off action, not a setting
      return problem + " (repair is the command-line option --repair)";
    }
  }
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only close matches: a typo, not another word
  for (std::string_view candidate : known) {
    const std::size_t d = Distance(key, candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  if (!best.empty()) {
    problem += " (did you mean '";
    problem += best;
    problem += "'?)";
  }
  return problem;
}

// Walks the parsed document into a Config, keeping the first error.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  bool failed() const { return error_.has_value(); }
  std::string TakeError() { return std::move(*error_); }

  void Fail(std::string_view key, std::string_view problem) {
    if (failed()) {
      return;
    }
    std::string e(source_);
    e += ": ";
    e += key;
    e += ": ";
    e += problem;
    error_ = std::move(e);
  }

  void CheckKeys(const toml::table& table, std::string_view prefix,
                 std::span<const std::string_view> known) {
    for (auto&& [key, node] : table) {
      const std::string_view name = key.str();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        Fail(std::string(prefix) + std::string(name),
             UnknownKeyProblem(name, known, prefix.empty()));
        return;
      }
    }
  }

  template <typename T>
  void Integer(const toml::table& table, std::string_view name, const std::string& path,
               std::int64_t min, std::int64_t max, T& out) {
    const toml::node* node = table.get(name);
    if (node == nullptr || failed()) {
      return;
    }
    const toml::value<std::int64_t>* value = node->as_integer();
    if (value == nullptr) {
      Fail(path, "must be an integer, got " + TypeName(*node));
      return;
    }
    const std::int64_t v = value->get();
    if (v < min || v > max) {
      std::string problem = max == kUnbounded ? "must be at least " + std::to_string(min)
                                              : "must be between " + std::to_string(min) + " and " +
                                                    std::to_string(max);
      Fail(path, problem + ", got " + std::to_string(v));
      return;
    }
    out = static_cast<T>(v);
  }

  void Boolean(const toml::table& table, std::string_view name, const std::string& path,
               bool& out) {
    const toml::node* node = table.get(name);
    if (node == nullptr || failed()) {
      return;
    }
    const toml::value<bool>* value = node->as_boolean();
    if (value == nullptr) {
      Fail(path, "must be true or false, got " + TypeName(*node));
      return;
    }
    out = value->get();
  }

  const std::string* String(const toml::node& node, const std::string& path) {
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr) {
      Fail(path, "must be a string, got " + TypeName(node));
      return nullptr;
    }
    return &value->get();
  }

  void ReadLogLevel(const toml::node& node, LogLevel& out) {
    const std::string* name = String(node, "log_level");
    if (name == nullptr) {
      return;
    }
    const std::optional<LogLevel> level = ParseLogLevel(*name);
    if (!level) {
      Fail("log_level", "must be one of trace, debug, info, warn, error, got " + Quoted(*name));
      return;
    }
    out = *level;
  }

  // A file or directory name: a string without NUL (`empty_ok`: "" is allowed).
  void ReadPath(const toml::node& node, const std::string& path, bool empty_ok, std::string& out) {
    const std::string* text = String(node, path);
    if (text == nullptr) {
      return;
    }
    if (text->find('\0') != std::string::npos) {
      Fail(path, "must not contain a NUL character");
      return;
    }
    if (!empty_ok && text->empty()) {
      Fail(path, "must not be empty");
      return;
    }
    out = *text;
  }

  void ReadDataDir(const toml::node& node, std::string& out) {
    ReadPath(node, "data_dir", true, out);
  }

  // A string key whose value is one of `names`, parsed by `parse`.
  template <typename T, typename Parse>
  void Choice(const toml::table& table, std::string_view name, const std::string& path,
              std::string_view names, Parse parse, T& out) {
    const toml::node* node = table.get(name);
    if (node == nullptr || failed()) {
      return;
    }
    const std::string* text = String(*node, path);
    if (text == nullptr) {
      return;
    }
    if (const std::optional<T> parsed = parse(*text)) {
      out = *parsed;
      return;
    }
    Fail(path, "must be " + std::string(names) + ", got " + Quoted(*text));
  }

  void ReadTls(const toml::node& node, const std::string& path, std::optional<TlsConfig>& out) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      Fail(path, "must be a table ([listeners.tls]), got " + TypeName(node));
      return;
    }
    CheckKeys(*table, path + ".", kTlsKeys);
    TlsConfig tls;
    for (auto [key, field] : {std::pair<std::string_view, std::string*>{"cert", &tls.cert},
                              {"key", &tls.key},
                              {"ca", &tls.ca}}) {
      if (const toml::node* value = table->get(key); value != nullptr && !failed()) {
        ReadPath(*value, path + "." + std::string(key), false, *field);
      }
    }
    Choice(*table, "client_certs", path + ".client_certs", "\"none\", \"optional\" or \"required\"",
           ParseClientCerts, tls.client_certs);
    Choice(*table, "username_from_cert", path + ".username_from_cert",
           "\"none\", \"cn\" or \"subject\"", ParseCertUsername, tls.username_from_cert);
    Choice(*table, "min_version", path + ".min_version", "\"1.2\" or \"1.3\"", ParseTlsVersion,
           tls.min_version);
    Choice(*table, "max_version", path + ".max_version", "\"1.2\" or \"1.3\"", ParseTlsVersion,
           tls.max_version);
    for (auto [key, field] : {std::pair<std::string_view, std::string*>{"ciphers", &tls.ciphers},
                              {"ciphersuites", &tls.ciphersuites}}) {
      if (const toml::node* value = table->get(key); value != nullptr && !failed()) {
        ReadPath(*value, path + "." + std::string(key), true, *field);
      }
    }
    if (failed()) {
      return;
    }
    if (tls.cert.empty() || tls.key.empty()) {
      Fail(path, tls.cert.empty() ? "needs cert (the server's PEM certificate chain)"
                                  : "needs key (the PEM private key of cert)");
    } else if (tls.client_certs != ClientCerts::kNone && tls.ca.empty()) {
      Fail(path + ".client_certs",
           "needs ca (the CA certificates client certificates verify "
           "against)");
    } else if (tls.username_from_cert != CertUsername::kNone &&
               tls.client_certs != ClientCerts::kRequired) {
      Fail(path + ".username_from_cert", "needs client_certs = \"required\"");
    } else if (tls.min_version > tls.max_version) {
      Fail(path + ".min_version", "must not be above max_version");
    } else {
      out = std::move(tls);
    }
  }

  void ReadAuth(const toml::node& node, AuthConfig& out) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      Fail("auth", "must be a table ([auth]), got " + TypeName(node));
      return;
    }
    CheckKeys(*table, "auth.", kAuthKeys);
    if (const toml::node* value = table->get("password_file"); value != nullptr && !failed()) {
      ReadPath(*value, "auth.password_file", true, out.password_file);
    }
    if (const toml::node* value = table->get("acl_file"); value != nullptr && !failed()) {
      ReadPath(*value, "auth.acl_file", true, out.acl_file);
    }
    if (table->get("allow_anonymous") != nullptr) {
      bool allow = false;
      Boolean(*table, "allow_anonymous", "auth.allow_anonymous", allow);
      out.allow_anonymous = allow;
    }
    Integer(*table, "failure_delay_ms", "auth.failure_delay_ms", 0, kMaxAuthFailureDelayMs,
            out.failure_delay_ms);
  }

  void ReadDurability(const toml::node& node, Durability& out) {
    const std::string* name = String(node, "durability");
    if (name == nullptr) {
      return;
    }
    const std::optional<Durability> durability = ParseDurability(*name);
    if (!durability) {
      Fail("durability", "must be \"always\", \"batch\" or \"none\", got " + Quoted(*name));
      return;
    }
    out = *durability;
  }

  void ReadListeners(const toml::node& node, std::vector<ListenerConfig>& out) {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      Fail("listeners", "must be an array of tables ([[listeners]]), got " + TypeName(node));
      return;
    }
    if (array->empty()) {
      Fail("listeners", "must contain at least one listener");
      return;
    }
    std::vector<ListenerConfig> listeners;
    for (std::size_t i = 0; i < array->size() && !failed(); ++i) {
      const std::string path = "listeners[" + std::to_string(i) + "]";
      const toml::table* table = (*array)[i].as_table();
      if (table == nullptr) {
        Fail(path, "must be a table, got " + TypeName((*array)[i]));
        return;
      }
      CheckKeys(*table, path + ".", kListenerKeys);
      ListenerConfig listener;
      if (const toml::node* bind = table->get("bind"); bind != nullptr && !failed()) {
        if (const std::string* address = String(*bind, path + ".bind"); address != nullptr) {
          if (!IsIpAddress(*address)) {
            Fail(path + ".bind",
                 "must be a numeric IPv4 or IPv6 address (no host name, no brackets), got " +
                     Quoted(*address));
          }
          listener.bind = *address;
        }
      }
      Integer(*table, "port", path + ".port", 0, 65535, listener.port);
      if (const toml::node* tls = table->get("tls"); tls != nullptr && !failed()) {
        ReadTls(*tls, path + ".tls", listener.tls);
      }
      Boolean(*table, "websocket", path + ".websocket", listener.websocket);
      Boolean(*table, "proxy_protocol", path + ".proxy_protocol", listener.proxy_protocol);
      for (std::size_t j = 0; j < listeners.size() && listener.port != 0; ++j) {
        if (listeners[j].bind == listener.bind && listeners[j].port == listener.port) {
          Fail(path, "same bind and port as listeners[" + std::to_string(j) + "]");
        }
      }
      listeners.push_back(std::move(listener));
    }
    if (!failed()) {
      out = std::move(listeners);
    }
  }

  void ReadLimits(const toml::node& node, LimitsConfig& out) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      Fail("limits", "must be a table ([limits]), got " + TypeName(node));
      return;
    }
    CheckKeys(*table, "limits.", kLimitKeys);
    Integer(*table, "connect_timeout_ms", "limits.connect_timeout_ms", kMinConnectTimeoutMs,
            kMaxConnectTimeoutMs, out.connect_timeout_ms);
    Integer(*table, "max_packet_size", "limits.max_packet_size", kMinPacketSize, kMaxPacketSize,
            out.max_packet_size);
    Integer(*table, "max_connect_packet_size", "limits.max_connect_packet_size", kMinPacketSize,
            kMaxPacketSize, out.max_connect_packet_size);
    Integer(*table, "max_inflight", "limits.max_inflight", 1, 65535, out.max_inflight);
    Integer(*table, "max_queued_messages", "limits.max_queued_messages", 1, kUnbounded,
            out.max_queued_messages);
    Integer(*table, "max_queued_bytes", "limits.max_queued_bytes", 1, kUnbounded,
            out.max_queued_bytes);
    Integer(*table, "output_high_water", "limits.output_high_water", 1, kUnbounded,
            out.output_high_water);
    Integer(*table, "max_client_id_length", "limits.max_client_id_length",
            static_cast<std::int64_t>(kMinClientIdLength),
            static_cast<std::int64_t>(kMaxClientIdLength), out.max_client_id_length);
    Integer(*table, "max_connections", "limits.max_connections", 1, kUnbounded,
            out.max_connections);
    Integer(*table, "max_connections_per_address", "limits.max_connections_per_address", 0,
            kUnbounded, out.max_connections_per_address);
    Integer(*table, "max_topic_length", "limits.max_topic_length", 1, 65535, out.max_topic_length);
    Integer(*table, "max_topic_levels", "limits.max_topic_levels", 1, 65536, out.max_topic_levels);
    Integer(*table, "max_subscriptions_per_client", "limits.max_subscriptions_per_client", 1,
            kUnbounded, out.max_subscriptions_per_client);
    Integer(*table, "max_retained_messages", "limits.max_retained_messages", 0, kUnbounded,
            out.max_retained_messages);
    Integer(*table, "max_retained_bytes", "limits.max_retained_bytes", 0, kUnbounded,
            out.max_retained_bytes);
    Integer(*table, "max_publish_rate", "limits.max_publish_rate", 0, 0xFFFFFFFF,
            out.max_publish_rate);
    Integer(*table, "publish_rate_burst", "limits.publish_rate_burst", 0, 0xFFFFFFFF,
            out.publish_rate_burst);
    Integer(*table, "publish_rate_grace_s", "limits.publish_rate_grace_s", 0, 86'400,
            out.publish_rate_grace_s);
    Integer(*table, "max_websocket_frame_size", "limits.max_websocket_frame_size",
            kMinWebSocketFrameSize, kMaxWebSocketSize, out.max_websocket_frame_size);
    Integer(*table, "max_websocket_message_size", "limits.max_websocket_message_size",
            kMinWebSocketFrameSize, kMaxWebSocketSize, out.max_websocket_message_size);
    // A message is one frame or more, so a message limit below the frame limit would refuse
    // frames the frame limit allows. (Checked on the result, so a file that sets only one of the
    // two is checked against the other's default.)
    if (!failed() && out.max_websocket_message_size < out.max_websocket_frame_size) {
      Fail("limits.max_websocket_message_size",
           "must be at least limits.max_websocket_frame_size (" +
               std::to_string(out.max_websocket_frame_size) + "), got " +
               std::to_string(out.max_websocket_message_size));
    }
  }

  void ReadMetrics(const toml::node& node, MetricsConfig& out) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      Fail("metrics", "must be a table ([metrics]), got " + TypeName(node));
      return;
    }
    CheckKeys(*table, "metrics.", kMetricsKeys);
    Boolean(*table, "enabled", "metrics.enabled", out.enabled);
    if (const toml::node* bind = table->get("bind"); bind != nullptr && !failed()) {
      if (const std::string* address = String(*bind, "metrics.bind"); address != nullptr) {
        if (!IsIpAddress(*address)) {
          Fail("metrics.bind",
               "must be a numeric IPv4 or IPv6 address (no host name, no brackets), got " +
                   Quoted(*address));
        }
        out.bind = *address;
      }
    }
    Integer(*table, "port", "metrics.port", 0, 65535, out.port);
  }

  // Checks that need several keys, once all are read.
  void CheckTogether(const Config& config) {
    if (failed()) {
      return;
    }
    if (config.log_destination == LogDestination::kFile && config.log_file.empty()) {
      Fail("log_destination", "\"file\" needs log_file (the path of the file to log to)");
    } else if (config.log_destination != LogDestination::kFile && !config.log_file.empty()) {
      Fail("log_file", "is only used with log_destination = \"file\" (log_destination is \"" +
                           std::string(LogDestinationName(config.log_destination)) + "\")");
    } else if (config.metrics.enabled && config.metrics.port != 0) {
      for (std::size_t i = 0; i < config.listeners.size(); ++i) {
        const ListenerConfig& listener = config.listeners[i];
        if (listener.bind == config.metrics.bind && listener.port == config.metrics.port) {
          Fail("metrics", "same bind and port as listeners[" + std::to_string(i) + "]");
          return;
        }
      }
    }
  }

  void ReadMqtt(const toml::node& node, MqttConfig& out) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      Fail("mqtt", "must be a table ([mqtt]), got " + TypeName(node));
      return;
    }
    CheckKeys(*table, "mqtt.", kMqttKeys);
    Integer(*table, "maximum_qos", "mqtt.maximum_qos", 0, 2, out.maximum_qos);
    Boolean(*table, "retain_available", "mqtt.retain_available", out.retain_available);
    Boolean(*table, "wildcard_subscriptions", "mqtt.wildcard_subscriptions",
            out.wildcard_subscriptions);
    Boolean(*table, "subscription_identifiers", "mqtt.subscription_identifiers",
            out.subscription_identifiers);
    Boolean(*table, "shared_subscriptions", "mqtt.shared_subscriptions", out.shared_subscriptions);
    if (const toml::node* policy = table->get("shared_subscription_policy");
        policy != nullptr && !failed()) {
      if (const std::string* name = String(*policy, "mqtt.shared_subscription_policy")) {
        if (auto parsed = ParseSharedPolicy(*name)) {
          out.shared_subscription_policy = *parsed;
        } else {
          Fail("mqtt.shared_subscription_policy",
               "must be \"round_robin\" or \"publisher_hash\", got " + Quoted(*name));
        }
      }
    }
    Integer(*table, "topic_alias_maximum", "mqtt.topic_alias_maximum", 0, 65535,
            out.topic_alias_maximum);
    Integer(*table, "outbound_topic_alias_maximum", "mqtt.outbound_topic_alias_maximum", 0, 65535,
            out.outbound_topic_alias_maximum);
    Integer(*table, "receive_maximum", "mqtt.receive_maximum", 1, 65535, out.receive_maximum);
    Integer(*table, "max_keep_alive_s", "mqtt.max_keep_alive_s", 0, 65535, out.max_keep_alive_s);
    Integer(*table, "max_session_expiry_s", "mqtt.max_session_expiry_s", 0, 0xFFFFFFFF,
            out.max_session_expiry_s);
  }

 private:
  std::string_view source_;
  std::optional<std::string> error_;
};

std::string Lowercased(const char* text) {
  std::string s(text);
  if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') {
    s[0] = static_cast<char>(s[0] - 'A' + 'a');
  }
  return s;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// toml++ 3.3.0 (Debian 12's) reaches __builtin_unreachable() when it asks whether a non-ASCII
// character is whitespace (upstream issues #190 and #295, fixed after 3.3.0): undefined
// behaviour on a mere typo such as a bare key `café`. TOML allows non-ASCII characters only in
// strings and comments, so anything else is refused here, with its line, before toml++ sees it;
// so is one right after a line-ending backslash in a multi-line string (where toml++ skips
// whitespace). Returns the line of the first such character.
std::optional<std::size_t> NonAsciiWhereTomlAllowsNone(std::string_view text) {
  enum class In : std::uint8_t { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  In in = In::kCode;
  std::size_t line = 1;
  std::size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte order mark
  auto at = [&](std::size_t k) { return k < text.size() ? text[k] : '\0'; };
  auto three = [&](char q) { return at(i) == q && at(i + 1) == q && at(i + 2) == q; };
  for (; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\n') {
      ++line;
      if (in == In::kComment || in == In::kBasic || in == In::kLiteral) {
        in = In::kCode;  // (an unclosed one-line string is toml++'s error to report)
      }
      continue;
    }
    switch (in) {
      case In::kCode:
        if ((static_cast<unsigned char>(ch) & 0x80) != 0) {
          return line;
        }
        if (ch == '#') {
          in = In::kComment;
        } else if (ch == '"' || ch == '\'') {
          if (three(ch)) {
            in = ch == '"' ? In::kMultiBasic : In::kMultiLiteral;
            i += 2;
          } else {
            in = ch == '"' ? In::kBasic : In::kLiteral;
          }
        }
        break;
      case In::kComment: break;
      case In::kBasic:
        if (ch == '\\') {
          ++i;  // the escaped character (a line break here is toml++'s error)
        } else if (ch == '"') {
          in = In::kCode;
        }
        break;
      case In::kLiteral:
        if (ch == '\'') {
          in = In::kCode;
        }
        break;
      case In::kMultiBasic:
        if (ch == '\\') {
          std::size_t k = i + 1;
          while (at(k) == ' ' || at(k) == '\t') {
            ++k;
          }
          if (at(k) == '\r' || at(k) == '\n') {  // a line-ending backslash: whitespace skipped
            while (at(k) == ' ' || at(k) == '\t' || at(k) == '\r' || at(k) == '\n') {
              line += at(k) == '\n' ? 1 : 0;
              ++k;
            }
            if ((static_cast<unsigned char>(at(k)) & 0x80) != 0) {
              return line;
            }
            i = k - 1;
          } else {
            ++i;  // an escape sequence
          }
        } else if (three('"')) {
          i += 2;
          while (at(i + 1) == '"') {  // up to two quotes may end the content
            ++i;
          }
          in = In::kCode;
        }
        break;
      case In::kMultiLiteral:
        if (three('\'')) {
          i += 2;
          while (at(i + 1) == '\'') {
            ++i;
          }
          in = In::kCode;
        }
        break;
    }
  }
  return std::nullopt;
}

}  // namespace

util::Result<Config, std::string> ParseConfig(std::string_view text, std::string_view source) {
  try {
    if (const std::optional<std::size_t> line = NonAsciiWhereTomlAllowsNone(text)) {
      return util::Unexpected(std::string(source) + ":" + std::to_string(*line) +
                              ": a non-ASCII character outside a string or comment (TOML "
                              "allows them only there; quote a key that needs one)");
    }
    toml::table root;
    try {
      root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
      const toml::source_position& at = e.source().begin;
      return util::Unexpected(std::string(source) + ":" + std::to_string(at.line) + ":" +
                              std::to_string(at.column) + ": " + std::string(e.description()));
    }
    Reader reader(source);
    Config config;
    reader.CheckKeys(root, "", kTopKeys);
    if (const toml::node* node = root.get("log_level"); node != nullptr && !reader.failed()) {
      reader.ReadLogLevel(*node, config.log_level);
    }
    reader.Integer(root, "workers", "workers", 0, kMaxWorkers, config.workers);
    if (const toml::node* node = root.get("data_dir"); node != nullptr && !reader.failed()) {
      reader.ReadDataDir(*node, config.data_dir);
    }
    if (const toml::node* node = root.get("durability"); node != nullptr && !reader.failed()) {
      reader.ReadDurability(*node, config.durability);
    }
    reader.Integer(root, "sync_interval_ms", "sync_interval_ms", kMinSyncIntervalMs,
                   kMaxSyncIntervalMs, config.sync_interval_ms);
    reader.Choice(root, "log_destination", "log_destination", "\"stderr\", \"file\" or \"syslog\"",
                  ParseLogDestination, config.log_destination);
    if (const toml::node* node = root.get("log_file"); node != nullptr && !reader.failed()) {
      reader.ReadPath(*node, "log_file", true, config.log_file);
    }
    reader.Integer(root, "sys_interval", "sys_interval", 0, kMaxSysIntervalS,
                   config.sys_interval_s);
    if (const toml::node* node = root.get("listeners"); node != nullptr && !reader.failed()) {
      reader.ReadListeners(*node, config.listeners);
    }
    if (const toml::node* node = root.get("limits"); node != nullptr && !reader.failed()) {
      reader.ReadLimits(*node, config.limits);
    }
    if (const toml::node* node = root.get("mqtt"); node != nullptr && !reader.failed()) {
      reader.ReadMqtt(*node, config.mqtt);
    }
    if (const toml::node* node = root.get("auth"); node != nullptr && !reader.failed()) {
      reader.ReadAuth(*node, config.auth);
    }
    if (const toml::node* node = root.get("metrics"); node != nullptr && !reader.failed()) {
      reader.ReadMetrics(*node, config.metrics);
    }
    reader.CheckTogether(config);
    if (reader.failed()) {
      return util::Unexpected(reader.TakeError());
    }
    return config;
  } catch (const std::exception& e) {  // bad_alloc on a huge file; the contract is: no throw
    return util::Unexpected(std::string(source) + ": " + e.what());
  }
}

util::Result<Config, std::string> LoadConfigFile(const std::string& path) try {
  const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    return util::Unexpected(path + ": cannot read: " + Lowercased(std::strerror(errno)));
  }
  std::string text;
  char chunk[4096];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, file.get())) > 0) {
    text.append(chunk, n);
  }
  if (std::ferror(file.get())) {  // e.g. EISDIR: fopen() succeeds on a directory, fread() fails
    return util::Unexpected(path + ": cannot read: " + Lowercased(std::strerror(errno)));
  }
  return ParseConfig(text, path);
} catch (const std::exception& e) {  // bad_alloc while reading: the contract is: no throw
  return util::Unexpected(path + ": " + e.what());
}

}  // namespace tinymq::config
