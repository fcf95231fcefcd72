#include "tinymq/mqtt/encode.h"

namespace tinymq::mqtt {

std::string_view Describe(EncodeError error) {
  switch (error) {
    case EncodeError::kFieldTooLong: return "string or binary field longer than 65535 bytes";
    case EncodeError::kPacketTooLarge: return "packet longer than 268435455 bytes";
    case EncodeError::kZeroPacketId: return "packet identifier 0";
    case EncodeError::kPropertyNotAllowed: return "property not allowed in this packet";
    case EncodeError::kNotInVersion: return "not available in this protocol version";
    case EncodeError::kEmptyList: return "empty topic or reason code list";
    case EncodeError::kInvalidValue: return "field value out of range";
  }
  return "unknown encode error";
}

std::string_view PacketTypeName(PacketType type) {
  switch (type) {
    case PacketType::kReserved: return "RESERVED";
    case PacketType::kConnect: return "CONNECT";
    case PacketType::kConnack: return "CONNACK";
    case PacketType::kPublish: return "PUBLISH";
    case PacketType::kPuback: return "PUBACK";
    case PacketType::kPubrec: return "PUBREC";
    case PacketType::kPubrel: return "PUBREL";
    case PacketType::kPubcomp: return "PUBCOMP";
    case PacketType::kSubscribe: return "SUBSCRIBE";
    case PacketType::kSuback: return "SUBACK";
    case PacketType::kUnsubscribe: return "UNSUBSCRIBE";
    case PacketType::kUnsuback: return "UNSUBACK";
    case PacketType::kPingreq: return "PINGREQ";
    case PacketType::kPingresp: return "PINGRESP";
    case PacketType::kDisconnect: return "DISCONNECT";
    case PacketType::kAuth: return "AUTH";
  }
  return "UNKNOWN";
}

}  // namespace tinymq::mqtt
