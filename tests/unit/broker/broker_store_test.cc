// The broker with a store: what it writes, what it holds back until durable, what a new broker
// restores from the same store (a restart), and how offline queues spill to the store.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "broker_test_util.h"
#include "tinymq/broker/broker.h"
#include "tinymq/store/records.h"
#include "tinymq/store/store.h"

namespace tinymq::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;

constexpr std::int64_t kWallAtOrigin = 1'790'000'000'000;  // some day in 2026, in ms

class BrokerStoreTest : public ::testing::Test {
 protected:
  BrokerStoreTest() : store_(store::MakeMemoryStore()) { Start(); }

  // A broker on the store (a new one each time: a restart), restored.
  Broker& Start(std::size_t queue_head = 32) {
    broker_.reset();
    broker_ = std::make_unique<Broker>(Limits{});
    Durability d;
    d.store = store_.get();
    d.wall_offset_ms = kWallAtOrigin;
    d.failed = &failed_;
    d.queue_head = queue_head;
    broker_->AttachStore(d);
    auto restored = broker_->Restore(clock_.Now(), /*retained=*/true);
    EXPECT_TRUE(restored.has_value()) << (restored ? "" : restored.error());
    if (restored) {
      counts_ = *restored;
    }
    Commit();
    return *broker_;
  }

  // The net layer's end of turn: the writes go to the store and are reported durable. Returns how
  // many operations the batch had.
  std::size_t Commit() {
    store::Batch batch;
    const std::uint64_t epoch = broker_->TakeWrites(batch);
    if (epoch != 0) {
      EXPECT_TRUE(store_->Write(batch, true).has_value());
      broker_->OnDurable(epoch, clock_.Now());
    }
    return batch.size();
  }

  std::size_t Count(store::Kind kind) {
    std::size_t n = 0;
    (void)store_->Scan(kind, "", [&](std::string_view, std::string_view) {
      ++n;
      return true;
    });
    return n;
  }

  // Connects a 3.1.1 client to its persistent session; returns whether the session was present,
  // and leaves what followed the CONNACK (resent messages) in `rest`.
  bool Resume(TestClient& c, std::string_view client_id, std::vector<mqtt::Packet>& rest) {
    mqtt::Connect connect;
    connect.version = c.version();
    connect.client_id = client_id;
    connect.clean_start = false;
    c.Send(connect);
    rest = c.Receive();
    if (rest.empty() || !std::holds_alternative<mqtt::Connack>(rest.front())) {
      ADD_FAILURE() << "no CONNACK";
      return false;
    }
    const bool present = std::get<mqtt::Connack>(rest.front()).session_present;
    rest.erase(rest.begin());
    return present;
  }

  void Subscribe(TestClient& c, std::string_view filter, QoS qos) {
    mqtt::SubscriptionListBuilder b;
    b.Add(filter, {qos, false, false, 0});
    c.Send(mqtt::Subscribe{1, {}, b.view()});
    Commit();
    c.Expect<mqtt::Suback>();
  }

  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::atomic<bool> failed_{false};
  std::unique_ptr<Broker> broker_;
  RestoreCounts counts_;
};

TEST_F(BrokerStoreTest, SubackWaitsUntilTheSubscriptionIsDurable) {
  TestClient c(*broker_, clock_);
  c.Connect("dev", /*clean=*/false);
  mqtt::SubscriptionListBuilder b;
  b.Add("a/#", {QoS::k1, false, false, 0});
  c.Send(mqtt::Subscribe{1, {}, b.view()});
  EXPECT_TRUE(c.Receive().empty()) << "SUBACK before the subscription is written";
  EXPECT_GT(Commit(), 0U);
  c.Expect<mqtt::Suback>();
  EXPECT_EQ(Count(store::Kind::kSubscriptions), 1U);
  EXPECT_EQ(Count(store::Kind::kSessions), 1U);
}

TEST_F(BrokerStoreTest, CleanSessionsWriteNothingAndAreNotHeld) {
  TestClient sub(*broker_, clock_);
  sub.Connect("s", /*clean=*/true);
  mqtt::SubscriptionListBuilder b;
  b.Add("t", {QoS::k1, false, false, 0});
  sub.Send(mqtt::Subscribe{1, {}, b.view()});
  sub.Expect<mqtt::Suback>();  // nothing to keep: at once
  TestClient pub(*broker_, clock_);
  pub.Connect("p", /*clean=*/true);
  pub.Send(MakePublish("t", "x", QoS::k1, 5));
  pub.Expect<mqtt::Puback>();
  EXPECT_EQ(Commit(), 0U);
}

TEST_F(BrokerStoreTest, QueuedMessagesAndSubscriptionsSurviveARestart) {
  {
    TestClient sub(*broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t/+", QoS::k1);
    sub.Drop();
    Commit();
    TestClient pub(*broker_, clock_);
    pub.Connect("pub");
    for (std::uint16_t i = 1; i <= 3; ++i) {
      pub.Send(MakePublish("t/x", "m" + std::to_string(i), QoS::k1, i));
    }
    EXPECT_TRUE(pub.Receive().empty()) << "PUBACK before the queued message is written";
    Commit();
    EXPECT_EQ(pub.Receive().size(), 3U);
  }
  Start();
  EXPECT_EQ(counts_.sessions, 1U);
  EXPECT_EQ(counts_.subscriptions, 1U);
  EXPECT_EQ(counts_.queued, 3U);
  TestClient sub(*broker_, clock_);
  std::vector<mqtt::Packet> got;
  EXPECT_TRUE(Resume(sub, "sub", got));
  ASSERT_EQ(got.size(), 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& p = std::get<mqtt::Publish>(got[i]);
    EXPECT_EQ(p.payload, mqtt::BinaryView::Of("m" + std::to_string(i + 1)));
    EXPECT_EQ(p.qos, QoS::k1);
    sub.Send(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
  }
  Commit();
  EXPECT_EQ(Count(store::Kind::kQueues), 0U) << "acknowledged messages stay in the store";
  // And a new message still finds the restored subscription.
  TestClient pub(*broker_, clock_);
  pub.Connect("pub2");
  pub.Send(MakePublish("t/y", "later", QoS::k1, 9));
  Commit();
  EXPECT_EQ(std::get<mqtt::Publish>(sub.Receive().at(0)).payload, mqtt::BinaryView::Of("later"));
}

TEST_F(BrokerStoreTest, InFlightMessagesAreResentWithTheirPacketIdAfterARestart) {
  std::uint16_t id = 0;
  {
    TestClient sub(*broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k2);
    TestClient pub(*broker_, clock_);
    pub.Connect("pub");
    pub.Send(MakePublish("t", "once", QoS::k2, 1));
    EXPECT_TRUE(sub.Receive().empty()) << "a QoS 2 PUBLISH before its record is durable";
    Commit();
    const auto p = sub.Expect<mqtt::Publish>();
    id = p.packet_id;
    EXPECT_FALSE(p.dup);
  }
  Start();
  EXPECT_EQ(counts_.inflight, 1U);
  TestClient sub(*broker_, clock_);
  std::vector<mqtt::Packet> resent;
  EXPECT_TRUE(Resume(sub, "sub", resent));
  ASSERT_EQ(resent.size(), 1U);
  const auto again = std::get<mqtt::Publish>(resent.front());
  EXPECT_EQ(again.packet_id, id);
  EXPECT_TRUE(again.dup);
  sub.Send(mqtt::Pubrec{id, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(sub.Receive().empty()) << "PUBREL before the released state is durable";
  Commit();
  sub.Expect<mqtt::Pubrel>();
  // A restart now resends the PUBREL, not the PUBLISH.
  Start();
  TestClient back(*broker_, clock_);
  EXPECT_TRUE(Resume(back, "sub", resent));
  ASSERT_EQ(resent.size(), 1U);
  EXPECT_EQ(std::get<mqtt::Pubrel>(resent.front()).packet_id, id);
  back.Send(mqtt::Pubcomp{id, ReasonCode::kSuccess, {}});
  Commit();
  EXPECT_EQ(Count(store::Kind::kQueues), 0U);
}

TEST_F(BrokerStoreTest, AnIncomingQos2IdSurvivesARestartSoTheResentPublishIsNotRoutedTwice) {
  {
    TestClient pub(*broker_, clock_);
    pub.Connect("pub", /*clean=*/false);
    pub.Send(MakePublish("q", "x", QoS::k2, 7));
    Commit();
    pub.Expect<mqtt::Pubrec>();
  }
  Start();
  EXPECT_EQ(counts_.incoming, 1U);
  TestClient sub(*broker_, clock_);
  sub.Connect("watch");
  Subscribe(sub, "q", QoS::k2);
  TestClient pub(*broker_, clock_);
  pub.Connect("pub", /*clean=*/false);
  auto dup = MakePublish("q", "x", QoS::k2, 7);
  dup.dup = true;
  pub.Send(dup);
  Commit();
  pub.Expect<mqtt::Pubrec>();
  EXPECT_TRUE(sub.Receive().empty()) << "routed again";
  pub.Send(mqtt::Pubrel{7, ReasonCode::kSuccess, {}});
  EXPECT_TRUE(pub.Receive().empty()) << "PUBCOMP before the id is forgotten durably";
  Commit();
  pub.Expect<mqtt::Pubcomp>();
  EXPECT_EQ(Count(store::Kind::kIncoming), 0U);
}

TEST_F(BrokerStoreTest, RetainedMessagesSurviveAndExpireOnRestore) {
  TestClient pub(*broker_, clock_, ProtocolVersion::kV5);
  pub.Send(testing::V5Connect("pub"));
  pub.Expect<mqtt::Connack>();
  pub.Send(MakePublish("keep", "k", QoS::k0, 0, /*retain=*/true));
  mqtt::PropertiesBuilder expiring;
  expiring.Add(mqtt::PropertyId::kMessageExpiryInterval, 60U);
  auto brief = MakePublish("brief", "b", QoS::k0, 0, /*retain=*/true);
  brief.properties = expiring.view();
  pub.Send(brief);
  Commit();
  EXPECT_EQ(Count(store::Kind::kRetained), 2U);
  clock_.Advance(std::chrono::seconds(30));
  Start();
  EXPECT_EQ(counts_.retained, 2U);
  EXPECT_EQ(broker_->retained_count(), 2U);
  clock_.Advance(std::chrono::seconds(31));
  Start();
  EXPECT_EQ(counts_.retained, 1U);
  EXPECT_EQ(counts_.expired_messages, 1U);
  EXPECT_EQ(Count(store::Kind::kRetained), 1U) << "the expired one is deleted";
  // An empty retained message deletes it from the store too.
  TestClient p2(*broker_, clock_);
  p2.Connect("p2");
  p2.Send(MakePublish("keep", "", QoS::k0, 0, /*retain=*/true));
  Commit();
  EXPECT_EQ(Count(store::Kind::kRetained), 0U);
}

TEST_F(BrokerStoreTest, SessionsThatExpiredWhileDownAreDroppedAndTheirWillsSent) {
  {
    TestClient c(*broker_, clock_, ProtocolVersion::kV5);
    mqtt::PropertiesBuilder props;
    props.Add(mqtt::PropertyId::kSessionExpiryInterval, 10U);
    mqtt::Connect connect = testing::V5Connect("short", props, /*clean_start=*/true);
    mqtt::Will will;
    will.topic = "wills/short";
    will.payload = mqtt::BinaryView::Of("gone");
    connect.will = will;
    c.Send(connect);
    c.Expect<mqtt::Connack>();
    Commit();
  }
  // The broker dies with the connection open; it comes back 20 s later (wall clock).
  clock_.Advance(std::chrono::seconds(5));
  Start();
  EXPECT_EQ(counts_.sessions, 1U) << "still within its expiry (counted from the restart)";
  TestClient w(*broker_, clock_);
  w.Connect("w");
  Subscribe(w, "wills/#", QoS::k0);
  // The will of a connection the restart ended goes out (no delay), once.
  EXPECT_EQ(Count(store::Kind::kWills), 0U);
  clock_.Advance(std::chrono::seconds(20));
  Start();
  EXPECT_EQ(counts_.sessions, 0U);
  EXPECT_EQ(counts_.expired_sessions, 1U);
  EXPECT_EQ(Count(store::Kind::kSessions), 0U);
}

TEST_F(BrokerStoreTest, ADelayedWillWaitsAcrossARestart) {
  {
    TestClient c(*broker_, clock_, ProtocolVersion::kV5);
    mqtt::PropertiesBuilder props;
    props.Add(mqtt::PropertyId::kSessionExpiryInterval, 3600U);
    mqtt::Connect connect = testing::V5Connect("dev", props);
    mqtt::PropertiesBuilder will_props;
    will_props.Add(mqtt::PropertyId::kWillDelayInterval, 60U);
    mqtt::Will will;
    will.topic = "wills/dev";
    will.payload = mqtt::BinaryView::Of("dev lost");
    will.properties = will_props.view();
    connect.will = will;
    c.Send(connect);
    c.Expect<mqtt::Connack>();
    c.Drop();
    Commit();
  }
  clock_.Advance(std::chrono::seconds(20));
  Start();
  EXPECT_EQ(counts_.wills, 1U);
  TestClient w(*broker_, clock_);
  w.Connect("w");
  Subscribe(w, "wills/#", QoS::k0);
  clock_.Advance(std::chrono::seconds(30));
  broker_->OnTimer(clock_.Now());
  EXPECT_TRUE(w.Receive().empty()) << "sent before its delay (60 s) passed";
  clock_.Advance(std::chrono::seconds(11));
  broker_->OnTimer(clock_.Now());
  EXPECT_EQ(std::get<mqtt::Publish>(w.Receive().at(0)).payload, mqtt::BinaryView::Of("dev lost"));
  Commit();
  EXPECT_EQ(Count(store::Kind::kWills), 0U);
}

TEST_F(BrokerStoreTest, AMessageQueuedAndAcknowledgedWithinOneBatchNeverReachesTheStore) {
  TestClient sub(*broker_, clock_);
  sub.Connect("sub", /*clean=*/false);
  Subscribe(sub, "t", QoS::k1);
  TestClient pub(*broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "fast", QoS::k1, 1));
  const auto p = sub.Expect<mqtt::Publish>();  // QoS 1 goes out at once (a duplicate is allowed)
  sub.Send(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
  store::Batch batch;
  const std::uint64_t epoch = broker_->TakeWrites(batch);
  for (const store::Batch::Op& op : batch.ops()) {
    EXPECT_NE(op.kind, store::Kind::kQueues) << "a cancelled write reached the batch";
  }
  (void)store_->Write(batch, true);
  broker_->OnDurable(epoch, clock_.Now());
  pub.Expect<mqtt::Puback>();
}

TEST_F(BrokerStoreTest, OfflineQueuesKeepOnlyTheirHeadInMemoryAndAreDeliveredInOrder) {
  Start(/*queue_head=*/4);
  {
    TestClient sub(*broker_, clock_);
    sub.Connect("sub", /*clean=*/false);
    Subscribe(sub, "t", QoS::k1);
    sub.Drop();
  }
  TestClient pub(*broker_, clock_);
  pub.Connect("pub");
  constexpr int kMessages = 50;
  for (int i = 0; i < kMessages; ++i) {
    pub.Send(MakePublish("t", std::to_string(i), QoS::k1, static_cast<std::uint16_t>(i + 1)));
    if (i % 7 == 0) {
      Commit();  // several batches
    }
  }
  Commit();
  EXPECT_EQ(Count(store::Kind::kQueues), static_cast<std::size_t>(kMessages));
  TestClient sub(*broker_, clock_);
  std::vector<mqtt::Packet> got;
  EXPECT_TRUE(Resume(sub, "sub", got));
  int next = 0;
  for (int round = 0; round < 100 && next < kMessages; ++round) {
    if (round != 0) {
      got = sub.Receive();
    }
    for (const mqtt::Packet& packet : got) {
      const auto& p = std::get<mqtt::Publish>(packet);
      EXPECT_EQ(p.payload, mqtt::BinaryView::Of(std::to_string(next))) << "out of order";
      ++next;
      sub.Send(mqtt::Puback{p.packet_id, ReasonCode::kSuccess, {}});
    }
    Commit();
  }
  EXPECT_EQ(next, kMessages);
  EXPECT_EQ(Count(store::Kind::kQueues), 0U);
}

TEST_F(BrokerStoreTest, SpilledMessagesAreReadBackOnlyOnceWritten) {
  Start(/*queue_head=*/2);
  TestClient sub(*broker_, clock_);
  sub.Connect("sub", /*clean=*/false);
  Subscribe(sub, "t", QoS::k1);
  sub.Drop();
  TestClient pub(*broker_, clock_);
  pub.Connect("pub");
  for (std::uint16_t i = 1; i <= 6; ++i) {
    pub.Send(MakePublish("t", std::to_string(i), QoS::k1, i));
  }
  // The client returns before the batch holding the spilled messages is written.
  TestClient back(*broker_, clock_);
  std::vector<mqtt::Packet> first;
  EXPECT_TRUE(Resume(back, "sub", first));
  EXPECT_EQ(first.size(), 2U) << "the head goes at once";
  Commit();  // written: the rest can be read back
  std::vector<mqtt::Packet> rest = back.Receive();
  EXPECT_EQ(rest.size(), 4U);
}

TEST_F(BrokerStoreTest, ABrokerThatCannotWriteRefusesQos1And2WithQuotaExceeded) {
  TestClient pub(*broker_, clock_, ProtocolVersion::kV5);
  pub.Send(testing::V5Connect("pub"));
  pub.Expect<mqtt::Connack>();
  failed_ = true;
  pub.Send(MakePublish("t", "x", QoS::k1, 1));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kQuotaExceeded);
  pub.Send(MakePublish("t", "x", QoS::k2, 2));
  EXPECT_EQ(pub.Expect<mqtt::Pubrec>().reason, ReasonCode::kQuotaExceeded);
  pub.Send(MakePublish("t", "x", QoS::k0));
  EXPECT_TRUE(pub.Receive().empty());
  EXPECT_FALSE(pub.Closed());
  EXPECT_EQ(broker_->counters().refused_store_failed, 2U);
  failed_ = false;
  pub.Send(MakePublish("t", "x", QoS::k1, 3));
  EXPECT_EQ(pub.Expect<mqtt::Puback>().reason, ReasonCode::kNoMatchingSubscribers);
}

TEST_F(BrokerStoreTest, AHeldAcknowledgementStillGoesBeforeTheConnectionCloses) {
  TestClient sub(*broker_, clock_);
  sub.Connect("sub", /*clean=*/false);
  Subscribe(sub, "t", QoS::k1);
  sub.Drop();
  TestClient pub(*broker_, clock_);
  pub.Connect("pub");
  pub.Send(MakePublish("t", "x", QoS::k1, 1));
  mqtt::Connect again;
  again.client_id = "pub";
  pub.Send(again);  // a second CONNECT: a protocol violation, the broker closes
  EXPECT_FALSE(broker_->ShouldClose(pub.id())) << "closed with the PUBACK still held";
  Commit();
  EXPECT_TRUE(broker_->ShouldClose(pub.id()));
  pub.Expect<mqtt::Puback>();
}

TEST(BrokerStoreClusterTest, APubackWaitsForTheOtherWorkersWrites) {
  FakeClock clock;
  auto store = store::MakeMemoryStore();
  ConcurrentRetainedStore retained;
  MessagePool pool;
  Durability d;
  d.store = store.get();
  Broker a(Limits{}, {}, Cluster{0, 2, &retained, &pool, nullptr});
  Broker b(Limits{}, {}, Cluster{1, 2, &retained, &pool, nullptr});
  a.AttachStore(d);
  b.AttachStore(d);
  // A persistent subscriber homed on b, a publisher homed on a.
  std::string sub_id;
  std::string pub_id;
  for (int i = 0; sub_id.empty() || pub_id.empty(); ++i) {
    const std::string id = "c" + std::to_string(i);
    (a.HomeOf(id) == 1 ? sub_id : pub_id) = id;
  }
  auto deliver = [&](Broker& from, Broker& to) {
    std::vector<Letter> letters;
    from.TakeOutbox(letters);
    for (Letter& l : letters) {
      to.OnEnvelope(std::move(l.envelope), clock.Now());
    }
  };
  auto commit = [&](Broker& broker) {
    store::Batch batch;
    if (const std::uint64_t epoch = broker.TakeWrites(batch); epoch != 0) {
      (void)store->Write(batch, true);
      broker.OnDurable(epoch, clock.Now());
    }
  };
  TestClient sub(b, clock);
  sub.Connect(sub_id, /*clean=*/false);
  mqtt::SubscriptionListBuilder list;
  list.Add("t", {QoS::k1, false, false, 0});
  sub.Send(mqtt::Subscribe{1, {}, list.view()});
  commit(b);
  sub.Expect<mqtt::Suback>();
  sub.Drop();
  commit(b);
  TestClient pub(a, clock);
  pub.Connect(pub_id);
  pub.Send(MakePublish("t", "x", QoS::k1, 1));
  commit(a);
  EXPECT_TRUE(pub.Receive().empty()) << "PUBACK before the subscriber's worker wrote the message";
  deliver(a, b);
  commit(b);  // b writes the queued message; its confirmation goes back
  deliver(b, a);
  pub.Expect<mqtt::Puback>();
}

}  // namespace
}  // namespace tinymq::broker

namespace tinymq::broker {
namespace {

// Two workers on one store, restartable.
class TwoWorkers {
 public:
  explicit TwoWorkers(store::Store& store) : store_(store) { Start(); }

  void Start() {
    a_.reset();
    b_.reset();
    retained_ = std::make_unique<ConcurrentRetainedStore>();
    Durability d;
    d.store = &store_;
    a_ = std::make_unique<Broker>(Limits{}, LogFn{},
                                  Cluster{0, 2, retained_.get(), &pool_, nullptr});
    b_ = std::make_unique<Broker>(Limits{}, LogFn{},
                                  Cluster{1, 2, retained_.get(), &pool_, nullptr});
    a_->AttachStore(d);
    b_->AttachStore(d);
    auto ra = a_->Restore(clock.Now(), true);
    auto rb = b_->Restore(clock.Now(), false);
    ASSERT_TRUE(ra.has_value() && rb.has_value());
    rerouted = ra->rerouted + rb->rerouted;
  }
  Broker& a() { return *a_; }
  Broker& b() { return *b_; }
  // An id homed on worker `w`.
  std::string IdOn(std::uint16_t w, std::string_view stem) {
    for (int i = 0;; ++i) {
      std::string id = std::string(stem) + std::to_string(i);
      if (HomeAmong(id, 2) == w) {
        return id;
      }
    }
  }
  void Deliver(Broker& from, Broker& to) {
    std::vector<Letter> letters;
    from.TakeOutbox(letters);
    for (Letter& l : letters) {
      to.OnEnvelope(std::move(l.envelope), clock.Now());
    }
  }
  void Commit(Broker& broker) {
    store::Batch batch;
    if (const std::uint64_t epoch = broker.TakeWrites(batch); epoch != 0) {
      ASSERT_TRUE(store_.Write(batch, true).has_value());
      broker.OnDurable(epoch, clock.Now());
    }
  }

  testing::FakeClock clock;
  std::size_t rerouted = 0;

 private:
  store::Store& store_;
  MessagePool pool_;
  std::unique_ptr<ConcurrentRetainedStore> retained_;
  std::unique_ptr<Broker> a_;
  std::unique_ptr<Broker> b_;
};

TEST(BrokerStoreClusterTest, AQos2MessageWhoseOtherWorkerNeverWroteItIsRoutedAgainOnRestore) {
  auto store = store::MakeMemoryStore();
  TwoWorkers w(*store);
  const std::string sub_id = w.IdOn(1, "sub");
  const std::string pub_id = w.IdOn(0, "pub");
  {
    TestClient sub(w.b(), w.clock);
    sub.Connect(sub_id, /*clean=*/false);
    mqtt::SubscriptionListBuilder list;
    list.Add("t", {QoS::k2, false, false, 0});
    sub.Send(mqtt::Subscribe{1, {}, list.view()});
    w.Commit(w.b());
    sub.Expect<mqtt::Suback>();
    sub.Drop();
    w.Commit(w.b());
  }
  {
    TestClient pub(w.a(), w.clock);
    pub.Connect(pub_id, /*clean=*/false);
    pub.Send(MakePublish("t", "exactly once", QoS::k2, 9));
    w.Commit(w.a());  // a's part is written; the broker dies before b handles the envelope
    EXPECT_TRUE(pub.Receive().empty()) << "PUBREC before b wrote its part";
  }
  w.Start();
  EXPECT_EQ(w.rerouted, 1U);
  w.Commit(w.a());
  w.Commit(w.b());
  // The publisher resends (no PUBREC came): acknowledged, not routed a second time.
  TestClient pub(w.a(), w.clock);
  mqtt::Connect connect;
  connect.client_id = pub_id;
  connect.clean_start = false;
  pub.Send(connect);
  (void)pub.Receive();
  auto dup = MakePublish("t", "exactly once", QoS::k2, 9);
  dup.dup = true;
  pub.Send(dup);
  w.Commit(w.a());
  w.Deliver(w.a(), w.b());
  w.Commit(w.b());
  w.Deliver(w.b(), w.a());
  pub.Expect<mqtt::Pubrec>();
  // The subscriber gets it once.
  TestClient sub(w.b(), w.clock);
  mqtt::Connect again;
  again.client_id = sub_id;
  again.clean_start = false;
  sub.Send(again);
  w.Commit(w.b());  // (a QoS 2 PUBLISH waits for its record to be durable)
  std::vector<mqtt::Packet> got = sub.Receive();
  ASSERT_EQ(got.size(), 2U);  // CONNACK, PUBLISH
  EXPECT_EQ(std::get<mqtt::Publish>(got[1]).payload, mqtt::BinaryView::Of("exactly once"));
  w.Commit(w.b());
  EXPECT_TRUE(sub.Receive().empty()) << "delivered twice";
}

}  // namespace
}  // namespace tinymq::broker

namespace tinymq::broker {
namespace {

TEST(BrokerStoreRestoreTest, ADamagedRecordStopsTheRestoreNamingItsClient) {
  for (store::Kind kind : {store::Kind::kSessions, store::Kind::kSubscriptions,
                           store::Kind::kQueues, store::Kind::kWills}) {
    auto s = store::MakeMemoryStore();
    store::Batch b;
    store::SessionRecord session;
    session.expiry_s = 0xFFFFFFFF;  // (an expired session's records are dropped, not read)
    b.Put(store::Kind::kSessions, store::ClientKey("dev-7"), store::Encode(session));
    const std::string key = kind == store::Kind::kQueues ? store::QueueKey("dev-7", 1)
                            : kind == store::Kind::kSubscriptions
                                ? store::SubscriptionKey("dev-7", "a/b")
                                : store::ClientKey("dev-7");
    b.Put(kind, key, "\x01garbage");
    ASSERT_TRUE(s->Write(b, true).has_value());
    Broker broker(Limits{});
    Durability d;
    d.store = s.get();
    broker.AttachStore(d);
    const auto restored = broker.Restore(Instant{} + std::chrono::hours(1), true);
    ASSERT_FALSE(restored.has_value()) << "kind " << static_cast<int>(kind);
    EXPECT_NE(restored.error().find("damaged record"), std::string::npos) << restored.error();
    EXPECT_NE(restored.error().find("dev-7"), std::string::npos) << restored.error();
  }
}

}  // namespace
}  // namespace tinymq::broker
