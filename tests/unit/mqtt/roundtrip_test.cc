#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/unit/mqtt/codec_test_util.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"

// Round trips of every packet type through the codec: Encode -> ParseFixedHeader -> DecodePacket
// -> operator==, and encoding the decoded packet again gives the same bytes. A round trip cannot
// see a bug that encoder and decoder share, so hand-encoded byte vectors pin the wire format too.
//
// Clause references: "3.1.1" is MQTT 3.1.1 (OASIS, 2014), "5.0" is MQTT 5.0 (OASIS, 2019), "3.1" is
// IBM's MQTT V3.1 specification (protocol name "MQIsdp").

namespace tinymq::mqtt {
namespace {

using codec_test::Bytes;
using codec_test::Cat;
using codec_test::DecodeWhole;
using codec_test::EncodeOk;
using codec_test::ExpectRoundTrip;
using codec_test::Hex;
using codec_test::Outcome;
using codec_test::SamePacket;
using codec_test::Text;
using codec_test::VersionName;
using std::string_view_literals::operator""sv;

using PV = ProtocolVersion;
using RC = ReasonCode;
using PId = PropertyId;
using Ctx = PropertyContext;

ReasonCodeList Codes(std::span<const ReasonCode> codes) { return ReasonCodeList(codes); }

constexpr ReasonCode kGrantedQos1Only[] = {RC::kGrantedQos1};
constexpr ReasonCode kSuccessOnly[] = {RC::kSuccess};

// Encode gives exactly `wire`, and `wire` decodes to `packet`.
void ExpectWire(const Packet& packet, ProtocolVersion version,
                const std::vector<std::uint8_t>& wire) {
  std::vector<std::uint8_t> out;
  EXPECT_EQ(Outcome(Encode(packet, version, out)), "ok");
  EXPECT_EQ(Hex(BinaryView(out)), Hex(BinaryView(wire)));
  const auto decoded = DecodeWhole(BinaryView(wire), version);
  ASSERT_EQ(Outcome(decoded), "ok");
  EXPECT_TRUE(SamePacket(*decoded, packet));
}

// `wire` decodes to `packet` (for encodings the encoder itself does not choose).
void ExpectDecodes(const std::vector<std::uint8_t>& wire, ProtocolVersion version,
                   const Packet& packet) {
  const auto decoded = DecodeWhole(BinaryView(wire), version);
  ASSERT_EQ(Outcome(decoded), "ok") << Hex(BinaryView(wire));
  EXPECT_TRUE(SamePacket(*decoded, packet)) << Hex(BinaryView(wire));
}

// Encode fails with `error` and leaves the output as it was.
void ExpectEncodeError(const Packet& packet, ProtocolVersion version, EncodeError error) {
  std::vector<std::uint8_t> out = Bytes("aa bb");
  EXPECT_EQ(Outcome(Encode(packet, version, out)), Outcome(error))
      << PacketTypeName(TypeOf(packet)) << " for " << VersionName(version);
  EXPECT_EQ(Hex(BinaryView(out)), "aa bb") << "a failed Encode must leave its output unchanged";
}

Connack MakeConnack(ReasonCode reason, bool session_present = false, Properties properties = {}) {
  return Connack{.session_present = session_present, .reason = reason, .properties = properties};
}

Publish MakePublish(std::string_view topic, QoS qos, std::uint16_t packet_id,
                    std::string_view payload) {
  Publish p;
  p.qos = qos;
  p.topic = topic;
  p.packet_id = packet_id;
  p.payload = BinaryView::Of(payload);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Every packet type, without properties, in every version it exists in.

class RoundTripByVersionTest : public testing::TestWithParam<ProtocolVersion> {};

TEST_P(RoundTripByVersionTest, ConnectWithClientIdOnly) {
  Connect c;
  c.version = GetParam();
  c.clean_start = true;
  c.keep_alive = 60;
  c.client_id = "client-1";
  ExpectRoundTrip(c, GetParam());
}

TEST_P(RoundTripByVersionTest, ConnectWithEmptyClientIdAndExtremeKeepAlives) {
  for (const std::uint16_t keep_alive : {std::uint16_t{0}, std::uint16_t{0xFFFF}}) {
    Connect c;
    c.version = GetParam();
    c.keep_alive = keep_alive;
    c.client_id = "";
    ExpectRoundTrip(c, GetParam());
  }
}

TEST_P(RoundTripByVersionTest, ConnectWithEveryWillQosUserNameAndPassword) {
  static constexpr std::string_view kPassword = "\x00\xffpw\x80"sv;
  for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
    for (const bool retain : {false, true}) {
      SCOPED_TRACE(testing::Message()
                   << "will QoS " << static_cast<int>(qos) << " retain " << retain);
      Connect c;
      c.version = GetParam();
      c.clean_start = false;
      c.keep_alive = 0x1234;
      c.client_id = "dev/42";
      Will will;
      will.qos = qos;
      will.retain = retain;
      will.topic = "devices/42/status";
      will.payload = BinaryView::Of("offline\x00\x01"sv);
      c.will = will;
      c.user_name = "user";
      c.password = BinaryView::Of(kPassword);
      ExpectRoundTrip(c, GetParam());
    }
  }
}

TEST_P(RoundTripByVersionTest, ConnackWithEveryReturnCodeOf311) {
  // 3.1.1 §3.2.2.3: the six return codes every version can carry (as their 5.0 reason codes).
  for (const ReasonCode reason :
       {RC::kSuccess, RC::kUnsupportedProtocolVersion, RC::kClientIdentifierNotValid,
        RC::kServerUnavailable, RC::kBadUserNameOrPassword, RC::kNotAuthorized}) {
    SCOPED_TRACE(ReasonCodeName(reason));
    Connack c;
    c.reason = reason;
    ExpectRoundTrip(c, GetParam());
  }
  if (GetParam() != PV::kV31) {  // 3.1 has no Session Present flag
    Connack c;
    c.session_present = true;
    ExpectRoundTrip(c, GetParam());
  }
}

TEST_P(RoundTripByVersionTest, PublishWithEveryQosAndFlag) {
  static constexpr std::string_view kBinary = "\x00\x01\xfe\xff\x00"sv;
  for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
    for (const bool dup : {false, true}) {
      if (dup && qos == QoS::k0) {
        continue;  // [MQTT-3.3.1-2]
      }
      for (const bool retain : {false, true}) {
        for (const std::uint16_t id :
             {std::uint16_t{1}, std::uint16_t{0x1234}, std::uint16_t{0xFFFF}}) {
          SCOPED_TRACE(testing::Message() << "QoS " << static_cast<int>(qos) << " dup " << dup
                                          << " retain " << retain << " id " << id);
          const auto packet_id = static_cast<std::uint16_t>(qos == QoS::k0 ? 0 : id);
          Publish p = MakePublish("sport/tennis/player1", qos, packet_id, kBinary);
          p.dup = dup;
          p.retain = retain;
          ExpectRoundTrip(p, GetParam());
          p.payload = {};  // an empty payload is allowed (§3.3.3)
          ExpectRoundTrip(p, GetParam());
          if (qos == QoS::k0) {
            break;  // the packet identifier is not sent
          }
        }
      }
    }
  }
}

TEST_P(RoundTripByVersionTest, PublishHeaderPlusPayloadIsThePublish) {
  // EncodePublishHeader writes all but the payload; the payload appended gives Encode's bytes.
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{1}, std::size_t{127}, std::size_t{128}, std::size_t{20000}}) {
    SCOPED_TRACE(size);
    const std::string payload(size, 'p');
    Publish p = MakePublish("a/b", QoS::k1, 9, payload);
    std::vector<std::uint8_t> header;
    ASSERT_TRUE(EncodePublishHeader(p, GetParam(), header).has_value());
    EXPECT_EQ(header.size() + size, EncodeOk(p, GetParam()).size());
    header.insert(header.end(), payload.begin(), payload.end());
    EXPECT_EQ(header, EncodeOk(p, GetParam()));
  }
}

TEST_P(RoundTripByVersionTest, PublishWithMultibyteUtf8Topic) {
  // 3.1.1 §1.5.3 / 5.0 §1.5.4: U+00E9, U+20AC and U+1F600 take 2, 3 and 4 bytes.
  ExpectRoundTrip(MakePublish("caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80", QoS::k1, 7, "x"),
                  GetParam());
}

TEST_P(RoundTripByVersionTest, AcksOfEveryTypeAndHandEncodedBytes) {
  // Without a reason code and properties the four acks are the same bytes in every version
  // (5.0 §3.4.2.1: Remaining Length 2 means Success and no properties).
  for (const std::uint16_t id : {std::uint16_t{1}, std::uint16_t{0x1234}, std::uint16_t{0xFFFF}}) {
    ExpectRoundTrip(Puback{id, RC::kSuccess, {}}, GetParam());
    ExpectRoundTrip(Pubrec{id, RC::kSuccess, {}}, GetParam());
    ExpectRoundTrip(Pubrel{id, RC::kSuccess, {}}, GetParam());
    ExpectRoundTrip(Pubcomp{id, RC::kSuccess, {}}, GetParam());
  }
  ExpectWire(Puback{0x1234, RC::kSuccess, {}}, GetParam(), Bytes("40 02 12 34"));
  ExpectWire(Pubrec{0x1234, RC::kSuccess, {}}, GetParam(), Bytes("50 02 12 34"));
  // §2.1.3: PUBREL has fixed header flags 0010.
  ExpectWire(Pubrel{0x1234, RC::kSuccess, {}}, GetParam(), Bytes("62 02 12 34"));
  ExpectWire(Pubcomp{0x1234, RC::kSuccess, {}}, GetParam(), Bytes("70 02 12 34"));
}

TEST_P(RoundTripByVersionTest, SubscribeWithSeveralFilters) {
  SubscriptionListBuilder list;
  list.Add("sport/tennis/+", {.max_qos = QoS::k0})
      .Add("#", {.max_qos = QoS::k1})
      .Add("$SYS/broker/#", {.max_qos = QoS::k2});
  ExpectRoundTrip(Subscribe{.packet_id = 0xFFFF, .properties = {}, .subscriptions = list.view()},
                  GetParam());
  SubscriptionListBuilder one;
  one.Add("a", {.max_qos = QoS::k1});
  ExpectRoundTrip(Subscribe{.packet_id = 1, .properties = {}, .subscriptions = one.view()},
                  GetParam());
}

TEST_P(RoundTripByVersionTest, SubackWithGrantedAndFailureCodes) {
  // 0x80 is Failure in 3.1.1 and Unspecified error in 5.0: the same byte either way.
  static constexpr ReasonCode kCodes[] = {RC::kGrantedQos2, RC::kSuccess, RC::kGrantedQos1,
                                          RC::kUnspecifiedError};
  ExpectRoundTrip(Suback{.packet_id = 9, .properties = {}, .reason_codes = Codes(kCodes)},
                  GetParam());
}

TEST_P(RoundTripByVersionTest, UnsubscribeWithSeveralFilters) {
  TopicFilterListBuilder filters;
  filters.Add("sport/tennis/+").Add("#").Add("a/b");
  ExpectRoundTrip(Unsubscribe{.packet_id = 0x8000, .properties = {}, .filters = filters.view()},
                  GetParam());
}

TEST_P(RoundTripByVersionTest, Unsuback) {
  static constexpr ReasonCode kCodes[] = {RC::kSuccess, RC::kNoSubscriptionExisted};
  Unsuback u{.packet_id = 0x0102, .properties = {}, .reason_codes = {}};
  if (GetParam() == PV::kV5) {
    u.reason_codes = Codes(kCodes);  // 5.0 §3.11.3: one per topic filter
    ExpectWire(u, GetParam(), Bytes("b0 05 01 02 00 00 11"));
  } else {
    ExpectWire(u, GetParam(), Bytes("b0 02 01 02"));  // 3.1.1 §3.11: no payload
  }
  ExpectRoundTrip(u, GetParam());
}

TEST_P(RoundTripByVersionTest, PingreqAndPingresp) {
  ExpectRoundTrip(Pingreq{}, GetParam());
  ExpectRoundTrip(Pingresp{}, GetParam());
  ExpectWire(Pingreq{}, GetParam(), Bytes("c0 00"));
  ExpectWire(Pingresp{}, GetParam(), Bytes("d0 00"));
}

TEST_P(RoundTripByVersionTest, NormalDisconnect) {
  // 5.0 §3.14.2.1: Remaining Length 0 means Normal disconnection without properties.
  ExpectRoundTrip(Disconnect{}, GetParam());
  ExpectWire(Disconnect{}, GetParam(), Bytes("e0 00"));
}

INSTANTIATE_TEST_SUITE_P(RoundTripEveryVersion, RoundTripByVersionTest,
                         testing::Values(PV::kV31, PV::kV311, PV::kV5),
                         [](const testing::TestParamInfo<ProtocolVersion>& param_info) {
                           return VersionName(param_info.param);
                         });

TEST(RoundTripTest, AuthV5) {
  PropertiesBuilder method;
  method.Add(PId::kAuthenticationMethod, "SCRAM-SHA-1");
  PropertiesBuilder method_and_data;
  method_and_data.Add(PId::kAuthenticationMethod, "SCRAM-SHA-1")
      .AddBinary(PId::kAuthenticationData, BinaryView::Of("\x01\x00\xff"sv));
  ExpectRoundTrip(Auth{}, PV::kV5);
  ExpectRoundTrip(Auth{RC::kContinueAuthentication, method_and_data.view()}, PV::kV5);
  ExpectRoundTrip(Auth{RC::kReAuthenticate, method.view()}, PV::kV5);
  ExpectRoundTrip(Auth{RC::kSuccess, method.view()}, PV::kV5);
}

// ---------------------------------------------------------------------------------------------
// Hand-encoded bytes: the encoder must produce exactly these, and they must decode to the packet.

TEST(RoundTripTest, ConnectV311FromMosquittoPubMatchesHandEncodedBytes) {
  // What `mosquitto_pub -V mqttv311 -k 60 -i mosqpub|4321-box` sends: protocol name "MQTT",
  // level 4, flags 0x02 (clean session), keep alive 60.
  Connect c;
  c.version = PV::kV311;
  c.clean_start = true;
  c.keep_alive = 60;
  c.client_id = "mosqpub|4321-box";
  ExpectWire(c, PV::kV311,
             Cat({Bytes("10 1c 00 04"), Text("MQTT"), Bytes("04 02 00 3c 00 10"),
                  Text("mosqpub|4321-box")}));
}

TEST(RoundTripTest, ConnectV31MatchesHandEncodedBytes) {
  // 3.1 §3.1: protocol name "MQIsdp", version 3.
  Connect c;
  c.version = PV::kV31;
  c.clean_start = true;
  c.keep_alive = 60;
  c.client_id = "x";
  ExpectWire(c, PV::kV31,
             Cat({Bytes("10 0f 00 06"), Text("MQIsdp"), Bytes("03 02 00 3c 00 01"), Text("x")}));
}

Connect SpecExampleConnect(ProtocolVersion version) {
  // The non-normative variable header example of 3.1.1 §3.1.2.10 and 5.0 §3.1.2.12: flags 0xCE
  // (user name, password, will QoS 1, will flag, clean start), keep alive 10. The payload is ours.
  Connect c;
  c.version = version;
  c.clean_start = true;
  c.keep_alive = 10;
  c.client_id = "c1";
  c.will = Will{.qos = QoS::k1,
                .retain = false,
                .properties = {},
                .topic = "w/t",
                .payload = BinaryView::Of("bye")};
  c.user_name = "u";
  c.password = BinaryView::Of("pw");
  return c;
}

TEST(RoundTripTest, ConnectV311SpecExampleMatchesHandEncodedBytes) {
  ExpectWire(SpecExampleConnect(PV::kV311), PV::kV311,
             Cat({Bytes("10 1f 00 04"), Text("MQTT"), Bytes("04 ce 00 0a 00 02"), Text("c1"),
                  Bytes("00 03"), Text("w/t"), Bytes("00 03"), Text("bye"), Bytes("00 01"),
                  Text("u"), Bytes("00 02"), Text("pw")}));
}

TEST(RoundTripTest, ConnectV5SpecExampleMatchesHandEncodedBytes) {
  // The 5.0 example adds Properties: length 5, Session Expiry Interval (17) = 10. The will has an
  // empty property list (one 00 byte) before its topic (5.0 §3.1.3.2).
  PropertiesBuilder props;
  props.Add(PId::kSessionExpiryInterval, 10U);
  Connect c = SpecExampleConnect(PV::kV5);
  c.properties = props.view();
  ExpectWire(c, PV::kV5,
             Cat({Bytes("10 26 00 04"), Text("MQTT"), Bytes("05 ce 00 0a 05 11 00 00 00 0a 00 02"),
                  Text("c1"), Bytes("00 00 03"), Text("w/t"), Bytes("00 03"), Text("bye"),
                  Bytes("00 01"), Text("u"), Bytes("00 02"), Text("pw")}));
}

TEST(RoundTripTest, ConnackMatchesHandEncodedBytes) {
  ExpectWire(MakeConnack(RC::kSuccess, true), PV::kV311, Bytes("20 02 01 00"));
  ExpectWire(MakeConnack(RC::kNotAuthorized), PV::kV311, Bytes("20 02 00 05"));
  // 5.0: Topic Alias Maximum 10, Assigned Client Identifier "id".
  PropertiesBuilder props;
  props.Add(PId::kTopicAliasMaximum, 10U).Add(PId::kAssignedClientIdentifier, "id");
  ExpectWire(MakeConnack(RC::kSuccess, true, props.view()), PV::kV5,
             Bytes("20 0b 01 00 08 22 00 0a 12 00 02 69 64"));
  ExpectWire(MakeConnack(RC::kBanned), PV::kV5, Bytes("20 03 00 8a 00"));
}

TEST(RoundTripTest, PublishSpecExampleMatchesHandEncodedBytes) {
  // The non-normative PUBLISH variable header example of 3.1.1 §3.3.2 and 5.0 §3.3.2: topic
  // "a/b", packet identifier 10 (5.0 adds Property Length 0). QoS 1, payload 01 02 is ours.
  const Publish p = MakePublish("a/b", QoS::k1, 10, "\x01\x02");
  ExpectWire(p, PV::kV311, Bytes("32 09 00 03 61 2f 62 00 0a 01 02"));
  ExpectWire(p, PV::kV31, Bytes("32 09 00 03 61 2f 62 00 0a 01 02"));
  ExpectWire(p, PV::kV5, Bytes("32 0a 00 03 61 2f 62 00 0a 00 01 02"));
}

TEST(RoundTripTest, SubscribeSpecExampleMatchesHandEncodedBytes) {
  // The non-normative examples of 3.1.1 §3.8.2 (packet identifier 10) and §3.8.3 ("a/b" QoS 1,
  // "c/d" QoS 2).
  SubscriptionListBuilder list;
  list.Add("a/b", {.max_qos = QoS::k1}).Add("c/d", {.max_qos = QoS::k2});
  const Subscribe s{.packet_id = 10, .properties = {}, .subscriptions = list.view()};
  ExpectWire(s, PV::kV311, Bytes("82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02"));
  ExpectWire(s, PV::kV5, Bytes("82 0f 00 0a 00 00 03 61 2f 62 01 00 03 63 2f 64 02"));
}

TEST(RoundTripTest, SubscribeV5WithOptionsAndIdentifierMatchesHandEncodedBytes) {
  // 5.0 §3.8.3.1: QoS 1 | No Local 0x04 | Retain As Published 0x08 | Retain Handling 2 << 4 = 2d.
  PropertiesBuilder props;
  props.Add(PId::kSubscriptionIdentifier, 1U);
  SubscriptionListBuilder list;
  list.Add(
          "a/b",
          {.max_qos = QoS::k1, .no_local = true, .retain_as_published = true, .retain_handling = 2})
      .Add("c/d", {.max_qos = QoS::k2});
  ExpectWire(Subscribe{.packet_id = 10, .properties = props.view(), .subscriptions = list.view()},
             PV::kV5, Bytes("82 11 00 0a 02 0b 01 00 03 61 2f 62 2d 00 03 63 2f 64 02"));
}

TEST(RoundTripTest, SubackSpecExampleMatchesHandEncodedBytes) {
  // The non-normative payload example of 3.1.1 §3.9.3: Success QoS 0, 1, 2 and Failure.
  static constexpr ReasonCode kCodes[] = {RC::kSuccess, RC::kGrantedQos1, RC::kGrantedQos2,
                                          RC::kUnspecifiedError};
  const Suback s{.packet_id = 10, .properties = {}, .reason_codes = Codes(kCodes)};
  ExpectWire(s, PV::kV311, Bytes("90 06 00 0a 00 01 02 80"));
  ExpectWire(s, PV::kV5, Bytes("90 07 00 0a 00 00 01 02 80"));
}

TEST(RoundTripTest, UnsubscribeSpecExampleMatchesHandEncodedBytes) {
  // The non-normative payload example of 3.1.1 §3.10.3: "a/b", "c/d".
  TopicFilterListBuilder filters;
  filters.Add("a/b").Add("c/d");
  const Unsubscribe u{.packet_id = 10, .properties = {}, .filters = filters.view()};
  ExpectWire(u, PV::kV311, Bytes("a2 0c 00 0a 00 03 61 2f 62 00 03 63 2f 64"));
  ExpectWire(u, PV::kV5, Bytes("a2 0d 00 0a 00 00 03 61 2f 62 00 03 63 2f 64"));
}

TEST(RoundTripTest, DisconnectV5WithReasonAndPropertiesMatchesHandEncodedBytes) {
  PropertiesBuilder props;
  props.Add(PId::kSessionExpiryInterval, 0U);
  ExpectWire(Disconnect{RC::kDisconnectWithWill, props.view()}, PV::kV5,
             Bytes("e0 07 04 05 11 00 00 00 00"));
}

TEST(RoundTripTest, AuthV5MatchesHandEncodedBytes) {
  // 5.0 §3.15: Continue authentication (0x18), Authentication Method "SCRAM-SHA-1" and
  // Authentication Data 01 02 03.
  PropertiesBuilder props;
  props.Add(PId::kAuthenticationMethod, "SCRAM-SHA-1")
      .AddBinary(PId::kAuthenticationData, BinaryView::Of("\x01\x02\x03"));
  ExpectWire(Auth{RC::kContinueAuthentication, props.view()}, PV::kV5,
             Cat({Bytes("f0 16 18 14 15 00 0b"), Text("SCRAM-SHA-1"), Bytes("16 00 03 01 02 03")}));
  ExpectWire(Auth{}, PV::kV5, Bytes("f0 00"));  // §3.15.2.1: Success without properties
}

// ---------------------------------------------------------------------------------------------
// Remaining Length at each boundary of its 1-4 byte encoding (3.1.1 §2.2.3 Table 2.4, 5.0 §1.5.5
// Table 1-1).

struct LengthBoundary {
  std::uint32_t remaining_length;
  std::string_view encoded;  // the variable byte integer, as the specification's table gives it
};

constexpr LengthBoundary kLengthBoundaries[] = {
    {0, "00"},
    {127, "7f"},
    {128, "80 01"},
    {16'383, "ff 7f"},
    {16'384, "80 80 01"},
    {2'097'151, "ff ff 7f"},
    {2'097'152, "80 80 80 01"},
};

class RoundTripRemainingLengthTest
    : public testing::TestWithParam<std::tuple<LengthBoundary, ProtocolVersion>> {};

TEST_P(RoundTripRemainingLengthTest, EncodesAndFramesAtTheBoundary) {
  const auto [boundary, version] = GetParam();
  // Remaining Length 0 is a PINGREQ; otherwise a QoS 0 PUBLISH to "t" whose payload fills the rest.
  std::vector<std::uint8_t> payload;
  Packet packet = Pingreq{};
  std::string first_byte = "c0";
  if (boundary.remaining_length > 0) {
    const std::size_t overhead = 3 + (version == PV::kV5 ? 1 : 0);  // topic "t", Property Length
    payload.resize(boundary.remaining_length - overhead);
    for (std::size_t i = 0; i < payload.size(); ++i) {
      payload[i] = static_cast<std::uint8_t>(i * 31 + 7);
    }
    Publish p = MakePublish("t", QoS::k0, 0, "");
    p.payload = BinaryView(payload);
    packet = p;
    first_byte = "30";
  }
  const std::vector<std::uint8_t> bytes = ExpectRoundTrip(packet, version);
  const std::vector<std::uint8_t> header = Cat({Bytes(first_byte), Bytes(boundary.encoded)});
  ASSERT_EQ(bytes.size(), header.size() + boundary.remaining_length);
  EXPECT_EQ(Hex(BinaryView(bytes.data(), header.size())), Hex(BinaryView(header)));

  // ParseFixedHeader needs every header byte, and no more.
  for (std::size_t n = 0; n < header.size(); ++n) {
    const auto partial = ParseFixedHeader(BinaryView(bytes.data(), n), kMaxRemainingLength + 5);
    ASSERT_EQ(Outcome(partial), "ok") << n << " bytes";
    EXPECT_FALSE(partial->has_value()) << n << " bytes";
  }
  const auto parsed =
      ParseFixedHeader(BinaryView(bytes.data(), header.size()), kMaxRemainingLength + 5);
  ASSERT_EQ(Outcome(parsed), "ok");
  ASSERT_TRUE(parsed->has_value());
  EXPECT_EQ((*parsed)->remaining_length, boundary.remaining_length);
  EXPECT_EQ(static_cast<std::size_t>((*parsed)->size), header.size());
}

INSTANTIATE_TEST_SUITE_P(
    RoundTripBoundaries, RoundTripRemainingLengthTest,
    testing::Combine(testing::ValuesIn(kLengthBoundaries),
                     testing::Values(PV::kV31, PV::kV311, PV::kV5)),
    [](const testing::TestParamInfo<std::tuple<LengthBoundary, ProtocolVersion>>& param_info) {
      return "RemainingLength" + std::to_string(std::get<0>(param_info.param).remaining_length) +
             "_" + VersionName(std::get<1>(param_info.param));
    });

TEST(RoundTripTest, LargestRemainingLengthParses) {
  // 268,435,455 = ff ff ff 7f, the largest four-byte value (too big to encode in a unit test).
  const std::vector<std::uint8_t> header = Bytes("30 ff ff ff 7f");
  const auto parsed = ParseFixedHeader(BinaryView(header), kMaxRemainingLength + 5);
  ASSERT_EQ(Outcome(parsed), "ok");
  ASSERT_TRUE(parsed->has_value());
  EXPECT_EQ((*parsed)->remaining_length, 268'435'455U);
  EXPECT_EQ(static_cast<int>((*parsed)->size), 5);
  EXPECT_EQ((*parsed)->packet_size(), std::size_t{268'435'460});
}

// ---------------------------------------------------------------------------------------------
// 5.0 short forms: a reason code and property list left out when they say nothing.

TEST(RoundTripTest, AcksV5SuccessWithoutPropertiesHaveRemainingLength2) {
  // 5.0 §3.4.2.1 (and §3.5.2.1, §3.6.2.1, §3.7.2.1).
  ExpectWire(Puback{10, RC::kSuccess, {}}, PV::kV5, Bytes("40 02 00 0a"));
  ExpectWire(Pubrec{10, RC::kSuccess, {}}, PV::kV5, Bytes("50 02 00 0a"));
  ExpectWire(Pubrel{10, RC::kSuccess, {}}, PV::kV5, Bytes("62 02 00 0a"));
  ExpectWire(Pubcomp{10, RC::kSuccess, {}}, PV::kV5, Bytes("70 02 00 0a"));
}

TEST(RoundTripTest, AcksV5ReasonCodeWithoutPropertiesHaveRemainingLength3) {
  // 5.0 §3.4.2.2.1: "If the Remaining Length is less than 4 there is no Property Length".
  ExpectWire(Puback{10, RC::kNoMatchingSubscribers, {}}, PV::kV5, Bytes("40 03 00 0a 10"));
  ExpectWire(Pubrec{10, RC::kQuotaExceeded, {}}, PV::kV5, Bytes("50 03 00 0a 97"));
  ExpectWire(Pubrel{10, RC::kPacketIdentifierNotFound, {}}, PV::kV5, Bytes("62 03 00 0a 92"));
  ExpectWire(Pubcomp{10, RC::kPacketIdentifierNotFound, {}}, PV::kV5, Bytes("70 03 00 0a 92"));
}

TEST(RoundTripTest, AcksV5WithPropertiesCarryTheReasonCodeEvenOnSuccess) {
  PropertiesBuilder props;
  props.Add(PId::kReasonString, "x");
  ExpectWire(Puback{10, RC::kSuccess, props.view()}, PV::kV5,
             Bytes("40 08 00 0a 00 04 1f 00 01 78"));
  ExpectWire(Pubcomp{10, RC::kSuccess, props.view()}, PV::kV5,
             Bytes("70 08 00 0a 00 04 1f 00 01 78"));
}

TEST(RoundTripTest, AcksV5LongFormsDecodeToTheShortFormPacket) {
  // A sender may always write the Property Length; the packet is the same.
  ExpectDecodes(Bytes("40 04 00 0a 10 00"), PV::kV5, Puback{10, RC::kNoMatchingSubscribers, {}});
  ExpectDecodes(Bytes("40 04 00 0a 00 00"), PV::kV5, Puback{10, RC::kSuccess, {}});
  ExpectDecodes(Bytes("40 03 00 0a 00"), PV::kV5, Puback{10, RC::kSuccess, {}});
  ExpectDecodes(Bytes("62 04 00 0a 92 00"), PV::kV5, Pubrel{10, RC::kPacketIdentifierNotFound, {}});
  // And the encoder writes the short form for them.
  EXPECT_EQ(Hex(BinaryView(EncodeOk(Puback{10, RC::kSuccess, {}}, PV::kV5))), "40 02 00 0a");
}

TEST(RoundTripTest, DisconnectV5WithRemainingLength0And1) {
  // 5.0 §3.14.2.1: Remaining Length 0 is Normal disconnection; §3.14.2.2.1: below 2 there is no
  // Property Length.
  ExpectDecodes(Bytes("e0 00"), PV::kV5, Disconnect{});
  ExpectDecodes(Bytes("e0 01 04"), PV::kV5, Disconnect{RC::kDisconnectWithWill, {}});
  ExpectDecodes(Bytes("e0 01 8e"), PV::kV5, Disconnect{RC::kSessionTakenOver, {}});
  ExpectDecodes(Bytes("e0 02 8e 00"), PV::kV5, Disconnect{RC::kSessionTakenOver, {}});
  EXPECT_EQ(Hex(BinaryView(EncodeOk(Disconnect{}, PV::kV5))), "e0 00");
  // A reason code without properties may be sent with or without the Property Length.
  const std::string with_will =
      Hex(BinaryView(EncodeOk(Disconnect{RC::kDisconnectWithWill, {}}, PV::kV5)));
  EXPECT_EQ(with_will, "e0 01 04");  // the shortest form, as for the acks
  ExpectRoundTrip(Disconnect{RC::kDisconnectWithWill, {}}, PV::kV5);
  ExpectRoundTrip(Disconnect{RC::kServerShuttingDown, {}}, PV::kV5);
}

// ---------------------------------------------------------------------------------------------
// Properties: each one a packet may carry (5.0 §2.2.2.2 Table 2-4), alone and all together.

enum class Kind { kNumber, kText, kBinary, kPair };

// One value of a property and its encoding, worked out by hand from 5.0 §2.2.2.2 and §1.5.
struct PropertySample {
  PropertyId id;
  Kind kind;
  std::uint32_t number = 0;
  std::string_view text;    // UTF-8 String, or a User Property's name
  std::string_view value;   // a User Property's value
  std::string_view binary;  // Binary Data
  std::string_view wire;    // identifier, then value, in hex
};

PropertySample Number(PropertyId id, std::uint32_t number, std::string_view wire) {
  return {id, Kind::kNumber, number, {}, {}, {}, wire};
}
PropertySample String(PropertyId id, std::string_view text, std::string_view wire) {
  return {id, Kind::kText, 0, text, {}, {}, wire};
}
PropertySample Binary(PropertyId id, std::string_view binary, std::string_view wire) {
  return {id, Kind::kBinary, 0, {}, {}, binary, wire};
}
PropertySample Pair(std::string_view name, std::string_view value, std::string_view wire) {
  return {PId::kUserProperty, Kind::kPair, 0, name, value, {}, wire};
}

// One sample of every property 5.0 defines, in identifier order.
const std::vector<PropertySample>& AllSamples() {
  static const std::vector<PropertySample> kSamples = {
      Number(PId::kPayloadFormatIndicator, 1, "01 01"),
      Number(PId::kMessageExpiryInterval, 0x01020304, "02 01 02 03 04"),
      String(PId::kContentType, "json", "03 00 04 6a 73 6f 6e"),
      String(PId::kResponseTopic, "r/t", "08 00 03 72 2f 74"),
      Binary(PId::kCorrelationData, "\x00\xff\x10"sv, "09 00 03 00 ff 10"),
      Number(PId::kSubscriptionIdentifier, 268'435'455, "0b ff ff ff 7f"),
      Number(PId::kSessionExpiryInterval, 0x0a0b0c0d, "11 0a 0b 0c 0d"),
      String(PId::kAssignedClientIdentifier, "id", "12 00 02 69 64"),
      Number(PId::kServerKeepAlive, 0x0102, "13 01 02"),
      String(PId::kAuthenticationMethod, "scram", "15 00 05 73 63 72 61 6d"),
      Binary(PId::kAuthenticationData, "\x01\x02\x00"sv, "16 00 03 01 02 00"),
      Number(PId::kRequestProblemInformation, 0, "17 00"),
      Number(PId::kWillDelayInterval, 3600, "18 00 00 0e 10"),
      Number(PId::kRequestResponseInformation, 1, "19 01"),
      String(PId::kResponseInformation, "ri", "1a 00 02 72 69"),
      String(PId::kServerReference, "srv", "1c 00 03 73 72 76"),
      String(PId::kReasonString, "why", "1f 00 03 77 68 79"),
      Number(PId::kReceiveMaximum, 0x0102, "21 01 02"),
      Number(PId::kTopicAliasMaximum, 0x0a0b, "22 0a 0b"),
      Number(PId::kTopicAlias, 0x0102, "23 01 02"),
      Number(PId::kMaximumQos, 1, "24 01"),
      Number(PId::kRetainAvailable, 0, "25 00"),
      Pair("k", "v", "26 00 01 6b 00 01 76"),
      Number(PId::kMaximumPacketSize, 0x00010203, "27 00 01 02 03"),
      Number(PId::kWildcardSubscriptionAvailable, 0, "28 00"),
      Number(PId::kSubscriptionIdentifierAvailable, 1, "29 01"),
      Number(PId::kSharedSubscriptionAvailable, 0, "2a 00"),
  };
  return kSamples;
}

const PropertySample& Sample(PropertyId id) {
  for (const PropertySample& s : AllSamples()) {
    if (s.id == id) {
      return s;
    }
  }
  ADD_FAILURE() << "no sample for property " << static_cast<int>(id);
  return AllSamples().front();
}

Property ToProperty(const PropertySample& s) {
  Property p;
  p.id = s.id;
  p.number = s.number;
  p.text = s.text;
  p.value = s.value;
  if (s.kind == Kind::kBinary) {
    p.binary = BinaryView::Of(s.binary);
  }
  return p;
}

void AddSample(PropertiesBuilder& b, PropertyId id) {
  const PropertySample& s = Sample(id);
  switch (s.kind) {
    case Kind::kNumber: b.Add(id, s.number); break;
    case Kind::kText: b.Add(id, s.text); break;
    case Kind::kBinary: b.AddBinary(id, BinaryView::Of(s.binary)); break;
    case Kind::kPair: b.AddUserProperty(s.text, s.value); break;
  }
}

// 5.0 §2.2.2.2 Table 2-4, written out again here rather than taken from properties.cc.
std::vector<PropertyId> AllowedIn(PropertyContext context) {
  switch (context) {
    case Ctx::kConnect:
      return {PId::kSessionExpiryInterval,      PId::kAuthenticationMethod,
              PId::kAuthenticationData,         PId::kRequestProblemInformation,
              PId::kRequestResponseInformation, PId::kReceiveMaximum,
              PId::kTopicAliasMaximum,          PId::kUserProperty,
              PId::kMaximumPacketSize};
    case Ctx::kWill:
      return {PId::kPayloadFormatIndicator,
              PId::kMessageExpiryInterval,
              PId::kContentType,
              PId::kResponseTopic,
              PId::kCorrelationData,
              PId::kWillDelayInterval,
              PId::kUserProperty};
    case Ctx::kConnack:
      return {PId::kSessionExpiryInterval,
              PId::kAssignedClientIdentifier,
              PId::kServerKeepAlive,
              PId::kAuthenticationMethod,
              PId::kAuthenticationData,
              PId::kResponseInformation,
              PId::kServerReference,
              PId::kReasonString,
              PId::kReceiveMaximum,
              PId::kTopicAliasMaximum,
              PId::kMaximumQos,
              PId::kRetainAvailable,
              PId::kUserProperty,
              PId::kMaximumPacketSize,
              PId::kWildcardSubscriptionAvailable,
              PId::kSubscriptionIdentifierAvailable,
              PId::kSharedSubscriptionAvailable};
    case Ctx::kPublish:
      return {PId::kPayloadFormatIndicator,
              PId::kMessageExpiryInterval,
              PId::kContentType,
              PId::kResponseTopic,
              PId::kCorrelationData,
              PId::kSubscriptionIdentifier,
              PId::kTopicAlias,
              PId::kUserProperty};
    case Ctx::kPuback:
    case Ctx::kPubrec:
    case Ctx::kPubrel:
    case Ctx::kPubcomp:
    case Ctx::kSuback:
    case Ctx::kUnsuback: return {PId::kReasonString, PId::kUserProperty};
    case Ctx::kSubscribe: return {PId::kSubscriptionIdentifier, PId::kUserProperty};
    case Ctx::kUnsubscribe: return {PId::kUserProperty};
    case Ctx::kDisconnect:
      return {PId::kSessionExpiryInterval, PId::kServerReference, PId::kReasonString,
              PId::kUserProperty};
    case Ctx::kAuth:
      return {PId::kAuthenticationMethod, PId::kAuthenticationData, PId::kReasonString,
              PId::kUserProperty};
  }
  return {};
}

// Properties that must come along with `id` in `context` for the packet to be one the
// specification allows: Authentication Data needs an Authentication Method (5.0 §3.1.2.11.10,
// §3.2.2.3.18), and AUTH always carries its method (§3.15.2.2.2).
std::vector<PropertyId> Companions(PropertyContext context, PropertyId id) {
  if (id == PId::kAuthenticationMethod) {
    return {};
  }
  if (context == Ctx::kAuth || id == PId::kAuthenticationData) {
    return {PId::kAuthenticationMethod};
  }
  return {};
}

std::string ContextName(PropertyContext context) {
  switch (context) {
    case Ctx::kConnect: return "Connect";
    case Ctx::kWill: return "Will";
    case Ctx::kConnack: return "Connack";
    case Ctx::kPublish: return "Publish";
    case Ctx::kPuback: return "Puback";
    case Ctx::kPubrec: return "Pubrec";
    case Ctx::kPubrel: return "Pubrel";
    case Ctx::kPubcomp: return "Pubcomp";
    case Ctx::kSubscribe: return "Subscribe";
    case Ctx::kSuback: return "Suback";
    case Ctx::kUnsubscribe: return "Unsubscribe";
    case Ctx::kUnsuback: return "Unsuback";
    case Ctx::kDisconnect: return "Disconnect";
    case Ctx::kAuth: return "Auth";
  }
  return "Unknown";
}

// A 5.0 packet of the kind `context` names, with everything but its properties fixed.
class PropertyHost {
 public:
  PropertyHost() {
    subscriptions_.Add("a/b", {.max_qos = QoS::k1});
    filters_.Add("a/b");
  }
  PropertyHost(const PropertyHost&) = delete;
  PropertyHost& operator=(const PropertyHost&) = delete;

  Packet With(PropertyContext context, Properties properties) const {
    switch (context) {
      case Ctx::kConnect:
      case Ctx::kWill: {
        Connect c;
        c.version = PV::kV5;
        c.client_id = "c";
        if (context == Ctx::kConnect) {
          c.properties = properties;
        } else {
          c.will = Will{.qos = QoS::k1,
                        .retain = false,
                        .properties = properties,
                        .topic = "w/t",
                        .payload = BinaryView::Of("bye")};
        }
        return c;
      }
      case Ctx::kConnack: return MakeConnack(RC::kSuccess, false, properties);
      case Ctx::kPublish: {
        Publish p = MakePublish("a/b", QoS::k1, 10, "hi");
        p.properties = properties;
        return p;
      }
      case Ctx::kPuback: return Puback{10, RC::kSuccess, properties};
      case Ctx::kPubrec: return Pubrec{10, RC::kSuccess, properties};
      case Ctx::kPubrel: return Pubrel{10, RC::kSuccess, properties};
      case Ctx::kPubcomp: return Pubcomp{10, RC::kSuccess, properties};
      case Ctx::kSubscribe: return Subscribe{10, properties, subscriptions_.view()};
      case Ctx::kSuback: return Suback{10, properties, Codes(kGrantedQos1Only)};
      case Ctx::kUnsubscribe: return Unsubscribe{10, properties, filters_.view()};
      case Ctx::kUnsuback: return Unsuback{10, properties, Codes(kSuccessOnly)};
      case Ctx::kDisconnect: return Disconnect{RC::kSuccess, properties};
      case Ctx::kAuth: return Auth{RC::kContinueAuthentication, properties};
    }
    return Pingreq{};
  }

 private:
  SubscriptionListBuilder subscriptions_;
  TopicFilterListBuilder filters_;
};

Properties PropertiesOf(const Packet& packet, PropertyContext context) {
  if (context == Ctx::kWill) {
    const auto& will = std::get<Connect>(packet).will;
    return will ? will->properties : Properties();
  }
  return std::visit(
      [](const auto& p) -> Properties {
        if constexpr (requires { p.properties; }) {
          return p.properties;
        } else {
          return Properties();
        }
      },
      packet);
}

std::string JoinWire(const std::vector<PropertyId>& ids) {
  std::string out;
  for (const PropertyId id : ids) {
    if (!out.empty()) {
      out += ' ';
    }
    out += Sample(id).wire;
  }
  return out;
}

class RoundTripPropertiesTest : public testing::TestWithParam<PropertyContext> {};

TEST_P(RoundTripPropertiesTest, EachAllowedPropertyAloneV5) {
  const PropertyContext context = GetParam();
  const PropertyHost host;
  for (const PropertyId id : AllowedIn(context)) {
    SCOPED_TRACE(PropertyName(id));
    std::vector<PropertyId> ids = Companions(context, id);
    ids.push_back(id);
    PropertiesBuilder b;
    for (const PropertyId each : ids) {
      AddSample(b, each);
    }
    const std::vector<std::uint8_t> bytes = ExpectRoundTrip(host.With(context, b.view()), PV::kV5);
    const auto decoded = DecodeWhole(BinaryView(bytes), PV::kV5);
    ASSERT_EQ(Outcome(decoded), "ok");
    const Properties props = PropertiesOf(*decoded, context);
    // The wire form, worked out by hand, and where it stands: right after its Property Length.
    const std::string wire = JoinWire(ids);
    EXPECT_EQ(Hex(props.bytes()), wire);
    const std::vector<std::uint8_t> wire_bytes = Bytes(wire);
    const std::string section =
        Hex(BinaryView(Cat({{static_cast<std::uint8_t>(wire_bytes.size())}, wire_bytes})));
    EXPECT_NE(Hex(BinaryView(bytes)).find(section), std::string::npos)
        << Hex(BinaryView(bytes)) << "\nshould hold " << section;
    EXPECT_EQ(props.Count(), ids.size());
    const Property expected = ToProperty(Sample(id));
    EXPECT_TRUE(props.Find(id) == expected);
    switch (Sample(id).kind) {
      case Kind::kNumber: EXPECT_EQ(props.Number(id), expected.number); break;
      case Kind::kText: EXPECT_EQ(props.Text(id), expected.text); break;
      case Kind::kBinary:
        EXPECT_EQ(props.Binary(id).value_or(BinaryView()).AsString(), expected.binary.AsString());
        break;
      case Kind::kPair:
        EXPECT_EQ(props.Find(id)->text, "k");
        EXPECT_EQ(props.Find(id)->value, "v");
        break;
    }
  }
}

TEST_P(RoundTripPropertiesTest, AllAllowedPropertiesTogetherKeepTheirOrderV5) {
  const PropertyContext context = GetParam();
  const PropertyHost host;
  // User Properties first, in the middle and last; names repeat, and order must survive (5.0
  // §3.3.2.3.7: a server forwarding a message keeps the order of its User Properties).
  PropertiesBuilder b;
  b.AddUserProperty("z", "first");
  std::size_t count = 1;
  for (const PropertyId id : AllowedIn(context)) {
    if (id == PId::kUserProperty) {
      b.AddUserProperty("a", "second");
    } else {
      AddSample(b, id);
    }
    ++count;
  }
  b.AddUserProperty("z", "third");
  ++count;

  const std::vector<std::uint8_t> bytes = ExpectRoundTrip(host.With(context, b.view()), PV::kV5);
  const auto decoded = DecodeWhole(BinaryView(bytes), PV::kV5);
  ASSERT_EQ(Outcome(decoded), "ok");
  const Properties props = PropertiesOf(*decoded, context);
  EXPECT_EQ(props.Count(), count);
  const std::vector<Property> sent(b.view().begin(), b.view().end());
  const std::vector<Property> received(props.begin(), props.end());
  EXPECT_TRUE(sent == received);
  std::vector<std::pair<std::string_view, std::string_view>> user;
  for (const Property& p : props) {
    if (p.id == PId::kUserProperty) {
      user.emplace_back(p.text, p.value);
    }
  }
  const std::vector<std::pair<std::string_view, std::string_view>> expected_user = {
      {"z", "first"}, {"a", "second"}, {"z", "third"}};
  EXPECT_EQ(user, expected_user);
}

TEST_P(RoundTripPropertiesTest, EveryOtherPropertyIsRefusedV5) {
  const PropertyContext context = GetParam();
  const PropertyHost host;
  const std::vector<PropertyId> allowed = AllowedIn(context);

  // The decode side: a packet with one User Property (allowed everywhere) is encoded, then that
  // property is swapped for the refused one by hand, with the Property Length and Remaining
  // Length adjusted (both one byte: the packets are short).
  std::vector<PropertyId> base_ids = Companions(context, PId::kUserProperty);
  base_ids.push_back(PId::kUserProperty);
  PropertiesBuilder base;
  for (const PropertyId id : base_ids) {
    AddSample(base, id);
  }
  const std::vector<std::uint8_t> good = EncodeOk(host.With(context, base.view()), PV::kV5);
  const std::vector<std::uint8_t> section = Bytes(JoinWire(base_ids));
  const std::vector<std::uint8_t> user = Bytes(Sample(PId::kUserProperty).wire);
  const auto at = std::search(good.begin(), good.end(), section.begin(), section.end());
  ASSERT_NE(at, good.end()) << Hex(BinaryView(good));
  const auto start = static_cast<std::size_t>(at - good.begin());
  ASSERT_GT(start, 2U);
  ASSERT_EQ(static_cast<std::size_t>(good[start - 1]), section.size());
  ASSERT_LT(good[1], 0x70);

  int refused = 0;
  for (const PropertySample& sample : AllSamples()) {
    if (std::find(allowed.begin(), allowed.end(), sample.id) != allowed.end()) {
      continue;
    }
    SCOPED_TRACE(PropertyName(sample.id));
    ++refused;
    PropertiesBuilder b;
    for (const PropertyId id : Companions(context, sample.id)) {
      AddSample(b, id);
    }
    AddSample(b, sample.id);
    ExpectEncodeError(host.With(context, b.view()), PV::kV5, EncodeError::kPropertyNotAllowed);

    const std::vector<std::uint8_t> other = Bytes(sample.wire);
    std::vector<std::uint8_t> bad = good;
    const std::size_t user_at = start + section.size() - user.size();
    bad.erase(bad.begin() + static_cast<std::ptrdiff_t>(user_at),
              bad.begin() + static_cast<std::ptrdiff_t>(user_at + user.size()));
    bad.insert(bad.begin() + static_cast<std::ptrdiff_t>(user_at), other.begin(), other.end());
    const int delta = static_cast<int>(other.size()) - static_cast<int>(user.size());
    bad[1] = static_cast<std::uint8_t>(bad[1] + delta);
    bad[start - 1] = static_cast<std::uint8_t>(bad[start - 1] + delta);
    EXPECT_EQ(Outcome(DecodeWhole(BinaryView(bad), PV::kV5)),
              Outcome(DecodeError::kPropertyNotAllowed))
        << Hex(BinaryView(bad));
  }
  EXPECT_EQ(static_cast<std::size_t>(refused), AllSamples().size() - allowed.size());
}

INSTANTIATE_TEST_SUITE_P(RoundTripEveryPacket, RoundTripPropertiesTest,
                         testing::Values(Ctx::kConnect, Ctx::kWill, Ctx::kConnack, Ctx::kPublish,
                                         Ctx::kPuback, Ctx::kPubrec, Ctx::kPubrel, Ctx::kPubcomp,
                                         Ctx::kSubscribe, Ctx::kSuback, Ctx::kUnsubscribe,
                                         Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth),
                         [](const testing::TestParamInfo<PropertyContext>& param_info) {
                           return ContextName(param_info.param);
                         });

TEST(RoundTripTest, PublishQos1WithEveryPublishPropertyV5) {
  // Subscription Identifier repeats (5.0 §3.3.2.3.8: one per matching subscription) and User
  // Properties repeat, a name/value pair even twice (§3.3.2.3.7); all keep their order.
  PropertiesBuilder props;
  props.Add(PId::kPayloadFormatIndicator, 1U)
      .Add(PId::kMessageExpiryInterval, 0x01020304U)
      .Add(PId::kContentType, "json")
      .Add(PId::kResponseTopic, "r/t")
      .AddBinary(PId::kCorrelationData, BinaryView::Of("\x00\xff\x10"sv))
      .AddUserProperty("b", "2")
      .Add(PId::kSubscriptionIdentifier, 1U)
      .Add(PId::kSubscriptionIdentifier, 128U)
      .Add(PId::kSubscriptionIdentifier, 268'435'455U)
      .Add(PId::kTopicAlias, 0x0102U)
      .AddUserProperty("a", "1")
      .AddUserProperty("b", "2");
  Publish p = MakePublish("a/b", QoS::k1, 0x1234, "hello");
  p.retain = true;
  p.properties = props.view();

  ExpectWire(p, PV::kV5,
             Bytes("33 49 00 03 61 2f 62 12 34 3c"   // QoS 1 + RETAIN, topic, id, Property Length
                   " 01 01"                          // Payload Format Indicator 1
                   " 02 01 02 03 04"                 // Message Expiry Interval
                   " 03 00 04 6a 73 6f 6e"           // Content Type "json"
                   " 08 00 03 72 2f 74"              // Response Topic "r/t"
                   " 09 00 03 00 ff 10"              // Correlation Data
                   " 26 00 01 62 00 01 32"           // User Property b=2
                   " 0b 01 0b 80 01 0b ff ff ff 7f"  // Subscription Identifier 1, 128, 268435455
                   " 23 01 02"                       // Topic Alias 0x0102
                   " 26 00 01 61 00 01 31"           // User Property a=1
                   " 26 00 01 62 00 01 32"           // User Property b=2
                   " 68 65 6c 6c 6f"));              // payload "hello"
  const std::vector<std::uint8_t> bytes = ExpectRoundTrip(p, PV::kV5);
  const auto decoded = DecodeWhole(BinaryView(bytes), PV::kV5);
  ASSERT_EQ(Outcome(decoded), "ok");
  const Properties& got = std::get<Publish>(*decoded).properties;
  std::vector<std::uint32_t> ids;
  std::vector<std::pair<std::string_view, std::string_view>> user;
  for (const Property& prop : got) {
    if (prop.id == PId::kSubscriptionIdentifier) {
      ids.push_back(prop.number);
    } else if (prop.id == PId::kUserProperty) {
      user.emplace_back(prop.text, prop.value);
    }
  }
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 128, 268'435'455}));
  const std::vector<std::pair<std::string_view, std::string_view>> expected_user = {
      {"b", "2"}, {"a", "1"}, {"b", "2"}};
  EXPECT_EQ(user, expected_user);
  EXPECT_EQ(got.Number(PId::kSubscriptionIdentifier), 1U);  // Find gives the first
  EXPECT_EQ(got.Count(), 12U);
}

TEST(RoundTripTest, PublishWithTopicAliasInsteadOfTopicV5) {
  // 5.0 §3.3.2.1: a zero-length Topic Name with a Topic Alias.
  PropertiesBuilder props;
  props.Add(PId::kTopicAlias, 7U);
  Publish p = MakePublish("", QoS::k0, 0, "");
  p.properties = props.view();
  ExpectWire(p, PV::kV5, Bytes("30 06 00 00 03 23 00 07"));
  ExpectRoundTrip(p, PV::kV5);
}

// ---------------------------------------------------------------------------------------------
// 3.1 and 3.1.1: what 5.0 added is left out, and reason codes are mapped.

class RoundTripDowngradeTest : public testing::TestWithParam<ProtocolVersion> {};

TEST_P(RoundTripDowngradeTest, ConnectDropsPropertiesAndWillProperties) {
  PropertiesBuilder props;
  props.Add(PId::kSessionExpiryInterval, 60U).AddUserProperty("k", "v");
  PropertiesBuilder will_props;
  will_props.Add(PId::kWillDelayInterval, 5U);
  Connect full = SpecExampleConnect(GetParam());
  full.properties = props.view();
  full.will->properties = will_props.view();
  const Connect bare = SpecExampleConnect(GetParam());
  const std::vector<std::uint8_t> bytes = ExpectRoundTrip(full, GetParam(), bare);
  EXPECT_EQ(Hex(BinaryView(bytes)), Hex(BinaryView(EncodeOk(bare, GetParam()))));
}

TEST_P(RoundTripDowngradeTest, ConnackDropsPropertiesAndSessionPresentOnlyIn31) {
  PropertiesBuilder props;
  props.Add(PId::kReceiveMaximum, 10U);
  const Connack full = MakeConnack(RC::kSuccess, true, props.view());
  if (GetParam() == PV::kV31) {
    // 3.1 has no Session Present flag: the first byte is unused and written as 0.
    EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(full, GetParam(), Connack{}))), "20 02 00 00");
  } else {
    EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(full, GetParam(), MakeConnack(RC::kSuccess, true)))),
              "20 02 01 00");
  }
}

TEST_P(RoundTripDowngradeTest, ConnackMapsEveryReasonCodeToAReturnCode) {
  // The fixed points: 3.1.1 §3.2.2.3 Table 3.1 return codes 0-5.
  const std::pair<ReasonCode, std::string_view> fixed[] = {
      {RC::kSuccess, "00"},
      {RC::kUnsupportedProtocolVersion, "01"},
      {RC::kClientIdentifierNotValid, "02"},
      {RC::kServerUnavailable, "03"},
      {RC::kBadUserNameOrPassword, "04"},
      {RC::kNotAuthorized, "05"},
  };
  for (const auto& [reason, code] : fixed) {
    SCOPED_TRACE(ReasonCodeName(reason));
    EXPECT_EQ(Hex(BinaryView(EncodeOk(MakeConnack(reason), GetParam()))),
              "20 02 00 " + std::string(code));
  }
  // Every other 5.0 CONNACK code (5.0 §3.2.2.2) goes through ToConnackReturnCode, or is not sent.
  const ReasonCode all[] = {
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
  };
  for (const ReasonCode reason : all) {
    SCOPED_TRACE(ReasonCodeName(reason));
    const std::optional<ConnackReturnCode> mapped = ToConnackReturnCode(reason);
    const Connack c = MakeConnack(reason);
    if (!mapped) {
      ExpectEncodeError(c, GetParam(), EncodeError::kNotInVersion);
      continue;
    }
    const auto code = static_cast<std::uint8_t>(*mapped);
    ASSERT_LE(code, 5);
    const std::vector<std::uint8_t> wire = {0x20, 0x02, 0x00, code};
    EXPECT_EQ(Hex(BinaryView(EncodeOk(c, GetParam()))), Hex(BinaryView(wire)));
    ExpectDecodes(wire, GetParam(), MakeConnack(*FromConnackReturnCode(code)));
  }
  // 3.1.1 §3.2.2.3 has no code for these: the server closes the connection without a CONNACK.
  ExpectEncodeError(MakeConnack(RC::kMalformedPacket), GetParam(), EncodeError::kNotInVersion);
  ExpectEncodeError(MakeConnack(RC::kProtocolError), GetParam(), EncodeError::kNotInVersion);
}

TEST_P(RoundTripDowngradeTest, PublishDropsProperties) {
  PropertiesBuilder props;
  props.Add(PId::kMessageExpiryInterval, 30U).AddUserProperty("k", "v");
  Publish full = MakePublish("a/b", QoS::k2, 10, "\x01\x02");
  full.properties = props.view();
  const Publish bare = MakePublish("a/b", QoS::k2, 10, "\x01\x02");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(full, GetParam(), bare))),
            "34 09 00 03 61 2f 62 00 0a 01 02");
}

TEST_P(RoundTripDowngradeTest, AcksDropReasonCodeAndProperties) {
  PropertiesBuilder props;
  props.Add(PId::kReasonString, "no").AddUserProperty("k", "v");
  const Properties p = props.view();
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(Puback{10, RC::kNotAuthorized, p}, GetParam(),
                                           Puback{10, RC::kSuccess, {}}))),
            "40 02 00 0a");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(Pubrec{10, RC::kQuotaExceeded, p}, GetParam(),
                                           Pubrec{10, RC::kSuccess, {}}))),
            "50 02 00 0a");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(Pubrel{10, RC::kPacketIdentifierNotFound, p}, GetParam(),
                                           Pubrel{10, RC::kSuccess, {}}))),
            "62 02 00 0a");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(Pubcomp{10, RC::kPacketIdentifierNotFound, p},
                                           GetParam(), Pubcomp{10, RC::kSuccess, {}}))),
            "70 02 00 0a");
}

TEST_P(RoundTripDowngradeTest, SubscribeKeepsOnlyTheQosOfEachOption) {
  PropertiesBuilder props;
  props.Add(PId::kSubscriptionIdentifier, 5U);
  SubscriptionListBuilder full_list;
  full_list
      .Add(
          "a/b",
          {.max_qos = QoS::k2, .no_local = true, .retain_as_published = true, .retain_handling = 2})
      .Add("c/d", {.max_qos = QoS::k0, .retain_handling = 1});
  SubscriptionListBuilder qos_only;
  qos_only.Add("a/b", {.max_qos = QoS::k2}).Add("c/d", {.max_qos = QoS::k0});
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(
                Subscribe{10, props.view(), full_list.view()}, GetParam(),
                Subscribe{.packet_id = 10, .properties = {}, .subscriptions = qos_only.view()}))),
            "82 0e 00 0a 00 03 61 2f 62 02 00 03 63 2f 64 00");
}

TEST_P(RoundTripDowngradeTest, SubackSendsEveryFailureAs0x80) {
  // 3.1.1 §3.9.3: 0x00-0x02 granted, 0x80 Failure; every 5.0 SUBACK failure (§3.9.3) maps to it.
  static constexpr ReasonCode kSent[] = {RC::kSuccess,
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
                                         RC::kWildcardSubscriptionsNotSupported};
  static constexpr ReasonCode kReceived[] = {
      RC::kSuccess,          RC::kGrantedQos1,      RC::kGrantedQos2,      RC::kUnspecifiedError,
      RC::kUnspecifiedError, RC::kUnspecifiedError, RC::kUnspecifiedError, RC::kUnspecifiedError,
      RC::kUnspecifiedError, RC::kUnspecifiedError, RC::kUnspecifiedError, RC::kUnspecifiedError};
  PropertiesBuilder props;
  props.Add(PId::kReasonString, "no");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(
                Suback{10, props.view(), Codes(kSent)}, GetParam(),
                Suback{.packet_id = 10, .properties = {}, .reason_codes = Codes(kReceived)}))),
            "90 0e 00 0a 00 01 02 80 80 80 80 80 80 80 80 80");
}

TEST_P(RoundTripDowngradeTest, UnsubscribeDropsProperties) {
  PropertiesBuilder props;
  props.AddUserProperty("k", "v");
  TopicFilterListBuilder filters;
  filters.Add("a/b");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(
                Unsubscribe{10, props.view(), filters.view()}, GetParam(),
                Unsubscribe{.packet_id = 10, .properties = {}, .filters = filters.view()}))),
            "a2 07 00 0a 00 03 61 2f 62");
}

TEST_P(RoundTripDowngradeTest, UnsubackDropsReasonCodesAndProperties) {
  static constexpr ReasonCode kCodes[] = {RC::kSuccess, RC::kNoSubscriptionExisted};
  PropertiesBuilder props;
  props.Add(PId::kReasonString, "no");
  EXPECT_EQ(Hex(BinaryView(
                ExpectRoundTrip(Unsuback{10, props.view(), Codes(kCodes)}, GetParam(),
                                Unsuback{.packet_id = 10, .properties = {}, .reason_codes = {}}))),
            "b0 02 00 0a");
}

TEST_P(RoundTripDowngradeTest, DisconnectDropsReasonCodeAndProperties) {
  PropertiesBuilder props;
  props.Add(PId::kReasonString, "bye");
  EXPECT_EQ(Hex(BinaryView(ExpectRoundTrip(Disconnect{RC::kServerShuttingDown, props.view()},
                                           GetParam(), Disconnect{}))),
            "e0 00");
}

INSTANTIATE_TEST_SUITE_P(RoundTripVersions31, RoundTripDowngradeTest,
                         testing::Values(PV::kV31, PV::kV311),
                         [](const testing::TestParamInfo<ProtocolVersion>& param_info) {
                           return VersionName(param_info.param);
                         });

// ---------------------------------------------------------------------------------------------
// Packets the protocol cannot carry: Encode refuses them and leaves its output alone.

constexpr ProtocolVersion kAllVersions[] = {PV::kV31, PV::kV311, PV::kV5};

TEST(RoundTripEncodeErrorTest, ZeroPacketId) {
  // 3.1.1 [MQTT-2.3.1-1] / 5.0 [MQTT-2.2.1-3]: non-zero where a packet identifier is needed.
  SubscriptionListBuilder list;
  list.Add("a", {});
  TopicFilterListBuilder filters;
  filters.Add("a");
  for (const ProtocolVersion v : kAllVersions) {
    SCOPED_TRACE(VersionName(v));
    ExpectEncodeError(MakePublish("a", QoS::k1, 0, "x"), v, EncodeError::kZeroPacketId);
    ExpectEncodeError(MakePublish("a", QoS::k2, 0, "x"), v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Puback{0, RC::kSuccess, {}}, v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Pubrec{0, RC::kSuccess, {}}, v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Pubrel{0, RC::kSuccess, {}}, v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Pubcomp{0, RC::kSuccess, {}}, v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Subscribe{.packet_id = 0, .properties = {}, .subscriptions = list.view()}, v,
                      EncodeError::kZeroPacketId);
    ExpectEncodeError(Suback{.packet_id = 0, .properties = {}, .reason_codes = Codes(kSuccessOnly)},
                      v, EncodeError::kZeroPacketId);
    ExpectEncodeError(Unsubscribe{.packet_id = 0, .properties = {}, .filters = filters.view()}, v,
                      EncodeError::kZeroPacketId);
    ExpectEncodeError(
        Unsuback{.packet_id = 0, .properties = {}, .reason_codes = Codes(kSuccessOnly)}, v,
        EncodeError::kZeroPacketId);
  }
  // QoS 0 has no packet identifier, so 0 is what it holds.
  ExpectRoundTrip(MakePublish("a", QoS::k0, 0, "x"), PV::kV311);
}

TEST(RoundTripEncodeErrorTest, EmptyList) {
  // 3.1.1 [MQTT-3.8.3-3], [MQTT-3.10.3-2]; 5.0 §3.9.3, §3.11.3: at least one entry.
  for (const ProtocolVersion v : kAllVersions) {
    SCOPED_TRACE(VersionName(v));
    ExpectEncodeError(Subscribe{.packet_id = 1, .properties = {}, .subscriptions = {}}, v,
                      EncodeError::kEmptyList);
    ExpectEncodeError(Unsubscribe{.packet_id = 1, .properties = {}, .filters = {}}, v,
                      EncodeError::kEmptyList);
    ExpectEncodeError(Suback{.packet_id = 1, .properties = {}, .reason_codes = {}}, v,
                      EncodeError::kEmptyList);
  }
  ExpectEncodeError(Unsuback{.packet_id = 1, .properties = {}, .reason_codes = {}}, PV::kV5,
                    EncodeError::kEmptyList);
  // A 3.1.x UNSUBACK has no list at all.
  EXPECT_EQ(Hex(BinaryView(EncodeOk(Unsuback{.packet_id = 1, .properties = {}, .reason_codes = {}},
                                    PV::kV311))),
            "b0 02 00 01");
}

TEST(RoundTripEncodeErrorTest, FieldTooLong) {
  // 3.1.1 §1.5.3 / 5.0 §1.5.4, §1.5.6: a two-byte length prefix holds at most 65,535.
  const std::string longest(65'535, 't');
  const std::string too_long(65'536, 't');
  for (const ProtocolVersion v : kAllVersions) {
    SCOPED_TRACE(VersionName(v));
    ExpectEncodeError(MakePublish(too_long, QoS::k0, 0, "x"), v, EncodeError::kFieldTooLong);
    const std::vector<std::uint8_t> bytes =
        ExpectRoundTrip(MakePublish(longest, QoS::k1, 3, "x"), v);
    // Remaining Length 65,540 (65,541 in 5.0) takes three bytes; then the length prefix ff ff.
    ASSERT_EQ(bytes.size(), 4 + 2 + 65'535 + 2 + 1 + (v == PV::kV5 ? 1U : 0U));
    EXPECT_EQ(Hex(BinaryView(bytes.data(), 6)),
              v == PV::kV5 ? "32 85 80 04 ff ff" : "32 84 80 04 ff ff");

    Connect c;
    c.version = v;
    c.client_id = too_long;
    ExpectEncodeError(c, v, EncodeError::kFieldTooLong);
    c.client_id = "c";
    c.user_name = too_long;
    ExpectEncodeError(c, v, EncodeError::kFieldTooLong);
    c.user_name = "u";
    c.password = BinaryView::Of(too_long);
    ExpectEncodeError(c, v, EncodeError::kFieldTooLong);
    c.password = BinaryView::Of(longest);
    ExpectRoundTrip(c, v);
    c.will = Will{.qos = QoS::k0,
                  .retain = false,
                  .properties = {},
                  .topic = "w",
                  .payload = BinaryView::Of(too_long)};
    ExpectEncodeError(c, v, EncodeError::kFieldTooLong);
    c.will = Will{.qos = QoS::k0,
                  .retain = false,
                  .properties = {},
                  .topic = too_long,
                  .payload = BinaryView::Of("x")};
    ExpectEncodeError(c, v, EncodeError::kFieldTooLong);
  }
}

TEST(RoundTripEncodeErrorTest, NotInVersion) {
  // AUTH is new in 5.0 (§3.15); 3.1.x has packet type 15 reserved.
  ExpectEncodeError(Auth{}, PV::kV31, EncodeError::kNotInVersion);
  ExpectEncodeError(Auth{}, PV::kV311, EncodeError::kNotInVersion);
  ExpectEncodeError(Auth{RC::kContinueAuthentication, {}}, PV::kV311, EncodeError::kNotInVersion);
  // A CONNACK code 3.1.1 has no return code for (ToConnackReturnCode gives none).
  ASSERT_FALSE(ToConnackReturnCode(RC::kPacketTooLarge).has_value());
  ExpectEncodeError(MakeConnack(RC::kPacketTooLarge), PV::kV311, EncodeError::kNotInVersion);
  ExpectEncodeError(MakeConnack(RC::kTopicNameInvalid), PV::kV31, EncodeError::kNotInVersion);
  // A password without a user name: 3.1.1 [MQTT-3.1.2-22] forbids it, 5.0 §3.1.2.9 allows it.
  Connect c;
  c.client_id = "c";
  c.password = BinaryView::Of("pw");
  for (const ProtocolVersion v : {PV::kV31, PV::kV311}) {
    c.version = v;
    ExpectEncodeError(c, v, EncodeError::kNotInVersion);
  }
  c.version = PV::kV5;
  ExpectRoundTrip(c, PV::kV5);
}

TEST(RoundTripEncodeErrorTest, PropertyNotAllowedOrRepeated) {
  // Only User Property, and Subscription Identifier in PUBLISH, may repeat (5.0 §2.2.2.2).
  PropertiesBuilder two_ids;
  two_ids.Add(PId::kSubscriptionIdentifier, 1U).Add(PId::kSubscriptionIdentifier, 2U);
  SubscriptionListBuilder list;
  list.Add("a", {});
  ExpectEncodeError(Subscribe{1, two_ids.view(), list.view()}, PV::kV5,
                    EncodeError::kPropertyNotAllowed);
  PropertiesBuilder two_aliases;
  two_aliases.Add(PId::kTopicAlias, 1U).Add(PId::kTopicAlias, 2U);
  Publish p = MakePublish("a", QoS::k0, 0, "x");
  p.properties = two_aliases.view();
  ExpectEncodeError(p, PV::kV5, EncodeError::kPropertyNotAllowed);
  // A will property in the CONNECT list, and a CONNECT property in the will list.
  PropertiesBuilder will_delay;
  will_delay.Add(PId::kWillDelayInterval, 1U);
  Connect c;
  c.version = PV::kV5;
  c.client_id = "c";
  c.properties = will_delay.view();
  ExpectEncodeError(c, PV::kV5, EncodeError::kPropertyNotAllowed);
  PropertiesBuilder session_expiry;
  session_expiry.Add(PId::kSessionExpiryInterval, 1U);
  c.properties = {};
  c.will = Will{.qos = QoS::k0,
                .retain = false,
                .properties = session_expiry.view(),
                .topic = "w",
                .payload = {}};
  ExpectEncodeError(c, PV::kV5, EncodeError::kPropertyNotAllowed);
}

TEST(RoundTripEncodeErrorTest, InvalidValue) {
  for (const ProtocolVersion v : kAllVersions) {
    SCOPED_TRACE(VersionName(v));
    Publish dup = MakePublish("a", QoS::k0, 0, "x");
    dup.dup = true;  // [MQTT-3.3.1-2]
    ExpectEncodeError(dup, v, EncodeError::kInvalidValue);
    // 3.1.1 [MQTT-4.7.3-1]; 5.0 §3.3.2.1: an empty topic needs a Topic Alias.
    ExpectEncodeError(MakePublish("", QoS::k0, 0, "x"), v, EncodeError::kInvalidValue);
  }
  // 5.0 §3.4.2.1: Granted QoS 1 is a SUBACK code, not a PUBACK one.
  ExpectEncodeError(Puback{1, RC::kGrantedQos1, {}}, PV::kV5, EncodeError::kInvalidValue);
  ExpectEncodeError(Disconnect{RC::kGrantedQos1, {}}, PV::kV5, EncodeError::kInvalidValue);
}

TEST(RoundTripEncodeErrorTest, EncodeRefusesWhatTheDecoderRefuses) {
  // Whatever Encode accepts must decode back: a packet the peer has to treat as malformed or as a
  // protocol error is "a packet the protocol cannot carry" (encode.h), like the DUP flag on QoS 0
  // and the empty topic that Encode already refuses with kInvalidValue.
  struct Case {
    std::string name;
    ProtocolVersion version;
    Packet packet;
  };
  std::vector<Case> cases;
  // 3.1.1 [MQTT-3.3.2-2], 5.0 [MQTT-3.3.2-2]: no wildcards in a Topic Name.
  for (const ProtocolVersion v : kAllVersions) {
    cases.push_back({"PUBLISH topic a/+", v, MakePublish("a/+", QoS::k0, 0, "x")});
  }
  // The Will Topic is a topic name (3.1.1 §3.1.3.3, 5.0 §3.1.3.3).
  Connect will_wildcard = SpecExampleConnect(PV::kV311);
  will_wildcard.will->topic = "w/#";
  cases.push_back({"CONNECT will topic w/#", PV::kV311, will_wildcard});
  Connect will_empty = SpecExampleConnect(PV::kV311);
  will_empty.will->topic = "";
  cases.push_back({"CONNECT empty will topic", PV::kV311, will_empty});
  // 5.0 property values the decoder refuses.
  PropertiesBuilder alias_zero;
  alias_zero.Add(PId::kTopicAlias, 0U);  // [MQTT-3.3.2-8]
  Publish with_alias_zero = MakePublish("a", QoS::k0, 0, "x");
  with_alias_zero.properties = alias_zero.view();
  cases.push_back({"PUBLISH Topic Alias 0", PV::kV5, with_alias_zero});
  PropertiesBuilder format_two;
  format_two.Add(PId::kPayloadFormatIndicator, 2U);  // §3.3.2.3.2: 0 or 1
  Publish with_format_two = MakePublish("a", QoS::k0, 0, "x");
  with_format_two.properties = format_two.view();
  cases.push_back({"PUBLISH Payload Format Indicator 2", PV::kV5, with_format_two});
  PropertiesBuilder response_wildcard;
  response_wildcard.Add(PId::kResponseTopic, "r/#");  // [MQTT-3.3.2-14]
  Publish with_response_wildcard = MakePublish("a", QoS::k0, 0, "x");
  with_response_wildcard.properties = response_wildcard.view();
  cases.push_back({"PUBLISH Response Topic r/#", PV::kV5, with_response_wildcard});
  PropertiesBuilder receive_zero;
  receive_zero.Add(PId::kReceiveMaximum, 0U);  // §3.1.2.11.3: 0 is a Protocol Error
  Connect with_receive_zero = SpecExampleConnect(PV::kV5);
  with_receive_zero.properties = receive_zero.view();
  cases.push_back({"CONNECT Receive Maximum 0", PV::kV5, with_receive_zero});
  PropertiesBuilder sub_id_zero;
  sub_id_zero.Add(PId::kSubscriptionIdentifier, 0U);  // §3.8.2.1.2: 0 is a Protocol Error
  SubscriptionListBuilder one;
  one.Add("a", {});
  cases.push_back({"SUBSCRIBE Subscription Identifier 0", PV::kV5,
                   Subscribe{1, sub_id_zero.view(), one.view()}});
  // [MQTT-3.8.3-4]: No Local on a Shared Subscription is a Protocol Error.
  SubscriptionListBuilder shared;
  shared.Add("$share/g/a", {QoS::k0, true, false, 0});
  cases.push_back({"SUBSCRIBE No Local on $share/g/a", PV::kV5, Subscribe{1, {}, shared.view()}});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " in " + VersionName(c.version));
    std::vector<std::uint8_t> out;
    const EncodeResult encoded = Encode(c.packet, c.version, out);
    if (encoded.has_value()) {
      ADD_FAILURE() << "Encode accepted it; the decoder says: "
                    << Outcome(DecodeWhole(BinaryView(out), c.version)) << "\n"
                    << Hex(BinaryView(out));
    } else {
      EXPECT_EQ(Outcome(encoded), Outcome(EncodeError::kInvalidValue));
      EXPECT_TRUE(out.empty());
    }
  }
}

}  // namespace
}  // namespace tinymq::mqtt
