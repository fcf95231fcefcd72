#include "tinymq/mqtt/decode_error.h"

namespace tinymq::mqtt {

std::string_view Describe(DecodeError error) {
  using E = DecodeError;
  switch (error) {
    case E::kReservedPacketType: return "reserved or unsupported packet type";
    case E::kInvalidFixedHeaderFlags: return "invalid flag bits in the fixed header";
    case E::kMalformedVarint: return "variable byte integer longer than four bytes";
    case E::kNonMinimalVarint: return "variable byte integer not in its shortest form";
    case E::kPacketTooLarge: return "packet larger than the maximum packet size";
    case E::kTruncated: return "field runs past the end of the packet";
    case E::kTrailingBytes: return "unexpected bytes after the last field";
    case E::kProtocolVersionUnknown: return "packet other than CONNECT before the protocol version";
    case E::kInvalidUtf8: return "ill-formed UTF-8 string";
    case E::kUtf8NullCharacter: return "U+0000 in a UTF-8 string";
    case E::kUnknownProperty: return "unknown property identifier";
    case E::kPropertyNotAllowed: return "property not allowed in this packet";
    case E::kDuplicateProperty: return "property included more than once";
    case E::kInvalidPropertyValue: return "property value out of range";
    case E::kTopicAliasZero: return "topic alias 0";
    case E::kMissingAuthenticationMethod: return "authentication without an authentication method";
    case E::kInvalidProtocolName: return "invalid protocol name";
    case E::kUnsupportedProtocolLevel: return "unsupported protocol level";
    case E::kReservedConnectFlag: return "reserved CONNECT flag set";
    case E::kInvalidWillFlags: return "invalid will QoS or will retain flags";
    case E::kPasswordWithoutUserName: return "password flag set without user name flag";
    case E::kInvalidQos: return "QoS 3 in PUBLISH";
    case E::kDupOnQos0: return "DUP flag set on a QoS 0 PUBLISH";
    case E::kZeroPacketId: return "packet identifier 0";
    case E::kWildcardInTopicName: return "wildcard character in a topic name";
    case E::kEmptyTopicName: return "empty topic name";
    case E::kNoTopicFilters: return "no topic filter in SUBSCRIBE or UNSUBSCRIBE";
    case E::kReservedSubscriptionBits: return "reserved subscription option bits set";
    case E::kInvalidSubscriptionQos: return "QoS 3 requested in SUBSCRIBE";
    case E::kInvalidRetainHandling: return "retain handling 3 in SUBSCRIBE";
    case E::kNoLocalOnSharedSubscription: return "no local set on a shared subscription";
    case E::kReservedConnackFlags: return "reserved CONNACK acknowledge flags set";
    case E::kSessionPresentOnFailure: return "session present set in a refusing CONNACK";
    case E::kInvalidReasonCode: return "reason code not valid for this packet";
  }
  return "unknown decode error";
}

ReasonCode ToReasonCode(DecodeError error) {
  using E = DecodeError;
  switch (error) {
    case E::kPacketTooLarge: return ReasonCode::kPacketTooLarge;
    case E::kProtocolVersionUnknown:
    case E::kDuplicateProperty:
    case E::kInvalidPropertyValue:
    case E::kZeroPacketId:
    case E::kEmptyTopicName:
    case E::kNoTopicFilters:
    case E::kInvalidRetainHandling:
    case E::kNoLocalOnSharedSubscription:
    case E::kInvalidReasonCode:
    case E::kMissingAuthenticationMethod:
    case E::kSessionPresentOnFailure:
    // 5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3" (3.1.1
    // calls it malformed, but has no reason codes to tell the two apart).
    case E::kInvalidSubscriptionQos: return ReasonCode::kProtocolError;
    case E::kTopicAliasZero: return ReasonCode::kTopicAliasInvalid;
    case E::kInvalidProtocolName:
    case E::kUnsupportedProtocolLevel: return ReasonCode::kUnsupportedProtocolVersion;
    case E::kWildcardInTopicName: return ReasonCode::kTopicNameInvalid;
    case E::kReservedPacketType:
    case E::kInvalidFixedHeaderFlags:
    case E::kMalformedVarint:
    case E::kNonMinimalVarint:
    case E::kTruncated:
    case E::kTrailingBytes:
    case E::kInvalidUtf8:
    case E::kUtf8NullCharacter:
    case E::kUnknownProperty:
    case E::kPropertyNotAllowed:
    case E::kReservedConnectFlag:
    case E::kInvalidWillFlags:
    case E::kPasswordWithoutUserName:
    case E::kInvalidQos:
    case E::kDupOnQos0:
    case E::kReservedSubscriptionBits:
    case E::kReservedConnackFlags: return ReasonCode::kMalformedPacket;
  }
  return ReasonCode::kMalformedPacket;
}

}  // namespace tinymq::mqtt
