#include "tinymq/mqtt/control.h"

namespace tinymq::mqtt {
namespace {

// DISCONNECT and AUTH share a layout: nothing (Success), or a reason code and then properties.
template <typename T>
DecodeResult<T> DecodeReasonAndProperties(std::uint8_t flags, BinaryView body, PacketType type,
                                          PropertyContext context) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  T packet;
  if (!r.empty()) {
    packet.reason = static_cast<ReasonCode>(r.U8());
    if (!IsValidReasonCode(type, packet.reason)) {
      return util::Unexpected(DecodeError::kInvalidReasonCode);
    }
  }
  if (!r.empty()) {  // §3.14.2.2: Remaining Length below 2 means no properties
    packet.properties = ReadProperties(r, context);
  }
  return FinishDecode(r, std::move(packet));
}

template <typename T>
EncodeResult EncodeReasonAndProperties(const T& packet, PacketType type, PropertyContext context,
                                       std::vector<std::uint8_t>& out) {
  if (!IsValidReasonCode(type, packet.reason)) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  const bool with_reason = packet.reason != ReasonCode::kSuccess || !packet.properties.empty();
  // (For AUTH, only the long form needs an Authentication Method: §3.15.2.)
  if (with_reason) {
    if (EncodeResult r = CheckForEncode(packet.properties, context); !r) {
      return r;
    }
  }
  // §3.14.2.2.1: a DISCONNECT may stop after its reason code when it has no properties; AUTH
  // always writes its (non-empty) property list in the long form.
  const bool with_properties = type == PacketType::kAuth || !packet.properties.empty();
  return EncodeFramed(FirstByte(type), out, [&](auto& w) {
    if (with_reason) {
      w.U8(static_cast<std::uint8_t>(packet.reason));
      if (with_properties) {
        WriteProperties(w, packet.properties);
      }
    }
  });
}

template <typename T>
DecodeResult<T> DecodeEmpty(std::uint8_t flags, BinaryView body) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  if (!body.empty()) {
    return util::Unexpected(DecodeError::kTrailingBytes);
  }
  return T{};
}

}  // namespace

DecodeResult<Pingreq> DecodePingreq(std::uint8_t flags, BinaryView body) {
  return DecodeEmpty<Pingreq>(flags, body);
}

DecodeResult<Pingresp> DecodePingresp(std::uint8_t flags, BinaryView body) {
  return DecodeEmpty<Pingresp>(flags, body);
}

DecodeResult<Disconnect> DecodeDisconnect(std::uint8_t flags, BinaryView body,
                                          ProtocolVersion version) {
  if (version != ProtocolVersion::kV5) {
    return DecodeEmpty<Disconnect>(flags, body);
  }
  return DecodeReasonAndProperties<Disconnect>(flags, body, PacketType::kDisconnect,
                                               PropertyContext::kDisconnect);
}

DecodeResult<Auth> DecodeAuth(std::uint8_t flags, BinaryView body, ProtocolVersion version) {
  if (version != ProtocolVersion::kV5) {
    return util::Unexpected(DecodeError::kReservedPacketType);
  }
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);  // [MQTT-3.15.1-1]
  }
  // §3.15.2: Remaining Length 0 is Success without properties. Otherwise both the reason code
  // and the properties are there (unlike DISCONNECT, AUTH has no reason-code-only form), and the
  // properties hold the Authentication Method (§3.15.2.2.2, checked by ReadProperties).
  Reader r(body.span());
  Auth auth;
  if (!r.empty()) {
    auth.reason = static_cast<ReasonCode>(r.U8());
    if (!IsValidReasonCode(PacketType::kAuth, auth.reason)) {
      return util::Unexpected(DecodeError::kInvalidReasonCode);
    }
    auth.properties = ReadProperties(r, PropertyContext::kAuth);
    if (auto bad = CheckAuthenticationMethod(auth.properties, PropertyContext::kAuth)) {
      r.Fail(*bad);
    }
  }
  return FinishDecode(r, std::move(auth));
}

EncodeResult Encode(const Pingreq&, ProtocolVersion, std::vector<std::uint8_t>& out) {
  return EncodeFramed(FirstByte(PacketType::kPingreq), out, [](auto&) {});
}

EncodeResult Encode(const Pingresp&, ProtocolVersion, std::vector<std::uint8_t>& out) {
  return EncodeFramed(FirstByte(PacketType::kPingresp), out, [](auto&) {});
}

EncodeResult Encode(const Disconnect& d, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  if (version != ProtocolVersion::kV5) {
    return EncodeFramed(FirstByte(PacketType::kDisconnect), out, [](auto&) {});
  }
  return EncodeReasonAndProperties(d, PacketType::kDisconnect, PropertyContext::kDisconnect, out);
}

EncodeResult Encode(const Auth& a, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  if (version != ProtocolVersion::kV5) {
    return util::Unexpected(EncodeError::kNotInVersion);
  }
  return EncodeReasonAndProperties(a, PacketType::kAuth, PropertyContext::kAuth, out);
}

}  // namespace tinymq::mqtt
