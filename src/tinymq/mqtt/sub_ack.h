#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/types.h"

// SUBACK and UNSUBACK (3.1.1 §3.9, §3.11; 5.0 §3.9, §3.11): the packets and their codecs. A SUBACK
// carries one code per requested filter; 3.1.x knows only granted QoS 0-2 and 0x80 (Failure), so
// every 5.0 failure code is sent to a 3.1.x client as 0x80 (ToV311SubackCode). A 3.1.x UNSUBACK
// has no codes at all.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  ReasonCodeList and Properties of a decoded packet point into the decoder's `body`;
//            one built from a span of ReasonCode points into that span.
// Errors:    decoders: kInvalidFixedHeaderFlags, kZeroPacketId, kNoTopicFilters (no codes),
//            kInvalidReasonCode, property errors, kTruncated, kTrailingBytes.

namespace tinymq::mqtt {

// One reason code per byte, as on the wire.
class ReasonCodeList {
 public:
  ReasonCodeList() = default;
  // NOLINTNEXTLINE(google-explicit-constructor): the natural way to pass codes to an encoder.
  ReasonCodeList(std::span<const ReasonCode> codes)
      : bytes_(reinterpret_cast<const std::uint8_t*>(codes.data()), codes.size()) {}
  static ReasonCodeList FromBytes(BinaryView bytes) {
    ReasonCodeList l;
    l.bytes_ = bytes;
    return l;
  }

  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  ReasonCode operator[](std::size_t i) const { return static_cast<ReasonCode>(bytes_[i]); }
  BinaryView bytes() const { return bytes_; }

  friend bool operator==(const ReasonCodeList& a, const ReasonCodeList& b) {
    return a.bytes_ == b.bytes_;
  }

 private:
  BinaryView bytes_;
};

struct Suback {
  std::uint16_t packet_id = 0;
  Properties properties;  // 5.0 only
  ReasonCodeList reason_codes;

  friend bool operator==(const Suback&, const Suback&) = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  Properties properties;        // 5.0 only
  ReasonCodeList reason_codes;  // 5.0 only

  friend bool operator==(const Unsuback&, const Unsuback&) = default;
};

DecodeResult<Suback> DecodeSuback(std::uint8_t flags, BinaryView body, ProtocolVersion version);
DecodeResult<Unsuback> DecodeUnsuback(std::uint8_t flags, BinaryView body, ProtocolVersion version);

EncodeResult Encode(const Suback& suback, ProtocolVersion version, std::vector<std::uint8_t>& out);
EncodeResult Encode(const Unsuback& unsuback, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
