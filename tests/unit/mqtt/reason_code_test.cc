// MQTT 5.0 reason codes (§2.4) and their 3.1.1 mappings, and the reason code each DecodeError
// answers with. The per-packet tables are typed from the specification's tables, not from the
// codec: 5.0 §3.2.2.2 (CONNACK), §3.4.2.1 (PUBACK), §3.5.2.1 (PUBREC), §3.6.2.1 (PUBREL),
// §3.7.2.1 (PUBCOMP), §3.9.3 (SUBACK), §3.11.3 (UNSUBACK), §3.14.2.1 (DISCONNECT) and §3.15.2.1
// (AUTH).

#include "tinymq/mqtt/reason_code.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/types.h"

namespace tinymq::mqtt {
namespace {

using RC = ReasonCode;
using E = DecodeError;

std::string_view Name(PacketType t) { return PacketTypeName(t); }

// ---------------------------------------------------------------------------------------------
// Names and values (5.0 §2.4 Table 2-6)

struct NamedCode {
  ReasonCode code;
  std::uint8_t value;
  std::string_view name;
};

const std::vector<NamedCode>& SpecCodes() {
  static const auto* const kCodes = new std::vector<NamedCode>{
      {RC::kSuccess, 0x00, "Success"},
      {RC::kGrantedQos1, 0x01, "Granted QoS 1"},
      {RC::kGrantedQos2, 0x02, "Granted QoS 2"},
      {RC::kDisconnectWithWill, 0x04, "Disconnect with Will Message"},
      {RC::kNoMatchingSubscribers, 0x10, "No matching subscribers"},
      {RC::kNoSubscriptionExisted, 0x11, "No subscription existed"},
      {RC::kContinueAuthentication, 0x18, "Continue authentication"},
      {RC::kReAuthenticate, 0x19, "Re-authenticate"},
      {RC::kUnspecifiedError, 0x80, "Unspecified error"},
      {RC::kMalformedPacket, 0x81, "Malformed Packet"},
      {RC::kProtocolError, 0x82, "Protocol Error"},
      {RC::kImplementationSpecificError, 0x83, "Implementation specific error"},
      {RC::kUnsupportedProtocolVersion, 0x84, "Unsupported Protocol Version"},
      {RC::kClientIdentifierNotValid, 0x85, "Client Identifier not valid"},
      {RC::kBadUserNameOrPassword, 0x86, "Bad User Name or Password"},
      {RC::kNotAuthorized, 0x87, "Not authorized"},
      {RC::kServerUnavailable, 0x88, "Server unavailable"},
      {RC::kServerBusy, 0x89, "Server busy"},
      {RC::kBanned, 0x8A, "Banned"},
      {RC::kServerShuttingDown, 0x8B, "Server shutting down"},
      {RC::kBadAuthenticationMethod, 0x8C, "Bad authentication method"},
      {RC::kKeepAliveTimeout, 0x8D, "Keep Alive timeout"},
      {RC::kSessionTakenOver, 0x8E, "Session taken over"},
      {RC::kTopicFilterInvalid, 0x8F, "Topic Filter invalid"},
      {RC::kTopicNameInvalid, 0x90, "Topic Name invalid"},
      {RC::kPacketIdentifierInUse, 0x91, "Packet Identifier in use"},
      {RC::kPacketIdentifierNotFound, 0x92, "Packet Identifier not found"},
      {RC::kReceiveMaximumExceeded, 0x93, "Receive Maximum exceeded"},
      {RC::kTopicAliasInvalid, 0x94, "Topic Alias invalid"},
      {RC::kPacketTooLarge, 0x95, "Packet too large"},
      {RC::kMessageRateTooHigh, 0x96, "Message rate too high"},
      {RC::kQuotaExceeded, 0x97, "Quota exceeded"},
      {RC::kAdministrativeAction, 0x98, "Administrative action"},
      {RC::kPayloadFormatInvalid, 0x99, "Payload format invalid"},
      {RC::kRetainNotSupported, 0x9A, "Retain not supported"},
      {RC::kQosNotSupported, 0x9B, "QoS not supported"},
      {RC::kUseAnotherServer, 0x9C, "Use another server"},
      {RC::kServerMoved, 0x9D, "Server moved"},
      {RC::kSharedSubscriptionsNotSupported, 0x9E, "Shared Subscriptions not supported"},
      {RC::kConnectionRateExceeded, 0x9F, "Connection rate exceeded"},
      {RC::kMaximumConnectTime, 0xA0, "Maximum connect time"},
      {RC::kSubscriptionIdentifiersNotSupported, 0xA1, "Subscription Identifiers not supported"},
      {RC::kWildcardSubscriptionsNotSupported, 0xA2, "Wildcard Subscriptions not supported"},
  };
  return *kCodes;
}

const NamedCode* FindCode(unsigned value) {
  for (const NamedCode& c : SpecCodes()) {
    if (c.value == value) {
      return &c;
    }
  }
  return nullptr;
}

TEST(ReasonCodeTest, EnumeratorsHaveTheSpecificationValues) {
  // 5.0 §2.4 Table 2-6.
  ASSERT_EQ(SpecCodes().size(), 43U);
  for (const NamedCode& c : SpecCodes()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(static_cast<unsigned>(c.code), c.value);
  }
}

TEST(ReasonCodeTest, ReasonCodeNameForEveryValue) {
  // 5.0 §2.4 Table 2-6: the "Name" column; values not in the table have none.
  for (unsigned v = 0; v < 256; ++v) {
    SCOPED_TRACE(v);
    const NamedCode* c = FindCode(v);
    EXPECT_EQ(ReasonCodeName(static_cast<ReasonCode>(v)), c != nullptr ? c->name : "unknown");
  }
}

TEST(ReasonCodeTest, IsFailureFrom0x80Up) {
  // 5.0 §2.4: "Reason Codes less than 0x80 indicate successful completion ... values of 0x80 or
  // greater indicate failure."
  for (unsigned v = 0; v < 256; ++v) {
    SCOPED_TRACE(v);
    EXPECT_EQ(IsFailure(static_cast<ReasonCode>(v)), v >= 0x80);
  }
}

// ---------------------------------------------------------------------------------------------
// Which codes each packet may carry

struct PacketCodes {
  PacketType type;
  std::set<unsigned> codes;
};

const std::vector<PacketCodes>& SpecPacketCodes() {
  static const auto* const kTables = new std::vector<PacketCodes>{
      // 5.0 §3.2.2.2 Table 3-1: Connect Reason Codes.
      {PacketType::kConnack, {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                              0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}},
      // §3.4.2.1 Table 3-4: PUBACK Reason Codes.
      {PacketType::kPuback, {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
      // §3.5.2.1 Table 3-5: PUBREC Reason Codes (the same list).
      {PacketType::kPubrec, {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
      // §3.6.2.1 Table 3-6: PUBREL Reason Codes.
      {PacketType::kPubrel, {0x00, 0x92}},
      // §3.7.2.1 Table 3-7: PUBCOMP Reason Codes.
      {PacketType::kPubcomp, {0x00, 0x92}},
      // §3.9.3 Table 3-8: Subscribe Reason Codes.
      {PacketType::kSuback,
       {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}},
      // §3.11.3 Table 3-9: Unsubscribe Reason Codes.
      {PacketType::kUnsuback, {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}},
      // §3.14.2.1 Table 3-10: Disconnect Reason Codes.
      {PacketType::kDisconnect,
       {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}},
      // §3.15.2.1 Table 3-11: Authenticate Reason Codes.
      {PacketType::kAuth, {0x00, 0x18, 0x19}},
      // Packets without a reason code.
      {PacketType::kReserved, {}},
      {PacketType::kConnect, {}},
      {PacketType::kPublish, {}},
      {PacketType::kSubscribe, {}},
      {PacketType::kUnsubscribe, {}},
      {PacketType::kPingreq, {}},
      {PacketType::kPingresp, {}},
  };
  return *kTables;
}

TEST(ReasonCodeTest, IsValidReasonCodeForEveryPacketAndCode) {
  // [MQTT-3.2.2-8], [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1],
  // [MQTT-3.9.3-2], [MQTT-3.11.3-2], [MQTT-3.14.2-1], [MQTT-3.15.2-1]: one of the listed codes.
  ASSERT_EQ(SpecPacketCodes().size(), 16U);  // every packet type
  for (const PacketCodes& p : SpecPacketCodes()) {
    for (unsigned v = 0; v < 256; ++v) {
      SCOPED_TRACE(testing::Message() << Name(p.type) << " code " << v);
      EXPECT_EQ(IsValidReasonCode(p.type, static_cast<ReasonCode>(v)), p.codes.contains(v));
    }
  }
}

TEST(ReasonCodeTest, TablesHaveTheSpecificationSizes) {
  // A cross-check of the typing above: the number of rows of each table.
  const std::vector<std::pair<PacketType, std::size_t>> sizes = {
      {PacketType::kConnack, 22}, {PacketType::kPuback, 9},      {PacketType::kPubrec, 9},
      {PacketType::kPubrel, 2},   {PacketType::kPubcomp, 2},     {PacketType::kSuback, 12},
      {PacketType::kUnsuback, 7}, {PacketType::kDisconnect, 29}, {PacketType::kAuth, 3},
  };
  for (const auto& [type, size] : sizes) {
    SCOPED_TRACE(Name(type));
    int valid = 0;
    for (unsigned v = 0; v < 256; ++v) {
      valid += IsValidReasonCode(type, static_cast<ReasonCode>(v)) ? 1 : 0;
      // Every listed code is a named one.
      if (IsValidReasonCode(type, static_cast<ReasonCode>(v))) {
        EXPECT_NE(FindCode(v), nullptr) << v;
      }
    }
    EXPECT_EQ(static_cast<std::size_t>(valid), size);
  }
}

// ---------------------------------------------------------------------------------------------
// 3.1.1 CONNACK return codes (3.1.1 §3.2.2.3 Table 3.1)

TEST(ReasonCodeTest, FromConnackReturnCodeZeroToFive) {
  // 3.1.1 §3.2.2.3 Table 3.1, read as the 5.0 codes of the same meaning.
  EXPECT_EQ(FromConnackReturnCode(0), RC::kSuccess);                     // Connection Accepted
  EXPECT_EQ(FromConnackReturnCode(1), RC::kUnsupportedProtocolVersion);  // unacceptable version
  EXPECT_EQ(FromConnackReturnCode(2), RC::kClientIdentifierNotValid);    // identifier rejected
  EXPECT_EQ(FromConnackReturnCode(3), RC::kServerUnavailable);           // Server unavailable
  EXPECT_EQ(FromConnackReturnCode(4), RC::kBadUserNameOrPassword);       // bad user name/password
  EXPECT_EQ(FromConnackReturnCode(5), RC::kNotAuthorized);               // not authorized
}

TEST(ReasonCodeTest, FromConnackReturnCodeSixUpIsReserved) {
  // 3.1.1 §3.2.2.3: 6-255 "Reserved for future use".
  for (unsigned v = 6; v < 256; ++v) {
    SCOPED_TRACE(v);
    EXPECT_EQ(FromConnackReturnCode(static_cast<std::uint8_t>(v)), std::nullopt);
  }
}

TEST(ReasonCodeTest, ConnackReturnCodesRoundTrip) {
  // 3.1.1 §3.2.2.3 Table 3.1: 0-5 survive a trip through the 5.0 numbering.
  for (unsigned v = 0; v <= 5; ++v) {
    SCOPED_TRACE(v);
    const auto reason = FromConnackReturnCode(static_cast<std::uint8_t>(v));
    ASSERT_TRUE(reason.has_value());
    const auto back = ToConnackReturnCode(*reason);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(static_cast<unsigned>(*back), v);
  }
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kAccepted), 0);
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kUnacceptableProtocolVersion), 1);
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kIdentifierRejected), 2);
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kServerUnavailable), 3);
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kBadUserNameOrPassword), 4);
  EXPECT_EQ(static_cast<int>(ConnackReturnCode::kNotAuthorized), 5);
}

TEST(ReasonCodeTest, ToConnackReturnCodeForProtocolViolationsIsNone) {
  // 3.1.1 §3.1.4: a CONNECT that does not match the format, or breaks the protocol, gets no
  // CONNACK: "the Server MUST close the Network Connection" ([MQTT-3.1.4-1]).
  for (const RC code : {RC::kMalformedPacket, RC::kProtocolError, RC::kTopicNameInvalid,
                        RC::kPacketTooLarge, RC::kPayloadFormatInvalid}) {
    SCOPED_TRACE(ReasonCodeName(code));
    EXPECT_EQ(ToConnackReturnCode(code), std::nullopt);
  }
}

TEST(ReasonCodeTest, ToConnackReturnCodeForCodesWithADirectEquivalent) {
  // 3.1.1 §3.2.2.3 Table 3.1 against 5.0 §3.2.2.2 Table 3-1.
  using CRC = ConnackReturnCode;
  EXPECT_EQ(ToConnackReturnCode(RC::kSuccess), CRC::kAccepted);
  // [MQTT-3.1.2-2]: unsupported level -> 0x01.
  EXPECT_EQ(ToConnackReturnCode(RC::kUnsupportedProtocolVersion),
            CRC::kUnacceptableProtocolVersion);
  // [MQTT-3.1.3-8], [MQTT-3.1.3-9]: identifier rejected -> 0x02.
  EXPECT_EQ(ToConnackReturnCode(RC::kClientIdentifierNotValid), CRC::kIdentifierRejected);
  EXPECT_EQ(ToConnackReturnCode(RC::kServerUnavailable), CRC::kServerUnavailable);
  EXPECT_EQ(ToConnackReturnCode(RC::kServerBusy), CRC::kServerUnavailable);
  EXPECT_EQ(ToConnackReturnCode(RC::kBadUserNameOrPassword), CRC::kBadUserNameOrPassword);
  EXPECT_EQ(ToConnackReturnCode(RC::kNotAuthorized), CRC::kNotAuthorized);
}

TEST(ReasonCodeTest, ToConnackReturnCodeNeverAcceptsAFailure) {
  // Every 5.0 CONNACK failure code either has a 3.1.1 refusal (1-5) or none at all.
  for (const NamedCode& c : SpecCodes()) {
    if (!IsFailure(c.code)) {
      continue;
    }
    SCOPED_TRACE(c.name);
    const auto rc = ToConnackReturnCode(c.code);
    if (rc.has_value()) {
      EXPECT_GE(static_cast<int>(*rc), 1);
      EXPECT_LE(static_cast<int>(*rc), 5);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3.1.1 SUBACK return codes (3.1.1 §3.9.3: 0x00, 0x01, 0x02 granted, 0x80 Failure)

TEST(ReasonCodeTest, ToV311SubackCodeKeepsGrantedQos) {
  // 3.1.1 §3.9.3: 0x00, 0x01, 0x02 are the granted QoS, as in 5.0 §3.9.3.
  EXPECT_EQ(ToV311SubackCode(RC::kSuccess), 0x00);
  EXPECT_EQ(ToV311SubackCode(RC::kGrantedQos1), 0x01);
  EXPECT_EQ(ToV311SubackCode(RC::kGrantedQos2), 0x02);
}

TEST(ReasonCodeTest, ToV311SubackCodeTurnsEveryFailureInto0x80) {
  // 3.1.1 §3.9.3: 0x80 is the only failure return code.
  for (unsigned v = 0x80; v < 256; ++v) {
    SCOPED_TRACE(v);
    EXPECT_EQ(ToV311SubackCode(static_cast<ReasonCode>(v)), 0x80);
  }
  for (unsigned v = 0; v < 256; ++v) {
    SCOPED_TRACE(v);
    const std::uint8_t code = ToV311SubackCode(static_cast<ReasonCode>(v));
    // [MQTT-3.9.3-2]: nothing but 0x00, 0x01, 0x02, 0x80 ever goes out.
    EXPECT_TRUE(code <= 0x02 || code == 0x80) << static_cast<int>(code);
  }
}

// ---------------------------------------------------------------------------------------------
// DecodeError: descriptions and reason codes

struct ErrorReason {
  DecodeError error;
  ReasonCode reason;
};

// Every DecodeError but kInvalidSubscriptionQos (see its own test below), with the code the
// specification gives: 5.0 §1.2 and §2.2.2.2 for Malformed Packet vs Protocol Error, and the
// clause of each case where it names a code.
const std::vector<ErrorReason>& SpecErrorReasons() {
  static const auto* const kTable = new std::vector<ErrorReason>{
      {E::kReservedPacketType, RC::kMalformedPacket},         // §2.1.2: "Forbidden"
      {E::kInvalidFixedHeaderFlags, RC::kMalformedPacket},    // [MQTT-2.1.3-1]
      {E::kMalformedVarint, RC::kMalformedPacket},            // §1.5.5
      {E::kNonMinimalVarint, RC::kMalformedPacket},           // [MQTT-1.5.5-1]
      {E::kPacketTooLarge, RC::kPacketTooLarge},              // §3.1.2.11.4, §3.2.2.3.6
      {E::kTruncated, RC::kMalformedPacket},                  // §1.2 Malformed Packet
      {E::kTrailingBytes, RC::kMalformedPacket},              // §1.2 Malformed Packet
      {E::kProtocolVersionUnknown, RC::kProtocolError},       // [MQTT-3.1.0-1]
      {E::kInvalidUtf8, RC::kMalformedPacket},                // [MQTT-1.5.4-1]
      {E::kUtf8NullCharacter, RC::kMalformedPacket},          // [MQTT-1.5.4-2]
      {E::kUnknownProperty, RC::kMalformedPacket},            // §2.2.2.2
      {E::kPropertyNotAllowed, RC::kMalformedPacket},         // §2.2.2.2
      {E::kDuplicateProperty, RC::kProtocolError},            // "Protocol Error to include ... more
                                                              // than once"
      {E::kInvalidPropertyValue, RC::kProtocolError},         // e.g. §3.1.2.11.3
      {E::kTopicAliasZero, RC::kTopicAliasInvalid},           // §3.3.2.3.4
      {E::kMissingAuthenticationMethod, RC::kProtocolError},  // §3.1.2.11.10, §3.15.2.2.2
      {E::kSessionPresentOnFailure, RC::kProtocolError},      // [MQTT-3.2.2-6]
      {E::kInvalidProtocolName, RC::kUnsupportedProtocolVersion},       // [MQTT-3.1.2-1]
      {E::kUnsupportedProtocolLevel, RC::kUnsupportedProtocolVersion},  // [MQTT-3.1.2-2]
      {E::kReservedConnectFlag, RC::kMalformedPacket},                  // [MQTT-3.1.2-3]
      {E::kInvalidWillFlags, RC::kMalformedPacket},                     // [MQTT-3.1.2-12]
      {E::kPasswordWithoutUserName, RC::kMalformedPacket},              // 3.1.1 [MQTT-3.1.2-22]
      {E::kInvalidQos, RC::kMalformedPacket},                           // [MQTT-3.3.1-4]
      {E::kDupOnQos0, RC::kMalformedPacket},                            // [MQTT-3.3.1-2]
      {E::kZeroPacketId, RC::kProtocolError},                           // [MQTT-2.2.1-3]
      {E::kWildcardInTopicName, RC::kTopicNameInvalid},                 // [MQTT-3.3.2-2]
      {E::kEmptyTopicName, RC::kProtocolError},                         // §3.3.2.3.4
      {E::kNoTopicFilters, RC::kProtocolError},                         // [MQTT-3.8.3-2]
      {E::kReservedSubscriptionBits, RC::kMalformedPacket},             // [MQTT-3.8.3-5]
      {E::kInvalidRetainHandling, RC::kProtocolError},                  // §3.8.3.1
      {E::kNoLocalOnSharedSubscription, RC::kProtocolError},            // [MQTT-3.8.3-4]
      {E::kReservedConnackFlags, RC::kMalformedPacket},                 // [MQTT-3.2.2-1]
      {E::kInvalidReasonCode, RC::kProtocolError},  // [MQTT-3.4.2-1] and the like
  };
  return *kTable;
}

constexpr unsigned kDecodeErrorCount = 34;

TEST(ReasonCodeTest, DecodeErrorTableCoversEveryEnumerator) {
  // The enumerators are 0..33 with no gaps; the table plus kInvalidSubscriptionQos names each once.
  std::set<unsigned> seen = {static_cast<unsigned>(E::kInvalidSubscriptionQos)};
  for (const ErrorReason& e : SpecErrorReasons()) {
    EXPECT_TRUE(seen.insert(static_cast<unsigned>(e.error)).second) << Describe(e.error);
  }
  EXPECT_EQ(seen.size(), kDecodeErrorCount);
  EXPECT_EQ(*seen.rbegin(), kDecodeErrorCount - 1);
  // One past the last enumerator is not a named error: Describe's switch does not know it.
  EXPECT_EQ(Describe(static_cast<DecodeError>(kDecodeErrorCount)), "unknown decode error");
}

TEST(ReasonCodeTest, EveryDecodeErrorHasItsOwnDescription) {
  // decode_error.h: Describe is what a log line shows; each error reads differently.
  std::set<std::string_view> descriptions;
  for (unsigned i = 0; i < kDecodeErrorCount; ++i) {
    const auto error = static_cast<DecodeError>(i);
    const std::string_view d = Describe(error);
    SCOPED_TRACE(i);
    EXPECT_FALSE(d.empty());
    EXPECT_NE(d, Describe(static_cast<DecodeError>(kDecodeErrorCount)));  // the fallback text
    EXPECT_TRUE(descriptions.insert(d).second) << "repeated: " << d;
  }
}

TEST(ReasonCodeTest, DecodeErrorReasonCodesFollowTheSpecification) {
  // The clause of each row is in SpecErrorReasons().
  for (const ErrorReason& e : SpecErrorReasons()) {
    SCOPED_TRACE(Describe(e.error));
    EXPECT_EQ(ReasonCodeName(ToReasonCode(e.error)), ReasonCodeName(e.reason));
  }
}

TEST(ReasonCodeTest, EveryDecodeErrorAnswersWithANamedFailureCode) {
  // 5.0 §4.13: a refused packet is answered with a DISCONNECT (or CONNACK) of code >= 0x80.
  for (unsigned i = 0; i < kDecodeErrorCount; ++i) {
    const auto error = static_cast<DecodeError>(i);
    SCOPED_TRACE(Describe(error));
    const ReasonCode reason = ToReasonCode(error);
    EXPECT_TRUE(IsFailure(reason));
    EXPECT_NE(ReasonCodeName(reason), "unknown");
    // The broker sends it in a DISCONNECT (or a CONNACK while connecting): it must be listed there.
    EXPECT_TRUE(IsValidReasonCode(PacketType::kDisconnect, reason) ||
                IsValidReasonCode(PacketType::kConnack, reason))
        << ReasonCodeName(reason);
  }
}

TEST(ReasonCodeTest, InvalidSubscriptionQosIsProtocolErrorIn5) {
  // 5.0 §3.8.3.1. (In 3.1.1, [MQTT-3-8.3-4] calls it malformed, but 3.1.1 has no reason codes:
  // the connection is closed either way.)
  EXPECT_EQ(ReasonCodeName(ToReasonCode(E::kInvalidSubscriptionQos)),
            ReasonCodeName(RC::kProtocolError));
}

}  // namespace
}  // namespace tinymq::mqtt
