#include <gtest/gtest.h>

#include "tests/unit/broker/broker_conformance_test_util.h"

// Conformance tests of the broker core (QoS flows, retained, subscriptions): the rows of
// docs/conformance.md with Status `broker` that the BrokerTest cases did not show yet. Each test
// body starts with the statement ids it shows, so that scripts/spec-refs.py finds it. Ids are
// MQTT 3.1.1 numbers; a 5.0 number is written "5.0 [MQTT-...]" (the two specifications reuse
// numbers for different statements, and spec-refs.py cannot tell them apart).
//
// What the broker writes is checked exactly: as bytes where the encoding matters, else through
// Show(), a one-line rendering of each packet.

namespace tinymq::broker {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace): test helpers

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
  const auto disconnect = silent.Expect<mqtt::Disconnect>();
  EXPECT_EQ(disconnect.reason, ReasonCode::kKeepAliveTimeout);
  EXPECT_EQ(disconnect.properties.Text(mqtt::PropertyId::kReasonString), "keep-alive timeout");
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
  // 5.0 [MQTT-3.8.4-1], 5.0 [MQTT-3.8.4-2]: 5.0 failure codes in place (the shared subscription
  // is granted: shared subscriptions are on by default).
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("x", {QoS::k1, false, false, 0})
      .Add("$share/g/x", {QoS::k0, false, false, 0})
      .Add("a/#/b", {QoS::k0, false, false, 0})
      .Add("y", {QoS::k2, false, false, 0});
  sub.Send(mqtt::Subscribe{9, {}, b.view()});
  EXPECT_EQ(Show(sub.Receive()), "SUBACK 9 [01 00 8f 02]");
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
