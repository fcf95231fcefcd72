#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/types.h"
#include "tinymq/mqtt/wire.h"
#include "tinymq/util/result.h"

// What the packet encoders share: the errors they report and the framing of a packet (fixed header
// byte, Remaining Length, body). Encoders append to a std::vector<uint8_t> and leave it unchanged
// when they fail.
//
// Threading: Thread-safe (pure functions).
// Errors:    EncodeError, below. Each means the caller asked for a packet the protocol cannot
//            carry; none depends on anything but the arguments.

namespace tinymq::mqtt {

enum class EncodeError : std::uint8_t {
  kFieldTooLong,        // a string or binary field longer than 65,535 bytes
  kPacketTooLarge,      // Remaining Length above 268,435,455
  kZeroPacketId,        // packet identifier 0 where one is required
  kPropertyNotAllowed,  // a property this packet may not carry, or repeated where it may not be
  kNotInVersion,        // the packet or value does not exist in the target protocol version
  kEmptyList,           // SUBSCRIBE, UNSUBSCRIBE, SUBACK or 5.0 UNSUBACK without entries
  kInvalidValue,        // a field out of its range (QoS 3, an unlisted reason code, ...)
};

std::string_view Describe(EncodeError error);

using EncodeResult = util::Result<void, EncodeError>;

// Appends the fixed header `first_byte`, the Remaining Length and the body that `body(w)` writes,
// calling it once with a Counter to measure and once with a Writer. `trailing` bytes that the
// caller sends after the body itself (a PUBLISH payload kept elsewhere) count in the Remaining
// Length but are not written.
template <typename Body>
EncodeResult EncodeFramed(std::uint8_t first_byte, std::vector<std::uint8_t>& out, Body&& body,
                          std::size_t trailing = 0) {
  Counter counter;
  body(counter);
  if (counter.overflow()) {
    return util::Unexpected(EncodeError::kFieldTooLong);
  }
  if (counter.size() + trailing > kMaxRemainingLength) {
    return util::Unexpected(EncodeError::kPacketTooLarge);
  }
  const auto remaining = static_cast<std::uint32_t>(counter.size() + trailing);
  const std::size_t old = out.size();
  out.resize(old + 1 + VarintSize(remaining) + counter.size());
  Writer w(out.data() + old);
  w.U8(first_byte);
  w.Varint(remaining);
  body(w);
  TINYMQ_DCHECK(w.position() == out.data() + out.size());
  return {};
}

constexpr std::uint8_t FirstByte(PacketType type, std::uint8_t flags = 0) {
  return static_cast<std::uint8_t>((static_cast<unsigned>(type) << 4) | flags);
}

}  // namespace tinymq::mqtt
