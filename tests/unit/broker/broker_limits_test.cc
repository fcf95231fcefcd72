// The limits of issue #7 in the broker core, sans I/O on a fake clock: the CONNECT size cap, topic
// length and depth, subscriptions per client, retained messages (count and bytes) and the publish
// rate (input paused, then a disconnect after the grace), with their counters. Each test runs for
// 3.1.1 and 5.0, which differ in what they can tell the client.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tests/unit/broker/packet_summary.h"
#include "tests/unit/broker/versioned_broker_test.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"

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

constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;

using testing::Hex;
using testing::Summary;
using testing::VersionName;

class BrokerLimitsTest : public testing::VersionedBrokerTest {
 protected:
  // A PUBACK (or PUBREC) for packet `id` that 5.0 gives reason `code`.
  std::string Ack(std::uint16_t id, ReasonCode code = ReasonCode::kSuccess,
                  std::string_view name = "PUBACK") const {
    return std::string(name) + " " + std::to_string(id) + (v5() ? " " + Hex(code) : "");
  }
  mqtt::Connect MakeConnect(std::string_view client_id, std::uint16_t keep_alive = 0) const {
    mqtt::Connect c;
    c.version = GetParam();
    c.client_id = client_id;
    c.keep_alive = keep_alive;
    return c;
  }

  // A connected client (CONNACK 0x00).
  std::unique_ptr<TestClient> Connect(std::string_view client_id, std::uint16_t keep_alive = 0) {
    auto c = NewClient();
    c->Send(MakeConnect(client_id, keep_alive));
    EXPECT_EQ(Got(*c), Accepted()) << client_id;
    return c;
  }

  // A payload the fixture keeps (packets hold views).
  std::string_view Keep(std::string s) { return kept_.emplace_back(std::move(s)); }

  // A CONNECT of exactly `size` bytes: its will payload fills it up.
  mqtt::Connect ConnectOfSize(std::string_view client_id, std::size_t size) {
    mqtt::Connect c = MakeConnect(client_id);
    c.will = mqtt::Will{QoS::k0, false, {}, "w", {}};
    c.will->payload = Filler(size, [&](mqtt::BinaryView payload) {
      c.will->payload = payload;
      return Encoded({c}).size();
    });
    return c;
  }

  // A QoS 0 PUBLISH of exactly `size` bytes.
  mqtt::Publish PublishOfSize(std::string_view topic, std::size_t size) {
    mqtt::Publish p = MakePublish(topic, "");
    p.payload = Filler(size, [&](mqtt::BinaryView payload) {
      p.payload = payload;
      return Encoded({p}).size();
    });
    return p;
  }

  // The payload (kept) with which `encoded_size` says the packet takes `size` bytes (the length
  // of the Remaining Length field depends on the payload).
  template <typename F>
  mqtt::BinaryView Filler(std::size_t size, F encoded_size) {
    std::size_t n = 0;
    for (int i = 0; i < 4; ++i) {
      const std::size_t got = encoded_size(mqtt::BinaryView::Of(Keep(std::string(n, 'p'))));
      if (got == size) {
        break;
      }
      n = n + size - std::min(got, n + size);
    }
    const mqtt::BinaryView payload = mqtt::BinaryView::Of(Keep(std::string(n, 'p')));
    EXPECT_EQ(encoded_size(payload), size);
    return payload;
  }

  std::deque<std::string> kept_;
};

INSTANTIATE_TEST_SUITE_P(Versions, BrokerLimitsTest, ::testing::Values(kV311, kV5), VersionName);

// ---------------------------------------------------------------------------------------------
// Packet sizes

TEST_P(BrokerLimitsTest, ConnectOverMaxConnectPacketSizeIsClosedWithoutConnack) {
  limits_.max_connect_packet_size = 100;
  limits_.max_packet_size = 1000;
  auto sub = Connect("sub");
  EXPECT_EQ(Sub(*sub, {"t"}, QoS::k0), "SUBACK 1 [0x00]");

  auto big = NewClient();
  big->Send(ConnectOfSize("big", 101));
  EXPECT_TRUE(big->Closed());
  EXPECT_EQ(Got(*big), "");  // no CONNACK, in either version: the CONNECT was never read
  EXPECT_EQ(broker().counters().protocol_errors, 1U);
  EXPECT_EQ(broker().session_count(), 1U);

  // 100 bytes are in; in the same read a PUBLISH of 600 bytes: past the CONNECT, the larger limit.
  auto fits = NewClient();
  const mqtt::Publish large = PublishOfSize("t", 600);
  fits->SendRaw(Encoded({ConnectOfSize("fits", 100), large}));
  EXPECT_EQ(Got(*fits), Accepted());
  EXPECT_EQ(Got(*sub), "PUBLISH t q0 '" + std::string(large.payload.AsString()) + "'");
  const mqtt::Publish largest = PublishOfSize("t", 1000);
  fits->Send(largest);
  EXPECT_EQ(Got(*sub), "PUBLISH t q0 '" + std::string(largest.payload.AsString()) + "'");
  fits->Send(PublishOfSize("t", 1001));
  EXPECT_EQ(Got(*fits), v5() ? "DISCONNECT 0x95" : "");
  EXPECT_TRUE(fits->Closed());
  EXPECT_EQ(Got(*sub), "");
  EXPECT_EQ(broker().counters().protocol_errors, 2U);
}

TEST_P(BrokerLimitsTest, LargerLimitAppliesOnceACheckedConnectIsAccepted) {
  limits_.max_connect_packet_size = 100;
  auto hash = auth::HashPassword("secret", 1000);
  ASSERT_TRUE(hash.has_value());
  auto file = auth::PasswordFile::Parse("alice:" + *hash + "\n");
  ASSERT_TRUE(file.has_value());
  auto policy = std::make_shared<AccessPolicy>();
  policy->passwords = std::make_shared<const auth::PasswordFile>(std::move(*file));
  policy_ = policy;
  auto sub = Connect("sub");
  EXPECT_EQ(Sub(*sub, {"t"}, QoS::k0), "SUBACK 1 [0x00]");
  auto c = NewClient();
  mqtt::Connect connect = MakeConnect("c");
  connect.user_name = "alice";
  connect.password = mqtt::BinaryView::Of("secret");
  const mqtt::Publish large = PublishOfSize("t", 600);
  c->SendRaw(Encoded({connect, large}));
  std::vector<CredentialCheck> checks;
  broker().TakeCredentialChecks(checks);
  ASSERT_EQ(checks.size(), 1U);
  broker().OnCredentialResult(c->id(), true, clock_.Now());
  EXPECT_EQ(Got(*c), Accepted());
  EXPECT_FALSE(c->Closed());
  EXPECT_EQ(Got(*sub), "PUBLISH t q0 '" + std::string(large.payload.AsString()) + "'");
}

// ---------------------------------------------------------------------------------------------
// Topic length and depth

TEST_P(BrokerLimitsTest, PublishToATopicOverTheLimitsIsRefused) {
  limits_.max_topic_levels = 3;
  limits_.max_topic_length = 12;
  auto sub = Connect("sub");
  EXPECT_EQ(Sub(*sub, {"#"}, QoS::k2), "SUBACK 1 [0x02]");
  auto pub = Connect("pub");
  pub->Send(MakePublish("a/b/c", "3 levels", QoS::k1, 1));
  pub->Send(MakePublish("abcdefghijkl", "12 bytes", QoS::k1, 2));
  EXPECT_EQ(Got(*pub), Ack(1) + " | " + Ack(2));
  EXPECT_EQ(Got(*sub), "PUBLISH a/b/c q1 '3 levels' | PUBLISH abcdefghijkl q1 '12 bytes'");
  EXPECT_EQ(broker().counters().refused_topic_limits, 0U);
  if (v5()) {
    pub->Send(MakePublish("a/b/c/d", "4 levels", QoS::k1, 3));
    pub->Send(MakePublish("a/b/c/d", "4 levels", QoS::k2, 4));
    pub->Send(MakePublish("abcdefghijklm", "13 bytes", QoS::k0));
    pub->Send(MakePublish("abcdefghijklm", "13 bytes", QoS::k1, 5));
    EXPECT_EQ(Got(*pub), "PUBACK 3 0x90 | PUBREC 4 0x90 | PUBACK 5 0x90");
    EXPECT_FALSE(pub->Closed());
    EXPECT_EQ(broker().counters().refused_topic_limits, 4U);
  } else {
    // 3.1.1 can neither refuse a PUBLISH nor acknowledge and drop it silently: closed.
    pub->Send(MakePublish("a/b/c/d", "4 levels", QoS::k1, 3));
    EXPECT_EQ(Got(*pub), "");
    EXPECT_TRUE(pub->Closed());
    auto pub0 = Connect("pub0");
    pub0->Send(MakePublish("abcdefghijklm", "13 bytes"));
    EXPECT_EQ(Got(*pub0), "");
    EXPECT_TRUE(pub0->Closed());
    EXPECT_EQ(broker().counters().refused_topic_limits, 2U);
  }
  EXPECT_EQ(Got(*sub), "");
}

TEST_P(BrokerLimitsTest, SubscribeToAFilterOverTheLimitsFailsForThatFilter) {
  limits_.max_topic_levels = 3;
  limits_.max_topic_length = 12;
  auto c = Connect("c");
  EXPECT_EQ(Sub(*c, {"a/b/c/d", "a/+/c", "abcdefghijklm", "+/+/#", "abcdefghijkl"}),
            "SUBACK 1 [" + Failure(ReasonCode::kTopicFilterInvalid) + " 0x01 " +
                Failure(ReasonCode::kTopicFilterInvalid) + " 0x01 0x01]");
  EXPECT_EQ(broker().counters().refused_topic_limits, 2U);
  EXPECT_EQ(broker().subscription_count(), 3U);
  EXPECT_FALSE(c->Closed());
}

TEST_P(BrokerLimitsTest, WillTopicOverTheLimitsRefusesTheConnect) {
  limits_.max_topic_levels = 3;
  auto c = NewClient();
  mqtt::Connect connect = MakeConnect("c");
  connect.will = mqtt::Will{QoS::k0, false, {}, "a/b/c/d", mqtt::BinaryView::Of("bye")};
  c->Send(connect);
  // 5.0: 0x90 Topic Name invalid; 3.1.1 has no return code for it: 5, not authorized.
  EXPECT_EQ(Got(*c), v5() ? "CONNACK 0x90" : "CONNACK rc5");
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(broker().session_count(), 0U);
  EXPECT_EQ(broker().counters().refused_topic_limits, 1U);
  auto ok = NewClient();
  connect.will->topic = "a/b/c";
  ok->Send(connect);
  EXPECT_EQ(Got(*ok), Accepted());
}

// ---------------------------------------------------------------------------------------------
// Subscriptions per client

TEST_P(BrokerLimitsTest, SubscriptionsPerClientAreCappedButExistingOnesCanBeRenewed) {
  limits_.max_subscriptions_per_client = 2;
  auto c = Connect("c");
  EXPECT_EQ(Sub(*c, {"a", "b", "c"}),
            "SUBACK 1 [0x01 0x01 " + Failure(ReasonCode::kQuotaExceeded) + "]");
  EXPECT_EQ(broker().counters().refused_subscription_limit, 1U);
  EXPECT_EQ(broker().subscription_count(), 2U);
  EXPECT_EQ(Sub(*c, {"a"}, QoS::k2), "SUBACK 2 [0x02]");  // replaces a subscription: not one more
  EXPECT_EQ(Sub(*c, {"d"}), "SUBACK 3 [" + Failure(ReasonCode::kQuotaExceeded) + "]");
  EXPECT_EQ(broker().counters().refused_subscription_limit, 2U);
  auto pub = Connect("pub");
  pub->Send(MakePublish("c", "not subscribed"));
  pub->Send(MakePublish("a", "subscribed"));
  EXPECT_EQ(Got(*c), "PUBLISH a q0 'subscribed'");
  // Room again after an UNSUBSCRIBE.
  mqtt::TopicFilterListBuilder filters;
  filters.Add("b");
  c->Send(mqtt::Unsubscribe{next_packet_id_++, {}, filters.view()});
  EXPECT_EQ(Got(*c), "UNSUBACK");
  EXPECT_EQ(Sub(*c, {"c"}), "SUBACK 5 [0x01]");
  EXPECT_EQ(broker().subscription_count(), 2U);
  EXPECT_EQ(broker().counters().refused_subscription_limit, 2U);
}

// ---------------------------------------------------------------------------------------------
// Retained messages

TEST_P(BrokerLimitsTest, NewRetainedTopicOverTheCountIsRefusedIn5AndNotKeptIn311) {
  limits_.max_retained_messages = 2;
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}), "SUBACK 1 [0x01]");
  auto pub = Connect("pub");
  pub->Send(MakePublish("r/1", "one", QoS::k1, 1, /*retain=*/true));
  pub->Send(MakePublish("r/2", "two", QoS::k1, 2, /*retain=*/true));
  EXPECT_EQ(Got(*pub), Ack(1) + " | " + Ack(2));
  EXPECT_EQ(Got(*watcher), "PUBLISH r/1 q1 'one' | PUBLISH r/2 q1 'two'");
  EXPECT_EQ(broker().retained_count(), 2U);

  pub->Send(MakePublish("r/3", "three", QoS::k1, 3, /*retain=*/true));
  pub->Send(MakePublish("r/4", "four", QoS::k0, 0, /*retain=*/true));
  if (v5()) {
    // QoS 1/2 can be told: 0x97, and the message is not delivered either.
    pub->Send(MakePublish("r/5", "five", QoS::k2, 5, /*retain=*/true));
    EXPECT_EQ(Got(*pub), "PUBACK 3 0x97 | PUBREC 5 0x97");
    EXPECT_EQ(Got(*watcher), "PUBLISH r/4 q0 'four'");
    EXPECT_EQ(broker().counters().refused_retained_limit, 3U);
  } else {
    EXPECT_EQ(Got(*pub), "PUBACK 3");
    EXPECT_EQ(Got(*watcher), "PUBLISH r/3 q1 'three' | PUBLISH r/4 q0 'four'");
    EXPECT_EQ(broker().counters().refused_retained_limit, 2U);
  }
  EXPECT_EQ(broker().retained_count(), 2U);
  auto late = Connect("late");
  EXPECT_EQ(Sub(*late, {"r/#"}),
            "SUBACK 2 [0x01] | PUBLISH r/1 q1 retain 'one' | PUBLISH r/2 q1 retain 'two'");

  // Replacing and deleting work at the cap.
  const std::uint64_t refused = broker().counters().refused_retained_limit;
  pub->Send(MakePublish("r/1", "uno", QoS::k1, 6, /*retain=*/true));
  EXPECT_EQ(Got(*pub), Ack(6));
  pub->Send(MakePublish("r/2", "", QoS::k0, 0, /*retain=*/true));
  EXPECT_EQ(broker().retained_count(), 1U);
  pub->Send(MakePublish("r/3", "three", QoS::k1, 7, /*retain=*/true));
  EXPECT_EQ(Got(*pub), Ack(7));
  EXPECT_EQ(broker().retained_count(), 2U);
  EXPECT_EQ(broker().counters().refused_retained_limit, refused);
  auto later = Connect("later");
  EXPECT_EQ(Sub(*later, {"r/#"}, QoS::k0),
            "SUBACK 3 [0x00] | PUBLISH r/1 q0 retain 'uno' | PUBLISH r/3 q0 retain 'three'");
}

TEST_P(BrokerLimitsTest, RetainedBytesCountTopicsAndPayloads) {
  limits_.max_retained_bytes = 20;
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}), "SUBACK 1 [0x01]");
  auto pub = Connect("pub");
  pub->Send(MakePublish("r/1", "0123456789", QoS::k1, 1, /*retain=*/true));  // 13 bytes
  pub->Send(MakePublish("r/2", "01234567", QoS::k1, 2, /*retain=*/true));    // 11: 24 in all
  pub->Send(MakePublish("r/2", "0123", QoS::k1, 3, /*retain=*/true));        // 7: 20 in all
  EXPECT_EQ(Got(*pub), Ack(1) + " | " + Ack(2, ReasonCode::kQuotaExceeded) + " | " + Ack(3));
  EXPECT_EQ(Got(*watcher), v5() ? "PUBLISH r/1 q1 '0123456789' | PUBLISH r/2 q1 '0123'"
                                : "PUBLISH r/1 q1 '0123456789' | PUBLISH r/2 q1 '01234567' | "
                                  "PUBLISH r/2 q1 '0123'");
  EXPECT_EQ(broker().counters().refused_retained_limit, 1U);
  // At the cap, a replacement no larger than the old message is kept.
  pub->Send(MakePublish("r/1", "9876543210", QoS::k1, 4, /*retain=*/true));
  pub->Send(MakePublish("r/1", "x", QoS::k1, 5, /*retain=*/true));       // 4: 11 in all
  pub->Send(MakePublish("r/3", "012345", QoS::k1, 6, /*retain=*/true));  // 9: 20 in all
  EXPECT_EQ(Got(*pub), Ack(4) + " | " + Ack(5) + " | " + Ack(6));
  EXPECT_EQ(broker().counters().refused_retained_limit, 1U);
  EXPECT_EQ(broker().retained_count(), 3U);
  auto late = Connect("late");
  EXPECT_EQ(Sub(*late, {"r/#"}, QoS::k0),
            "SUBACK 2 [0x00] | PUBLISH r/1 q0 retain 'x' | PUBLISH r/2 q0 retain '0123' | "
            "PUBLISH r/3 q0 retain '012345'");
}

TEST_P(BrokerLimitsTest, ReplacementGrowingPastTheByteCapNeverLeavesAStaleValue) {
  // A replacement that would take the bytes past the cap is refused as a new topic would be. 5.0
  // QoS 1 says so (0x97) and nothing changes; otherwise the message is delivered and the old
  // retained value deleted, so that no new subscriber gets a value its publisher replaced.
  limits_.max_retained_bytes = 20;
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}), "SUBACK 1 [0x01]");
  auto pub = Connect("pub");
  pub->Send(MakePublish("r/1", "0123456789", QoS::k1, 1, /*retain=*/true));  // 13 bytes
  pub->Send(MakePublish("r/2", "0123", QoS::k1, 2, /*retain=*/true));        // 7: 20 in all
  EXPECT_EQ(Got(*pub), Ack(1) + " | " + Ack(2));
  (void)Got(*watcher);
  pub->Send(MakePublish("r/1", "0123456789A", QoS::k1, 3, /*retain=*/true));  // 14: 21 in all
  auto late = Connect("late");
  if (v5()) {
    EXPECT_EQ(Got(*pub), "PUBACK 3 0x97");
    EXPECT_EQ(Got(*watcher), "");
    EXPECT_EQ(Sub(*late, {"r/1"}), "SUBACK 2 [0x01] | PUBLISH r/1 q1 retain '0123456789'");
  } else {
    EXPECT_EQ(Got(*pub), Ack(3));
    EXPECT_EQ(Got(*watcher), "PUBLISH r/1 q1 '0123456789A'");
    EXPECT_EQ(Sub(*late, {"r/1"}), "SUBACK 2 [0x01]");  // deleted, not stale
    EXPECT_EQ(broker().retained_count(), 1U);
  }
  EXPECT_EQ(broker().counters().refused_retained_limit, 1U);
  // Shrinking always fits.
  pub->Send(MakePublish("r/2", "01", QoS::k1, 4, /*retain=*/true));
  EXPECT_EQ(Got(*pub), Ack(4));
}

// ---------------------------------------------------------------------------------------------
// Publish rate

TEST_P(BrokerLimitsTest, PublishRatePausesTheInputUntilTokensComeBack) {
  limits_.max_publish_rate = 10;
  limits_.publish_rate_burst = 10;
  limits_.publish_rate_grace = Duration::zero();  // never disconnected: the pause alone
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}, QoS::k0), "SUBACK 1 [0x00]");
  auto pub = Connect("pub");
  // One read: 12 PUBLISHes and a PINGREQ.
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(
        mqtt::Encode(MakePublish("t", Keep(std::to_string(i))), GetParam(), bytes).has_value());
  }
  ASSERT_TRUE(mqtt::Encode(mqtt::Pingreq{}, GetParam(), bytes).has_value());
  (void)broker().TakeDirty();
  pub->SendRaw(bytes);
  std::string first_ten;
  for (int i = 0; i < 10; ++i) {
    first_ten += (i == 0 ? "" : " | ") + std::string("PUBLISH t q0 '") + std::to_string(i) + "'";
  }
  EXPECT_EQ(Got(*watcher), first_ten);
  EXPECT_TRUE(broker().InputPaused(pub->id()));
  EXPECT_TRUE(Dirty(pub->id()));  // the net layer stops reading it
  EXPECT_EQ(Got(*pub), "");       // the PINGREQ waits behind the 11th PUBLISH
  EXPECT_EQ(broker().counters().throttled, 1U);
  EXPECT_EQ(broker().counters().messages_received, 10U);

  Tick(milliseconds(99));
  EXPECT_EQ(Got(*watcher), "");
  EXPECT_TRUE(broker().InputPaused(pub->id()));
  Tick(milliseconds(2));  // one token back
  EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '10'");
  EXPECT_TRUE(Dirty(pub->id()));
  EXPECT_TRUE(broker().InputPaused(pub->id()));  // and used
  Tick(milliseconds(101));
  EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '11'");
  EXPECT_EQ(Got(*pub), "");
  Tick(milliseconds(101));
  EXPECT_EQ(Got(*pub), "PINGRESP");
  EXPECT_FALSE(broker().InputPaused(pub->id()));
  EXPECT_FALSE(pub->Closed());
  EXPECT_EQ(broker().counters().throttled, 3U);
  EXPECT_EQ(broker().counters().rate_disconnects, 0U);
}

TEST_P(BrokerLimitsTest, ClientKeepingOverTheRateIsDisconnectedAfterTheGrace) {
  limits_.max_publish_rate = 10;
  limits_.publish_rate_burst = 10;
  limits_.publish_rate_grace = seconds(2);
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}, QoS::k0), "SUBACK 1 [0x00]");
  auto pub = Connect("pub");
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(mqtt::Encode(MakePublish("t", "x"), GetParam(), bytes).has_value());
  }
  const Instant start = clock_.Now();
  pub->SendRaw(bytes);
  std::size_t delivered = watcher->Receive().size();
  EXPECT_EQ(delivered, 10U);
  while (!pub->Closed() && clock_.Now() - start < seconds(10)) {
    const std::optional<Instant> next = broker().NextDeadline();
    ASSERT_TRUE(next.has_value());
    clock_.Advance(*next - clock_.Now());
    broker().OnTimer(clock_.Now());
    delivered += watcher->Receive().size();
  }
  EXPECT_TRUE(pub->Closed());
  EXPECT_EQ(Got(*pub), v5() ? "DISCONNECT 0x96" : "");
  // Over the rate from the 10th PUBLISH on (at `start`), one more every 100 ms, until 2 s later.
  EXPECT_GE(clock_.Now() - start, seconds(2));
  EXPECT_LT(clock_.Now() - start, milliseconds(2200));
  EXPECT_GE(delivered, 29U);
  EXPECT_LE(delivered, 31U);
  EXPECT_EQ(broker().counters().rate_disconnects, 1U);
}

TEST_P(BrokerLimitsTest, ClientWellUnderTheRateIsNeverDisconnected) {
  // One PUBLISH every 3 s against a limit of 1 per second (burst: one second's worth): the client
  // never goes over the rate, whatever the grace.
  limits_.max_publish_rate = 1;
  limits_.publish_rate_grace = seconds(2);
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}, QoS::k0), "SUBACK 1 [0x00]");
  auto pub = Connect("pub");
  for (int i = 0; i < 5; ++i) {
    pub->Send(MakePublish("t", Keep(std::to_string(i))));
    EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '" + std::to_string(i) + "'");
    ASSERT_FALSE(pub->Closed()) << "after PUBLISH " << i << ": " << Got(*pub);
    Tick(seconds(3));
  }
  EXPECT_EQ(Got(*pub), "");
  EXPECT_EQ(broker().counters().rate_disconnects, 0U);
}

TEST_P(BrokerLimitsTest, KeepAliveDoesNotTimeOutAThrottledClient) {
  limits_.max_publish_rate = 1;
  limits_.publish_rate_grace = Duration::zero();
  auto watcher = Connect("watcher");
  EXPECT_EQ(Sub(*watcher, {"#"}, QoS::k0), "SUBACK 1 [0x00]");
  auto pub = Connect("pub", /*keep_alive=*/1);  // silent for 1.5 s: gone
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(
        mqtt::Encode(MakePublish("t", Keep(std::to_string(i))), GetParam(), bytes).has_value());
  }
  pub->SendRaw(bytes);
  EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '0'");
  // The broker does not read it for 5 s (a late timer): the client was not silent, the broker was.
  Tick(seconds(5));
  EXPECT_FALSE(pub->Closed());
  EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '1'");
  Tick(milliseconds(1001));  // a token a second
  Tick(milliseconds(1001));
  EXPECT_EQ(Got(*watcher), "PUBLISH t q0 '2' | PUBLISH t q0 '3'");
  // Now it has nothing more to say: 1.5 s after its last packet was read, it is gone.
  Tick(milliseconds(1499));
  EXPECT_FALSE(pub->Closed());
  Tick(milliseconds(1));
  EXPECT_TRUE(pub->Closed());
  EXPECT_EQ(Got(*pub), v5() ? "DISCONNECT 0x8D" : "");
}

}  // namespace
}  // namespace tinymq::broker
