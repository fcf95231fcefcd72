#include "tinymq/server/connection_caps.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace tinymq::server {
namespace {

using Verdict = ConnectionCaps::Verdict;
using std::chrono::steady_clock;

TEST(ConnectionCapsTest, KeyOfReadsBothAddressFamilies) {
  const AddressKey v4 = ConnectionCaps::KeyOf("10.1.2.3:5000");
  EXPECT_EQ(v4, (AddressKey{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}));
  EXPECT_EQ(ConnectionCaps::KeyOf("10.1.2.3:6000"), v4);  // the port is not the address
  EXPECT_EQ(ConnectionCaps::KeyOf("[::ffff:10.1.2.3]:1"), v4);
  EXPECT_EQ(ConnectionCaps::KeyOf("[::1]:5000"),
            (AddressKey{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(ConnectionCaps::KeyOf("nonsense"), AddressKey{});
}

TEST(ConnectionCapsTest, TotalCapRefusesAndRemoveGivesBack) {
  ConnectionCaps caps(2, 0);
  const AddressKey any{};
  EXPECT_EQ(caps.TryAdd(any), Verdict::kAdmitted);
  EXPECT_EQ(caps.TryAdd(any), Verdict::kAdmitted);
  EXPECT_EQ(caps.TryAdd(any), Verdict::kOverTotal);
  EXPECT_EQ(caps.total(), 2u);
  caps.Remove(any);
  EXPECT_EQ(caps.TryAdd(any), Verdict::kAdmitted);
}

TEST(ConnectionCapsTest, PerAddressCapCountsEachAddress) {
  ConnectionCaps caps(100, 2);
  const AddressKey a = ConnectionCaps::KeyOf("10.0.0.1:1");
  const AddressKey b = ConnectionCaps::KeyOf("10.0.0.2:1");
  EXPECT_EQ(caps.TryAdd(a), Verdict::kAdmitted);
  EXPECT_EQ(caps.TryAdd(a), Verdict::kAdmitted);
  EXPECT_EQ(caps.TryAdd(a), Verdict::kOverAddress);
  EXPECT_EQ(caps.TryAdd(b), Verdict::kAdmitted);
  EXPECT_EQ(caps.total(), 3u);  // the refused one is not counted
  EXPECT_EQ(caps.CountOf(a), 2u);
  caps.Remove(a);
  caps.Remove(a);
  EXPECT_EQ(caps.CountOf(a), 0u);
  EXPECT_EQ(caps.TryAdd(a), Verdict::kAdmitted);
}

TEST(ConnectionCapsTest, MoveRecountsAConnectionUnderItsRealAddress) {
  ConnectionCaps caps(100, 1);
  const AddressKey balancer = ConnectionCaps::KeyOf("10.0.0.1:1");
  const AddressKey client = ConnectionCaps::KeyOf("192.0.2.7:1");
  EXPECT_EQ(caps.TryAdd(balancer), Verdict::kAdmitted);
  EXPECT_TRUE(caps.Move(balancer, client));
  EXPECT_EQ(caps.CountOf(balancer), 0u);
  EXPECT_EQ(caps.CountOf(client), 1u);
  // The next one from the balancer claims the same client: over its cap, nothing changes.
  EXPECT_EQ(caps.TryAdd(balancer), Verdict::kAdmitted);
  EXPECT_FALSE(caps.Move(balancer, client));
  EXPECT_EQ(caps.CountOf(balancer), 1u);
  EXPECT_EQ(caps.CountOf(client), 1u);
  EXPECT_EQ(caps.refused(Verdict::kOverAddress), 1u);
  EXPECT_EQ(caps.total(), 2u);
  caps.Remove(balancer);
  caps.Remove(client);
  EXPECT_EQ(caps.total(), 0u);
  EXPECT_EQ(caps.CountOf(client), 0u);
}

TEST(ConnectionCapsTest, UnkeyedConnectionsCountInTheTotalOnlyUntilMoved) {
  // A PROXY protocol listener's connections: the balancer's address must not fill the cap.
  ConnectionCaps caps(100, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(caps.TryAdd(ConnectionCaps::kUnkeyed), Verdict::kAdmitted);
  }
  EXPECT_EQ(caps.total(), 3u);
  const AddressKey client = ConnectionCaps::KeyOf("192.0.2.7:1");
  const AddressKey other = ConnectionCaps::KeyOf("192.0.2.8:1");
  EXPECT_TRUE(caps.Move(ConnectionCaps::kUnkeyed, client));
  EXPECT_FALSE(caps.Move(ConnectionCaps::kUnkeyed, client));  // over its cap: stays unkeyed
  EXPECT_TRUE(caps.Move(ConnectionCaps::kUnkeyed, other));
  EXPECT_EQ(caps.CountOf(client), 1u);
  EXPECT_EQ(caps.CountOf(other), 1u);
  caps.Remove(ConnectionCaps::kUnkeyed);  // the refused one closes
  caps.Remove(client);
  caps.Remove(other);
  EXPECT_EQ(caps.total(), 0u);
  EXPECT_EQ(caps.CountOf(client), 0u);
}

TEST(ConnectionCapsTest, SetCapsChangesTheCapsButNotWhetherAddressesAreKept) {
  ConnectionCaps caps(1, 0);
  const AddressKey any{};
  EXPECT_EQ(caps.TryAdd(any), Verdict::kAdmitted);
  EXPECT_EQ(caps.TryAdd(any), Verdict::kOverTotal);
  EXPECT_FALSE(caps.SetCaps(2, 5));  // the per-address cap cannot be turned on live
  EXPECT_EQ(caps.max_total(), 2u);
  EXPECT_EQ(caps.max_per_address(), 0u);
  EXPECT_EQ(caps.TryAdd(any), Verdict::kAdmitted);
  EXPECT_EQ(caps.refused(Verdict::kOverTotal), 1u);
}

TEST(ConnectionCapsTest, ZeroMeansNoCap) {
  ConnectionCaps caps(0, 0);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(caps.TryAdd(AddressKey{}), Verdict::kAdmitted);
  }
  EXPECT_EQ(caps.total(), 1000u);
}

TEST(ConnectionCapsTest, ReportsAtMostOncePerIntervalWithTheCount) {
  ConnectionCaps caps(1, 0);
  const steady_clock::time_point t0{std::chrono::hours(1)};
  ASSERT_EQ(caps.TryAdd(AddressKey{}), Verdict::kAdmitted);
  ASSERT_EQ(caps.TryAdd(AddressKey{}), Verdict::kOverTotal);
  EXPECT_EQ(caps.TakeReport(Verdict::kOverTotal, t0), 1u);  // the first one at once
  ASSERT_EQ(caps.TryAdd(AddressKey{}), Verdict::kOverTotal);
  ASSERT_EQ(caps.TryAdd(AddressKey{}), Verdict::kOverTotal);
  EXPECT_EQ(caps.TakeReport(Verdict::kOverTotal, t0 + std::chrono::seconds(1)), std::nullopt);
  EXPECT_EQ(caps.TakeReport(Verdict::kOverAddress, t0), 0u);  // each cause on its own
  EXPECT_EQ(caps.TakeReport(Verdict::kOverTotal, t0 + ConnectionCaps::kReportInterval), 2u);
}

TEST(ConnectionCapsTest, ThreadsNeverExceedTheCaps) {
  ConnectionCaps caps(50, 10);
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const AddressKey key = ConnectionCaps::KeyOf("10.0.0." + std::to_string(i % 8) + ":1");
        if (caps.TryAdd(key) == Verdict::kAdmitted) {
          admitted.fetch_add(1);
          EXPECT_LE(caps.total(), 50u);
          EXPECT_LE(caps.CountOf(key), 10u);
          if ((i + t) % 3 != 0) {
            caps.Remove(key);
            admitted.fetch_sub(1);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(caps.total(), static_cast<std::size_t>(admitted.load()));
}

}  // namespace
}  // namespace tinymq::server
