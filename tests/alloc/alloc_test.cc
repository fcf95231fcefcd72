// Counts heap allocations on the broker's hot path: steady-state QoS 0 publish-and-deliver (a
// PUBLISH read, routed to subscribers, their output written) must allocate nothing (issue #5).
// Every allocation of this binary goes through the replaced operator new below, which counts
// while `counting` is set.

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tinymq/broker/broker.h"

namespace {

bool counting = false;
std::size_t allocations = 0;

void* Allocate(std::size_t size) {
  if (counting) {
    ++allocations;
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) { return Allocate(size); }
void* operator new[](std::size_t size) { return Allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace tinymq::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using testing::FakeClock;
using testing::TestClient;

// Hands `bytes` to the broker as one read from `id`.
void Read(Broker& broker, ConnectionId id, const std::vector<std::uint8_t>& bytes, Instant now) {
  const std::span<std::uint8_t> room = broker.ReadBuffer(id);
  ASSERT_GE(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  broker.OnRead(id, bytes.size(), now);
}

// Writes everything pending on `id` as the worker would (gathered pieces); returns the bytes.
std::size_t WriteAll(Broker& broker, ConnectionId id, Instant now) {
  std::array<Broker::OutputChunk, 64> chunks;
  std::size_t total = 0;
  while (broker.OutputSize(id) != 0) {
    std::size_t n = 0;
    for (std::size_t i = 0, k = broker.Output(id, chunks); i < k; ++i) {
      n += chunks[i].size;
    }
    broker.OnWritten(id, n, now);
    total += n;
  }
  return total;
}

class AllocationTest : public ::testing::TestWithParam<ProtocolVersion> {};

TEST_P(AllocationTest, SteadyStateQos0PublishAndDeliverAllocatesNothing) {
  FakeClock clock;
  Broker broker{Limits{}};
  std::vector<std::unique_ptr<TestClient>> subscribers;
  for (int i = 0; i < 3; ++i) {
    auto c = std::make_unique<TestClient>(broker, clock, GetParam());
    c->Connect("sub" + std::to_string(i));
    mqtt::SubscriptionListBuilder list;
    list.Add(i == 0 ? "sensors/+/temperature" : "sensors/room-1/temperature",
             {QoS::k0, false, false, 0});
    c->Send(mqtt::Subscribe{1, {}, list.view()});
    (void)c->Expect<mqtt::Suback>();
    subscribers.push_back(std::move(c));
  }
  TestClient publisher(broker, clock, GetParam());
  publisher.Connect("pub");
  mqtt::Publish p;
  p.topic = "sensors/room-1/temperature";
  const std::string payload(64, 'x');
  p.payload = mqtt::BinaryView::Of(payload);
  std::vector<std::uint8_t> bytes;
  ASSERT_TRUE(mqtt::Encode(p, GetParam(), bytes).has_value());

  auto one_message = [&] {
    Read(broker, publisher.id(), bytes, clock.Now());
    std::size_t delivered = 0;
    for (const auto& s : subscribers) {
      delivered += WriteAll(broker, s->id(), clock.Now());
    }
    (void)broker.TakeDirty();
    return delivered;
  };
  for (int i = 0; i < 100; ++i) {  // warm-up: pools and scratch vectors reach their sizes
    ASSERT_GT(one_message(), 3 * payload.size());
  }
  allocations = 0;
  counting = true;
  std::size_t delivered = 0;
  for (int i = 0; i < 1000; ++i) {
    delivered += one_message();
  }
  counting = false;
  EXPECT_EQ(allocations, 0U) << "heap allocations in 1000 publishes to 3 subscribers";
  EXPECT_GT(delivered, 1000 * 3 * payload.size());  // the messages did go out
  EXPECT_EQ(broker.counters().messages_sent, 3U * 1100);
}

TEST(AllocationCounterTest, CountsWhatItShould) {
  // The counter itself works: a vector that grows allocates.
  allocations = 0;
  counting = true;
  std::vector<int> v(100);
  counting = false;
  EXPECT_EQ(allocations, 1U);
}

INSTANTIATE_TEST_SUITE_P(Versions, AllocationTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         [](const auto& param_info) {
                           return param_info.param == ProtocolVersion::kV5 ? "V5" : "V311";
                         });

}  // namespace
}  // namespace tinymq::broker
