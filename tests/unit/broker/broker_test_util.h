#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tinymq/broker/broker.h"
#include "tinymq/mqtt/packet.h"

// A fake clock and a scripted client for the sans-I/O broker: packets are encoded with the codec
// and fed through ReadBuffer/OnRead exactly as the server does; what the broker writes is decoded
// back into packets. Nothing here touches a socket or the wall clock.
//
// Threading: Thread-compatible (test code).
// Lifetime:  packets returned by TestClient::Receive() point into bytes the client keeps until it
//            is destroyed.

namespace tinymq::broker::testing {

// Decodes what a broker wrote (whole packets, one after the other); the packets point into
// `bytes`. A broken or undecodable packet fails the test.
inline std::vector<mqtt::Packet> DecodePackets(const std::vector<std::uint8_t>& bytes,
                                               mqtt::ProtocolVersion version) {
  std::vector<mqtt::Packet> out;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const mqtt::BinaryView rest(bytes.data() + at, bytes.size() - at);
    auto header = mqtt::ParseFixedHeader(rest, mqtt::kMaxRemainingLength + 5);
    if (!header || !*header) {
      ADD_FAILURE() << "broker wrote a broken packet";
      break;
    }
    const mqtt::BinaryView body(bytes.data() + at + (*header)->size, (*header)->remaining_length);
    auto packet = mqtt::DecodePacket(**header, body, version);
    if (!packet) {
      ADD_FAILURE() << "broker wrote an undecodable packet: " << mqtt::Describe(packet.error());
      break;
    }
    out.push_back(std::move(*packet));
    at += (*header)->packet_size();
  }
  return out;
}

// A 5.0 CONNECT with `props`.
inline mqtt::Connect V5Connect(std::string_view client_id,
                               const mqtt::PropertiesBuilder& props = {}, bool clean_start = true) {
  mqtt::Connect c;
  c.version = mqtt::ProtocolVersion::kV5;
  c.client_id = client_id;
  c.clean_start = clean_start;
  c.properties = props.view();
  return c;
}

class FakeClock {
 public:
  Instant Now() const { return now_; }
  void Advance(Duration d) { now_ += d; }

 private:
  Instant now_ = Instant{} + std::chrono::hours(1);
};

class TestClient {
 public:
  TestClient(Broker& broker, FakeClock& clock,
             mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311)
      : broker_(broker), clock_(clock), version_(version) {
    id_ = broker_.Accept("127.0.0.1:" + std::to_string(next_port_++), clock_.Now());
  }

  ConnectionId id() const { return id_; }
  mqtt::ProtocolVersion version() const { return version_; }

  // Encodes `packet` for this client's version and hands it to the broker (split into reads of
  // at most `chunk` bytes, to exercise partial packets).
  void Send(const mqtt::Packet& packet, std::size_t chunk = 1 << 20) {
    std::vector<std::uint8_t> bytes;
    const auto r = mqtt::Encode(packet, version_, bytes);
    ASSERT_TRUE(r.has_value()) << mqtt::Describe(r.error());
    SendRaw(bytes, chunk);
  }

  void SendRaw(const std::vector<std::uint8_t>& bytes, std::size_t chunk = 1 << 20) {
    std::size_t at = 0;
    while (at < bytes.size() && !broker_.ShouldClose(id_)) {
      const std::span<std::uint8_t> room = broker_.ReadBuffer(id_);
      const std::size_t n = std::min({room.size(), chunk, bytes.size() - at});
      std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), n, room.begin());
      broker_.OnRead(id_, n, clock_.Now());
      at += n;
    }
  }

  // Connects with `client_id`; returns the CONNACK (or fails the test).
  mqtt::Connack Connect(std::string_view client_id, bool clean = true,
                        std::uint16_t keep_alive = 0) {
    mqtt::Connect c;
    c.version = version_;
    c.client_id = client_id;
    c.clean_start = clean;
    c.keep_alive = keep_alive;
    Send(c);
    return Expect<mqtt::Connack>();
  }

  // Drains what the broker wrote and decodes it.
  std::vector<mqtt::Packet> Receive() {
    std::vector<std::uint8_t> pending = broker_.CopyOutput(id_);
    if (pending.empty()) {
      return {};
    }
    broker_.OnWritten(id_, pending.size(), clock_.Now());
    chunks_.push_back(std::move(pending));
    return DecodePackets(chunks_.back(), version_);
  }

  // Receives and requires exactly one packet, of type T.
  template <typename T>
  T Expect() {
    std::vector<mqtt::Packet> got = Receive();
    if (got.size() != 1 || !std::holds_alternative<T>(got[0])) {
      ADD_FAILURE() << "expected one packet, got " << got.size()
                    << (got.empty() ? ""
                                    : " starting with a " +
                                          std::string(mqtt::PacketTypeName(mqtt::TypeOf(got[0]))));
      return T{};
    }
    return std::get<T>(got[0]);
  }

  bool Closed() const { return broker_.ShouldClose(id_); }

  // The peer goes away without DISCONNECT.
  void Drop() {
    broker_.OnPeerClosed(id_, clock_.Now());
    Finish();
  }
  // The server side closes the socket after flushing (what the net layer does).
  void Finish() {
    (void)Receive();
    broker_.Release(id_);
  }

 private:
  static inline int next_port_ = 40000;
  Broker& broker_;
  FakeClock& clock_;
  mqtt::ProtocolVersion version_;
  ConnectionId id_ = 0;
  std::deque<std::vector<std::uint8_t>> chunks_;
};

inline mqtt::Subscribe MakeSubscribe(std::uint16_t packet_id, mqtt::SubscriptionListBuilder& b) {
  return mqtt::Subscribe{packet_id, {}, b.view()};
}

inline mqtt::Publish MakePublish(std::string_view topic, std::string_view payload,
                                 mqtt::QoS qos = mqtt::QoS::k0, std::uint16_t packet_id = 0,
                                 bool retain = false) {
  mqtt::Publish p;
  p.topic = topic;
  p.payload = mqtt::BinaryView::Of(payload);
  p.qos = qos;
  p.packet_id = packet_id;
  p.retain = retain;
  return p;
}

}  // namespace tinymq::broker::testing
