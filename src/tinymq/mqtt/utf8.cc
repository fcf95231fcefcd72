#include "tinymq/mqtt/utf8.h"

#include <cstddef>
#include <cstring>

namespace tinymq::mqtt {

Utf8Check CheckUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // Fast path: eight ASCII bytes at a time (topics and client ids are nearly always ASCII).
    if (i + 8 <= n) {
      std::uint64_t chunk;
      std::memcpy(&chunk, p + i, 8);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        // A zero byte in the chunk? (classic "has zero byte" bit trick)
        if (((chunk - 0x0101010101010101ULL) & ~chunk & 0x8080808080808080ULL) != 0) {
          return Utf8Check::kNullCharacter;
        }
        i += 8;
        continue;
      }
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (c == 0) {
        return Utf8Check::kNullCharacter;
      }
      ++i;
      continue;
    }
    // RFC 3629 §4 table of well-formed byte sequences: the second byte's range depends on the
    // first, which rules out overlong forms, surrogates and code points above U+10FFFF.
    std::size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3;
      lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3;
      hi = 0x9F;  // U+D800..U+DFFF are surrogates
    } else if (c == 0xF0) {
      len = 4;
      lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4;
      hi = 0x8F;
    } else {
      return Utf8Check::kIllFormed;  // 0x80..0xC1 (continuation or overlong lead), 0xF5..0xFF
    }
    if (n - i < len) {
      return Utf8Check::kIllFormed;
    }
    if (p[i + 1] < lo || p[i + 1] > hi) {
      return Utf8Check::kIllFormed;
    }
    for (std::size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) {
        return Utf8Check::kIllFormed;
      }
    }
    i += len;
  }
  return Utf8Check::kValid;
}

}  // namespace tinymq::mqtt
