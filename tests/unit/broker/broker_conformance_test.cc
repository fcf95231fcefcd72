#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tinymq/broker/broker.h"

// Conformance tests of the broker core: the rows of docs/conformance.md with Status `broker` that
// the BrokerTest cases did not show yet. Each test body starts with the statement ids it shows,
// so that scripts/spec-refs.py finds it. Ids are MQTT 3.1.1 numbers; a 5.0 number is written
// "5.0 [MQTT-...]" (the two specifications reuse numbers for different statements, and
// spec-refs.py cannot tell them apart).
//
// What the broker writes is checked exactly: as bytes where the encoding matters, else through
// Show(), a one-line rendering of each packet.

namespace tinymq::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::hours;
using std::chrono::seconds;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;

using Bytes = std::vector<std::uint8_t>;

std::string Hex(unsigned value) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02x", value);
  return buf;
}

std::string Hex(QoS qos) { return Hex(static_cast<unsigned>(qos)); }

std::string Codes(const mqtt::ReasonCodeList& codes) {
  std::string s = "[";
  for (std::size_t i = 0; i < codes.size(); ++i) {
    s += (i == 0 ? "" : " ") + Hex(static_cast<unsigned>(codes[i]));
  }
  return s + "]";
}

// One packet on one line: "CONNACK sp1 rc00", "PUBLISH a/b 'x' q1 dup0 r0", "PUBACK 7",
// "SUBACK 3 [01 80]", "UNSUBACK 4", "PINGRESP", "DISCONNECT rc82". The packet id of a PUBLISH is
// left out (the broker picks it); tests that need it read it from the packet.
std::string ShowOne(const mqtt::Packet& packet) {
  return std::visit(
      [&packet](const auto& p) -> std::string {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Connack>) {
          return std::string("CONNACK sp") + (p.session_present ? "1" : "0") + " rc" +
                 Hex(static_cast<unsigned>(p.reason));
        } else if constexpr (std::is_same_v<T, mqtt::Publish>) {
          return "PUBLISH " + std::string(p.topic) + " '" + std::string(p.payload.AsString()) +
                 "' q" + std::to_string(static_cast<int>(p.qos)) + " dup" + (p.dup ? "1" : "0") +
                 " r" + (p.retain ? "1" : "0");
        } else if constexpr (std::is_same_v<T, mqtt::Puback> || std::is_same_v<T, mqtt::Pubrec> ||
                             std::is_same_v<T, mqtt::Pubrel> || std::is_same_v<T, mqtt::Pubcomp>) {
          return std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) + " " +
                 std::to_string(p.packet_id) +
                 (p.reason == ReasonCode::kSuccess ? ""
                                                   : " rc" + Hex(static_cast<unsigned>(p.reason)));
        } else if constexpr (std::is_same_v<T, mqtt::Suback>) {
          return "SUBACK " + std::to_string(p.packet_id) + " " + Codes(p.reason_codes);
        } else if constexpr (std::is_same_v<T, mqtt::Unsuback>) {
          return "UNSUBACK " + std::to_string(p.packet_id) +
                 (p.reason_codes.empty() ? "" : " " + Codes(p.reason_codes));
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          return "DISCONNECT rc" + Hex(static_cast<unsigned>(p.reason));
        } else {
          return std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet)));
        }
      },
      packet);
}

std::vector<std::string> ShowEach(const std::vector<mqtt::Packet>& packets) {
  std::vector<std::string> lines;
  for (const mqtt::Packet& p : packets) {
    lines.push_back(ShowOne(p));
  }
  return lines;
}

// The packets joined with " | "; "" for none.
std::string Show(const std::vector<mqtt::Packet>& packets) {
  std::string out;
  for (const mqtt::Packet& p : packets) {
    out += (out.empty() ? "" : " | ") + ShowOne(p);
  }
  return out;
}

// The bytes the broker has written to `c` and not yet handed to the socket.
Bytes Written(const Broker& broker, const TestClient& c) {
  const std::span<const std::uint8_t> out = broker.Output(c.id());
  return Bytes(out.begin(), out.end());
}

Bytes Encoded(const mqtt::Packet& packet, ProtocolVersion version = ProtocolVersion::kV311) {
  Bytes bytes;
  const auto r = mqtt::Encode(packet, version, bytes);
  EXPECT_TRUE(r.has_value()) << mqtt::Describe(r.error());
  return bytes;
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) {
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

mqtt::Connect MakeConnect(ProtocolVersion version, std::string_view client_id, bool clean = true) {
  mqtt::Connect c;
  c.version = version;
  c.client_id = client_id;
  c.clean_start = clean;
  return c;
}

mqtt::Connect WithWill(mqtt::Connect c, std::string_view topic, std::string_view payload, QoS qos,
                       bool retain) {
  c.will = mqtt::Will{qos, retain, {}, topic, mqtt::BinaryView::Of(payload)};
  return c;
}

// Sends `connect` and returns everything the broker wrote in answer (CONNACK and what follows).
std::string ConnectAndShow(TestClient& c, const mqtt::Connect& connect) {
  c.Send(connect);
  return Show(c.Receive());
}

std::string ConnectAndShow(TestClient& c, std::string_view client_id, bool clean) {
  return ConnectAndShow(c, MakeConnect(c.version(), client_id, clean));
}

// Subscribes to one filter; expects the SUBACK granting `qos` and nothing else.
void Subscribe(TestClient& c, std::string_view filter, QoS qos, std::uint16_t packet_id = 1) {
  mqtt::SubscriptionListBuilder b;
  b.Add(filter, {qos, false, false, 0});
  c.Send(mqtt::Subscribe{packet_id, {}, b.view()});
  EXPECT_EQ(Show(c.Receive()), "SUBACK " + std::to_string(packet_id) + " [" + Hex(qos) + "]");
}

void SendUnsubscribe(TestClient& c, std::uint16_t packet_id,
                     std::initializer_list<std::string_view> filters) {
  mqtt::TopicFilterListBuilder b;
  for (std::string_view f : filters) {
    b.Add(f);
  }
  c.Send(mqtt::Unsubscribe{packet_id, {}, b.view()});
}

// Publishes from `pub` and completes the publisher's half of the flow (PUBACK, or PUBREC, PUBREL,
// PUBCOMP), expecting exactly those packets back.
void PublishAndComplete(TestClient& pub, std::string_view topic, std::string_view payload, QoS qos,
                        std::uint16_t packet_id = 1, bool retain = false) {
  pub.Send(MakePublish(topic, payload, qos, qos == QoS::k0 ? 0 : packet_id, retain));
  const std::string id = std::to_string(packet_id);
  switch (qos) {
    case QoS::k0: EXPECT_EQ(Show(pub.Receive()), ""); break;
    case QoS::k1: EXPECT_EQ(Show(pub.Receive()), "PUBACK " + id); break;
    case QoS::k2:
      EXPECT_EQ(Show(pub.Receive()), "PUBREC " + id);
      pub.Send(mqtt::Pubrel{packet_id, ReasonCode::kSuccess, {}});
      EXPECT_EQ(Show(pub.Receive()), "PUBCOMP " + id);
      break;
  }
}

// Reads what `c` is sent until nothing more comes, acknowledging every PUBLISH (QoS 1: PUBACK;
// QoS 2: PUBREC, then PUBCOMP for the PUBREL); returns the payloads in the order they arrived.
// Other packets are a failure unless `others` is given: then they are added to it (see ShowOne).
std::vector<std::string> ReceiveAndAcknowledge(TestClient& c,
                                               std::vector<std::string>* others = nullptr) {
  std::vector<std::string> payloads;
  for (;;) {
    const std::vector<mqtt::Packet> got = c.Receive();
    if (got.empty()) {
      return payloads;  // the broker is synchronous: nothing more is coming
    }
    for (const mqtt::Packet& packet : got) {
      if (const auto* p = std::get_if<mqtt::Publish>(&packet)) {
        payloads.emplace_back(p->payload.AsString());
        if (p->qos == QoS::k1) {
          c.Send(mqtt::Puback{p->packet_id, ReasonCode::kSuccess, {}});
        } else if (p->qos == QoS::k2) {
          c.Send(mqtt::Pubrec{p->packet_id, ReasonCode::kSuccess, {}});
        }
      } else if (const auto* rel = std::get_if<mqtt::Pubrel>(&packet)) {
        c.Send(mqtt::Pubcomp{rel->packet_id, ReasonCode::kSuccess, {}});
      } else if (others != nullptr) {
        others->push_back(ShowOne(packet));
      } else {
        ADD_FAILURE() << "unexpected " << ShowOne(packet);
      }
    }
  }
}

std::uint16_t IdOf(const mqtt::Packet& p) {
  const auto* publish = std::get_if<mqtt::Publish>(&p);
  EXPECT_NE(publish, nullptr) << ShowOne(p);
  return publish == nullptr ? 0 : publish->packet_id;
}

class BrokerConformanceTest : public ::testing::Test {
 protected:
  Limits limits_;
  FakeClock clock_;
  Broker broker_{limits_};
};

// ---------------------------------------------------------------------------------------------
// CONNECT and CONNACK

TEST_F(BrokerConformanceTest, FirstPacketTheBrokerSendsIsConnack) {
  // [MQTT-3.2.0-1]: CONNACK comes first even when a resend, a queued message, a SUBACK, a retained
  // message and a PINGRESP are due in the same turn.
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k1);
    PublishAndComplete(pub, "t", "in flight", QoS::k1, 1);
    EXPECT_EQ(Show(sub.Receive()), "PUBLISH t 'in flight' q1 dup0 r0");
    sub.Drop();
  }
  PublishAndComplete(pub, "t", "queued", QoS::k1, 2);
  PublishAndComplete(pub, "r", "kept", QoS::k0, 0, /*retain=*/true);

  TestClient sub(broker_, clock_);
  PublishAndComplete(pub, "t", "qos 0, not kept for an offline session", QoS::k0);
  EXPECT_TRUE(Written(broker_, sub).empty());  // nothing at all before the CONNECT
  mqtt::SubscriptionListBuilder b;
  b.Add("r", {QoS::k0, false, false, 0});
  sub.SendRaw(Concat({Encoded(MakeConnect(ProtocolVersion::kV311, "sub", /*clean=*/false)),
                      Encoded(mqtt::Subscribe{2, {}, b.view()}), Encoded(mqtt::Pingreq{})}));
  const Bytes written = Written(broker_, sub);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(written[0], 0x20);  // CONNACK
  EXPECT_EQ(Show(sub.Receive()),
            "CONNACK sp1 rc00 | PUBLISH t 'in flight' q1 dup1 r0 | PUBLISH t 'queued' q1 dup0 r0 | "
            "SUBACK 2 [00] | PUBLISH r 'kept' q0 dup0 r1 | PINGRESP");
}

TEST_F(BrokerConformanceTest, RefusedConnectIsFollowedOnlyByTheClose) {
  // [MQTT-3.1.4-5], [MQTT-3.1.2-2], [MQTT-3.1.3-8], 5.0 [MQTT-3.1.2-2]: nothing sent after a
  // refused CONNECT is processed, even when it arrived in the same read. [MQTT-3.2.2-4],
  // [MQTT-3.2.2-5]: the CONNACK has session present 0 and the connection is closed.
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "#", QoS::k0);
  mqtt::SubscriptionListBuilder b;
  b.Add("#", {QoS::k0, false, false, 0});
  const Bytes after = Concat({Encoded(mqtt::Subscribe{1, {}, b.view()}),
                              Encoded(MakePublish("t", "must not be routed", QoS::k0, 0, true)),
                              Encoded(mqtt::Pingreq{})});
  struct Case {
    const char* what;
    Bytes connect;
    Bytes connack;
  };
  const Case cases[] = {
      {"empty client id with clean session 0 (0x02)",
       Encoded(MakeConnect(ProtocolVersion::kV311, "", /*clean=*/false)),
       {0x20, 0x02, 0x00, 0x02}},
      {"protocol level 6 (0x01)",
       {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00},
       {0x20, 0x02, 0x00, 0x01}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TestClient refused(broker_, clock_);
    refused.SendRaw(Concat({c.connect, after}));
    EXPECT_EQ(Written(broker_, refused), c.connack);
    EXPECT_TRUE(refused.Closed());
    refused.Finish();
  }
  EXPECT_EQ(Show(watcher.Receive()), "");
  EXPECT_EQ(broker_.retained_count(), 0U);
  EXPECT_EQ(broker_.subscription_count(), 1U);  // the watcher's
  EXPECT_EQ(broker_.session_count(), 1U);
}

TEST_F(BrokerConformanceTest, ConnectNoReturnCodeFitsIsClosedWithoutConnack) {
  // [MQTT-3.2.2-6], [MQTT-3.1.4-1]: a malformed 3.1.1 CONNECT gets no CONNACK, only the close.
  const Bytes cases[] = {
      // Reserved connect flag set.
      {0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x02, 'i', 'd'},
      // Will QoS 1 without the will flag.
      {0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x0A, 0x00, 0x3C, 0x00, 0x02, 'i', 'd'},
  };
  for (const Bytes& connect : cases) {
    TestClient c(broker_, clock_);
    c.SendRaw(connect);
    EXPECT_TRUE(Written(broker_, c).empty());
    EXPECT_TRUE(c.Closed());
    c.Finish();
  }
  EXPECT_EQ(broker_.counters().protocol_errors, 2U);
  EXPECT_EQ(broker_.session_count(), 0U);
}

TEST_F(BrokerConformanceTest, SecondConnectGetsNoSecondConnack) {
  // 5.0 [MQTT-3.2.0-2]; [MQTT-3.1.0-2]: a second CONNECT closes the connection (5.0: after
  // DISCONNECT 0x82), and no second CONNACK is sent.
  TestClient v311(broker_, clock_);
  v311.Connect("v311");
  v311.Send(MakeConnect(ProtocolVersion::kV311, "v311"));
  EXPECT_TRUE(Written(broker_, v311).empty());
  EXPECT_TRUE(v311.Closed());
  TestClient v5(broker_, clock_, ProtocolVersion::kV5);
  v5.Connect("v5");
  v5.Send(MakeConnect(ProtocolVersion::kV5, "v5"));
  EXPECT_EQ(Written(broker_, v5), (Bytes{0xE0, 0x01, 0x82}));
  EXPECT_TRUE(v5.Closed());
}

TEST_F(BrokerConformanceTest, ClientIdsOfOneTo23AlphanumericsAreAccepted) {
  // [MQTT-3.1.3-5], 5.0 [MQTT-3.1.3-5], [MQTT-3.1.4-4], 5.0 [MQTT-3.1.4-5]: also with the lowest
  // client id limit the configuration allows (23).
  limits_.max_client_id_length = 23;
  const std::string ids[] = {"a",
                             "Z",
                             "7",
                             "0123456789",
                             "abcdefghijklmnopqrstuvw",
                             "ABCDEFGHIJKLMNOPQRSTUVW",
                             "0aZ9bY8cX7dW6eV5fU4gT3h"};
  for (const ProtocolVersion version : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    Broker broker(limits_);
    for (const std::string& id : ids) {
      SCOPED_TRACE(id);
      TestClient c(broker, clock_, version);
      EXPECT_EQ(ConnectAndShow(c, id, /*clean=*/false), "CONNACK sp0 rc00");
      EXPECT_FALSE(c.Closed());
      c.Send(mqtt::Disconnect{});
      c.Finish();
    }
    // 3.1.1 keeps each session under its identifier (5.0 ends them: no Session Expiry Interval).
    EXPECT_EQ(broker.session_count(), version == ProtocolVersion::kV311 ? std::size(ids) : 0U);
  }
}

TEST_F(BrokerConformanceTest, ClientIdTheBrokerRefusesGetsConnack0x02) {
  // [MQTT-3.1.3-9], [MQTT-3.2.2-5]: an identifier over the configured length is refused with 0x02,
  // then closed.
  limits_.max_client_id_length = 23;
  Broker broker(limits_);
  TestClient c(broker, clock_);
  c.Send(MakeConnect(ProtocolVersion::kV311, "abcdefghijklmnopqrstuvwx"));  // 24
  EXPECT_EQ(Written(broker, c), (Bytes{0x20, 0x02, 0x00, 0x02}));
  EXPECT_TRUE(c.Closed());
  EXPECT_EQ(broker.session_count(), 0U);
}

TEST_F(BrokerConformanceTest, EmptyClientIdsGetDistinctIdentifiers) {
  // [MQTT-3.1.3-6], 5.0 [MQTT-3.1.3-6], [MQTT-3.1.3-2]: each gets a unique identifier, so the
  // second does not take over the first (5.0 also names it in the CONNACK).
  for (const ProtocolVersion version : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    SCOPED_TRACE(static_cast<int>(version));
    Broker broker(limits_);
    TestClient a(broker, clock_, version);
    TestClient b(broker, clock_, version);
    const mqtt::Connack ack_a = a.Connect("", /*clean=*/true);
    const mqtt::Connack ack_b = b.Connect("", /*clean=*/true);
    EXPECT_EQ(ShowOne(ack_a), "CONNACK sp0 rc00");
    EXPECT_EQ(ShowOne(ack_b), "CONNACK sp0 rc00");
    if (version == ProtocolVersion::kV5) {
      const auto id_a = ack_a.properties.Text(mqtt::PropertyId::kAssignedClientIdentifier);
      const auto id_b = ack_b.properties.Text(mqtt::PropertyId::kAssignedClientIdentifier);
      ASSERT_TRUE(id_a.has_value() && id_b.has_value());
      EXPECT_FALSE(id_a->empty());
      EXPECT_NE(*id_a, *id_b);
    }
    EXPECT_FALSE(a.Closed());
    EXPECT_FALSE(b.Closed());
    EXPECT_EQ(broker.session_count(), 2U);
    Subscribe(a, "for/a", QoS::k0);
    Subscribe(b, "for/b", QoS::k0);
    TestClient pub(broker, clock_);
    pub.Connect("pub");
    PublishAndComplete(pub, "for/a", "A", QoS::k0);
    PublishAndComplete(pub, "for/b", "B", QoS::k0);
    EXPECT_EQ(Show(a.Receive()), "PUBLISH for/a 'A' q0 dup0 r0");
    EXPECT_EQ(Show(b.Receive()), "PUBLISH for/b 'B' q0 dup0 r0");
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

TEST_F(BrokerConformanceTest, CleanSession0WithoutAStoredSessionGetsSessionPresent0) {
  // [MQTT-3.2.2-3]; [MQTT-3.1.2-4], [MQTT-3.1.4-3]: the session is created, then kept and resumed.
  TestClient first(broker_, clock_);
  first.Send(MakeConnect(ProtocolVersion::kV311, "persist", /*clean=*/false));
  EXPECT_EQ(Written(broker_, first), (Bytes{0x20, 0x02, 0x00, 0x00}));
  (void)first.Receive();
  first.Send(mqtt::Disconnect{});
  first.Finish();
  EXPECT_EQ(broker_.session_count(), 1U);
  TestClient second(broker_, clock_);
  second.Send(MakeConnect(ProtocolVersion::kV311, "persist", /*clean=*/false));
  EXPECT_EQ(Written(broker_, second), (Bytes{0x20, 0x02, 0x01, 0x00}));  // [MQTT-3.2.2-2]
}

TEST_F(BrokerConformanceTest, V5CleanStartAndSessionPresent) {
  // 5.0 [MQTT-3.1.2-4], 5.0 [MQTT-3.1.2-5], 5.0 [MQTT-3.1.2-6], 5.0 [MQTT-3.2.2-2],
  // 5.0 [MQTT-3.2.2-3], 5.0 [MQTT-4.4.0-1], 5.0 [MQTT-3.3.1-1], 5.0 [MQTT-3.1.3-2],
  // 5.0 [MQTT-3.1.4-4], 5.0 [MQTT-3.1.4-5], 5.0 [MQTT-4.1.0-1], 5.0 [MQTT-4.3.2-3]: with a
  // Session Expiry Interval above 0 the session outlives the connection; Clean Start 0 resumes it
  // (session present 1, the unacknowledged PUBLISH again with DUP 1 and its identifier), Clean
  // Start 1 discards it.
  mqtt::PropertiesBuilder expiry;
  expiry.Add(mqtt::PropertyId::kSessionExpiryInterval, 3600);
  auto connect = [&](bool clean) {
    mqtt::Connect c = MakeConnect(ProtocolVersion::kV5, "v5", clean);
    c.properties = expiry.view();
    return c;
  };
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  {
    TestClient first(broker_, clock_, ProtocolVersion::kV5);
    EXPECT_EQ(ConnectAndShow(first, connect(/*clean=*/false)), "CONNACK sp0 rc00");
    Subscribe(first, "t", QoS::k1);
    first.Send(mqtt::Disconnect{});
    first.Finish();
  }
  PublishAndComplete(pub, "t", "queued", QoS::k1, 1);
  std::uint16_t id = 0;
  {
    TestClient second(broker_, clock_, ProtocolVersion::kV5);
    second.Send(connect(/*clean=*/false));
    const std::vector<mqtt::Packet> got = second.Receive();
    EXPECT_EQ(Show(got), "CONNACK sp1 rc00 | PUBLISH t 'queued' q1 dup0 r0");
    ASSERT_EQ(got.size(), 2U);
    id = IdOf(got[1]);
    second.Drop();  // no PUBACK
  }
  {
    TestClient third(broker_, clock_, ProtocolVersion::kV5);
    third.Send(connect(/*clean=*/false));
    const std::vector<mqtt::Packet> got = third.Receive();
    EXPECT_EQ(Show(got), "CONNACK sp1 rc00 | PUBLISH t 'queued' q1 dup1 r0");
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(IdOf(got[1]), id);
    third.Drop();  // still no PUBACK
  }
  TestClient fourth(broker_, clock_, ProtocolVersion::kV5);
  EXPECT_EQ(ConnectAndShow(fourth, connect(/*clean=*/true)), "CONNACK sp0 rc00");
  PublishAndComplete(pub, "t", "the subscription went with the old session", QoS::k1, 2);
  EXPECT_EQ(Show(fourth.Receive()), "");
}

TEST_F(BrokerConformanceTest, V5RefusingConnackHasSessionPresent0) {
  // 5.0 [MQTT-3.2.2-6]: even when a session for the client id exists.
  mqtt::PropertiesBuilder expiry;
  expiry.Add(mqtt::PropertyId::kSessionExpiryInterval, 3600);
  {
    TestClient first(broker_, clock_, ProtocolVersion::kV5);
    mqtt::Connect c = MakeConnect(ProtocolVersion::kV5, "v5", /*clean=*/false);
    c.properties = expiry.view();
    EXPECT_EQ(ConnectAndShow(first, c), "CONNACK sp0 rc00");
    first.Drop();
  }
  ASSERT_EQ(broker_.session_count(), 1U);
  TestClient auth(broker_, clock_, ProtocolVersion::kV5);
  mqtt::PropertiesBuilder method;
  method.Add(mqtt::PropertyId::kSessionExpiryInterval, 3600)
      .Add(mqtt::PropertyId::kAuthenticationMethod, "SCRAM-SHA-1");
  mqtt::Connect c = MakeConnect(ProtocolVersion::kV5, "v5", /*clean=*/false);
  c.properties = method.view();
  EXPECT_EQ(ConnectAndShow(auth, c), "CONNACK sp0 rc8c");  // Bad authentication method
  EXPECT_TRUE(auth.Closed());
  TestClient malformed(broker_, clock_, ProtocolVersion::kV5);
  // A 5.0 CONNECT for client id "v5" with the reserved connect flag set.
  malformed.SendRaw({0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x01, 0x00, 0x3C, 0x00, 0x00,
                     0x02, 'v', '5'});
  EXPECT_EQ(Written(broker_, malformed), (Bytes{0x20, 0x03, 0x00, 0x81, 0x00}));
  EXPECT_TRUE(malformed.Closed());
}

TEST_F(BrokerConformanceTest, CleanSessionStateLastsAsLongAsItsConnection) {
  // [MQTT-4.1.0-2], [MQTT-4.1.0-1], [MQTT-3.1.2-6], [MQTT-3.1.4-3], [MQTT-4.3.3-2],
  // 5.0 [MQTT-4.3.3-10]: a clean session's subscription, in-flight delivery and incoming QoS 2 id
  // are all in use for as long as the connection is open (a day here, keep-alive off); the session
  // ends with the connection and is not reused.
  TestClient c(broker_, clock_);
  c.Connect("c", /*clean=*/true);
  Subscribe(c, "t", QoS::k1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  Subscribe(pub, "in", QoS::k0);

  c.Send(MakePublish("in", "from c", QoS::k2, 5));
  EXPECT_EQ(Show(c.Receive()), "PUBREC 5");
  EXPECT_EQ(Show(pub.Receive()), "PUBLISH in 'from c' q0 dup0 r0");
  clock_.Advance(hours(24));
  broker_.OnTimer(clock_.Now());
  EXPECT_FALSE(c.Closed());

  PublishAndComplete(pub, "t", "to c", QoS::k1, 1);
  const std::vector<mqtt::Packet> got = c.Receive();
  EXPECT_EQ(Show(got), "PUBLISH t 'to c' q1 dup0 r0");
  mqtt::Publish again = MakePublish("in", "from c", QoS::k2, 5);
  again.dup = true;
  c.Send(again);
  EXPECT_EQ(Show(c.Receive()), "PUBREC 5");  // still awaiting PUBREL: not a new message
  EXPECT_EQ(Show(pub.Receive()), "");
  c.Send(mqtt::Pubrel{5, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(c.Receive()), "PUBCOMP 5");
  ASSERT_EQ(got.size(), 1U);
  c.Send(mqtt::Puback{IdOf(got[0]), ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(c.Receive()), "");
  EXPECT_EQ(broker_.session_count(), 2U);

  c.Send(mqtt::Disconnect{});
  c.Finish();
  EXPECT_EQ(broker_.session_count(), 1U);
  TestClient later(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(later, "c", /*clean=*/false), "CONNACK sp0 rc00");
  PublishAndComplete(pub, "t", "nobody", QoS::k1, 2);
  EXPECT_EQ(Show(later.Receive()), "");
}

TEST_F(BrokerConformanceTest, RetainedMessagesSurviveTheEndOfTheSessionThatPublishedThem) {
  // [MQTT-3.1.2-7]
  {
    TestClient p(broker_, clock_);
    p.Connect("clean", /*clean=*/true);
    PublishAndComplete(p, "a", "from a clean session", QoS::k1, 1, /*retain=*/true);
    p.Send(mqtt::Disconnect{});
    p.Finish();
  }
  {
    TestClient p(broker_, clock_);
    p.Connect("kept", /*clean=*/false);
    PublishAndComplete(p, "b", "from a discarded session", QoS::k0, 0, /*retain=*/true);
    p.Drop();
  }
  {
    TestClient p(broker_, clock_);
    EXPECT_EQ(ConnectAndShow(p, "kept", /*clean=*/true), "CONNACK sp0 rc00");  // discards it
    p.Send(mqtt::Disconnect{});
    p.Finish();
  }
  EXPECT_EQ(broker_.session_count(), 0U);
  TestClient late(broker_, clock_);
  late.Connect("late");
  mqtt::SubscriptionListBuilder b;
  b.Add("#", {QoS::k1, false, false, 0});
  late.Send(mqtt::Subscribe{3, {}, b.view()});
  std::vector<std::string> got = ShowEach(late.Receive());
  ASSERT_EQ(got.size(), 3U);
  std::sort(got.begin() + 1, got.end());  // the order among retained messages is not specified
  EXPECT_EQ(
      got, (std::vector<std::string>{"SUBACK 3 [01]", "PUBLISH a 'from a clean session' q1 dup0 r1",
                                     "PUBLISH b 'from a discarded session' q0 dup0 r1"}));
}

TEST_F(BrokerConformanceTest, MessageReachesEverySessionWithAMatchingSubscription) {
  // [MQTT-4.5.0-1], [MQTT-3.1.2-5]: online and offline, clean and persistent; once each.
  TestClient online(broker_, clock_);
  online.Connect("online");
  Subscribe(online, "a/#", QoS::k1);
  TestClient persistent(broker_, clock_);
  persistent.Connect("persistent", /*clean=*/false);
  Subscribe(persistent, "a/+", QoS::k2);
  {
    TestClient offline(broker_, clock_);
    offline.Connect("offline", /*clean=*/false);
    Subscribe(offline, "a/b", QoS::k1);
    offline.Drop();
  }
  TestClient other(broker_, clock_);
  other.Connect("other");
  Subscribe(other, "b/#", QoS::k1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "a/b", "m", QoS::k1, 1);
  EXPECT_EQ(Show(online.Receive()), "PUBLISH a/b 'm' q1 dup0 r0");
  EXPECT_EQ(Show(persistent.Receive()), "PUBLISH a/b 'm' q1 dup0 r0");
  EXPECT_EQ(Show(other.Receive()), "");
  TestClient offline(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(offline, "offline", /*clean=*/false),
            "CONNACK sp1 rc00 | PUBLISH a/b 'm' q1 dup0 r0");
}

// ---------------------------------------------------------------------------------------------
// Wills

TEST_F(BrokerConformanceTest, WillWithRetain0IsPublishedAsANonRetainedMessage) {
  // [MQTT-3.1.2-16], 5.0 [MQTT-3.1.2-14], [MQTT-3.3.1-12], 5.0 [MQTT-3.1.2-7], 5.0 [MQTT-3.3.1-8]:
  // neither stored nor replacing the retained message.
  for (const ProtocolVersion version : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    SCOPED_TRACE(static_cast<int>(version));
    Broker broker(limits_);
    TestClient pub(broker, clock_);
    pub.Connect("pub");
    PublishAndComplete(pub, "w", "before", QoS::k1, 1, /*retain=*/true);
    TestClient watcher(broker, clock_, version);
    watcher.Connect("watcher");
    mqtt::SubscriptionListBuilder b;
    b.Add("w/#", {QoS::k0, false, false, 0});
    watcher.Send(mqtt::Subscribe{1, {}, b.view()});
    EXPECT_EQ(Show(watcher.Receive()), "SUBACK 1 [00] | PUBLISH w 'before' q0 dup0 r1");
    for (const char* topic : {"w", "w/none"}) {  // a retained message, and none, on the topic
      TestClient dying(broker, clock_, version);
      EXPECT_EQ(ConnectAndShow(dying, WithWill(MakeConnect(version, "dying"), topic, "gone",
                                               QoS::k1, /*retain=*/false)),
                "CONNACK sp0 rc00");
      dying.Drop();
      EXPECT_EQ(Show(watcher.Receive()), "PUBLISH " + std::string(topic) + " 'gone' q0 dup0 r0");
    }
    EXPECT_EQ(broker.retained_count(), 1U);
    TestClient late(broker, clock_, version);
    late.Connect("late");
    late.Send(mqtt::Subscribe{1, {}, b.view()});
    EXPECT_EQ(Show(late.Receive()), "SUBACK 1 [00] | PUBLISH w 'before' q0 dup0 r1");
  }
}

TEST_F(BrokerConformanceTest, WillWithRetain1IsPublishedAsARetainedMessage) {
  // [MQTT-3.1.2-17], 5.0 [MQTT-3.1.2-15], [MQTT-3.3.1-8], 5.0 [MQTT-3.1.2-7], 5.0 [MQTT-3.3.1-5]:
  // it replaces the topic's retained message; a subscriber already there gets it with RETAIN 0
  // ([MQTT-3.3.1-9]), a later one with RETAIN 1.
  for (const ProtocolVersion version : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    SCOPED_TRACE(static_cast<int>(version));
    Broker broker(limits_);
    TestClient pub(broker, clock_);
    pub.Connect("pub");
    PublishAndComplete(pub, "w", "before", QoS::k1, 1, /*retain=*/true);
    TestClient watcher(broker, clock_, version);
    watcher.Connect("watcher");
    mqtt::SubscriptionListBuilder b;
    b.Add("w", {QoS::k0, false, false, 0});
    watcher.Send(mqtt::Subscribe{1, {}, b.view()});
    EXPECT_EQ(Show(watcher.Receive()), "SUBACK 1 [00] | PUBLISH w 'before' q0 dup0 r1");
    TestClient dying(broker, clock_, version);
    EXPECT_EQ(ConnectAndShow(dying, WithWill(MakeConnect(version, "dying"), "w", "gone", QoS::k1,
                                             /*retain=*/true)),
              "CONNACK sp0 rc00");
    dying.Drop();
    EXPECT_EQ(Show(watcher.Receive()), "PUBLISH w 'gone' q0 dup0 r0");
    EXPECT_EQ(broker.retained_count(), 1U);
    TestClient late(broker, clock_, version);
    late.Connect("late");
    mqtt::SubscriptionListBuilder b2;
    b2.Add("w", {QoS::k2, false, false, 0});
    late.Send(mqtt::Subscribe{2, {}, b2.view()});
    EXPECT_EQ(Show(late.Receive()), "SUBACK 2 [02] | PUBLISH w 'gone' q1 dup0 r1");
  }
}

TEST_F(BrokerConformanceTest, WithoutTheWillFlagNothingIsPublished) {
  // [MQTT-3.1.2-12]: not on a lost connection, a keep-alive timeout or a protocol error.
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "#", QoS::k1);
  TestClient lost(broker_, clock_);
  lost.Connect("lost");
  lost.Drop();
  TestClient silent(broker_, clock_);
  silent.Connect("silent", true, /*keep_alive=*/1);
  TestClient rude(broker_, clock_);
  rude.Connect("rude");
  rude.SendRaw({0x36, 0x03, 0x00, 0x01, 't'});  // QoS 3
  EXPECT_TRUE(rude.Closed());
  clock_.Advance(seconds(2));
  broker_.OnTimer(clock_.Now());
  EXPECT_TRUE(silent.Closed());
  EXPECT_EQ(Show(watcher.Receive()), "");
}

TEST_F(BrokerConformanceTest, WillIsPublishedOnceThenForgotten) {
  // [MQTT-3.1.2-10]: a will published on a keep-alive timeout does not go again when the net
  // layer then reports the socket gone.
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient silent(broker_, clock_);
  mqtt::Connect connect =
      WithWill(MakeConnect(ProtocolVersion::kV311, "silent"), "w", "once", QoS::k0, false);
  connect.keep_alive = 1;
  EXPECT_EQ(ConnectAndShow(silent, connect), "CONNACK sp0 rc00");
  clock_.Advance(seconds(2));
  broker_.OnTimer(clock_.Now());
  EXPECT_TRUE(silent.Closed());
  EXPECT_EQ(Show(watcher.Receive()), "PUBLISH w 'once' q0 dup0 r0");
  silent.Drop();
  EXPECT_EQ(Show(watcher.Receive()), "");
}

// ---------------------------------------------------------------------------------------------
// PUBLISH, QoS flows and packet identifiers

TEST_F(BrokerConformanceTest, Qos0DeliveryHasQos0Dup0AndNoPacketId) {
  // [MQTT-4.3.1-1]: also when a QoS 2 message is downgraded to QoS 0.
  TestClient sub2(broker_, clock_);
  sub2.Connect("sub2");
  Subscribe(sub2, "t", QoS::k2);
  TestClient sub0(broker_, clock_);
  sub0.Connect("sub0");
  Subscribe(sub0, "t", QoS::k0);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  const Bytes expected = {0x30, 0x04, 0x00, 0x01, 't', 'x'};
  PublishAndComplete(pub, "t", "x", QoS::k0);
  EXPECT_EQ(Written(broker_, sub2), expected);
  EXPECT_EQ(Written(broker_, sub0), expected);
  (void)sub0.Receive();
  PublishAndComplete(pub, "t", "x", QoS::k2, 1);
  EXPECT_EQ(Written(broker_, sub0), expected);
}

TEST_F(BrokerConformanceTest, ForwardedTopicIsTheTopicNameOfThePublish) {
  // [MQTT-3.3.2-3]: the name as published, never the filter it matched.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "sport/+/player1", QoS::k0);
  Subscribe(sub, "finance/#", QoS::k0, 2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "sport/tennis/player1", "x", QoS::k0, 0, /*retain=*/true);
  PublishAndComplete(pub, "finance", "y", QoS::k0);
  EXPECT_EQ(Show(sub.Receive()),
            "PUBLISH sport/tennis/player1 'x' q0 dup0 r0 | PUBLISH finance 'y' q0 dup0 r0");
  TestClient late(broker_, clock_);
  late.Connect("late");
  mqtt::SubscriptionListBuilder b;
  b.Add("sport/#", {QoS::k0, false, false, 0});
  late.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_EQ(Show(late.Receive()), "SUBACK 1 [00] | PUBLISH sport/tennis/player1 'x' q0 dup0 r1");
}

TEST_F(BrokerConformanceTest, DupFromThePublisherIsNotForwarded) {
  // [MQTT-3.3.1-3]: DUP on a delivery says whether the broker retransmits, nothing else.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  mqtt::Publish q1 = MakePublish("t", "q1", QoS::k1, 3);
  q1.dup = true;
  pub.Send(q1);
  EXPECT_EQ(Show(pub.Receive()), "PUBACK 3");
  mqtt::Publish q2 = MakePublish("t", "q2", QoS::k2, 4);
  q2.dup = true;
  pub.Send(q2);
  EXPECT_EQ(Show(pub.Receive()), "PUBREC 4");
  EXPECT_EQ(Show(sub.Receive()), "PUBLISH t 'q1' q1 dup0 r0 | PUBLISH t 'q2' q2 dup0 r0");
}

TEST_F(BrokerConformanceTest, Qos1PacketIdAfterPubackIsANewMessage) {
  // [MQTT-4.3.2-2], 5.0 [MQTT-4.3.2-5], [MQTT-3.3.4-1], [MQTT-2.3.1-6]: even with DUP set.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k0);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "first", QoS::k1, 7));
  EXPECT_EQ(Show(pub.Receive()), "PUBACK 7");
  mqtt::Publish again = MakePublish("t", "first", QoS::k1, 7);
  again.dup = true;
  pub.Send(again);
  EXPECT_EQ(Show(pub.Receive()), "PUBACK 7");
  pub.Send(MakePublish("t", "second", QoS::k1, 7));
  EXPECT_EQ(Show(pub.Receive()), "PUBACK 7");
  EXPECT_EQ(Show(sub.Receive()),
            "PUBLISH t 'first' q0 dup0 r0 | PUBLISH t 'first' q0 dup0 r0 | "
            "PUBLISH t 'second' q0 dup0 r0");
}

TEST_F(BrokerConformanceTest, V5QosFlowsInBothDirections) {
  // 5.0 [MQTT-2.2.1-5], 5.0 [MQTT-3.3.4-1], 5.0 [MQTT-4.3.2-4], 5.0 [MQTT-4.3.3-8],
  // 5.0 [MQTT-4.3.3-11]: every acknowledgement carries the identifier of its PUBLISH.
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker_, clock_, ProtocolVersion::kV5);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "zero", QoS::k0);
  PublishAndComplete(pub, "t", "one", QoS::k1, 0x0101);
  PublishAndComplete(pub, "t", "two", QoS::k2, 0x0202);
  const std::vector<mqtt::Packet> got = sub.Receive();
  EXPECT_EQ(
      Show(got),
      "PUBLISH t 'zero' q0 dup0 r0 | PUBLISH t 'one' q1 dup0 r0 | PUBLISH t 'two' q2 dup0 r0");
  ASSERT_EQ(got.size(), 3U);
  const std::uint16_t two = IdOf(got[2]);
  sub.Send(mqtt::Puback{IdOf(got[1]), ReasonCode::kSuccess, {}});
  sub.Send(mqtt::Pubrec{two, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "PUBREL " + std::to_string(two));
  sub.Send(mqtt::Pubcomp{two, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "");
}

TEST_F(BrokerConformanceTest, V5KeepAliveTimeoutClosesAsIfTheNetworkFailed) {
  // 5.0 [MQTT-3.1.2-22], 5.0 [MQTT-3.1.2-7]: after 1.5 keep-alive periods of silence: DISCONNECT
  // 0x8D, the close, and the will.
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient silent(broker_, clock_, ProtocolVersion::kV5);
  mqtt::Connect c =
      WithWill(MakeConnect(ProtocolVersion::kV5, "silent"), "w", "timed out", QoS::k0, false);
  c.keep_alive = 2;
  EXPECT_EQ(ConnectAndShow(silent, c), "CONNACK sp0 rc00");
  clock_.Advance(std::chrono::milliseconds(2999));
  broker_.OnTimer(clock_.Now());
  EXPECT_FALSE(silent.Closed());
  clock_.Advance(std::chrono::milliseconds(2));
  broker_.OnTimer(clock_.Now());
  EXPECT_EQ(Written(broker_, silent), (Bytes{0xE0, 0x01, 0x8D}));
  EXPECT_TRUE(silent.Closed());
  EXPECT_EQ(Show(watcher.Receive()), "PUBLISH w 'timed out' q0 dup0 r0");
}

TEST_F(BrokerConformanceTest, DeliveryPacketIdsAreNonZeroAndDistinctWhileInFlight) {
  // [MQTT-2.3.1-4], 5.0 [MQTT-2.2.1-4], [MQTT-4.3.2-1], [MQTT-4.3.3-1], 5.0 [MQTT-4.3.2-2],
  // 5.0 [MQTT-4.3.3-2]: a full window of QoS 1 and QoS 2 deliveries, each with QoS as granted, DUP
  // 0 and its own non-zero identifier.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  for (std::uint16_t i = 1; i <= limits_.max_inflight; ++i) {
    PublishAndComplete(pub, "t", "m", i % 2 == 0 ? QoS::k2 : QoS::k1, i);
  }
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), limits_.max_inflight);
  std::set<std::uint16_t> ids;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(ShowOne(got[i]),
              std::string("PUBLISH t 'm' q") + (i % 2 == 0 ? "1" : "2") + " dup0 r0");
    EXPECT_NE(IdOf(got[i]), 0);
    ids.insert(IdOf(got[i]));
  }
  EXPECT_EQ(ids.size(), got.size());
}

TEST_F(BrokerConformanceTest, PacketIdsSkipZeroAndTheIdsStillInFlightWhenTheyWrap) {
  // [MQTT-2.3.1-4], 5.0 [MQTT-2.2.1-4], [MQTT-4.3.2-1], [MQTT-4.3.3-1], 5.0 [MQTT-4.3.2-1],
  // 5.0 [MQTT-4.3.3-1]: one QoS 1 PUBLISH and one QoS 2 PUBREL stay unacknowledged while 65,536
  // more deliveries go through, more than there are identifiers, so the identifiers come round
  // again; none of them is 0 or one still in flight.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "held publish", QoS::k1, 1);
  PublishAndComplete(pub, "t", "held pubrel", QoS::k2, 2);
  const std::vector<mqtt::Packet> held = sub.Receive();
  ASSERT_EQ(held.size(), 2U);
  const std::uint16_t held_publish = IdOf(held[0]);
  const std::uint16_t held_pubrel = IdOf(held[1]);
  sub.Send(mqtt::Pubrec{held_pubrel, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "PUBREL " + std::to_string(held_pubrel));

  for (int i = 0; i < 65536; ++i) {
    pub.Send(MakePublish("t", "", QoS::k1, static_cast<std::uint16_t>(i % 65535 + 1)));
    ASSERT_EQ(pub.Receive().size(), 1U);
    const std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_EQ(got.size(), 1U) << "delivery " << i;
    const std::uint16_t id = IdOf(got[0]);
    ASSERT_NE(id, 0) << "delivery " << i;
    ASSERT_NE(id, held_publish) << "delivery " << i;
    ASSERT_NE(id, held_pubrel) << "delivery " << i;
    sub.Send(mqtt::Puback{id, ReasonCode::kSuccess, {}});
  }
  // The held flows still complete with their identifiers.
  sub.Send(mqtt::Puback{held_publish, ReasonCode::kSuccess, {}});
  sub.Send(mqtt::Pubcomp{held_pubrel, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "");
}

TEST_F(BrokerConformanceTest, Qos2PublishIsNotResentAfterPubrelWentOut) {
  // [MQTT-4.3.3-1], 5.0 [MQTT-4.3.3-6], 5.0 [MQTT-4.3.3-3], 5.0 [MQTT-4.3.3-5], [MQTT-3.3.1-1],
  // [MQTT-4.4.0-1], [MQTT-2.3.1-4]: on each resume the unreleased PUBLISH goes again (DUP 1,
  // same identifier) and the PUBREL goes again until its PUBCOMP; the released PUBLISH never.
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  std::uint16_t released = 0;
  std::uint16_t unreleased = 0;
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k2);
    PublishAndComplete(pub, "t", "released", QoS::k2, 1);
    PublishAndComplete(pub, "t", "unreleased", QoS::k2, 2);
    const std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_EQ(got.size(), 2U);
    released = IdOf(got[0]);
    unreleased = IdOf(got[1]);
    sub.Send(mqtt::Pubrec{released, ReasonCode::kSuccess, {}});
    EXPECT_EQ(Show(sub.Receive()), "PUBREL " + std::to_string(released));
    sub.Drop();
  }
  const std::string resumed =
      "CONNACK sp1 rc00 | PUBLISH t 'unreleased' q2 dup1 r0 | PUBREL " + std::to_string(released);
  {
    TestClient sub(broker_, clock_);
    sub.Send(MakeConnect(ProtocolVersion::kV311, "sub", /*clean=*/false));
    const std::vector<mqtt::Packet> got = sub.Receive();
    EXPECT_EQ(Show(got), resumed);
    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(IdOf(got[1]), unreleased);
    sub.Drop();
  }
  TestClient sub(broker_, clock_);
  sub.Send(MakeConnect(ProtocolVersion::kV311, "sub", /*clean=*/false));
  EXPECT_EQ(Show(sub.Receive()), resumed);
  sub.Send(mqtt::Pubcomp{released, ReasonCode::kSuccess, {}});
  sub.Send(mqtt::Pubrec{unreleased, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "PUBREL " + std::to_string(unreleased));
  sub.Send(mqtt::Pubcomp{unreleased, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Show(sub.Receive()), "");
  sub.Drop();
  TestClient last(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(last, "sub", /*clean=*/false), "CONNACK sp1 rc00");
}

// ---------------------------------------------------------------------------------------------
// Retained messages

TEST_F(BrokerConformanceTest, RetainedQos0MessageReplacesTheRetainedMessage) {
  // [MQTT-3.3.1-7]; §3.3.1.3 (SHOULD), 5.0 [MQTT-3.3.1-5]: the QoS 0 message becomes the retained
  // one.
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "old", QoS::k2, 1, /*retain=*/true);
  PublishAndComplete(pub, "t", "new", QoS::k0, 0, /*retain=*/true);
  EXPECT_EQ(broker_.retained_count(), 1U);
  TestClient late(broker_, clock_);
  late.Connect("late");
  mqtt::SubscriptionListBuilder b;
  b.Add("t", {QoS::k2, false, false, 0});
  late.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_EQ(Show(late.Receive()), "SUBACK 1 [02] | PUBLISH t 'new' q0 dup0 r1");
}

TEST_F(BrokerConformanceTest, PublishWithRetain0LeavesRetainedMessagesAlone) {
  // [MQTT-3.3.1-12], 5.0 [MQTT-3.3.1-8]: neither stored, nor replacing, nor (empty) deleting.
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "kept", QoS::k1, 1, /*retain=*/true);
  PublishAndComplete(pub, "t", "live", QoS::k1, 2);
  PublishAndComplete(pub, "t", "", QoS::k0);
  PublishAndComplete(pub, "u", "not kept", QoS::k2, 3);
  EXPECT_EQ(broker_.retained_count(), 1U);
  TestClient late(broker_, clock_);
  late.Connect("late");
  mqtt::SubscriptionListBuilder b;
  b.Add("#", {QoS::k1, false, false, 0});
  late.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_EQ(Show(late.Receive()), "SUBACK 1 [01] | PUBLISH t 'kept' q1 dup0 r1");
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE and UNSUBSCRIBE

TEST_F(BrokerConformanceTest, SubackCodesFollowTheOrderOfTheFilters) {
  // [MQTT-3.9.3-1], [MQTT-3.8.4-5], [MQTT-3.8.4-1], [MQTT-3.8.4-2], [MQTT-2.3.1-7],
  // 5.0 [MQTT-2.2.1-6], 5.0 [MQTT-3.8.4-6]: one SUBACK with the SUBSCRIBE's identifier and one code
  // per filter, a failure in its own place.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("f/2", {QoS::k2, false, false, 0})
      .Add("f/#/bad", {QoS::k1, false, false, 0})
      .Add("f/0", {QoS::k0, false, false, 0})
      .Add("f/1", {QoS::k1, false, false, 0});
  sub.Send(mqtt::Subscribe{0x1234, {}, b.view()});
  EXPECT_EQ(Written(broker_, sub), (Bytes{0x90, 0x06, 0x12, 0x34, 0x02, 0x80, 0x00, 0x01}));
  EXPECT_EQ(Show(sub.Receive()), "SUBACK 4660 [02 80 00 01]");
}

TEST_F(BrokerConformanceTest, V5SubackCodesFollowTheOrderOfTheFilters) {
  // 5.0 [MQTT-3.9.3-1], 5.0 [MQTT-3.8.4-6], 5.0 [MQTT-3.8.4-7], 5.0 [MQTT-2.2.1-6],
  // 5.0 [MQTT-3.8.4-1], 5.0 [MQTT-3.8.4-2]: 5.0 failure codes in place.
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("x", {QoS::k1, false, false, 0})
      .Add("$share/g/x", {QoS::k0, false, false, 0})
      .Add("a/#/b", {QoS::k0, false, false, 0})
      .Add("y", {QoS::k2, false, false, 0});
  sub.Send(mqtt::Subscribe{9, {}, b.view()});
  EXPECT_EQ(Show(sub.Receive()), "SUBACK 9 [01 9e 8f 02]");
}

TEST_F(BrokerConformanceTest, SeveralFiltersInOneSubscribeActAsSeveralSubscribes) {
  // [MQTT-3.8.4-4], [MQTT-3.3.1-6], [MQTT-3.8.4-5], 5.0 [MQTT-3.8.4-5], 5.0 [MQTT-3.8.4-8]: one
  // SUBACK, then the retained messages of each filter; each subscription then works at its own QoS
  // ([MQTT-3.8.4-6]).
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "r/a", "A", QoS::k1, 1, /*retain=*/true);
  PublishAndComplete(pub, "r/b", "B", QoS::k0, 0, /*retain=*/true);
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("r/a", {QoS::k2, false, false, 0})
      .Add("x/#", {QoS::k1, false, false, 0})
      .Add("r/b", {QoS::k1, false, false, 0});
  sub.Send(mqtt::Subscribe{5, {}, b.view()});
  const std::vector<mqtt::Packet> got = sub.Receive();
  EXPECT_EQ(Show(got),
            "SUBACK 5 [02 01 01] | PUBLISH r/a 'A' q1 dup0 r1 | PUBLISH r/b 'B' q0 dup0 r1");
  ASSERT_EQ(got.size(), 3U);
  sub.Send(mqtt::Puback{IdOf(got[1]), ReasonCode::kSuccess, {}});
  PublishAndComplete(pub, "r/a", "to r/a", QoS::k2, 2);
  PublishAndComplete(pub, "x/y", "to x/#", QoS::k2, 3);
  PublishAndComplete(pub, "r/b", "to r/b", QoS::k0);
  EXPECT_EQ(Show(sub.Receive()),
            "PUBLISH r/a 'to r/a' q2 dup0 r0 | PUBLISH x/y 'to x/#' q1 dup0 r0 | "
            "PUBLISH r/b 'to r/b' q0 dup0 r0");
}

TEST_F(BrokerConformanceTest, SeveralFiltersInOneUnsubscribeActAsSeveralUnsubscribes) {
  // [MQTT-3.10.4-6], [MQTT-3.10.4-4], [MQTT-3.10.4-5], [MQTT-2.3.1-7]: one UNSUBACK with the
  // UNSUBSCRIBE's identifier, also for the filter that was never subscribed.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "a", QoS::k0, 1);
  Subscribe(sub, "b", QoS::k0, 2);
  Subscribe(sub, "c", QoS::k0, 3);
  SendUnsubscribe(sub, 0x4D, {"a", "never", "c"});
  EXPECT_EQ(Written(broker_, sub), (Bytes{0xB0, 0x02, 0x00, 0x4D}));
  EXPECT_EQ(Show(sub.Receive()), "UNSUBACK 77");
  EXPECT_EQ(broker_.subscription_count(), 1U);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  for (const char* topic : {"a", "b", "c"}) {
    PublishAndComplete(pub, topic, topic, QoS::k0);
  }
  EXPECT_EQ(Show(sub.Receive()), "PUBLISH b 'b' q0 dup0 r0");
}

TEST_F(BrokerConformanceTest, V5UnsubackHasOneCodePerFilterInOrder) {
  // 5.0 [MQTT-3.10.4-6], 5.0 [MQTT-3.10.4-5], 5.0 [MQTT-2.2.1-6], 5.0 [MQTT-3.10.4-4]: 0x00
  // removed, 0x11 no subscription existed.
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub");
  Subscribe(sub, "a", QoS::k0, 1);
  Subscribe(sub, "c", QoS::k0, 2);
  SendUnsubscribe(sub, 77, {"a", "never", "c"});
  EXPECT_EQ(Show(sub.Receive()), "UNSUBACK 77 [00 11 00]");
  EXPECT_EQ(broker_.subscription_count(), 0U);
}

TEST_F(BrokerConformanceTest, UnsubscribeRemovesOnlyAnIdenticalFilter) {
  // [MQTT-3.10.4-1], [MQTT-4.7.3-4]: compared character for character, no wildcard matching, no
  // case folding.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "a/+", QoS::k0, 1);
  Subscribe(sub, "a/b", QoS::k0, 2);
  Subscribe(sub, "A/+", QoS::k0, 3);
  SendUnsubscribe(sub, 4, {"a/#", "a/B", "a/+/", "a/+ ", "+/+"});
  EXPECT_EQ(Show(sub.Receive()), "UNSUBACK 4");
  EXPECT_EQ(broker_.subscription_count(), 3U);
  SendUnsubscribe(sub, 5, {"a/+"});
  EXPECT_EQ(Show(sub.Receive()), "UNSUBACK 5");
  EXPECT_EQ(broker_.subscription_count(), 2U);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  for (const char* topic : {"a/c", "a/b", "A/c"}) {
    PublishAndComplete(pub, topic, topic, QoS::k0);
  }
  EXPECT_EQ(Show(sub.Receive()), "PUBLISH a/b 'a/b' q0 dup0 r0 | PUBLISH A/c 'A/c' q0 dup0 r0");
}

TEST_F(BrokerConformanceTest, DeliveriesInFlightCompleteAfterUnsubscribe) {
  // [MQTT-3.10.4-3], [MQTT-4.4.0-1]: the QoS 1 and QoS 2 deliveries already sent go on to the end
  // (also across a reconnect); [MQTT-3.10.4-2]: nothing new is added.
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  std::uint16_t one = 0;
  std::uint16_t two = 0;
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k2);
    PublishAndComplete(pub, "t", "one", QoS::k1, 1);
    PublishAndComplete(pub, "t", "two", QoS::k2, 2);
    const std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_EQ(got.size(), 2U);
    one = IdOf(got[0]);
    two = IdOf(got[1]);
    SendUnsubscribe(sub, 9, {"t"});
    EXPECT_EQ(Show(sub.Receive()), "UNSUBACK 9");
    PublishAndComplete(pub, "t", "three", QoS::k1, 3);
    EXPECT_EQ(Show(sub.Receive()), "");
    sub.Send(mqtt::Pubrec{two, ReasonCode::kSuccess, {}});
    EXPECT_EQ(Show(sub.Receive()), "PUBREL " + std::to_string(two));
    sub.Drop();
  }
  {
    TestClient sub(broker_, clock_);
    sub.Send(MakeConnect(ProtocolVersion::kV311, "sub", /*clean=*/false));
    const std::vector<mqtt::Packet> got = sub.Receive();
    EXPECT_EQ(Show(got),
              "CONNACK sp1 rc00 | PUBLISH t 'one' q1 dup1 r0 | PUBREL " + std::to_string(two));
    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(IdOf(got[1]), one);
    sub.Send(mqtt::Puback{one, ReasonCode::kSuccess, {}});
    sub.Send(mqtt::Pubcomp{two, ReasonCode::kSuccess, {}});
    EXPECT_EQ(Show(sub.Receive()), "");
    sub.Drop();
  }
  TestClient sub(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(sub, "sub", /*clean=*/false), "CONNACK sp1 rc00");
  EXPECT_EQ(broker_.subscription_count(), 0U);
}

TEST_F(BrokerConformanceTest, TopicMatchingComparesTheStringsAsReceived) {
  // [MQTT-4.7.3-4]: no Unicode normalisation, no case folding, no trimming.
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "caf\xc3\xa9", QoS::k0, 1);  // U+00E9
  Subscribe(sub, "Sport/+", QoS::k0, 2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  for (const char* topic :
       {"cafe\xcc\x81", "CAF\xc3\x89", "caf\xc3\xa9", "sport/x", "Sport /x", "Sport/x"}) {
    PublishAndComplete(pub, topic, "m", QoS::k0);
  }
  EXPECT_EQ(Show(sub.Receive()),
            "PUBLISH caf\xc3\xa9 'm' q0 dup0 r0 | PUBLISH Sport/x 'm' q0 dup0 r0");
}

// ---------------------------------------------------------------------------------------------
// PINGREQ

TEST_F(BrokerConformanceTest, EveryPingreqIsAnsweredWithPingresp) {
  // [MQTT-3.12.4-1]: three in one read, three answers.
  TestClient c(broker_, clock_);
  c.Connect("c");
  c.SendRaw(Concat({Encoded(mqtt::Pingreq{}), Encoded(mqtt::Pingreq{}), Encoded(mqtt::Pingreq{})}));
  EXPECT_EQ(Written(broker_, c), (Bytes{0xD0, 0x00, 0xD0, 0x00, 0xD0, 0x00}));
  EXPECT_FALSE(c.Closed());
}

// ---------------------------------------------------------------------------------------------
// Ordering

TEST_F(BrokerConformanceTest, MessagesFromOnePublisherArriveInOrderOnOneTopic) {
  // [MQTT-4.6.0-5], [MQTT-4.6.0-6]: at QoS 1 and at QoS 2, through an in-flight window of 2 (so
  // most messages wait in the session queue first).
  limits_.max_inflight = 2;
  Broker broker(limits_);
  TestClient sub(broker, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  for (const QoS qos : {QoS::k1, QoS::k2}) {
    std::vector<std::string> sent;
    for (std::uint16_t i = 1; i <= 30; ++i) {
      sent.push_back("q" + Hex(qos) + "-" + std::to_string(i));
      PublishAndComplete(pub, "t", sent.back(), qos, i);
    }
    EXPECT_EQ(ReceiveAndAcknowledge(sub), sent);
  }
}

TEST_F(BrokerConformanceTest, MessagesFromOnePublisherArriveInOrderAcrossTopics) {
  // [MQTT-4.6.0-5], [MQTT-4.6.0-6] ask for order per topic; the broker keeps one order per session
  // for messages of one QoS, [MQTT-3.1.2-5]: online through a window of 2, at QoS 0, and queued
  // offline.
  limits_.max_inflight = 2;
  Broker broker(limits_);
  TestClient sub(broker, clock_);
  sub.Connect("sub", /*clean=*/false);
  Subscribe(sub, "a", QoS::k1, 1);
  Subscribe(sub, "b/+", QoS::k1, 2);
  Subscribe(sub, "c/#", QoS::k1, 3);
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  const char* topics[] = {"a", "b/x", "c", "c/d/e"};
  auto publish_all = [&](QoS qos, const std::string& tag) {
    std::vector<std::string> sent;
    for (std::uint16_t i = 1; i <= 24; ++i) {
      sent.push_back(tag + std::to_string(i));
      PublishAndComplete(pub, topics[i % 4], sent.back(), qos, i);
    }
    return sent;
  };
  std::vector<std::string> sent = publish_all(QoS::k1, "online-");
  EXPECT_EQ(ReceiveAndAcknowledge(sub), sent);
  sent = publish_all(QoS::k0, "qos0-");
  EXPECT_EQ(ReceiveAndAcknowledge(sub), sent);
  sub.Drop();
  sent = publish_all(QoS::k1, "offline-");
  TestClient back(broker, clock_);
  back.Send(MakeConnect(ProtocolVersion::kV311, "sub", /*clean=*/false));
  std::vector<std::string> others;
  EXPECT_EQ(ReceiveAndAcknowledge(back, &others), sent);
  EXPECT_EQ(others, (std::vector<std::string>{"CONNACK sp1 rc00"}));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST_F(BrokerConformanceTest, ProtocolErrorClosesOnlyTheOffendingConnection) {
  // [MQTT-4.8.0-1]: a SUBACK from a client closes that connection (its will goes out, as for a
  // lost connection); another client's session, in-flight message included, carries on.
  TestClient bystander(broker_, clock_);
  bystander.Connect("bystander", /*clean=*/false);
  Subscribe(bystander, "t", QoS::k1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "in flight", QoS::k1, 1);
  const std::vector<mqtt::Packet> in_flight = bystander.Receive();
  ASSERT_EQ(in_flight.size(), 1U);

  TestClient offender(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(offender, WithWill(MakeConnect(ProtocolVersion::kV311, "offender"), "t",
                                              "offender gone", QoS::k1, false)),
            "CONNACK sp0 rc00");
  const ReasonCode granted[] = {ReasonCode::kSuccess};
  offender.Send(mqtt::Suback{1, {}, mqtt::ReasonCodeList(granted)});
  EXPECT_TRUE(offender.Closed());
  EXPECT_TRUE(Written(broker_, offender).empty());
  offender.Finish();

  EXPECT_FALSE(bystander.Closed());
  EXPECT_FALSE(pub.Closed());
  bystander.Send(mqtt::Puback{IdOf(in_flight[0]), ReasonCode::kSuccess, {}});
  PublishAndComplete(pub, "t", "still here", QoS::k1, 2);
  EXPECT_EQ(ReceiveAndAcknowledge(bystander),
            (std::vector<std::string>{"offender gone", "still here"}));
  EXPECT_EQ(broker_.counters().protocol_errors, 1U);
}

TEST_F(BrokerConformanceTest, TransientErrorClosesOnlyTheConnectionItHappenedOn) {
  // [MQTT-4.8.0-2]; §4.8 (SHOULD): a socket error (reported by the net layer as OnPeerClosed)
  // in the middle of an inbound PUBLISH closes that connection; the half packet is not routed,
  // the other clients see nothing, and the persistent session survives.
  TestClient bystander(broker_, clock_);
  bystander.Connect("bystander");
  Subscribe(bystander, "t", QoS::k1);
  TestClient victim(broker_, clock_);
  victim.Connect("victim", /*clean=*/false);
  Subscribe(victim, "v", QoS::k1);
  Bytes half = Encoded(MakePublish("t", "never routed", QoS::k1, 4));
  half.resize(half.size() / 2);
  victim.SendRaw(half);
  victim.Drop();
  EXPECT_EQ(Show(bystander.Receive()), "");
  EXPECT_EQ(broker_.connection_count(), 1U);

  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  PublishAndComplete(pub, "t", "still here", QoS::k1, 1);
  PublishAndComplete(pub, "v", "for the victim", QoS::k1, 2);
  EXPECT_EQ(ReceiveAndAcknowledge(bystander), (std::vector<std::string>{"still here"}));
  TestClient back(broker_, clock_);
  EXPECT_EQ(ConnectAndShow(back, "victim", /*clean=*/false),
            "CONNACK sp1 rc00 | PUBLISH v 'for the victim' q1 dup0 r0");
}

}  // namespace
}  // namespace tinymq::broker
