#pragma once

#include <cstdint>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

// PUBACK, PUBREC, PUBREL and PUBCOMP (3.1.1 §3.4-3.7, 5.0 §3.4-3.7): four packets of one shape, a
// packet identifier and, in 5.0, a reason code and properties that may be left out when they are
// Success and empty (§3.4.2.1).
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  properties of a decoded ack point into the `body` passed to DecodeAck.
// Errors:    DecodeAck: kInvalidFixedHeaderFlags, kZeroPacketId, kInvalidReasonCode, property
//            errors, kTruncated, kTrailingBytes. Encode: kZeroPacketId, kInvalidValue,
//            kPropertyNotAllowed. The 3.1.x encoding has no reason code: it is dropped.

namespace tinymq::mqtt {

template <PacketType kType>
struct PubAckPacket {
  static constexpr PacketType kPacketType = kType;

  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::kSuccess;  // 5.0 only
  Properties properties;                     // 5.0 only

  friend bool operator==(const PubAckPacket&, const PubAckPacket&) = default;
};

using Puback = PubAckPacket<PacketType::kPuback>;
using Pubrec = PubAckPacket<PacketType::kPubrec>;
using Pubrel = PubAckPacket<PacketType::kPubrel>;
using Pubcomp = PubAckPacket<PacketType::kPubcomp>;

template <PacketType kType>
DecodeResult<PubAckPacket<kType>> DecodeAck(std::uint8_t flags, BinaryView body,
                                            ProtocolVersion version);

template <PacketType kType>
EncodeResult Encode(const PubAckPacket<kType>& ack, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
