#include "tinymq/broker/broker.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"

namespace tinymq::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;

// Subscribes `client` to `filter` at `qos` and returns the SUBACK's code.
ReasonCode Subscribe(TestClient& client, std::string_view filter, QoS qos,
                     std::uint16_t packet_id = 1) {
  mqtt::SubscriptionListBuilder b;
  b.Add(filter, {qos, false, false, 0});
  client.Send(mqtt::Subscribe{packet_id, {}, b.view()});
  const auto suback = client.Expect<mqtt::Suback>();
  EXPECT_EQ(suback.packet_id, packet_id);
  return suback.reason_codes.empty() ? ReasonCode::kUnspecifiedError : suback.reason_codes[0];
}

std::string PayloadOf(const mqtt::Packet& p) {
  return std::string(std::get<mqtt::Publish>(p).payload.AsString());
}

class BrokerTest : public ::testing::Test {
 protected:
  Limits limits_;
  FakeClock clock_;
  Broker broker_{limits_};
};

// ---------------------------------------------------------------------------------------------
// CONNECT

TEST_F(BrokerTest, ConnectGetsConnackAccepted) {
  TestClient c(broker_, clock_);
  const mqtt::Connack ack = c.Connect("c1");
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_FALSE(ack.session_present);  // [MQTT-3.2.2-1]: clean session
  EXPECT_FALSE(c.Closed());
}

TEST_F(BrokerTest, EmptyClientIdWithCleanSessionIsGivenOne) {
  TestClient c(broker_, clock_);
  EXPECT_EQ(c.Connect("", /*clean=*/true).reason, ReasonCode::kSuccess);  // [MQTT-3.1.3-6]
  EXPECT_EQ(broker_.session_count(), 1U);
}

TEST_F(BrokerTest, EmptyClientIdWithPersistentSessionIsRefusedWith0x02) {
  TestClient c(broker_, clock_);
  std::vector<std::uint8_t> bytes;
  ASSERT_TRUE(
      mqtt::Encode(mqtt::Connect{ProtocolVersion::kV311, false, 0, {}, "", {}, {}, {}}, bytes));
  c.SendRaw(bytes);
  // [MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then close.
  const std::vector<std::uint8_t> expected = {0x20, 0x02, 0x00, 0x02};
  EXPECT_EQ(broker_.CopyOutput(c.id()), expected);
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerTest, UnsupportedProtocolLevelGetsConnack0x01ThenClose) {
  TestClient c(broker_, clock_);
  // "MQTT" level 6.
  c.SendRaw({0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00});
  EXPECT_EQ(broker_.CopyOutput(c.id()),
            (std::vector<std::uint8_t>{0x20, 0x02, 0x00, 0x01}));  // [MQTT-3.1.2-2]
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerTest, FirstPacketOtherThanConnectClosesWithoutAnswer) {
  TestClient c(broker_, clock_);
  c.Send(mqtt::Pingreq{});  // [MQTT-3.1.0-1]
  EXPECT_TRUE(c.Receive().empty());
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerTest, SecondConnectIsAProtocolViolation) {
  TestClient c(broker_, clock_);
  c.Connect("c1");
  mqtt::Connect again;
  again.client_id = "c1";
  c.Send(again);  // [MQTT-3.1.0-2]
  EXPECT_TRUE(c.Closed());
  EXPECT_EQ(broker_.counters().protocol_errors, 1U);
}

TEST_F(BrokerTest, NoConnectWithinTheTimeoutCloses) {
  TestClient c(broker_, clock_);
  clock_.Advance(limits_.connect_timeout - milliseconds(1));
  broker_.OnTimer(clock_.Now());
  EXPECT_FALSE(c.Closed());
  clock_.Advance(milliseconds(2));
  ASSERT_TRUE(broker_.NextDeadline().has_value());
  EXPECT_LE(*broker_.NextDeadline(), clock_.Now());
  broker_.OnTimer(clock_.Now());
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerTest, KeepAliveIsEnforcedAtOneAndAHalfTimes) {
  TestClient c(broker_, clock_);
  c.Connect("c1", true, /*keep_alive=*/10);
  clock_.Advance(seconds(14));
  broker_.OnTimer(clock_.Now());
  c.Send(mqtt::Pingreq{});  // activity moves the deadline
  (void)c.Expect<mqtt::Pingresp>();
  clock_.Advance(seconds(14));
  broker_.OnTimer(clock_.Now());
  EXPECT_FALSE(c.Closed());
  clock_.Advance(milliseconds(1001));  // 15.001 s after the PINGREQ
  broker_.OnTimer(clock_.Now());
  EXPECT_TRUE(c.Closed());  // [MQTT-3.1.2-24]
}

TEST_F(BrokerTest, TakeoverClosesTheOldConnectionAndKeepsTheSession) {
  TestClient old_client(broker_, clock_);
  old_client.Connect("same", /*clean=*/false);
  Subscribe(old_client, "t", QoS::k1);
  TestClient new_client(broker_, clock_);
  const mqtt::Connack ack = new_client.Connect("same", /*clean=*/false);
  EXPECT_TRUE(old_client.Closed());  // [MQTT-3.1.4-2]
  EXPECT_TRUE(ack.session_present);
  old_client.Finish();
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "after takeover", QoS::k0));
  const auto msg = new_client.Expect<mqtt::Publish>();
  EXPECT_EQ(msg.payload.AsString(), "after takeover");
}

// ---------------------------------------------------------------------------------------------
// QoS flows

TEST_F(BrokerTest, Qos0RoundTrip) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  EXPECT_EQ(Subscribe(sub, "a/+", QoS::k0), ReasonCode::kSuccess);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("a/b", "hello", QoS::k0));
  EXPECT_TRUE(pub.Receive().empty());  // no acknowledgement for QoS 0
  const auto msg = sub.Expect<mqtt::Publish>();
  EXPECT_EQ(msg.topic, "a/b");
  EXPECT_EQ(msg.payload.AsString(), "hello");
  EXPECT_EQ(msg.qos, QoS::k0);
  EXPECT_FALSE(msg.retain);
}

TEST_F(BrokerTest, Qos1FlowInBothDirections) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  EXPECT_EQ(Subscribe(sub, "t", QoS::k1), ReasonCode::kGrantedQos1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "m", QoS::k1, 7));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().packet_id, 7);  // [MQTT-4.3.2-2]
  const auto msg = sub.Expect<mqtt::Publish>();
  EXPECT_EQ(msg.qos, QoS::k1);
  EXPECT_NE(msg.packet_id, 0);
  sub.Send(mqtt::Puback{msg.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(sub.Receive().empty());
}

TEST_F(BrokerTest, Qos2FlowInBothDirections) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  EXPECT_EQ(Subscribe(sub, "t", QoS::k2), ReasonCode::kGrantedQos2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "m", QoS::k2, 9));
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().packet_id, 9);
  pub.Send(mqtt::Pubrel{9, ReasonCode::kSuccess, {}});
  EXPECT_EQ(pub.Expect<mqtt::Pubcomp>().packet_id, 9);
  const auto msg = sub.Expect<mqtt::Publish>();
  EXPECT_EQ(msg.qos, QoS::k2);
  sub.Send(mqtt::Pubrec{msg.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(sub.Expect<mqtt::Pubrel>().packet_id, msg.packet_id);
  sub.Send(mqtt::Pubcomp{msg.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(sub.Receive().empty());
}

TEST_F(BrokerTest, Qos2ResentBeforePubrelIsRoutedOnce) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k0);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  mqtt::Publish p = MakePublish("t", "once", QoS::k2, 5);
  pub.Send(p);
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().packet_id, 5);
  p.dup = true;
  pub.Send(p);  // the PUBREC was "lost"
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().packet_id, 5);
  EXPECT_EQ(sub.Receive().size(), 1U);  // [MQTT-4.3.3-2]: delivered once
  pub.Send(mqtt::Pubrel{5, ReasonCode::kSuccess, {}});
  EXPECT_EQ(pub.Expect<mqtt::Pubcomp>().packet_id, 5);
  pub.Send(MakePublish("t", "new message, same id", QoS::k2, 5));  // id is free again
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().packet_id, 5);
  EXPECT_EQ(sub.Receive().size(), 1U);
}

TEST_F(BrokerTest, DeliveryIsAtTheLowerOfPublishAndSubscriptionQos) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "low", QoS::k0, 1);
  Subscribe(sub, "high", QoS::k2, 2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("low", "x", QoS::k2, 1));
  (void)pub.Receive();
  EXPECT_EQ(sub.Expect<mqtt::Publish>().qos, QoS::k0);
  pub.Send(MakePublish("high", "x", QoS::k1, 2));
  (void)pub.Receive();
  EXPECT_EQ(sub.Expect<mqtt::Publish>().qos, QoS::k1);
}

TEST_F(BrokerTest, OverlappingSubscriptionsDeliverOnceAtTheHighestQos) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "a/#", QoS::k0, 1);
  Subscribe(sub, "a/+", QoS::k2, 2);
  Subscribe(sub, "a/b", QoS::k1, 3);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("a/b", "x", QoS::k2, 1));
  (void)pub.Receive();
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(std::get<mqtt::Publish>(got[0]).qos, QoS::k2);
}

TEST_F(BrokerTest, InflightWindowHoldsBackMessagesUntilAcknowledged) {
  limits_.max_inflight = 2;
  Broker broker(limits_);
  TestClient sub(broker, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k1);
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  for (std::uint16_t i = 1; i <= 5; ++i) {
    pub.Send(MakePublish("t", std::to_string(i) == "1" ? "1" : "n", QoS::k1, i));
  }
  std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 2U);
  sub.Send(mqtt::Puback{std::get<mqtt::Publish>(got[0]).packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(sub.Receive().size(), 1U);
}

// ---------------------------------------------------------------------------------------------
// Sessions

TEST_F(BrokerTest, PersistentSessionQueuesWhileOfflineAndDeliversInOrder) {
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k1);
    sub.Send(mqtt::Disconnect{});
    sub.Finish();
  }
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  const std::vector<std::string> payloads = {"one", "two", "three"};
  std::uint16_t id = 1;
  for (const std::string& p : payloads) {
    pub.Send(MakePublish("t", p, QoS::k1, id++));
    (void)pub.Receive();
  }
  pub.Send(MakePublish("t", "qos0 is not queued", QoS::k0));
  TestClient sub(broker_, clock_);
  mqtt::Connect c;
  c.client_id = "sub";
  c.clean_start = false;
  sub.Send(c);
  std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 4U);
  EXPECT_TRUE(std::get<mqtt::Connack>(got[0]).session_present);  // [MQTT-3.2.2-2]
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(PayloadOf(got[i + 1]), payloads[i]);
  }
}

TEST_F(BrokerTest, UnacknowledgedPublishAndPubrelAreResentInOrderOnReconnect) {
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  std::uint16_t first_id = 0;
  std::uint16_t second_id = 0;
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k2);
    pub.Send(MakePublish("t", "first", QoS::k2, 1));
    pub.Send(MakePublish("t", "second", QoS::k1, 2));
    (void)pub.Receive();
    std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_EQ(got.size(), 2U);
    first_id = std::get<mqtt::Publish>(got[0]).packet_id;
    second_id = std::get<mqtt::Publish>(got[1]).packet_id;
    // The first gets half-way (PUBREC, so the broker sends PUBREL); the second gets nothing.
    sub.Send(mqtt::Pubrec{first_id, ReasonCode::kSuccess, {}});
    EXPECT_EQ(sub.Expect<mqtt::Pubrel>().packet_id, first_id);
    sub.Drop();
  }
  pub.Send(MakePublish("t", "third, queued while offline", QoS::k1, 3));
  (void)pub.Receive();
  TestClient sub(broker_, clock_);
  mqtt::Connect c;
  c.client_id = "sub";
  c.clean_start = false;
  sub.Send(c);
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 4U);
  EXPECT_TRUE(std::get<mqtt::Connack>(got[0]).session_present);
  // [MQTT-4.4.0-1]: PUBLISH with DUP for the second, PUBREL for the first, then what was
  // queued. (A released entry moves behind the unacknowledged PUBLISHes: §4.6 orders PUBLISHes
  // among themselves and PUBRELs among themselves, not one kind against the other.)
  EXPECT_EQ(std::get<mqtt::Pubrel>(got[2]).packet_id, first_id);
  const auto& resent = std::get<mqtt::Publish>(got[1]);
  EXPECT_EQ(resent.packet_id, second_id);
  EXPECT_TRUE(resent.dup);
  EXPECT_EQ(resent.payload.AsString(), "second");
  const auto& queued = std::get<mqtt::Publish>(got[3]);
  EXPECT_FALSE(queued.dup);
  EXPECT_EQ(queued.payload.AsString(), "third, queued while offline");
}

TEST_F(BrokerTest, PubrelsAreResentInTheOrderOfTheirPubrecs) {
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  std::uint16_t ids[2] = {0, 0};
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k2);
    pub.Send(MakePublish("t", "a", QoS::k2, 1));
    pub.Send(MakePublish("t", "b", QoS::k2, 2));
    (void)pub.Receive();
    std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_EQ(got.size(), 2U);
    ids[0] = std::get<mqtt::Publish>(got[0]).packet_id;
    ids[1] = std::get<mqtt::Publish>(got[1]).packet_id;
    sub.Send(mqtt::Pubrec{ids[1], ReasonCode::kSuccess, {}});  // the second first
    sub.Send(mqtt::Pubrec{ids[0], ReasonCode::kSuccess, {}});
    EXPECT_EQ(sub.Receive().size(), 2U);
    sub.Drop();
  }
  TestClient sub(broker_, clock_);
  mqtt::Connect c;
  c.client_id = "sub";
  c.clean_start = false;
  sub.Send(c);
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 3U);
  // [MQTT-4.6.0-3]: PUBRELs in the order the PUBRECs were received.
  EXPECT_EQ(std::get<mqtt::Pubrel>(got[1]).packet_id, ids[1]);
  EXPECT_EQ(std::get<mqtt::Pubrel>(got[2]).packet_id, ids[0]);
}

TEST_F(BrokerTest, CleanSessionDiscardsTheOldSession) {
  {
    TestClient sub(broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k1);
    sub.Drop();
  }
  EXPECT_EQ(broker_.session_count(), 1U);
  TestClient sub(broker_, clock_);
  EXPECT_FALSE(sub.Connect("sub", /*clean=*/true).session_present);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "x", QoS::k1, 1));
  (void)pub.Receive();
  EXPECT_TRUE(sub.Receive().empty());  // the subscription went with the old session
  sub.Send(mqtt::Disconnect{});
  sub.Finish();
  EXPECT_EQ(broker_.session_count(), 1U);  // only "pub" is left
}

TEST_F(BrokerTest, FullQueueDropsNewMessagesAndCountsThem) {
  limits_.max_queued_messages = 3;
  Broker broker(limits_);
  {
    TestClient sub(broker, clock_);
    sub.Connect("sub", false);
    Subscribe(sub, "t", QoS::k1);
    sub.Drop();
  }
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  for (std::uint16_t i = 1; i <= 5; ++i) {
    pub.Send(MakePublish("t", "m", QoS::k1, i));
  }
  EXPECT_EQ(broker.counters().dropped_queue_full, 2U);
}

TEST_F(BrokerTest, TenThousandQueuedMessagesAreResentInOrder) {
  limits_.max_queued_messages = 20000;
  Broker broker(limits_);
  {
    TestClient sub(broker, clock_);
    sub.Connect("sub", false);
    Subscribe(sub, "t", QoS::k1);
    sub.Drop();
  }
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  for (int i = 0; i < 10000; ++i) {
    const std::string payload = std::to_string(i);
    pub.Send(MakePublish("t", payload, QoS::k1, static_cast<std::uint16_t>(i % 60000 + 1)));
    (void)pub.Receive();
  }
  TestClient sub(broker, clock_);
  mqtt::Connect c;
  c.client_id = "sub";
  c.clean_start = false;
  sub.Send(c);
  int next = 0;
  bool first = true;
  while (next < 10000) {
    std::vector<mqtt::Packet> got = sub.Receive();
    ASSERT_FALSE(got.empty()) << "stalled at " << next;
    for (const mqtt::Packet& p : got) {
      if (first) {
        ASSERT_TRUE(std::holds_alternative<mqtt::Connack>(p));
        first = false;
        continue;
      }
      const auto& m = std::get<mqtt::Publish>(p);
      ASSERT_EQ(m.payload.AsString(), std::to_string(next));
      ++next;
      sub.Send(mqtt::Puback{m.packet_id, ReasonCode::kSuccess, {}});
    }
  }
  EXPECT_EQ(next, 10000);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and retained messages

TEST_F(BrokerTest, InvalidFilterGetsFailureInSuback) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  EXPECT_EQ(Subscribe(sub, "a/#/b", QoS::k1), ReasonCode::kUnspecifiedError);  // 0x80 in 3.1.1
  EXPECT_FALSE(sub.Closed());
}

TEST_F(BrokerTest, UnsubscribeOfUnknownFilterIsAcknowledged) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::TopicFilterListBuilder b;
  b.Add("never/subscribed");
  sub.Send(mqtt::Unsubscribe{3, {}, b.view()});
  EXPECT_EQ(sub.Expect<mqtt::Unsuback>().packet_id, 3);  // [MQTT-3.10.4-5]
}

TEST_F(BrokerTest, UnsubscribeStopsDelivery) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k0);
  mqtt::TopicFilterListBuilder b;
  b.Add("t");
  sub.Send(mqtt::Unsubscribe{2, {}, b.view()});
  (void)sub.Expect<mqtt::Unsuback>();
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "x"));
  EXPECT_TRUE(sub.Receive().empty());
  EXPECT_EQ(broker_.subscription_count(), 0U);
}

TEST_F(BrokerTest, RetainedMessageIsDeliveredOnSubscribeWithRetainSet) {
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("sensors/1", "old", QoS::k1, 1, /*retain=*/true));
  pub.Send(MakePublish("sensors/1", "new", QoS::k1, 2, /*retain=*/true));  // replaces
  pub.Send(MakePublish("sensors/2", "two", QoS::k0, 0, /*retain=*/true));
  (void)pub.Receive();
  EXPECT_EQ(broker_.retained_count(), 2U);
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("sensors/+", {QoS::k1, false, false, 0});
  sub.Send(mqtt::Subscribe{1, {}, b.view()});
  std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 3U);
  EXPECT_TRUE(std::holds_alternative<mqtt::Suback>(got[0]));  // SUBACK first
  std::vector<std::string> payloads;
  for (std::size_t i = 1; i < got.size(); ++i) {
    const auto& m = std::get<mqtt::Publish>(got[i]);
    EXPECT_TRUE(m.retain);  // [MQTT-3.3.1-8]
    payloads.emplace_back(m.payload.AsString());
  }
  std::sort(payloads.begin(), payloads.end());
  EXPECT_EQ(payloads, (std::vector<std::string>{"new", "two"}));
}

TEST_F(BrokerTest, EmptyRetainedPayloadDeletesAndIsForwardedOnce) {
  TestClient live(broker_, clock_);
  live.Connect("live");
  Subscribe(live, "t", QoS::k0);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "kept", QoS::k0, 0, true));
  EXPECT_EQ(live.Expect<mqtt::Publish>().payload.AsString(), "kept");
  EXPECT_EQ(broker_.retained_count(), 1U);
  pub.Send(MakePublish("t", "", QoS::k0, 0, true));  // [MQTT-3.3.1-10]
  const auto forwarded = live.Expect<mqtt::Publish>();
  EXPECT_TRUE(forwarded.payload.empty());
  EXPECT_FALSE(forwarded.retain);  // [MQTT-3.3.1-9]
  EXPECT_EQ(broker_.retained_count(), 0U);
  TestClient late(broker_, clock_);
  late.Connect("late");
  Subscribe(late, "t", QoS::k0);
  EXPECT_TRUE(late.Receive().empty());
}

TEST_F(BrokerTest, ResubscribeReplacesAndResendsRetained) {
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("r", "retained", QoS::k0, 0, true));
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("r", {QoS::k0, false, false, 0});
  sub.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_EQ(sub.Receive().size(), 2U);  // SUBACK + retained
  sub.Send(mqtt::Subscribe{2, {}, b.view()});
  EXPECT_EQ(sub.Receive().size(), 2U);          // [MQTT-3.8.4-3]: retained sent again
  EXPECT_EQ(broker_.subscription_count(), 1U);  // replaced, not added
}

TEST_F(BrokerTest, WildcardFiltersDoNotMatchDollarTopics) {
  broker_.PublishSystem("$SYS/x", "sys", /*retain=*/true, clock_.Now());
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  mqtt::SubscriptionListBuilder b;
  b.Add("#", {QoS::k0, false, false, 0});
  sub.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_EQ(sub.Receive().size(), 1U);  // SUBACK only: [MQTT-4.7.2-1]
}

TEST_F(BrokerTest, SystemTopicsAreTheBrokersOwn) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  EXPECT_EQ(Subscribe(sub, "$SYS/#", QoS::k1), ReasonCode::kGrantedQos1);
  broker_.PublishSystem("$SYS/broker/uptime", "5 seconds", /*retain=*/true, clock_.Now());
  std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(std::get<mqtt::Publish>(got[0]).topic, "$SYS/broker/uptime");
  EXPECT_EQ(PayloadOf(got[0]), "5 seconds");
  // A client may not publish there: acknowledged (3.1.1 cannot refuse) and dropped.
  TestClient spoof(broker_, clock_);
  spoof.Connect("spoof");
  spoof.Send(MakePublish("$SYS/broker/uptime", "0 seconds", QoS::k1, 7, true));
  EXPECT_EQ(spoof.Expect<mqtt::Puback>().packet_id, 7);
  EXPECT_TRUE(sub.Receive().empty());
  EXPECT_EQ(broker_.counters().denied_publish, 1U);
  // The retained value is still the broker's.
  TestClient late(broker_, clock_);
  late.Connect("late");
  mqtt::SubscriptionListBuilder b;
  b.Add("$SYS/broker/uptime", {QoS::k0, false, false, 0});
  late.Send(mqtt::Subscribe{1, {}, b.view()});
  got = late.Receive();
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(PayloadOf(got[1]), "5 seconds");
}

TEST_F(BrokerTest, CountersCountMessagesByQosAndTheirBytes) {
  TestClient sub(broker_, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k2);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "abc", QoS::k0));
  pub.Send(MakePublish("t", "de", QoS::k1, 1));
  EXPECT_EQ(broker_.counters().received_by_qos, (std::array<std::uint64_t, 3>{1, 1, 0}));
  EXPECT_EQ(broker_.counters().publish_bytes_received, (std::array<std::uint64_t, 3>{3, 2, 0}));
  EXPECT_EQ(broker_.counters().sent_by_qos, (std::array<std::uint64_t, 3>{1, 1, 0}));
  EXPECT_EQ(broker_.counters().publish_bytes_sent, (std::array<std::uint64_t, 3>{3, 2, 0}));
  const Broker::SessionGauges gauges = broker_.StepSessionGauges(1000);  // one whole walk
  EXPECT_EQ(gauges.clients_connected, 2U);
  EXPECT_EQ(gauges.inflight, 1U);  // the QoS 1 one, not yet acknowledged
  EXPECT_EQ(gauges.queued, 0U);
  pub.Drop();
  EXPECT_EQ(broker_.counters().connections_closed, 1U);
}

TEST_F(BrokerTest, SessionGaugesWalkABoundedNumberOfSlotsPerStep) {
  // Five persistent sessions, two of them connected; an offline one holds three queued
  // messages; the subscriber that stays has one unacknowledged in flight.
  TestClient live(broker_, clock_);
  live.Connect("live", /*clean=*/false);
  Subscribe(live, "t", QoS::k1);
  for (const char* id : {"off-1", "off-2", "off-3"}) {
    TestClient c(broker_, clock_);
    c.Connect(id, /*clean=*/false);
    Subscribe(c, id == std::string("off-2") ? "t" : "u", QoS::k1);
    c.Drop();
  }
  TestClient pub(broker_, clock_);
  pub.Connect("pub", /*clean=*/false);
  for (std::uint16_t i = 1; i <= 3; ++i) {
    pub.Send(MakePublish("t", "m", QoS::k1, i));
  }
  // Two slots a step: the first steps report the last whole walk (none yet: zeros), and the
  // walk over five slots completes on the third.
  EXPECT_EQ(broker_.StepSessionGauges(2).clients_connected, 0U);
  EXPECT_EQ(broker_.StepSessionGauges(2).clients_connected, 0U);
  Broker::SessionGauges g = broker_.StepSessionGauges(2);
  EXPECT_EQ(g.clients_connected, 2U);
  EXPECT_EQ(g.queued, 3U);    // off-2's
  EXPECT_GE(g.inflight, 1U);  // live's window takes what its receive maximum allows
  EXPECT_EQ(g.queued + g.inflight, 6U);
  // A session that ends between steps frees its slot: the next whole walk skips it.
  TestClient again(broker_, clock_);
  again.Connect("off-2", /*clean=*/true);  // a clean start ends the old session and its queue
  again.Drop();
  for (int i = 0; i < 2; ++i) {
    broker_.StepSessionGauges(2);
  }
  g = broker_.StepSessionGauges(2);
  EXPECT_EQ(g.clients_connected, 2U);
  EXPECT_EQ(g.queued, 0U);
  EXPECT_EQ(g.queued + g.inflight, 3U);
}

TEST_F(BrokerTest, SetPeerRenamesTheConnectionInItsLogLines) {
  std::vector<std::string> lines;
  Broker broker(limits_, [&](LogLevel, std::string_view text) { lines.emplace_back(text); });
  TestClient c(broker, clock_);
  broker.SetPeer(c.id(), "192.0.2.7:4242");
  c.Connect("behind-a-balancer");
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("connected from 192.0.2.7:4242"), std::string::npos) << lines.back();
}

// ---------------------------------------------------------------------------------------------
// Wills

mqtt::Connect WithWill(std::string_view client_id, std::string_view topic, std::string_view payload,
                       QoS qos = QoS::k0, bool retain = false) {
  mqtt::Connect c;
  c.client_id = client_id;
  c.will = mqtt::Will{qos, retain, {}, topic, mqtt::BinaryView::Of(payload)};
  return c;
}

TEST_F(BrokerTest, WillIsPublishedWhenTheConnectionDropsWithoutDisconnect) {
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "wills/#", QoS::k1);
  TestClient dying(broker_, clock_);
  dying.Send(WithWill("dying", "wills/dying", "gone", QoS::k1, /*retain=*/true));
  (void)dying.Receive();
  dying.Drop();
  const auto will = watcher.Expect<mqtt::Publish>();
  EXPECT_EQ(will.topic, "wills/dying");
  EXPECT_EQ(will.payload.AsString(), "gone");
  EXPECT_EQ(will.qos, QoS::k1);
  EXPECT_EQ(broker_.retained_count(), 1U);  // the will's retain flag is honoured
}

TEST_F(BrokerTest, WillIsPublishedOnKeepAliveTimeoutAndProtocolViolation) {
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient idle(broker_, clock_);
  mqtt::Connect c = WithWill("idle", "w", "timeout");
  c.keep_alive = 2;
  idle.Send(c);
  (void)idle.Receive();
  clock_.Advance(seconds(4));
  broker_.OnTimer(clock_.Now());
  EXPECT_EQ(watcher.Expect<mqtt::Publish>().payload.AsString(), "timeout");
  TestClient rude(broker_, clock_);
  rude.Send(WithWill("rude", "w", "violation"));
  (void)rude.Receive();
  rude.SendRaw({0x30, 0x03, 0x00, 0x01, '#'});  // wildcard in a topic name
  EXPECT_TRUE(rude.Closed());
  EXPECT_EQ(watcher.Expect<mqtt::Publish>().payload.AsString(), "violation");
}

TEST_F(BrokerTest, WillIsDiscardedOnDisconnect) {
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient polite(broker_, clock_);
  polite.Send(WithWill("polite", "w", "should not appear"));
  (void)polite.Receive();
  polite.Send(mqtt::Disconnect{});  // [MQTT-3.14.4-3]
  polite.Finish();
  EXPECT_TRUE(watcher.Receive().empty());
}

TEST_F(BrokerTest, WillIsPublishedOnTakeover) {
  TestClient watcher(broker_, clock_);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient first(broker_, clock_);
  first.Send(WithWill("dup", "w", "taken over"));
  (void)first.Receive();
  TestClient second(broker_, clock_);
  second.Connect("dup");
  EXPECT_EQ(watcher.Expect<mqtt::Publish>().payload.AsString(), "taken over");
}

// ---------------------------------------------------------------------------------------------
// MQTT 5.0 properties that travel with a message (5.0 §3.3.4), across versions

mqtt::Publish WithProperties(mqtt::Publish p, const mqtt::PropertiesBuilder& b) {
  p.properties = b.view();
  return p;
}

TEST_F(BrokerTest, V5MessagePropertiesReachA5SubscriberUnchangedAndInOrder) {
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub5");
  Subscribe(sub, "req/#", QoS::k1);
  TestClient pub(broker_, clock_, ProtocolVersion::kV5);
  pub.Connect("pub5");
  mqtt::PropertiesBuilder b;
  b.AddUserProperty("b", "2")
      .Add(mqtt::PropertyId::kContentType, "application/json")
      .Add(mqtt::PropertyId::kPayloadFormatIndicator, 1U)
      .Add(mqtt::PropertyId::kResponseTopic, "resp/1")
      .AddBinary(mqtt::PropertyId::kCorrelationData,
                 mqtt::BinaryView::Of(std::string_view("\x01\x00\xff", 3)))
      .AddUserProperty("a", "1")
      .AddUserProperty("b", "3");
  pub.Send(WithProperties(MakePublish("req/x", "{}", QoS::k1, 1), b));
  (void)pub.Receive();
  // 5.0 [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-18],
  // [MQTT-3.3.2-20]: forwarded unaltered, user properties in their order.
  EXPECT_EQ(sub.Expect<mqtt::Publish>().properties.bytes(), b.view().bytes());
}

TEST_F(BrokerTest, PropertiesThatBelongToOneHopAreNotForwarded) {
  mqtt::PropertiesBuilder sub_id;
  sub_id.Add(mqtt::PropertyId::kSubscriptionIdentifier, 7U);
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  sub.Connect("sub5");
  Subscribe(sub, "t", QoS::k0);
  TestClient pub(broker_, clock_, ProtocolVersion::kV5);
  pub.Connect("pub5");
  mqtt::PropertiesBuilder b;
  b.AddUserProperty("k", "v");
  pub.Send(WithProperties(MakePublish("t", "x"), b));
  EXPECT_EQ(sub.Expect<mqtt::Publish>().properties.bytes(), b.view().bytes());
  // 5.0 [MQTT-3.3.4-6]: a Subscription Identifier from a client is a Protocol Error.
  pub.Send(WithProperties(MakePublish("t", "x"), sub_id));
  EXPECT_EQ(pub.Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(pub.Closed());
  EXPECT_TRUE(sub.Receive().empty());
}

TEST_F(BrokerTest, MixedVersionsDropWhatTheReceiverCannotHoldAndRetainedKeepProperties) {
  TestClient old_sub(broker_, clock_, ProtocolVersion::kV311);
  old_sub.Connect("sub311");
  Subscribe(old_sub, "t", QoS::k0);
  TestClient pub(broker_, clock_, ProtocolVersion::kV5);
  pub.Connect("pub5");
  mqtt::PropertiesBuilder b;
  b.AddUserProperty("k", "v").Add(mqtt::PropertyId::kContentType, "text/plain");
  pub.Send(WithProperties(MakePublish("t", "hello", QoS::k0, 0, /*retain=*/true), b));
  const auto got = old_sub.Expect<mqtt::Publish>();  // decodes as 3.1.1: no properties field
  EXPECT_EQ(got.payload.AsString(), "hello");
  EXPECT_TRUE(got.properties.empty());
  // A 3.1.1 publisher's message reaches a 5.0 subscriber without properties.
  TestClient new_sub(broker_, clock_, ProtocolVersion::kV5);
  new_sub.Connect("sub5");
  mqtt::SubscriptionListBuilder filters;
  filters.Add("t", {QoS::k0, false, false, 0});
  new_sub.Send(mqtt::Subscribe{1, {}, filters.view()});
  const std::vector<mqtt::Packet> on_subscribe = new_sub.Receive();
  ASSERT_EQ(on_subscribe.size(), 2U);
  // 5.0 §3.3.1.3: a retained message keeps its properties.
  EXPECT_EQ(std::get<mqtt::Publish>(on_subscribe[1]).properties.bytes(), b.view().bytes());
  TestClient old_pub(broker_, clock_, ProtocolVersion::kV311);
  old_pub.Connect("pub311");
  old_pub.Send(MakePublish("t", "plain"));
  EXPECT_TRUE(new_sub.Expect<mqtt::Publish>().properties.empty());
}

TEST_F(BrokerTest, WillPropertiesTravelWithTheWill) {
  TestClient watcher(broker_, clock_, ProtocolVersion::kV5);
  watcher.Connect("watcher");
  Subscribe(watcher, "w", QoS::k0);
  TestClient dying(broker_, clock_, ProtocolVersion::kV5);
  mqtt::PropertiesBuilder will_props;
  will_props.Add(mqtt::PropertyId::kContentType, "text/plain").AddUserProperty("why", "crash");
  mqtt::Connect c;
  c.version = ProtocolVersion::kV5;
  c.client_id = "dying";
  c.will = mqtt::Will{QoS::k0, false, will_props.view(), "w", mqtt::BinaryView::Of("bye")};
  dying.Send(c);
  (void)dying.Receive();
  dying.Drop();
  EXPECT_EQ(watcher.Expect<mqtt::Publish>().properties.bytes(), will_props.view().bytes());
}

// A 5.0 CONNECT for `client_id` carrying `props`.
mqtt::Connect V5ConnectWith(std::string_view client_id, const mqtt::PropertiesBuilder& props,
                            bool clean_start = true) {
  mqtt::Connect c;
  c.version = ProtocolVersion::kV5;
  c.client_id = client_id;
  c.clean_start = clean_start;
  c.properties = props.view();
  return c;
}

TEST_F(BrokerTest, V5ClientReceiveMaximumLimitsUnacknowledgedDeliveries) {
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  mqtt::PropertiesBuilder rm;
  rm.Add(mqtt::PropertyId::kReceiveMaximum, 2U);
  sub.Send(V5ConnectWith("sub5", rm));
  (void)sub.Expect<mqtt::Connack>();
  Subscribe(sub, "t", QoS::k1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  for (std::uint16_t i = 1; i <= 4; ++i) {
    pub.Send(MakePublish("t", "m", QoS::k1, i));
  }
  // 5.0 [MQTT-3.3.4-9]: no more than the client's Receive Maximum unacknowledged.
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 2U);
  sub.Send(mqtt::Puback{std::get<mqtt::Publish>(got[0]).packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(sub.Receive().size(), 1U);
}

TEST_F(BrokerTest, V5MessageLargerThanTheClientMaximumIsNotSent) {
  TestClient sub(broker_, clock_, ProtocolVersion::kV5);
  mqtt::PropertiesBuilder mps;
  mps.Add(mqtt::PropertyId::kMaximumPacketSize, 64U);
  sub.Send(V5ConnectWith("small", mps));
  (void)sub.Expect<mqtt::Connack>();
  Subscribe(sub, "t", QoS::k1);
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", std::string(100, 'x'), QoS::k1, 1));
  pub.Send(MakePublish("t", "fits", QoS::k1, 2));
  // 5.0 [MQTT-3.1.2-25]: discarded as if delivered (not left in flight); the next one goes out.
  const std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(PayloadOf(got[0]), "fits");
  EXPECT_EQ(broker_.counters().dropped_too_large, 1U);
}

// A 5.0 CONNECT with Session Expiry Interval `expiry_s` (left out when 0), built in `props`.
mqtt::Connect V5Connect(std::string_view client_id, bool clean_start, std::uint32_t expiry_s,
                        mqtt::PropertiesBuilder& props) {
  props.Clear();
  if (expiry_s != 0) {
    props.Add(mqtt::PropertyId::kSessionExpiryInterval, expiry_s);
  }
  return V5ConnectWith(client_id, props, clean_start);
}

TEST_F(BrokerTest, V5SessionExpiresAfterItsIntervalUnlessTheClientReturns) {
  mqtt::PropertiesBuilder props;
  {
    TestClient c(broker_, clock_, ProtocolVersion::kV5);
    c.Send(V5Connect("exp", true, /*expiry_s=*/60, props));
    (void)c.Expect<mqtt::Connack>();
    Subscribe(c, "t", QoS::k1);
    c.Drop();
  }
  clock_.Advance(seconds(59));
  broker_.OnTimer(clock_.Now());
  {
    TestClient c(broker_, clock_, ProtocolVersion::kV5);
    c.Send(V5Connect("exp", false, 60, props));
    EXPECT_TRUE(c.Expect<mqtt::Connack>().session_present);  // back in time
    c.Drop();
  }
  clock_.Advance(seconds(59));
  broker_.OnTimer(clock_.Now());  // the first timer is stale: the session was resumed
  EXPECT_EQ(broker_.session_count(), 1U);
  ASSERT_TRUE(broker_.NextDeadline().has_value());
  clock_.Advance(seconds(2));
  broker_.OnTimer(clock_.Now());  // 61 s after the second disconnect: 5.0 §3.1.2.11.2
  EXPECT_EQ(broker_.session_count(), 0U);
  EXPECT_EQ(broker_.subscription_count(), 0U);
  TestClient c(broker_, clock_, ProtocolVersion::kV5);
  c.Send(V5Connect("exp", false, 60, props));
  EXPECT_FALSE(c.Expect<mqtt::Connack>().session_present);
}

TEST_F(BrokerTest, V5SessionExpiryZeroEndsTheSessionWithTheConnection) {
  mqtt::PropertiesBuilder props;
  TestClient c(broker_, clock_, ProtocolVersion::kV5);
  c.Send(V5Connect("zero", false, /*expiry_s=*/0, props));
  (void)c.Expect<mqtt::Connack>();
  c.Drop();
  EXPECT_EQ(broker_.session_count(), 0U);
}

TEST_F(BrokerTest, V5DisconnectMayShortenButNotRaiseFromZero) {
  mqtt::PropertiesBuilder props;
  mqtt::PropertiesBuilder disconnect_props;
  {
    TestClient c(broker_, clock_, ProtocolVersion::kV5);
    c.Send(V5Connect("shorten", true, 3600, props));
    (void)c.Expect<mqtt::Connack>();
    disconnect_props.Add(mqtt::PropertyId::kSessionExpiryInterval, 0U);
    c.Send(mqtt::Disconnect{ReasonCode::kSuccess, disconnect_props.view()});
    c.Finish();
    EXPECT_EQ(broker_.session_count(), 0U);  // set to 0 on the way out: ends now
  }
  TestClient c(broker_, clock_, ProtocolVersion::kV5);
  c.Send(V5Connect("raise", true, 0, props));
  (void)c.Expect<mqtt::Connack>();
  disconnect_props.Clear();
  disconnect_props.Add(mqtt::PropertyId::kSessionExpiryInterval, 30U);
  c.Send(mqtt::Disconnect{ReasonCode::kSuccess, disconnect_props.view()});
  // 5.0 [MQTT-3.14.2-2]: raising it from 0 is a Protocol Error.
  EXPECT_EQ(c.Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(c.Closed());
  c.Finish();
  EXPECT_EQ(broker_.session_count(), 0U);
}

// ---------------------------------------------------------------------------------------------
// Slow subscribers and malformed input

TEST_F(BrokerTest, OutputOverHighWaterDropsQos0AndHoldsQos1) {
  limits_.output_high_water = 64;
  Broker broker(limits_);
  TestClient sub(broker, clock_);
  sub.Connect("sub");
  Subscribe(sub, "t", QoS::k1);
  TestClient pub(broker, clock_);
  pub.Connect("pub");
  const std::string big(100, 'x');
  pub.Send(MakePublish("t", big, QoS::k1, 1));   // fills the output past 64 bytes
  pub.Send(MakePublish("t", "q0", QoS::k0));     // dropped
  pub.Send(MakePublish("t", "q1", QoS::k1, 2));  // held in the session queue
  EXPECT_EQ(broker.counters().dropped_slow_qos0, 1U);
  std::vector<mqtt::Packet> got = sub.Receive();  // drains: the held message follows
  ASSERT_EQ(got.size(), 1U);
  got = sub.Receive();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(PayloadOf(got[0]), "q1");
}

TEST_F(BrokerTest, MalformedPacketClosesOnlyThatConnection) {
  TestClient good(broker_, clock_);
  good.Connect("good");
  Subscribe(good, "t", QoS::k0);
  TestClient bad(broker_, clock_);
  bad.Connect("bad");
  bad.SendRaw({0x36, 0x03, 0x00, 0x01, 't'});  // QoS 3
  EXPECT_TRUE(bad.Closed());
  TestClient pub(broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "still here"));
  EXPECT_EQ(good.Expect<mqtt::Publish>().payload.AsString(), "still here");
}

TEST_F(BrokerTest, PacketsSplitIntoSingleBytesAreHandled) {
  TestClient sub(broker_, clock_);
  mqtt::Connect c;
  c.client_id = "bytewise";
  sub.Send(c, /*chunk=*/1);
  EXPECT_EQ(sub.Expect<mqtt::Connack>().reason, ReasonCode::kSuccess);
}

}  // namespace
}  // namespace tinymq::broker

namespace tinymq::broker {
namespace {

TEST(BrokerOutputTest, FanOutSharesOnePayloadCopyAndPartialWritesResume) {
  FakeClock clock;
  Broker broker{Limits{}};
  TestClient a(broker, clock);
  TestClient b(broker, clock);
  a.Connect("a");
  b.Connect("b");
  for (TestClient* c : {&a, &b}) {
    mqtt::SubscriptionListBuilder list;
    list.Add("t", {QoS::k0, false, false, 0});
    c->Send(mqtt::Subscribe{1, {}, list.view()});
    (void)c->Expect<mqtt::Suback>();
  }
  TestClient pub(broker, clock);
  pub.Connect("pub");
  const std::string payload(1000, 'x');
  pub.Send(MakePublish("t", payload));
  pub.Send(MakePublish("t", "second"));
  std::array<Broker::OutputChunk, 8> chunks_a;
  std::array<Broker::OutputChunk, 8> chunks_b;
  ASSERT_EQ(broker.Output(a.id(), chunks_a), 4U);  // header, payload, header, payload
  ASSERT_EQ(broker.Output(b.id(), chunks_b), 4U);
  // The payload is the message's one copy, for both subscribers.
  EXPECT_EQ(chunks_a[1].data, chunks_b[1].data);
  EXPECT_EQ(chunks_a[1].size, payload.size());
  // At QoS 0 with nothing of the receiver's own, the header is encoded once and shared as well.
  EXPECT_EQ(chunks_a[0].data, chunks_b[0].data);
  // Writes that stop anywhere resume at the next byte: inside a header, inside a payload, at the
  // boundary between them.
  const std::vector<std::uint8_t> all = broker.CopyOutput(a.id());
  std::size_t done = 0;
  for (const std::size_t step :
       {std::size_t{3}, chunks_a[0].size - 3 + 10, payload.size() - 10, std::size_t{1}}) {
    broker.OnWritten(a.id(), step, clock.Now());
    done += step;
    EXPECT_EQ(broker.CopyOutput(a.id()), std::vector<std::uint8_t>(all.begin() + done, all.end()));
    EXPECT_EQ(broker.OutputSize(a.id()), all.size() - done);
  }
  broker.OnWritten(a.id(), all.size() - done, clock.Now());
  EXPECT_EQ(broker.OutputSize(a.id()), 0U);
  // A QoS 1 subscriber gets a header of its own (its packet id), and the same payload.
  TestClient q1(broker, clock);
  q1.Connect("q1");
  mqtt::SubscriptionListBuilder list;
  list.Add("t", {QoS::k1, false, false, 0});
  q1.Send(mqtt::Subscribe{1, {}, list.view()});
  (void)q1.Expect<mqtt::Suback>();
  (void)b.Receive();
  pub.Send(MakePublish("t", payload, QoS::k1, 7));
  std::array<Broker::OutputChunk, 8> chunks_q1;
  ASSERT_EQ(broker.Output(q1.id(), chunks_q1), 2U);
  ASSERT_EQ(broker.Output(b.id(), chunks_b), 2U);
  EXPECT_NE(chunks_q1[0].data, chunks_b[0].data);
  EXPECT_EQ(chunks_q1[1].data, chunks_b[1].data);
  const auto got_q1 = q1.Expect<mqtt::Publish>();
  EXPECT_EQ(got_q1.qos, QoS::k1);
  EXPECT_EQ(got_q1.payload.AsString(), payload);
  // And what b reads decodes to the messages.
  const std::vector<mqtt::Packet> got = b.Receive();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(PayloadOf(got[0]), payload);
  EXPECT_EQ(std::get<mqtt::Publish>(got[0]).qos, QoS::k0);
}

TEST_F(BrokerTest, ShutdownSendsMqtt5ClientsDisconnect0x8BAndKeepsPersistentSessions) {
  // A 5.0 persistent session with a will, a 3.1.1 clean session with a will, a persistent
  // subscriber, and a connection without CONNECT yet.
  TestClient v5(broker_, clock_, ProtocolVersion::kV5);
  mqtt::Connect connect = WithWill("v5", "wills/v5", "v5 gone");
  connect.version = ProtocolVersion::kV5;
  connect.clean_start = false;
  mqtt::PropertiesBuilder expiry;
  expiry.Add(mqtt::PropertyId::kSessionExpiryInterval, std::uint32_t{3600});
  connect.properties = expiry.view();
  v5.Send(connect);
  ASSERT_EQ(v5.Expect<mqtt::Connack>().reason, ReasonCode::kSuccess);
  TestClient clean(broker_, clock_);
  clean.Send(WithWill("clean", "wills/clean", "clean gone", QoS::k1));
  ASSERT_EQ(clean.Expect<mqtt::Connack>().reason, ReasonCode::kSuccess);
  TestClient sub(broker_, clock_);
  sub.Connect("sub", /*clean=*/false);
  Subscribe(sub, "wills/#", QoS::k1);
  TestClient waiting(broker_, clock_);
  broker_.BeginShutdown(clock_.Now());
  EXPECT_TRUE(broker_.shutting_down());
  EXPECT_EQ(v5.Expect<mqtt::Disconnect>().reason, ReasonCode::kServerShuttingDown);
  EXPECT_TRUE(clean.Receive().empty());  // 3.1.x has no server DISCONNECT
  for (TestClient* c : {&v5, &clean, &sub, &waiting}) {
    EXPECT_TRUE(c->Closed());
  }
  // The clean session ended, and its will went out: to the subscriber's session, which keeps it
  // (its connection is closing). The persistent session kept its will.
  EXPECT_EQ(broker_.session_count(), 2U);
  const Broker::SessionGauges gauges = broker_.StepSessionGauges(1000);  // one whole walk
  EXPECT_EQ(gauges.clients_connected, 0U);
  EXPECT_EQ(broker_.counters().messages_sent, 1U);
  EXPECT_EQ(gauges.queued + gauges.inflight, 1U);  // kept for the restart
  for (TestClient* c : {&v5, &clean, &sub, &waiting}) {
    c->Finish();
  }
}

}  // namespace
}  // namespace tinymq::broker
