#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tinymq/broker/broker.h"

// Helpers of the broker conformance tests (broker_conformance_*_test.cc): packets rendered on one
// line for exact comparisons, connect/subscribe/publish steps, and the test fixture.
//
// Threading: Thread-compatible (test code).

namespace tinymq::broker::conformance {

using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::hours;
using std::chrono::seconds;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;

using Bytes = std::vector<std::uint8_t>;

inline std::string Hex(unsigned value) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02x", value);
  return buf;
}

inline std::string Hex(QoS qos) { return Hex(static_cast<unsigned>(qos)); }

inline std::string Codes(const mqtt::ReasonCodeList& codes) {
  std::string s = "[";
  for (std::size_t i = 0; i < codes.size(); ++i) {
    s += (i == 0 ? "" : " ") + Hex(static_cast<unsigned>(codes[i]));
  }
  return s + "]";
}

// One packet on one line: "CONNACK sp1 rc00", "PUBLISH a/b 'x' q1 dup0 r0", "PUBACK 7",
// "SUBACK 3 [01 80]", "UNSUBACK 4", "PINGRESP", "DISCONNECT rc82". The packet id of a PUBLISH is
// left out (the broker picks it); tests that need it read it from the packet.
inline std::string ShowOne(const mqtt::Packet& packet) {
  return std::visit(
      [&packet](const auto& p) -> std::string {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Connack>) {
          return std::string("CONNACK sp") + (p.session_present ? "1" : "0") + " rc" +
                 Hex(static_cast<unsigned>(p.reason));
        } else if constexpr (std::is_same_v<T, mqtt::Publish>) {
          return "PUBLISH " + std::string(p.topic) + " '" + std::string(p.payload.AsString()) +
                 "' q" + std::to_string(static_cast<int>(p.qos)) + " dup" + (p.dup ? "1" : "0") +
                 " r" + (p.retain ? "1" : "0");
        } else if constexpr (std::is_same_v<T, mqtt::Puback> || std::is_same_v<T, mqtt::Pubrec> ||
                             std::is_same_v<T, mqtt::Pubrel> || std::is_same_v<T, mqtt::Pubcomp>) {
          return std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet))) + " " +
                 std::to_string(p.packet_id) +
                 (p.reason == ReasonCode::kSuccess ? ""
                                                   : " rc" + Hex(static_cast<unsigned>(p.reason)));
        } else if constexpr (std::is_same_v<T, mqtt::Suback>) {
          return "SUBACK " + std::to_string(p.packet_id) + " " + Codes(p.reason_codes);
        } else if constexpr (std::is_same_v<T, mqtt::Unsuback>) {
          return "UNSUBACK " + std::to_string(p.packet_id) +
                 (p.reason_codes.empty() ? "" : " " + Codes(p.reason_codes));
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          return "DISCONNECT rc" + Hex(static_cast<unsigned>(p.reason));
        } else {
          return std::string(mqtt::PacketTypeName(mqtt::TypeOf(packet)));
        }
      },
      packet);
}

inline std::vector<std::string> ShowEach(const std::vector<mqtt::Packet>& packets) {
  std::vector<std::string> lines;
  for (const mqtt::Packet& p : packets) {
    lines.push_back(ShowOne(p));
  }
  return lines;
}

// The packets joined with " | "; "" for none.
inline std::string Show(const std::vector<mqtt::Packet>& packets) {
  std::string out;
  for (const mqtt::Packet& p : packets) {
    out += (out.empty() ? "" : " | ") + ShowOne(p);
  }
  return out;
}

// The bytes the broker has written to `c` and not yet handed to the socket.
inline Bytes Written(const Broker& broker, const TestClient& c) {
  return broker.CopyOutput(c.id());
}

inline Bytes Encoded(const mqtt::Packet& packet, ProtocolVersion version = ProtocolVersion::kV311) {
  Bytes bytes;
  const auto r = mqtt::Encode(packet, version, bytes);
  EXPECT_TRUE(r.has_value()) << mqtt::Describe(r.error());
  return bytes;
}

inline Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) {
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

inline mqtt::Connect MakeConnect(ProtocolVersion version, std::string_view client_id,
                                 bool clean = true) {
  mqtt::Connect c;
  c.version = version;
  c.client_id = client_id;
  c.clean_start = clean;
  return c;
}

inline mqtt::Connect WithWill(mqtt::Connect c, std::string_view topic, std::string_view payload,
                              QoS qos, bool retain) {
  c.will = mqtt::Will{qos, retain, {}, topic, mqtt::BinaryView::Of(payload)};
  return c;
}

// Sends `connect` and returns everything the broker wrote in answer (CONNACK and what follows).
inline std::string ConnectAndShow(TestClient& c, const mqtt::Connect& connect) {
  c.Send(connect);
  return Show(c.Receive());
}

inline std::string ConnectAndShow(TestClient& c, std::string_view client_id, bool clean) {
  return ConnectAndShow(c, MakeConnect(c.version(), client_id, clean));
}

// Subscribes to one filter; expects the SUBACK granting `qos` and nothing else.
inline void Subscribe(TestClient& c, std::string_view filter, QoS qos,
                      std::uint16_t packet_id = 1) {
  mqtt::SubscriptionListBuilder b;
  b.Add(filter, {qos, false, false, 0});
  c.Send(mqtt::Subscribe{packet_id, {}, b.view()});
  EXPECT_EQ(Show(c.Receive()), "SUBACK " + std::to_string(packet_id) + " [" + Hex(qos) + "]");
}

inline void SendUnsubscribe(TestClient& c, std::uint16_t packet_id,
                            std::initializer_list<std::string_view> filters) {
  mqtt::TopicFilterListBuilder b;
  for (std::string_view f : filters) {
    b.Add(f);
  }
  c.Send(mqtt::Unsubscribe{packet_id, {}, b.view()});
}

// Publishes from `pub` and completes the publisher's half of the flow (PUBACK, or PUBREC, PUBREL,
// PUBCOMP), expecting exactly those packets back.
inline void PublishAndComplete(TestClient& pub, std::string_view topic, std::string_view payload,
                               QoS qos, std::uint16_t packet_id = 1, bool retain = false) {
  pub.Send(MakePublish(topic, payload, qos, qos == QoS::k0 ? 0 : packet_id, retain));
  const std::string id = std::to_string(packet_id);
  switch (qos) {
    case QoS::k0: EXPECT_EQ(Show(pub.Receive()), ""); break;
    case QoS::k1: EXPECT_EQ(Show(pub.Receive()), "PUBACK " + id); break;
    case QoS::k2:
      EXPECT_EQ(Show(pub.Receive()), "PUBREC " + id);
      pub.Send(mqtt::Pubrel{packet_id, ReasonCode::kSuccess, {}});
      EXPECT_EQ(Show(pub.Receive()), "PUBCOMP " + id);
      break;
  }
}

// Reads what `c` is sent until nothing more comes, acknowledging every PUBLISH (QoS 1: PUBACK;
// QoS 2: PUBREC, then PUBCOMP for the PUBREL); returns the payloads in the order they arrived.
// Other packets are a failure unless `others` is given: then they are added to it (see ShowOne).
inline std::vector<std::string> ReceiveAndAcknowledge(TestClient& c,
                                                      std::vector<std::string>* others = nullptr) {
  std::vector<std::string> payloads;
  for (;;) {
    const std::vector<mqtt::Packet> got = c.Receive();
    if (got.empty()) {
      return payloads;  // the broker is synchronous: nothing more is coming
    }
    for (const mqtt::Packet& packet : got) {
      if (const auto* p = std::get_if<mqtt::Publish>(&packet)) {
        payloads.emplace_back(p->payload.AsString());
        if (p->qos == QoS::k1) {
          c.Send(mqtt::Puback{p->packet_id, ReasonCode::kSuccess, {}});
        } else if (p->qos == QoS::k2) {
          c.Send(mqtt::Pubrec{p->packet_id, ReasonCode::kSuccess, {}});
        }
      } else if (const auto* rel = std::get_if<mqtt::Pubrel>(&packet)) {
        c.Send(mqtt::Pubcomp{rel->packet_id, ReasonCode::kSuccess, {}});
      } else if (others != nullptr) {
        others->push_back(ShowOne(packet));
      } else {
        ADD_FAILURE() << "unexpected " << ShowOne(packet);
      }
    }
  }
}

inline std::uint16_t IdOf(const mqtt::Packet& p) {
  const auto* publish = std::get_if<mqtt::Publish>(&p);
  EXPECT_NE(publish, nullptr) << ShowOne(p);
  return publish == nullptr ? 0 : publish->packet_id;
}

class BrokerConformanceTest : public ::testing::Test {
 protected:
  Limits limits_;
  FakeClock clock_;
  Broker broker_{limits_};
};

}  // namespace tinymq::broker::conformance
