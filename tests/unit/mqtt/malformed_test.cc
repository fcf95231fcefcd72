// Hand-built byte sequences that the MQTT codec must refuse, each with the exact DecodeError and
// the reason code the broker answers with. Every case names its clause: "3.1.1" is MQTT 3.1.1
// (OASIS, 2014), "5.0" is MQTT 5.0 (OASIS, 2019); a bare [MQTT-x.y.z-n] is numbered the same way in
// the version(s) the test decodes. Next to most refusals stands the smallest change that makes the
// same packet valid, so that a refusal cannot pass for the wrong reason.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tests/unit/mqtt/codec_test_util.h"
#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

namespace tinymq::mqtt {
namespace {

using codec_test::Cat;
using codec_test::Frame;
using codec_test::Str;
using codec_test::Varint;
using std::string_view_literals::operator""sv;
using Bytes = std::vector<std::uint8_t>;
using PI = PropertyId;
using RC = ReasonCode;
using E = DecodeError;

constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr std::uint32_t kNoLimit = kMaxRemainingLength + 5;

// ---------------------------------------------------------------------------------------------
// Building packets

std::uint8_t TypeAndFlags(PacketType type, unsigned flags) {
  return static_cast<std::uint8_t>((static_cast<unsigned>(type) << 4) | flags);
}

// A property list with its Property Length prefix (5.0 §2.2.2.1).
Bytes Props(const Bytes& list) { return Cat({Varint(list.size()), list}); }

std::uint8_t Id(PropertyId id) { return static_cast<std::uint8_t>(id); }
Bytes Byte(PropertyId id, std::uint8_t v) { return {Id(id), v}; }
Bytes Two(PropertyId id, std::uint16_t v) {
  return {Id(id), static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v & 0xFF)};
}
Bytes Four(PropertyId id, std::uint32_t v) {
  return {Id(id), static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>((v >> 16) & 0xFF),
          static_cast<std::uint8_t>((v >> 8) & 0xFF), static_cast<std::uint8_t>(v & 0xFF)};
}
Bytes VarProp(PropertyId id, std::uint32_t v) { return Cat({Bytes{Id(id)}, Varint(v)}); }
Bytes StrProp(PropertyId id, std::string_view s) { return Cat({Bytes{Id(id)}, Str(s)}); }
Bytes UserProp(std::string_view name, std::string_view value) {
  return Cat({Bytes{Id(PI::kUserProperty)}, Str(name), Str(value)});
}

// Minimal valid packets, each with a hook for the part a test changes.
Bytes V311Connect(std::uint8_t connect_flags, const Bytes& payload) {
  return Frame(0x10, Cat({Str("MQTT"), {0x04, connect_flags, 0x00, 0x3C}, payload}));
}
Bytes V5Connect(std::uint8_t connect_flags, const Bytes& properties, const Bytes& payload) {
  return Frame(0x10,
               Cat({Str("MQTT"), {0x05, connect_flags, 0x00, 0x3C}, Props(properties), payload}));
}
Bytes V5ConnectWithProperties(const Bytes& properties) {
  return V5Connect(0x02, properties, Str("c"));
}
Bytes V5ConnectWithWillProperties(const Bytes& will_properties) {
  return V5Connect(0x06, {}, Cat({Str("c"), Props(will_properties), Str("w/t"), Str("bye")}));
}
Bytes V5Publish(const Bytes& properties, std::string_view topic = "t") {
  return Frame(0x30, Cat({Str(topic), Props(properties), Bytes{'x'}}));
}
Bytes V5Subscribe(const Bytes& properties) {
  return Frame(0x82, Cat({{0x00, 0x01}, Props(properties), Str("a/b"), {0x00}}));
}
Bytes V5Unsubscribe(const Bytes& properties) {
  return Frame(0xA2, Cat({{0x00, 0x01}, Props(properties), Str("a/b")}));
}
Bytes V5Connack(const Bytes& properties) {
  return Frame(0x20, Cat({{0x00, 0x00}, Props(properties)}));
}
Bytes V5Puback(const Bytes& properties) {
  return Frame(0x40, Cat({{0x00, 0x01, 0x00}, Props(properties)}));
}

// ---------------------------------------------------------------------------------------------
// Decoding

std::string Hex(const Bytes& bytes) {
  std::ostringstream out;
  out << std::hex;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out << (i == 0 ? "" : " ") << (bytes[i] < 16 ? "0" : "") << static_cast<unsigned>(bytes[i]);
  }
  return out.str();
}

// Frames `bytes` with ParseFixedHeader and decodes the one packet they hold with DecodePacket.
DecodeResult<Packet> DecodeOne(const Bytes& bytes, ProtocolVersion version,
                               std::uint32_t max_packet_size = kNoLimit) {
  auto header = ParseFixedHeader(BinaryView(bytes.data(), bytes.size()), max_packet_size);
  if (!header) {
    return util::Unexpected(header.error());
  }
  if (!header->has_value() || (*header)->packet_size() != bytes.size()) {
    ADD_FAILURE() << "test bug: not exactly one packet: " << Hex(bytes);
    return util::Unexpected(E::kTruncated);
  }
  const FixedHeader& h = **header;
  return DecodePacket(h, BinaryView(bytes.data() + h.size, h.remaining_length), version);
}

// Success when decoding `bytes` fails with `error` and the broker answers that error with
// `reason`.
testing::AssertionResult Refuses(const Bytes& bytes, ProtocolVersion version, DecodeError error,
                                 ReasonCode reason, std::uint32_t max_packet_size = kNoLimit) {
  const DecodeResult<Packet> result = DecodeOne(bytes, version, max_packet_size);
  if (result.has_value()) {
    return testing::AssertionFailure() << "decoded " << PacketTypeName(TypeOf(*result)) << " from ["
                                       << Hex(bytes) << "], want \"" << Describe(error) << "\"";
  }
  if (result.error() != error) {
    return testing::AssertionFailure() << "got \"" << Describe(result.error()) << "\", want \""
                                       << Describe(error) << "\" for [" << Hex(bytes) << "]";
  }
  if (ToReasonCode(result.error()) != reason) {
    return testing::AssertionFailure()
           << "\"" << Describe(error) << "\" answers with "
           << ReasonCodeName(ToReasonCode(result.error())) << ", want " << ReasonCodeName(reason);
  }
  return testing::AssertionSuccess();
}

testing::AssertionResult Accepts(const Bytes& bytes, ProtocolVersion version) {
  const DecodeResult<Packet> result = DecodeOne(bytes, version);
  if (!result.has_value()) {
    return testing::AssertionFailure()
           << "refused [" << Hex(bytes) << "]: \"" << Describe(result.error()) << "\"";
  }
  return testing::AssertionSuccess();
}

// The packet of type T decoded from `bytes` (which must outlive it), or a test failure.
template <typename T>
std::optional<T> Decoded(const Bytes& bytes, ProtocolVersion version) {
  DecodeResult<Packet> result = DecodeOne(bytes, version);
  if (!result.has_value()) {
    ADD_FAILURE() << "refused [" << Hex(bytes) << "]: \"" << Describe(result.error()) << "\"";
    return std::nullopt;
  }
  if (!std::holds_alternative<T>(*result)) {
    ADD_FAILURE() << "decoded a " << PacketTypeName(TypeOf(*result));
    return std::nullopt;
  }
  return std::get<T>(std::move(*result));
}

// Feeds `bytes` to `decoder` one byte at a time, calling Next() after each; the first error, or
// nullopt. `packets` counts the packets that came out before it.
std::optional<DecodeError> FeedBytewise(Decoder& decoder, const Bytes& bytes, int* packets) {
  for (const std::uint8_t b : bytes) {
    EXPECT_EQ(decoder.Feed(BinaryView(&b, 1)), 1U);
    for (;;) {
      auto next = decoder.Next();
      if (!next) {
        return next.error();
      }
      if (!next->has_value()) {
        break;
      }
      ++*packets;
    }
  }
  return std::nullopt;
}

// Every 16 values of the fixed header flags for `type` with `body`: `valid` decodes, the other
// fifteen are refused as kInvalidFixedHeaderFlags, Malformed Packet.
testing::AssertionResult OnlyFlagsAccepted(PacketType type, unsigned valid, const Bytes& body,
                                           ProtocolVersion version) {
  for (unsigned flags = 0; flags < 16; ++flags) {
    const Bytes packet = Frame(TypeAndFlags(type, flags), body);
    if (flags == valid) {
      if (auto ok = Accepts(packet, version); !ok) {
        return ok;
      }
    } else if (auto refused =
                   Refuses(packet, version, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket);
               !refused) {
      return refused << " (flags " << flags << ")";
    }
  }
  return testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Fixed header: packet type and flags

TEST(MalformedTest, PacketTypeZeroIsReserved) {
  // 3.1.1 §2.2.1 and 5.0 §2.1.2 Table 2-1: type 0 is "Reserved / Forbidden".
  EXPECT_TRUE(Refuses(Frame(0x00, {}), kV311, E::kReservedPacketType, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0x00, {}), kV5, E::kReservedPacketType, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0x0F, {0x00}), kV5, E::kReservedPacketType, RC::kMalformedPacket));
  // Refused on the first byte, before the Remaining Length is known.
  const Bytes first_byte_only = {0x00};
  const auto header = ParseFixedHeader(BinaryView(first_byte_only.data(), 1), kNoLimit);
  ASSERT_FALSE(header.has_value());
  EXPECT_EQ(header.error(), E::kReservedPacketType);
}

TEST(MalformedTest, AuthBefore5IsReservedPacketType) {
  // 3.1.1 §2.2.1 Table 2.1: type 15 is "Reserved"; AUTH exists from 5.0 (§3.15).
  EXPECT_TRUE(Refuses(Frame(0xF0, {}), kV311, E::kReservedPacketType, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0xF0, {}), kV31, E::kReservedPacketType, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(Frame(0xF0, {0x18, 0x00}), kV311, E::kReservedPacketType, RC::kMalformedPacket));
  EXPECT_TRUE(Accepts(Frame(0xF0, {}), kV5));
}

// [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-1], [MQTT-2.2.2-2]): flags marked Reserved MUST have the
// listed value; any other value is a Malformed Packet.
TEST(MalformedTest, ConnectWithAnyFixedHeaderFlagIsMalformed) {
  // 5.0 §3.1.1, 3.1.1 §3.1.1: CONNECT flags are 0000.
  const Bytes body = Cat({Str("MQTT"), {0x04, 0x02, 0x00, 0x3C}, Str("c")});
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kConnect, 0x0, body, kV311));
  const Bytes body5 = Cat({Str("MQTT"), {0x05, 0x02, 0x00, 0x3C, 0x00}, Str("c")});
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kConnect, 0x0, body5, kV5));
}

TEST(MalformedTest, ConnackWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); 5.0 §3.2.1, 3.1.1 §3.2.1: CONNACK flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kConnack, 0x0, {0x00, 0x00}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kConnack, 0x0, {0x00, 0x00, 0x00}, kV5));
}

TEST(MalformedTest, PubackWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.4.1: PUBACK flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPuback, 0x0, {0x00, 0x01}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPuback, 0x0, {0x00, 0x01, 0x10, 0x00}, kV5));
}

TEST(MalformedTest, PubrecWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.5.1: PUBREC flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubrec, 0x0, {0x00, 0x01}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubrec, 0x0, {0x00, 0x01}, kV5));
}

TEST(MalformedTest, PubrelWithFlags0000IsMalformed) {
  // [MQTT-3.6.1-1]: bits 3-0 of PUBREL are 0010; "The Server MUST treat any other value as
  // malformed".
  EXPECT_TRUE(
      Refuses(Frame(0x60, {0x00, 0x01}), kV311, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(Frame(0x60, {0x00, 0x01}), kV5, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubrel, 0x2, {0x00, 0x01}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubrel, 0x2, {0x00, 0x01, 0x92}, kV5));
}

TEST(MalformedTest, PubcompWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.7.1: PUBCOMP flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubcomp, 0x0, {0x00, 0x01}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPubcomp, 0x0, {0x00, 0x01}, kV5));
}

TEST(MalformedTest, SubscribeWithFlags0000IsMalformed) {
  // [MQTT-3.8.1-1]: bits 3-0 of SUBSCRIBE are 0010.
  const Bytes body = Cat({{0x00, 0x01}, Str("a"), {0x01}});
  EXPECT_TRUE(Refuses(Frame(0x80, body), kV311, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kSubscribe, 0x2, body, kV311));
  const Bytes body5 = Cat({{0x00, 0x01, 0x00}, Str("a"), {0x01}});
  EXPECT_TRUE(Refuses(Frame(0x80, body5), kV5, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kSubscribe, 0x2, body5, kV5));
}

TEST(MalformedTest, SubackWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.9.1: SUBACK flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kSuback, 0x0, {0x00, 0x01, 0x80}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kSuback, 0x0, {0x00, 0x01, 0x00, 0x02}, kV5));
}

TEST(MalformedTest, UnsubscribeWithFlags0000IsMalformed) {
  // [MQTT-3.10.1-1]: bits 3-0 of UNSUBSCRIBE are 0010.
  const Bytes body = Cat({{0x00, 0x01}, Str("a")});
  EXPECT_TRUE(Refuses(Frame(0xA0, body), kV311, E::kInvalidFixedHeaderFlags, RC::kMalformedPacket));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kUnsubscribe, 0x2, body, kV311));
  const Bytes body5 = Cat({{0x00, 0x01, 0x00}, Str("a")});
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kUnsubscribe, 0x2, body5, kV5));
}

TEST(MalformedTest, UnsubackWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.11.1: UNSUBACK flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kUnsuback, 0x0, {0x00, 0x01}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kUnsuback, 0x0, {0x00, 0x01, 0x00, 0x11}, kV5));
}

TEST(MalformedTest, PingreqWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.12.1: PINGREQ flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPingreq, 0x0, {}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPingreq, 0x0, {}, kV5));
}

TEST(MalformedTest, PingrespWithAnyFixedHeaderFlagIsMalformed) {
  // [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-2]); §3.13.1: PINGRESP flags are 0000.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPingresp, 0x0, {}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kPingresp, 0x0, {}, kV5));
}

TEST(MalformedTest, DisconnectWithAnyFixedHeaderFlagIsMalformed) {
  // 5.0 [MQTT-3.14.1-1]: reserved bits not zero -> DISCONNECT with 0x81.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kDisconnect, 0x0, {}, kV311));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kDisconnect, 0x0, {}, kV5));
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kDisconnect, 0x0, {0x04, 0x00}, kV5));
}

TEST(MalformedTest, AuthWithAnyFixedHeaderFlagIsMalformed) {
  // 5.0 [MQTT-3.15.1-1]: bits 3-0 of AUTH are 0000; any other value is malformed.
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kAuth, 0x0, {}, kV5));
  // (A long-form AUTH carries an Authentication Method, 5.0 §3.15.2.2.2.)
  EXPECT_TRUE(OnlyFlagsAccepted(PacketType::kAuth, 0x0, {0x18, 0x04, 0x15, 0x00, 0x01, 'm'}, kV5));
}

// ---------------------------------------------------------------------------------------------
// Fixed header: Remaining Length and packet size

TEST(MalformedTest, RemainingLengthOfFiveBytesIsMalformed) {
  // 3.1.1 §2.2.3, 5.0 §1.5.5: a Variable Byte Integer has at most four bytes.
  EXPECT_TRUE(Refuses({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, kV5, E::kMalformedVarint,
                      RC::kMalformedPacket));
  EXPECT_TRUE(Refuses({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, kV311, E::kMalformedVarint,
                      RC::kMalformedPacket));
  // Known as soon as the fourth byte still has its continuation bit.
  const Bytes four = {0xC0, 0x80, 0x80, 0x80, 0x80};
  const auto header = ParseFixedHeader(BinaryView(four.data(), four.size()), kNoLimit);
  ASSERT_FALSE(header.has_value());
  EXPECT_EQ(header.error(), E::kMalformedVarint);
}

TEST(MalformedTest, NonMinimalRemainingLengthIsMalformed) {
  // [MQTT-1.5.5-1] (5.0; 3.1.1 §2.2.3): the encoded value MUST use the minimum number of bytes.
  for (const Bytes& length :
       {Bytes{0x80, 0x00}, Bytes{0xFF, 0x00}, Bytes{0x80, 0x80, 0x00}, Bytes{0xFF, 0xFF, 0x00},
        Bytes{0x80, 0x80, 0x80, 0x00}, Bytes{0x81, 0x00}}) {
    SCOPED_TRACE(Hex(length));
    const Bytes header = Cat({{0xC0}, length});
    const auto parsed = ParseFixedHeader(BinaryView(header.data(), header.size()), kNoLimit);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error(), E::kNonMinimalVarint);
    EXPECT_EQ(ToReasonCode(parsed.error()), RC::kMalformedPacket);
  }
}

TEST(MalformedTest, MinimalRemainingLengthsAtEachSizeBoundaryParse) {
  // 5.0 §1.5.5 table: the largest value of each size and the smallest of the next.
  struct Case {
    Bytes length;
    std::uint32_t value;
  };
  for (const Case& c :
       {Case{{0x00}, 0}, Case{{0x7F}, 127}, Case{{0x80, 0x01}, 128}, Case{{0xFF, 0x7F}, 16'383},
        Case{{0x80, 0x80, 0x01}, 16'384}, Case{{0xFF, 0xFF, 0x7F}, 2'097'151},
        Case{{0x80, 0x80, 0x80, 0x01}, 2'097'152}, Case{{0xFF, 0xFF, 0xFF, 0x7F}, 268'435'455}}) {
    SCOPED_TRACE(Hex(c.length));
    const Bytes header = Cat({{0x30}, c.length});
    const auto parsed = ParseFixedHeader(BinaryView(header.data(), header.size()), kNoLimit);
    ASSERT_TRUE(parsed.has_value());
    ASSERT_TRUE(parsed->has_value());
    EXPECT_EQ((*parsed)->remaining_length, c.value);
    EXPECT_EQ((*parsed)->size, header.size());
    // One byte short: not an error, just not yet a header.
    const auto partial = ParseFixedHeader(BinaryView(header.data(), header.size() - 1), kNoLimit);
    ASSERT_TRUE(partial.has_value());
    EXPECT_FALSE(partial->has_value());
  }
}

TEST(MalformedTest, PacketOverConfiguredMaximumIsTooLarge) {
  // 5.0 §3.1.2.11.4 / §3.2.2.3.6: a packet larger than the Maximum Packet Size -> 0x95. The size
  // counts the whole packet, fixed header included (12 bytes here).
  const Bytes packet = Frame(0x30, Cat({Str("topic"), Bytes(3, 'x')}));
  ASSERT_EQ(packet.size(), 12U);
  EXPECT_TRUE(Refuses(packet, kV311, E::kPacketTooLarge, RC::kPacketTooLarge, 11));
  EXPECT_TRUE(Refuses(packet, kV5, E::kPacketTooLarge, RC::kPacketTooLarge, 1));
  const auto at_limit = ParseFixedHeader(BinaryView(packet.data(), packet.size()), 12);
  ASSERT_TRUE(at_limit.has_value());
  EXPECT_TRUE(at_limit->has_value());
  // Refused from the header alone, before the body has arrived.
  const auto header_only = ParseFixedHeader(BinaryView(packet.data(), 2), 11);
  ASSERT_FALSE(header_only.has_value());
  EXPECT_EQ(header_only.error(), E::kPacketTooLarge);
}

// ---------------------------------------------------------------------------------------------
// The stream decoder

TEST(MalformedTest, StreamPacketBeforeConnectIsProtocolError) {
  // [MQTT-3.1.0-1]: the first packet from the Client MUST be CONNECT.
  Decoder decoder;
  int packets = 0;
  EXPECT_EQ(FeedBytewise(decoder, {0xC0, 0x00}, &packets), E::kProtocolVersionUnknown);
  EXPECT_EQ(packets, 0);
  EXPECT_EQ(ToReasonCode(E::kProtocolVersionUnknown), RC::kProtocolError);
  // The decoder stays failed and repeats the error.
  const auto again = decoder.Next();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), E::kProtocolVersionUnknown);

  Decoder publish_first;
  EXPECT_EQ(FeedBytewise(publish_first, Frame(0x30, Cat({Str("t"), Bytes{'x'}})), &packets),
            E::kProtocolVersionUnknown);
}

TEST(MalformedTest, StreamAuthAfter311ConnectIsReservedPacketType) {
  // 3.1.1 §2.2.1: type 15 is reserved; the version comes from the CONNECT.
  Decoder decoder;
  int packets = 0;
  const Bytes stream = Cat({V311Connect(0x02, Str("c")), Frame(0xF0, {})});
  EXPECT_EQ(FeedBytewise(decoder, stream, &packets), E::kReservedPacketType);
  EXPECT_EQ(packets, 1);
  EXPECT_EQ(decoder.version(), kV311);

  Decoder v5;
  packets = 0;
  EXPECT_EQ(FeedBytewise(v5, Cat({V5ConnectWithProperties({}), Frame(0xF0, {})}), &packets),
            std::nullopt);
  EXPECT_EQ(packets, 2);
}

TEST(MalformedTest, StreamRefusesOversizePacketFromItsHeader) {
  // 5.0 §3.1.2.11.4: the Server's Maximum Packet Size; refused before the body is buffered.
  Decoder decoder(Decoder::Options{.max_packet_size = 100}, kV5);
  int packets = 0;
  EXPECT_EQ(FeedBytewise(decoder, {0x30, 0x63 /* 99: 101 bytes in all */}, &packets),
            E::kPacketTooLarge);
  EXPECT_EQ(packets, 0);

  // A declared length near the 5.0 maximum allocates nothing for it.
  Decoder huge(Decoder::Options{.max_packet_size = 100}, kV5);
  EXPECT_EQ(FeedBytewise(huge, {0x30, 0xFF, 0xFF, 0xFF, 0x7F}, &packets), E::kPacketTooLarge);
  EXPECT_LE(huge.capacity(), Decoder::Options{}.read_chunk);

  Decoder at_limit(Decoder::Options{.max_packet_size = 100}, kV5);
  const Bytes hundred = Frame(0x30, Cat({Str("t"), Props({}), Bytes(94, 'x')}));
  ASSERT_EQ(hundred.size(), 100U);
  EXPECT_EQ(FeedBytewise(at_limit, hundred, &packets), std::nullopt);
  EXPECT_EQ(packets, 1);
}

TEST(MalformedTest, StreamRefusesReservedTypeAndLongVarint) {
  // 5.0 §2.1.2 (type 0 forbidden) and §1.5.5 (at most four bytes), seen by the stream decoder.
  Decoder reserved(Decoder::Options{}, kV311);
  int packets = 0;
  EXPECT_EQ(FeedBytewise(reserved, {0x00}, &packets), E::kReservedPacketType);
  Decoder varint(Decoder::Options{}, kV311);
  EXPECT_EQ(FeedBytewise(varint, {0x30, 0xFF, 0xFF, 0xFF, 0xFF}, &packets), E::kMalformedVarint);
  EXPECT_EQ(packets, 0);
}

// ---------------------------------------------------------------------------------------------
// PUBLISH

TEST(MalformedTest, PublishWithQos3IsMalformed) {
  // [MQTT-3.3.1-4]: a PUBLISH MUST NOT have both QoS bits set; 5.0: it is a Malformed Packet.
  EXPECT_TRUE(Refuses(Frame(0x36, Cat({Str("t"), {0x00, 0x01}})), kV311, E::kInvalidQos,
                      RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0x3F, Cat({Str("t"), {0x00, 0x01}})), kV311, E::kInvalidQos,
                      RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0x36, Cat({Str("t"), {0x00, 0x01, 0x00}})), kV5, E::kInvalidQos,
                      RC::kMalformedPacket));
  EXPECT_TRUE(Accepts(Frame(0x34, Cat({Str("t"), {0x00, 0x01, 0x00}})), kV5));
}

TEST(MalformedTest, PublishWithDupOnQos0IsMalformed) {
  // [MQTT-3.3.1-2]: the DUP flag MUST be 0 for all QoS 0 messages.
  EXPECT_TRUE(Refuses(Frame(0x38, Str("t")), kV311, E::kDupOnQos0, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(Frame(0x39, Cat({Str("t"), {0x00}})), kV5, E::kDupOnQos0, RC::kMalformedPacket));
  EXPECT_TRUE(Accepts(Frame(0x3A, Cat({Str("t"), {0x00, 0x07}})), kV311));  // DUP on QoS 1
}

TEST(MalformedTest, PublishWithPacketIdZeroIsProtocolError) {
  // 3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3]: PUBLISH with QoS > 0 has a non-zero identifier.
  for (const std::uint8_t first : {std::uint8_t{0x32}, std::uint8_t{0x34}}) {
    SCOPED_TRACE(static_cast<int>(first));
    EXPECT_TRUE(Refuses(Frame(first, Cat({Str("t"), {0x00, 0x00}})), kV311, E::kZeroPacketId,
                        RC::kProtocolError));
    EXPECT_TRUE(Refuses(Frame(first, Cat({Str("t"), {0x00, 0x00, 0x00}})), kV5, E::kZeroPacketId,
                        RC::kProtocolError));
    EXPECT_TRUE(Accepts(Frame(first, Cat({Str("t"), {0x00, 0x01, 0x00}})), kV5));
  }
  // QoS 0 has no packet identifier: these two bytes are payload ([MQTT-2.2.1-2]).
  const auto qos0 = Decoded<Publish>(Frame(0x30, Cat({Str("t"), {0x00, 0x00}})), kV311);
  ASSERT_TRUE(qos0.has_value());
  EXPECT_EQ(qos0->payload.size(), 2U);
}

TEST(MalformedTest, PublishTopicWithWildcardIsTopicNameInvalid) {
  // [MQTT-3.3.2-2]: the Topic Name in a PUBLISH MUST NOT contain wildcard characters.
  for (const std::string_view topic : {"+"sv, "#"sv, "a/+"sv, "a/#"sv, "a/+/b"sv, "a+b"sv}) {
    SCOPED_TRACE(topic);
    EXPECT_TRUE(
        Refuses(Frame(0x30, Str(topic)), kV311, E::kWildcardInTopicName, RC::kTopicNameInvalid));
    EXPECT_TRUE(Refuses(V5Publish({}, topic), kV5, E::kWildcardInTopicName, RC::kTopicNameInvalid));
  }
}

TEST(MalformedTest, PublishWithEmptyTopicIn311IsProtocolError) {
  // 3.1.1 [MQTT-4.7.3-1]: all Topic Names MUST be at least one character long.
  EXPECT_TRUE(
      Refuses(Frame(0x30, Cat({Str(""), {'x'}})), kV311, E::kEmptyTopicName, RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0x32, Cat({Str(""), {0x00, 0x01}})), kV311, E::kEmptyTopicName,
                      RC::kProtocolError));
}

TEST(MalformedTest, PublishWithEmptyTopicIn5NeedsTopicAlias) {
  // 5.0 §3.3.2.3.4: "It is a Protocol Error if the Topic Name is zero length and there is no
  // Topic Alias."
  EXPECT_TRUE(Refuses(V5Publish({}, ""), kV5, E::kEmptyTopicName, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(V5Publish(UserProp("k", "v"), ""), kV5, E::kEmptyTopicName, RC::kProtocolError));
  const Bytes with_alias = V5Publish(Two(PI::kTopicAlias, 7), "");
  const auto publish = Decoded<Publish>(with_alias, kV5);
  ASSERT_TRUE(publish.has_value());
  EXPECT_EQ(publish->topic, "");
  EXPECT_EQ(publish->properties.Number(PI::kTopicAlias), 7U);
}

TEST(MalformedTest, PublishWithTopicAliasZeroIsTopicAliasInvalid) {
  // [MQTT-3.3.2-8]: a Topic Alias of 0 is not permitted; §3.3.2.3.4: the receiver answers 0x94.
  EXPECT_TRUE(
      Refuses(V5Publish(Two(PI::kTopicAlias, 0)), kV5, E::kTopicAliasZero, RC::kTopicAliasInvalid));
  EXPECT_TRUE(Refuses(V5Publish(Two(PI::kTopicAlias, 0), ""), kV5, E::kTopicAliasZero,
                      RC::kTopicAliasInvalid));
  EXPECT_TRUE(Accepts(V5Publish(Two(PI::kTopicAlias, 1)), kV5));
  EXPECT_TRUE(Accepts(V5Publish(Two(PI::kTopicAlias, 0xFFFF)), kV5));
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements: packet identifiers and reason codes

TEST(MalformedTest, AckWithPacketIdZeroIsProtocolError) {
  // 5.0 [MQTT-2.2.1-5], [MQTT-2.2.1-6] (3.1.1 [MQTT-2.3.1-6], [MQTT-2.3.1-7]): an ack carries the
  // identifier of the packet it acknowledges, which is never 0.
  struct Case {
    std::string_view name;
    Bytes v311;
    Bytes v5;
  };
  const std::vector<Case> cases = {
      {"PUBACK", Frame(0x40, {0x00, 0x00}), Frame(0x40, {0x00, 0x00, 0x10, 0x00})},
      {"PUBREC", Frame(0x50, {0x00, 0x00}), Frame(0x50, {0x00, 0x00})},
      {"PUBREL", Frame(0x62, {0x00, 0x00}), Frame(0x62, {0x00, 0x00, 0x92})},
      {"PUBCOMP", Frame(0x70, {0x00, 0x00}), Frame(0x70, {0x00, 0x00})},
      {"SUBACK", Frame(0x90, {0x00, 0x00, 0x01}), Frame(0x90, {0x00, 0x00, 0x00, 0x01})},
      {"UNSUBACK", Frame(0xB0, {0x00, 0x00}), Frame(0xB0, {0x00, 0x00, 0x00, 0x00})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(Refuses(c.v311, kV311, E::kZeroPacketId, RC::kProtocolError));
    EXPECT_TRUE(Refuses(c.v5, kV5, E::kZeroPacketId, RC::kProtocolError));
    Bytes v311 = c.v311;
    v311[3] = 0x01;
    EXPECT_TRUE(Accepts(v311, kV311));
    Bytes v5 = c.v5;
    v5[3] = 0x01;
    EXPECT_TRUE(Accepts(v5, kV5));
  }
}

TEST(MalformedTest, SubscribeAndUnsubscribeWithPacketIdZeroAreProtocolErrors) {
  // 3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3].
  EXPECT_TRUE(Refuses(Frame(0x82, Cat({{0x00, 0x00}, Str("a"), {0x00}})), kV311, E::kZeroPacketId,
                      RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0x82, Cat({{0x00, 0x00, 0x00}, Str("a"), {0x00}})), kV5,
                      E::kZeroPacketId, RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0xA2, Cat({{0x00, 0x00}, Str("a")})), kV311, E::kZeroPacketId,
                      RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0xA2, Cat({{0x00, 0x00, 0x00}, Str("a")})), kV5, E::kZeroPacketId,
                      RC::kProtocolError));
}

TEST(MalformedTest, ReasonCodeNotListedForThePacketIsProtocolError) {
  // 5.0 [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1], [MQTT-3.9.3-2],
  // [MQTT-3.11.3-2], §3.14.2.1, §3.15.2.1: the sender MUST use one of the packet's codes.
  struct Case {
    std::string_view name;
    Bytes packet;
  };
  const std::vector<Case> cases = {
      {"0x93 in PUBACK", Frame(0x40, {0x00, 0x01, 0x93})},
      {"0x93 in PUBREC", Frame(0x50, {0x00, 0x01, 0x93, 0x00})},
      {"0x80 in PUBREL", Frame(0x62, {0x00, 0x01, 0x80})},
      {"0x80 in PUBCOMP", Frame(0x70, {0x00, 0x01, 0x80, 0x00})},
      {"0x04 in SUBACK", Frame(0x90, {0x00, 0x01, 0x00, 0x04})},
      {"0x04 after a valid code in SUBACK", Frame(0x90, {0x00, 0x01, 0x00, 0x01, 0x04})},
      {"0x02 in UNSUBACK", Frame(0xB0, {0x00, 0x01, 0x00, 0x02})},
      {"0x18 in DISCONNECT", Frame(0xE0, {0x18})},
      {"0x01 in AUTH", Frame(0xF0, {0x01, 0x00})},
      {"0x8B in CONNACK", Frame(0x20, {0x00, 0x8B, 0x00})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(Refuses(c.packet, kV5, E::kInvalidReasonCode, RC::kProtocolError));
  }
  // The same packets with a listed code.
  EXPECT_TRUE(Accepts(Frame(0x40, {0x00, 0x01, 0x10}), kV5));
  EXPECT_TRUE(Accepts(Frame(0x62, {0x00, 0x01, 0x92}), kV5));
  EXPECT_TRUE(Accepts(Frame(0x90, {0x00, 0x01, 0x00, 0x01, 0xA2}), kV5));
  EXPECT_TRUE(Accepts(Frame(0xB0, {0x00, 0x01, 0x00, 0x11}), kV5));
  EXPECT_TRUE(Accepts(Frame(0xE0, {0x04}), kV5));
  EXPECT_TRUE(Accepts(Frame(0xF0, {0x18, 0x04, 0x15, 0x00, 0x01, 'm'}), kV5));
  EXPECT_TRUE(Accepts(Frame(0x20, {0x00, 0x9F, 0x00}), kV5));
}

TEST(MalformedTest, V311SubackCodeOutsideGrantedQosAndFailureIsProtocolError) {
  // 3.1.1 [MQTT-3.9.3-2]: SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved
  // and MUST NOT be used.
  EXPECT_TRUE(
      Refuses(Frame(0x90, {0x00, 0x01, 0x03}), kV311, E::kInvalidReasonCode, RC::kProtocolError));
  for (unsigned code = 0; code < 256; ++code) {
    SCOPED_TRACE(code);
    const Bytes packet = Frame(0x90, {0x00, 0x01, 0x00, static_cast<std::uint8_t>(code)});
    if (code <= 0x02 || code == 0x80) {
      EXPECT_TRUE(Accepts(packet, kV311));
    } else {
      EXPECT_TRUE(Refuses(packet, kV311, E::kInvalidReasonCode, RC::kProtocolError));
    }
  }
}

TEST(MalformedTest, SubackAndUnsubackWithoutCodesAreProtocolErrors) {
  // 5.0 [MQTT-3.8.4-6] / §3.11.3 (3.1.1 [MQTT-3.8.4-5]): one code per requested Topic Filter, and
  // a request has at least one.
  EXPECT_TRUE(Refuses(Frame(0x90, {0x00, 0x01}), kV311, E::kNoTopicFilters, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(Frame(0x90, {0x00, 0x01, 0x00}), kV5, E::kNoTopicFilters, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(Frame(0xB0, {0x00, 0x01, 0x00}), kV5, E::kNoTopicFilters, RC::kProtocolError));
}

// ---------------------------------------------------------------------------------------------
// CONNACK

TEST(MalformedTest, ConnackWithReservedAcknowledgeFlagsIsMalformed) {
  // [MQTT-3.2.2-1] (3.1.1 §3.2.2.1): bits 7-1 of the Connect Acknowledge Flags are reserved, 0.
  for (unsigned bit = 1; bit < 8; ++bit) {
    SCOPED_TRACE(bit);
    const auto flags = static_cast<std::uint8_t>(1U << bit);
    EXPECT_TRUE(
        Refuses(Frame(0x20, {flags, 0x00}), kV311, E::kReservedConnackFlags, RC::kMalformedPacket));
    EXPECT_TRUE(Refuses(Frame(0x20, {flags, 0x00, 0x00}), kV5, E::kReservedConnackFlags,
                        RC::kMalformedPacket));
  }
  const auto present = Decoded<Connack>(Frame(0x20, {0x01, 0x00}), kV311);
  ASSERT_TRUE(present.has_value());
  EXPECT_TRUE(present->session_present);
}

TEST(MalformedTest, ConnackWithSessionPresentAndAFailureIsProtocolError) {
  // 3.1.1 [MQTT-3.2.2-4], 5.0 [MQTT-3.2.2-6]: a CONNACK that refuses the connection has Session
  // Present 0.
  EXPECT_TRUE(
      Refuses(Frame(0x20, {0x01, 0x05}), kV311, E::kSessionPresentOnFailure, RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0x20, {0x01, 0x87, 0x00}), kV5, E::kSessionPresentOnFailure,
                      RC::kProtocolError));
  EXPECT_TRUE(Accepts(Frame(0x20, {0x01, 0x00, 0x00}), kV5));
  // The encoder will not write one either.
  std::vector<std::uint8_t> out;
  const EncodeResult r = Encode(Connack{true, RC::kNotAuthorized, {}}, kV5, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), EncodeError::kInvalidValue);
  EXPECT_TRUE(out.empty());
}

TEST(MalformedTest, V311ConnackReturnCodeAbove5IsProtocolError) {
  // 3.1.1 §3.2.2.3 Table 3.1: return codes 6-255 are reserved for future use.
  for (unsigned code = 0; code < 256; ++code) {
    SCOPED_TRACE(code);
    const Bytes packet = Frame(0x20, {0x00, static_cast<std::uint8_t>(code)});
    if (code <= 5) {
      const auto connack = Decoded<Connack>(packet, kV311);
      ASSERT_TRUE(connack.has_value());
      EXPECT_EQ(connack->reason, FromConnackReturnCode(static_cast<std::uint8_t>(code)));
    } else {
      EXPECT_TRUE(Refuses(packet, kV311, E::kInvalidReasonCode, RC::kProtocolError));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE and UNSUBSCRIBE

TEST(MalformedTest, SubscribeWithoutTopicFiltersIsProtocolError) {
  // 3.1.1 [MQTT-3.8.3-3]: at least one Topic Filter / QoS pair; "a SUBSCRIBE packet with no
  // payload is a protocol violation". 5.0 [MQTT-3.8.3-2]: "... with no Payload is a Protocol
  // Error".
  EXPECT_TRUE(Refuses(Frame(0x82, {0x00, 0x01}), kV311, E::kNoTopicFilters, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(Frame(0x82, {0x00, 0x01, 0x00}), kV5, E::kNoTopicFilters, RC::kProtocolError));
  EXPECT_TRUE(Refuses(Frame(0x82, Cat({{0x00, 0x01}, Props(UserProp("k", "v"))})), kV5,
                      E::kNoTopicFilters, RC::kProtocolError));
}

TEST(MalformedTest, UnsubscribeWithoutTopicFiltersIsProtocolError) {
  // [MQTT-3.10.3-2] (3.1.1 and 5.0): the payload MUST contain at least one Topic Filter.
  EXPECT_TRUE(Refuses(Frame(0xA2, {0x00, 0x01}), kV311, E::kNoTopicFilters, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(Frame(0xA2, {0x00, 0x01, 0x00}), kV5, E::kNoTopicFilters, RC::kProtocolError));
}

TEST(MalformedTest, V311SubscriptionOptionReservedBitsAreMalformed) {
  // 3.1.1 [MQTT-3-8.3-4]: the upper 6 bits of the Requested QoS byte are reserved; the Server MUST
  // treat a SUBSCRIBE with any of them set as malformed.
  for (unsigned bit = 2; bit < 8; ++bit) {
    SCOPED_TRACE(bit);
    const auto options = static_cast<std::uint8_t>(1U << bit);
    // The bad entry second, after a valid one.
    const Bytes packet = Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x01}, Str("b"), {options}}));
    EXPECT_TRUE(Refuses(packet, kV311, E::kReservedSubscriptionBits, RC::kMalformedPacket));
  }
  EXPECT_TRUE(Accepts(Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x01}, Str("b"), {0x02}})), kV311));
}

TEST(MalformedTest, V5SubscriptionOptionReservedBitsAreMalformed) {
  // 5.0 [MQTT-3.8.3-5]: bits 6 and 7 of the Subscription Options are reserved; the Server MUST
  // treat a SUBSCRIBE as malformed if any of them is non-zero.
  for (const std::uint8_t options : {std::uint8_t{0x40}, std::uint8_t{0x80}, std::uint8_t{0xC0},
                                     std::uint8_t{0x41}, std::uint8_t{0xAE}}) {
    SCOPED_TRACE(static_cast<int>(options));
    const Bytes packet =
        Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a"), {0x01}, Str("b"), {options}}));
    EXPECT_TRUE(Refuses(packet, kV5, E::kReservedSubscriptionBits, RC::kMalformedPacket));
  }
}

TEST(MalformedTest, V5EveryValidSubscriptionOptionDecodes) {
  // 5.0 §3.8.3.1: QoS 0-2, No Local, Retain As Published, Retain Handling 0-2.
  for (unsigned qos = 0; qos < 3; ++qos) {
    for (unsigned rh = 0; rh < 3; ++rh) {
      for (unsigned nl = 0; nl < 2; ++nl) {
        for (unsigned rap = 0; rap < 2; ++rap) {
          const auto options = static_cast<std::uint8_t>(qos | nl << 2 | rap << 3 | rh << 4);
          SCOPED_TRACE(static_cast<int>(options));
          const Bytes packet = Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a/b"), {options}}));
          const auto subscribe = Decoded<Subscribe>(packet, kV5);
          ASSERT_TRUE(subscribe.has_value());
          ASSERT_EQ(subscribe->subscriptions.Count(), 1U);
          const TopicSubscription s =
              *subscribe->subscriptions.begin();  // a copy: the iterator owns it
          EXPECT_EQ(s.filter, "a/b");
          EXPECT_EQ(s.options.max_qos, static_cast<QoS>(qos));
          EXPECT_EQ(s.options.no_local, nl == 1);
          EXPECT_EQ(s.options.retain_as_published, rap == 1);
          EXPECT_EQ(s.options.retain_handling, rh);
        }
      }
    }
  }
}

TEST(MalformedTest, V311SubscribeWithQos3IsMalformed) {
  // 3.1.1 [MQTT-3-8.3-4]: a Requested QoS that is not 0, 1 or 2 is malformed. 3.1.1 has no reason
  // codes: the Server closes the connection without a CONNACK-style answer.
  const Bytes packet = Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x00}, Str("b"), {0x03}}));
  const auto result = DecodeOne(packet, kV311);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error(), E::kInvalidSubscriptionQos);
  EXPECT_TRUE(IsFailure(ToReasonCode(result.error())));
}

TEST(MalformedTest, V5SubscribeWithQos3IsProtocolError) {
  // 5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
  const Bytes packet = Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a"), {0x00}, Str("b"), {0x03}}));
  EXPECT_TRUE(Refuses(packet, kV5, E::kInvalidSubscriptionQos, RC::kProtocolError));
}

TEST(MalformedTest, V5SubscribeWithRetainHandling3IsProtocolError) {
  // 5.0 §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
  const Bytes packet = Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a"), {0x21}, Str("b"), {0x31}}));
  EXPECT_TRUE(Refuses(packet, kV5, E::kInvalidRetainHandling, RC::kProtocolError));
}

TEST(MalformedTest, V5NoLocalOnSharedSubscriptionIsProtocolError) {
  // [MQTT-3.8.3-4]: "It is a Protocol Error to set the No Local bit to 1 on a Shared
  // Subscription."
  const Bytes shared_no_local =
      Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a"), {0x04}, Str("$share/g/t"), {0x05}}));
  EXPECT_TRUE(Refuses(shared_no_local, kV5, E::kNoLocalOnSharedSubscription, RC::kProtocolError));
  // No Local on an ordinary filter, and a shared filter without No Local, are fine.
  EXPECT_TRUE(Accepts(Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("$share/g/t"), {0x01}})), kV5));
  EXPECT_TRUE(Accepts(Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("t/$share"), {0x04}})), kV5));
}

// ---------------------------------------------------------------------------------------------
// CONNECT

TEST(MalformedTest, ConnectWithUnknownProtocolNameIsRefused) {
  // [MQTT-3.1.2-1]: the protocol name MUST be "MQTT" (3.1: "MQIsdp"); 5.0: the Server MAY answer
  // 0x84 (Unsupported Protocol Version).
  for (const std::string_view name : {"MQTX"sv, "mqtt"sv, "MQT"sv, "MQTTT"sv, ""sv, "MQIsdP"sv}) {
    SCOPED_TRACE(name);
    const Bytes packet = Frame(0x10, Cat({Str(name), {0x04, 0x02, 0x00, 0x3C}, Str("c")}));
    EXPECT_TRUE(Refuses(packet, kV311, E::kInvalidProtocolName, RC::kUnsupportedProtocolVersion));
  }
}

TEST(MalformedTest, ConnectWithUnsupportedLevelIsRefused) {
  // [MQTT-3.1.2-2]: a level the Server does not support -> 3.1.1 CONNACK 0x01, 5.0 CONNACK 0x84.
  for (const std::uint8_t level : {std::uint8_t{0}, std::uint8_t{3}, std::uint8_t{6},
                                   std::uint8_t{0x84}, std::uint8_t{0xFF}}) {
    SCOPED_TRACE(static_cast<int>(level));
    const Bytes packet = Frame(0x10, Cat({Str("MQTT"), {level, 0x02, 0x00, 0x3C}, Str("c")}));
    EXPECT_TRUE(
        Refuses(packet, kV311, E::kUnsupportedProtocolLevel, RC::kUnsupportedProtocolVersion));
  }
  // "MQIsdp" is 3.1, whose level is 3.
  for (const std::uint8_t level : {std::uint8_t{4}, std::uint8_t{5}}) {
    const Bytes packet = Frame(0x10, Cat({Str("MQIsdp"), {level, 0x02, 0x00, 0x3C}, Str("c")}));
    EXPECT_TRUE(
        Refuses(packet, kV311, E::kUnsupportedProtocolLevel, RC::kUnsupportedProtocolVersion));
  }
  const auto v31 = Decoded<Connect>(
      Frame(0x10, Cat({Str("MQIsdp"), {0x03, 0x02, 0x00, 0x3C}, Str("c")})), kV311);
  ASSERT_TRUE(v31.has_value());
  EXPECT_EQ(v31->version, kV31);
}

TEST(MalformedTest, ConnectWithReservedFlagIsMalformed) {
  // [MQTT-3.1.2-3]: the reserved flag (bit 0) MUST be 0; 5.0: otherwise a Malformed Packet.
  EXPECT_TRUE(
      Refuses(V311Connect(0x03, Str("c")), kV311, E::kReservedConnectFlag, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(V311Connect(0x01, Str("c")), kV311, E::kReservedConnectFlag, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(V5Connect(0x03, {}, Str("c")), kV5 /* unused for CONNECT */,
                      E::kReservedConnectFlag, RC::kMalformedPacket));
}

TEST(MalformedTest, ConnectWithWillQos3IsMalformed) {
  // 5.0 [MQTT-3.1.2-12] (3.1.1 [MQTT-3.1.2-14]): Will QoS 3 is a Malformed Packet.
  const Bytes will = Cat({Str("c"), Str("w"), Str("bye")});
  EXPECT_TRUE(Refuses(V311Connect(0x1E, will), kV311, E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(V5Connect(0x1E, {}, Cat({Str("c"), {0x00}, Str("w"), Str("bye")})), kV5,
                      E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(Accepts(V311Connect(0x16, will), kV311));  // Will QoS 2
}

TEST(MalformedTest, ConnectWithWillQosButNoWillFlagIsMalformed) {
  // 5.0 [MQTT-3.1.2-11] (3.1.1 [MQTT-3.1.2-13]): Will Flag 0 -> Will QoS MUST be 0.
  EXPECT_TRUE(
      Refuses(V311Connect(0x0A, Str("c")), kV311, E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(V311Connect(0x12, Str("c")), kV311, E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(V5Connect(0x0A, {}, Str("c")), kV5, E::kInvalidWillFlags, RC::kMalformedPacket));
}

TEST(MalformedTest, ConnectWithWillRetainButNoWillFlagIsMalformed) {
  // 5.0 [MQTT-3.1.2-13] (3.1.1 [MQTT-3.1.2-15]): Will Flag 0 -> Will Retain MUST be 0.
  EXPECT_TRUE(
      Refuses(V311Connect(0x22, Str("c")), kV311, E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(V5Connect(0x22, {}, Str("c")), kV5, E::kInvalidWillFlags, RC::kMalformedPacket));
  EXPECT_TRUE(Accepts(V311Connect(0x26, Cat({Str("c"), Str("w"), Str("bye")})), kV311));
}

TEST(MalformedTest, ConnectWithPasswordButNoUserNameIsMalformedIn311Only) {
  // 3.1.1 [MQTT-3.1.2-22]: User Name Flag 0 -> Password Flag MUST be 0.
  EXPECT_TRUE(Refuses(V311Connect(0x42, Cat({Str("c"), Str("pw")})), kV311,
                      E::kPasswordWithoutUserName, RC::kMalformedPacket));
  // 5.0 §3.1.2.9 allows a Password without a User Name.
  const Bytes v5 = V5Connect(0x42, {}, Cat({Str("c"), Str("pw")}));
  const auto connect = Decoded<Connect>(v5, kV5);
  ASSERT_TRUE(connect.has_value());
  EXPECT_FALSE(connect->user_name.has_value());
  ASSERT_TRUE(connect->password.has_value());
  EXPECT_EQ(connect->password->AsString(), "pw");
}

TEST(MalformedTest, ConnectWithWildcardInWillTopicIsTopicNameInvalid) {
  // 5.0 §3.1.3.3 / 3.1.1 §3.1.3.2: the Will Topic is a Topic Name, so [MQTT-3.3.2-2] applies.
  for (const std::string_view topic : {"w/+"sv, "w/#"sv, "#"sv}) {
    SCOPED_TRACE(topic);
    EXPECT_TRUE(Refuses(V311Connect(0x06, Cat({Str("c"), Str(topic), Str("bye")})), kV311,
                        E::kWildcardInTopicName, RC::kTopicNameInvalid));
    EXPECT_TRUE(Refuses(V5Connect(0x06, {}, Cat({Str("c"), {0x00}, Str(topic), Str("bye")})), kV5,
                        E::kWildcardInTopicName, RC::kTopicNameInvalid));
  }
}

TEST(MalformedTest, ConnectWithEmptyWillTopicIsProtocolError) {
  // [MQTT-4.7.3-1]: all Topic Names MUST be at least one character long.
  EXPECT_TRUE(Refuses(V311Connect(0x06, Cat({Str("c"), Str(""), Str("bye")})), kV311,
                      E::kEmptyTopicName, RC::kProtocolError));
}

// ---------------------------------------------------------------------------------------------
// Truncated and trailing bytes

// Feeds every proper prefix of `body` as a whole packet: each must be refused, as kTruncated
// unless `other` names another error for that length. None may decode; none may read out of
// bounds (ASan).
struct Cut {
  std::size_t length;
  DecodeError error;
};
void ExpectEveryCutRefused(std::uint8_t first_byte, const Bytes& body, ProtocolVersion version,
                           std::initializer_list<Cut> other = {}) {
  ASSERT_TRUE(Accepts(Frame(first_byte, body), version));
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    SCOPED_TRACE(testing::Message() << "cut at " << cut << " of " << body.size());
    // A fresh vector of exactly `cut` bytes, so that ASan sees any read past the end.
    const Bytes prefix(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(cut));
    DecodeError want = E::kTruncated;
    for (const Cut& c : other) {
      if (c.length == cut) {
        want = c.error;
      }
    }
    EXPECT_TRUE(Refuses(Frame(first_byte, prefix), version, want, ToReasonCode(want)));
  }
}

TEST(MalformedTest, V5ConnectCutAtEveryLengthIsTruncated) {
  // 5.0 §3.1: every field the flags announce MUST be present ([MQTT-3.1.2-9], -17, -19).
  const Bytes body = Cat({
      Str("MQTT"),
      {0x05, 0xEE /* user name, password, will retain, will QoS 1, will, clean start */, 0x00,
       0x3C},
      Props(Cat({Four(PI::kSessionExpiryInterval, 60), Two(PI::kReceiveMaximum, 10),
                 UserProp("k", "v"), StrProp(PI::kAuthenticationMethod, "m")})),
      Str("client"),
      Props(Cat({Four(PI::kWillDelayInterval, 5), Byte(PI::kPayloadFormatIndicator, 1),
                 StrProp(PI::kContentType, "text/plain")})),
      Str("will/topic"),
      Str("bye"),
      Str("user"),
      Str("pw"),
  });
  const Bytes packet = Frame(0x10, body);
  const auto connect = Decoded<Connect>(packet, kV5);
  ASSERT_TRUE(connect.has_value());
  EXPECT_EQ(connect->client_id, "client");
  ASSERT_TRUE(connect->will.has_value());
  EXPECT_EQ(connect->will->topic, "will/topic");
  EXPECT_EQ(connect->will->qos, QoS::k1);
  EXPECT_TRUE(connect->will->retain);
  EXPECT_EQ(connect->will->properties.Count(), 3U);
  EXPECT_EQ(connect->properties.Count(), 4U);
  EXPECT_EQ(connect->user_name, "user");
  ExpectEveryCutRefused(0x10, body, kV5);
}

TEST(MalformedTest, V311ConnectCutAtEveryLengthIsTruncated) {
  // 3.1.1 §3.1.3: [MQTT-3.1.2-9], -19 and -21: announced fields MUST be present.
  const Bytes body = Cat({Str("MQTT"),
                          {0x04, 0xF6, 0x01, 0x00},
                          Str("client"),
                          Str("will/topic"),
                          Str("bye"),
                          Str("user"),
                          Str("pw")});
  ExpectEveryCutRefused(0x10, body, kV311);
}

TEST(MalformedTest, OtherPacketsCutAtEveryLengthAreTruncated) {
  // Every field is length-prefixed or fixed-size (3.1.1 §2.3, 5.0 §2.2), so a cut always shows.
  // One entry each: a cut between entries would leave a shorter valid list, and a cut right after
  // the properties leaves none ([MQTT-3.8.3-2], [MQTT-3.10.3-2]).
  ExpectEveryCutRefused(
      0x82,
      Cat({{0x00, 0x01}, Props(VarProp(PI::kSubscriptionIdentifier, 300)), Str("a/b"), {0x01}}),
      kV5, {{6, E::kNoTopicFilters}});
  ExpectEveryCutRefused(0xA2, Cat({{0x00, 0x01}, Props(UserProp("k", "v")), Str("a/b")}), kV5,
                        {{10, E::kNoTopicFilters}});
  ExpectEveryCutRefused(0x82, Cat({{0x00, 0x01}, Str("a/b"), {0x01}}), kV311,
                        {{2, E::kNoTopicFilters}});
  ExpectEveryCutRefused(
      0x20,
      Cat({{0x01, 0x00},
           Props(Cat({Byte(PI::kMaximumQos, 1), Four(PI::kMaximumPacketSize, 1024)}))}),
      kV5);
  ExpectEveryCutRefused(0x20, {0x00, 0x00}, kV311);
  ExpectEveryCutRefused(0x40, {0x00, 0x01}, kV311);
  ExpectEveryCutRefused(0x32, Cat({Str("a/b"), {0x00, 0x01}}), kV311);
  // A 5.0 PUBLISH's Property Length is mandatory (§3.3.2.3.1), unlike an ack's.
  ExpectEveryCutRefused(0x30, Cat({Str("a/b"), Props(Byte(PI::kPayloadFormatIndicator, 1))}), kV5);
}

TEST(MalformedTest, TrailingBytesAfterTheLastFieldAreMalformed) {
  // The Remaining Length fixes where the packet ends. 3.1.1 §3.4.1: PUBACK's is 2; §3.12 and
  // §3.14: PINGREQ and 3.1.1 DISCONNECT have no variable header and no payload.
  struct Case {
    std::string_view name;
    Bytes packet;
    ProtocolVersion version;
  };
  const std::vector<Case> cases = {
      {"3.1.1 PUBACK", Frame(0x40, {0x00, 0x01, 0x00}), kV311},
      {"3.1.1 PUBREL", Frame(0x62, {0x00, 0x01, 0x00}), kV311},
      {"PINGREQ", Frame(0xC0, {0x00}), kV311},
      {"5.0 PINGREQ", Frame(0xC0, {0x00}), kV5},
      {"PINGRESP", Frame(0xD0, {0x00}), kV311},
      {"3.1.1 DISCONNECT", Frame(0xE0, {0x00}), kV311},
      {"3.1.1 CONNACK", Frame(0x20, {0x00, 0x00, 0x00}), kV311},
      {"3.1.1 UNSUBACK", Frame(0xB0, {0x00, 0x01, 0x00}), kV311},
      {"3.1.1 CONNECT", V311Connect(0x02, Cat({Str("c"), {0x00}})), kV311},
      {"5.0 CONNECT", V5Connect(0x02, {}, Cat({Str("c"), {0x00}})), kV5},
      {"5.0 CONNECT with password",
       V5Connect(0xC2, {}, Cat({Str("c"), Str("u"), Str("p"), {0x01}})), kV5},
      {"5.0 PUBACK", Frame(0x40, {0x00, 0x01, 0x10, 0x00, 0x00}), kV5},
      {"5.0 CONNACK", Frame(0x20, {0x00, 0x00, 0x00, 0x00}), kV5},
      {"5.0 DISCONNECT", Frame(0xE0, {0x00, 0x00, 0x00}), kV5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(Refuses(c.packet, c.version, E::kTrailingBytes, RC::kMalformedPacket));
    Bytes valid(c.packet.begin(), c.packet.end() - 1);
    valid[1] = static_cast<std::uint8_t>(valid[1] - 1);  // every Remaining Length here is < 128
    EXPECT_TRUE(Accepts(valid, c.version));
  }
}

// ---------------------------------------------------------------------------------------------
// UTF-8 strings in every field

struct BadString {
  std::string_view name;
  std::string_view bytes;
  DecodeError error;
};

// 5.0 [MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]): ill-formed UTF-8 is a Malformed Packet;
// [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]): so is U+0000.
constexpr BadString kBadStrings[] = {
    {"overlong U+0000 (C0 80)",
     "ab\xC0\x80"
     "cd",
     E::kInvalidUtf8},
    {"overlong 2-byte (C1 BF)", "ab\xC1\xBF", E::kInvalidUtf8},
    {"overlong 3-byte (E0 80 80)",
     "ab\xE0\x80\x80"
     "cd",
     E::kInvalidUtf8},
    {"overlong 4-byte (F0 80 80 80)", "\xF0\x80\x80\x80", E::kInvalidUtf8},
    {"surrogate U+D800 (ED A0 80)",
     "ab\xED\xA0\x80"
     "cd",
     E::kInvalidUtf8},
    {"surrogate U+DFFF (ED BF BF)", "\xED\xBF\xBF", E::kInvalidUtf8},
    {"above U+10FFFF (F4 90 80 80)", "ab\xF4\x90\x80\x80", E::kInvalidUtf8},
    {"lead byte F5", "\xF5\x80\x80\x80", E::kInvalidUtf8},
    {"stray continuation byte",
     "ab\x80"
     "cd",
     E::kInvalidUtf8},
    {"continuation byte first",
     "\xBF"
     "abc",
     E::kInvalidUtf8},
    {"2-byte sequence cut at the end", "ab\xC3", E::kInvalidUtf8},
    {"3-byte sequence cut at the end", "ab\xE2\x82", E::kInvalidUtf8},
    {"4-byte sequence cut at the end", "ab\xF0\x9F\x98", E::kInvalidUtf8},
    {"3-byte sequence cut by ASCII",
     "\xE2\x82"
     "a",
     E::kInvalidUtf8},
    {"byte FF", "ab\xFF", E::kInvalidUtf8},
    {"U+0000", "ab\0cd"sv, E::kUtf8NullCharacter},
    {"U+0000 alone", "\0"sv, E::kUtf8NullCharacter},
    {"U+0000 after 8 ASCII bytes", "abcdefgh\0"sv, E::kUtf8NullCharacter},
};

// "é€𐍈" and U+FFFF, U+10FFFF: valid in every field.
constexpr std::string_view kValidNonAscii =
    "\xC3\xA9\xE2\x82\xAC\xF0\x90\x8D\x88\xEF\xBF\xBF\xF4\x8F"
    "\xBF\xBF";

void ExpectUtf8Checked(const std::function<Bytes(std::string_view)>& build,
                       ProtocolVersion version) {
  EXPECT_TRUE(Accepts(build(kValidNonAscii), version));
  for (const BadString& bad : kBadStrings) {
    SCOPED_TRACE(bad.name);
    EXPECT_TRUE(Refuses(build(bad.bytes), version, bad.error, RC::kMalformedPacket));
  }
}

TEST(MalformedTest, BadUtf8InPublishTopicIsMalformed) {
  // [MQTT-3.3.2-1]: the Topic Name MUST be a UTF-8 Encoded String.
  ExpectUtf8Checked([](std::string_view s) { return Frame(0x30, Cat({Str(s), {'x'}})); }, kV311);
  ExpectUtf8Checked([](std::string_view s) { return V5Publish({}, s); }, kV5);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0x32, Cat({Str(s), {0x00, 0x01}}));
      },
      kV311);
}

TEST(MalformedTest, BadUtf8InClientIdIsMalformed) {
  // [MQTT-3.1.3-4] (3.1.1 [MQTT-3.1.3-4]): the ClientID MUST be a UTF-8 Encoded String.
  ExpectUtf8Checked([](std::string_view s) { return V311Connect(0x02, Str(s)); }, kV311);
  ExpectUtf8Checked([](std::string_view s) { return V5Connect(0x02, {}, Str(s)); }, kV5);
}

TEST(MalformedTest, BadUtf8InUserNameIsMalformed) {
  // 5.0 [MQTT-3.1.3-12] (3.1.1 [MQTT-3.1.3-11]): the User Name MUST be a UTF-8 Encoded String.
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V311Connect(0x82, Cat({Str("c"), Str(s)}));
      },
      kV311);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V311Connect(0xC2, Cat({Str("c"), Str(s), Str("pw")}));
      },
      kV311);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V5Connect(0x82, {}, Cat({Str("c"), Str(s)}));
      },
      kV5);
}

TEST(MalformedTest, BadUtf8InWillTopicIsMalformed) {
  // 5.0 [MQTT-3.1.3-11] (3.1.1 [MQTT-3.1.3-10]): the Will Topic MUST be a UTF-8 Encoded String.
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V311Connect(0x06, Cat({Str("c"), Str(s), Str("bye")}));
      },
      kV311);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V5Connect(0x06, {}, Cat({Str("c"), {0x00}, Str(s), Str("bye")}));
      },
      kV5);
}

TEST(MalformedTest, BadUtf8InSubscriptionFilterIsMalformed) {
  // [MQTT-3.8.3-1]: the Topic Filters MUST be UTF-8 Encoded Strings.
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x00}, Str(s), {0x01}}));
      },
      kV311);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str(s), {0x01}}));
      },
      kV5);
}

TEST(MalformedTest, BadUtf8InUnsubscribeFilterIsMalformed) {
  // [MQTT-3.10.3-1]: the Topic Filters in an UNSUBSCRIBE MUST be UTF-8 Encoded Strings.
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0xA2, Cat({{0x00, 0x01}, Str("a"), Str(s)}));
      },
      kV311);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0xA2, Cat({{0x00, 0x01, 0x00}, Str(s)}));
      },
      kV5);
}

TEST(MalformedTest, BadUtf8InStringPropertiesIsMalformed) {
  // 5.0 §2.2.2.2: every UTF-8 String property is a UTF-8 Encoded String (§1.5.4), e.g.
  // [MQTT-3.3.2-13] Response Topic, [MQTT-3.3.2-19] Content Type.
  ExpectUtf8Checked([](std::string_view s) { return V5Publish(StrProp(PI::kContentType, s)); },
                    kV5);
  ExpectUtf8Checked([](std::string_view s) { return V5Publish(StrProp(PI::kResponseTopic, s)); },
                    kV5);
  ExpectUtf8Checked([](std::string_view s) { return V5Puback(StrProp(PI::kReasonString, s)); },
                    kV5);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V5ConnectWithProperties(StrProp(PI::kAuthenticationMethod, s));
      },
      kV5);
  ExpectUtf8Checked(
      [](std::string_view s) { return V5Connack(StrProp(PI::kAssignedClientIdentifier, s)); }, kV5);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return Frame(0xE0, Cat({{0x9C}, Props(StrProp(PI::kServerReference, s))}));
      },
      kV5);
  ExpectUtf8Checked(
      [](std::string_view s) { return V5ConnectWithWillProperties(StrProp(PI::kContentType, s)); },
      kV5);
}

TEST(MalformedTest, BadUtf8InUserPropertyIsMalformed) {
  // [MQTT-1.5.7-1]: both strings of a UTF-8 String Pair MUST be UTF-8 Encoded Strings.
  ExpectUtf8Checked([](std::string_view s) { return V5Publish(UserProp(s, "v")); }, kV5);
  ExpectUtf8Checked([](std::string_view s) { return V5Publish(UserProp("k", s)); }, kV5);
  ExpectUtf8Checked(
      [](std::string_view s) {
        return V5Subscribe(Cat({UserProp("a", "b"), UserProp("k", s)}));
      },
      kV5);
  ExpectUtf8Checked([](std::string_view s) { return V5ConnectWithProperties(UserProp(s, s)); },
                    kV5);
}

// ---------------------------------------------------------------------------------------------
// Properties

TEST(MalformedTest, PropertyNotAllowedInThePacketIsMalformed) {
  // 5.0 §2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its packet
  // type ... is a Malformed Packet."
  struct Case {
    std::string_view name;
    Bytes packet;
  };
  const std::vector<Case> cases = {
      {"Topic Alias in CONNECT", V5ConnectWithProperties(Two(PI::kTopicAlias, 1))},
      {"Reason String in CONNECT", V5ConnectWithProperties(StrProp(PI::kReasonString, "r"))},
      {"Will Delay Interval in CONNECT", V5ConnectWithProperties(Four(PI::kWillDelayInterval, 1))},
      {"Will Delay Interval in PUBLISH", V5Publish(Four(PI::kWillDelayInterval, 1))},
      {"Session Expiry Interval in PUBLISH", V5Publish(Four(PI::kSessionExpiryInterval, 1))},
      {"Session Expiry Interval in Will",
       V5ConnectWithWillProperties(Four(PI::kSessionExpiryInterval, 1))},
      {"Subscription Identifier in UNSUBSCRIBE",
       V5Unsubscribe(VarProp(PI::kSubscriptionIdentifier, 1))},
      {"Maximum QoS in CONNECT", V5ConnectWithProperties(Byte(PI::kMaximumQos, 1))},
      {"Reason String in PUBLISH", V5Publish(StrProp(PI::kReasonString, "r"))},
      {"Topic Alias in Will", V5ConnectWithWillProperties(Two(PI::kTopicAlias, 1))},
      {"Content Type in PUBACK", V5Puback(StrProp(PI::kContentType, "c"))},
      {"Server Reference in CONNECT", V5ConnectWithProperties(StrProp(PI::kServerReference, "s"))},
      {"Reason String in SUBSCRIBE", V5Subscribe(StrProp(PI::kReasonString, "r"))},
      {"Subscription Identifier in CONNACK", V5Connack(VarProp(PI::kSubscriptionIdentifier, 1))},
      {"Authentication Method in DISCONNECT",
       Frame(0xE0, Cat({{0x00}, Props(StrProp(PI::kAuthenticationMethod, "m"))}))},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(Refuses(c.packet, kV5, E::kPropertyNotAllowed, RC::kMalformedPacket));
  }
  // Where they belong.
  EXPECT_TRUE(Accepts(V5Publish(Two(PI::kTopicAlias, 1)), kV5));
  EXPECT_TRUE(Accepts(V5ConnectWithWillProperties(Four(PI::kWillDelayInterval, 1)), kV5));
  EXPECT_TRUE(Accepts(V5ConnectWithProperties(Four(PI::kSessionExpiryInterval, 1)), kV5));
  EXPECT_TRUE(Accepts(V5Subscribe(VarProp(PI::kSubscriptionIdentifier, 1)), kV5));
  EXPECT_TRUE(Accepts(V5Puback(StrProp(PI::kReasonString, "r")), kV5));
}

TEST(MalformedTest, UnknownPropertyIdentifierIsMalformed) {
  // 5.0 §2.2.2.2 Table 2-4 defines the identifiers; any other is not valid for any packet.
  for (const Bytes& id : {Bytes{0x00}, Bytes{0x04}, Bytes{0x0A}, Bytes{0x2B}, Bytes{0x7F},
                          Bytes{0x80, 0x01}, Bytes{0xA6, 0x01} /* 0x26 + 128 */}) {
    SCOPED_TRACE(Hex(id));
    const Bytes list = Cat({id, {0x00, 0x00, 0x00, 0x00}});
    EXPECT_TRUE(Refuses(V5Publish(list), kV5, E::kUnknownProperty, RC::kMalformedPacket));
    EXPECT_TRUE(
        Refuses(V5ConnectWithProperties(list), kV5, E::kUnknownProperty, RC::kMalformedPacket));
    EXPECT_TRUE(Refuses(V5Puback(list), kV5, E::kUnknownProperty, RC::kMalformedPacket));
  }
  // [MQTT-1.5.5-1]: a known identifier in a longer form than needed.
  EXPECT_TRUE(
      Refuses(V5Publish({0x81, 0x00, 0x01}), kV5, E::kNonMinimalVarint, RC::kMalformedPacket));
}

TEST(MalformedTest, RepeatedSingleValuedPropertyIsProtocolError) {
  // 5.0 §3.3.2.3.3: "It is a Protocol Error to include the Message Expiry Interval more than
  // once."; §3.8.2.1.2: "... to include the Subscription Identifier more than once."
  EXPECT_TRUE(Refuses(
      V5Publish(Cat({Four(PI::kMessageExpiryInterval, 1), Four(PI::kMessageExpiryInterval, 2)})),
      kV5, E::kDuplicateProperty, RC::kProtocolError));
  EXPECT_TRUE(Refuses(V5Subscribe(Cat({VarProp(PI::kSubscriptionIdentifier, 1),
                                       VarProp(PI::kSubscriptionIdentifier, 2)})),
                      kV5, E::kDuplicateProperty, RC::kProtocolError));
  // Not adjacent, still a repeat.
  EXPECT_TRUE(Refuses(V5ConnectWithProperties(Cat({Two(PI::kReceiveMaximum, 5), UserProp("k", "v"),
                                                   Two(PI::kReceiveMaximum, 5)})),
                      kV5, E::kDuplicateProperty, RC::kProtocolError));
  EXPECT_TRUE(
      Refuses(V5Puback(Cat({StrProp(PI::kReasonString, "a"), StrProp(PI::kReasonString, "b")})),
              kV5, E::kDuplicateProperty, RC::kProtocolError));
}

TEST(MalformedTest, RepeatableProperties) {
  // 5.0 §3.3.2.3.7: User Property may appear multiple times; §3.3.2.3.8: a PUBLISH carries one
  // Subscription Identifier per matching subscription.
  const Bytes users = V5Publish(Cat({UserProp("k", "1"), UserProp("k", "2"), UserProp("j", "3")}));
  const auto with_users = Decoded<Publish>(users, kV5);
  ASSERT_TRUE(with_users.has_value());
  EXPECT_EQ(with_users->properties.Count(), 3U);

  const Bytes ids = V5Publish(
      Cat({VarProp(PI::kSubscriptionIdentifier, 1), VarProp(PI::kSubscriptionIdentifier, 200)}));
  const auto with_ids = Decoded<Publish>(ids, kV5);
  ASSERT_TRUE(with_ids.has_value());
  EXPECT_EQ(with_ids->properties.Count(), 2U);
  EXPECT_EQ(with_ids->properties.Number(PI::kSubscriptionIdentifier), 1U);

  EXPECT_TRUE(Accepts(V5Subscribe(Cat({UserProp("a", "b"), UserProp("a", "b")})), kV5));
  EXPECT_TRUE(Accepts(V5Puback(Cat({UserProp("a", "b"), UserProp("a", "b")})), kV5));
}

TEST(MalformedTest, PropertyValueOutOfRangeIsProtocolError) {
  // 5.0 §1.2: data the protocol does not allow, once parsed, is a Protocol Error (0x82).
  struct Case {
    std::string_view name;
    Bytes packet;
  };
  const std::vector<Case> cases = {
      // §3.1.2.11.3: "It is a Protocol Error ... for it to have the value 0."
      {"Receive Maximum 0", V5ConnectWithProperties(Two(PI::kReceiveMaximum, 0))},
      {"Receive Maximum 0 in CONNACK", V5Connack(Two(PI::kReceiveMaximum, 0))},
      // §3.1.2.11.4: "It is a Protocol Error ... for the value to be set to zero."
      {"Maximum Packet Size 0", V5ConnectWithProperties(Four(PI::kMaximumPacketSize, 0))},
      // §3.3.2.3.2: the indicator is 0 (unspecified bytes) or 1 (UTF-8).
      {"Payload Format Indicator 2", V5Publish(Byte(PI::kPayloadFormatIndicator, 2))},
      {"Payload Format Indicator 255 in Will",
       V5ConnectWithWillProperties(Byte(PI::kPayloadFormatIndicator, 0xFF))},
      // §3.1.2.11.7: "It is a Protocol Error ... to have a value other than 0 or 1."
      {"Request Problem Information 2",
       V5ConnectWithProperties(Byte(PI::kRequestProblemInformation, 2))},
      // §3.1.2.11.6: the same for Request Response Information.
      {"Request Response Information 2",
       V5ConnectWithProperties(Byte(PI::kRequestResponseInformation, 2))},
      // §3.2.2.3.4: "It is a Protocol Error to ... have a value other than 0 or 1."
      {"Maximum QoS 2", V5Connack(Byte(PI::kMaximumQos, 2))},
      // §3.2.2.3.5, .11, .12, .13: the availability flags are 0 or 1.
      {"Retain Available 2", V5Connack(Byte(PI::kRetainAvailable, 2))},
      {"Wildcard Subscription Available 2", V5Connack(Byte(PI::kWildcardSubscriptionAvailable, 2))},
      {"Subscription Identifier Available 2",
       V5Connack(Byte(PI::kSubscriptionIdentifierAvailable, 2))},
      {"Shared Subscription Available 2", V5Connack(Byte(PI::kSharedSubscriptionAvailable, 2))},
      // §3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0."
      {"Subscription Identifier 0", V5Subscribe(VarProp(PI::kSubscriptionIdentifier, 0))},
      // §3.3.2.3.8: the same in PUBLISH.
      {"Subscription Identifier 0 in PUBLISH", V5Publish(VarProp(PI::kSubscriptionIdentifier, 0))},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(Refuses(c.packet, kV5, E::kInvalidPropertyValue, RC::kProtocolError));
  }
  // The edges of the ranges.
  EXPECT_TRUE(Accepts(
      V5ConnectWithProperties(
          Cat({Two(PI::kReceiveMaximum, 1), Four(PI::kMaximumPacketSize, 1),
               Byte(PI::kRequestProblemInformation, 1), Byte(PI::kRequestResponseInformation, 0)})),
      kV5));
  EXPECT_TRUE(Accepts(V5Publish(Byte(PI::kPayloadFormatIndicator, 1)), kV5));
  EXPECT_TRUE(
      Accepts(V5Connack(Cat({Byte(PI::kMaximumQos, 1), Byte(PI::kRetainAvailable, 0)})), kV5));
  EXPECT_TRUE(Accepts(V5Subscribe(VarProp(PI::kSubscriptionIdentifier, 268'435'455)), kV5));
}

TEST(MalformedTest, PropertyLengthPastTheEndIsTruncated) {
  // 5.0 §2.2.2.1: the Property Length counts the bytes of the properties that follow.
  EXPECT_TRUE(Refuses(Frame(0x30, Cat({Str("t"), {0x05, 0x01, 0x01}})), kV5, E::kTruncated,
                      RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(Frame(0x20, {0x00, 0x00, 0x03, 0x24}), kV5, E::kTruncated, RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(Frame(0x40, {0x00, 0x01, 0x00, 0x7F}), kV5, E::kTruncated, RC::kMalformedPacket));
  // A value that runs past the end of the list (Message Expiry needs four bytes).
  EXPECT_TRUE(Refuses(Frame(0x30, Cat({Str("t"), {0x03, 0x02, 0x00, 0x00, 0x00, 0x00}})), kV5,
                      E::kTruncated, RC::kMalformedPacket));
  // A string property whose length runs past the end of the list.
  EXPECT_TRUE(Refuses(Frame(0x30, Cat({Str("t"), {0x03, 0x03, 0x00, 0x05}, Str("abc")})), kV5,
                      E::kTruncated, RC::kMalformedPacket));
}

TEST(MalformedTest, BadVariableByteIntegersInPropertiesAreMalformed) {
  // [MQTT-1.5.5-1] and 5.0 §1.5.5 (at most four bytes), for the Property Length and for the
  // Subscription Identifier value.
  EXPECT_TRUE(Refuses(Frame(0x30, Cat({Str("t"), {0x80, 0x00}})), kV5, E::kNonMinimalVarint,
                      RC::kMalformedPacket));
  EXPECT_TRUE(
      Refuses(V5Publish({0x0B, 0x80, 0x00}), kV5, E::kNonMinimalVarint, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(V5Publish({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), kV5, E::kMalformedVarint,
                      RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(V5Subscribe({0x0B, 0x81}), kV5, E::kTruncated, RC::kMalformedPacket));
}

// ---------------------------------------------------------------------------------------------
// Rules on which properties a packet must, or must not, carry together

// Success when decoding `bytes` fails with an error that answers `reason`. For the rules below
// DecodeError has no enumerator yet, so only the reason code is pinned.
testing::AssertionResult RefusesWith(const Bytes& bytes, ProtocolVersion version,
                                     ReasonCode reason) {
  const DecodeResult<Packet> result = DecodeOne(bytes, version);
  if (result.has_value()) {
    return testing::AssertionFailure() << "decoded " << PacketTypeName(TypeOf(*result)) << " from ["
                                       << Hex(bytes) << "], want " << ReasonCodeName(reason);
  }
  if (ToReasonCode(result.error()) != reason) {
    return testing::AssertionFailure()
           << "got \"" << Describe(result.error()) << "\" ("
           << ReasonCodeName(ToReasonCode(result.error())) << "), want " << ReasonCodeName(reason);
  }
  return testing::AssertionSuccess();
}

TEST(MalformedTest, ConnectWithAuthenticationDataButNoMethodIsProtocolError) {
  // 5.0 §3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
  // Authentication Method."
  const Bytes data_only = V5ConnectWithProperties(Cat({{Id(PI::kAuthenticationData)}, Str("d")}));
  EXPECT_TRUE(RefusesWith(data_only, kV5, RC::kProtocolError));
  EXPECT_TRUE(Accepts(
      V5ConnectWithProperties(
          Cat({StrProp(PI::kAuthenticationMethod, "m"), {Id(PI::kAuthenticationData)}, Str("d")})),
      kV5));
}

TEST(MalformedTest, AuthWithoutAuthenticationMethodIsProtocolError) {
  // 5.0 §3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method". Only the AUTH
  // with Remaining Length 0 (Success, no properties, §3.15.2) leaves the whole list out.
  EXPECT_TRUE(RefusesWith(Frame(0xF0, {0x18, 0x00}), kV5, RC::kProtocolError));
  EXPECT_TRUE(RefusesWith(Frame(0xF0, {0x19, 0x00}), kV5, RC::kProtocolError));
  EXPECT_TRUE(RefusesWith(Frame(0xF0, Cat({{0x18}, Props(StrProp(PI::kReasonString, "r"))})), kV5,
                          RC::kProtocolError));
  EXPECT_TRUE(
      Accepts(Frame(0xF0, Cat({{0x18}, Props(StrProp(PI::kAuthenticationMethod, "m"))})), kV5));
}

TEST(MalformedTest, AuthWithReasonCodeButNoPropertyLengthIsMalformed) {
  // 5.0 §3.15.2: "The Reason Code and Property Length can be omitted if the Reason Code is 0x00
  // (Success) and there are no Properties. In this case the AUTH has a Remaining Length of 0."
  // Unlike DISCONNECT (§3.14.2.2.1) and the PUBACK family (§3.4.2.2.1), AUTH has no rule for a
  // Remaining Length of 1: the Property Length is missing.
  EXPECT_TRUE(Refuses(Frame(0xF0, {0x18}), kV5, E::kTruncated, RC::kMalformedPacket));
  EXPECT_TRUE(Refuses(Frame(0xF0, {0x00}), kV5, E::kTruncated, RC::kMalformedPacket));
}

TEST(MalformedTest, ResponseTopicWithWildcardOrEmptyIsProtocolError) {
  // [MQTT-3.3.2-14]: "The Response Topic MUST NOT contain wildcard characters"; it is the Topic
  // Name of the response (§4.10), so [MQTT-4.7.3-1] (at least one character) applies as well.
  // decode_error.h names kInvalidPropertyValue (0x82) for a bad Response Topic.
  for (const std::string_view topic : {"r/+"sv, "r/#"sv, "#"sv, ""sv}) {
    SCOPED_TRACE(topic);
    EXPECT_TRUE(Refuses(V5Publish(StrProp(PI::kResponseTopic, topic)), kV5,
                        E::kInvalidPropertyValue, RC::kProtocolError));
    EXPECT_TRUE(Refuses(V5ConnectWithWillProperties(StrProp(PI::kResponseTopic, topic)), kV5,
                        E::kInvalidPropertyValue, RC::kProtocolError));
  }
  EXPECT_TRUE(Accepts(V5Publish(StrProp(PI::kResponseTopic, "r/1")), kV5));
  EXPECT_TRUE(Accepts(V5ConnectWithWillProperties(StrProp(PI::kResponseTopic, "/")), kV5));
}

// ---------------------------------------------------------------------------------------------
// Every DecodeError is reachable from bytes

TEST(MalformedTest, EveryDecodeErrorHasAByteSequenceThatProducesIt) {
  // decode_error.h: each enumerator, with the clause given at its own test above.
  struct Case {
    DecodeError error;
    Bytes packet;
    ProtocolVersion version;
  };
  const std::vector<Case> cases = {
      {E::kReservedPacketType, Frame(0x00, {}), kV311},
      {E::kInvalidFixedHeaderFlags, Frame(0xC1, {}), kV311},
      {E::kMalformedVarint, {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, kV311},
      {E::kNonMinimalVarint, {0x30, 0x80, 0x00}, kV311},
      {E::kTruncated, Frame(0x40, {0x00}), kV311},
      {E::kTrailingBytes, Frame(0xC0, {0x00}), kV311},
      {E::kInvalidUtf8, Frame(0x30, Str("\xC0\x80")), kV311},
      {E::kUtf8NullCharacter, Frame(0x30, Str("a\0b"sv)), kV311},
      {E::kUnknownProperty, V5Publish({0x7F, 0x00}), kV5},
      {E::kPropertyNotAllowed, V5Publish(Four(PI::kSessionExpiryInterval, 1)), kV5},
      {E::kDuplicateProperty,
       V5Publish(Cat({Byte(PI::kPayloadFormatIndicator, 1), Byte(PI::kPayloadFormatIndicator, 1)})),
       kV5},
      {E::kInvalidPropertyValue, V5Publish(Byte(PI::kPayloadFormatIndicator, 2)), kV5},
      {E::kTopicAliasZero, V5Publish(Two(PI::kTopicAlias, 0)), kV5},
      {E::kInvalidProtocolName, Frame(0x10, Cat({Str("MQTX"), {0x04, 0x02, 0x00, 0x00}, Str("")})),
       kV311},
      {E::kUnsupportedProtocolLevel,
       Frame(0x10, Cat({Str("MQTT"), {0x06, 0x02, 0x00, 0x00}, Str("")})), kV311},
      {E::kReservedConnectFlag, V311Connect(0x01, Str("")), kV311},
      {E::kInvalidWillFlags, V311Connect(0x20, Str("")), kV311},
      {E::kPasswordWithoutUserName, V311Connect(0x40, Cat({Str(""), Str("")})), kV311},
      {E::kInvalidQos, Frame(0x36, Cat({Str("t"), {0x00, 0x01}})), kV311},
      {E::kDupOnQos0, Frame(0x38, Str("t")), kV311},
      {E::kZeroPacketId, Frame(0x40, {0x00, 0x00}), kV311},
      {E::kWildcardInTopicName, Frame(0x30, Str("#")), kV311},
      {E::kEmptyTopicName, Frame(0x30, Str("")), kV311},
      {E::kNoTopicFilters, Frame(0xA2, {0x00, 0x01}), kV311},
      {E::kReservedSubscriptionBits, Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x04}})), kV311},
      {E::kInvalidSubscriptionQos, Frame(0x82, Cat({{0x00, 0x01}, Str("a"), {0x03}})), kV311},
      {E::kInvalidRetainHandling, Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("a"), {0x30}})), kV5},
      {E::kNoLocalOnSharedSubscription,
       Frame(0x82, Cat({{0x00, 0x01, 0x00}, Str("$share/g/a"), {0x04}})), kV5},
      {E::kReservedConnackFlags, Frame(0x20, {0x02, 0x00}), kV311},
      {E::kSessionPresentOnFailure, Frame(0x20, {0x01, 0x05}), kV311},
      {E::kInvalidReasonCode, Frame(0x20, {0x00, 0x06}), kV311},
      {E::kMissingAuthenticationMethod, Frame(0xF0, {0x18, 0x00}), kV5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(Describe(c.error));
    EXPECT_TRUE(Refuses(c.packet, c.version, c.error, ToReasonCode(c.error)));
  }
  // The two that need a size limit or a stream are covered by PacketOverConfiguredMaximumIsTooLarge
  // and StreamPacketBeforeConnectIsProtocolError; with them, every enumerator appears.
  EXPECT_EQ(cases.size() + 2, 34U);
}

}  // namespace
}  // namespace tinymq::mqtt
