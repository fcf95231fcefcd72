#include "tinymq/mqtt/pub_ack.h"

namespace tinymq::mqtt {
namespace {

constexpr PropertyContext ContextOf(PacketType type) {
  switch (type) {
    case PacketType::kPuback: return PropertyContext::kPuback;
    case PacketType::kPubrec: return PropertyContext::kPubrec;
    case PacketType::kPubrel: return PropertyContext::kPubrel;
    default: return PropertyContext::kPubcomp;
  }
}

// §2.1.3: PUBREL has flags 0010, the others 0000. MQTT 3.1 set DUP on a resent PUBREL too, so a
// 3.1 client may send 1010.
constexpr bool ValidFlags(PacketType type, std::uint8_t flags, ProtocolVersion version) {
  if (type != PacketType::kPubrel) {
    return flags == 0;
  }
  return flags == 0x02 || (version == ProtocolVersion::kV31 && flags == 0x0A);
}

}  // namespace

template <PacketType kType>
DecodeResult<PubAckPacket<kType>> DecodeAck(std::uint8_t flags, BinaryView body,
                                            ProtocolVersion version) {
  if (!ValidFlags(kType, flags, version)) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  PubAckPacket<kType> ack;
  ack.packet_id = r.U16();
  if (!r.failed() && ack.packet_id == 0) {
    return util::Unexpected(DecodeError::kZeroPacketId);
  }
  if (version == ProtocolVersion::kV5 && !r.failed()) {
    // §3.4.2.1: Remaining Length 2 means Success and no properties; 3 means no properties.
    if (!r.empty()) {
      ack.reason = static_cast<ReasonCode>(r.U8());
      if (!IsValidReasonCode(kType, ack.reason)) {
        return util::Unexpected(DecodeError::kInvalidReasonCode);
      }
    }
    if (!r.empty()) {
      ack.properties = ReadProperties(r, ContextOf(kType));
    }
  }
  return FinishDecode(r, std::move(ack));
}

template <PacketType kType>
EncodeResult Encode(const PubAckPacket<kType>& ack, ProtocolVersion version,
                    std::vector<std::uint8_t>& out) {
  if (ack.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  const bool v5 = version == ProtocolVersion::kV5;
  if (v5 && !IsValidReasonCode(kType, ack.reason)) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(ack.properties, ContextOf(kType)); !r) {
      return r;
    }
  }
  const bool with_reason = v5 && (ack.reason != ReasonCode::kSuccess || !ack.properties.empty());
  const bool with_properties = v5 && !ack.properties.empty();
  const std::uint8_t flags = kType == PacketType::kPubrel ? 0x02 : 0x00;
  return EncodeFramed(FirstByte(kType, flags), out, [&](auto& w) {
    w.U16(ack.packet_id);
    if (with_reason) {
      w.U8(static_cast<std::uint8_t>(ack.reason));
    }
    if (with_properties) {
      WriteProperties(w, ack.properties);
    }
  });
}

#define TINYMQ_INSTANTIATE_ACK(type)                                                  \
  template DecodeResult<PubAckPacket<type>> DecodeAck<type>(std::uint8_t, BinaryView, \
                                                            ProtocolVersion);         \
  template EncodeResult Encode<type>(const PubAckPacket<type>&, ProtocolVersion,      \
                                     std::vector<std::uint8_t>&);
TINYMQ_INSTANTIATE_ACK(PacketType::kPuback)
TINYMQ_INSTANTIATE_ACK(PacketType::kPubrec)
TINYMQ_INSTANTIATE_ACK(PacketType::kPubrel)
TINYMQ_INSTANTIATE_ACK(PacketType::kPubcomp)
#undef TINYMQ_INSTANTIATE_ACK

}  // namespace tinymq::mqtt
