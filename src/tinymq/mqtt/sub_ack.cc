#include "tinymq/mqtt/sub_ack.h"

namespace tinymq::mqtt {
namespace {

// Reads the codes that fill the rest of the packet, each checked for `type` in 5.0; 3.1.x SUBACK
// codes are 0x00-0x02 and 0x80 (3.1.1 [MQTT-3.9.3-2]).
ReasonCodeList ReadCodes(Reader& r, PacketType type, ProtocolVersion version) {
  if (r.failed()) {
    return {};
  }
  if (r.empty()) {
    r.Fail(DecodeError::kNoTopicFilters);
    return {};
  }
  const BinaryView codes = r.Rest();
  for (const std::uint8_t b : codes) {
    const auto code = static_cast<ReasonCode>(b);
    const bool valid =
        version == ProtocolVersion::kV5 ? IsValidReasonCode(type, code) : (b <= 0x02 || b == 0x80);
    if (!valid) {
      r.Fail(DecodeError::kInvalidReasonCode);
      return {};
    }
  }
  return ReasonCodeList::FromBytes(codes);
}

}  // namespace

DecodeResult<Suback> DecodeSuback(std::uint8_t flags, BinaryView body, ProtocolVersion version) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  Suback s;
  s.packet_id = r.U16();
  if (!r.failed() && s.packet_id == 0) {
    return util::Unexpected(DecodeError::kZeroPacketId);
  }
  if (version == ProtocolVersion::kV5) {
    s.properties = ReadProperties(r, PropertyContext::kSuback);
  }
  s.reason_codes = ReadCodes(r, PacketType::kSuback, version);
  return FinishDecode(r, std::move(s));
}

DecodeResult<Unsuback> DecodeUnsuback(std::uint8_t flags, BinaryView body,
                                      ProtocolVersion version) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  Unsuback u;
  u.packet_id = r.U16();
  if (!r.failed() && u.packet_id == 0) {
    return util::Unexpected(DecodeError::kZeroPacketId);
  }
  if (version == ProtocolVersion::kV5) {
    u.properties = ReadProperties(r, PropertyContext::kUnsuback);
    u.reason_codes = ReadCodes(r, PacketType::kUnsuback, version);
  }
  return FinishDecode(r, std::move(u));
}

EncodeResult Encode(const Suback& s, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (s.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  if (s.reason_codes.empty()) {
    return util::Unexpected(EncodeError::kEmptyList);
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(s.properties, PropertyContext::kSuback); !r) {
      return r;
    }
    for (std::size_t i = 0; i < s.reason_codes.size(); ++i) {
      if (!IsValidReasonCode(PacketType::kSuback, s.reason_codes[i])) {
        return util::Unexpected(EncodeError::kInvalidValue);
      }
    }
  }
  return EncodeFramed(FirstByte(PacketType::kSuback), out, [&](auto& w) {
    w.U16(s.packet_id);
    if (v5) {
      WriteProperties(w, s.properties);
      w.Raw(s.reason_codes.bytes());
      return;
    }
    for (std::size_t i = 0; i < s.reason_codes.size(); ++i) {
      w.U8(ToV311SubackCode(s.reason_codes[i]));
    }
  });
}

EncodeResult Encode(const Unsuback& u, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (u.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  if (v5) {
    if (u.reason_codes.empty()) {
      return util::Unexpected(EncodeError::kEmptyList);
    }
    if (EncodeResult r = CheckForEncode(u.properties, PropertyContext::kUnsuback); !r) {
      return r;
    }
    for (std::size_t i = 0; i < u.reason_codes.size(); ++i) {
      if (!IsValidReasonCode(PacketType::kUnsuback, u.reason_codes[i])) {
        return util::Unexpected(EncodeError::kInvalidValue);
      }
    }
  }
  return EncodeFramed(FirstByte(PacketType::kUnsuback), out, [&](auto& w) {
    w.U16(u.packet_id);
    if (v5) {
      WriteProperties(w, u.properties);
      w.Raw(u.reason_codes.bytes());
    }
  });
}

}  // namespace tinymq::mqtt
