// CheckUtf8 against 5.0 §1.5.4 / 3.1.1 §1.5.3: well-formed UTF-8 as RFC 3629 defines it
// ([MQTT-1.5.4-1], 3.1.1 [MQTT-1.5.3-1]) and no U+0000 ([MQTT-1.5.4-2], 3.1.1 [MQTT-1.5.3-2]).
// Besides hand-picked cases, every 1- and 2-byte string and every 3-byte string starting E0, ED
// or EF is compared with a reference decoder written here from the definition, not from RFC 3629's
// byte-range table that the codec uses.

#include "tinymq/mqtt/utf8.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tinymq::mqtt {
namespace {

using std::string_view_literals::operator""sv;

std::string_view Name(Utf8Check c) {
  switch (c) {
    case Utf8Check::kValid: return "valid";
    case Utf8Check::kIllFormed: return "ill-formed";
    case Utf8Check::kNullCharacter: return "U+0000";
  }
  return "?";
}

std::string Hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (!out.empty()) {
      out += ' ';
    }
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  return out;
}

// Decodes from the definition (Unicode §3.9, D92; RFC 3629 §3): a lead byte gives the length and
// the high bits, each continuation byte is 10xxxxxx and adds six bits; the result must need that
// many bytes (no overlong form), must not be a surrogate and must not exceed U+10FFFF. Reports the
// first problem from the left, as a scanning validator does.
Utf8Check Reference(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    std::size_t length = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if (lead < 0x80) {
      if (lead == 0) {
        return Utf8Check::kNullCharacter;
      }
      ++i;
      continue;
    }
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      cp = lead & 0x1FU;
      min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      cp = lead & 0x0FU;
      min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      cp = lead & 0x07U;
      min = 0x10000;
    } else {
      return Utf8Check::kIllFormed;  // a continuation byte, or 11111xxx
    }
    if (s.size() - i < length) {
      return Utf8Check::kIllFormed;  // cut at the end
    }
    for (std::size_t k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) {
        return Utf8Check::kIllFormed;
      }
      cp = (cp << 6) | (b & 0x3FU);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Utf8Check::kIllFormed;
    }
    i += length;
  }
  return Utf8Check::kValid;
}

// The UTF-8 encoding of `cp`, written out bit by bit (any value below 2^21, surrogates included,
// so that tests can build ill-formed strings too).
std::string Encode(std::uint32_t cp) {
  std::string out;
  auto put = [&out](std::uint32_t b) { out += static_cast<char>(static_cast<unsigned char>(b)); };
  if (cp < 0x80) {
    put(cp);
  } else if (cp < 0x800) {
    put(0xC0 | (cp >> 6));
    put(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    put(0xE0 | (cp >> 12));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  } else {
    put(0xF0 | (cp >> 18));
    put(0x80 | ((cp >> 12) & 0x3F));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  }
  return out;
}

testing::AssertionResult Checks(std::string_view s, Utf8Check want) {
  const Utf8Check got = CheckUtf8(s);
  if (got != want) {
    return testing::AssertionFailure()
           << "[" << Hex(s) << "] is " << Name(got) << ", want " << Name(want);
  }
  return testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Valid strings

TEST(Utf8Test, ValidStrings) {
  // RFC 3629 §4; [MQTT-1.5.4-3]; 5.0 §1.5.4 (control characters and non-characters MAY be refused,
  // and this validator does not).
  for (const std::string_view s : {
           ""sv,
           "a"sv,
           "hello/world"sv,
           "\xC2\x80"sv,          // U+0080, the smallest 2-byte code point
           "\xC3\xA9"sv,          // U+00E9
           "\xDF\xBF"sv,          // U+07FF, the largest 2-byte code point
           "\xE0\xA0\x80"sv,      // U+0800, the smallest 3-byte code point
           "\xE2\x82\xAC"sv,      // U+20AC
           "\xED\x9F\xBF"sv,      // U+D7FF, just below the surrogates
           "\xEE\x80\x80"sv,      // U+E000, just above them
           "\xEF\xBB\xBF"sv,      // U+FEFF, [MQTT-1.5.4-3]: kept, not stripped
           "\xEF\xBF\xBE"sv,      // U+FFFE, a non-character: allowed
           "\xEF\xBF\xBF"sv,      // U+FFFF, the largest 3-byte code point
           "\xF0\x90\x80\x80"sv,  // U+10000, the smallest 4-byte code point
           "\xF0\x9F\x98\x80"sv,  // U+1F600
           "\xF3\xBF\xBF\xBF"sv,  // U+FFFFF
           "\xF4\x8F\xBF\xBF"sv,  // U+10FFFF, the largest code point
           "\x01\x1F\x7F"sv,      // control characters: a receiver MAY refuse them, need not
           "\xC2\x80\xC2\x9F"sv,  // C1 controls
           "a\xC3\xA9"
           "b\xE2\x82\xAC"
           "c\xF0\x9F\x98\x80"
           "d"sv,
       }) {
    EXPECT_TRUE(Checks(s, Utf8Check::kValid));
  }
}

TEST(Utf8Test, ValidAsciiOfEveryLengthUpTo17) {
  // The validator takes eight ASCII bytes at a time: lengths 0-17 cover none, one and two whole
  // chunks with every tail length.
  for (std::size_t n = 0; n <= 17; ++n) {
    SCOPED_TRACE(n);
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
      s += static_cast<char>('a' + i % 26);
    }
    EXPECT_TRUE(Checks(s, Utf8Check::kValid));
    // The highest ASCII byte, 7F, everywhere.
    EXPECT_TRUE(Checks(std::string(n, '\x7F'), Utf8Check::kValid));
  }
}

TEST(Utf8Test, MultiByteCharacterAtEveryOffset) {
  // A character of each length at every position of an ASCII string, across the 8-byte chunks.
  for (const std::string_view ch : {"\xC3\xA9"sv, "\xEF\xBF\xBF"sv, "\xF4\x8F\xBF\xBF"sv}) {
    for (std::size_t before = 0; before <= 17; ++before) {
      for (const std::size_t after :
           {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{9}}) {
        const std::string s = std::string(before, 'x') + std::string(ch) + std::string(after, 'y');
        EXPECT_TRUE(Checks(s, Utf8Check::kValid));
      }
    }
  }
}

TEST(Utf8Test, EveryCodePointEncodesToAValidString) {
  // U+0001..U+10FFFF except the surrogates, each alone and after 8 ASCII bytes.
  for (std::uint32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if (cp == 0xD800) {
      cp = 0xE000;
    }
    const std::string s = Encode(cp);
    if (CheckUtf8(s) != Utf8Check::kValid || CheckUtf8("abcdefgh" + s) != Utf8Check::kValid) {
      ADD_FAILURE() << "U+" << std::hex << cp << " [" << Hex(s) << "] refused";
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// U+0000

TEST(Utf8Test, NulAtEveryPositionOfA20ByteString) {
  // [MQTT-1.5.4-2]: a UTF-8 Encoded String MUST NOT include an encoding of U+0000.
  for (std::size_t at = 0; at < 20; ++at) {
    SCOPED_TRACE(at);
    std::string s(20, 'a');
    s[at] = '\0';
    EXPECT_TRUE(Checks(s, Utf8Check::kNullCharacter));
    // Also after a multi-byte character, which leaves the 8-byte chunks unaligned.
    EXPECT_TRUE(Checks("\xC3\xA9" + s, Utf8Check::kNullCharacter));
  }
  EXPECT_TRUE(Checks("\0"sv, Utf8Check::kNullCharacter));
  EXPECT_TRUE(Checks(std::string(20, '\0'), Utf8Check::kNullCharacter));
}

TEST(Utf8Test, NulInShortStringsOfEveryLength) {
  // [MQTT-1.5.4-2], around the 8-byte chunks of the fast path.
  for (std::size_t n = 1; n <= 17; ++n) {
    for (std::size_t at = 0; at < n; ++at) {
      std::string s(n, 'z');
      s[at] = '\0';
      EXPECT_TRUE(Checks(s, Utf8Check::kNullCharacter));
    }
  }
}

TEST(Utf8Test, OverlongNulIsIllFormedNotNull) {
  // C0 80 (the "modified UTF-8" NUL) is an overlong form: ill-formed.
  EXPECT_TRUE(Checks("\xC0\x80"sv, Utf8Check::kIllFormed));
  EXPECT_TRUE(Checks("abcdefgh\xC0\x80"sv, Utf8Check::kIllFormed));
}

// ---------------------------------------------------------------------------------------------
// Ill-formed strings, one class at a time

TEST(Utf8Test, OverlongFormsAreIllFormed) {
  // RFC 3629 §3: "Implementations of the decoding algorithm above MUST protect against decoding
  // invalid sequences", the overlong forms among them.
  for (const std::string_view s : {
           "\xC0\x80"sv, "\xC0\xAF"sv, "\xC1\xBF"sv,                          // 2-byte for < U+0080
           "\xE0\x80\x80"sv, "\xE0\x80\xAF"sv, "\xE0\x9F\xBF"sv,              // 3-byte for < U+0800
           "\xF0\x80\x80\x80"sv, "\xF0\x80\x80\xAF"sv, "\xF0\x8F\xBF\xBF"sv,  // 4-byte < U+10000
       }) {
    EXPECT_TRUE(Checks(s, Utf8Check::kIllFormed));
    EXPECT_TRUE(Checks("abcdefghij" + std::string(s), Utf8Check::kIllFormed));
  }
}

TEST(Utf8Test, SurrogatesAreIllFormed) {
  // [MQTT-1.5.4-1]: "MUST NOT include encodings of code points between U+D800 and U+DFFF".
  for (const std::string_view s :
       {"\xED\xA0\x80"sv, "\xED\xAD\xBF"sv, "\xED\xAE\x80"sv, "\xED\xAF\xBF"sv, "\xED\xB0\x80"sv,
        "\xED\xBF\xBF"sv, "\xED\xA0\xBD\xED\xB8\x80"sv /* CESU-8 pair for U+1F600 */}) {
    EXPECT_TRUE(Checks(s, Utf8Check::kIllFormed));
    EXPECT_TRUE(Checks("a" + std::string(s) + "b", Utf8Check::kIllFormed));
  }
  for (std::uint32_t cp = 0xD800; cp <= 0xDFFF; ++cp) {
    EXPECT_EQ(CheckUtf8(Encode(cp)), Utf8Check::kIllFormed) << std::hex << cp;
  }
}

TEST(Utf8Test, CodePointsAboveU10FFFFAreIllFormed) {
  // RFC 3629 §3: UTF-8 ends at U+10FFFF; F5-FF never appear.
  for (const std::string_view s :
       {"\xF4\x90\x80\x80"sv, "\xF4\xBF\xBF\xBF"sv, "\xF5\x80\x80\x80"sv, "\xF7\xBF\xBF\xBF"sv,
        "\xF8\x88\x80\x80\x80"sv, "\xFC\x84\x80\x80\x80\x80"sv, "\xFE"sv, "\xFF"sv}) {
    EXPECT_TRUE(Checks(s, Utf8Check::kIllFormed));
    EXPECT_TRUE(Checks("12345678" + std::string(s), Utf8Check::kIllFormed));
  }
}

TEST(Utf8Test, StrayContinuationBytesAreIllFormed) {
  // RFC 3629 §3: 10xxxxxx only follows a lead byte ([MQTT-1.5.4-1]).
  for (unsigned b = 0x80; b <= 0xBF; ++b) {
    const std::string stray(1, static_cast<char>(b));
    EXPECT_TRUE(Checks(stray, Utf8Check::kIllFormed));
    EXPECT_TRUE(Checks("ab" + stray + "cd", Utf8Check::kIllFormed));
    // One continuation byte too many after a complete character.
    EXPECT_TRUE(Checks("\xC3\xA9" + stray, Utf8Check::kIllFormed));
  }
}

TEST(Utf8Test, SequencesCutShortAreIllFormed) {
  // RFC 3629 §3: a lead byte announces how many continuation bytes follow ([MQTT-1.5.4-1]).
  for (const std::string_view full :
       {"\xC3\xA9"sv, "\xE2\x82\xAC"sv, "\xF0\x9F\x98\x80"sv, "\xF4\x8F\xBF\xBF"sv}) {
    for (std::size_t keep = 1; keep < full.size(); ++keep) {
      const std::string cut(full.substr(0, keep));
      SCOPED_TRACE(Hex(cut));
      EXPECT_TRUE(Checks(cut, Utf8Check::kIllFormed));               // at the end
      EXPECT_TRUE(Checks("abcdefgh" + cut, Utf8Check::kIllFormed));  // at the end, after a chunk
      EXPECT_TRUE(Checks(cut + "a", Utf8Check::kIllFormed));         // followed by ASCII
      EXPECT_TRUE(Checks(cut + "\xC3\xA9", Utf8Check::kIllFormed));  // followed by a lead byte
      EXPECT_TRUE(Checks(cut + std::string(1, '\0'), Utf8Check::kIllFormed));  // by a NUL
    }
  }
}

TEST(Utf8Test, BadByteAtEveryPositionOfA20ByteString) {
  // [MQTT-1.5.4-1]: 80-BF alone, C0, C1 and F5-FF never start a well-formed sequence.
  for (const char bad : {'\x80', '\xBF', '\xC0', '\xC1', '\xF5', '\xFF'}) {
    for (std::size_t at = 0; at < 20; ++at) {
      std::string s(20, 'q');
      s[at] = bad;
      EXPECT_TRUE(Checks(s, Utf8Check::kIllFormed));
    }
  }
}

TEST(Utf8Test, FirstProblemFromTheLeftDecides) {
  // [MQTT-1.5.4-1] vs [MQTT-1.5.4-2]: both are Malformed Packet; the first one found is named.
  EXPECT_TRUE(Checks("a\0b\x80"sv, Utf8Check::kNullCharacter));
  EXPECT_TRUE(
      Checks("a\x80"
             "b\0"sv,
             Utf8Check::kIllFormed));
  EXPECT_TRUE(Checks("abcdefg\0\xFF"sv, Utf8Check::kNullCharacter));
  EXPECT_TRUE(Checks("abcdefgh\xFF\0"sv, Utf8Check::kIllFormed));
}

// ---------------------------------------------------------------------------------------------
// Exhaustive comparison with the reference decoder

testing::AssertionResult SameAsReference(std::string_view s) {
  const Utf8Check got = CheckUtf8(s);
  const Utf8Check want = Reference(s);
  if (got != want) {
    return testing::AssertionFailure()
           << "[" << Hex(s) << "]: CheckUtf8 says " << Name(got) << ", reference " << Name(want);
  }
  return testing::AssertionSuccess();
}

TEST(Utf8Test, ReferenceDecoderAgreesOnKnownCases) {
  // The reference itself, on one case of each kind, so that the comparisons below mean something.
  EXPECT_EQ(Reference("\xF4\x8F\xBF\xBF"), Utf8Check::kValid);
  EXPECT_EQ(Reference("\xF4\x90\x80\x80"), Utf8Check::kIllFormed);
  EXPECT_EQ(Reference("\xED\xA0\x80"), Utf8Check::kIllFormed);
  EXPECT_EQ(Reference("\xE0\x9F\xBF"), Utf8Check::kIllFormed);
  EXPECT_EQ(Reference("\xE0\xA0\x80"), Utf8Check::kValid);
  EXPECT_EQ(Reference("\xC3"), Utf8Check::kIllFormed);
  EXPECT_EQ(Reference("a\0"sv), Utf8Check::kNullCharacter);
}

TEST(Utf8Test, AllOneByteStringsMatchTheReference) {
  // RFC 3629 §4: 00-7F are single-byte characters (00 refused by [MQTT-1.5.4-2]).
  int valid = 0;
  for (unsigned b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    EXPECT_TRUE(SameAsReference(s));
    valid += CheckUtf8(s) == Utf8Check::kValid ? 1 : 0;
  }
  EXPECT_EQ(valid, 127);  // 01-7F
}

TEST(Utf8Test, AllTwoByteStringsMatchTheReference) {
  // Alone, and after 7 and 8 ASCII bytes so that the fast path hands over mid-chunk and at a chunk
  // boundary.
  int failures = 0;
  int valid = 0;
  for (unsigned b0 = 0; b0 < 256; ++b0) {
    for (unsigned b1 = 0; b1 < 256; ++b1) {
      const std::string s = {static_cast<char>(b0), static_cast<char>(b1)};
      for (const std::string_view prefix : {""sv, "abcdefg"sv, "abcdefgh"sv}) {
        const auto result = SameAsReference(std::string(prefix) + s);
        if (!result && ++failures <= 10) {
          ADD_FAILURE() << result.message();
        }
      }
      valid += CheckUtf8(s) == Utf8Check::kValid ? 1 : 0;
    }
  }
  EXPECT_EQ(failures, 0);
  // 127 * 127 ASCII pairs, plus U+0080..U+07FF (1920 code points).
  EXPECT_EQ(valid, 127 * 127 + 1920);
}

TEST(Utf8Test, AllThreeByteStringsStartingE0EdEfMatchTheReference) {
  // E0: the overlong boundary; ED: the surrogate boundary; EF: the top of the BMP.
  int failures = 0;
  for (const unsigned lead : {0xE0U, 0xEDU, 0xEFU}) {
    int valid = 0;
    for (unsigned b1 = 0; b1 < 256; ++b1) {
      for (unsigned b2 = 0; b2 < 256; ++b2) {
        const std::string s = {static_cast<char>(lead), static_cast<char>(b1),
                               static_cast<char>(b2)};
        const auto result = SameAsReference(s);
        if (!result && ++failures <= 10) {
          ADD_FAILURE() << result.message();
        }
        valid += CheckUtf8(s) == Utf8Check::kValid ? 1 : 0;
      }
    }
    // E0: A0-BF then 80-BF (U+0800..U+0FFF); ED: 80-9F then 80-BF (U+D000..U+D7FF); EF: 80-BF
    // twice (U+F000..U+FFFF).
    EXPECT_EQ(valid, lead == 0xEDU || lead == 0xE0U ? 32 * 64 : 64 * 64) << std::hex << lead;
  }
  EXPECT_EQ(failures, 0);
}

TEST(Utf8Test, FourByteStringsAroundTheBoundariesMatchTheReference) {
  // Every second byte after F0, F4 and the never-valid F5 and F8, with the last two bytes taken
  // from the edges of the continuation range and just outside it.
  constexpr unsigned kTails[] = {0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  int failures = 0;
  for (const unsigned lead : {0xF0U, 0xF1U, 0xF3U, 0xF4U, 0xF5U, 0xF8U}) {
    for (unsigned b1 = 0; b1 < 256; ++b1) {
      for (const unsigned b2 : kTails) {
        for (const unsigned b3 : kTails) {
          const std::string s = {static_cast<char>(lead), static_cast<char>(b1),
                                 static_cast<char>(b2), static_cast<char>(b3)};
          const auto result = SameAsReference(s);
          if (!result && ++failures <= 10) {
            ADD_FAILURE() << result.message();
          }
        }
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace tinymq::mqtt
