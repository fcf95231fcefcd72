#include "tinymq/mqtt/publish.h"

namespace tinymq::mqtt {

DecodeResult<Publish> DecodePublish(std::uint8_t flags, BinaryView body, ProtocolVersion version) {
  Publish p;
  p.dup = (flags & 0x08) != 0;
  const auto qos = static_cast<std::uint8_t>((flags >> 1) & 0x03);
  p.retain = (flags & 0x01) != 0;
  if (qos == 3) {
    return util::Unexpected(DecodeError::kInvalidQos);  // [MQTT-3.3.1-4]
  }
  p.qos = static_cast<QoS>(qos);
  if (p.dup && p.qos == QoS::k0) {
    return util::Unexpected(DecodeError::kDupOnQos0);  // [MQTT-3.3.1-2]
  }
  Reader r(body.span());
  p.topic = r.Utf8String();
  if (p.qos != QoS::k0) {
    p.packet_id = r.U16();
    if (!r.failed() && p.packet_id == 0) {
      return util::Unexpected(DecodeError::kZeroPacketId);  // [MQTT-2.2.1-3]
    }
  }
  const bool v5 = version == ProtocolVersion::kV5;
  if (v5) {
    p.properties = ReadProperties(r, PropertyContext::kPublish);
  }
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  if (HasWildcard(p.topic)) {
    return util::Unexpected(DecodeError::kWildcardInTopicName);  // [MQTT-3.3.2-2]
  }
  if (p.topic.empty() && (!v5 || !p.properties.Find(PropertyId::kTopicAlias))) {
    // 3.1.1 [MQTT-4.7.3-1]; 5.0 §3.3.2.1: only a Topic Alias may stand in for the name.
    return util::Unexpected(DecodeError::kEmptyTopicName);
  }
  p.payload = r.Rest();  // the payload may be empty; it is everything after the header
  return FinishDecode(r, std::move(p));
}

namespace {

// Encode() and EncodePublishHeader(): the whole packet, or all of it but the payload.
EncodeResult EncodePublish(const Publish& p, ProtocolVersion version, bool with_payload,
                           std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (static_cast<unsigned>(p.qos) > 2) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  if (p.dup && p.qos == QoS::k0) {
    return util::Unexpected(EncodeError::kInvalidValue);  // [MQTT-3.3.1-2]
  }
  if (p.qos != QoS::k0 && p.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(p.properties, PropertyContext::kPublish); !r) {
      return r;
    }
  }
  if (HasWildcard(p.topic) ||
      (p.topic.empty() && (!v5 || !p.properties.Find(PropertyId::kTopicAlias)))) {
    return util::Unexpected(EncodeError::kInvalidValue);  // [MQTT-3.3.2-2], [MQTT-4.7.3-1]
  }
  unsigned flags = static_cast<unsigned>(p.qos) << 1;
  if (p.dup) {
    flags |= 0x08;
  }
  if (p.retain) {
    flags |= 0x01;
  }
  return EncodeFramed(
      FirstByte(PacketType::kPublish, static_cast<std::uint8_t>(flags)), out,
      [&](auto& w) {
        w.String(p.topic);
        if (p.qos != QoS::k0) {
          w.U16(p.packet_id);
        }
        if (v5) {
          WriteProperties(w, p.properties);
        }
        if (with_payload) {
          w.Raw(p.payload);
        }
      },
      with_payload ? 0 : p.payload.size());
}

}  // namespace

EncodeResult Encode(const Publish& p, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  return EncodePublish(p, version, /*with_payload=*/true, out);
}

EncodeResult EncodePublishHeader(const Publish& p, ProtocolVersion version,
                                 std::vector<std::uint8_t>& out) {
  return EncodePublish(p, version, /*with_payload=*/false, out);
}

}  // namespace tinymq::mqtt
