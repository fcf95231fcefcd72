#include "tinymq/config/config.h"

#include <arpa/inet.h>  // inet_pton only: a pure parser, no I/O

#include <array>
#include <string>

namespace tinymq::config {

namespace {

constexpr std::array<std::string_view, 5> kLevelNames = {"trace", "debug", "info", "warn", "error"};

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  return kLevelNames[static_cast<std::size_t>(level)];
}

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i) {
    if (kLevelNames[i] == name) {
      return static_cast<LogLevel>(i);
    }
  }
  return std::nullopt;
}

bool IsIpAddress(std::string_view address) {
  const std::string text(address);  // inet_pton needs a terminated string
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, text.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buf.data()) == 1;
}

}  // namespace tinymq::config
