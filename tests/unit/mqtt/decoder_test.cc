#include "tinymq/mqtt/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "tests/unit/mqtt/codec_test_util.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"

// The stream Decoder: bytes in any split give the same packets; the first CONNECT fixes the
// protocol version; sizes are checked from the fixed header before a body is buffered; errors
// stick; the buffer stays as small as the largest packet and is freed when idle.

namespace tinymq::mqtt {
namespace {

using codec_test::Bytes;
using codec_test::Cat;
using codec_test::EncodeOk;
using codec_test::Hex;
using codec_test::Outcome;
using codec_test::SamePacket;
using codec_test::Summary;
using codec_test::VersionName;
using std::string_view_literals::operator""sv;

using PV = ProtocolVersion;
using RC = ReasonCode;
using PId = PropertyId;

// What the buffer may hold beyond max(read_chunk, largest packet): the bytes of a fixed header
// that is not complete yet (at most 4) when a new read chunk is offered.
constexpr std::size_t kSlack = 8;

constexpr PV kAllVersions[] = {PV::kV31, PV::kV311, PV::kV5};

ReasonCodeList Codes(std::span<const ReasonCode> codes) { return ReasonCodeList(codes); }

constexpr ReasonCode kSubackCodes[] = {RC::kGrantedQos1, RC::kUnspecifiedError};
constexpr ReasonCode kUnsubackCodes[] = {RC::kSuccess, RC::kNoSubscriptionExisted};

Publish MakePublish(std::string_view topic, QoS qos, std::uint16_t packet_id,
                    std::string_view payload) {
  Publish p;
  p.qos = qos;
  p.topic = topic;
  p.packet_id = packet_id;
  p.payload = BinaryView::Of(payload);
  return p;
}

Connect MakeConnect(ProtocolVersion version, std::string_view client_id) {
  Connect c;
  c.version = version;
  c.client_id = client_id;
  c.keep_alive = 60;
  return c;
}

// A session in one protocol version: a CONNECT, then every other packet type the version has
// (with properties and reason codes in 5.0), as Packet values and as one byte stream.
class SampleStream {
 public:
  explicit SampleStream(ProtocolVersion version) : version_(version) {
    const bool v5 = version == PV::kV5;
    for (std::size_t i = 0; i < 300; ++i) {  // Remaining Length above 127: two bytes
      big_payload_.push_back(static_cast<char>(i * 7));
    }
    connect_props_.Add(PId::kSessionExpiryInterval, 3600U)
        .Add(PId::kReceiveMaximum, 20U)
        .AddUserProperty("client", "test");
    will_props_.Add(PId::kWillDelayInterval, 5U).Add(PId::kContentType, "text/plain");
    publish_props_.Add(PId::kPayloadFormatIndicator, 1U).AddUserProperty("k", "v");
    ack_props_.Add(PId::kReasonString, "no subscribers");
    subscribe_props_.Add(PId::kSubscriptionIdentifier, 7U);
    connack_props_.Add(PId::kTopicAliasMaximum, 10U).Add(PId::kAssignedClientIdentifier, "auto-1");
    auth_props_.Add(PId::kAuthenticationMethod, "SCRAM-SHA-1")
        .AddBinary(PId::kAuthenticationData, BinaryView::Of("\x00\x01"sv));
    disconnect_props_.Add(PId::kReasonString, "bye");
    subscriptions_.Add("a/+", {.max_qos = QoS::k1})
        .Add("b/#",
             v5 ? SubscriptionOptions{.max_qos = QoS::k2, .no_local = true, .retain_handling = 1}
                : SubscriptionOptions{.max_qos = QoS::k2});
    filters_.Add("a/+").Add("b/#");

    Connect connect = MakeConnect(version, "stream-client");
    connect.clean_start = false;
    connect.will = Will{.qos = QoS::k1,
                        .retain = true,
                        .properties = {},
                        .topic = "last/will",
                        .payload = BinaryView::Of("gone")};
    connect.user_name = "u";
    connect.password = BinaryView::Of("p");
    if (v5) {
      connect.properties = connect_props_.view();
      connect.will->properties = will_props_.view();
    }
    Add(connect);

    Publish qos0 = MakePublish("a/b", QoS::k0, 0, "hello");
    if (v5) {
      qos0.properties = publish_props_.view();
    }
    Add(qos0);
    Publish qos1 = MakePublish("sensors/temp", QoS::k1, 1, big_payload_);
    qos1.dup = true;
    qos1.retain = true;
    Add(qos1);
    Puback puback{1, RC::kSuccess, {}};
    if (v5) {
      puback.reason = RC::kNoMatchingSubscribers;
      puback.properties = ack_props_.view();
    }
    Add(puback);
    Add(MakePublish("q2", QoS::k2, 2, ""));
    Add(Pubrec{2, RC::kSuccess, {}});
    Add(Pubrel{2, RC::kSuccess, {}});
    Add(Pubcomp{2, RC::kSuccess, {}});
    Add(Subscribe{3, v5 ? subscribe_props_.view() : Properties(), subscriptions_.view()});
    Add(Suback{.packet_id = 3, .properties = {}, .reason_codes = Codes(kSubackCodes)});
    Add(Unsubscribe{.packet_id = 4, .properties = {}, .filters = filters_.view()});
    Unsuback unsuback{.packet_id = 4, .properties = {}, .reason_codes = {}};
    if (v5) {
      unsuback.reason_codes = Codes(kUnsubackCodes);
    }
    Add(unsuback);
    Add(Pingreq{});
    Add(Pingresp{});
    Connack connack{
        .session_present = version != PV::kV31, .reason = RC::kSuccess, .properties = {}};
    if (v5) {
      connack.properties = connack_props_.view();
    }
    Add(connack);
    if (v5) {
      Add(Auth{RC::kContinueAuthentication, auth_props_.view()});
    }
    Disconnect disconnect;
    if (v5) {
      disconnect.reason = RC::kDisconnectWithWill;
      disconnect.properties = disconnect_props_.view();
    }
    Add(disconnect);
  }
  SampleStream(const SampleStream&) = delete;
  SampleStream& operator=(const SampleStream&) = delete;

  const std::vector<Packet>& packets() const { return packets_; }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  // The encoding of packets()[i] alone.
  const std::vector<std::uint8_t>& encoded(std::size_t i) const { return encoded_[i]; }
  std::size_t largest_packet() const { return largest_; }

 private:
  void Add(const Packet& packet) {
    packets_.push_back(packet);
    encoded_.push_back(EncodeOk(packet, version_));
    bytes_.insert(bytes_.end(), encoded_.back().begin(), encoded_.back().end());
    largest_ = std::max(largest_, encoded_.back().size());
  }

  ProtocolVersion version_;
  std::string big_payload_;
  PropertiesBuilder connect_props_, will_props_, publish_props_, ack_props_, subscribe_props_,
      connack_props_, auth_props_, disconnect_props_;
  SubscriptionListBuilder subscriptions_;
  TopicFilterListBuilder filters_;
  std::vector<Packet> packets_;
  std::vector<std::vector<std::uint8_t>> encoded_;
  std::vector<std::uint8_t> bytes_;
  std::size_t largest_ = 0;
};

struct FeedOutcome {
  std::size_t packets = 0;  // packets that came out; each was compared with the expected one
  std::optional<DecodeError> error;
  std::size_t max_capacity = 0;  // the most capacity() seen after a Feed
};

// Hands `chunks` over in order with Feed(); after each Feed, calls Next() until it yields nothing
// and compares each packet with the next of `expected` while its views are still valid. Stops at
// the first error.
FeedOutcome FeedChunks(Decoder& d, const std::vector<BinaryView>& chunks,
                       const std::vector<Packet>& expected) {
  FeedOutcome out;
  for (BinaryView chunk : chunks) {
    while (!chunk.empty()) {
      const std::size_t n = d.Feed(chunk);
      if (n == 0 || n > chunk.size()) {
        ADD_FAILURE() << "Feed took " << n << " of " << chunk.size() << " bytes";
        return out;
      }
      chunk = BinaryView(chunk.data() + n, chunk.size() - n);
      out.max_capacity = std::max(out.max_capacity, d.capacity());
      for (;;) {
        auto next = d.Next();
        if (!next.has_value()) {
          out.error = next.error();
          return out;
        }
        if (!next->has_value()) {
          break;
        }
        if (out.packets < expected.size()) {
          EXPECT_TRUE(SamePacket(**next, expected[out.packets])) << "packet " << out.packets;
        } else {
          ADD_FAILURE() << "unexpected packet " << Summary(**next);
        }
        ++out.packets;
      }
    }
  }
  return out;
}

std::vector<BinaryView> OneByteChunks(const std::vector<std::uint8_t>& bytes) {
  std::vector<BinaryView> chunks;
  chunks.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    chunks.emplace_back(bytes.data() + i, 1);
  }
  return chunks;
}

std::string ErrorText(const std::optional<DecodeError>& error) {
  return error ? std::string(Describe(*error)) : "none";
}

// ---------------------------------------------------------------------------------------------
// The same packets whatever the split, in every version and with a small and a normal read chunk.

class DecoderStreamTest : public testing::TestWithParam<std::tuple<ProtocolVersion, std::size_t>> {
 protected:
  ProtocolVersion Version() const { return std::get<0>(GetParam()); }
  Decoder::Options DecoderOptions() const { return {.read_chunk = std::get<1>(GetParam())}; }
  std::size_t CapacityBound(const SampleStream& s) const {
    return std::max(DecoderOptions().read_chunk, s.largest_packet()) + kSlack;
  }
};

TEST_P(DecoderStreamTest, ByteAtATimeYieldsEveryPacket) {
  const SampleStream s(Version());
  Decoder d(DecoderOptions());
  const FeedOutcome r = FeedChunks(d, OneByteChunks(s.bytes()), s.packets());
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, s.packets().size());
  EXPECT_LE(r.max_capacity, CapacityBound(s));
  EXPECT_EQ(d.buffered(), 0U);
  ASSERT_TRUE(d.version().has_value());
  EXPECT_EQ(VersionName(*d.version()), VersionName(Version()));
}

TEST_P(DecoderStreamTest, AllAtOnceYieldsEveryPacket) {
  const SampleStream s(Version());
  Decoder d(DecoderOptions());
  const FeedOutcome r = FeedChunks(d, {BinaryView(s.bytes())}, s.packets());
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, s.packets().size());
  EXPECT_LE(r.max_capacity, CapacityBound(s));
  EXPECT_EQ(d.buffered(), 0U);
}

TEST_P(DecoderStreamTest, EveryTwoWaySplitYieldsEveryPacket) {
  const SampleStream s(Version());
  const std::vector<std::uint8_t>& bytes = s.bytes();
  for (std::size_t split = 1; split < bytes.size(); ++split) {
    SCOPED_TRACE(testing::Message() << "split after byte " << split << " of " << bytes.size());
    Decoder d(DecoderOptions());
    const FeedOutcome r = FeedChunks(
        d,
        {BinaryView(bytes.data(), split), BinaryView(bytes.data() + split, bytes.size() - split)},
        s.packets());
    EXPECT_EQ(ErrorText(r.error), "none");
    EXPECT_EQ(r.packets, s.packets().size());
    EXPECT_LE(r.max_capacity, CapacityBound(s));
    if (HasFailure()) {
      break;  // one failing split says enough
    }
  }
}

TEST_P(DecoderStreamTest, ReadsIntoPrepareReadYieldEveryPacket) {
  // The socket path: read into PrepareRead()'s span, then CommitRead, in reads of varied sizes.
  const SampleStream s(Version());
  const std::vector<std::uint8_t>& bytes = s.bytes();
  constexpr std::size_t kReadSizes[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377};
  Decoder d(DecoderOptions());
  std::size_t at = 0;
  std::size_t reads = 0;
  std::size_t packets = 0;
  while (at < bytes.size()) {
    const std::span<std::uint8_t> room = d.PrepareRead();
    ASSERT_GE(room.size(), 1U);
    const std::size_t n =
        std::min({room.size(), kReadSizes[reads++ % std::size(kReadSizes)], bytes.size() - at});
    std::memcpy(room.data(), bytes.data() + at, n);
    d.CommitRead(n);
    at += n;
    EXPECT_LE(d.capacity(), CapacityBound(s));
    for (;;) {
      auto next = d.Next();
      ASSERT_EQ(Outcome(next), "ok") << "after " << at << " bytes";
      if (!next->has_value()) {
        break;
      }
      ASSERT_LT(packets, s.packets().size());
      EXPECT_TRUE(SamePacket(**next, s.packets()[packets])) << "packet " << packets;
      ++packets;
    }
  }
  EXPECT_EQ(packets, s.packets().size());
}

TEST_P(DecoderStreamTest, VersionComesFromTheFirstConnect) {
  const SampleStream s(Version());
  Decoder d(DecoderOptions());
  EXPECT_FALSE(d.version().has_value());
  const FeedOutcome r = FeedChunks(d, {BinaryView(s.encoded(0))}, {s.packets()[0]});
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, 1U);
  ASSERT_TRUE(d.version().has_value());
  EXPECT_EQ(VersionName(*d.version()), VersionName(Version()));
}

INSTANTIATE_TEST_SUITE_P(
    DecoderVersionsAndChunks, DecoderStreamTest,
    testing::Combine(testing::Values(PV::kV31, PV::kV311, PV::kV5),
                     testing::Values(std::size_t{4096}, std::size_t{7})),
    [](const testing::TestParamInfo<std::tuple<ProtocolVersion, std::size_t>>& param_info) {
      return VersionName(std::get<0>(param_info.param)) + "_Chunk" +
             std::to_string(std::get<1>(param_info.param));
    });

TEST(DecoderTest, ViewsFromConsecutiveNextCallsStayValidTogether) {
  // decoder.h: "several packets from consecutive Next() calls stay valid together".
  for (const PV version : kAllVersions) {
    SCOPED_TRACE(VersionName(version));
    const SampleStream s(version);
    Decoder d;
    ASSERT_LT(s.bytes().size(), Decoder::Options{}.read_chunk);
    ASSERT_EQ(d.Feed(BinaryView(s.bytes())), s.bytes().size());
    std::vector<Packet> got;
    for (;;) {
      auto next = d.Next();
      ASSERT_EQ(Outcome(next), "ok");
      if (!next->has_value()) {
        break;
      }
      got.push_back(**next);
    }
    ASSERT_EQ(got.size(), s.packets().size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(SamePacket(got[i], s.packets()[i])) << "packet " << i;
    }
  }
}

TEST(DecoderTest, EmptyDecoderYieldsNothing) {
  Decoder d;
  EXPECT_EQ(d.Feed(BinaryView()), 0U);
  const auto next = d.Next();
  ASSERT_EQ(Outcome(next), "ok");
  EXPECT_FALSE(next->has_value());
  EXPECT_EQ(d.buffered(), 0U);
}

// ---------------------------------------------------------------------------------------------
// The protocol version.

// Feeds a CONNECT for `version`, then `bytes`, and returns what Next() makes of `bytes`: "ok"
// after checking the packet against `expected`, or the error's description.
std::string AfterConnect(ProtocolVersion version, const std::vector<std::uint8_t>& bytes,
                         const std::optional<Packet>& expected = std::nullopt) {
  Decoder d;
  const Connect connect = MakeConnect(version, "c");
  const FeedOutcome r = FeedChunks(d, {BinaryView(EncodeOk(connect, version))}, {connect});
  EXPECT_EQ(r.packets, 1U);
  EXPECT_EQ(d.Feed(BinaryView(bytes)), bytes.size());
  auto next = d.Next();
  if (!next.has_value()) {
    return std::string(Describe(next.error()));
  }
  if (!next->has_value()) {
    return "no packet";
  }
  if (expected) {
    EXPECT_TRUE(SamePacket(**next, *expected))
        << VersionName(version) << ": " << Hex(BinaryView(bytes));
  } else {
    ADD_FAILURE() << "decoded " << Summary(**next);
  }
  return "ok";
}

std::string Error(DecodeError e) { return std::string(Describe(e)); }

TEST(DecoderTest, VersionOfTheFirstConnectGovernsLaterPackets) {
  // A 5.0 PUBACK with a reason code (5.0 §3.4.2.1) is 2 bytes too long for 3.1.x.
  const std::vector<std::uint8_t> puback = Bytes("40 03 00 0a 10");
  EXPECT_EQ(AfterConnect(PV::kV5, puback, Puback{10, RC::kNoMatchingSubscribers, {}}), "ok");
  EXPECT_EQ(AfterConnect(PV::kV311, puback), Error(DecodeError::kTrailingBytes));
  EXPECT_EQ(AfterConnect(PV::kV31, puback), Error(DecodeError::kTrailingBytes));

  // In 5.0 the 00 after the topic is the Property Length; in 3.1.x it starts the payload.
  const std::vector<std::uint8_t> publish = Bytes("30 06 00 01 61 00 68 69");
  EXPECT_EQ(AfterConnect(PV::kV5, publish, MakePublish("a", QoS::k0, 0, "hi")), "ok");
  EXPECT_EQ(AfterConnect(PV::kV311, publish, MakePublish("a", QoS::k0, 0, "\x00hi"sv)), "ok");
  EXPECT_EQ(AfterConnect(PV::kV31, publish, MakePublish("a", QoS::k0, 0, "\x00hi"sv)), "ok");

  // A DISCONNECT with a reason code exists only in 5.0 (§3.14.2.1).
  const std::vector<std::uint8_t> disconnect = Bytes("e0 01 04");
  EXPECT_EQ(AfterConnect(PV::kV5, disconnect, Disconnect{RC::kDisconnectWithWill, {}}), "ok");
  EXPECT_EQ(AfterConnect(PV::kV311, disconnect), Error(DecodeError::kTrailingBytes));

  // CONNACK's first byte: unused in 3.1, Session Present plus reserved bits in 3.1.1
  // ([MQTT-3.2.2-1]).
  const std::vector<std::uint8_t> connack = Bytes("20 02 02 00");
  EXPECT_EQ(AfterConnect(PV::kV31, connack, Connack{}), "ok");
  EXPECT_EQ(AfterConnect(PV::kV311, connack), Error(DecodeError::kReservedConnackFlags));

  // A 3.1.1 UNSUBACK has no Property Length, which 5.0 requires (§3.11.2.1).
  const std::vector<std::uint8_t> unsuback = Bytes("b0 02 00 0a");
  EXPECT_EQ(AfterConnect(PV::kV311, unsuback, Unsuback{10, {}, {}}), "ok");
  EXPECT_EQ(AfterConnect(PV::kV5, unsuback), Error(DecodeError::kTruncated));
}

TEST(DecoderTest, LaterConnectDoesNotChangeTheVersion) {
  // A second CONNECT is a protocol violation ([MQTT-3.1.0-2]) for the broker to act on; the
  // decoder hands it over and keeps reading in the version of the first.
  const Connect first = MakeConnect(PV::kV5, "first");
  const Connect second = MakeConnect(PV::kV311, "second");
  Decoder d;
  const FeedOutcome r = FeedChunks(
      d,
      {BinaryView(
          Cat({EncodeOk(first, PV::kV5), EncodeOk(second, PV::kV311), Bytes("40 03 00 0a 10")}))},
      {first, second, Puback{10, RC::kNoMatchingSubscribers, {}}});
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, 3U);
  ASSERT_TRUE(d.version().has_value());
  EXPECT_EQ(VersionName(*d.version()), "V5");
}

TEST(DecoderTest, VersionGivenAtConstructionAllowsAnyFirstPacket) {
  Decoder d(Decoder::Options{}, PV::kV5);
  const FeedOutcome r = FeedChunks(d, {BinaryView(Bytes("40 03 00 0a 10 c0 00"))},
                                   {Puback{10, RC::kNoMatchingSubscribers, {}}, Pingreq{}});
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, 2U);
  ASSERT_TRUE(d.version().has_value());
  EXPECT_EQ(VersionName(*d.version()), "V5");
}

TEST(DecoderTest, FirstPacketOtherThanConnectIsRefused) {
  // 3.1.1 [MQTT-3.1.0-1], 5.0 [MQTT-3.1.0-1]: CONNECT comes first. Every other packet type.
  const SampleStream s(PV::kV5);
  for (std::size_t i = 1; i < s.packets().size(); ++i) {
    SCOPED_TRACE(PacketTypeName(TypeOf(s.packets()[i])));
    Decoder d;
    const FeedOutcome r = FeedChunks(d, {BinaryView(s.encoded(i))}, {});
    EXPECT_EQ(r.packets, 0U);
    EXPECT_EQ(ErrorText(r.error), Error(DecodeError::kProtocolVersionUnknown));
    EXPECT_FALSE(d.version().has_value());
  }
}

TEST(DecoderTest, AuthAfterA311ConnectIsAReservedPacketType) {
  // 3.1.1 §2.2.1 Table 2.1: packet type 15 is reserved. The fixed header alone tells.
  for (const PV version : {PV::kV31, PV::kV311}) {
    SCOPED_TRACE(VersionName(version));
    EXPECT_EQ(AfterConnect(version, Bytes("f0 00")), Error(DecodeError::kReservedPacketType));
    EXPECT_EQ(AfterConnect(version, Bytes("f0 05")), Error(DecodeError::kReservedPacketType));
  }
  EXPECT_EQ(AfterConnect(PV::kV5, Bytes("f0 00"), Auth{}), "ok");
}

TEST(DecoderTest, MalformedConnectStillSetsTheVersionItAsksFor) {
  // PeekConnectVersion lets the broker answer in the client's version (a 5.0 CONNACK with a
  // reason code, or a 3.1.1 return code).
  for (const PV version : kAllVersions) {
    SCOPED_TRACE(VersionName(version));
    std::vector<std::uint8_t> bytes = EncodeOk(MakeConnect(version, "c"), version);
    // Connect Flags follow the fixed header (2), the name's length (2), the name and the level.
    const std::size_t flags_at = 2 + 2 + (version == PV::kV31 ? 6 : 4) + 1;
    ASSERT_EQ(bytes[flags_at], 0x02) << Hex(BinaryView(bytes));  // clean start only
    bytes[flags_at] = 0x03;  // [MQTT-3.1.2-3]: the reserved bit set
    Decoder d;
    const FeedOutcome r = FeedChunks(d, {BinaryView(bytes)}, {});
    EXPECT_EQ(ErrorText(r.error), Error(DecodeError::kReservedConnectFlag));
    ASSERT_TRUE(d.version().has_value());
    EXPECT_EQ(VersionName(*d.version()), VersionName(version));

    // Wrong fixed header flags: the body still names the version.
    bytes[flags_at] = 0x02;
    bytes[0] = 0x11;
    Decoder flags;
    EXPECT_EQ(ErrorText(FeedChunks(flags, {BinaryView(bytes)}, {}).error),
              Error(DecodeError::kInvalidFixedHeaderFlags));
    ASSERT_TRUE(flags.version().has_value());
    EXPECT_EQ(VersionName(*flags.version()), VersionName(version));
  }

  // 5.0 only: a property the specification does not define (0x7f in place of 0x11).
  PropertiesBuilder props;
  props.Add(PId::kSessionExpiryInterval, 1U);
  Connect c = MakeConnect(PV::kV5, "c");
  c.properties = props.view();
  std::vector<std::uint8_t> bytes = EncodeOk(c, PV::kV5);
  // Fixed header (2), "MQTT" (6), level (1), flags (1), keep alive (2), then the properties.
  ASSERT_EQ(Hex(BinaryView(bytes.data() + 12, 6)), "05 11 00 00 00 01");
  bytes[13] = 0x7f;
  Decoder d;
  EXPECT_EQ(ErrorText(FeedChunks(d, {BinaryView(bytes)}, {}).error),
            Error(DecodeError::kUnknownProperty));
  ASSERT_TRUE(d.version().has_value());
  EXPECT_EQ(VersionName(*d.version()), "V5");
}

TEST(DecoderTest, ConnectWithUnknownProtocolLeavesTheVersionUnknown) {
  const std::vector<std::uint8_t> bad_name =
      Cat({Bytes("10 0d 00 04"), codec_test::Text("MQTX"), Bytes("04 02 00 3c 00 01 63")});
  Decoder d;
  EXPECT_EQ(ErrorText(FeedChunks(d, {BinaryView(bad_name)}, {}).error),
            Error(DecodeError::kInvalidProtocolName));
  EXPECT_FALSE(d.version().has_value());

  const std::vector<std::uint8_t> bad_level =
      Cat({Bytes("10 0d 00 04"), codec_test::Text("MQTT"), Bytes("06 02 00 3c 00 01 63")});
  Decoder level;
  EXPECT_EQ(ErrorText(FeedChunks(level, {BinaryView(bad_level)}, {}).error),
            Error(DecodeError::kUnsupportedProtocolLevel));
  EXPECT_FALSE(level.version().has_value());
}

// ---------------------------------------------------------------------------------------------
// Size limits: refused from the fixed header, before any body is buffered.

struct HeaderCase {
  std::string_view remaining_length;  // as hex, after the first byte
  std::uint32_t value;
};

constexpr HeaderCase kHeaderCases[] = {
    {"7f", 127},
    {"ff 7f", 16'383},
    {"ff ff 7f", 2'097'151},
    {"ff ff ff 7f", 268'435'455},
};

class DecoderMaxSizeTest : public testing::TestWithParam<HeaderCase> {};

TEST_P(DecoderMaxSizeTest, PacketLargerThanTheMaximumIsRefusedFromItsFixedHeader) {
  const HeaderCase& c = GetParam();
  const std::vector<std::uint8_t> header = Cat({Bytes("30"), Bytes(c.remaining_length)});
  const auto packet_size = static_cast<std::uint32_t>(header.size() + c.value);
  constexpr std::size_t kChunk = 64;

  // One byte over the maximum: refused once the header is complete; nothing before that is a
  // packet.
  Decoder d(Decoder::Options{.max_packet_size = packet_size - 1, .read_chunk = kChunk}, PV::kV311);
  for (std::size_t i = 0; i < header.size(); ++i) {
    ASSERT_EQ(d.Feed(BinaryView(header.data() + i, 1)), 1U);
    const auto next = d.Next();
    if (i + 1 < header.size()) {
      if (next.has_value()) {
        EXPECT_FALSE(next->has_value()) << "a packet from " << i + 1 << " header bytes";
      } else {
        EXPECT_EQ(Outcome(next), Error(DecodeError::kPacketTooLarge));
      }
    } else {
      EXPECT_EQ(Outcome(next), Error(DecodeError::kPacketTooLarge));
    }
  }
  EXPECT_LE(d.capacity(), kChunk + kSlack) << "the body must not be allocated";
  EXPECT_EQ(d.buffered(), header.size());

  // Exactly the maximum: the header is accepted and the decoder waits for the body.
  Decoder fits(Decoder::Options{.max_packet_size = packet_size, .read_chunk = kChunk}, PV::kV311);
  ASSERT_EQ(fits.Feed(BinaryView(header)), header.size());
  const auto waiting = fits.Next();
  ASSERT_EQ(Outcome(waiting), "ok");
  EXPECT_FALSE(waiting->has_value());

  // The first CONNECT is checked the same way, before its version is known.
  const std::vector<std::uint8_t> connect = Cat({Bytes("10"), Bytes(c.remaining_length)});
  Decoder first(Decoder::Options{.max_packet_size = 100, .read_chunk = kChunk});
  ASSERT_EQ(first.Feed(BinaryView(connect)), connect.size());
  EXPECT_EQ(Outcome(first.Next()), Error(DecodeError::kPacketTooLarge));
  EXPECT_LE(first.capacity(), kChunk + kSlack);
  EXPECT_FALSE(first.version().has_value());
}

INSTANTIATE_TEST_SUITE_P(DecoderHeaderSizes, DecoderMaxSizeTest, testing::ValuesIn(kHeaderCases),
                         [](const testing::TestParamInfo<HeaderCase>& param_info) {
                           return "RemainingLength" + std::to_string(param_info.param.value);
                         });

TEST(DecoderTest, PacketOfExactlyTheMaximumSizeIsAccepted) {
  // 5.0 §3.1.2.11.4: the maximum counts the whole packet, fixed header included.
  const std::string payload(95, 'x');  // 2 (header) + 3 (topic "t") + 95 = 100 bytes
  const Publish fits = MakePublish("t", QoS::k0, 0, payload);
  const std::string longer = payload + "y";
  const Publish over = MakePublish("t", QoS::k0, 0, longer);
  Decoder d(Decoder::Options{.max_packet_size = 100}, PV::kV311);
  const FeedOutcome r = FeedChunks(d, {BinaryView(EncodeOk(fits, PV::kV311))}, {fits});
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, 1U);
  const FeedOutcome r2 = FeedChunks(d, {BinaryView(EncodeOk(over, PV::kV311))}, {});
  EXPECT_EQ(ErrorText(r2.error), Error(DecodeError::kPacketTooLarge));

  // set_max_packet_size applies to the next packet.
  Decoder later(Decoder::Options{}, PV::kV311);
  later.set_max_packet_size(99);
  EXPECT_EQ(ErrorText(FeedChunks(later, {BinaryView(EncodeOk(fits, PV::kV311))}, {}).error),
            Error(DecodeError::kPacketTooLarge));
}

TEST(DecoderTest, CapacityStaysNearTheLargestPacketDuringAByteAtATimeFeed) {
  std::string payload(100 * 1024, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>(i * 13 + i / 256);
  }
  const Connect connect = MakeConnect(PV::kV5, "big");
  const Publish publish = MakePublish("big/data", QoS::k1, 9, payload);
  const std::vector<std::uint8_t> publish_bytes = EncodeOk(publish, PV::kV5);
  const std::vector<std::uint8_t> bytes =
      Cat({EncodeOk(connect, PV::kV5), publish_bytes, Bytes("c0 00")});
  Decoder d;
  const FeedOutcome r = FeedChunks(d, OneByteChunks(bytes), {connect, publish, Pingreq{}});
  EXPECT_EQ(ErrorText(r.error), "none");
  EXPECT_EQ(r.packets, 3U);
  EXPECT_LE(r.max_capacity, std::max(Decoder::Options{}.read_chunk, publish_bytes.size()) + kSlack);
  EXPECT_GE(r.max_capacity, publish_bytes.size());
  d.Release();
  EXPECT_EQ(d.capacity(), 0U);
}

// ---------------------------------------------------------------------------------------------
// Errors stick; Release.

TEST(DecoderTest, AfterAnErrorTheDecoderKeepsReturningIt) {
  // Before the version is known.
  Decoder d;
  ASSERT_EQ(d.Feed(BinaryView(Bytes("c0 00"))), 2U);
  EXPECT_EQ(Outcome(d.Next()), Error(DecodeError::kProtocolVersionUnknown));
  EXPECT_EQ(Outcome(d.Next()), Error(DecodeError::kProtocolVersionUnknown));
  const std::vector<std::uint8_t> connect = EncodeOk(MakeConnect(PV::kV311, "c"), PV::kV311);
  ASSERT_EQ(d.Feed(BinaryView(connect)), connect.size());
  EXPECT_EQ(Outcome(d.Next()), Error(DecodeError::kProtocolVersionUnknown));
  EXPECT_FALSE(d.version().has_value());

  // In a packet body, with good packets after it.
  Decoder body;
  const FeedOutcome r =
      FeedChunks(body, {BinaryView(Cat({connect, Bytes("40 02 00 00 c0 00 c0 00")}))},
                 {MakeConnect(PV::kV311, "c")});
  EXPECT_EQ(r.packets, 1U);
  EXPECT_EQ(ErrorText(r.error), Error(DecodeError::kZeroPacketId));  // [MQTT-2.3.1-1]
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Outcome(body.Next()), Error(DecodeError::kZeroPacketId));
  }
  ASSERT_TRUE(body.version().has_value());
  EXPECT_EQ(VersionName(*body.version()), "V311");
}

TEST(DecoderTest, BufferGoesToAPoolAndComesBackOnlyWhenNothingIsPending) {
  Decoder d(Decoder::Options{}, PV::kV311);
  const std::vector<std::uint8_t> ping = Bytes("c0 00");
  EXPECT_EQ(FeedChunks(d, {BinaryView(ping)}, {Pingreq{}}).packets, 1U);
  std::vector<std::uint8_t> taken = d.TakeBuffer();
  EXPECT_GT(taken.size(), 0U);
  EXPECT_EQ(d.capacity(), 0U);
  const std::uint8_t* storage = taken.data();
  d.AdoptBuffer(std::move(taken));
  EXPECT_EQ(d.PrepareRead().data(), storage);  // the adopted buffer is used, not a new one
  // Half a packet inside: the buffer stays where it is.
  const Publish publish = MakePublish("a/b", QoS::k1, 5, "payload");
  const std::vector<std::uint8_t> bytes = EncodeOk(publish, PV::kV311);
  ASSERT_EQ(d.Feed(BinaryView(bytes.data(), 3)), 3U);
  ASSERT_EQ(Outcome(d.Next()), "ok");
  EXPECT_TRUE(d.TakeBuffer().empty());
  EXPECT_GT(d.capacity(), 0U);
  EXPECT_EQ(FeedChunks(d, {BinaryView(bytes.data() + 3, bytes.size() - 3)}, {publish}).packets, 1U);
}

TEST(DecoderTest, ReleaseFreesTheBufferOnlyWhenNothingIsPending) {
  Decoder d(Decoder::Options{}, PV::kV311);
  d.Release();
  EXPECT_EQ(d.capacity(), 0U);

  // Everything taken out: freed.
  const std::vector<std::uint8_t> ping = Bytes("c0 00");
  EXPECT_EQ(FeedChunks(d, {BinaryView(ping)}, {Pingreq{}}).packets, 1U);
  EXPECT_GT(d.capacity(), 0U);
  d.Release();
  EXPECT_EQ(d.capacity(), 0U);
  EXPECT_EQ(d.buffered(), 0U);

  // Part of a packet, inside its fixed header and then inside its body: kept.
  const Publish publish = MakePublish("a/b", QoS::k1, 5, "payload");
  const std::vector<std::uint8_t> bytes = EncodeOk(publish, PV::kV311);
  ASSERT_EQ(d.Feed(BinaryView(bytes.data(), 1)), 1U);
  ASSERT_EQ(Outcome(d.Next()), "ok");
  const std::size_t held = d.capacity();
  EXPECT_GT(held, 0U);
  d.Release();
  EXPECT_EQ(d.capacity(), held);
  EXPECT_EQ(d.buffered(), 1U);
  ASSERT_EQ(d.Feed(BinaryView(bytes.data() + 1, 5)), 5U);
  ASSERT_EQ(Outcome(d.Next()), "ok");
  const std::size_t held_body = d.capacity();
  d.Release();
  EXPECT_EQ(d.capacity(), held_body);
  EXPECT_EQ(d.buffered(), 6U);
  const FeedOutcome rest =
      FeedChunks(d, {BinaryView(bytes.data() + 6, bytes.size() - 6)}, {publish});
  EXPECT_EQ(ErrorText(rest.error), "none");
  EXPECT_EQ(rest.packets, 1U);
  d.Release();
  EXPECT_EQ(d.capacity(), 0U);

  // A whole packet not yet taken out: kept, and still there after Release.
  ASSERT_EQ(d.Feed(BinaryView(Bytes("c0 00 d0 00"))), 4U);
  auto first = d.Next();
  ASSERT_EQ(Outcome(first), "ok");
  ASSERT_TRUE(first->has_value());
  EXPECT_TRUE(SamePacket(**first, Pingreq{}));
  d.Release();
  EXPECT_EQ(d.buffered(), 2U);
  EXPECT_GT(d.capacity(), 0U);
  auto second = d.Next();
  ASSERT_EQ(Outcome(second), "ok");
  ASSERT_TRUE(second->has_value());
  EXPECT_TRUE(SamePacket(**second, Pingresp{}));
  d.Release();
  EXPECT_EQ(d.capacity(), 0U);
}

}  // namespace
}  // namespace tinymq::mqtt
