#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/types.h"
#include "tinymq/util/result.h"

// The data types of MQTT §1.5 on the wire: big-endian integers, variable byte integers, length-
// prefixed UTF-8 strings and binary data. Internal to the codec (the packet codecs build on it).
//
// Reader keeps the first error it meets and from then on returns zeros and empty views, so a
// packet decoder reads all its fields straight through and checks failed() where a decision
// depends on a value and once at the end. Writer and Counter share one interface so that each
// packet's body is described once: measured with a Counter, then written with a Writer.
//
// Threading: Thread-compatible.
// Lifetime:  Reader's views point into the span it was given. Writer writes into memory it does
//            not own.

namespace tinymq::mqtt {

// Bytes the variable byte integer `v` takes (1-4). REQUIRES: v <= kMaxVarint.
constexpr std::size_t VarintSize(std::uint32_t v) {
  return v < 128 ? 1 : v < 16'384 ? 2 : v < 2'097'152 ? 3 : 4;
}

// Outcome of reading a variable byte integer from the front of `bytes`.
struct VarintParse {
  enum class Status : std::uint8_t { kOk, kNeedMore, kMalformed, kNonMinimal } status;
  std::uint32_t value = 0;
  std::size_t size = 0;  // bytes consumed when kOk
};
VarintParse ParseVarint(std::span<const std::uint8_t> bytes);

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes)
      : p_(bytes.data()), end_(p_ + bytes.size()) {}

  bool failed() const { return error_.has_value(); }
  DecodeError error() const { return *error_; }
  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const std::uint8_t* position() const { return p_; }

  // Records `e` unless an earlier error is already recorded; the reader then reads nothing more.
  void Fail(DecodeError e) {
    if (!error_) {
      error_ = e;
    }
    p_ = end_;
  }

  std::uint8_t U8() {
    if (!Need(1)) {
      return 0;
    }
    return *p_++;
  }
  std::uint16_t U16() {
    if (!Need(2)) {
      return 0;
    }
    const auto v = static_cast<std::uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return v;
  }
  std::uint32_t U32() {
    if (!Need(4)) {
      return 0;
    }
    const std::uint32_t v = (std::uint32_t{p_[0]} << 24) | (std::uint32_t{p_[1]} << 16) |
                            (std::uint32_t{p_[2]} << 8) | std::uint32_t{p_[3]};
    p_ += 4;
    return v;
  }
  std::uint32_t Varint();
  // `n` raw bytes.
  BinaryView Bytes(std::size_t n) {
    if (!Need(n)) {
      return {};
    }
    BinaryView v(p_, n);
    p_ += n;
    return v;
  }
  // Two-byte length, then that many bytes.
  BinaryView Binary() { return Bytes(U16()); }
  // Two-byte length, then that many bytes of UTF-8, validated (§1.5.4).
  std::string_view Utf8String();
  // Everything left (the payload).
  BinaryView Rest() { return Bytes(remaining()); }

 private:
  bool Need(std::size_t n) {
    if (remaining() < n) {
      Fail(DecodeError::kTruncated);
      return false;
    }
    return true;
  }

  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::optional<DecodeError> error_;
};

// Counts the bytes a body takes, and whether any string is too long for its length prefix.
class Counter {
 public:
  std::size_t size() const { return size_; }
  bool overflow() const { return overflow_; }

  void U8(std::uint8_t) { size_ += 1; }
  void U16(std::uint16_t) { size_ += 2; }
  void U32(std::uint32_t) { size_ += 4; }
  void Varint(std::uint32_t v) {
    overflow_ |= v > kMaxVarint;
    size_ += VarintSize(v);
  }
  void Raw(BinaryView b) { size_ += b.size(); }
  void Binary(BinaryView b) {
    overflow_ |= b.size() > kMaxStringLength;
    size_ += 2 + b.size();
  }
  void String(std::string_view s) { Binary(BinaryView::Of(s)); }

 private:
  std::size_t size_ = 0;
  bool overflow_ = false;
};

// Writes into memory measured beforehand with a Counter. REQUIRES: the Counter saw no overflow.
class Writer {
 public:
  explicit Writer(std::uint8_t* out) : p_(out) {}
  std::uint8_t* position() const { return p_; }

  void U8(std::uint8_t v) { *p_++ = v; }
  void U16(std::uint16_t v) {
    p_[0] = static_cast<std::uint8_t>(v >> 8);
    p_[1] = static_cast<std::uint8_t>(v);
    p_ += 2;
  }
  void U32(std::uint32_t v) {
    p_[0] = static_cast<std::uint8_t>(v >> 24);
    p_[1] = static_cast<std::uint8_t>(v >> 16);
    p_[2] = static_cast<std::uint8_t>(v >> 8);
    p_[3] = static_cast<std::uint8_t>(v);
    p_ += 4;
  }
  void Varint(std::uint32_t v) {
    do {
      auto byte = static_cast<std::uint8_t>(v & 0x7F);
      v >>= 7;
      if (v != 0) {
        byte = static_cast<std::uint8_t>(byte | 0x80);
      }
      *p_++ = byte;
    } while (v != 0);
  }
  void Raw(BinaryView b) {
    if (!b.empty()) {
      std::memcpy(p_, b.data(), b.size());
      p_ += b.size();
    }
  }
  void Binary(BinaryView b) {
    U16(static_cast<std::uint16_t>(b.size()));
    Raw(b);
  }
  void String(std::string_view s) { Binary(BinaryView::Of(s)); }

 private:
  std::uint8_t* p_;
};

// Ends a packet decode: the reader's error if it has one, kTrailingBytes if bytes are left over,
// else `packet`.
template <typename T>
DecodeResult<T> FinishDecode(const Reader& r, T&& packet) {
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  if (!r.empty()) {
    return util::Unexpected(DecodeError::kTrailingBytes);
  }
  return std::forward<T>(packet);
}

// True when `topic` holds a wildcard character, which no topic name may ([MQTT-3.3.2-2]).
// Two memchr passes: vectorised by libc, several times faster than find_first_of on a topic.
inline bool HasWildcard(std::string_view topic) {
  return !topic.empty() && (std::memchr(topic.data(), '+', topic.size()) != nullptr ||
                            std::memchr(topic.data(), '#', topic.size()) != nullptr);
}

}  // namespace tinymq::mqtt
