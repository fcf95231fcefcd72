// Several workers' brokers as one server, on a fake clock and without threads: each Broker is one
// worker's (Cluster{index, count, ...}), they share one ConcurrentRetainedStore and the
// subscription counters, and the test does what the net layer and the mailboxes do between them:
// it moves a handed-off connection (HandoffTarget, TakeHandoff, Accept, OnRead on the home
// broker) and relays every Letter of TakeOutbox to OnEnvelope of the broker it names, until no
// outbox has any left.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tinymq/broker/broker.h"
#include "tinymq/broker/message.h"
#include "tinymq/broker/retained_store.h"

namespace tinymq::broker {
namespace {

using mqtt::PropertyId;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using testing::FakeClock;
using testing::MakePublish;
using testing::V5Connect;

constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

mqtt::PropertiesBuilder SessionExpiry(std::uint32_t seconds) {
  mqtt::PropertiesBuilder props;
  props.Add(PropertyId::kSessionExpiryInterval, seconds);
  return props;
}

// The first of make(0), make(1), ... whose home, as `broker` computes it, is `worker`.
std::string FirstHomedAt(const Broker& broker, std::uint16_t worker,
                         const std::function<std::string(int)>& make) {
  for (int i = 0; i < 100'000; ++i) {
    std::string id = make(i);
    if (broker.HomeOf(id) == worker) {
      return id;
    }
  }
  ADD_FAILURE() << "no identifier homed at worker " << worker;
  return {};
}

std::string IdHomedAt(const Broker& broker, std::uint16_t worker, std::string_view prefix) {
  return FirstHomedAt(broker, worker,
                      [&](int i) { return std::string(prefix) + std::to_string(i); });
}

// The wire encoding of `packets`, one after the other.
std::vector<std::uint8_t> Encoded(std::initializer_list<mqtt::Packet> packets,
                                  ProtocolVersion version = kV5) {
  std::vector<std::uint8_t> bytes;
  for (const mqtt::Packet& p : packets) {
    EXPECT_TRUE(mqtt::Encode(p, version, bytes).has_value());
  }
  return bytes;
}

// Hands `bytes` to connection `id` of `broker` in reads of at most `chunk` bytes; returns how many
// reads it took.
int Feed(Broker& broker, ConnectionId id, const std::vector<std::uint8_t>& bytes, Instant now,
         std::size_t chunk = 1 << 20) {
  int reads = 0;
  std::size_t at = 0;
  while (at < bytes.size() && !broker.ShouldClose(id)) {
    const std::span<std::uint8_t> room = broker.ReadBuffer(id);
    const std::size_t n = std::min({room.size(), chunk, bytes.size() - at});
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), n, room.begin());
    broker.OnRead(id, n, now);
    at += n;
    ++reads;
  }
  return reads;
}

std::vector<std::string> Payloads(const std::vector<mqtt::Publish>& publishes) {
  std::vector<std::string> out;
  for (const mqtt::Publish& p : publishes) {
    out.emplace_back(p.payload.AsString());
  }
  return out;
}

std::vector<std::string> Numbers(int from, int to) {  // "from" .. "to - 1"
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) {
    out.push_back(std::to_string(i));
  }
  return out;
}

class BrokerClusterTest : public ::testing::Test {
 protected:
  // A client of the cluster: its connection starts on one worker's broker and, when that broker
  // hands it off, moves to the broker it names (as the net layer moves the socket), with the
  // bytes read so far; the rest of what it sends goes there.
  class Client {
   public:
    Client(BrokerClusterTest& cluster, std::uint16_t worker, ProtocolVersion version = kV5)
        : cluster_(cluster), worker_(worker), version_(version) {
      peer_ = "127.0.0.1:" + std::to_string(next_port_++);
      id_ = broker().Accept(peer_, cluster_.clock_.Now());
    }

    std::uint16_t worker() const { return worker_; }
    int handoffs() const { return handoffs_; }
    Broker& broker() const { return *cluster_.brokers_[worker_]; }

    void Send(const mqtt::Packet& packet, std::size_t chunk = 1 << 20) {
      std::vector<std::uint8_t> bytes;
      const auto r = mqtt::Encode(packet, version_, bytes);
      ASSERT_TRUE(r.has_value()) << mqtt::Describe(r.error());
      SendRaw(bytes, chunk);
    }

    void SendRaw(const std::vector<std::uint8_t>& bytes, std::size_t chunk = 1 << 20) {
      std::size_t at = 0;
      while (at < bytes.size() && !broker().ShouldClose(id_)) {
        const std::span<std::uint8_t> room = broker().ReadBuffer(id_);
        const std::size_t n = std::min({room.size(), chunk, bytes.size() - at});
        std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), n, room.begin());
        broker().OnRead(id_, n, cluster_.clock_.Now());
        at += n;
        FollowHandoff();
      }
    }

    // Connects; returns the CONNACK (what came with it is in `rest`).
    mqtt::Connack Connect(std::string_view client_id, const mqtt::PropertiesBuilder& props = {},
                          bool clean_start = true) {
      mqtt::Connect c;
      c.version = version_;
      c.client_id = client_id;
      c.clean_start = clean_start;
      if (version_ == kV5) {
        c.properties = props.view();
      }
      Send(c);
      return First<mqtt::Connack>();
    }
    mqtt::Connack Connect(const mqtt::Connect& connect) {
      Send(connect);
      return First<mqtt::Connack>();
    }

    // Subscribes; returns the SUBACK's code (the retained messages that follow are in `rest`).
    ReasonCode Subscribe(std::string_view filter, mqtt::SubscriptionOptions options) {
      mqtt::SubscriptionListBuilder list;
      list.Add(filter, options);
      const std::uint16_t packet_id = next_packet_id_++;
      Send(mqtt::Subscribe{packet_id, {}, list.view()});
      const auto suback = First<mqtt::Suback>();
      EXPECT_EQ(suback.packet_id, packet_id);
      return suback.reason_codes.empty() ? ReasonCode::kUnspecifiedError : suback.reason_codes[0];
    }
    ReasonCode Subscribe(std::string_view filter, QoS qos) {
      return Subscribe(filter, {qos, false, false, 0});
    }
    ReasonCode Unsubscribe(std::string_view filter) {
      mqtt::TopicFilterListBuilder list;
      list.Add(filter);
      Send(mqtt::Unsubscribe{next_packet_id_++, {}, list.view()});
      const auto unsuback = Expect<mqtt::Unsuback>();
      return unsuback.reason_codes.empty() ? ReasonCode::kUnspecifiedError
                                           : unsuback.reason_codes[0];
    }

    // Drains what the broker wrote and decodes it.
    std::vector<mqtt::Packet> Receive() {
      std::vector<std::uint8_t> pending = broker().CopyOutput(id_);
      if (pending.empty()) {
        return {};
      }
      broker().OnWritten(id_, pending.size(), cluster_.clock_.Now());
      chunks_.push_back(std::move(pending));
      return testing::DecodePackets(chunks_.back(), version_);
    }

    // Receives and requires exactly one packet, of type T.
    template <typename T>
    T Expect() {
      std::vector<mqtt::Packet> got = Receive();
      if (got.size() != 1 || !std::holds_alternative<T>(got[0])) {
        ADD_FAILURE() << "expected one packet, got " << got.size()
                      << (got.empty()
                              ? ""
                              : " starting with a " +
                                    std::string(mqtt::PacketTypeName(mqtt::TypeOf(got[0]))));
        return T{};
      }
      return std::get<T>(got[0]);
    }

    // Receives: the first packet must be a T; the others are left in `rest`.
    template <typename T>
    T First() {
      std::vector<mqtt::Packet> got = Receive();
      rest.clear();
      if (got.empty() || !std::holds_alternative<T>(got[0])) {
        ADD_FAILURE() << "expected a packet first, got " << got.size() << " packets"
                      << (got.empty()
                              ? ""
                              : " starting with a " +
                                    std::string(mqtt::PacketTypeName(mqtt::TypeOf(got[0]))));
        return T{};
      }
      rest.assign(got.begin() + 1, got.end());
      return std::get<T>(got[0]);
    }

    // Receives PUBLISH packets only.
    std::vector<mqtt::Publish> Publishes() {
      std::vector<mqtt::Publish> out;
      for (const mqtt::Packet& p : Receive()) {
        if (const auto* publish = std::get_if<mqtt::Publish>(&p)) {
          out.push_back(*publish);
        } else {
          ADD_FAILURE() << "expected only PUBLISH, got " << mqtt::PacketTypeName(mqtt::TypeOf(p));
        }
      }
      return out;
    }

    void Ack(const std::vector<mqtt::Publish>& publishes) {
      for (const mqtt::Publish& p : publishes) {
        if (p.qos == QoS::k1) {
          Send(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
        }
      }
    }

    bool Closed() const { return broker().ShouldClose(id_); }
    // The peer goes away without DISCONNECT.
    void Drop() {
      broker().OnPeerClosed(id_, cluster_.clock_.Now());
      Finish();
    }
    // The server side closes the socket after flushing.
    void Finish() {
      (void)Receive();
      broker().Release(id_);
    }

    std::vector<mqtt::Packet> rest;

   private:
    void FollowHandoff() {
      const std::optional<std::uint16_t> to = broker().HandoffTarget(id_);
      if (!to) {
        return;
      }
      Broker::Handoff handoff = broker().TakeHandoff(id_);
      EXPECT_EQ(handoff.peer, peer_);
      ++handoffs_;
      worker_ = *to;
      id_ = broker().Accept(handoff.peer, cluster_.clock_.Now());
      Feed(broker(), id_, handoff.input, cluster_.clock_.Now());
      EXPECT_FALSE(broker().HandoffTarget(id_)) << "handed off twice";
    }

    static inline int next_port_ = 50000;
    BrokerClusterTest& cluster_;
    std::uint16_t worker_;
    ProtocolVersion version_;
    std::string peer_;
    ConnectionId id_ = 0;
    int handoffs_ = 0;
    std::uint16_t next_packet_id_ = 1;
    std::deque<std::vector<std::uint8_t>> chunks_;
  };

  void Start(std::uint16_t workers) {
    summary_ = std::make_unique<SubscriptionSummary>(workers);
    for (std::uint16_t w = 0; w < workers; ++w) {
      pools_.push_back(std::make_unique<MessagePool>());
    }
    for (std::uint16_t w = 0; w < workers; ++w) {
      brokers_.push_back(std::make_unique<Broker>(
          limits_, LogFn{}, Cluster{w, workers, &retained_, pools_[w].get(), summary_.get()}));
    }
  }

  Broker& broker(std::uint16_t w) { return *brokers_[w]; }
  std::uint16_t workers() const { return static_cast<std::uint16_t>(brokers_.size()); }

  // Delivers every letter in every outbox, and those that they make, until none is left; returns
  // how many it delivered (and, in `to`, how many went to each worker).
  std::size_t Relay(std::vector<std::size_t>* to = nullptr) {
    if (to != nullptr) {
      to->assign(workers(), 0);
    }
    std::size_t relayed = 0;
    std::vector<Letter> letters;
    for (int round = 0; round < 1000; ++round) {
      letters.clear();
      for (std::uint16_t from = 0; from < workers(); ++from) {
        const std::size_t before = letters.size();
        brokers_[from]->TakeOutbox(letters);
        for (std::size_t i = before; i < letters.size(); ++i) {
          EXPECT_LT(letters[i].to, workers());
          EXPECT_NE(letters[i].to, from) << "a letter to its own worker";
        }
      }
      if (letters.empty()) {
        return relayed;
      }
      for (Letter& letter : letters) {
        if (letter.to >= workers()) {
          continue;
        }
        if (to != nullptr) {
          ++(*to)[letter.to];
        }
        brokers_[letter.to]->OnEnvelope(std::move(letter.envelope), clock_.Now());
        ++relayed;
      }
    }
    ADD_FAILURE() << "envelopes never stop";
    return relayed;
  }

  // Three workers for a shared subscription: members on workers 0 and 1, the group's home (key_)
  // and the publisher on worker 2, so that every delivery to a member crosses workers.
  void StartShared() {
    Start(3);
    key_ = FirstHomedAt(broker(0), 2,
                        [](int i) { return "$share/g" + std::to_string(i) + "/jobs/#"; });
    ASSERT_FALSE(key_.empty());
    ASSERT_EQ(broker(1).HomeOf(key_), 2);
  }

  // Publishes "from".."to - 1" on jobs/x at QoS 1 from `pub` (each acknowledged with `ack`),
  // then relays.
  void PublishNumbers(Client& pub, int from, int to, ReasonCode ack = ReasonCode::kSuccess) {
    for (int i = from; i < to; ++i) {
      pub.Send(
          MakePublish("jobs/x", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 1)));
      EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ack);
    }
    Relay();
  }

  Limits limits_;
  FakeClock clock_;
  // Declared before what holds messages (the store, the brokers), so that they outlive them.
  std::vector<std::unique_ptr<MessagePool>> pools_;
  ConcurrentRetainedStore retained_;
  std::unique_ptr<SubscriptionSummary> summary_;
  std::vector<std::unique_ptr<Broker>> brokers_;
  std::string key_;  // StartShared's group
};

// ---------------------------------------------------------------------------------------------
// Homes

TEST_F(BrokerClusterTest, HomeOfAgreesAcrossBrokersAndSpreadsIdentifiers) {
  Start(3);
  std::array<int, 3> homed{};
  for (int i = 0; i < 1000; ++i) {
    const std::string id = "client-" + std::to_string(i);
    const std::uint16_t home = broker(0).HomeOf(id);
    ASSERT_LT(home, 3);
    EXPECT_EQ(broker(1).HomeOf(id), home) << id;
    EXPECT_EQ(broker(2).HomeOf(id), home) << id;
    ++homed[home];
  }
  for (int w = 0; w < 3; ++w) {
    EXPECT_GT(homed[w], 100) << "worker " << w << " is home to " << homed[w] << " of 1000";
  }
  // A broker on its own is home to everything.
  Broker alone(Limits{});
  EXPECT_EQ(alone.HomeOf("client-1"), 0);
  EXPECT_EQ(alone.HomeOf("client-2"), 0);
}

// ---------------------------------------------------------------------------------------------
// Handoff

TEST_F(BrokerClusterTest, ConnectForAnotherWorkerIsHandedOffWithEveryByteRead) {
  Start(2);
  const std::string id = IdHomedAt(broker(0), 1, "far-");
  mqtt::SubscriptionListBuilder list;
  list.Add("t", {QoS::k1, false, false, 0});
  const std::vector<std::uint8_t> bytes =
      Encoded({V5Connect(id), mqtt::Subscribe{7, {}, list.view()}});

  const ConnectionId c0 = broker(0).Accept("10.0.0.1:5000", clock_.Now());
  ASSERT_GE(broker(0).ReadBuffer(c0).size(), bytes.size());
  EXPECT_EQ(Feed(broker(0), c0, bytes, clock_.Now()), 1);  // CONNECT and SUBSCRIBE in one read
  EXPECT_EQ(broker(0).OutputSize(c0), 0U);
  EXPECT_TRUE(broker(0).CopyOutput(c0).empty());
  EXPECT_FALSE(broker(0).ShouldClose(c0));
  ASSERT_EQ(broker(0).HandoffTarget(c0), std::optional<std::uint16_t>(1));
  const Broker::Handoff handoff = broker(0).TakeHandoff(c0);
  EXPECT_EQ(handoff.peer, "10.0.0.1:5000");
  EXPECT_EQ(handoff.input, bytes);
  // Forgotten without a trace: no connection, no session, nothing for the other workers.
  EXPECT_FALSE(broker(0).HandoffTarget(c0));
  EXPECT_EQ(broker(0).connection_count(), 0U);
  EXPECT_EQ(broker(0).session_count(), 0U);
  EXPECT_EQ(broker(0).subscription_count(), 0U);
  EXPECT_EQ(Relay(), 0U);

  const ConnectionId c1 = broker(1).Accept(handoff.peer, clock_.Now());
  Feed(broker(1), c1, handoff.input, clock_.Now());
  EXPECT_FALSE(broker(1).HandoffTarget(c1));
  const std::vector<std::uint8_t> out = broker(1).CopyOutput(c1);
  const std::vector<mqtt::Packet> got = testing::DecodePackets(out, kV5);
  ASSERT_EQ(got.size(), 2U);
  ASSERT_TRUE(std::holds_alternative<mqtt::Connack>(got[0]));
  EXPECT_EQ(std::get<mqtt::Connack>(got[0]).reason, ReasonCode::kSuccess);
  ASSERT_TRUE(std::holds_alternative<mqtt::Suback>(got[1]));
  const auto& suback = std::get<mqtt::Suback>(got[1]);
  EXPECT_EQ(suback.packet_id, 7);
  ASSERT_EQ(suback.reason_codes.size(), 1U);
  EXPECT_EQ(suback.reason_codes[0], ReasonCode::kGrantedQos1);
  EXPECT_EQ(broker(1).session_count(), 1U);
  EXPECT_EQ(broker(1).subscription_count(), 1U);
  EXPECT_TRUE(summary_->Any(1));
  EXPECT_FALSE(summary_->Any(0));
}

TEST_F(BrokerClusterTest, ConnectForThisWorkerIsNotHandedOff) {
  Start(2);
  for (std::uint16_t w = 0; w < 2; ++w) {
    const std::string id = IdHomedAt(broker(w), w, "near-");
    const ConnectionId c = broker(w).Accept("10.0.0.2:5000", clock_.Now());
    Feed(broker(w), c, Encoded({V5Connect(id)}), clock_.Now());
    EXPECT_FALSE(broker(w).HandoffTarget(c));
    const std::vector<std::uint8_t> out = broker(w).CopyOutput(c);
    const std::vector<mqtt::Packet> got = testing::DecodePackets(out, kV5);
    ASSERT_EQ(got.size(), 1U);
    ASSERT_TRUE(std::holds_alternative<mqtt::Connack>(got[0]));
    EXPECT_EQ(std::get<mqtt::Connack>(got[0]).reason, ReasonCode::kSuccess);
    EXPECT_EQ(broker(w).session_count(), 1U);
    // TakeHandoff of a connection that is not handed off changes nothing.
    const Broker::Handoff none = broker(w).TakeHandoff(c);
    EXPECT_TRUE(none.input.empty());
    EXPECT_EQ(broker(w).connection_count(), 1U);
    EXPECT_FALSE(broker(w).ShouldClose(c));
  }
}

TEST_F(BrokerClusterTest, HandoffKeepsAConnectReadInPiecesAndWhatFollowsIt) {
  Start(2);
  const std::string id = IdHomedAt(broker(0), 1, "slow-");
  // A subscriber on broker 0 for the will: a handed-off connection publishes no will.
  Client watcher(*this, 0);
  watcher.Connect(IdHomedAt(broker(0), 0, "watch-"));
  watcher.Subscribe("will/#", QoS::k0);
  EXPECT_EQ(Relay(), 0U);

  mqtt::Connect connect = V5Connect(id);
  connect.will = mqtt::Will{QoS::k0, false, {}, "will/slow", mqtt::BinaryView::Of("gone")};
  const std::vector<std::uint8_t> connect_bytes = Encoded({connect});
  const std::vector<std::uint8_t> ping_bytes = Encoded({mqtt::Pingreq{}});
  const ConnectionId c0 = broker(0).Accept("10.0.0.3:5000", clock_.Now());
  Feed(broker(0), c0, connect_bytes, clock_.Now(), /*chunk=*/3);
  ASSERT_EQ(broker(0).HandoffTarget(c0), std::optional<std::uint16_t>(1));
  // Bytes read before the net layer takes the connection go with it.
  Feed(broker(0), c0, ping_bytes, clock_.Now());
  EXPECT_EQ(broker(0).HandoffTarget(c0), std::optional<std::uint16_t>(1));
  EXPECT_EQ(broker(0).OutputSize(c0), 0U);
  Broker::Handoff handoff = broker(0).TakeHandoff(c0);
  std::vector<std::uint8_t> expected = connect_bytes;
  expected.insert(expected.end(), ping_bytes.begin(), ping_bytes.end());
  EXPECT_EQ(handoff.input, expected);
  EXPECT_EQ(Relay(), 0U);
  EXPECT_TRUE(watcher.Receive().empty());
  EXPECT_EQ(broker(0).connection_count(), 1U);  // the watcher's

  const ConnectionId c1 = broker(1).Accept(handoff.peer, clock_.Now());
  Feed(broker(1), c1, handoff.input, clock_.Now());
  const std::vector<std::uint8_t> out = broker(1).CopyOutput(c1);
  const std::vector<mqtt::Packet> got = testing::DecodePackets(out, kV5);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_TRUE(std::holds_alternative<mqtt::Connack>(got[0]));
  EXPECT_TRUE(std::holds_alternative<mqtt::Pingresp>(got[1]));
}

// ---------------------------------------------------------------------------------------------
// Publishing across workers

TEST_F(BrokerClusterTest, PublishReachesASubscriberOnAnotherWorkerInOrder) {
  Start(3);
  Client sub(*this, 1);
  sub.Connect(IdHomedAt(broker(0), 1, "sub-"));
  EXPECT_EQ(sub.Subscribe("t", QoS::k1), ReasonCode::kGrantedQos1);
  EXPECT_EQ(Relay(), 0U);
  Client pub(*this, 0);
  pub.Connect(IdHomedAt(broker(0), 0, "pub-"));
  ASSERT_EQ(pub.worker(), 0);
  ASSERT_EQ(sub.worker(), 1);

  pub.Send(MakePublish("t", "first", QoS::k1, 1));
  const auto ack = pub.Expect<mqtt::Puback>();
  EXPECT_EQ(ack.packet_id, 1);
  EXPECT_EQ(ack.reason, ReasonCode::kSuccess);
  EXPECT_TRUE(sub.Receive().empty());  // not before the envelope arrives
  std::vector<std::size_t> to;
  EXPECT_EQ(Relay(&to), 1U);
  EXPECT_EQ(to, (std::vector<std::size_t>{0, 1, 0}));  // worker 2 subscribes to nothing
  const auto first = sub.Publishes();
  ASSERT_EQ(first.size(), 1U);
  EXPECT_EQ(first[0].topic, "t");
  EXPECT_EQ(first[0].payload.AsString(), "first");
  EXPECT_EQ(first[0].qos, QoS::k1);
  sub.Ack(first);

  // More than the in-flight window (20), relayed in two batches: order is kept.
  for (int i = 0; i < 30; ++i) {
    pub.Send(MakePublish("t", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 2)));
  }
  Relay();
  for (int i = 30; i < 50; ++i) {
    pub.Send(MakePublish("t", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 2)));
  }
  EXPECT_EQ(pub.Receive().size(), 50U);  // the PUBACKs
  Relay();
  std::vector<std::string> got;
  for (int round = 0; round < 10; ++round) {
    const auto publishes = sub.Publishes();
    for (const std::string& p : Payloads(publishes)) {
      got.push_back(p);
    }
    sub.Ack(publishes);
  }
  EXPECT_EQ(got, Numbers(0, 50));
}

TEST_F(BrokerClusterTest, RetainedMessageFromOneWorkerIsSentOnSubscribeOnAnother) {
  Start(2);
  Client pub(*this, 0);
  pub.Connect(IdHomedAt(broker(0), 0, "pub-"));
  pub.Send(MakePublish("status/door", "open", QoS::k1, 1, /*retain=*/true));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().packet_id, 1);
  Relay();
  EXPECT_EQ(broker(0).retained_count(), 1U);
  EXPECT_EQ(broker(1).retained_count(), 1U);  // one store for both

  Client sub(*this, 1);
  sub.Connect(IdHomedAt(broker(0), 1, "sub-"));
  ASSERT_EQ(sub.worker(), 1);
  EXPECT_EQ(sub.Subscribe("status/+", QoS::k1), ReasonCode::kGrantedQos1);
  ASSERT_EQ(sub.rest.size(), 1U);
  ASSERT_TRUE(std::holds_alternative<mqtt::Publish>(sub.rest[0]));
  const auto& retained = std::get<mqtt::Publish>(sub.rest[0]);
  EXPECT_EQ(retained.topic, "status/door");
  EXPECT_EQ(retained.payload.AsString(), "open");
  EXPECT_TRUE(retained.retain);
  EXPECT_EQ(retained.qos, QoS::k1);

  // An empty retained payload from worker 0 deletes it for every worker.
  pub.Send(MakePublish("status/door", "", QoS::k0, 0, /*retain=*/true));
  Relay();
  EXPECT_EQ(broker(1).retained_count(), 0U);
  Client late(*this, 1);
  late.Connect(IdHomedAt(broker(0), 1, "late-"));
  late.Subscribe("status/+", QoS::k1);
  EXPECT_TRUE(late.rest.empty());
}

TEST_F(BrokerClusterTest, NoMatchingSubscribersOnlyWhenNoWorkerSubscribes) {
  Start(2);
  Client pub(*this, 0);
  pub.Connect(IdHomedAt(broker(0), 0, "pub-"));
  pub.Send(MakePublish("t", "x", QoS::k1, 1));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kNoMatchingSubscribers);
  pub.Send(MakePublish("t", "x", QoS::k2, 2));
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().reason, ReasonCode::kNoMatchingSubscribers);
  pub.Send(mqtt::Pubrel{2, ReasonCode::kSuccess, {}});
  (void)pub.Expect<mqtt::Pubcomp>();
  EXPECT_EQ(Relay(), 0U);  // nobody subscribes anywhere: nothing sent to worker 1

  Client sub(*this, 1);
  sub.Connect(IdHomedAt(broker(0), 1, "sub-"));
  EXPECT_EQ(sub.Subscribe("other", QoS::k1), ReasonCode::kGrantedQos1);
  // Worker 1's summary says "t" cannot match there: still 0x10, and nothing is sent.
  pub.Send(MakePublish("t", "x", QoS::k1, 3));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kNoMatchingSubscribers);
  EXPECT_EQ(Relay(), 0U);
  // A filter starting with a wildcard may match anything: the conservative answer is success,
  // and the message goes there to be matched.
  EXPECT_EQ(sub.Subscribe("+/nothing", QoS::k1), ReasonCode::kGrantedQos1);
  pub.Send(MakePublish("t", "x", QoS::k1, 6));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
  EXPECT_EQ(Relay(), 1U);
  EXPECT_TRUE(sub.Receive().empty());
  EXPECT_EQ(sub.Unsubscribe("+/nothing"), ReasonCode::kSuccess);

  EXPECT_EQ(sub.Subscribe("t", QoS::k1), ReasonCode::kGrantedQos1);
  pub.Send(MakePublish("t", "for you", QoS::k1, 4));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
  Relay();
  const auto got = sub.Publishes();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].payload.AsString(), "for you");
  sub.Ack(got);

  // Once worker 1 subscribes to nothing again, 0x10 is back.
  EXPECT_EQ(sub.Unsubscribe("t"), ReasonCode::kSuccess);
  EXPECT_EQ(sub.Unsubscribe("other"), ReasonCode::kSuccess);
  EXPECT_FALSE(summary_->Any(1));
  pub.Send(MakePublish("t", "x", QoS::k1, 5));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kNoMatchingSubscribers);
  EXPECT_EQ(Relay(), 0U);
}

TEST_F(BrokerClusterTest, NoLocalStillDeliversAnotherWorkersPublisher) {
  Start(2);
  Client self(*this, 1);
  self.Connect(IdHomedAt(broker(0), 1, "self-"));
  EXPECT_EQ(self.Subscribe("chat", {QoS::k0, /*no_local=*/true, false, 0}), ReasonCode::kSuccess);
  Client other(*this, 0);
  other.Connect(IdHomedAt(broker(0), 0, "other-"));
  EXPECT_EQ(other.Subscribe("chat", QoS::k0), ReasonCode::kSuccess);

  other.Send(MakePublish("chat", "theirs"));
  Relay();
  EXPECT_EQ(self.Expect<mqtt::Publish>().payload.AsString(), "theirs");   // another session's
  EXPECT_EQ(other.Expect<mqtt::Publish>().payload.AsString(), "theirs");  // no No Local there

  self.Send(MakePublish("chat", "mine"));
  Relay();
  EXPECT_TRUE(self.Receive().empty());  // 5.0 [MQTT-3.8.3-3]
  EXPECT_EQ(other.Expect<mqtt::Publish>().payload.AsString(), "mine");
}

TEST_F(BrokerClusterTest, WillReachesASubscriberOnAnotherWorker) {
  Start(2);
  Client watcher(*this, 1);
  watcher.Connect(IdHomedAt(broker(0), 1, "watcher-"));
  EXPECT_EQ(watcher.Subscribe("wills/#", QoS::k1), ReasonCode::kGrantedQos1);

  const std::string id = IdHomedAt(broker(0), 0, "dying-");
  mqtt::Connect connect = V5Connect(id);
  connect.will = mqtt::Will{QoS::k1, false, {}, "wills/dying", mqtt::BinaryView::Of("gone")};
  Client dying(*this, 0);
  EXPECT_EQ(dying.Connect(connect).reason, ReasonCode::kSuccess);
  ASSERT_EQ(dying.worker(), 0);
  dying.Drop();
  EXPECT_TRUE(watcher.Receive().empty());
  Relay();
  const auto will = watcher.Publishes();
  ASSERT_EQ(will.size(), 1U);
  EXPECT_EQ(will[0].topic, "wills/dying");
  EXPECT_EQ(will[0].payload.AsString(), "gone");
  EXPECT_EQ(will[0].qos, QoS::k1);
  watcher.Ack(will);

  // A normal DISCONNECT discards the will, on every worker.
  Client leaving(*this, 0);
  EXPECT_EQ(leaving.Connect(connect).reason, ReasonCode::kSuccess);
  leaving.Send(mqtt::Disconnect{});
  leaving.Finish();
  Relay();
  EXPECT_TRUE(watcher.Receive().empty());
}

TEST_F(BrokerClusterTest, DelayedWillFromTheTimerReachesAnotherWorker) {
  Start(2);
  Client watcher(*this, 1);
  watcher.Connect(IdHomedAt(broker(0), 1, "watcher-"));
  watcher.Subscribe("wills/#", QoS::k0);

  mqtt::PropertiesBuilder will_props;
  will_props.Add(PropertyId::kWillDelayInterval, 5U);
  const mqtt::PropertiesBuilder session = SessionExpiry(60);
  const std::string id = IdHomedAt(broker(0), 0, "late-will-");
  mqtt::Connect connect = V5Connect(id, session);
  connect.will =
      mqtt::Will{QoS::k0, false, will_props.view(), "wills/late", mqtt::BinaryView::Of("bye")};
  Client dying(*this, 0);
  EXPECT_EQ(dying.Connect(connect).reason, ReasonCode::kSuccess);
  dying.Drop();
  Relay();
  EXPECT_TRUE(watcher.Receive().empty());
  clock_.Advance(std::chrono::seconds(6));
  broker(0).OnTimer(clock_.Now());
  broker(1).OnTimer(clock_.Now());
  Relay();
  EXPECT_EQ(watcher.Expect<mqtt::Publish>().payload.AsString(), "bye");
}

// ---------------------------------------------------------------------------------------------
// Sessions

TEST_F(BrokerClusterTest, TakeoverHappensOnTheHomeWorker) {
  Start(2);
  const std::string id = IdHomedAt(broker(0), 1, "device-");
  const mqtt::PropertiesBuilder session = SessionExpiry(3600);
  Client first(*this, 1);
  EXPECT_EQ(first.Connect(id, session).reason, ReasonCode::kSuccess);
  EXPECT_EQ(first.handoffs(), 0);
  EXPECT_EQ(first.Subscribe("t", QoS::k1), ReasonCode::kGrantedQos1);

  Client second(*this, 0);  // the same client id, arriving at the other worker
  const mqtt::Connack connack = second.Connect(id, session, /*clean_start=*/false);
  EXPECT_EQ(second.handoffs(), 1);
  EXPECT_EQ(second.worker(), 1);
  EXPECT_EQ(connack.reason, ReasonCode::kSuccess);
  EXPECT_TRUE(connack.session_present);
  EXPECT_EQ(first.Expect<mqtt::Disconnect>().reason, ReasonCode::kSessionTakenOver);
  EXPECT_TRUE(first.Closed());
  first.Finish();
  EXPECT_EQ(broker(0).session_count(), 0U);
  EXPECT_EQ(broker(0).connection_count(), 0U);
  EXPECT_EQ(broker(1).session_count(), 1U);
  EXPECT_EQ(broker(1).connection_count(), 1U);

  // The session (and its subscription) went on with the second connection.
  Client pub(*this, 0);
  pub.Connect(IdHomedAt(broker(0), 0, "pub-"));
  pub.Send(MakePublish("t", "after takeover", QoS::k1, 1));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
  Relay();
  EXPECT_EQ(second.Expect<mqtt::Publish>().payload.AsString(), "after takeover");
}

TEST_F(BrokerClusterTest, GeneratedClientIdentifierIsHomedWhereItWasGenerated) {
  Start(3);
  const mqtt::PropertiesBuilder session = SessionExpiry(60);
  for (std::uint16_t k = 0; k < 3; ++k) {
    SCOPED_TRACE(k);
    std::string assigned;
    {
      Client c(*this, k);
      const mqtt::Connack connack = c.Connect("", session);
      EXPECT_EQ(connack.reason, ReasonCode::kSuccess);
      EXPECT_EQ(c.handoffs(), 0);
      EXPECT_EQ(c.worker(), k);
      const auto text = connack.properties.Text(PropertyId::kAssignedClientIdentifier);
      ASSERT_TRUE(text.has_value());
      assigned = std::string(*text);
      ASSERT_FALSE(assigned.empty());
      for (std::uint16_t w = 0; w < 3; ++w) {
        EXPECT_EQ(broker(w).HomeOf(assigned), k) << assigned;
      }
      c.Send(mqtt::Disconnect{});
      c.Finish();
    }
    // Coming back with it at another worker: handed to k, where the session is.
    Client back(*this, static_cast<std::uint16_t>((k + 1) % 3));
    const mqtt::Connack connack = back.Connect(assigned, session, /*clean_start=*/false);
    EXPECT_EQ(back.handoffs(), 1);
    EXPECT_EQ(back.worker(), k);
    EXPECT_TRUE(connack.session_present);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared subscriptions

TEST_F(BrokerClusterTest, SharedEachMessageGoesToOneMemberAndALeavingMembersGoToTheOther) {
  StartShared();
  Client a(*this, 0);
  a.Connect(IdHomedAt(broker(0), 0, "member-a-"));
  Client b(*this, 1);
  b.Connect(IdHomedAt(broker(0), 1, "member-b-"));
  ASSERT_EQ(a.worker(), 0);
  ASSERT_EQ(b.worker(), 1);
  EXPECT_EQ(a.Subscribe(key_, QoS::k1), ReasonCode::kGrantedQos1);
  Relay();
  EXPECT_EQ(b.Subscribe(key_, QoS::k1), ReasonCode::kGrantedQos1);
  Relay();
  EXPECT_EQ(broker(2).subscription_count(), 1U);  // the group, at its home
  Client pub(*this, 2);
  pub.Connect(IdHomedAt(broker(0), 2, "pub-"));
  ASSERT_EQ(pub.worker(), 2);

  PublishNumbers(pub, 0, 20);
  const auto to_a = a.Publishes();
  const auto to_b = b.Publishes();
  std::vector<std::string> all = Payloads(to_a);
  for (const std::string& p : Payloads(to_b)) {
    all.push_back(p);
  }
  std::sort(all.begin(), all.end(),
            [](const std::string& x, const std::string& y) { return std::stoi(x) < std::stoi(y); });
  EXPECT_EQ(all, Numbers(0, 20));  // each exactly once
  EXPECT_FALSE(to_a.empty());
  EXPECT_FALSE(to_b.empty());
  EXPECT_EQ(to_a.size(), 10U);  // round robin
  EXPECT_EQ(to_b.size(), 10U);

  // a ends its session (Session Expiry 0) with all ten unacknowledged: they go to b.
  a.Send(mqtt::Disconnect{});
  a.Finish();
  Relay();
  const auto rerouted = b.Publishes();
  EXPECT_EQ(Payloads(rerouted), Payloads(to_a));
  for (const mqtt::Publish& p : rerouted) {
    EXPECT_EQ(p.qos, QoS::k1);
  }
  b.Ack(to_b);
  b.Ack(rerouted);
  EXPECT_TRUE(b.Receive().empty());

  // The group has one member left: everything goes to b.
  PublishNumbers(pub, 20, 24);
  const auto after = b.Publishes();
  EXPECT_EQ(Payloads(after), Numbers(20, 24));
  b.Ack(after);

  // The last member leaves: the group is gone from its home, and nobody subscribes anywhere.
  EXPECT_EQ(b.Unsubscribe(key_), ReasonCode::kSuccess);
  Relay();
  EXPECT_EQ(broker(2).subscription_count(), 0U);
  PublishNumbers(pub, 24, 25, ReasonCode::kNoMatchingSubscribers);
  EXPECT_TRUE(b.Receive().empty());
}

TEST_F(BrokerClusterTest, SharedAMemberThatGoesOfflineHasItsMessagesGoToTheOther) {
  StartShared();
  const std::string a_id = IdHomedAt(broker(0), 0, "member-a-");
  const mqtt::PropertiesBuilder session = SessionExpiry(3600);
  Client a(*this, 0);
  a.Connect(a_id, session);
  Client b(*this, 1);
  b.Connect(IdHomedAt(broker(0), 1, "member-b-"));
  a.Subscribe(key_, QoS::k1);
  Relay();
  b.Subscribe(key_, QoS::k1);
  Relay();
  Client pub(*this, 2);
  pub.Connect(IdHomedAt(broker(0), 2, "pub-"));

  PublishNumbers(pub, 0, 6);
  const auto to_a = a.Publishes();
  const auto to_b = b.Publishes();
  EXPECT_EQ(to_a.size(), 3U);
  EXPECT_EQ(to_b.size(), 3U);
  b.Ack(to_b);

  // a's connection drops; its session stays (expiry 3600), its unacknowledged QoS 1 go to b.
  a.Drop();  // (a's packets, which to_a points into, stay with a)
  Relay();
  const auto rerouted = b.Publishes();
  EXPECT_EQ(Payloads(rerouted), Payloads(to_a));
  b.Ack(rerouted);

  // While a is offline, new messages go to b only.
  PublishNumbers(pub, 6, 10);
  const auto while_offline = b.Publishes();
  EXPECT_EQ(Payloads(while_offline), Numbers(6, 10));
  b.Ack(while_offline);

  // a comes back: nothing was kept for it, and it takes its turn again.
  Client back(*this, 0);
  const mqtt::Connack connack = back.Connect(a_id, session, /*clean_start=*/false);
  EXPECT_TRUE(connack.session_present);
  EXPECT_TRUE(back.rest.empty());
  Relay();
  PublishNumbers(pub, 10, 14);
  const auto to_back = back.Publishes();
  const auto to_b_again = b.Publishes();
  EXPECT_EQ(to_back.size() + to_b_again.size(), 4U);
  EXPECT_FALSE(to_back.empty());
  EXPECT_FALSE(to_b_again.empty());
}

// The group's home picks a member from what it knows; when the member's worker finds it went
// offline (or its session ended) before the delivery arrived, the message goes back to the home
// and on to another member.
TEST_F(BrokerClusterTest, SharedDeliveryToAMemberThatWentOfflineMeanwhileGoesToAnother) {
  StartShared();
  const mqtt::PropertiesBuilder session = SessionExpiry(3600);
  Client a(*this, 0);
  a.Connect(IdHomedAt(broker(0), 0, "member-a-"), session);
  Client b(*this, 1);
  b.Connect(IdHomedAt(broker(0), 1, "member-b-"));
  a.Subscribe(key_, QoS::k1);
  Relay();
  b.Subscribe(key_, QoS::k1);
  Relay();
  Client pub(*this, 2);
  pub.Connect(IdHomedAt(broker(0), 2, "pub-"));

  // a drops; before its worker's notice reaches the home, two messages are published there: the
  // home still sees a online and gives it one of them.
  a.Drop();
  for (int i = 0; i < 2; ++i) {
    pub.Send(MakePublish("jobs/x", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 1)));
    EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
  }
  std::vector<std::size_t> to;
  Relay(&to);
  EXPECT_EQ(to[0], 1U);  // one of them was given to a (a kSharedDeliver to worker 0)
  const auto to_b = b.Publishes();
  std::vector<std::string> got = Payloads(to_b);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, Numbers(0, 2));  // both, once each (the one a had comes last)
  b.Ack(to_b);
  EXPECT_TRUE(b.Receive().empty());
}

TEST_F(BrokerClusterTest, SharedDeliveryToAMemberWhoseSessionEndedMeanwhileGoesToAnother) {
  StartShared();
  Client a(*this, 0);
  a.Connect(IdHomedAt(broker(0), 0, "member-a-"));  // Session Expiry 0: ends with the connection
  Client b(*this, 1);
  b.Connect(IdHomedAt(broker(0), 1, "member-b-"));
  a.Subscribe(key_, QoS::k1);
  Relay();
  b.Subscribe(key_, QoS::k1);
  Relay();
  Client pub(*this, 2);
  pub.Connect(IdHomedAt(broker(0), 2, "pub-"));

  a.Drop();  // its session ends; the home has not heard yet
  for (int i = 0; i < 2; ++i) {
    pub.Send(MakePublish("jobs/x", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 1)));
    EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kSuccess);
  }
  std::vector<std::size_t> to;
  Relay(&to);
  EXPECT_EQ(to[0], 1U);  // one of them was given to a (a kSharedDeliver to worker 0)
  const auto to_b = b.Publishes();
  std::vector<std::string> got = Payloads(to_b);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, Numbers(0, 2));  // both, once each (the one a had comes last)
  b.Ack(to_b);
  EXPECT_EQ(broker(0).session_count(), 0U);
}

}  // namespace
}  // namespace tinymq::broker
