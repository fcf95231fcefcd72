#include "tinymq/mqtt/packet.h"

namespace tinymq::mqtt {
namespace {

template <typename T>
DecodeResult<Packet> Widen(DecodeResult<T>&& r) {
  if (!r) {
    return util::Unexpected(r.error());
  }
  return Packet(std::move(r).value());
}

}  // namespace

PacketType TypeOf(const Packet& packet) {
  // The variant's alternatives are in packet type order, CONNECT (1) first.
  return static_cast<PacketType>(packet.index() + 1);
}

DecodeResult<std::optional<FixedHeader>> ParseFixedHeader(BinaryView bytes,
                                                          std::uint32_t max_packet_size) {
  if (bytes.empty()) {
    return std::optional<FixedHeader>();
  }
  FixedHeader h;
  h.type = static_cast<PacketType>(bytes[0] >> 4);
  h.flags = static_cast<std::uint8_t>(bytes[0] & 0x0F);
  if (h.type == PacketType::kReserved) {
    return util::Unexpected(DecodeError::kReservedPacketType);
  }
  const VarintParse v = ParseVarint(bytes.span().subspan(1));
  switch (v.status) {
    case VarintParse::Status::kNeedMore: return std::optional<FixedHeader>();
    case VarintParse::Status::kMalformed: return util::Unexpected(DecodeError::kMalformedVarint);
    case VarintParse::Status::kNonMinimal: return util::Unexpected(DecodeError::kNonMinimalVarint);
    case VarintParse::Status::kOk: break;
  }
  h.remaining_length = v.value;
  h.size = static_cast<std::uint8_t>(1 + v.size);
  if (h.packet_size() > max_packet_size) {
    return util::Unexpected(DecodeError::kPacketTooLarge);
  }
  return std::optional<FixedHeader>(h);
}

DecodeResult<Packet> DecodePacket(const FixedHeader& header, BinaryView body,
                                  ProtocolVersion version) {
  const std::uint8_t f = header.flags;
  switch (header.type) {
    case PacketType::kConnect: return Widen(DecodeConnect(f, body));
    case PacketType::kConnack: return Widen(DecodeConnack(f, body, version));
    case PacketType::kPublish: return Widen(DecodePublish(f, body, version));
    case PacketType::kPuback: return Widen(DecodeAck<PacketType::kPuback>(f, body, version));
    case PacketType::kPubrec: return Widen(DecodeAck<PacketType::kPubrec>(f, body, version));
    case PacketType::kPubrel: return Widen(DecodeAck<PacketType::kPubrel>(f, body, version));
    case PacketType::kPubcomp: return Widen(DecodeAck<PacketType::kPubcomp>(f, body, version));
    case PacketType::kSubscribe: return Widen(DecodeSubscribe(f, body, version));
    case PacketType::kSuback: return Widen(DecodeSuback(f, body, version));
    case PacketType::kUnsubscribe: return Widen(DecodeUnsubscribe(f, body, version));
    case PacketType::kUnsuback: return Widen(DecodeUnsuback(f, body, version));
    case PacketType::kPingreq: return Widen(DecodePingreq(f, body));
    case PacketType::kPingresp: return Widen(DecodePingresp(f, body));
    case PacketType::kDisconnect: return Widen(DecodeDisconnect(f, body, version));
    case PacketType::kAuth: return Widen(DecodeAuth(f, body, version));
    case PacketType::kReserved: break;
  }
  return util::Unexpected(DecodeError::kReservedPacketType);
}

EncodeResult Encode(const Packet& packet, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  return std::visit(
      [&](const auto& p) -> EncodeResult {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, Connect>) {
          return Encode(p, out);
        } else {
          return Encode(p, version, out);
        }
      },
      packet);
}

}  // namespace tinymq::mqtt
