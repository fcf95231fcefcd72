#include "tinymq/mqtt/connack.h"

namespace tinymq::mqtt {

DecodeResult<Connack> DecodeConnack(std::uint8_t flags, BinaryView body, ProtocolVersion version) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  Connack c;
  const std::uint8_t ack_flags = r.U8();
  const std::uint8_t code = r.U8();
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  // 3.1 has no session present flag; its first byte is unused.
  if (version != ProtocolVersion::kV31) {
    if ((ack_flags & 0xFE) != 0) {
      return util::Unexpected(DecodeError::kReservedConnackFlags);  // [MQTT-3.2.2-1]
    }
    c.session_present = (ack_flags & 0x01) != 0;
  }
  if (version == ProtocolVersion::kV5) {
    c.reason = static_cast<ReasonCode>(code);
    if (!IsValidReasonCode(PacketType::kConnack, c.reason)) {
      return util::Unexpected(DecodeError::kInvalidReasonCode);
    }
    c.properties = ReadProperties(r, PropertyContext::kConnack);
  } else {
    const auto reason = FromConnackReturnCode(code);
    if (!reason) {
      return util::Unexpected(DecodeError::kInvalidReasonCode);  // 3.1.1 §3.2.2.3: 6-255 reserved
    }
    c.reason = *reason;
  }
  if (!r.failed() && c.session_present && c.reason != ReasonCode::kSuccess) {
    r.Fail(DecodeError::kSessionPresentOnFailure);  // [MQTT-3.2.2-4] (5.0: [MQTT-3.2.2-6])
  }
  return FinishDecode(r, std::move(c));
}

EncodeResult Encode(const Connack& c, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  std::uint8_t code = 0;
  if (v5) {
    if (!IsValidReasonCode(PacketType::kConnack, c.reason)) {
      return util::Unexpected(EncodeError::kInvalidValue);
    }
    if (EncodeResult r = CheckForEncode(c.properties, PropertyContext::kConnack); !r) {
      return r;
    }
    code = static_cast<std::uint8_t>(c.reason);
  } else {
    const auto rc = ToConnackReturnCode(c.reason);
    if (!rc) {
      return util::Unexpected(EncodeError::kNotInVersion);
    }
    code = static_cast<std::uint8_t>(*rc);
  }
  if (c.session_present && c.reason != ReasonCode::kSuccess) {
    return util::Unexpected(EncodeError::kInvalidValue);  // [MQTT-3.2.2-4] (5.0: -6)
  }
  const bool session_present = c.session_present && version != ProtocolVersion::kV31;
  return EncodeFramed(FirstByte(PacketType::kConnack), out, [&](auto& w) {
    w.U8(session_present ? 1 : 0);
    w.U8(code);
    if (v5) {
      WriteProperties(w, c.properties);
    }
  });
}

}  // namespace tinymq::mqtt
