#include "tools/bench/stamp.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

// The payload stamp: what is written is read back; the layout is fixed (little-endian, magic
// first); payloads that are too short or carry no magic are not ours.

namespace tinymq::bench {
namespace {

TEST(StampTest, RoundTripsAndLeavesTheFillerAlone) {
  std::vector<std::uint8_t> payload(64, 'x');
  const Stamp stamp{.publisher = 7, .sequence = 123'456'789'012ULL, .send_ns = 987'654'321'000LL};
  WriteStamp(stamp, payload);
  EXPECT_EQ(ReadStamp(payload), stamp);
  for (std::size_t i = kStampSize; i < payload.size(); ++i) {
    EXPECT_EQ(payload[i], 'x') << i;
  }
}

TEST(StampTest, ExtremeValuesRoundTrip) {
  std::vector<std::uint8_t> payload(kStampSize);
  const Stamp stamp{.publisher = std::numeric_limits<std::uint32_t>::max(),
                    .sequence = std::numeric_limits<std::uint64_t>::max(),
                    .send_ns = std::numeric_limits<std::int64_t>::max()};
  WriteStamp(stamp, payload);
  EXPECT_EQ(ReadStamp(payload), stamp);
}

TEST(StampTest, LayoutIsLittleEndianAfterTheMagic) {
  std::vector<std::uint8_t> payload(kStampSize);
  WriteStamp(
      Stamp{.publisher = 0x01020304, .sequence = 0x1112131415161718, .send_ns = 0x2122232425262728},
      payload);
  const std::vector<std::uint8_t> expected = {
      'T',  'M',  'Q',  'B',                            // magic
      0x04, 0x03, 0x02, 0x01,                           // publisher
      0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,   // sequence
      0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21};  // send time
  EXPECT_EQ(payload, expected);
}

TEST(StampTest, ForeignPayloadsAreRefused) {
  std::vector<std::uint8_t> payload(kStampSize);
  WriteStamp(Stamp{.publisher = 1, .sequence = 2, .send_ns = 3}, payload);
  EXPECT_FALSE(ReadStamp(std::span(payload).first(kStampSize - 1)));  // too short
  payload[0] = 'X';
  EXPECT_FALSE(ReadStamp(payload));  // no magic
  EXPECT_FALSE(ReadStamp({}));
}

}  // namespace
}  // namespace tinymq::bench
