#include "tinymq/config/config.h"

#include <arpa/inet.h>  // inet_pton only: a pure parser, no I/O

#include <array>
#include <string>

namespace tinymq::config {

namespace {

constexpr std::array<std::string_view, 5> kLevelNames = {"trace", "debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 2> kPolicyNames = {"round_robin", "publisher_hash"};
constexpr std::array<std::string_view, 3> kDurabilityNames = {"always", "batch", "none"};

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

bool IsIpAddress(std::string_view address) {
  const std::string text(address);  // inet_pton needs a terminated string
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, text.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buf.data()) == 1;
}

}  // namespace tinymq::config
