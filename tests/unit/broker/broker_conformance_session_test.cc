#include <gtest/gtest.h>

#include "tests/unit/broker/broker_conformance_test_util.h"

// Conformance tests of the broker core (CONNECT, sessions, wills): the rows of docs/conformance.md
// with Status `broker` that the BrokerTest cases did not show yet. Each test body starts with the
// statement ids it shows, so that scripts/spec-refs.py finds it. Ids are MQTT 3.1.1 numbers; a 5.0
// number is written "5.0 [MQTT-...]" (the two specifications reuse numbers for different
// statements, and spec-refs.py cannot tell them apart).
//
// What the broker writes is checked exactly: as bytes where the encoding matters, else through
// Show(), a one-line rendering of each packet.

namespace tinymq::broker {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace): test helpers

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
  EXPECT_EQ(v5.Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
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
  const auto refused = malformed.Expect<mqtt::Connack>();
  EXPECT_FALSE(refused.session_present);
  EXPECT_EQ(refused.reason, ReasonCode::kMalformedPacket);
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

}  // namespace
}  // namespace tinymq::broker
