#pragma once

#include <cstdint>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

// CONNACK (3.1.1 §3.2, 5.0 §3.2): the packet and its codec. The outcome is held as a 5.0 reason
// code in every version; for 3.1.x it is mapped to and from the CONNACK return code (0-5) with
// ToConnackReturnCode / FromConnackReturnCode.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  views in a decoded Connack point into the `body` passed to DecodeConnack.
// Errors:    DecodeConnack: kInvalidFixedHeaderFlags, kReservedConnackFlags, kInvalidReasonCode,
//            property errors, kTruncated, kTrailingBytes. Encode: kNotInVersion for a reason code
//            that 3.1.x cannot send as a CONNACK (the broker closes the connection instead),
//            kInvalidValue, kPropertyNotAllowed.

namespace tinymq::mqtt {

struct Connack {
  bool session_present = false;  // 3.1.1 and 5.0; always false in 3.1
  ReasonCode reason = ReasonCode::kSuccess;
  Properties properties;  // 5.0 only

  friend bool operator==(const Connack&, const Connack&) = default;
};

DecodeResult<Connack> DecodeConnack(std::uint8_t flags, BinaryView body, ProtocolVersion version);
EncodeResult Encode(const Connack& connack, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
