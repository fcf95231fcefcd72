#include "tinymq/mqtt/connect.h"

namespace tinymq::mqtt {
namespace {

constexpr std::string_view kNameV31 = "MQIsdp";
constexpr std::string_view kNameV311 = "MQTT";

// Connect Flags bits (3.1.1 §3.1.2.3, 5.0 §3.1.2.3).
constexpr std::uint8_t kReserved = 0x01;
constexpr std::uint8_t kCleanStart = 0x02;
constexpr std::uint8_t kWillFlag = 0x04;
constexpr std::uint8_t kWillQosMask = 0x18;
constexpr std::uint8_t kWillRetain = 0x20;
constexpr std::uint8_t kPasswordFlag = 0x40;
constexpr std::uint8_t kUserNameFlag = 0x80;

// Reads the protocol name and level; on a mismatch the reader holds the error.
ProtocolVersion ReadVersion(Reader& r) {
  const std::string_view name = r.Utf8String();
  const std::uint8_t level = r.U8();
  if (r.failed()) {
    return ProtocolVersion::kV311;
  }
  if (name == kNameV31) {
    if (level != 3) {
      r.Fail(DecodeError::kUnsupportedProtocolLevel);
    }
    return ProtocolVersion::kV31;
  }
  if (name != kNameV311) {
    // [MQTT-3.1.2-1]: the broker may disconnect; 5.0 suggests 0x84.
    r.Fail(DecodeError::kInvalidProtocolName);
    return ProtocolVersion::kV311;
  }
  if (level != 4 && level != 5) {
    // [MQTT-3.1.2-2]: CONNACK 0x01 (3.1.1) / 0x84 (5.0), then close.
    r.Fail(DecodeError::kUnsupportedProtocolLevel);
    return ProtocolVersion::kV311;
  }
  return static_cast<ProtocolVersion>(level);
}

template <typename W>
void WriteBody(W& w, const Connect& c) {
  const bool v5 = c.version == ProtocolVersion::kV5;
  w.String(c.version == ProtocolVersion::kV31 ? kNameV31 : kNameV311);
  w.U8(static_cast<std::uint8_t>(c.version));
  unsigned flags = 0;
  if (c.clean_start) {
    flags |= kCleanStart;
  }
  if (c.will) {
    flags |= kWillFlag | (static_cast<unsigned>(c.will->qos) << 3);
    if (c.will->retain) {
      flags |= kWillRetain;
    }
  }
  if (c.password) {
    flags |= kPasswordFlag;
  }
  if (c.user_name) {
    flags |= kUserNameFlag;
  }
  w.U8(static_cast<std::uint8_t>(flags));
  w.U16(c.keep_alive);
  if (v5) {
    WriteProperties(w, c.properties);
  }
  w.String(c.client_id);
  if (c.will) {
    if (v5) {
      WriteProperties(w, c.will->properties);
    }
    w.String(c.will->topic);
    w.Binary(c.will->payload);
  }
  if (c.user_name) {
    w.String(*c.user_name);
  }
  if (c.password) {
    w.Binary(*c.password);
  }
}

}  // namespace

std::optional<ProtocolVersion> PeekConnectVersion(BinaryView body) {
  Reader r(body.span());
  const ProtocolVersion v = ReadVersion(r);
  if (r.failed()) {
    return std::nullopt;
  }
  return v;
}

DecodeResult<Connect> DecodeConnect(std::uint8_t flags, BinaryView body) {
  if (flags != 0) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);
  }
  Reader r(body.span());
  Connect c;
  c.version = ReadVersion(r);
  const std::uint8_t connect_flags = r.U8();
  c.keep_alive = r.U16();
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  if ((connect_flags & kReserved) != 0) {
    return util::Unexpected(DecodeError::kReservedConnectFlag);  // [MQTT-3.1.2-3]
  }
  c.clean_start = (connect_flags & kCleanStart) != 0;
  const bool has_will = (connect_flags & kWillFlag) != 0;
  const auto will_qos = static_cast<std::uint8_t>((connect_flags & kWillQosMask) >> 3);
  const bool will_retain = (connect_flags & kWillRetain) != 0;
  if (will_qos == 3 || (!has_will && (will_qos != 0 || will_retain))) {
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1: -14, -15)
    return util::Unexpected(DecodeError::kInvalidWillFlags);
  }
  const bool has_password = (connect_flags & kPasswordFlag) != 0;
  const bool has_user_name = (connect_flags & kUserNameFlag) != 0;
  const bool v5 = c.version == ProtocolVersion::kV5;
  if (!v5 && has_password && !has_user_name) {
    return util::Unexpected(DecodeError::kPasswordWithoutUserName);  // [MQTT-3.1.2-22]
  }
  if (v5) {
    c.properties = ReadProperties(r, PropertyContext::kConnect);
    if (auto bad = CheckAuthenticationMethod(c.properties, PropertyContext::kConnect)) {
      r.Fail(*bad);
    }
  }
  c.client_id = r.Utf8String();  // [MQTT-3.1.3-4]
  if (has_will) {
    Will will;
    will.qos = static_cast<QoS>(will_qos);
    will.retain = will_retain;
    if (v5) {
      will.properties = ReadProperties(r, PropertyContext::kWill);
    }
    will.topic = r.Utf8String();
    will.payload = r.Binary();
    if (!r.failed()) {
      if (will.topic.empty()) {
        r.Fail(DecodeError::kEmptyTopicName);
      } else if (HasWildcard(will.topic)) {
        r.Fail(DecodeError::kWildcardInTopicName);
      }
    }
    c.will = will;
  }
  if (has_user_name) {
    c.user_name = r.Utf8String();
  }
  if (has_password) {
    c.password = r.Binary();
  }
  return FinishDecode(r, std::move(c));
}

EncodeResult Encode(const Connect& c, std::vector<std::uint8_t>& out) {
  const bool v5 = c.version == ProtocolVersion::kV5;
  if (c.version != ProtocolVersion::kV31 && c.version != ProtocolVersion::kV311 && !v5) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  if (c.will && static_cast<unsigned>(c.will->qos) > 2) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  if (!v5 && c.password && !c.user_name) {
    return util::Unexpected(EncodeError::kNotInVersion);
  }
  if (c.will && (c.will->topic.empty() || HasWildcard(c.will->topic))) {
    return util::Unexpected(EncodeError::kInvalidValue);  // the will topic is a topic name
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(c.properties, PropertyContext::kConnect); !r) {
      return r;
    }
    if (c.will) {
      if (EncodeResult r = CheckForEncode(c.will->properties, PropertyContext::kWill); !r) {
        return r;
      }
    }
  }
  return EncodeFramed(FirstByte(PacketType::kConnect), out, [&c](auto& w) { WriteBody(w, c); });
}

}  // namespace tinymq::mqtt
