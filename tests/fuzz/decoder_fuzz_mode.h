#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "tinymq/mqtt/types.h"

// The mode byte that opens every input of tinymq_decoder_fuzz: how the Decoder starts (preset
// version, limits), how the rest of the input is cut into reads, and which read API is used.
// tinymq_make_corpus writes its seeds with ToByte, so target and seeds agree on the layout.
//
//   bit   7     6 5 4   3            2            1 0
//         api   split   read_chunk   max_packet   version
//
//   version     0: none (the stream must open with CONNECT), 1: 3.1, 2: 3.1.1, 3: 5.0
//   max_packet  0: kLargeMaxPacketSize, 1: kSmallMaxPacketSize
//   read_chunk  0: kLargeReadChunk (the Decoder's default), 1: kSmallReadChunk
//   split       a SplitPattern: the lengths of the reads the stream is cut into
//   api         0: Feed(); 1: PrepareRead()/CommitRead(), with Release() whenever nothing is
//               buffered
//
// Every byte value is a valid mode: FromByte(b).ToByte() == b.
//
// Threading: Thread-safe (pure functions over constants).

namespace tinymq::mqtt {

// 1 MiB, not the protocol's 256 MiB: once a fixed header is in, the Decoder allocates the declared
// packet size (by design), so a 256 MiB limit would make every input that declares a huge packet
// a 256 MiB memset and drag the fuzzer down. 1 MiB still passes every size a fuzz input can hold.
inline constexpr std::uint32_t kLargeMaxPacketSize = 1U << 20;
// Below most seeds: exercises kPacketTooLarge and the "no allocation for a refused length" rule.
inline constexpr std::uint32_t kSmallMaxPacketSize = 64;
inline constexpr std::size_t kLargeReadChunk = 4096;
inline constexpr std::size_t kSmallReadChunk = 5;

enum class SplitPattern : std::uint8_t {
  kWhole = 0,        // one read of everything (Feed still takes only what PrepareRead offers)
  kSingleBytes = 1,  // one byte per read
  kTwoThree = 2,     // 2, 3, 2, 3, ...
  kSevens = 3,       // 7 bytes per read
  kSixtyFours = 4,   // 64 bytes per read
  kRandomSmall = 5,  // 1-16 bytes, from a PRNG seeded with the stream length
  kRandomLarge = 6,  // 1-512 bytes, likewise
  kHalves = 7,       // two reads of half the stream each
};

struct DecoderFuzzMode {
  std::optional<ProtocolVersion> version;
  bool small_max_packet = false;
  bool small_read_chunk = false;
  SplitPattern split = SplitPattern::kWhole;
  bool prepare_read_api = false;

  std::uint32_t max_packet_size() const {
    return small_max_packet ? kSmallMaxPacketSize : kLargeMaxPacketSize;
  }
  std::size_t read_chunk() const { return small_read_chunk ? kSmallReadChunk : kLargeReadChunk; }

  static DecoderFuzzMode FromByte(std::uint8_t b) {
    DecoderFuzzMode m;
    const unsigned v = b & 0x03U;
    if (v != 0) {
      m.version = static_cast<ProtocolVersion>(v + 2);  // 1 -> 3 (3.1), 2 -> 4, 3 -> 5
    }
    m.small_max_packet = (b & 0x04U) != 0;
    m.small_read_chunk = (b & 0x08U) != 0;
    m.split = static_cast<SplitPattern>((b >> 4) & 0x07U);
    m.prepare_read_api = (b & 0x80U) != 0;
    return m;
  }

  std::uint8_t ToByte() const {
    unsigned b = version ? static_cast<unsigned>(*version) - 2 : 0;
    b |= small_max_packet ? 0x04U : 0U;
    b |= small_read_chunk ? 0x08U : 0U;
    b |= static_cast<unsigned>(split) << 4;
    b |= prepare_read_api ? 0x80U : 0U;
    return static_cast<std::uint8_t>(b);
  }
};

// Cuts a stream of `total` bytes into read lengths following a SplitPattern. Deterministic: the
// PRNG patterns are seeded from `total`, never from a clock or global state.
//
// Threading: Thread-compatible.
class Splitter {
 public:
  Splitter(SplitPattern pattern, std::size_t total)
      : pattern_(pattern), total_(total), state_(0x9E3779B9U ^ static_cast<std::uint32_t>(total)) {
    if (state_ == 0) {
      state_ = 1;  // xorshift never leaves 0
    }
  }

  // The length of the next read, at least 1.
  std::size_t Next() {
    switch (pattern_) {
      case SplitPattern::kWhole: return std::max<std::size_t>(total_, 1);
      case SplitPattern::kSingleBytes: return 1;
      case SplitPattern::kTwoThree: two_ = !two_; return two_ ? 2 : 3;
      case SplitPattern::kSevens: return 7;
      case SplitPattern::kSixtyFours: return 64;
      case SplitPattern::kRandomSmall: return 1 + Random() % 16;
      case SplitPattern::kRandomLarge: return 1 + Random() % 512;
      case SplitPattern::kHalves: return std::max<std::size_t>(total_ / 2, 1);
    }
    return 1;
  }

 private:
  std::uint32_t Random() {  // xorshift32
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

  SplitPattern pattern_;
  std::size_t total_;
  std::uint32_t state_;
  bool two_ = false;
};

}  // namespace tinymq::mqtt
