#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// CONNECT (3.1.1 §3.1, 5.0 §3.1; MQTT 3.1 with protocol name "MQIsdp"): the packet and its codec.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  every view in a decoded Connect points into the `body` passed to DecodeConnect.
// Errors:    DecodeConnect: kInvalidFixedHeaderFlags, kInvalidProtocolName,
//            kUnsupportedProtocolLevel, kReservedConnectFlag, kInvalidWillFlags,
//            kPasswordWithoutUserName, kWildcardInTopicName, kEmptyTopicName, the property and
//            data-type errors, kTruncated, kTrailingBytes.

namespace tinymq::mqtt {

struct Will {
  QoS qos = QoS::k0;
  bool retain = false;
  Properties properties;  // 5.0 only
  std::string_view topic;
  BinaryView payload;

  friend bool operator==(const Will&, const Will&) = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::kV311;
  bool clean_start = true;  // "Clean Session" in 3.1.x
  std::uint16_t keep_alive = 0;
  Properties properties;  // 5.0 only
  std::string_view client_id;
  std::optional<Will> will;
  std::optional<std::string_view> user_name;
  std::optional<BinaryView> password;

  friend bool operator==(const Connect&, const Connect&) = default;
};

// Decodes the body of a CONNECT (everything after the fixed header); `flags` is the low nibble of
// the fixed header. The version comes from the packet itself.
DecodeResult<Connect> DecodeConnect(std::uint8_t flags, BinaryView body);

// The protocol version a CONNECT body asks for, read from its protocol name and level only; lets
// the broker answer a CONNECT that fails to decode in the version the client speaks.
std::optional<ProtocolVersion> PeekConnectVersion(BinaryView body);

// Appends `connect` in the encoding of connect.version. Properties are written only for 5.0.
EncodeResult Encode(const Connect& connect, std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
