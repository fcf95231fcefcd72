#pragma once

#include <cstdint>
#include <string_view>

#include "tinymq/mqtt/reason_code.h"
#include "tinymq/util/result.h"

// Every way the decoder can refuse input, each named for what is wrong, with the MQTT 5 reason code
// the specification gives for it. The broker answers with that code (DISCONNECT or CONNACK in 5.0;
// for 3.1.x the connection is closed, or a CONNACK return code is sent where 3.1.1 has one).
//
// Rule of thumb from 5.0 §1.2: input that cannot be parsed as the packet format says is a
// Malformed Packet (0x81); a packet that parses but holds data the protocol forbids is a Protocol
// Error (0x82). Where the specification names another code, that code is used.
//
// Threading: Thread-safe (pure functions over constants).

namespace tinymq::mqtt {

enum class DecodeError : std::uint8_t {
  // Fixed header and framing.
  kReservedPacketType,       // type 0, or AUTH (15) before 5.0                      -> 0x81
  kInvalidFixedHeaderFlags,  // flags other than the ones §2.1.3 fixes for the type  -> 0x81
  kMalformedVarint,          // variable byte integer longer than 4 bytes            -> 0x81
  kNonMinimalVarint,         // [MQTT-1.5.5-1] more bytes than the value needs       -> 0x81
  kPacketTooLarge,           // larger than the configured maximum packet size       -> 0x95
  kTruncated,                // a field runs past the end of the packet              -> 0x81
  kTrailingBytes,            // bytes left after the last field                      -> 0x81
  kProtocolVersionUnknown,   // a packet other than CONNECT before the version is known -> 0x82

  // Data representation (§1.5).
  kInvalidUtf8,        // ill-formed UTF-8: overlong, surrogate, > U+10FFFF, cut   -> 0x81
  kUtf8NullCharacter,  // [MQTT-1.5.4-2] U+0000 in a UTF-8 string                  -> 0x81

  // Properties (5.0 §2.2.2).
  kUnknownProperty,              // identifier the specification does not define         -> 0x81
  kPropertyNotAllowed,           // defined, but not for this packet                      -> 0x81
  kDuplicateProperty,            // a property that may appear once appears again         -> 0x82
  kInvalidPropertyValue,         // Receive Maximum 0, flag not 0/1, bad Response Topic  -> 0x82
  kTopicAliasZero,               // [MQTT-3.3.2-8] Topic Alias 0                          -> 0x94
  kMissingAuthenticationMethod,  // Authentication Data without Method in CONNECT
                                 // (§3.1.2.11.10), or an AUTH without one (§3.15.2.2.2) -> 0x82

  // CONNECT (§3.1).
  kInvalidProtocolName,       // neither "MQTT" nor "MQIsdp", or name/level mismatch -> 0x84
  kUnsupportedProtocolLevel,  // level other than 3, 4 or 5                          -> 0x84
  kReservedConnectFlag,       // [MQTT-3.1.2-3] reserved flag bit set                -> 0x81
  kInvalidWillFlags,          // will QoS/retain without will flag, or will QoS 3    -> 0x81
  kPasswordWithoutUserName,   // 3.1.x [MQTT-3.1.2-22]                               -> 0x81

  // PUBLISH (§3.3).
  kInvalidQos,           // [MQTT-3.3.1-4] both QoS bits set                       -> 0x81
  kDupOnQos0,            // [MQTT-3.3.1-2] DUP set on a QoS 0 message              -> 0x81
  kZeroPacketId,         // [MQTT-2.2.1-3] packet identifier 0 where one is needed -> 0x82
  kWildcardInTopicName,  // [MQTT-3.3.2-2] '+' or '#' in a topic name              -> 0x90
  kEmptyTopicName,       // 3.1.x [MQTT-4.7.3-1]; 5.0: empty without Topic Alias   -> 0x82

  // SUBSCRIBE / UNSUBSCRIBE (§3.8, §3.10).
  kNoTopicFilters,  // [MQTT-3.8.3-3] / [MQTT-3.10.3-2] empty payload (also a SUBACK or  -> 0x82
                    // 5.0 UNSUBACK without codes)
  kReservedSubscriptionBits,     // [MQTT-3.8.3-5] reserved option bits set          -> 0x81
  kInvalidSubscriptionQos,       // requested QoS 3: 3.1.1 malformed, 5.0 §3.8.3.1    -> 0x82
  kInvalidRetainHandling,        // 5.0 §3.8.3.1 Retain Handling 3                    -> 0x82
  kNoLocalOnSharedSubscription,  // [MQTT-3.8.3-4] No Local on a $share filter        -> 0x82

  // Acknowledgements.
  kReservedConnackFlags,     // [MQTT-3.2.2-1] acknowledge flags bits 7-1 set            -> 0x81
  kSessionPresentOnFailure,  // [MQTT-3.2.2-4] (5.0: -6) session present with a failure -> 0x82
  kInvalidReasonCode,        // a code the specification does not list for the packet   -> 0x82
};

// What a human reads in a log line, e.g. "reserved flag bits set in the fixed header".
std::string_view Describe(DecodeError error);

// The reason code the broker sends (or, for 3.1.x, maps) when it refuses a packet for `error`.
ReasonCode ToReasonCode(DecodeError error);

}  // namespace tinymq::mqtt

namespace tinymq::mqtt {

template <typename T>
using DecodeResult = util::Result<T, DecodeError>;

}  // namespace tinymq::mqtt
