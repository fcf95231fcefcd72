#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The records the broker keeps in the store (store.h), their keys and their encoding. Plain
// structs with no broker types, so that this layer stays below the broker; the broker converts.
//
// Keys order what must be read in order: a client's records share the prefix ClientKey(id) (its
// length, then its bytes, so no client id is a prefix of another's keys), and numbers in keys are
// big-endian, so a scan returns a queue in sequence order.
//
// Values start with a record version byte (kRecordVersion); a decoder refuses a value of another
// version, a truncated one, or one with bytes left over (nullopt), so a damaged record is
// reported, not misread.
//
// Threading: Thread-compatible (pure functions).
// Errors:    decoders return nullopt for anything but a well-formed record.

namespace tinymq::store {

inline constexpr std::uint8_t kRecordVersion = 1;

// Wall-clock time in milliseconds since the Unix epoch: deadlines that must survive a restart.
using UnixMs = std::int64_t;

struct MessageRecord {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::string properties;  // 5.0 properties that travel with the message, in wire encoding
  UnixMs expires_at = 0;   // 0: never

  bool operator==(const MessageRecord&) const = default;
};

struct SessionRecord {
  std::uint32_t expiry_s = 0;  // 0xFFFFFFFF: never
  UnixMs disconnected_at = 0;  // 0: connected when written (a restart ends that connection)
  std::uint16_t last_packet_id = 0;
  std::uint8_t protocol_level = 4;  // of the last connection: 3, 4 or 5

  bool operator==(const SessionRecord&) const = default;
};

struct SubscriptionRecord {
  std::uint8_t options = 0;      // the SUBSCRIBE options byte as granted (QoS, NL, RAP, RH)
  std::uint32_t identifier = 0;  // 5.0 Subscription Identifier, 0: none
  bool shared = false;           // a "$share/{name}/{filter}" of a 5.0 session

  bool operator==(const SubscriptionRecord&) const = default;
};

// Where a message for a session stands.
enum class DeliveryState : std::uint8_t {
  kQueued = 0,    // not sent yet
  kSent = 1,      // PUBLISH sent under packet_id, not acknowledged (PUBACK / PUBREC)
  kReleased = 2,  // QoS 2: PUBREC received, PUBREL sent, PUBCOMP awaited
};

// A message for one session. It holds its message (a message queued for several sessions is
// stored with each: no record shared between sessions needs counting or collecting); once
// released (QoS 2, PUBREL sent) the message is no longer needed and is empty.
struct QueueRecord {
  MessageRecord message;
  std::uint8_t qos = 0;  // as delivered to this session
  bool retain = false;
  DeliveryState state = DeliveryState::kQueued;
  std::uint16_t packet_id = 0;     // when sent
  std::vector<std::uint32_t> ids;  // 5.0 Subscription Identifiers
  std::uint64_t group = 0;         // shared subscription group, 0: none

  bool operator==(const QueueRecord&) const = default;
};

// A QoS 2 PUBLISH received from a persistent session whose PUBREL is awaited, when its routing
// went to other workers too (else the value is empty: the local queue records were written with
// it, atomically). Each of those workers writes a marker (IncomingKey + its index, empty value)
// with its own queue records; a restore that finds the record without some marker routes the
// message again to the sessions that worker had (a crash came between the two writes).
struct IncomingRecord {
  MessageRecord message;
  std::uint16_t workers = 1;             // how many workers the broker had
  std::vector<std::uint16_t> routed_to;  // the other workers the message was sent to

  bool operator==(const IncomingRecord&) const = default;
};

struct WillRecord {
  MessageRecord message;
  UnixMs due_at = 0;  // when it is published if the session has not resumed (Will Delay)

  bool operator==(const WillRecord&) const = default;
};

// Keys.
std::string ClientKey(std::string_view client_id);
std::string SubscriptionKey(std::string_view client_id, std::string_view filter);
std::string QueueKey(std::string_view client_id, std::uint64_t sequence);
std::string IncomingKey(std::string_view client_id, std::uint16_t packet_id);
// The marker of worker `worker` for the incoming record `incoming_key` (IncomingRecord).
std::string RoutedMarkerKey(std::string_view incoming_key, std::uint16_t worker);
// The client id a key starts with, and what follows it; nullopt for a key too short for its own
// length prefix.
struct SplitKey {
  std::string_view client_id;
  std::string_view rest;
};
std::optional<SplitKey> SplitClientKey(std::string_view key);
// The number QueueKey / IncomingKey put after the client (8 or 2 bytes).
std::optional<std::uint64_t> KeyNumber(std::string_view rest);

std::string Encode(const MessageRecord& r);
std::string Encode(const SessionRecord& r);
std::string Encode(const SubscriptionRecord& r);
std::string Encode(const QueueRecord& r);
// The same in two steps, for a message queued for many sessions: its part encoded once
// (EncodeMessagePart), then each record around it (r.message is ignored).
std::string EncodeMessagePart(const MessageRecord& m);
std::string EncodeQueue(std::string_view message_part, const QueueRecord& r);
std::string Encode(const WillRecord& r);
std::string Encode(const IncomingRecord& r);

std::optional<MessageRecord> DecodeMessage(std::string_view bytes);
std::optional<SessionRecord> DecodeSession(std::string_view bytes);
std::optional<SubscriptionRecord> DecodeSubscription(std::string_view bytes);
std::optional<QueueRecord> DecodeQueue(std::string_view bytes);
std::optional<WillRecord> DecodeWill(std::string_view bytes);
std::optional<IncomingRecord> DecodeIncoming(std::string_view bytes);
// What a restore needs of a queue record without decoding (copying) its message: its state, the
// size of its payload and when the message expires. nullopt for a value DecodeQueue would refuse
// at those fields (the rest is checked when the record is read back).
struct QueuePeek {
  DeliveryState state = DeliveryState::kQueued;
  std::size_t payload_size = 0;
  UnixMs expires_at = 0;
};
std::optional<QueuePeek> PeekQueue(std::string_view bytes);

}  // namespace tinymq::store
