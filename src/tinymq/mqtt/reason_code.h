#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tinymq/mqtt/types.h"

// MQTT 5.0 reason codes (§2.4), the single numbering tinymq uses inside; the 3.1/3.1.1 encoders map
// them to CONNACK return codes and SUBACK failure codes with the functions below.
//
// Threading: Thread-safe (pure functions over constants).

namespace tinymq::mqtt {

enum class ReasonCode : std::uint8_t {
  kSuccess = 0x00,  // also Normal disconnection and Granted QoS 0
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWill = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReAuthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// The specification's name of the code, e.g. "Malformed Packet"; "unknown" for other values.
std::string_view ReasonCodeName(ReasonCode code);

// True when `code` is >= 0x80, the failure half of the numbering (§2.4).
constexpr bool IsFailure(ReasonCode code) { return static_cast<std::uint8_t>(code) >= 0x80; }

// True when the 5.0 specification lists `code` for packets of `type` (§3.x.2.1 tables). Used by the
// decoder to refuse unknown codes and by tests; CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
// UNSUBACK, DISCONNECT and AUTH carry reason codes. Returns false for any other type.
bool IsValidReasonCode(PacketType type, ReasonCode code);

// MQTT 3.1/3.1.1 CONNACK return codes (3.1.1 §3.2.2.3).
enum class ConnackReturnCode : std::uint8_t {
  kAccepted = 0,
  kUnacceptableProtocolVersion = 1,
  kIdentifierRejected = 2,
  kServerUnavailable = 3,
  kBadUserNameOrPassword = 4,
  kNotAuthorized = 5,
};

// The 3.1.1 return code that tells a 3.1.x client most nearly what `code` says, or nullopt when
// 3.1.1 has no CONNACK for that failure and the server must close the connection without one
// (Malformed Packet, Protocol Error, Topic Name invalid, Packet too large, Payload format invalid).
std::optional<ConnackReturnCode> ToConnackReturnCode(ReasonCode code);

// The reason code a 3.1.x CONNACK return code reads as (0-5), nullopt for 6-255 (reserved).
std::optional<ReasonCode> FromConnackReturnCode(std::uint8_t return_code);

// The SUBACK return code byte for 3.1/3.1.1: 0x00-0x02 for granted QoS, 0x80 for every failure.
std::uint8_t ToV311SubackCode(ReasonCode code);

}  // namespace tinymq::mqtt
