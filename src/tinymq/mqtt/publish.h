#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// PUBLISH (3.1.1 §3.3, 5.0 §3.3): the packet and its codec. The decoder checks what the packet
// alone can tell (flags, topic name form, packet identifier, properties); what depends on the
// session (topic alias range, receive maximum, QoS allowed) belongs to the broker.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  topic, properties and payload of a decoded Publish point into the `body` passed to
//            DecodePublish: no copy is made.
// Errors:    DecodePublish: kInvalidQos, kDupOnQos0, kZeroPacketId, kWildcardInTopicName,
//            kEmptyTopicName, property and data-type errors, kTruncated.

namespace tinymq::mqtt {

struct Publish {
  bool dup = false;
  QoS qos = QoS::k0;
  bool retain = false;
  std::string_view topic;
  std::uint16_t packet_id = 0;  // only for QoS 1 and 2
  Properties properties;        // 5.0 only
  BinaryView payload;

  friend bool operator==(const Publish&, const Publish&) = default;
};

DecodeResult<Publish> DecodePublish(std::uint8_t flags, BinaryView body, ProtocolVersion version);

// Properties are written only for 5.0. A 5.0 PUBLISH may have an empty topic when it carries a
// Topic Alias.
EncodeResult Encode(const Publish& publish, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);
// The same packet without its payload: fixed header (whose Remaining Length counts the payload),
// topic, packet id and properties. The caller sends publish.payload right after these bytes, so
// that one copy of a payload can follow many headers (fan-out with writev).
EncodeResult EncodePublishHeader(const Publish& publish, ProtocolVersion version,
                                 std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
