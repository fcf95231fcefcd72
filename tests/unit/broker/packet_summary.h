#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/reason_code.h"

// One line per packet a client received, for tests that compare whole exchanges as text
// (broker_access_test.cc, broker_limits_test.cc).
//
// Threading: Thread-compatible (test code).

namespace tinymq::broker::testing {

inline std::string Hex(std::uint8_t byte) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02X", static_cast<unsigned>(byte));
  return text;
}
inline std::string Hex(mqtt::ReasonCode code) { return Hex(static_cast<std::uint8_t>(code)); }

inline std::string VersionName(const ::testing::TestParamInfo<mqtt::ProtocolVersion>& param) {
  return param.param == mqtt::ProtocolVersion::kV5 ? "V5" : "V311";
}

// What a client received, one entry per packet, with the fields the tests compare:
// "CONNACK 0x86" (3.1.x: "CONNACK rc5"; " sp" when a session is present), "SUBACK 1 [0x01 0x87]",
// "PUBLISH a/x q1 'payload'" (" retain", " dup" when set), "PUBACK 7 0x87" (3.1.x: "PUBACK 7"),
// "DISCONNECT 0x96"; " | " between packets.
inline std::string Summary(const std::vector<mqtt::Packet>& packets,
                           mqtt::ProtocolVersion version) {
  const bool v5 = version == mqtt::ProtocolVersion::kV5;
  std::string out;
  auto ack = [&](std::string_view name, std::uint16_t id, mqtt::ReasonCode reason) {
    out += std::string(name) + " " + std::to_string(id) + (v5 ? " " + Hex(reason) : "");
  };
  for (const mqtt::Packet& packet : packets) {
    if (!out.empty()) {
      out += " | ";
    }
    std::visit(
        [&](const auto& p) {
          using T = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<T, mqtt::Connack>) {
            const auto rc = mqtt::ToConnackReturnCode(p.reason);
            out +=
                "CONNACK " + (v5 ? Hex(p.reason)
                                 : "rc" + (rc ? std::to_string(static_cast<unsigned>(*rc)) : "?"));
            out += p.session_present ? " sp" : "";
          } else if constexpr (std::is_same_v<T, mqtt::Suback>) {
            out += "SUBACK " + std::to_string(p.packet_id) + " [";
            for (std::size_t i = 0; i < p.reason_codes.size(); ++i) {
              out += (i == 0 ? "" : " ") + Hex(p.reason_codes[i]);
            }
            out += "]";
          } else if constexpr (std::is_same_v<T, mqtt::Publish>) {
            out += "PUBLISH " + std::string(p.topic) + " q" +
                   std::to_string(static_cast<unsigned>(p.qos)) + (p.retain ? " retain" : "") +
                   (p.dup ? " dup" : "") + " '" + std::string(p.payload.AsString()) + "'";
          } else if constexpr (std::is_same_v<T, mqtt::Puback>) {
            ack("PUBACK", p.packet_id, p.reason);
          } else if constexpr (std::is_same_v<T, mqtt::Pubrec>) {
            ack("PUBREC", p.packet_id, p.reason);
          } else if constexpr (std::is_same_v<T, mqtt::Pubrel>) {
            ack("PUBREL", p.packet_id, p.reason);
          } else if constexpr (std::is_same_v<T, mqtt::Pubcomp>) {
            ack("PUBCOMP", p.packet_id, p.reason);
          } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
            out += "DISCONNECT" + (v5 ? " " + Hex(p.reason) : "");
          } else {
            out += std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet)));
          }
        },
        packet);
  }
  return out;
}

}  // namespace tinymq::broker::testing
