// MQTT 5.0 properties (§2.2.2): the identifier table, ReadProperties' validation, the Properties
// view and PropertiesBuilder. The table below is typed from 5.0 §2.2.2.2 Table 2-4, not from the
// codec, so that the two are checked against each other.

#include "tinymq/mqtt/properties.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "tests/unit/mqtt/codec_test_util.h"
#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/types.h"
#include "tinymq/mqtt/wire.h"

namespace tinymq::mqtt {
namespace {

using codec_test::Cat;
using codec_test::Str;
using codec_test::Varint;
using std::string_view_literals::operator""sv;
using Bytes = std::vector<std::uint8_t>;
using Ctx = PropertyContext;
using PI = PropertyId;
using T = PropertyType;

constexpr Ctx kAllContexts[] = {
    Ctx::kConnect,     Ctx::kWill,     Ctx::kConnack,    Ctx::kPublish,   Ctx::kPuback,
    Ctx::kPubrec,      Ctx::kPubrel,   Ctx::kPubcomp,    Ctx::kSubscribe, Ctx::kSuback,
    Ctx::kUnsubscribe, Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth,
};

std::string_view ContextName(Ctx c) {
  switch (c) {
    case Ctx::kConnect: return "CONNECT";
    case Ctx::kWill: return "Will Properties";
    case Ctx::kConnack: return "CONNACK";
    case Ctx::kPublish: return "PUBLISH";
    case Ctx::kPuback: return "PUBACK";
    case Ctx::kPubrec: return "PUBREC";
    case Ctx::kPubrel: return "PUBREL";
    case Ctx::kPubcomp: return "PUBCOMP";
    case Ctx::kSubscribe: return "SUBSCRIBE";
    case Ctx::kSuback: return "SUBACK";
    case Ctx::kUnsubscribe: return "UNSUBSCRIBE";
    case Ctx::kUnsuback: return "UNSUBACK";
    case Ctx::kDisconnect: return "DISCONNECT";
    case Ctx::kAuth: return "AUTH";
  }
  return "?";
}

// 5.0 §2.2.2.2 Table 2-4, row by row: identifier, name, type, where it may appear.
struct SpecRow {
  std::uint8_t id;
  std::string_view name;
  PropertyType type;
  std::vector<Ctx> contexts;
};

const std::vector<SpecRow>& SpecTable() {
  static const auto* const kTable = new std::vector<SpecRow>{
      {0x01, "Payload Format Indicator", T::kByte, {Ctx::kPublish, Ctx::kWill}},
      {0x02, "Message Expiry Interval", T::kFourByteInteger, {Ctx::kPublish, Ctx::kWill}},
      {0x03, "Content Type", T::kUtf8String, {Ctx::kPublish, Ctx::kWill}},
      {0x08, "Response Topic", T::kUtf8String, {Ctx::kPublish, Ctx::kWill}},
      {0x09, "Correlation Data", T::kBinaryData, {Ctx::kPublish, Ctx::kWill}},
      {0x0B, "Subscription Identifier", T::kVarint, {Ctx::kPublish, Ctx::kSubscribe}},
      {0x11,
       "Session Expiry Interval",
       T::kFourByteInteger,
       {Ctx::kConnect, Ctx::kConnack, Ctx::kDisconnect}},
      {0x12, "Assigned Client Identifier", T::kUtf8String, {Ctx::kConnack}},
      {0x13, "Server Keep Alive", T::kTwoByteInteger, {Ctx::kConnack}},
      {0x15, "Authentication Method", T::kUtf8String, {Ctx::kConnect, Ctx::kConnack, Ctx::kAuth}},
      {0x16, "Authentication Data", T::kBinaryData, {Ctx::kConnect, Ctx::kConnack, Ctx::kAuth}},
      {0x17, "Request Problem Information", T::kByte, {Ctx::kConnect}},
      {0x18, "Will Delay Interval", T::kFourByteInteger, {Ctx::kWill}},
      {0x19, "Request Response Information", T::kByte, {Ctx::kConnect}},
      {0x1A, "Response Information", T::kUtf8String, {Ctx::kConnack}},
      {0x1C, "Server Reference", T::kUtf8String, {Ctx::kConnack, Ctx::kDisconnect}},
      {0x1F,
       "Reason String",
       T::kUtf8String,
       {Ctx::kConnack, Ctx::kPuback, Ctx::kPubrec, Ctx::kPubrel, Ctx::kPubcomp, Ctx::kSuback,
        Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth}},
      {0x21, "Receive Maximum", T::kTwoByteInteger, {Ctx::kConnect, Ctx::kConnack}},
      {0x22, "Topic Alias Maximum", T::kTwoByteInteger, {Ctx::kConnect, Ctx::kConnack}},
      {0x23, "Topic Alias", T::kTwoByteInteger, {Ctx::kPublish}},
      {0x24, "Maximum QoS", T::kByte, {Ctx::kConnack}},
      {0x25, "Retain Available", T::kByte, {Ctx::kConnack}},
      {0x26,
       "User Property",
       T::kUtf8StringPair,
       {Ctx::kConnect, Ctx::kConnack, Ctx::kPublish, Ctx::kWill, Ctx::kPuback, Ctx::kPubrec,
        Ctx::kPubrel, Ctx::kPubcomp, Ctx::kSubscribe, Ctx::kSuback, Ctx::kUnsubscribe,
        Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth}},
      {0x27, "Maximum Packet Size", T::kFourByteInteger, {Ctx::kConnect, Ctx::kConnack}},
      {0x28, "Wildcard Subscription Available", T::kByte, {Ctx::kConnack}},
      {0x29, "Subscription Identifier Available", T::kByte, {Ctx::kConnack}},
      {0x2A, "Shared Subscription Available", T::kByte, {Ctx::kConnack}},
  };
  return *kTable;
}

const SpecRow* FindRow(std::uint32_t id) {
  for (const SpecRow& row : SpecTable()) {
    if (row.id == id) {
      return &row;
    }
  }
  return nullptr;
}

bool SpecAllows(const SpecRow& row, Ctx context) {
  for (const Ctx c : row.contexts) {
    if (c == context) {
      return true;
    }
  }
  return false;
}

// 5.0 §2.2.2.2 and the property sections of §3: only User Property may appear more than once
// (e.g. §3.1.2.11.8), and Subscription Identifier in PUBLISH (§3.3.2.3.8, one per matching
// subscription); for every other property "It is a Protocol Error to include ... more than once".
bool SpecMayRepeat(std::uint8_t id, Ctx context) {
  return id == 0x26 || (id == 0x0B && context == Ctx::kPublish);
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers (the wire format of §1.5 and §2.2.2, written out by hand)

// One property of the given row with a value valid everywhere the row may appear: 1 for numbers
// (0 is out of range for some), "s" for strings, 00 FF for binary data, "n" = "v" for a pair.
Bytes SampleProperty(const SpecRow& row) {
  const Bytes id = {row.id};
  switch (row.type) {
    case T::kByte: return Cat({id, {0x01}});
    case T::kTwoByteInteger: return Cat({id, {0x00, 0x01}});
    case T::kFourByteInteger: return Cat({id, {0x00, 0x00, 0x00, 0x01}});
    case T::kVarint: return Cat({id, {0x01}});
    case T::kUtf8String: return Cat({id, Str("s")});
    case T::kBinaryData: return Cat({id, {0x00, 0x02, 0x00, 0xFF}});
    case T::kUtf8StringPair: return Cat({id, Str("n"), Str("v")});
  }
  return {};
}

// Reads `list` (without its length prefix) as the property list of `context`.
struct ReadOutcome {
  Properties properties;
  std::optional<DecodeError> error;
  std::size_t left = 0;  // bytes after the list that the reader did not consume
};

// `framed` is the list with its Property Length; the result's properties point into it.
ReadOutcome Read(const Bytes& framed, Ctx context) {
  Reader r(std::span<const std::uint8_t>(framed.data(), framed.size()));
  ReadOutcome out;
  out.properties = ReadProperties(r, context);
  if (r.failed()) {
    out.error = r.error();
  }
  out.left = r.remaining();
  return out;
}

ReadOutcome Read(Bytes&& framed, Ctx context) = delete;  // would dangle

std::string_view Outcome(const std::optional<DecodeError>& error) {
  return error ? Describe(*error) : "ok";
}

// "ok" or the description of the error ReadProperties reports for `framed`.
std::string_view ReadError(const Bytes& framed, Ctx context) {
  return Outcome(Read(framed, context).error);
}

// ---------------------------------------------------------------------------------------------
// The table

TEST(PropertyTableTest, EnumeratorsHaveTheSpecificationIdentifiers) {
  // 5.0 §2.2.2.2 Table 2-4.
  EXPECT_EQ(static_cast<int>(PI::kPayloadFormatIndicator), 0x01);
  EXPECT_EQ(static_cast<int>(PI::kMessageExpiryInterval), 0x02);
  EXPECT_EQ(static_cast<int>(PI::kContentType), 0x03);
  EXPECT_EQ(static_cast<int>(PI::kResponseTopic), 0x08);
  EXPECT_EQ(static_cast<int>(PI::kCorrelationData), 0x09);
  EXPECT_EQ(static_cast<int>(PI::kSubscriptionIdentifier), 0x0B);
  EXPECT_EQ(static_cast<int>(PI::kSessionExpiryInterval), 0x11);
  EXPECT_EQ(static_cast<int>(PI::kAssignedClientIdentifier), 0x12);
  EXPECT_EQ(static_cast<int>(PI::kServerKeepAlive), 0x13);
  EXPECT_EQ(static_cast<int>(PI::kAuthenticationMethod), 0x15);
  EXPECT_EQ(static_cast<int>(PI::kAuthenticationData), 0x16);
  EXPECT_EQ(static_cast<int>(PI::kRequestProblemInformation), 0x17);
  EXPECT_EQ(static_cast<int>(PI::kWillDelayInterval), 0x18);
  EXPECT_EQ(static_cast<int>(PI::kRequestResponseInformation), 0x19);
  EXPECT_EQ(static_cast<int>(PI::kResponseInformation), 0x1A);
  EXPECT_EQ(static_cast<int>(PI::kServerReference), 0x1C);
  EXPECT_EQ(static_cast<int>(PI::kReasonString), 0x1F);
  EXPECT_EQ(static_cast<int>(PI::kReceiveMaximum), 0x21);
  EXPECT_EQ(static_cast<int>(PI::kTopicAliasMaximum), 0x22);
  EXPECT_EQ(static_cast<int>(PI::kTopicAlias), 0x23);
  EXPECT_EQ(static_cast<int>(PI::kMaximumQos), 0x24);
  EXPECT_EQ(static_cast<int>(PI::kRetainAvailable), 0x25);
  EXPECT_EQ(static_cast<int>(PI::kUserProperty), 0x26);
  EXPECT_EQ(static_cast<int>(PI::kMaximumPacketSize), 0x27);
  EXPECT_EQ(static_cast<int>(PI::kWildcardSubscriptionAvailable), 0x28);
  EXPECT_EQ(static_cast<int>(PI::kSubscriptionIdentifierAvailable), 0x29);
  EXPECT_EQ(static_cast<int>(PI::kSharedSubscriptionAvailable), 0x2A);
}

TEST(PropertyTableTest, IsKnownPropertyForEveryIdentifier) {
  // 5.0 §2.2.2.2: the 27 identifiers of Table 2-4, and nothing else, up to 255 and beyond.
  int known = 0;
  for (std::uint32_t id = 0; id < 256; ++id) {
    SCOPED_TRACE(id);
    EXPECT_EQ(IsKnownProperty(id), FindRow(id) != nullptr);
    known += IsKnownProperty(id) ? 1 : 0;
  }
  EXPECT_EQ(known, 27);
  for (const std::uint32_t id : {256U, 0x0126U, 16'383U, 16'384U, kMaxVarint, 0xFFFF'FFFFU}) {
    SCOPED_TRACE(id);
    EXPECT_FALSE(IsKnownProperty(id));
  }
}

TEST(PropertyTableTest, TypeOfAndNameOfEveryProperty) {
  // 5.0 §2.2.2.2 Table 2-4: name and data type columns.
  for (const SpecRow& row : SpecTable()) {
    SCOPED_TRACE(row.name);
    const auto id = static_cast<PropertyId>(row.id);
    EXPECT_EQ(TypeOf(id), row.type);
    EXPECT_EQ(PropertyName(id), row.name);
  }
}

TEST(PropertyTableTest, IsAllowedInForEveryPropertyAndContext) {
  // 5.0 §2.2.2.2 Table 2-4: the "Packet / Will Properties" column.
  int allowed = 0;
  for (const SpecRow& row : SpecTable()) {
    for (const Ctx c : kAllContexts) {
      SCOPED_TRACE(testing::Message() << row.name << " in " << ContextName(c));
      EXPECT_EQ(IsAllowedIn(static_cast<PropertyId>(row.id), c), SpecAllows(row, c));
      allowed += SpecAllows(row, c) ? 1 : 0;
    }
  }
  EXPECT_EQ(allowed, 64);  // the sum of the "Packet / Will Properties" column of Table 2-4
}

TEST(PropertyTableTest, MayRepeatOnlyUserPropertyAndSubscriptionIdentifierInPublish) {
  // 5.0 §3.x.2.x: "It is a Protocol Error to include ... more than once", except §3.3.2.3.7
  // (User Property) and §3.3.2.3.8 (Subscription Identifier in PUBLISH).
  for (const SpecRow& row : SpecTable()) {
    for (const Ctx c : row.contexts) {
      SCOPED_TRACE(testing::Message() << row.name << " in " << ContextName(c));
      EXPECT_EQ(MayRepeat(static_cast<PropertyId>(row.id), c), SpecMayRepeat(row.id, c));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ReadProperties against the table

TEST(PropertiesTest, ReadAcceptsEachPropertyExactlyWhereAllowed) {
  // 5.0 §2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
  for (const SpecRow& row : SpecTable()) {
    for (const Ctx c : kAllContexts) {
      SCOPED_TRACE(testing::Message() << row.name << " in " << ContextName(c));
      const Bytes list = SampleProperty(row);
      const Bytes framed = Cat({Varint(static_cast<std::uint32_t>(list.size())), list});
      const ReadOutcome got = Read(framed, c);
      EXPECT_EQ(Outcome(got.error),
                SpecAllows(row, c) ? "ok"sv : Describe(DecodeError::kPropertyNotAllowed));
      if (!got.error) {
        EXPECT_EQ(got.properties.Count(), 1U);
        EXPECT_EQ(got.properties.begin()->id, static_cast<PropertyId>(row.id));
      } else {
        EXPECT_TRUE(got.properties.empty());
      }
    }
  }
}

TEST(PropertiesTest, ReadRefusesASecondCopyUnlessItMayRepeat) {
  // As MayRepeat: a second copy of a single-valued property is a Protocol Error (0x82).
  for (const SpecRow& row : SpecTable()) {
    for (const Ctx c : row.contexts) {
      SCOPED_TRACE(testing::Message() << row.name << " twice in " << ContextName(c));
      const Bytes list = Cat({SampleProperty(row), SampleProperty(row)});
      const Bytes framed = Cat({Varint(static_cast<std::uint32_t>(list.size())), list});
      EXPECT_EQ(ReadError(framed, c),
                SpecMayRepeat(row.id, c) ? "ok"sv : Describe(DecodeError::kDuplicateProperty));
      EXPECT_EQ(ToReasonCode(DecodeError::kDuplicateProperty), ReasonCode::kProtocolError);
    }
  }
}

TEST(PropertiesTest, ReadChecksTheRangeOfByteFlags) {
  // 0 or 1 only: §3.3.2.3.2 Payload Format Indicator, §3.1.2.11.6/.7 Request Response / Problem
  // Information, §3.2.2.3.4 Maximum QoS, §3.2.2.3.5/.11/.12/.13 the availability flags.
  struct Flag {
    PropertyId id;
    Ctx context;
  };
  for (const Flag f :
       {Flag{PI::kPayloadFormatIndicator, Ctx::kPublish},
        Flag{PI::kPayloadFormatIndicator, Ctx::kWill},
        Flag{PI::kRequestProblemInformation, Ctx::kConnect},
        Flag{PI::kRequestResponseInformation, Ctx::kConnect}, Flag{PI::kMaximumQos, Ctx::kConnack},
        Flag{PI::kRetainAvailable, Ctx::kConnack},
        Flag{PI::kWildcardSubscriptionAvailable, Ctx::kConnack},
        Flag{PI::kSubscriptionIdentifierAvailable, Ctx::kConnack},
        Flag{PI::kSharedSubscriptionAvailable, Ctx::kConnack}}) {
    for (unsigned v = 0; v < 256; ++v) {
      SCOPED_TRACE(testing::Message() << PropertyName(f.id) << " = " << v);
      EXPECT_EQ(ReadError({0x02, static_cast<std::uint8_t>(f.id), static_cast<std::uint8_t>(v)},
                          f.context),
                v <= 1 ? "ok"sv : Describe(DecodeError::kInvalidPropertyValue));
    }
  }
}

TEST(PropertiesTest, ReadRefusesZeroWhereTheSpecificationDoes) {
  // The clauses are given per case.
  struct Case {
    Bytes zero;
    Bytes one;
    Ctx context;
    DecodeError error;
  };
  const std::vector<Case> cases = {
      // §3.1.2.11.3 / §3.2.2.3.3: Receive Maximum 0 is a Protocol Error.
      {{0x21, 0x00, 0x00}, {0x21, 0x00, 0x01}, Ctx::kConnect, DecodeError::kInvalidPropertyValue},
      {{0x21, 0x00, 0x00}, {0x21, 0x00, 0x01}, Ctx::kConnack, DecodeError::kInvalidPropertyValue},
      // §3.1.2.11.4 / §3.2.2.3.6: Maximum Packet Size 0 is a Protocol Error.
      {{0x27, 0x00, 0x00, 0x00, 0x00},
       {0x27, 0x00, 0x00, 0x00, 0x01},
       Ctx::kConnect,
       DecodeError::kInvalidPropertyValue},
      {{0x27, 0x00, 0x00, 0x00, 0x00},
       {0x27, 0x00, 0x00, 0x00, 0x01},
       Ctx::kConnack,
       DecodeError::kInvalidPropertyValue},
      // §3.8.2.1.2 / §3.3.2.3.8: Subscription Identifier 0 is a Protocol Error.
      {{0x0B, 0x00}, {0x0B, 0x01}, Ctx::kSubscribe, DecodeError::kInvalidPropertyValue},
      {{0x0B, 0x00}, {0x0B, 0x01}, Ctx::kPublish, DecodeError::kInvalidPropertyValue},
      // [MQTT-3.3.2-8]: Topic Alias 0 -> 0x94 Topic Alias invalid.
      {{0x23, 0x00, 0x00}, {0x23, 0x00, 0x01}, Ctx::kPublish, DecodeError::kTopicAliasZero},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << static_cast<int>(c.zero[0]) << " in " << ContextName(c.context));
    const auto size = static_cast<std::uint8_t>(c.zero.size());
    EXPECT_EQ(ReadError(Cat({{size}, c.zero}), c.context), Describe(c.error));
    EXPECT_EQ(ReadError(Cat({{size}, c.one}), c.context), "ok");
  }
  // 0 is a valid value for every other number property, e.g. "no expiry", "no aliases".
  for (const Bytes& zero :
       {Bytes{0x11, 0x00, 0x00, 0x00, 0x00}, Bytes{0x22, 0x00, 0x00}, Bytes{0x13, 0x00, 0x00}}) {
    EXPECT_EQ(ReadError(Cat({{static_cast<std::uint8_t>(zero.size())}, zero}), Ctx::kConnack),
              "ok");
  }
  EXPECT_EQ(ReadError({0x05, 0x02, 0x00, 0x00, 0x00, 0x00}, Ctx::kPublish), "ok");
  EXPECT_EQ(ReadError({0x05, 0x18, 0x00, 0x00, 0x00, 0x00}, Ctx::kWill), "ok");
}

TEST(PropertiesTest, ReadRefusesAResponseTopicThatIsNotATopicName) {
  // [MQTT-3.3.2-14]: no wildcard characters; and as a Topic Name, at least one character
  // ([MQTT-4.7.3-1]). The same rule in Will Properties (§3.1.3.2.5).
  for (const Ctx c : {Ctx::kPublish, Ctx::kWill}) {
    SCOPED_TRACE(ContextName(c));
    EXPECT_EQ(ReadError({0x04, 0x08, 0x00, 0x01, '+'}, c),
              Describe(DecodeError::kInvalidPropertyValue));
    EXPECT_EQ(ReadError({0x06, 0x08, 0x00, 0x03, 'a', '/', '#'}, c),
              Describe(DecodeError::kInvalidPropertyValue));
    EXPECT_EQ(ReadError({0x03, 0x08, 0x00, 0x00}, c), Describe(DecodeError::kInvalidPropertyValue));
    EXPECT_EQ(ReadError({0x04, 0x08, 0x00, 0x01, '/'}, c), "ok");
  }
  // Other topic-like strings are not topic names: a Content Type may hold '#'.
  EXPECT_EQ(ReadError({0x04, 0x03, 0x00, 0x01, '#'}, Ctx::kPublish), "ok");
}

TEST(PropertiesTest, ReadRefusesUnknownIdentifiers) {
  // 5.0 §2.2.2.2: identifiers outside Table 2-4 -> Malformed Packet.
  for (std::uint32_t id = 0; id < 128; ++id) {
    if (FindRow(id) != nullptr) {
      continue;
    }
    SCOPED_TRACE(id);
    EXPECT_EQ(ReadError({0x02, static_cast<std::uint8_t>(id), 0x00}, Ctx::kPublish),
              Describe(DecodeError::kUnknownProperty));
  }
  // Two-byte identifiers are all unknown; a known one spelled in two bytes is not minimal.
  EXPECT_EQ(ReadError({0x03, 0x80, 0x01, 0x00}, Ctx::kPublish),
            Describe(DecodeError::kUnknownProperty));
  EXPECT_EQ(ReadError({0x03, 0xFF, 0x7F, 0x00}, Ctx::kPublish),
            Describe(DecodeError::kUnknownProperty));
  EXPECT_EQ(ReadError({0x03, 0x81, 0x00, 0x01}, Ctx::kPublish),
            Describe(DecodeError::kNonMinimalVarint));
}

TEST(PropertiesTest, ReadRefusesListsThatDoNotFit) {
  // The Property Length counts exactly the bytes of the list (§2.2.2.1).
  EXPECT_EQ(ReadError({}, Ctx::kPublish), Describe(DecodeError::kTruncated));
  EXPECT_EQ(ReadError({0x02, 0x01}, Ctx::kPublish), Describe(DecodeError::kTruncated));
  EXPECT_EQ(ReadError({0x01, 0x02}, Ctx::kPublish), Describe(DecodeError::kTruncated));
  EXPECT_EQ(ReadError({0x03, 0x03, 0x00, 0x02, 'a', 'b'}, Ctx::kPublish),
            Describe(DecodeError::kTruncated));
  EXPECT_EQ(ReadError({0x05, 0x26, 0x00, 0x01, 'a', 0x00}, Ctx::kPublish),
            Describe(DecodeError::kTruncated));
  EXPECT_EQ(ReadError({0x80, 0x00}, Ctx::kPublish), Describe(DecodeError::kNonMinimalVarint));
  EXPECT_EQ(ReadError({0xFF, 0xFF, 0xFF, 0xFF, 0x01}, Ctx::kPublish),
            Describe(DecodeError::kMalformedVarint));
  // The reader keeps its first error and hands back an empty list.
  const Bytes alias_zero = {0x04, 0x23, 0x00, 0x00, 0xAA, 0xBB};
  const ReadOutcome bad = Read(alias_zero, Ctx::kPublish);
  EXPECT_EQ(Outcome(bad.error), Describe(DecodeError::kTopicAliasZero));
  EXPECT_TRUE(bad.properties.empty());
  EXPECT_EQ(bad.left, 0U);
}

TEST(PropertiesTest, ReadChecksUtf8InStringsAndPairs) {
  // [MQTT-1.5.4-1], [MQTT-1.5.4-2], [MQTT-1.5.7-1].
  EXPECT_EQ(ReadError({0x05, 0x03, 0x00, 0x02, 0xC0, 0x80}, Ctx::kPublish),
            Describe(DecodeError::kInvalidUtf8));
  EXPECT_EQ(ReadError({0x04, 0x03, 0x00, 0x01, 0x00}, Ctx::kPublish),
            Describe(DecodeError::kUtf8NullCharacter));
  EXPECT_EQ(ReadError({0x07, 0x26, 0x00, 0x01, 0xED, 0x00, 0x01, 'v'}, Ctx::kPublish),
            Describe(DecodeError::kInvalidUtf8));
  EXPECT_EQ(ReadError({0x07, 0x26, 0x00, 0x01, 'n', 0x00, 0x01, 0x00}, Ctx::kPublish),
            Describe(DecodeError::kUtf8NullCharacter));
  // Binary Data is not UTF-8: any bytes are fine.
  EXPECT_EQ(ReadError({0x05, 0x09, 0x00, 0x02, 0xC0, 0x00}, Ctx::kPublish), "ok");
}

TEST(PropertiesTest, ReadEmptyListAndStopsAtItsEnd) {
  // [MQTT-2.2.2-1]: no properties is a Property Length of zero.
  const Bytes nothing = {0x00, 0xAB};
  const ReadOutcome empty = Read(nothing, Ctx::kConnack);
  EXPECT_EQ(Outcome(empty.error), "ok");
  EXPECT_TRUE(empty.properties.empty());
  EXPECT_EQ(empty.properties.Count(), 0U);
  EXPECT_TRUE(empty.properties.begin() == empty.properties.end());
  EXPECT_EQ(empty.left, 1U);

  const Bytes framed = {0x03, 0x23, 0x00, 0x05, 'p', 'a', 'y'};
  Reader r(std::span<const std::uint8_t>(framed.data(), framed.size()));
  const Properties p = ReadProperties(r, Ctx::kPublish);
  ASSERT_FALSE(r.failed());
  EXPECT_EQ(p.Number(PI::kTopicAlias), 5U);
  EXPECT_EQ(r.Rest().AsString(), "pay");
}

// ---------------------------------------------------------------------------------------------
// PropertiesBuilder and the wire encoding of each type (5.0 §1.5, §2.2.2)

// Builds, checks the exact encoding, then reads it back in `context`.
void ExpectRoundTrip(const PropertiesBuilder& builder, const Bytes& encoding, Ctx context) {
  const Properties built = builder.view();
  EXPECT_EQ(Bytes(built.bytes().begin(), built.bytes().end()), encoding);
  const Bytes framed = Cat({Varint(static_cast<std::uint32_t>(encoding.size())), encoding});
  const ReadOutcome read = Read(framed, context);
  ASSERT_EQ(Outcome(read.error), "ok");
  EXPECT_EQ(read.properties, built);
  EXPECT_TRUE(IsValidFor(built, context));
}

TEST(PropertiesTest, ByteRoundTrip) {
  // 5.0 §1.5.1 (Bits), §2.2.2: identifier, then one byte.
  PropertiesBuilder b;
  b.Add(PI::kPayloadFormatIndicator, 1U);
  ExpectRoundTrip(b, {0x01, 0x01}, Ctx::kPublish);
  EXPECT_EQ(b.view().Number(PI::kPayloadFormatIndicator), 1U);
  PropertiesBuilder zero;
  zero.Add(PI::kMaximumQos, 0U);
  ExpectRoundTrip(zero, {0x24, 0x00}, Ctx::kConnack);
  EXPECT_EQ(zero.view().Number(PI::kMaximumQos), 0U);
}

TEST(PropertiesTest, TwoByteIntegerRoundTrip) {
  // §1.5.2: big-endian.
  PropertiesBuilder b;
  b.Add(PI::kReceiveMaximum, 0xFFFFU).Add(PI::kTopicAliasMaximum, 0x0102U);
  ExpectRoundTrip(b, {0x21, 0xFF, 0xFF, 0x22, 0x01, 0x02}, Ctx::kConnect);
  EXPECT_EQ(b.view().Number(PI::kReceiveMaximum), 0xFFFFU);
  EXPECT_EQ(b.view().Number(PI::kTopicAliasMaximum), 0x0102U);
}

TEST(PropertiesTest, FourByteIntegerRoundTrip) {
  // §1.5.3: big-endian.
  PropertiesBuilder b;
  b.Add(PI::kMessageExpiryInterval, 0xFFFF'FFFFU);
  ExpectRoundTrip(b, {0x02, 0xFF, 0xFF, 0xFF, 0xFF}, Ctx::kPublish);
  PropertiesBuilder c;
  c.Add(PI::kSessionExpiryInterval, 0x0102'0304U);
  ExpectRoundTrip(c, {0x11, 0x01, 0x02, 0x03, 0x04}, Ctx::kDisconnect);
  EXPECT_EQ(c.view().Number(PI::kSessionExpiryInterval), 0x0102'0304U);
}

TEST(PropertiesTest, VariableByteIntegerRoundTripAtEverySizeBoundary) {
  // §1.5.5: 1 to 4 bytes, least significant group first, the minimum number of bytes.
  struct Case {
    std::uint32_t value;
    Bytes encoding;
  };
  for (const Case& c :
       {Case{1, {0x01}}, Case{127, {0x7F}}, Case{128, {0x80, 0x01}}, Case{16'383, {0xFF, 0x7F}},
        Case{16'384, {0x80, 0x80, 0x01}}, Case{2'097'151, {0xFF, 0xFF, 0x7F}},
        Case{2'097'152, {0x80, 0x80, 0x80, 0x01}}, Case{268'435'455, {0xFF, 0xFF, 0xFF, 0x7F}}}) {
    SCOPED_TRACE(c.value);
    PropertiesBuilder b;
    b.Add(PI::kSubscriptionIdentifier, c.value);
    ExpectRoundTrip(b, Cat({{0x0B}, c.encoding}), Ctx::kSubscribe);
    EXPECT_EQ(b.view().Number(PI::kSubscriptionIdentifier), c.value);
  }
}

TEST(PropertiesTest, Utf8StringRoundTrip) {
  // §1.5.4: two-byte length, then the UTF-8 bytes.
  PropertiesBuilder b;
  b.Add(PI::kContentType, "t\xC3\xA9xt"sv).Add(PI::kResponseTopic, "r/1"sv);
  ExpectRoundTrip(b, {0x03, 0x00, 0x05, 't', 0xC3, 0xA9, 'x', 't', 0x08, 0x00, 0x03, 'r', '/', '1'},
                  Ctx::kPublish);
  EXPECT_EQ(b.view().Text(PI::kContentType), "t\xC3\xA9xt");
  EXPECT_EQ(b.view().Text(PI::kResponseTopic), "r/1");
  // An empty string where the property allows one.
  PropertiesBuilder empty;
  empty.Add(PI::kReasonString, ""sv);
  ExpectRoundTrip(empty, {0x1F, 0x00, 0x00}, Ctx::kDisconnect);
  EXPECT_EQ(empty.view().Text(PI::kReasonString), "");
}

TEST(PropertiesTest, BinaryDataRoundTrip) {
  // §1.5.6: two-byte length, then the bytes, zeros included.
  const Bytes data = {0x00, 0xFF, 0x00};
  PropertiesBuilder b;
  b.AddBinary(PI::kAuthenticationData, BinaryView(data.data(), data.size()));
  ExpectRoundTrip(b, {0x16, 0x00, 0x03, 0x00, 0xFF, 0x00}, Ctx::kAuth);
  const auto got = b.view().Binary(PI::kAuthenticationData);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(Bytes(got->begin(), got->end()), data);

  PropertiesBuilder empty;
  empty.AddBinary(PI::kCorrelationData, BinaryView());
  ExpectRoundTrip(empty, {0x09, 0x00, 0x00}, Ctx::kPublish);
  const auto none = empty.view().Binary(PI::kCorrelationData);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST(PropertiesTest, Utf8StringPairRoundTrip) {
  // §1.5.7: two UTF-8 strings, name then value.
  PropertiesBuilder b;
  b.AddUserProperty("k", "v1").AddUserProperty("", "");
  ExpectRoundTrip(b, {0x26, 0x00, 0x01, 'k', 0x00, 0x02, 'v', '1', 0x26, 0x00, 0x00, 0x00, 0x00},
                  Ctx::kAuth);
  const auto first = b.view().Find(PI::kUserProperty);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->text, "k");
  EXPECT_EQ(first->value, "v1");
}

TEST(PropertiesTest, BuilderRefusesAValueOfTheWrongTypeOrSize) {
  // properties.h: "Adding a value of the wrong type for `id`, or a number too large for the type,
  // is a bug (TINYMQ_CHECK)".
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(PropertiesBuilder().Add(PI::kContentType, 1U), "check failed");
  EXPECT_DEATH(PropertiesBuilder().Add(PI::kReceiveMaximum, "x"sv), "check failed");
  EXPECT_DEATH(PropertiesBuilder().Add(PI::kPayloadFormatIndicator, 256U), "check failed");
  EXPECT_DEATH(PropertiesBuilder().Add(PI::kTopicAlias, 0x10000U), "check failed");
  EXPECT_DEATH(PropertiesBuilder().Add(PI::kSubscriptionIdentifier, kMaxVarint + 1),
               "check failed");
}

// ---------------------------------------------------------------------------------------------
// Accessors, iteration, equality

// A list with one property of each type, two User Properties and two Subscription Identifiers,
// as a server's PUBLISH may carry (§3.3.2.3).
PropertiesBuilder MixedPublishProperties() {
  static const std::uint8_t kData[] = {0xDE, 0xAD};
  PropertiesBuilder b;
  b.Add(PI::kPayloadFormatIndicator, 1U)
      .Add(PI::kContentType, "text/plain"sv)
      .AddUserProperty("a", "1")
      .AddBinary(PI::kCorrelationData, BinaryView(kData, sizeof kData))
      .Add(PI::kSubscriptionIdentifier, 7U)
      .AddUserProperty("b", "2")
      .Add(PI::kTopicAlias, 3U)
      .Add(PI::kMessageExpiryInterval, 60U)
      .Add(PI::kSubscriptionIdentifier, 300U);
  return b;
}

TEST(PropertiesTest, AccessorsReturnTheFirstMatchOrNothing) {
  // properties.h: Find and the typed accessors return the first property with the identifier.
  const PropertiesBuilder b = MixedPublishProperties();
  const Properties p = b.view();
  EXPECT_EQ(p.Count(), 9U);
  EXPECT_FALSE(p.empty());
  EXPECT_EQ(p.Number(PI::kPayloadFormatIndicator), 1U);
  EXPECT_EQ(p.Number(PI::kTopicAlias), 3U);
  EXPECT_EQ(p.Number(PI::kMessageExpiryInterval), 60U);
  EXPECT_EQ(p.Number(PI::kSubscriptionIdentifier), 7U);  // the first of two
  EXPECT_EQ(p.Text(PI::kContentType), "text/plain");
  EXPECT_EQ(p.Text(PI::kUserProperty), "a");  // a User Property's text is its name
  const auto data = p.Binary(PI::kCorrelationData);
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->size(), 2U);
  EXPECT_EQ((*data)[0], 0xDE);
  const auto user = p.Find(PI::kUserProperty);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->text, "a");
  EXPECT_EQ(user->value, "1");
  // Absent.
  EXPECT_EQ(p.Find(PI::kResponseTopic), std::nullopt);
  EXPECT_EQ(p.Number(PI::kReceiveMaximum), std::nullopt);
  EXPECT_EQ(p.Text(PI::kResponseTopic), std::nullopt);
  EXPECT_EQ(p.Binary(PI::kAuthenticationData), std::nullopt);
  EXPECT_EQ(Properties().Count(), 0U);
  EXPECT_EQ(Properties().Find(PI::kUserProperty), std::nullopt);
}

TEST(PropertiesTest, IterationKeepsWireOrder) {
  // [MQTT-3.3.2-18]: the order of User Properties is kept when forwarding.
  const PropertiesBuilder b = MixedPublishProperties();
  std::vector<PropertyId> ids;
  std::vector<std::string_view> user_names;
  for (const Property& p : b.view()) {
    ids.push_back(p.id);
    if (p.id == PI::kUserProperty) {
      user_names.push_back(p.text);
    }
  }
  EXPECT_EQ(ids, (std::vector<PropertyId>{
                     PI::kPayloadFormatIndicator, PI::kContentType, PI::kUserProperty,
                     PI::kCorrelationData, PI::kSubscriptionIdentifier, PI::kUserProperty,
                     PI::kTopicAlias, PI::kMessageExpiryInterval, PI::kSubscriptionIdentifier}));
  EXPECT_EQ(user_names, (std::vector<std::string_view>{"a", "b"}));
  // Post-increment hands back the old position.
  auto it = b.view().begin();
  const auto old = it++;
  EXPECT_EQ(old->id, PI::kPayloadFormatIndicator);
  EXPECT_EQ(it->id, PI::kContentType);
}

TEST(PropertiesTest, DecodedListReadsLikeTheBuiltOne) {
  // [MQTT-3.3.2-17], [MQTT-3.3.2-18]: properties are forwarded unaltered and in order.
  const PropertiesBuilder b = MixedPublishProperties();
  const Bytes wire(b.view().bytes().begin(), b.view().bytes().end());
  const Bytes framed = Cat({Varint(static_cast<std::uint32_t>(wire.size())), wire});
  const ReadOutcome read = Read(framed, Ctx::kPublish);
  ASSERT_EQ(Outcome(read.error), "ok");
  EXPECT_EQ(read.properties, b.view());
  // Forwarding: Append each decoded property to a new builder and get the same bytes.
  PropertiesBuilder copy;
  for (const Property& p : read.properties) {
    copy.Append(p);
  }
  EXPECT_EQ(copy.view(), b.view());
  auto built = b.view().begin();
  for (const Property& p : read.properties) {
    EXPECT_EQ(p, *built);
    ++built;
  }
  EXPECT_TRUE(built == b.view().end());
}

TEST(PropertiesTest, EqualityIsByEncodingAndOrderMatters) {
  // properties.h: lists compare by encoding, so the order of User Properties counts.
  PropertiesBuilder ab;
  ab.AddUserProperty("a", "1").AddUserProperty("b", "2");
  PropertiesBuilder ab2;
  ab2.AddUserProperty("a", "1").AddUserProperty("b", "2");
  PropertiesBuilder ba;
  ba.AddUserProperty("b", "2").AddUserProperty("a", "1");
  EXPECT_EQ(ab.view(), ab2.view());
  EXPECT_FALSE(ab.view() == ba.view());
  EXPECT_EQ(ab.view().Count(), ba.view().Count());
}

TEST(PropertiesTest, ClearEmptiesTheBuilder) {
  // [MQTT-2.2.2-1]: an empty list is a Property Length of 0.
  PropertiesBuilder b = MixedPublishProperties();
  b.Clear();
  EXPECT_TRUE(b.view().empty());
  EXPECT_EQ(b.view(), Properties());
  b.Add(PI::kTopicAlias, 9U);
  EXPECT_EQ(b.view().Count(), 1U);
  EXPECT_EQ(b.view().Number(PI::kTopicAlias), 9U);
}

// ---------------------------------------------------------------------------------------------
// IsValidFor

TEST(PropertiesTest, IsValidForFollowsTheTableForSingleProperties) {
  // 5.0 §2.2.2.2 Table 2-4, as encoders see it.
  for (const SpecRow& row : SpecTable()) {
    const Bytes one = SampleProperty(row);
    const Properties p = Properties::FromValidated(BinaryView(one.data(), one.size()));
    for (const Ctx c : kAllContexts) {
      SCOPED_TRACE(testing::Message() << row.name << " in " << ContextName(c));
      EXPECT_EQ(IsValidFor(p, c), SpecAllows(row, c));
    }
  }
}

TEST(PropertiesTest, IsValidForRefusesRepeatsThatMayNotRepeat) {
  // As MayRepeat, as encoders see it.
  for (const SpecRow& row : SpecTable()) {
    const Bytes twice = Cat({SampleProperty(row), SampleProperty(row)});
    const Properties p = Properties::FromValidated(BinaryView(twice.data(), twice.size()));
    for (const Ctx c : row.contexts) {
      SCOPED_TRACE(testing::Message() << row.name << " twice in " << ContextName(c));
      EXPECT_EQ(IsValidFor(p, c), SpecMayRepeat(row.id, c));
    }
  }
  PropertiesBuilder ids;
  ids.Add(PI::kSubscriptionIdentifier, 1U).Add(PI::kSubscriptionIdentifier, 2U);
  EXPECT_TRUE(IsValidFor(ids.view(), Ctx::kPublish));
  EXPECT_FALSE(IsValidFor(ids.view(), Ctx::kSubscribe));
}

TEST(PropertiesTest, IsValidForEmptyListEverywhere) {
  // [MQTT-2.2.2-1]: every packet with properties may have none.
  for (const Ctx c : kAllContexts) {
    SCOPED_TRACE(ContextName(c));
    EXPECT_TRUE(IsValidFor(Properties(), c));
  }
}

TEST(PropertiesTest, IsValidForAMixedList) {
  // 5.0 §3.3.2.3 (PUBLISH) and §3.1.3.2 (Will Properties).
  const PropertiesBuilder b = MixedPublishProperties();
  EXPECT_TRUE(IsValidFor(b.view(), Ctx::kPublish));
  EXPECT_FALSE(IsValidFor(b.view(), Ctx::kWill));  // Subscription Identifier, Topic Alias
  EXPECT_FALSE(IsValidFor(b.view(), Ctx::kConnect));
  PropertiesBuilder will;
  will.Add(PI::kWillDelayInterval, 10U).Add(PI::kContentType, "c"sv).AddUserProperty("k", "v");
  EXPECT_TRUE(IsValidFor(will.view(), Ctx::kWill));
  EXPECT_FALSE(IsValidFor(will.view(), Ctx::kPublish));  // Will Delay Interval
  PropertiesBuilder twice;
  twice.Add(PI::kMessageExpiryInterval, 1U)
      .AddUserProperty("k", "v")
      .Add(PI::kMessageExpiryInterval, 1U);
  EXPECT_FALSE(IsValidFor(twice.view(), Ctx::kPublish));
}

}  // namespace
}  // namespace tinymq::mqtt
