#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tests/unit/broker/packet_summary.h"
#include "tinymq/broker/broker.h"

// A fixture for broker tests that run once per protocol version (3.1.1 and 5.0) and compare what
// clients receive as text (packet_summary.h): the broker, built from limits_ and policy_ on first
// use, a fake clock, and the helpers both broker_access_test.cc and broker_limits_test.cc use.
//
// Threading: Thread-compatible (test code).

namespace tinymq::broker::testing {

class VersionedBrokerTest : public ::testing::TestWithParam<mqtt::ProtocolVersion> {
 protected:
  bool v5() const { return GetParam() == mqtt::ProtocolVersion::kV5; }
  // The CONNACK of a client let in.
  std::string Accepted() const { return v5() ? "CONNACK 0x00" : "CONNACK rc0"; }
  // The 3.1.1 SUBACK failure is 0x80 whatever the 5.0 code would be.
  std::string Failure(mqtt::ReasonCode v5_code) const { return v5() ? Hex(v5_code) : "0x80"; }

  // The broker, built from limits_ and policy_ on first use.
  Broker& broker() {
    if (broker_ == nullptr) {
      broker_ = std::make_unique<Broker>(limits_);
      if (policy_ != nullptr) {
        broker_->SetAccess(policy_);
      }
    }
    return *broker_;
  }

  std::unique_ptr<TestClient> NewClient() {
    return std::make_unique<TestClient>(broker(), clock_, GetParam());
  }

  std::vector<std::uint8_t> Encoded(std::initializer_list<mqtt::Packet> packets) const {
    std::vector<std::uint8_t> bytes;
    for (const mqtt::Packet& p : packets) {
      EXPECT_TRUE(mqtt::Encode(p, GetParam(), bytes).has_value());
    }
    return bytes;
  }

  // Everything `c` was sent since it last looked.
  std::string Got(TestClient& c) { return Summary(c.Receive(), GetParam()); }

  // Subscribes to `filters` at `qos`; returns what the client got (the SUBACK first).
  std::string Sub(TestClient& c, std::initializer_list<std::string_view> filters,
                  mqtt::QoS qos = mqtt::QoS::k1) {
    mqtt::SubscriptionListBuilder list;
    for (std::string_view f : filters) {
      list.Add(f, {qos, false, false, 0});
    }
    c.Send(mqtt::Subscribe{next_packet_id_++, {}, list.view()});
    return Got(c);
  }

  // True when `id` is among the connections TakeDirty() returns now.
  bool Dirty(ConnectionId id) {
    for (ConnectionId d : broker().TakeDirty()) {
      if (d == id) {
        return true;
      }
    }
    return false;
  }

  void Tick(Duration d) {
    clock_.Advance(d);
    broker().OnTimer(clock_.Now());
  }

  Limits limits_;
  std::shared_ptr<const AccessPolicy> policy_;
  FakeClock clock_;
  std::unique_ptr<Broker> broker_;
  std::uint16_t next_packet_id_ = 1;
};

}  // namespace tinymq::broker::testing
