#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

// Basic vocabulary of the MQTT codec: protocol versions, packet types, QoS and a byte view.
//
// Threading: Immutable values; safe to share across threads.
// Lifetime:  BinaryView borrows the bytes it points to; it lives no longer than their owner.

namespace tinymq::mqtt {

// The Protocol Level byte of CONNECT.
enum class ProtocolVersion : std::uint8_t {
  kV31 = 3,   // MQTT 3.1, protocol name "MQIsdp"
  kV311 = 4,  // MQTT 3.1.1, protocol name "MQTT"
  kV5 = 5,    // MQTT 5.0, protocol name "MQTT"
};

// The high nibble of the first byte of every packet.
enum class PacketType : std::uint8_t {
  kReserved = 0,
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5 only
};

std::string_view PacketTypeName(PacketType type);

enum class QoS : std::uint8_t { k0 = 0, k1 = 1, k2 = 2 };

// The largest value the Remaining Length field can carry (four bytes of variable byte integer).
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;
// The largest value of any variable byte integer (Subscription Identifier included).
inline constexpr std::uint32_t kMaxVarint = kMaxRemainingLength;
// Longest UTF-8 string or binary data field: a two-byte length prefix.
inline constexpr std::size_t kMaxStringLength = 65'535;

// A borrowed run of bytes (payload, binary data) with value comparison, so that packets compare
// with a defaulted operator==.
class BinaryView {
 public:
  constexpr BinaryView() = default;
  constexpr BinaryView(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  // NOLINTNEXTLINE(google-explicit-constructor): a span is a BinaryView.
  constexpr BinaryView(std::span<const std::uint8_t> s) : data_(s.data()), size_(s.size()) {}
  // Text as bytes, for tests and tools: BinaryView::Of("hello").
  static BinaryView Of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

  constexpr const std::uint8_t* data() const { return data_; }
  constexpr std::size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr const std::uint8_t* begin() const { return data_; }
  constexpr const std::uint8_t* end() const { return data_ + size_; }
  constexpr std::uint8_t operator[](std::size_t i) const { return data_[i]; }
  constexpr std::span<const std::uint8_t> span() const { return {data_, size_}; }
  std::string_view AsString() const { return {reinterpret_cast<const char*>(data_), size_}; }

  friend bool operator==(const BinaryView& a, const BinaryView& b) {
    return a.AsString() == b.AsString();
  }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tinymq::mqtt
