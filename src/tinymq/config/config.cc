#include "tinymq/config/config.h"

#include <arpa/inet.h>  // inet_pton only: a pure parser, no I/O

#include <array>
#include <string>

namespace tinymq::config {

namespace {

constexpr std::array<std::string_view, 5> kLevelNames = {"trace", "debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 3> kDestinationNames = {"stderr", "file", "syslog"};
constexpr std::array<std::string_view, 2> kPolicyNames = {"round_robin", "publisher_hash"};
constexpr std::array<std::string_view, 3> kDurabilityNames = {"always", "batch", "none"};
constexpr std::array<std::string_view, 3> kClientCertsNames = {"none", "optional", "required"};
constexpr std::array<std::string_view, 3> kCertUsernameNames = {"none", "cn", "subject"};
constexpr std::array<std::string_view, 2> kTlsVersionNames = {"1.2", "1.3"};

template <typename Enum, std::size_t N>
std::optional<Enum> ByName(const std::array<std::string_view, N>& names, std::string_view name) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) {
      return static_cast<Enum>(i);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  return kLevelNames[static_cast<std::size_t>(level)];
}

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  return ByName<LogLevel>(kLevelNames, name);
}

std::string_view LogDestinationName(LogDestination destination) {
  return kDestinationNames[static_cast<std::size_t>(destination)];
}

std::optional<LogDestination> ParseLogDestination(std::string_view name) {
  return ByName<LogDestination>(kDestinationNames, name);
}

std::string_view SharedPolicyName(SharedPolicy policy) {
  return kPolicyNames[static_cast<std::size_t>(policy)];
}

std::optional<SharedPolicy> ParseSharedPolicy(std::string_view name) {
  return ByName<SharedPolicy>(kPolicyNames, name);
}

std::string_view DurabilityName(Durability durability) {
  return kDurabilityNames[static_cast<std::size_t>(durability)];
}

std::optional<Durability> ParseDurability(std::string_view name) {
  return ByName<Durability>(kDurabilityNames, name);
}

std::string_view ClientCertsName(ClientCerts mode) {
  return kClientCertsNames[static_cast<std::size_t>(mode)];
}

std::optional<ClientCerts> ParseClientCerts(std::string_view name) {
  return ByName<ClientCerts>(kClientCertsNames, name);
}

std::string_view CertUsernameName(CertUsername from) {
  return kCertUsernameNames[static_cast<std::size_t>(from)];
}

std::optional<CertUsername> ParseCertUsername(std::string_view name) {
  return ByName<CertUsername>(kCertUsernameNames, name);
}

std::string_view TlsVersionName(TlsVersion version) {
  return kTlsVersionNames[static_cast<std::size_t>(version)];
}

std::optional<TlsVersion> ParseTlsVersion(std::string_view name) {
  return ByName<TlsVersion>(kTlsVersionNames, name);
}

std::string Quoted(std::string_view value) {
  constexpr std::size_t kMaxShown = 64;
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c > 0x7E) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (value.size() > kMaxShown) {
    out += "...";
  }
  return out + "'";
}

bool IsLoopbackAddress(std::string_view address) {
  const std::string text(address);
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET, text.c_str(), buf.data()) == 1) {
    return buf[0] == 127;
  }
  if (inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) {
    constexpr std::array<unsigned char, 16> kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                          0, 0, 0, 0, 0, 0, 0, 1};
    return buf == kLoopback6;
  }
  return false;
}

bool AnonymousAllowed(const Config& config) {
  if (config.auth.allow_anonymous) {
    return *config.auth.allow_anonymous;
  }
  if (!config.auth.password_file.empty()) {
    return false;
  }
  for (const ListenerConfig& listener : config.listeners) {
    if (!IsLoopbackAddress(listener.bind)) {
      return false;
    }
  }
  return true;
}

bool IsIpAddress(std::string_view address) {
  const std::string text(address);  // inet_pton needs a terminated string
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, text.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buf.data()) == 1;
}

}  // namespace tinymq::config
