#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tinymq/mqtt/packet.h"

// Helpers shared by the codec tests: hex text to bytes and back, packets written out by hand,
// readable outcomes for failed expectations, and the encode -> frame -> decode round trip.
//
// Threading: Thread-compatible (test code).
// Lifetime:  a Packet returned by DecodeWhole points into the bytes it was given.

namespace tinymq::mqtt::codec_test {

// "10 1c 00 04" -> {0x10, 0x1c, 0x00, 0x04}. Spaces are ignored; anything else that is not a hex
// digit, or an odd number of digits, fails the current test.
inline std::vector<std::uint8_t> Bytes(std::string_view hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };
  std::vector<std::uint8_t> out;
  int high = -1;
  for (const char c : hex) {
    if (c == ' ') {
      continue;
    }
    const int d = digit(c);
    if (d < 0) {
      ADD_FAILURE() << "not a hex digit in test vector: '" << c << "'";
      return out;
    }
    if (high < 0) {
      high = d;
    } else {
      out.push_back(static_cast<std::uint8_t>(high * 16 + d));
      high = -1;
    }
  }
  if (high >= 0) {
    ADD_FAILURE() << "odd number of hex digits in test vector \"" << hex << "\"";
  }
  return out;
}

// The bytes of `text`, for ASCII parts of a hand-written packet.
inline std::vector<std::uint8_t> Text(std::string_view text) { return {text.begin(), text.end()}; }

// The parts one after another: Cat({Bytes("00 04"), Text("MQTT")}).
inline std::vector<std::uint8_t> Cat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const std::vector<std::uint8_t>& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// A variable byte integer written out by hand (§1.5.5), independently of the codec's Writer.
inline std::vector<std::uint8_t> Varint(std::size_t value) {
  std::vector<std::uint8_t> out;
  do {
    auto byte = static_cast<std::uint8_t>(value & 0x7F);
    value >>= 7;
    if (value != 0) {
      byte = static_cast<std::uint8_t>(byte | 0x80);
    }
    out.push_back(byte);
  } while (value != 0);
  return out;
}

// A two-byte length, then the bytes of `s` (UTF-8 string or binary data, §1.5).
inline std::vector<std::uint8_t> Str(std::string_view s) {
  std::vector<std::uint8_t> out{static_cast<std::uint8_t>(s.size() >> 8),
                                static_cast<std::uint8_t>(s.size() & 0xFF)};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// A packet: `first_byte`, the Remaining Length computed from `body`, then `body`.
inline std::vector<std::uint8_t> Frame(std::uint8_t first_byte,
                                       const std::vector<std::uint8_t>& body) {
  return Cat({std::vector<std::uint8_t>{first_byte}, Varint(body.size()), body});
}

// {0x10, 0x1c} -> "10 1c"; past `limit` bytes, "... (N bytes)" ends the text.
inline std::string Hex(BinaryView bytes,
                       std::size_t limit = std::numeric_limits<std::size_t>::max()) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    if (i > 0) {
      out += ' ';
    }
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0x0F];
  }
  if (bytes.size() > limit) {
    out += " ... (" + std::to_string(bytes.size()) + " bytes)";
  }
  return out;
}

inline std::string VersionName(ProtocolVersion version) {
  switch (version) {
    case ProtocolVersion::kV31: return "V31";
    case ProtocolVersion::kV311: return "V311";
    case ProtocolVersion::kV5: return "V5";
  }
  return "V" + std::to_string(static_cast<int>(version));
}

// "ok" or the error's description, so that a failed expectation prints readable text.
inline std::string_view Outcome(const EncodeResult& result) {
  return result.has_value() ? "ok" : Describe(result.error());
}
template <typename T>
std::string_view Outcome(const DecodeResult<T>& result) {
  return result.has_value() ? "ok" : Describe(result.error());
}
inline std::string_view Outcome(DecodeError error) { return Describe(error); }
inline std::string_view Outcome(EncodeError error) { return Describe(error); }

// A short description of `packet` for failure messages: its type and its 5.0 encoding (a CONNECT
// in its own version), cut after 64 bytes.
inline std::string Summary(const Packet& packet) {
  std::vector<std::uint8_t> bytes;
  const EncodeResult r = Encode(packet, ProtocolVersion::kV5, bytes);
  std::string out(PacketTypeName(TypeOf(packet)));
  if (r.has_value()) {
    out += " [" + Hex(BinaryView(bytes), 64) + "]";
  } else {
    out += " (no 5.0 encoding: " + std::string(Outcome(r)) + ")";
  }
  return out;
}

inline testing::AssertionResult SamePacket(const Packet& actual, const Packet& expected) {
  if (actual == expected) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure()
         << "decoded  " << Summary(actual) << "\nexpected " << Summary(expected);
}

// The bytes of `packet` encoded for `version`; an encode error fails the current test.
inline std::vector<std::uint8_t> EncodeOk(const Packet& packet, ProtocolVersion version) {
  std::vector<std::uint8_t> out;
  const EncodeResult r = Encode(packet, version, out);
  EXPECT_EQ(Outcome(r), "ok") << "encoding " << PacketTypeName(TypeOf(packet)) << " for "
                              << VersionName(version);
  return out;
}

// The fixed header flags that 3.1.1 and 5.0 §2.1.3 fix for `packet` (PUBLISH: DUP, QoS, RETAIN).
inline std::uint8_t ExpectedFlags(const Packet& packet) {
  if (const auto* p = std::get_if<Publish>(&packet)) {
    return static_cast<std::uint8_t>((p->dup ? 0x08U : 0U) | (static_cast<unsigned>(p->qos) << 1) |
                                     (p->retain ? 0x01U : 0U));
  }
  switch (TypeOf(packet)) {
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe: return 0x02;
    default: return 0x00;
  }
}

// Frames `bytes` with ParseFixedHeader and decodes the body. The bytes must hold exactly one whole
// packet; anything else fails the current test (a broken test vector, not a codec outcome).
inline DecodeResult<Packet> DecodeWhole(BinaryView bytes, ProtocolVersion version) {
  const auto header = ParseFixedHeader(bytes, kMaxRemainingLength + 5);
  if (!header.has_value()) {
    return util::Unexpected(header.error());
  }
  if (!header->has_value()) {
    ADD_FAILURE() << "incomplete fixed header: " << Hex(bytes, 16);
    return util::Unexpected(DecodeError::kTruncated);
  }
  const FixedHeader& h = **header;
  if (h.packet_size() != bytes.size()) {
    ADD_FAILURE() << "fixed header frames " << h.packet_size() << " bytes, the vector has "
                  << bytes.size() << ": " << Hex(bytes, 16);
    return util::Unexpected(DecodeError::kTruncated);
  }
  return DecodePacket(h, BinaryView(bytes.data() + h.size, h.remaining_length), version);
}

// Encode -> ParseFixedHeader -> DecodePacket. The decoded packet must equal `expected` (`packet`
// itself unless the version drops fields), its fixed header must carry the packet's type and
// flags, and encoding the decoded packet again must give the same bytes. Returns the encoding.
inline std::vector<std::uint8_t> ExpectRoundTrip(const Packet& packet, ProtocolVersion version,
                                                 const Packet& expected) {
  const std::vector<std::uint8_t> bytes = EncodeOk(packet, version);
  if (bytes.empty()) {
    return bytes;
  }
  const auto header = ParseFixedHeader(BinaryView(bytes), kMaxRemainingLength + 5);
  if (!header.has_value() || !header->has_value()) {
    ADD_FAILURE() << "no fixed header in " << Hex(BinaryView(bytes), 16);
    return bytes;
  }
  EXPECT_EQ(PacketTypeName((*header)->type), PacketTypeName(TypeOf(packet)));
  EXPECT_EQ(static_cast<int>((*header)->flags), static_cast<int>(ExpectedFlags(packet)));
  const auto decoded = DecodeWhole(BinaryView(bytes), version);
  if (!decoded.has_value()) {
    ADD_FAILURE() << "decoding " << VersionName(version) << " " << Summary(packet) << ": "
                  << Outcome(decoded);
    return bytes;
  }
  EXPECT_TRUE(SamePacket(*decoded, expected)) << "version " << VersionName(version);
  const std::vector<std::uint8_t> again = EncodeOk(*decoded, version);
  EXPECT_TRUE(again == bytes) << "re-encoded " << Hex(BinaryView(again), 64) << "\nfirst      "
                              << Hex(BinaryView(bytes), 64);
  return bytes;
}

inline std::vector<std::uint8_t> ExpectRoundTrip(const Packet& packet, ProtocolVersion version) {
  return ExpectRoundTrip(packet, version, packet);
}

}  // namespace tinymq::mqtt::codec_test
