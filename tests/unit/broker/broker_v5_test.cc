// MQTT 5.0 features of the broker core, on a fake clock: what CONNACK offers and what the broker
// refuses, flow control, topic aliases, message expiry, subscription options and identifiers,
// shared subscriptions, delayed wills, reason codes and enhanced authentication.

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tinymq/broker/authenticator.h"
#include "tinymq/broker/broker.h"

namespace tinymq::broker {
namespace {

using mqtt::PropertyId;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;
using testing::V5Connect;

constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

std::vector<std::uint32_t> SubscriptionIds(const mqtt::Publish& p) {
  std::vector<std::uint32_t> ids;
  for (const mqtt::Property& property : p.properties) {
    if (property.id == PropertyId::kSubscriptionIdentifier) {
      ids.push_back(property.number);
    }
  }
  return ids;
}

std::vector<mqtt::Publish> Publishes(const std::vector<mqtt::Packet>& packets) {
  std::vector<mqtt::Publish> out;
  for (const mqtt::Packet& p : packets) {
    if (const auto* publish = std::get_if<mqtt::Publish>(&p)) {
      out.push_back(*publish);
    } else {
      ADD_FAILURE() << "expected only PUBLISH, got " << mqtt::PacketTypeName(mqtt::TypeOf(p));
    }
  }
  return out;
}

// True when `props` has neither a Reason String nor a User Property.
bool WithoutReasonStringOrUserProperty(const mqtt::Properties& props) {
  return !props.Find(PropertyId::kReasonString) && !props.Find(PropertyId::kUserProperty);
}

// The wire encoding of `packets`, one after the other, as a 5.0 client sends them.
std::vector<std::uint8_t> Encoded5(std::initializer_list<mqtt::Packet> packets) {
  std::vector<std::uint8_t> bytes;
  for (const mqtt::Packet& p : packets) {
    EXPECT_TRUE(mqtt::Encode(p, kV5, bytes).has_value());
  }
  return bytes;
}

class BrokerV5Test : public ::testing::Test {
 protected:
  // The broker, built from limits_ on first use (so a test sets limits_ first).
  Broker& broker() {
    if (broker_ == nullptr) {
      broker_ = std::make_unique<Broker>(limits_);
    }
    return *broker_;
  }

  // A connected 5.0 client (CONNECT with `props`); the CONNACK is in `connack`.
  std::unique_ptr<TestClient> Connect5(std::string_view client_id,
                                       const mqtt::PropertiesBuilder& props = {},
                                       bool clean_start = true) {
    auto c = std::make_unique<TestClient>(broker(), clock_, kV5);
    c->Send(V5Connect(client_id, props, clean_start));
    connack = First<mqtt::Connack>(*c);
    EXPECT_EQ(connack.reason, ReasonCode::kSuccess);
    return c;
  }

  // Receives what `c` was sent: the first packet must be a T, the others (the PUBLISHes that
  // follow a CONNACK or a SUBACK in the same write) are left in `rest`.
  template <typename T>
  T First(TestClient& c) {
    std::vector<mqtt::Packet> got = c.Receive();
    rest.clear();
    if (got.empty() || !std::holds_alternative<T>(got[0])) {
      ADD_FAILURE() << "expected a " << typeid(T).name() << " first, got " << got.size()
                    << " packets";
      return T{};
    }
    rest.assign(got.begin() + 1, got.end());
    return std::get<T>(got[0]);
  }

  // Subscribes with `options` (and a Subscription Identifier when `id` is not 0); returns the
  // SUBACK's first code.
  ReasonCode Subscribe(TestClient& c, std::string_view filter, mqtt::SubscriptionOptions options,
                       std::uint32_t id = 0) {
    mqtt::SubscriptionListBuilder list;
    list.Add(filter, options);
    mqtt::PropertiesBuilder props;
    if (id != 0) {
      props.Add(PropertyId::kSubscriptionIdentifier, id);
    }
    c.Send(mqtt::Subscribe{next_packet_id_++, props.view(), list.view()});
    const auto suback = First<mqtt::Suback>(c);
    return suback.reason_codes.empty() ? ReasonCode::kUnspecifiedError : suback.reason_codes[0];
  }
  ReasonCode Subscribe(TestClient& c, std::string_view filter, QoS qos) {
    return Subscribe(c, filter, {qos, false, false, 0});
  }

  void Tick(std::chrono::milliseconds d) {
    clock_.Advance(d);
    broker().OnTimer(clock_.Now());
  }

  Limits limits_;
  FakeClock clock_;
  std::unique_ptr<Broker> broker_;
  mqtt::Connack connack;
  std::vector<mqtt::Packet> rest;
  std::uint16_t next_packet_id_ = 1;
};

// ---------------------------------------------------------------------------------------------
// CONNACK: what the broker offers, from its limits.

TEST_F(BrokerV5Test, ConnackDefaultsOfferEverything) {
  auto c = Connect5("c");
  // 5.0 §3.2.2.3: absent means available (Maximum QoS 2, retain, wildcards, identifiers, shared).
  EXPECT_EQ(connack.properties.Number(PropertyId::kReceiveMaximum), 1024U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kTopicAliasMaximum), 10U);
  EXPECT_FALSE(connack.properties.Find(PropertyId::kMaximumQos));
  EXPECT_FALSE(connack.properties.Find(PropertyId::kRetainAvailable));
  EXPECT_FALSE(connack.properties.Find(PropertyId::kWildcardSubscriptionAvailable));
  EXPECT_FALSE(connack.properties.Find(PropertyId::kSubscriptionIdentifierAvailable));
  EXPECT_FALSE(connack.properties.Find(PropertyId::kSharedSubscriptionAvailable));
  EXPECT_FALSE(connack.properties.Find(PropertyId::kServerKeepAlive));
  // The default packet limit (1 MiB) is announced [MQTT-3.2.2-9].
  EXPECT_EQ(connack.properties.Number(PropertyId::kMaximumPacketSize), 1'048'576U);
}

TEST_F(BrokerV5Test, ConnackSaysWhatTheLimitsTakeAway) {
  limits_.maximum_qos = QoS::k1;
  limits_.retain_available = false;
  limits_.wildcard_subscriptions = false;
  limits_.subscription_identifiers = false;
  limits_.shared_subscriptions = false;
  limits_.topic_alias_maximum = 0;
  limits_.receive_maximum = 65535;
  limits_.max_packet_size = 4096;
  limits_.max_keep_alive_s = 30;
  limits_.max_session_expiry_s = 60;
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto c = Connect5("c", props);  // keep-alive 0: the broker sets one
  EXPECT_EQ(connack.properties.Number(PropertyId::kMaximumQos), 1U);  // 5.0 [MQTT-3.2.2-9]
  EXPECT_EQ(connack.properties.Number(PropertyId::kRetainAvailable), 0U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kWildcardSubscriptionAvailable), 0U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kSubscriptionIdentifierAvailable), 0U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kSharedSubscriptionAvailable), 0U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kMaximumPacketSize), 4096U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kServerKeepAlive), 30U);
  EXPECT_EQ(connack.properties.Number(PropertyId::kSessionExpiryInterval), 60U);
  EXPECT_FALSE(connack.properties.Find(PropertyId::kReceiveMaximum));     // 65535 is the default
  EXPECT_FALSE(connack.properties.Find(PropertyId::kTopicAliasMaximum));  // 0 is the default
  // The Server Keep Alive is the one enforced [MQTT-3.2.2-21].
  Tick(milliseconds(44'999));
  EXPECT_FALSE(c->Closed());
  Tick(milliseconds(2));
  EXPECT_EQ(c->Expect<mqtt::Disconnect>().reason, ReasonCode::kKeepAliveTimeout);
}

TEST_F(BrokerV5Test, WhatTheConnackRefusedIsRefused) {
  limits_.maximum_qos = QoS::k1;
  limits_.retain_available = false;
  limits_.wildcard_subscriptions = false;
  limits_.subscription_identifiers = false;
  limits_.shared_subscriptions = false;
  auto c = Connect5("c");
  EXPECT_EQ(Subscribe(*c, "a/+", QoS::k0), ReasonCode::kWildcardSubscriptionsNotSupported);
  EXPECT_EQ(Subscribe(*c, "$share/g/a", QoS::k0), ReasonCode::kSharedSubscriptionsNotSupported);
  EXPECT_EQ(Subscribe(*c, "a", QoS::k2), ReasonCode::kGrantedQos1);  // 5.0 [MQTT-3.2.2-10]
  // 5.0 [MQTT-3.2.2-11]: a PUBLISH above the Maximum QoS ends the connection with 0x9B.
  c->Send(MakePublish("a", "x", QoS::k2, 1));
  EXPECT_EQ(c->Expect<mqtt::Disconnect>().reason, ReasonCode::kQosNotSupported);
  EXPECT_TRUE(c->Closed());
  // 5.0 [MQTT-3.2.2-14]: RETAIN when Retain Available is 0 gets 0x9A.
  auto r = Connect5("r");
  r->Send(MakePublish("a", "x", QoS::k0, 0, /*retain=*/true));
  EXPECT_EQ(r->Expect<mqtt::Disconnect>().reason, ReasonCode::kRetainNotSupported);
  // 5.0 §3.2.2.3.12: a Subscription Identifier when they are not available gets 0xA1.
  auto s = Connect5("s");
  mqtt::SubscriptionListBuilder list;
  list.Add("a", {QoS::k0, false, false, 0});
  mqtt::PropertiesBuilder id;
  id.Add(PropertyId::kSubscriptionIdentifier, 7U);
  s->Send(mqtt::Subscribe{1, id.view(), list.view()});
  EXPECT_EQ(s->Expect<mqtt::Disconnect>().reason, ReasonCode::kSubscriptionIdentifiersNotSupported);
  EXPECT_TRUE(s->Closed());
  // Wills: [MQTT-3.2.2-12] QoS above the maximum, [MQTT-3.2.2-13] retained: refused in CONNACK,
  // then closed (5.0 [MQTT-3.2.2-7]).
  TestClient w(broker(), clock_, kV5);
  mqtt::Connect will = V5Connect("w");
  will.will = mqtt::Will{QoS::k2, false, {}, "w", mqtt::BinaryView::Of("x")};
  w.Send(will);
  EXPECT_EQ(w.Expect<mqtt::Connack>().reason, ReasonCode::kQosNotSupported);
  EXPECT_TRUE(w.Closed());
  TestClient w2(broker(), clock_, kV5);
  will.will = mqtt::Will{QoS::k0, true, {}, "w", mqtt::BinaryView::Of("x")};
  w2.Send(will);
  const auto refused = w2.Expect<mqtt::Connack>();
  EXPECT_EQ(refused.reason, ReasonCode::kRetainNotSupported);
  EXPECT_TRUE(refused.properties.Find(PropertyId::kReasonString));
  EXPECT_TRUE(w2.Closed());
}

TEST_F(BrokerV5Test, RefusedClientIdentifierGetsConnack0x85) {
  // 5.0 [MQTT-3.1.3-8]: an identifier longer than the configured limit gets CONNACK 0x85, then the
  // close; no session is made.
  limits_.max_client_id_length = 23;
  TestClient c(broker(), clock_, kV5);
  c.Send(V5Connect("abcdefghijklmnopqrstuvwx"));  // 24
  const auto refused = c.Expect<mqtt::Connack>();
  EXPECT_EQ(refused.reason, ReasonCode::kClientIdentifierNotValid);
  EXPECT_FALSE(refused.session_present);
  EXPECT_TRUE(c.Closed());
  EXPECT_EQ(broker().session_count(), 0U);
}

TEST_F(BrokerV5Test, NothingSentAfterARefusedConnectIsProcessed) {
  // 5.0 [MQTT-3.1.4-6], 5.0 [MQTT-3.2.2-7]: a CONNECT refused with 0x9B (will QoS above the
  // maximum), followed in the same read by SUBSCRIBE, a retained PUBLISH and PINGREQ: only the
  // CONNACK goes out, the connection closes, and none of the rest has any effect.
  limits_.maximum_qos = QoS::k1;
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "#", QoS::k0);
  mqtt::Connect connect = V5Connect("refused");
  connect.will = mqtt::Will{QoS::k2, false, {}, "w", mqtt::BinaryView::Of("x")};
  mqtt::SubscriptionListBuilder all;
  all.Add("#", {QoS::k0, false, false, 0});
  TestClient c(broker(), clock_, kV5);
  c.SendRaw(Encoded5({connect, mqtt::Subscribe{1, {}, all.view()},
                      MakePublish("t", "must not be routed", QoS::k0, 0, /*retain=*/true),
                      mqtt::Pingreq{}}));
  EXPECT_EQ(c.Expect<mqtt::Connack>().reason, ReasonCode::kQosNotSupported);
  EXPECT_TRUE(c.Closed());
  EXPECT_TRUE(watcher->Receive().empty());
  EXPECT_EQ(broker().retained_count(), 0U);
  EXPECT_EQ(broker().subscription_count(), 1U);  // the watcher's
  EXPECT_EQ(broker().session_count(), 1U);
}

TEST_F(BrokerV5Test, WithoutServerKeepAliveTheClientsKeepAliveIsEnforced) {
  // 5.0 [MQTT-3.2.2-22]: a keep-alive within the broker's maximum stays as the client set it: no
  // Server Keep Alive in CONNACK, and one and a half times the client's value is enforced.
  limits_.max_keep_alive_s = 30;
  TestClient c(broker(), clock_, kV5);
  mqtt::Connect connect = V5Connect("c");
  connect.keep_alive = 10;
  c.Send(connect);
  const auto ack = c.Expect<mqtt::Connack>();
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_FALSE(ack.properties.Find(PropertyId::kServerKeepAlive));
  Tick(milliseconds(14'999));
  EXPECT_FALSE(c.Closed());
  Tick(milliseconds(2));
  EXPECT_EQ(c.Expect<mqtt::Disconnect>().reason, ReasonCode::kKeepAliveTimeout);
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerV5Test, V311ClientsGetTheSameLimitsInTheirOwnTerms) {
  limits_.maximum_qos = QoS::k1;
  limits_.wildcard_subscriptions = false;
  TestClient c(broker(), clock_);
  c.Connect("c311");
  mqtt::SubscriptionListBuilder list;
  list.Add("a", {QoS::k2, false, false, 0}).Add("a/#", {QoS::k0, false, false, 0});
  c.Send(mqtt::Subscribe{1, {}, list.view()});
  const auto suback = c.Expect<mqtt::Suback>();
  ASSERT_EQ(suback.reason_codes.size(), 2U);
  EXPECT_EQ(suback.reason_codes[0], ReasonCode::kGrantedQos1);
  EXPECT_EQ(suback.reason_codes[1], ReasonCode::kUnspecifiedError);  // 3.1.1 failure 0x80
  c.Send(MakePublish("a", "x", QoS::k2, 1));
  EXPECT_TRUE(c.Receive().empty());  // no DISCONNECT in 3.1.1: just closed
  EXPECT_TRUE(c.Closed());
}

// ---------------------------------------------------------------------------------------------
// Flow control

TEST_F(BrokerV5Test, ClientExceedingTheReceiveMaximumGets0x93) {
  limits_.receive_maximum = 2;
  auto c = Connect5("c");
  c->Send(MakePublish("t", "1", QoS::k2, 1));
  c->Send(MakePublish("t", "2", QoS::k2, 2));
  EXPECT_EQ(c->Receive().size(), 2U);  // two PUBRECs
  c->Send(mqtt::Pubrel{1, ReasonCode::kSuccess, {}});
  EXPECT_EQ(c->Expect<mqtt::Pubcomp>().packet_id, 1);
  c->Send(MakePublish("t", "3", QoS::k2, 3));  // two unfinished again: allowed
  EXPECT_EQ(c->Expect<mqtt::Pubrec>().packet_id, 3);
  c->Send(MakePublish("t", "4", QoS::k2, 4));  // 5.0 [MQTT-3.3.4-8]
  EXPECT_EQ(c->Expect<mqtt::Disconnect>().reason, ReasonCode::kReceiveMaximumExceeded);
  EXPECT_TRUE(c->Closed());
}

TEST_F(BrokerV5Test, AcknowledgementReasonCodesFromTheSubscriber) {
  // 5.0 [MQTT-4.3.3-4]: a PUBREC below 0x80 (here 0x10) is answered by PUBREL with its identifier.
  // 5.0 [MQTT-4.4.0-2]: after a PUBACK or a PUBREC of 0x80 or more the PUBLISH is never sent again,
  // not even when the session resumes on a new connection. (After that PUBREC the broker still
  // sends PUBREL and frees the identifier on PUBCOMP; see docs/conformance.md.)
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto c = Connect5("c", session);
  Subscribe(*c, "t", QoS::k2);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "accepted", QoS::k2, 1));
  pub->Send(MakePublish("t", "refused 1", QoS::k1, 2));
  pub->Send(MakePublish("t", "refused 2", QoS::k2, 3));
  const auto got = Publishes(c->Receive());
  ASSERT_EQ(got.size(), 3U);
  c->Send(mqtt::Pubrec{got[0].packet_id, ReasonCode::kNoMatchingSubscribers, {}});
  EXPECT_EQ(c->Expect<mqtt::Pubrel>().packet_id, got[0].packet_id);
  c->Send(mqtt::Pubcomp{got[0].packet_id, ReasonCode::kSuccess, {}});
  c->Send(mqtt::Puback{got[1].packet_id, ReasonCode::kUnspecifiedError, {}});
  c->Send(mqtt::Pubrec{got[2].packet_id, ReasonCode::kUnspecifiedError, {}});
  for (const mqtt::Packet& p : c->Receive()) {
    EXPECT_FALSE(std::holds_alternative<mqtt::Publish>(p));
  }
  c->Drop();
  auto back = Connect5("c", session, /*clean_start=*/false);
  EXPECT_TRUE(connack.session_present);
  for (const mqtt::Packet& p : rest) {
    EXPECT_FALSE(std::holds_alternative<mqtt::Publish>(p)) << "a settled PUBLISH was resent";
  }
}

TEST_F(BrokerV5Test, OtherPacketsFlowAtSendQuotaZero) {
  // 5.0 [MQTT-4.9.0-3], 5.0 [MQTT-4.9.0-2]: with its Receive Maximum (1) used up the client gets no
  // further QoS 1 PUBLISH, but its PINGREQ, SUBSCRIBE and own PUBLISH are answered at once.
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kReceiveMaximum, 1U);
  auto c = Connect5("c", props);
  Subscribe(*c, "t", QoS::k1);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "1", QoS::k1, 1));
  pub->Send(MakePublish("t", "2", QoS::k1, 2));
  const auto first = c->Expect<mqtt::Publish>();  // "2" waits for the PUBACK
  EXPECT_EQ(first.payload.AsString(), "1");
  c->Send(mqtt::Pingreq{});
  (void)c->Expect<mqtt::Pingresp>();
  EXPECT_EQ(Subscribe(*c, "u", QoS::k1), ReasonCode::kGrantedQos1);
  EXPECT_TRUE(rest.empty());
  c->Send(MakePublish("v", "mine", QoS::k1, 9));
  EXPECT_EQ(c->Expect<mqtt::Puback>().packet_id, 9);
  c->Send(mqtt::Puback{first.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(c->Expect<mqtt::Publish>().payload.AsString(), "2");
}

// ---------------------------------------------------------------------------------------------
// Topic aliases

TEST_F(BrokerV5Test, InboundTopicAliasStandsForTheTopicItWasSetWith) {
  // 5.0 [MQTT-3.3.2-12]: an alias within the advertised maximum (10) is accepted.
  auto sub = Connect5("sub");
  Subscribe(*sub, "a/b", QoS::k0);
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder alias;
  alias.Add(PropertyId::kTopicAlias, 3U);
  mqtt::Publish first = MakePublish("a/b", "1");
  first.properties = alias.view();
  pub->Send(first);
  mqtt::Publish second = MakePublish("", "2");
  second.properties = alias.view();
  pub->Send(second);
  const auto got = Publishes(sub->Receive());
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[1].topic, "a/b");
  EXPECT_EQ(got[1].payload.AsString(), "2");
  EXPECT_FALSE(got[1].properties.Find(PropertyId::kTopicAlias));  // not forwarded
  EXPECT_FALSE(pub->Closed());
}

TEST_F(BrokerV5Test, InboundTopicAliasOutOfRangeOrUnsetEndsTheConnection) {
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder alias;
  alias.Add(PropertyId::kTopicAlias, 11U);  // above the maximum of 10 [MQTT-3.3.2-9]
  mqtt::Publish p = MakePublish("t", "x");
  p.properties = alias.view();
  pub->Send(p);
  EXPECT_EQ(pub->Expect<mqtt::Disconnect>().reason, ReasonCode::kTopicAliasInvalid);
  auto other = Connect5("other");
  alias.Clear();
  alias.Add(PropertyId::kTopicAlias, 2U);
  mqtt::Publish unset = MakePublish("", "x");  // alias 2 was never set on this connection
  unset.properties = alias.view();
  other->Send(unset);
  EXPECT_EQ(other->Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  // Without an offer, any alias is out of range.
  limits_.topic_alias_maximum = 0;
  broker_.reset();
  auto none = Connect5("none");
  p.properties = alias.view();
  none->Send(p);
  EXPECT_EQ(none->Expect<mqtt::Disconnect>().reason, ReasonCode::kTopicAliasInvalid);
}

TEST_F(BrokerV5Test, OutboundTopicAliasesFollowLeastRecentlyUsed) {
  // 5.0 [MQTT-3.1.2-26], 5.0 [MQTT-3.3.2-11], 5.0 [MQTT-3.3.2-8]: a client allowing 2 aliases only
  // ever sees aliases 1 and 2.
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kTopicAliasMaximum, 2U);
  auto sub = Connect5("sub", props);
  Subscribe(*sub, "#", QoS::k0);
  TestClient pub(broker(), clock_);
  pub.Connect("pub");
  for (const char* topic : {"t1", "t1", "t2", "t3", "t1"}) {
    pub.Send(MakePublish(topic, topic));
  }
  const auto got = Publishes(sub->Receive());
  ASSERT_EQ(got.size(), 5U);
  struct Seen {
    std::string_view topic;
    std::uint32_t alias;
  };
  const Seen want[] = {{"t1", 1}, {"", 1}, {"t2", 2}, {"t3", 1}, {"t1", 2}};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i].topic, want[i].topic) << i;
    EXPECT_EQ(got[i].properties.Number(PropertyId::kTopicAlias), want[i].alias) << i;
  }
}

TEST_F(BrokerV5Test, NoOutboundAliasesUnlessBothSidesAllowThem) {
  limits_.outbound_topic_alias_maximum = 0;
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kTopicAliasMaximum, 5U);
  auto sub = Connect5("sub", props);
  Subscribe(*sub, "t", QoS::k0);
  auto plain = Connect5("plain");  // asked for none
  Subscribe(*plain, "t", QoS::k0);
  TestClient pub(broker(), clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "1"));
  pub.Send(MakePublish("t", "2"));
  for (TestClient* c : {sub.get(), plain.get()}) {
    for (const mqtt::Publish& p : Publishes(c->Receive())) {
      EXPECT_EQ(p.topic, "t");
      EXPECT_FALSE(p.properties.Find(PropertyId::kTopicAlias));
    }
  }
}

TEST_F(BrokerV5Test, NoOutboundAliasesToAClientThatAllowsNone) {
  // 5.0 [MQTT-3.1.2-27]: the broker would use up to 10 aliases; a client that sent no Topic Alias
  // Maximum, or 0, gets every topic in full.
  mqtt::PropertiesBuilder zero;
  zero.Add(PropertyId::kTopicAliasMaximum, 0U);
  auto absent = Connect5("absent");
  auto none = Connect5("none", zero);
  Subscribe(*absent, "t", QoS::k0);
  Subscribe(*none, "t", QoS::k0);
  auto pub = Connect5("pub");
  for (int i = 0; i < 3; ++i) {
    pub->Send(MakePublish("t", std::to_string(i)));
  }
  for (TestClient* c : {absent.get(), none.get()}) {
    const auto got = Publishes(c->Receive());
    ASSERT_EQ(got.size(), 3U);
    for (const mqtt::Publish& p : got) {
      EXPECT_EQ(p.topic, "t");
      EXPECT_FALSE(p.properties.Find(PropertyId::kTopicAlias));
    }
  }
}

TEST_F(BrokerV5Test, TopicAliasesEndWithTheConnection) {
  // 5.0 [MQTT-3.3.2-7]: neither the client's aliases nor the broker's carry over to the next
  // connection of the same session.
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kSessionExpiryInterval, 3600U).Add(PropertyId::kTopicAliasMaximum, 5U);
  auto c = Connect5("c", props);
  Subscribe(*c, "t", QoS::k0);
  mqtt::PropertiesBuilder alias;
  alias.Add(PropertyId::kTopicAlias, 1U);
  mqtt::Publish set = MakePublish("t", "1");
  set.properties = alias.view();
  c->Send(set);  // the client's alias 1 stands for "t" now
  const auto first = c->Expect<mqtt::Publish>();
  EXPECT_EQ(first.topic, "t");
  EXPECT_EQ(first.properties.Number(PropertyId::kTopicAlias), 1U);  // and the broker's too
  c->Send(MakePublish("t", "2"));
  EXPECT_EQ(c->Expect<mqtt::Publish>().topic, "");  // the broker's alias in use
  c->Drop();
  auto back = Connect5("c", props, /*clean_start=*/false);
  EXPECT_TRUE(connack.session_present);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "3"));
  const auto again = back->Expect<mqtt::Publish>();
  EXPECT_EQ(again.topic, "t");  // set again before use
  EXPECT_EQ(again.properties.Number(PropertyId::kTopicAlias), 1U);
  mqtt::Publish use = MakePublish("", "4");
  use.properties = alias.view();
  back->Send(use);  // alias 1 was set on the old connection only
  EXPECT_EQ(back->Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
}

// ---------------------------------------------------------------------------------------------
// Message expiry

TEST_F(BrokerV5Test, QueuedMessageExpiryCountsDownAndExpiredOnesAreDropped) {
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto sub = Connect5("sub", session, /*clean_start=*/true);
  Subscribe(*sub, "t", QoS::k1);
  sub->Send(mqtt::Disconnect{});
  sub->Finish();
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder expiry;
  expiry.Add(PropertyId::kMessageExpiryInterval, 10U).AddUserProperty("k", "v");
  mqtt::Publish lasting = MakePublish("t", "lasting", QoS::k1, 1);
  lasting.properties = expiry.view();
  pub->Send(lasting);
  expiry.Clear();
  expiry.Add(PropertyId::kMessageExpiryInterval, 2U);
  mqtt::Publish brief = MakePublish("t", "brief", QoS::k1, 2);
  brief.properties = expiry.view();
  pub->Send(brief);
  (void)pub->Receive();
  Tick(milliseconds(3500));
  auto back = Connect5("sub", session, /*clean_start=*/false);
  const auto got = Publishes(rest);
  ASSERT_EQ(got.size(), 1U);  // 5.0 [MQTT-3.3.2-5]: "brief" expired while queued
  EXPECT_EQ(got[0].payload.AsString(), "lasting");
  // 5.0 [MQTT-3.3.2-6]: 10 s less the 3.5 s it waited, rounded up.
  EXPECT_EQ(got[0].properties.Number(PropertyId::kMessageExpiryInterval), 7U);
  EXPECT_EQ(got[0].properties.Text(PropertyId::kUserProperty), "k");
  EXPECT_EQ(broker().counters().dropped_expired, 1U);
}

TEST_F(BrokerV5Test, RetainedMessageExpires) {
  // 5.0 [MQTT-3.3.2-6]: counted down while retained; 5.0 [MQTT-3.3.2-5]: not sent once expired.
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder expiry;
  expiry.Add(PropertyId::kMessageExpiryInterval, 5U);
  mqtt::Publish p = MakePublish("r", "kept", QoS::k0, 0, /*retain=*/true);
  p.properties = expiry.view();
  pub->Send(p);
  Tick(milliseconds(2000));
  auto early = Connect5("early");
  Subscribe(*early, "r", QoS::k0);
  ASSERT_EQ(rest.size(), 1U);
  const auto got = std::get<mqtt::Publish>(rest[0]);
  EXPECT_TRUE(got.retain);
  EXPECT_EQ(got.properties.Number(PropertyId::kMessageExpiryInterval), 3U);
  Tick(milliseconds(3001));
  auto late = Connect5("late");
  Subscribe(*late, "r", QoS::k0);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(broker().retained_count(), 0U);  // forgotten once found expired
}

TEST_F(BrokerV5Test, SentQos2MessageIsCompletedAfterItsExpiry) {
  // 5.0 [MQTT-4.3.3-7]: once a QoS 2 PUBLISH went out its Message Expiry no longer applies: sent,
  // not acknowledged, expired while the client was away, it is sent again (DUP 1, same identifier)
  // when the session resumes, and its flow completes.
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto c = Connect5("c", session);
  Subscribe(*c, "t", QoS::k2);
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder expiry;
  expiry.Add(PropertyId::kMessageExpiryInterval, 2U);
  mqtt::Publish p = MakePublish("t", "sent", QoS::k2, 1);
  p.properties = expiry.view();
  pub->Send(p);
  const auto sent = c->Expect<mqtt::Publish>();
  c->Drop();
  Tick(seconds(5));
  auto back = Connect5("c", session, /*clean_start=*/false);
  const auto again = Publishes(rest);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].payload.AsString(), "sent");
  EXPECT_TRUE(again[0].dup);
  EXPECT_EQ(again[0].packet_id, sent.packet_id);
  back->Send(mqtt::Pubrec{sent.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(back->Expect<mqtt::Pubrel>().packet_id, sent.packet_id);
  back->Send(mqtt::Pubcomp{sent.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(broker().counters().dropped_expired, 0U);
}

TEST_F(BrokerV5Test, IncomingQos2FlowFinishesAfterTheMessageExpired) {
  // 5.0 [MQTT-4.3.3-13]: as QoS 2 receiver the broker completes PUBREC / PUBREL / PUBCOMP for a
  // message whose expiry passed in between (and which an offline subscriber then never gets).
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto sub = Connect5("sub", session);
  Subscribe(*sub, "t", QoS::k2);
  sub->Drop();
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder expiry;
  expiry.Add(PropertyId::kMessageExpiryInterval, 1U);
  mqtt::Publish p = MakePublish("t", "brief", QoS::k2, 7);
  p.properties = expiry.view();
  pub->Send(p);
  EXPECT_EQ(pub->Expect<mqtt::Pubrec>().packet_id, 7);
  Tick(seconds(3));
  pub->Send(mqtt::Pubrel{7, ReasonCode::kSuccess, {}});
  const auto complete = pub->Expect<mqtt::Pubcomp>();
  EXPECT_EQ(complete.packet_id, 7);
  EXPECT_EQ(complete.reason, ReasonCode::kSuccess);
  auto back = Connect5("sub", session, /*clean_start=*/false);
  EXPECT_TRUE(rest.empty());  // expired while queued
}

// ---------------------------------------------------------------------------------------------
// Subscription options and identifiers

TEST_F(BrokerV5Test, NoLocalKeepsAClientsOwnMessagesFromIt) {
  auto self = Connect5("self");
  Subscribe(*self, "t", {QoS::k0, /*no_local=*/true, false, 0});
  auto other = Connect5("other");
  Subscribe(*other, "t", QoS::k0);
  self->Send(MakePublish("t", "mine"));
  EXPECT_TRUE(self->Receive().empty());  // 5.0 [MQTT-3.8.3-3]
  EXPECT_EQ(other->Expect<mqtt::Publish>().payload.AsString(), "mine");
  other->Send(MakePublish("t", "theirs"));
  EXPECT_EQ(self->Expect<mqtt::Publish>().payload.AsString(), "theirs");
}

TEST_F(BrokerV5Test, RetainAsPublishedKeepsTheRetainFlag) {
  auto rap = Connect5("rap");
  Subscribe(*rap, "t", {QoS::k0, false, /*retain_as_published=*/true, 0});
  auto plain = Connect5("plain");
  Subscribe(*plain, "t", QoS::k0);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "x", QoS::k0, 0, /*retain=*/true));
  EXPECT_TRUE(rap->Expect<mqtt::Publish>().retain);     // 5.0 [MQTT-3.3.1-13]
  EXPECT_FALSE(plain->Expect<mqtt::Publish>().retain);  // 5.0 [MQTT-3.3.1-12]
}

TEST_F(BrokerV5Test, RetainHandlingChoosesWhenRetainedMessagesAreSent) {
  auto pub = Connect5("pub");
  pub->Send(MakePublish("r", "retained", QoS::k0, 0, /*retain=*/true));
  auto c = Connect5("c");
  Subscribe(*c, "r", {QoS::k0, false, false, 1});  // new subscription: sent
  ASSERT_EQ(Publishes(rest).size(), 1U);
  EXPECT_EQ(Publishes(rest)[0].payload.AsString(), "retained");
  Subscribe(*c, "r", {QoS::k0, false, false, 1});  // existing: not sent [MQTT-3.3.1-10]
  EXPECT_TRUE(rest.empty());
  Subscribe(*c, "r", {QoS::k0, false, false, 0});  // 0: sent every time [MQTT-3.3.1-9]
  EXPECT_EQ(Publishes(rest).size(), 1U);
  auto never = Connect5("never");
  Subscribe(*never, "r", {QoS::k0, false, false, 2});  // 2: never [MQTT-3.3.1-11]
  EXPECT_TRUE(rest.empty());
}

TEST_F(BrokerV5Test, SubscriptionIdentifiersOfEveryMatchingSubscriptionAreSent) {
  auto c = Connect5("c");
  Subscribe(*c, "a/+", {QoS::k0, false, false, 0}, 5);
  Subscribe(*c, "a/#", {QoS::k1, false, false, 0}, 700);
  Subscribe(*c, "a/b", QoS::k0);  // no identifier
  auto pub = Connect5("pub");
  pub->Send(MakePublish("a/b", "x", QoS::k1, 1));
  const auto got = c->Expect<mqtt::Publish>();  // once, at the highest QoS
  EXPECT_EQ(got.qos, QoS::k1);
  auto ids = SubscriptionIds(got);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{5, 700}));  // 5.0 [MQTT-3.3.4-3], [MQTT-3.3.4-4]
  // The retained message sent at subscribe time carries that subscription's identifier.
  pub->Send(MakePublish("r", "kept", QoS::k0, 0, /*retain=*/true));
  Subscribe(*c, "r", {QoS::k0, false, false, 0}, 9);
  ASSERT_EQ(rest.size(), 1U);
  EXPECT_EQ(SubscriptionIds(std::get<mqtt::Publish>(rest[0])), (std::vector<std::uint32_t>{9}));
}

TEST_F(BrokerV5Test, ReplacingASubscriptionResendsRetainedAndLosesNothing) {
  // 5.0 [MQTT-3.8.4-4]: subscribing again to the same filter with Retain Handling 0 sends the
  // retained message again, and the messages already on their way under the old subscription (one
  // in flight, one queued behind a window of 1) still arrive.
  limits_.max_inflight = 1;
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t/r", "retained", QoS::k0, 0, /*retain=*/true));
  auto c = Connect5("c");
  Subscribe(*c, "t/#", {QoS::k1, false, false, 0});
  ASSERT_EQ(Publishes(rest).size(), 1U);
  pub->Send(MakePublish("t/a", "1", QoS::k1, 1));
  pub->Send(MakePublish("t/a", "2", QoS::k1, 2));
  const auto in_flight = c->Expect<mqtt::Publish>();
  EXPECT_EQ(in_flight.payload.AsString(), "1");
  Subscribe(*c, "t/#", {QoS::k1, false, false, 0});  // replaces the subscription
  const auto retained = Publishes(rest);
  ASSERT_EQ(retained.size(), 1U);
  EXPECT_EQ(retained[0].payload.AsString(), "retained");
  EXPECT_TRUE(retained[0].retain);
  c->Send(mqtt::Puback{in_flight.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(c->Expect<mqtt::Publish>().payload.AsString(), "2");
  EXPECT_EQ(broker().subscription_count(), 1U);
}

TEST_F(BrokerV5Test, SharedAndNonSharedSubscriptionsSendACopyEachWithItsOwnIdentifier) {
  // 5.0 [MQTT-3.3.4-5]: a session whose shared and non-shared subscriptions both match gets two
  // copies, each with only the identifier of the subscription it answers. (Overlapping non-shared
  // subscriptions give one copy with all their identifiers, 5.0 [MQTT-3.3.4-4]: see
  // SubscriptionIdentifiersOfEveryMatchingSubscriptionAreSent.)
  auto c = Connect5("c");
  Subscribe(*c, "t/#", {QoS::k0, false, false, 0}, 1);
  Subscribe(*c, "$share/g/t/+", {QoS::k0, false, false, 0}, 2);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t/x", "x"));
  const auto got = Publishes(c->Receive());
  ASSERT_EQ(got.size(), 2U);
  std::vector<std::vector<std::uint32_t>> ids = {SubscriptionIds(got[0]), SubscriptionIds(got[1])};
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::vector<std::uint32_t>>{{1}, {2}}));
}

// ---------------------------------------------------------------------------------------------
// Shared subscriptions

TEST_F(BrokerV5Test, SharedSubscriptionGivesEachMessageToOneMemberInTurn) {
  auto a = Connect5("a");
  auto b = Connect5("b");
  auto other_group = Connect5("g2");
  auto plain = Connect5("plain");
  EXPECT_EQ(Subscribe(*a, "$share/g/t/#", QoS::k1), ReasonCode::kGrantedQos1);
  EXPECT_EQ(Subscribe(*b, "$share/g/t/#", QoS::k1), ReasonCode::kGrantedQos1);
  Subscribe(*other_group, "$share/h/t/#", QoS::k0);
  Subscribe(*plain, "t/#", QoS::k0);
  auto pub = Connect5("pub");
  for (int i = 0; i < 4; ++i) {
    pub->Send(MakePublish("t/x", std::to_string(i)));
  }
  std::vector<std::string> to_a;
  std::vector<std::string> to_b;
  for (const auto& p : Publishes(a->Receive())) to_a.emplace_back(p.payload.AsString());
  for (const auto& p : Publishes(b->Receive())) to_b.emplace_back(p.payload.AsString());
  EXPECT_EQ(to_a, (std::vector<std::string>{"0", "2"}));
  EXPECT_EQ(to_b, (std::vector<std::string>{"1", "3"}));
  EXPECT_EQ(Publishes(other_group->Receive()).size(), 4U);  // every group gets a copy
  EXPECT_EQ(Publishes(plain->Receive()).size(), 4U);
}

TEST_F(BrokerV5Test, SharedSubscriptionGetsNoRetainedMessages) {
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "retained", QoS::k0, 0, /*retain=*/true));
  auto a = Connect5("a");
  Subscribe(*a, "$share/g/t", QoS::k0);
  EXPECT_TRUE(rest.empty());  // 5.0 §4.8.2
}

TEST_F(BrokerV5Test, SharedMessagesOfAMemberThatLeavesGoToAnother) {
  limits_.max_inflight = 1;
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto a = Connect5("a", session);
  auto b = Connect5("b");
  Subscribe(*a, "$share/g/t", QoS::k1);
  Subscribe(*b, "$share/g/t", QoS::k1);
  auto pub = Connect5("pub");
  // "1" to a, "2" to b, "3" and "4" wait in a's and b's queues (window 1, no acks).
  for (int i = 1; i <= 4; ++i) {
    pub->Send(MakePublish("t", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i)));
  }
  EXPECT_EQ(Publishes(a->Receive()).size(), 1U);
  const auto to_b = Publishes(b->Receive());
  ASSERT_EQ(to_b.size(), 1U);
  a->Drop();  // persistent session: its unacknowledged "1" and queued "3" go to b
  b->Send(mqtt::Puback{to_b[0].packet_id, ReasonCode::kSuccess, {}});
  std::vector<std::string> got;
  for (int round = 0; round < 4; ++round) {
    for (const auto& p : Publishes(b->Receive())) {
      got.emplace_back(p.payload.AsString());
      b->Send(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
    }
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"1", "3", "4"}));
}

TEST_F(BrokerV5Test, PublisherHashSendsOnePublishersMessagesToOneMember) {
  limits_.shared_policy = SharedPolicy::kPublisherHash;
  auto a = Connect5("a");
  auto b = Connect5("b");
  Subscribe(*a, "$share/g/t", QoS::k0);
  Subscribe(*b, "$share/g/t", QoS::k0);
  auto pub = Connect5("pub");
  for (int i = 0; i < 6; ++i) {
    pub->Send(MakePublish("t", std::to_string(i)));
  }
  const std::size_t to_a = Publishes(a->Receive()).size();
  const std::size_t to_b = Publishes(b->Receive()).size();
  EXPECT_TRUE((to_a == 6 && to_b == 0) || (to_a == 0 && to_b == 6)) << to_a << " " << to_b;
}

TEST_F(BrokerV5Test, SharedMembersGetTheirOwnGrantedQos) {
  // 5.0 [MQTT-4.8.2-3]: each member at the QoS granted to its own subscription.
  auto a = Connect5("a");
  auto b = Connect5("b");
  EXPECT_EQ(Subscribe(*a, "$share/g/t", QoS::k0), ReasonCode::kSuccess);  // granted QoS 0
  EXPECT_EQ(Subscribe(*b, "$share/g/t", QoS::k2), ReasonCode::kGrantedQos2);
  auto pub = Connect5("pub");
  for (std::uint16_t i = 1; i <= 4; ++i) {
    pub->Send(MakePublish("t", std::to_string(i), i % 2 == 0 ? QoS::k2 : QoS::k1, i));
  }
  const auto to_a = Publishes(a->Receive());
  const auto to_b = Publishes(b->Receive());
  EXPECT_EQ(to_a.size() + to_b.size(), 4U);
  EXPECT_FALSE(to_a.empty());
  EXPECT_FALSE(to_b.empty());
  for (const mqtt::Publish& p : to_a) {
    EXPECT_EQ(p.qos, QoS::k0) << p.payload.AsString();
  }
  for (const mqtt::Publish& p : to_b) {  // as published: QoS 1 for odd, 2 for even
    EXPECT_EQ(p.qos, std::stoi(std::string(p.payload.AsString())) % 2 == 0 ? QoS::k2 : QoS::k1);
  }
}

TEST_F(BrokerV5Test, SharedQos2DeliveryStaysWithTheMemberItWasSentTo) {
  // 5.0 [MQTT-4.8.2-4]: a QoS 2 message sent to a member whose connection breaks is completed with
  // that member when it comes back, and no other member gets it meanwhile.
  // 5.0 [MQTT-4.8.2-5]: if that member's session ends first, no other member gets it either.
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 60U);
  auto a = Connect5("a", session);
  auto b = Connect5("b");
  Subscribe(*a, "$share/g/t", QoS::k2);
  Subscribe(*b, "$share/g/t", QoS::k2);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "first", QoS::k2, 1));  // round robin: a, the first member
  const auto sent = a->Expect<mqtt::Publish>();
  EXPECT_EQ(sent.payload.AsString(), "first");
  a->Drop();
  EXPECT_TRUE(b->Receive().empty());
  auto back = Connect5("a", session, /*clean_start=*/false);
  const auto again = Publishes(rest);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].payload.AsString(), "first");
  EXPECT_TRUE(again[0].dup);
  back->Send(mqtt::Pubrec{sent.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_EQ(back->Expect<mqtt::Pubrel>().packet_id, sent.packet_id);
  back->Send(mqtt::Pubcomp{sent.packet_id, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(b->Receive().empty());
  // One message each; then a goes away for good with its copy unacknowledged.
  pub->Send(MakePublish("t", "second", QoS::k2, 2));
  pub->Send(MakePublish("t", "third", QoS::k2, 3));
  const auto to_a = Publishes(back->Receive());
  const auto to_b = Publishes(b->Receive());
  ASSERT_EQ(to_a.size(), 1U);
  ASSERT_EQ(to_b.size(), 1U);
  back->Drop();
  Tick(seconds(61));
  EXPECT_EQ(broker().session_count(), 2U);  // a's expired: b's and pub's are left
  EXPECT_TRUE(b->Receive().empty());
}

TEST_F(BrokerV5Test, SharedMessageRefusedByItsMemberGoesToNoOther) {
  // 5.0 [MQTT-4.8.2-6]: a PUBACK or PUBREC of 0x80 or more from the member drops the message; it
  // goes to no other member, also when the member then leaves.
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 60U);
  auto a = Connect5("a", session);
  auto b = Connect5("b", session);
  Subscribe(*a, "$share/g/t", QoS::k2);
  Subscribe(*b, "$share/g/t", QoS::k2);
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "one", QoS::k1, 1));  // to a
  pub->Send(MakePublish("t", "two", QoS::k2, 2));  // to b
  const auto one = a->Expect<mqtt::Publish>();
  const auto two = b->Expect<mqtt::Publish>();
  EXPECT_EQ(one.payload.AsString(), "one");
  EXPECT_EQ(two.payload.AsString(), "two");
  a->Send(mqtt::Puback{one.packet_id, ReasonCode::kImplementationSpecificError, {}});
  b->Send(mqtt::Pubrec{two.packet_id, ReasonCode::kImplementationSpecificError, {}});
  (void)b->Receive();  // its PUBREL
  a->Drop();
  b->Drop();
  for (const char* id : {"a", "b"}) {
    auto back = Connect5(id, session, /*clean_start=*/false);
    for (const mqtt::Packet& p : rest) {
      EXPECT_FALSE(std::holds_alternative<mqtt::Publish>(p)) << id;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Wills

class WillDelayTest : public BrokerV5Test {
 protected:
  // A client "dying" with a will on "w" delayed by `delay_s`, its session lasting `expiry_s`.
  std::unique_ptr<TestClient> Dying(std::uint32_t delay_s, std::uint32_t expiry_s) {
    auto c = std::make_unique<TestClient>(broker(), clock_, kV5);
    mqtt::PropertiesBuilder session;
    session.Add(PropertyId::kSessionExpiryInterval, expiry_s);
    will_props_.Clear();
    will_props_.Add(PropertyId::kWillDelayInterval, delay_s).AddUserProperty("why", "gone");
    mqtt::Connect connect = V5Connect("dying", session, /*clean_start=*/false);
    connect.will = mqtt::Will{QoS::k0, false, will_props_.view(), "w", mqtt::BinaryView::Of("bye")};
    c->Send(connect);
    EXPECT_EQ(c->Expect<mqtt::Connack>().reason, ReasonCode::kSuccess);
    return c;
  }
  mqtt::PropertiesBuilder will_props_;
};

TEST_F(WillDelayTest, WillWaitsForItsDelay) {
  // 5.0 [MQTT-3.1.2-8]: published once the Will Delay Interval has passed.
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(5, 3600);
  dying->Drop();
  Tick(milliseconds(4999));
  EXPECT_TRUE(watcher->Receive().empty());
  Tick(milliseconds(2));
  const auto will = watcher->Expect<mqtt::Publish>();
  EXPECT_EQ(will.payload.AsString(), "bye");
  EXPECT_EQ(will.properties.Text(PropertyId::kUserProperty), "why");  // will properties travel
  EXPECT_FALSE(will.properties.Find(PropertyId::kWillDelayInterval));
}

TEST_F(WillDelayTest, ReconnectingInTimeCancelsTheWill) {
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(5, 3600);
  dying->Drop();
  Tick(milliseconds(3000));
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto back = Connect5("dying", session, /*clean_start=*/false);  // 5.0 [MQTT-3.1.3-9]
  EXPECT_TRUE(connack.session_present);
  Tick(milliseconds(10'000));
  EXPECT_TRUE(watcher->Receive().empty());
}

TEST_F(WillDelayTest, SessionEndingFirstSendsTheWillThen) {
  // 5.0 [MQTT-3.1.2-8]: or when the session ends, whichever comes first.
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(60, 2);
  dying->Drop();
  Tick(milliseconds(1999));
  EXPECT_TRUE(watcher->Receive().empty());
  Tick(milliseconds(2));
  EXPECT_EQ(watcher->Expect<mqtt::Publish>().payload.AsString(), "bye");
  EXPECT_EQ(broker().session_count(), 1U);  // only the watcher's
}

TEST_F(WillDelayTest, TakeoverWithCleanStartEndsTheSessionAndSendsTheWill) {
  // 5.0 [MQTT-3.1.2-8], 5.0 [MQTT-3.1.3-9]: a Clean Start 1 connection is not to this session: it
  // ends the session, so the will goes out (Mosquitto cancels it instead).
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(60, 3600);
  auto fresh = Connect5("dying");  // clean start: the old session ends now
  EXPECT_EQ(dying->Expect<mqtt::Disconnect>().reason, ReasonCode::kSessionTakenOver);
  EXPECT_EQ(watcher->Expect<mqtt::Publish>().payload.AsString(), "bye");
}

TEST_F(WillDelayTest, TakeoverWithCleanStartClosesTheOldConnection) {
  // 5.0 [MQTT-3.1.4-3]: the connection taken over gets DISCONNECT 0x8E and is closed.
  auto dying = Dying(60, 3600);
  auto fresh = Connect5("dying");
  EXPECT_EQ(dying->Expect<mqtt::Disconnect>().reason, ReasonCode::kSessionTakenOver);
  EXPECT_TRUE(dying->Closed());
  EXPECT_FALSE(fresh->Closed());
}

TEST_F(WillDelayTest, NormalDisconnectDiscardsADelayedWill) {
  // 5.0 [MQTT-3.14.4-3], 5.0 [MQTT-3.1.2-10]: DISCONNECT 0x00 removes the will, delay or not.
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(5, 3600);
  dying->Send(mqtt::Disconnect{});
  dying->Finish();
  Tick(seconds(10));
  EXPECT_TRUE(watcher->Receive().empty());
  EXPECT_EQ(broker().session_count(), 2U);  // the session lives on, without its will
}

TEST_F(WillDelayTest, DelayedWillGoesOutOnceWithItsUserPropertiesInOrder) {
  // 5.0 [MQTT-3.1.3-10]: the will's User Properties in the order they came. 5.0 [MQTT-3.1.2-10]:
  // once published the will is gone: the session resumed and lost again sends nothing.
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  will_props_.Clear();
  will_props_.Add(PropertyId::kWillDelayInterval, 1U)
      .AddUserProperty("b", "2")
      .AddUserProperty("a", "1")
      .AddUserProperty("b", "3");
  mqtt::Connect connect = V5Connect("dying", session, /*clean_start=*/false);
  connect.will = mqtt::Will{QoS::k0, false, will_props_.view(), "w", mqtt::BinaryView::Of("bye")};
  TestClient dying(broker(), clock_, kV5);
  dying.Send(connect);
  EXPECT_EQ(dying.Expect<mqtt::Connack>().reason, ReasonCode::kSuccess);
  dying.Drop();
  Tick(milliseconds(1001));
  const auto will = watcher->Expect<mqtt::Publish>();
  std::vector<std::string> pairs;
  for (const mqtt::Property& p : will.properties) {
    if (p.id == PropertyId::kUserProperty) {
      pairs.push_back(std::string(p.text) + "=" + std::string(p.value));
    }
  }
  EXPECT_EQ(pairs, (std::vector<std::string>{"b=2", "a=1", "b=3"}));
  auto back = Connect5("dying", session, /*clean_start=*/false);  // no will this time
  back->Drop();
  Tick(seconds(10));
  EXPECT_TRUE(watcher->Receive().empty());
}

// ---------------------------------------------------------------------------------------------
// Reason codes and strings

TEST_F(BrokerV5Test, AcksSayWhenNobodySubscribes) {
  auto pub = Connect5("pub");
  pub->Send(MakePublish("nobody", "x", QoS::k1, 1));
  EXPECT_EQ(pub->Expect<mqtt::Puback>().reason, ReasonCode::kNoMatchingSubscribers);
  pub->Send(MakePublish("nobody", "x", QoS::k2, 2));
  EXPECT_EQ(pub->Expect<mqtt::Pubrec>().reason, ReasonCode::kNoMatchingSubscribers);
  auto sub = Connect5("sub");
  Subscribe(*sub, "somebody", QoS::k0);
  pub->Send(MakePublish("somebody", "x", QoS::k1, 3));
  EXPECT_EQ(pub->Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
}

TEST_F(BrokerV5Test, ReasonStringsOnlyWhenTheClientWantsThem) {
  auto wants = Connect5("wants");
  mqtt::SubscriptionListBuilder bad;
  bad.Add("a/#/b", {QoS::k0, false, false, 0});
  wants->Send(mqtt::Subscribe{1, {}, bad.view()});
  EXPECT_TRUE(wants->Expect<mqtt::Suback>().properties.Find(PropertyId::kReasonString));
  mqtt::PropertiesBuilder quiet;
  quiet.Add(PropertyId::kRequestProblemInformation, 0U);
  auto no = Connect5("no", quiet);
  no->Send(mqtt::Subscribe{1, {}, bad.view()});
  // 5.0 [MQTT-3.1.2-29]: no Reason String outside CONNACK, DISCONNECT and PUBLISH.
  const auto suback = no->Expect<mqtt::Suback>();
  EXPECT_EQ(suback.reason_codes[0], ReasonCode::kTopicFilterInvalid);
  EXPECT_FALSE(suback.properties.Find(PropertyId::kReasonString));
  // Takeover: DISCONNECT 0x8E, with its reason.
  auto again = Connect5("no");
  const auto taken = no->Expect<mqtt::Disconnect>();
  EXPECT_EQ(taken.reason, ReasonCode::kSessionTakenOver);
  EXPECT_TRUE(taken.properties.Find(PropertyId::kReasonString));
}

TEST_F(BrokerV5Test, DisconnectReasonStringOnlyWhenItFits) {
  // 5.0 [MQTT-3.14.2-3]: the DISCONNECT 0x8E to a connection taken over carries its Reason String
  // ("session taken over", 25 bytes in all) only when that stays within the client's Maximum
  // Packet Size.
  for (const std::uint32_t max : {24U, 28U}) {
    SCOPED_TRACE(max);
    const std::string id = "twice" + std::to_string(max);
    mqtt::PropertiesBuilder props;
    props.Add(PropertyId::kMaximumPacketSize, max);
    auto old = Connect5(id, props);
    auto fresh = Connect5(id);
    EXPECT_LE(broker().OutputSize(old->id()), max);
    const auto taken = old->Expect<mqtt::Disconnect>();
    EXPECT_EQ(taken.reason, ReasonCode::kSessionTakenOver);
    EXPECT_EQ(taken.properties.Find(PropertyId::kReasonString).has_value(), max == 28U);
  }
}

TEST_F(BrokerV5Test, NothingFollowsTheBrokersDisconnect) {
  // 5.0 [MQTT-3.14.4-1], 5.0 [MQTT-3.14.4-2], 5.0 [MQTT-4.13.1-1], 5.0 [MQTT-4.13.2-1]: a Protocol
  // Error (a Subscription Identifier in a client PUBLISH) gets DISCONNECT 0x82 and the close; the
  // packets that came in the same read get no answer, and a message for the session's
  // subscription does not go to that connection. A malformed packet gets DISCONNECT 0x81 and the
  // close.
  mqtt::PropertiesBuilder session;
  session.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto c = Connect5("c", session);
  Subscribe(*c, "t", QoS::k1);
  mqtt::PropertiesBuilder id;
  id.Add(PropertyId::kSubscriptionIdentifier, 1U);
  mqtt::Publish bad = MakePublish("t", "bad");
  bad.properties = id.view();
  mqtt::SubscriptionListBuilder more;
  more.Add("u", {QoS::k0, false, false, 0});
  c->SendRaw(Encoded5({bad, mqtt::Pingreq{}, mqtt::Subscribe{9, {}, more.view()},
                       MakePublish("t", "after", QoS::k1, 5)}));
  EXPECT_EQ(c->Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(c->Closed());
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "later", QoS::k1, 1));
  EXPECT_TRUE(c->Receive().empty());
  auto malformed = Connect5("malformed");
  // PUBLISH QoS 1 to "t", id 1, whose Property Length (32) runs past the packet.
  malformed->SendRaw({0x32, 0x08, 0x00, 0x01, 't', 0x00, 0x01, 0x20, 0x01, 0x00});
  EXPECT_EQ(malformed->Expect<mqtt::Disconnect>().reason, ReasonCode::kMalformedPacket);
  EXPECT_TRUE(malformed->Closed());
}

TEST_F(BrokerV5Test, V5PublisherToV311SubscriberLosesOnlyTheProperties) {
  TestClient old(broker(), clock_);
  old.Connect("old");
  mqtt::SubscriptionListBuilder list;
  list.Add("t", {QoS::k2, false, false, 0});
  old.Send(mqtt::Subscribe{1, {}, list.view()});
  (void)old.Expect<mqtt::Suback>();
  auto pub = Connect5("pub");
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kMessageExpiryInterval, 60U).AddUserProperty("k", "v");
  mqtt::Publish p = MakePublish("t", "hello", QoS::k1, 1);
  p.properties = props.view();
  pub->Send(p);
  const auto got = old.Expect<mqtt::Publish>();
  EXPECT_EQ(got.payload.AsString(), "hello");
  EXPECT_EQ(got.qos, QoS::k1);
  EXPECT_TRUE(got.properties.empty());
}

// ---------------------------------------------------------------------------------------------
// Enhanced authentication

// A challenge/response method "TEST": the client sends "hello", the broker answers "challenge",
// the client must answer "response".
class ChallengeAuthenticator : public Authenticator {
 public:
  class Exchange : public AuthExchange {
   public:
    AuthStep Next(mqtt::BinaryView data) override {
      AuthStep step;
      const std::string_view text = data.AsString();
      if (!challenged_ && text == "hello") {
        challenged_ = true;
        step.outcome = AuthStep::Outcome::kContinue;
        step.data.assign({'c', 'h', 'a', 'l', 'l', 'e', 'n', 'g', 'e'});
      } else if (challenged_ && text == "response") {
        step.outcome = AuthStep::Outcome::kSuccess;
        step.data.assign({'o', 'k'});
      } else {
        step.outcome = AuthStep::Outcome::kFail;
        step.reason = ReasonCode::kNotAuthorized;
      }
      return step;
    }

   private:
    bool challenged_ = false;
  };

  std::unique_ptr<AuthExchange> Begin(std::string_view method, std::string_view) override {
    return method == "TEST" ? std::make_unique<Exchange>() : nullptr;
  }
};

mqtt::Auth AuthPacket(ReasonCode reason, std::string_view method, mqtt::PropertiesBuilder& props,
                      std::string_view data) {
  props.Clear();
  props.Add(PropertyId::kAuthenticationMethod, method)
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of(data));
  return mqtt::Auth{reason, props.view()};
}

TEST_F(BrokerV5Test, EnhancedAuthenticationRunsThroughTheAuthenticator) {
  ChallengeAuthenticator authenticator;
  broker().set_authenticator(&authenticator);
  TestClient c(broker(), clock_, kV5);
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kAuthenticationMethod, "TEST")
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of("hello"));
  c.Send(V5Connect("c", props));
  const auto challenge = c.Expect<mqtt::Auth>();
  EXPECT_EQ(challenge.reason, ReasonCode::kContinueAuthentication);
  EXPECT_EQ(challenge.properties.Text(PropertyId::kAuthenticationMethod), "TEST");
  EXPECT_EQ(challenge.properties.Binary(PropertyId::kAuthenticationData)->AsString(), "challenge");
  mqtt::PropertiesBuilder scratch;
  c.Send(AuthPacket(ReasonCode::kContinueAuthentication, "TEST", scratch, "response"));
  const auto ack = c.Expect<mqtt::Connack>();
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_EQ(ack.properties.Text(PropertyId::kAuthenticationMethod), "TEST");
  EXPECT_EQ(ack.properties.Binary(PropertyId::kAuthenticationData)->AsString(), "ok");
  // Re-authentication (5.0 §4.12.1): AUTH 0x19, the same exchange, AUTH 0x00 at the end; every
  // AUTH 0x18 and the CONNACK name the method of the CONNECT (5.0 [MQTT-4.12.0-2],
  // 5.0 [MQTT-4.12.0-5]).
  c.Send(AuthPacket(ReasonCode::kReAuthenticate, "TEST", scratch, "hello"));
  const auto rechallenge = c.Expect<mqtt::Auth>();
  EXPECT_EQ(rechallenge.reason, ReasonCode::kContinueAuthentication);
  EXPECT_EQ(rechallenge.properties.Text(PropertyId::kAuthenticationMethod), "TEST");
  c.Send(AuthPacket(ReasonCode::kContinueAuthentication, "TEST", scratch, "response"));
  const auto done = c.Expect<mqtt::Auth>();
  EXPECT_EQ(done.reason, ReasonCode::kSuccess);
  EXPECT_EQ(done.properties.Text(PropertyId::kAuthenticationMethod), "TEST");
  EXPECT_FALSE(c.Closed());
  // A failed re-authentication ends the connection [MQTT-4.12.1-2].
  c.Send(AuthPacket(ReasonCode::kReAuthenticate, "TEST", scratch, "wrong"));
  EXPECT_EQ(c.Expect<mqtt::Disconnect>().reason, ReasonCode::kNotAuthorized);
  EXPECT_TRUE(c.Closed());
}

TEST_F(BrokerV5Test, EnhancedAuthenticationFailuresAreRefused) {
  ChallengeAuthenticator authenticator;
  broker().set_authenticator(&authenticator);
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kAuthenticationMethod, "TEST")
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of("hello"));
  TestClient wrong(broker(), clock_, kV5);
  wrong.Send(V5Connect("wrong", props));
  (void)wrong.Expect<mqtt::Auth>();
  mqtt::PropertiesBuilder scratch;
  wrong.Send(AuthPacket(ReasonCode::kContinueAuthentication, "TEST", scratch, "guess"));
  EXPECT_EQ(wrong.Expect<mqtt::Connack>().reason, ReasonCode::kNotAuthorized);
  EXPECT_TRUE(wrong.Closed());  // 5.0 [MQTT-4.12.0-4]
  // Anything but AUTH during the exchange is a protocol error.
  TestClient eager(broker(), clock_, kV5);
  eager.Send(V5Connect("eager", props));
  (void)eager.Expect<mqtt::Auth>();
  eager.Send(MakePublish("t", "x"));
  // A CONNACK, not a DISCONNECT: 5.0 [MQTT-3.14.0-1].
  EXPECT_EQ(eager.Expect<mqtt::Connack>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(eager.Closed());
  // A broken second CONNECT mid-exchange gets a 5.0 CONNACK too (found by the broker fuzzer):
  // here one that claims protocol level 9.
  TestClient odd(broker(), clock_, kV5);
  odd.Send(V5Connect("odd", props));
  (void)odd.Expect<mqtt::Auth>();
  odd.SendRaw(
      {0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x09, 0x02, 0x00, 0x3C, 0x00, 0x01, 'o'});
  EXPECT_TRUE(IsFailure(odd.Expect<mqtt::Connack>().reason));
  EXPECT_TRUE(odd.Closed());
  // An unknown method: 0x8C.
  props.Clear();
  props.Add(PropertyId::kAuthenticationMethod, "OTHER");
  TestClient other(broker(), clock_, kV5);
  other.Send(V5Connect("other", props));
  EXPECT_EQ(other.Expect<mqtt::Connack>().reason, ReasonCode::kBadAuthenticationMethod);
  EXPECT_TRUE(other.Closed());  // 5.0 [MQTT-4.12.0-1]
  // No exchange to wait for: the CONNECT timeout still applies.
  TestClient slow(broker(), clock_, kV5);
  props.Clear();
  props.Add(PropertyId::kAuthenticationMethod, "TEST")
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of("hello"));
  slow.Send(V5Connect("slow", props));
  (void)slow.Expect<mqtt::Auth>();
  Tick(seconds(11));
  EXPECT_TRUE(slow.Closed());
  EXPECT_TRUE(slow.Receive().empty());  // no DISCONNECT before a CONNACK
}

TEST_F(BrokerV5Test, OnlyAuthGoesOutBeforeTheConnack) {
  // 5.0 [MQTT-3.2.0-1]: a client resuming a session with a message waiting authenticates first:
  // until the CONNACK 0x00 only AUTH goes out, even when another message for it arrives meanwhile.
  ChallengeAuthenticator authenticator;
  broker().set_authenticator(&authenticator);
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kSessionExpiryInterval, 3600U);
  auto first = Connect5("c", props);
  Subscribe(*first, "t", QoS::k1);
  first->Drop();
  auto pub = Connect5("pub");
  pub->Send(MakePublish("t", "waiting", QoS::k1, 1));
  props.Add(PropertyId::kAuthenticationMethod, "TEST")
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of("hello"));
  TestClient c(broker(), clock_, kV5);
  c.Send(V5Connect("c", props, /*clean_start=*/false));
  EXPECT_EQ(c.Expect<mqtt::Auth>().reason, ReasonCode::kContinueAuthentication);
  pub->Send(MakePublish("t", "meanwhile", QoS::k1, 2));
  EXPECT_TRUE(c.Receive().empty());
  mqtt::PropertiesBuilder scratch;
  c.Send(AuthPacket(ReasonCode::kContinueAuthentication, "TEST", scratch, "response"));
  const std::vector<mqtt::Packet> got = c.Receive();
  ASSERT_EQ(got.size(), 3U);
  ASSERT_TRUE(std::holds_alternative<mqtt::Connack>(got[0]));
  EXPECT_EQ(std::get<mqtt::Connack>(got[0]).reason, ReasonCode::kSuccess);
  EXPECT_TRUE(std::get<mqtt::Connack>(got[0]).session_present);
  const auto publishes = Publishes(std::vector<mqtt::Packet>(got.begin() + 1, got.end()));
  ASSERT_EQ(publishes.size(), 2U);
  EXPECT_EQ(publishes[0].payload.AsString(), "waiting");
  EXPECT_EQ(publishes[1].payload.AsString(), "meanwhile");
}

TEST_F(BrokerV5Test, NoAuthenticationOrResponseInformationUnasked) {
  // 5.0 [MQTT-4.12.0-6]: a client that named no Authentication Method gets none in CONNACK and is
  // never sent AUTH (an AUTH from it is a Protocol Error: DISCONNECT 0x82), even with an
  // Authenticator installed. 5.0 [MQTT-3.1.2-28]: no Response Information in CONNACK when Request
  // Response Information is 0 (tinymq sends none when it is 1 either).
  ChallengeAuthenticator authenticator;
  broker().set_authenticator(&authenticator);
  for (const std::uint32_t asked : {0U, 1U}) {
    mqtt::PropertiesBuilder props;
    props.Add(PropertyId::kRequestResponseInformation, asked);
    const std::string id = "c" + std::to_string(asked);
    auto c = Connect5(id, props);
    EXPECT_FALSE(connack.properties.Find(PropertyId::kResponseInformation)) << asked;
    EXPECT_FALSE(connack.properties.Find(PropertyId::kAuthenticationMethod));
    EXPECT_FALSE(connack.properties.Find(PropertyId::kAuthenticationData));
  }
  auto plain = Connect5("plain");
  mqtt::PropertiesBuilder scratch;
  plain->Send(AuthPacket(ReasonCode::kReAuthenticate, "TEST", scratch, "hello"));
  EXPECT_EQ(plain->Expect<mqtt::Disconnect>().reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(plain->Closed());
}

TEST_F(BrokerV5Test, AcknowledgementsCarryNoReasonStringOrUserProperty) {
  // The broker puts no Reason String and no User Property on CONNACK 0x00, PUBACK, PUBREC, PUBREL,
  // PUBCOMP, a SUBACK that grants every filter, UNSUBACK or AUTH, and no User Property on
  // DISCONNECT, so none of them can take a packet past the client's Maximum Packet Size (here
  // 64): 5.0 [MQTT-3.2.2-20], 5.0 [MQTT-3.4.2-2], 5.0 [MQTT-3.4.2-3], 5.0 [MQTT-3.5.2-2],
  // 5.0 [MQTT-3.5.2-3], 5.0 [MQTT-3.6.2-2], 5.0 [MQTT-3.6.2-3], 5.0 [MQTT-3.7.2-2],
  // 5.0 [MQTT-3.7.2-3], 5.0 [MQTT-3.9.2-2], 5.0 [MQTT-3.11.2-1], 5.0 [MQTT-3.11.2-2],
  // 5.0 [MQTT-3.14.2-4], 5.0 [MQTT-3.15.2-2], 5.0 [MQTT-3.15.2-3].
  ChallengeAuthenticator authenticator;
  broker().set_authenticator(&authenticator);
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kMaximumPacketSize, 64U)
      .Add(PropertyId::kAuthenticationMethod, "TEST")
      .AddBinary(PropertyId::kAuthenticationData, mqtt::BinaryView::Of("hello"));
  TestClient c(broker(), clock_, kV5);
  c.Send(V5Connect("c", props));
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(c.Expect<mqtt::Auth>().properties));
  mqtt::PropertiesBuilder scratch;
  c.Send(AuthPacket(ReasonCode::kContinueAuthentication, "TEST", scratch, "response"));
  const auto ack = c.Expect<mqtt::Connack>();
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(ack.properties));
  mqtt::SubscriptionListBuilder list;
  list.Add("t", {QoS::k2, false, false, 0});
  c.Send(mqtt::Subscribe{1, {}, list.view()});
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(c.Expect<mqtt::Suback>().properties));
  // As receiver: PUBACK, PUBREC, PUBCOMP.
  c.Send(MakePublish("t", "one", QoS::k1, 10));
  c.Send(MakePublish("t", "two", QoS::k2, 11));
  std::vector<mqtt::Publish> delivered;
  for (const mqtt::Packet& p : c.Receive()) {
    if (const auto* publish = std::get_if<mqtt::Publish>(&p)) {
      delivered.push_back(*publish);
    } else if (const auto* puback = std::get_if<mqtt::Puback>(&p)) {
      EXPECT_TRUE(WithoutReasonStringOrUserProperty(puback->properties));
    } else if (const auto* pubrec = std::get_if<mqtt::Pubrec>(&p)) {
      EXPECT_TRUE(WithoutReasonStringOrUserProperty(pubrec->properties));
    } else {
      ADD_FAILURE() << mqtt::PacketTypeName(mqtt::TypeOf(p));
    }
  }
  ASSERT_EQ(delivered.size(), 2U);  // its own messages, back through its subscription
  c.Send(mqtt::Pubrel{11, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(c.Expect<mqtt::Pubcomp>().properties));
  // As sender: PUBREL.
  c.Send(mqtt::Puback{delivered[0].packet_id, ReasonCode::kSuccess, {}});
  c.Send(mqtt::Pubrec{delivered[1].packet_id, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(c.Expect<mqtt::Pubrel>().properties));
  c.Send(mqtt::Pubcomp{delivered[1].packet_id, ReasonCode::kSuccess, {}});
  mqtt::TopicFilterListBuilder filters;
  filters.Add("t").Add("never");
  c.Send(mqtt::Unsubscribe{2, {}, filters.view()});
  EXPECT_TRUE(WithoutReasonStringOrUserProperty(c.Expect<mqtt::Unsuback>().properties));
  // A failed re-authentication ends with DISCONNECT: a Reason String, no User Property.
  c.Send(AuthPacket(ReasonCode::kReAuthenticate, "TEST", scratch, "wrong"));
  const auto disconnect = c.Expect<mqtt::Disconnect>();
  EXPECT_EQ(disconnect.reason, ReasonCode::kNotAuthorized);
  EXPECT_FALSE(disconnect.properties.Find(PropertyId::kUserProperty));
}

}  // namespace
}  // namespace tinymq::broker

namespace tinymq::broker {
namespace {

// ---------------------------------------------------------------------------------------------
// Rules found missing by the conformance review, and kept.

TEST_F(WillDelayTest, DisconnectWithAnErrorReasonKeepsTheWill) {
  // 5.0 [MQTT-3.1.2-8], 5.0 [MQTT-3.14.4-3]: only a normal DISCONNECT (0x00) deletes the will.
  auto watcher = Connect5("watcher");
  Subscribe(*watcher, "w", QoS::k0);
  auto dying = Dying(0, 0);
  dying->Send(mqtt::Disconnect{ReasonCode::kUnspecifiedError, {}});
  EXPECT_EQ(watcher->Expect<mqtt::Publish>().payload.AsString(), "bye");
}

TEST_F(BrokerV5Test, RefusingConnackLeavesItsReasonStringOutWhenItWouldNotFit) {
  // 5.0 [MQTT-3.2.2-19]: the client's Maximum Packet Size counts even on a refusal.
  limits_.max_client_id_length = 23;
  for (const std::uint32_t max : {20U, 200U}) {
    SCOPED_TRACE(max);
    mqtt::PropertiesBuilder props;
    props.Add(PropertyId::kMaximumPacketSize, max);
    TestClient c(broker(), clock_, kV5);
    c.Send(V5Connect("a-client-identifier-far-too-long-for-the-limit", props));
    EXPECT_LE(broker().OutputSize(c.id()), max);
    const auto refused = c.Expect<mqtt::Connack>();
    EXPECT_EQ(refused.reason, ReasonCode::kClientIdentifierNotValid);
    EXPECT_EQ(refused.properties.Find(PropertyId::kReasonString).has_value(), max == 200U);
  }
}

TEST_F(BrokerV5Test, SubackLeavesItsReasonStringOutWhenItWouldNotFit) {
  // 5.0 [MQTT-3.9.2-1].
  for (const std::uint32_t max : {20U, 400U}) {
    SCOPED_TRACE(max);
    mqtt::PropertiesBuilder props;
    props.Add(PropertyId::kMaximumPacketSize, max);
    auto c = Connect5("c" + std::to_string(max), props);
    // A long invalid filter: the Reason String that quotes it is cut to a bounded length.
    const std::string filter = "a/#/" + std::string(1000, 'x');
    mqtt::SubscriptionListBuilder list;
    list.Add(filter, {QoS::k0, false, false, 0});
    c->Send(mqtt::Subscribe{1, {}, list.view()});
    EXPECT_LE(broker().OutputSize(c->id()), max);
    const auto suback = c->Expect<mqtt::Suback>();
    EXPECT_EQ(suback.reason_codes[0], ReasonCode::kTopicFilterInvalid);
    EXPECT_EQ(suback.properties.Find(PropertyId::kReasonString).has_value(), max == 400U);
  }
}

TEST_F(BrokerV5Test, ResendAfterReconnectRespectsTheNewReceiveMaximum) {
  // 5.0 [MQTT-3.3.4-9], 5.0 [MQTT-4.9.0-2], [MQTT-4.4.0-1]: what was in flight goes again with its
  // packet ids and in order, but never more at once than the new connection allows.
  mqtt::PropertiesBuilder first;
  first.Add(PropertyId::kSessionExpiryInterval, 3600U).Add(PropertyId::kReceiveMaximum, 5U);
  auto sub = Connect5("sub", first);
  Subscribe(*sub, "t", QoS::k1);
  auto pub = Connect5("pub");
  for (std::uint16_t i = 1; i <= 3; ++i) {
    pub->Send(MakePublish("t", std::to_string(i), QoS::k1, i));
  }
  const auto sent = Publishes(sub->Receive());
  ASSERT_EQ(sent.size(), 3U);
  sub->Drop();
  mqtt::PropertiesBuilder again;
  again.Add(PropertyId::kSessionExpiryInterval, 3600U).Add(PropertyId::kReceiveMaximum, 1U);
  auto back = Connect5("sub", again, /*clean_start=*/false);
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const auto got = i == 0 ? Publishes(rest) : Publishes(back->Receive());
    ASSERT_EQ(got.size(), 1U);  // one at a time
    EXPECT_TRUE(got[0].dup);
    EXPECT_EQ(got[0].packet_id, sent[i].packet_id);
    EXPECT_EQ(got[0].payload.AsString(), std::to_string(i + 1));
    back->Send(mqtt::Puback{got[0].packet_id, ReasonCode::kSuccess, {}});
  }
  EXPECT_TRUE(back->Receive().empty());
}

}  // namespace
}  // namespace tinymq::broker
