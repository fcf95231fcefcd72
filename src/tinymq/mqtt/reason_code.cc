#include "tinymq/mqtt/reason_code.h"

#include <algorithm>
#include <array>

namespace tinymq::mqtt {
namespace {

using RC = ReasonCode;

// 5.0 §3.2.2.2, §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1.
constexpr auto kConnackCodes = std::to_array<RC>({
    RC::kSuccess,
    RC::kUnspecifiedError,
    RC::kMalformedPacket,
    RC::kProtocolError,
    RC::kImplementationSpecificError,
    RC::kUnsupportedProtocolVersion,
    RC::kClientIdentifierNotValid,
    RC::kBadUserNameOrPassword,
    RC::kNotAuthorized,
    RC::kServerUnavailable,
    RC::kServerBusy,
    RC::kBanned,
    RC::kBadAuthenticationMethod,
    RC::kTopicNameInvalid,
    RC::kPacketTooLarge,
    RC::kQuotaExceeded,
    RC::kPayloadFormatInvalid,
    RC::kRetainNotSupported,
    RC::kQosNotSupported,
    RC::kUseAnotherServer,
    RC::kServerMoved,
    RC::kConnectionRateExceeded,
});
constexpr auto kPubackPubrecCodes = std::to_array<RC>({
    RC::kSuccess,
    RC::kNoMatchingSubscribers,
    RC::kUnspecifiedError,
    RC::kImplementationSpecificError,
    RC::kNotAuthorized,
    RC::kTopicNameInvalid,
    RC::kPacketIdentifierInUse,
    RC::kQuotaExceeded,
    RC::kPayloadFormatInvalid,
});
constexpr auto kPubrelPubcompCodes =
    std::to_array<RC>({RC::kSuccess, RC::kPacketIdentifierNotFound});
constexpr auto kSubackCodes = std::to_array<RC>({
    RC::kSuccess,
    RC::kGrantedQos1,
    RC::kGrantedQos2,
    RC::kUnspecifiedError,
    RC::kImplementationSpecificError,
    RC::kNotAuthorized,
    RC::kTopicFilterInvalid,
    RC::kPacketIdentifierInUse,
    RC::kQuotaExceeded,
    RC::kSharedSubscriptionsNotSupported,
    RC::kSubscriptionIdentifiersNotSupported,
    RC::kWildcardSubscriptionsNotSupported,
});
constexpr auto kUnsubackCodes = std::to_array<RC>({
    RC::kSuccess,
    RC::kNoSubscriptionExisted,
    RC::kUnspecifiedError,
    RC::kImplementationSpecificError,
    RC::kNotAuthorized,
    RC::kTopicFilterInvalid,
    RC::kPacketIdentifierInUse,
});
constexpr auto kDisconnectCodes = std::to_array<RC>({
    RC::kSuccess,
    RC::kDisconnectWithWill,
    RC::kUnspecifiedError,
    RC::kMalformedPacket,
    RC::kProtocolError,
    RC::kImplementationSpecificError,
    RC::kNotAuthorized,
    RC::kServerBusy,
    RC::kServerShuttingDown,
    RC::kKeepAliveTimeout,
    RC::kSessionTakenOver,
    RC::kTopicFilterInvalid,
    RC::kTopicNameInvalid,
    RC::kReceiveMaximumExceeded,
    RC::kTopicAliasInvalid,
    RC::kPacketTooLarge,
    RC::kMessageRateTooHigh,
    RC::kQuotaExceeded,
    RC::kAdministrativeAction,
    RC::kPayloadFormatInvalid,
    RC::kRetainNotSupported,
    RC::kQosNotSupported,
    RC::kUseAnotherServer,
    RC::kServerMoved,
    RC::kSharedSubscriptionsNotSupported,
    RC::kConnectionRateExceeded,
    RC::kMaximumConnectTime,
    RC::kSubscriptionIdentifiersNotSupported,
    RC::kWildcardSubscriptionsNotSupported,
});
constexpr auto kAuthCodes =
    std::to_array<RC>({RC::kSuccess, RC::kContinueAuthentication, RC::kReAuthenticate});

template <std::size_t N>
bool Contains(const std::array<RC, N>& codes, RC code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

}  // namespace

std::string_view ReasonCodeName(ReasonCode code) {
  switch (code) {
    case RC::kSuccess: return "Success";
    case RC::kGrantedQos1: return "Granted QoS 1";
    case RC::kGrantedQos2: return "Granted QoS 2";
    case RC::kDisconnectWithWill: return "Disconnect with Will Message";
    case RC::kNoMatchingSubscribers: return "No matching subscribers";
    case RC::kNoSubscriptionExisted: return "No subscription existed";
    case RC::kContinueAuthentication: return "Continue authentication";
    case RC::kReAuthenticate: return "Re-authenticate";
    case RC::kUnspecifiedError: return "Unspecified error";
    case RC::kMalformedPacket: return "Malformed Packet";
    case RC::kProtocolError: return "Protocol Error";
    case RC::kImplementationSpecificError: return "Implementation specific error";
    case RC::kUnsupportedProtocolVersion: return "Unsupported Protocol Version";
    case RC::kClientIdentifierNotValid: return "Client Identifier not valid";
    case RC::kBadUserNameOrPassword: return "Bad User Name or Password";
    case RC::kNotAuthorized: return "Not authorized";
    case RC::kServerUnavailable: return "Server unavailable";
    case RC::kServerBusy: return "Server busy";
    case RC::kBanned: return "Banned";
    case RC::kServerShuttingDown: return "Server shutting down";
    case RC::kBadAuthenticationMethod: return "Bad authentication method";
    case RC::kKeepAliveTimeout: return "Keep Alive timeout";
    case RC::kSessionTakenOver: return "Session taken over";
    case RC::kTopicFilterInvalid: return "Topic Filter invalid";
    case RC::kTopicNameInvalid: return "Topic Name invalid";
    case RC::kPacketIdentifierInUse: return "Packet Identifier in use";
    case RC::kPacketIdentifierNotFound: return "Packet Identifier not found";
    case RC::kReceiveMaximumExceeded: return "Receive Maximum exceeded";
    case RC::kTopicAliasInvalid: return "Topic Alias invalid";
    case RC::kPacketTooLarge: return "Packet too large";
    case RC::kMessageRateTooHigh: return "Message rate too high";
    case RC::kQuotaExceeded: return "Quota exceeded";
    case RC::kAdministrativeAction: return "Administrative action";
    case RC::kPayloadFormatInvalid: return "Payload format invalid";
    case RC::kRetainNotSupported: return "Retain not supported";
    case RC::kQosNotSupported: return "QoS not supported";
    case RC::kUseAnotherServer: return "Use another server";
    case RC::kServerMoved: return "Server moved";
    case RC::kSharedSubscriptionsNotSupported: return "Shared Subscriptions not supported";
    case RC::kConnectionRateExceeded: return "Connection rate exceeded";
    case RC::kMaximumConnectTime: return "Maximum connect time";
    case RC::kSubscriptionIdentifiersNotSupported: return "Subscription Identifiers not supported";
    case RC::kWildcardSubscriptionsNotSupported: return "Wildcard Subscriptions not supported";
  }
  return "unknown";
}

bool IsValidReasonCode(PacketType type, ReasonCode code) {
  switch (type) {
    case PacketType::kConnack: return Contains(kConnackCodes, code);
    case PacketType::kPuback:
    case PacketType::kPubrec: return Contains(kPubackPubrecCodes, code);
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return Contains(kPubrelPubcompCodes, code);
    case PacketType::kSuback: return Contains(kSubackCodes, code);
    case PacketType::kUnsuback: return Contains(kUnsubackCodes, code);
    case PacketType::kDisconnect: return Contains(kDisconnectCodes, code);
    case PacketType::kAuth: return Contains(kAuthCodes, code);
    default: return false;
  }
}

std::optional<ConnackReturnCode> ToConnackReturnCode(ReasonCode code) {
  using CRC = ConnackReturnCode;
  switch (code) {
    case RC::kSuccess: return CRC::kAccepted;
    case RC::kUnsupportedProtocolVersion: return CRC::kUnacceptableProtocolVersion;
    case RC::kClientIdentifierNotValid: return CRC::kIdentifierRejected;
    case RC::kBadUserNameOrPassword:
    case RC::kBadAuthenticationMethod: return CRC::kBadUserNameOrPassword;
    case RC::kNotAuthorized:
    case RC::kBanned:
    case RC::kRetainNotSupported:
    case RC::kQosNotSupported: return CRC::kNotAuthorized;
    // 3.1.1 §3.1.4: a CONNECT that breaks the protocol gets no CONNACK, only a closed connection.
    case RC::kMalformedPacket:
    case RC::kProtocolError:
    case RC::kTopicNameInvalid:
    case RC::kPacketTooLarge:
    case RC::kPayloadFormatInvalid: return std::nullopt;
    default: return CRC::kServerUnavailable;  // the broker cannot serve the client now
  }
}

std::optional<ReasonCode> FromConnackReturnCode(std::uint8_t return_code) {
  switch (return_code) {
    case 0: return RC::kSuccess;
    case 1: return RC::kUnsupportedProtocolVersion;
    case 2: return RC::kClientIdentifierNotValid;
    case 3: return RC::kServerUnavailable;
    case 4: return RC::kBadUserNameOrPassword;
    case 5: return RC::kNotAuthorized;
    default: return std::nullopt;
  }
}

std::uint8_t ToV311SubackCode(ReasonCode code) {
  switch (code) {
    case RC::kSuccess:
    case RC::kGrantedQos1:
    case RC::kGrantedQos2: return static_cast<std::uint8_t>(code);
    default: return 0x80;
  }
}

}  // namespace tinymq::mqtt
