#pragma once

#include <cstdint>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

// The connection-control packets: PINGREQ, PINGRESP (§3.12, §3.13), DISCONNECT (§3.14) and AUTH
// (5.0 §3.15). In 3.1.x DISCONNECT is empty; in 5.0 its reason code and properties may be left
// out when Success and empty. AUTH exists only in 5.0.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  properties of a decoded packet point into the decoder's `body`.
// Errors:    kInvalidFixedHeaderFlags, kReservedPacketType (AUTH before 5.0), kInvalidReasonCode,
//            property errors, kTruncated, kTrailingBytes. Encode AUTH before 5.0: kNotInVersion.

namespace tinymq::mqtt {

struct Pingreq {
  friend bool operator==(const Pingreq&, const Pingreq&) = default;
};

struct Pingresp {
  friend bool operator==(const Pingresp&, const Pingresp&) = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::kSuccess;  // 5.0 only
  Properties properties;                     // 5.0 only

  friend bool operator==(const Disconnect&, const Disconnect&) = default;
};

struct Auth {
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;

  friend bool operator==(const Auth&, const Auth&) = default;
};

DecodeResult<Pingreq> DecodePingreq(std::uint8_t flags, BinaryView body);
DecodeResult<Pingresp> DecodePingresp(std::uint8_t flags, BinaryView body);
DecodeResult<Disconnect> DecodeDisconnect(std::uint8_t flags, BinaryView body,
                                          ProtocolVersion version);
DecodeResult<Auth> DecodeAuth(std::uint8_t flags, BinaryView body, ProtocolVersion version);

EncodeResult Encode(const Pingreq& ping, ProtocolVersion version, std::vector<std::uint8_t>& out);
EncodeResult Encode(const Pingresp& ping, ProtocolVersion version, std::vector<std::uint8_t>& out);
EncodeResult Encode(const Disconnect& disconnect, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);
EncodeResult Encode(const Auth& auth, ProtocolVersion version, std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
