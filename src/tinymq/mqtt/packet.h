#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "tinymq/mqtt/connack.h"
#include "tinymq/mqtt/connect.h"
#include "tinymq/mqtt/control.h"
#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/pub_ack.h"
#include "tinymq/mqtt/publish.h"
#include "tinymq/mqtt/sub_ack.h"
#include "tinymq/mqtt/subscribe.h"
#include "tinymq/mqtt/types.h"

// Any MQTT control packet, the fixed header that frames it, and decode/encode by packet type.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  a decoded Packet's views point into the body it was decoded from.
// Errors:    ParseFixedHeader: kReservedPacketType, kMalformedVarint, kNonMinimalVarint,
//            kPacketTooLarge. DecodePacket: whatever the packet's decoder reports.

namespace tinymq::mqtt {

using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

PacketType TypeOf(const Packet& packet);

struct FixedHeader {
  PacketType type = PacketType::kReserved;
  std::uint8_t flags = 0;              // low nibble of the first byte
  std::uint32_t remaining_length = 0;  // bytes after the fixed header
  std::uint8_t size = 0;               // bytes of the fixed header itself, 2 to 5

  std::size_t packet_size() const { return std::size_t{size} + remaining_length; }
};

// Reads a fixed header from the front of `bytes`: nullopt when more bytes are needed. Refuses a
// packet whose total size exceeds `max_packet_size` as soon as the Remaining Length is known, and
// a reserved packet type as soon as the first byte is.
DecodeResult<std::optional<FixedHeader>> ParseFixedHeader(BinaryView bytes,
                                                          std::uint32_t max_packet_size);

// Decodes the body of a packet framed by `header`. `version` governs every packet but CONNECT,
// which carries its own.
DecodeResult<Packet> DecodePacket(const FixedHeader& header, BinaryView body,
                                  ProtocolVersion version);

// Appends `packet` encoded for `version` (a Connect uses its own version field).
EncodeResult Encode(const Packet& packet, ProtocolVersion version, std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
