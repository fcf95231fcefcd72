#include "tinymq/mqtt/wire.h"

#include "tinymq/mqtt/utf8.h"

namespace tinymq::mqtt {

VarintParse ParseVarint(std::span<const std::uint8_t> bytes) {
  using S = VarintParse::Status;
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i == bytes.size()) {
      return {S::kNeedMore};
    }
    const std::uint8_t b = bytes[i];
    value |= std::uint32_t{static_cast<std::uint8_t>(b & 0x7F)} << (7 * i);
    if ((b & 0x80) == 0) {
      // [MQTT-1.5.5-1]: the shortest form. A last byte of 0 after the first adds nothing.
      if (i > 0 && b == 0) {
        return {S::kNonMinimal};
      }
      return {S::kOk, value, i + 1};
    }
  }
  return {S::kMalformed};  // the fourth byte still had its continuation bit set
}

std::uint32_t Reader::Varint() {
  const VarintParse v = ParseVarint({p_, remaining()});
  switch (v.status) {
    case VarintParse::Status::kOk: p_ += v.size; return v.value;
    case VarintParse::Status::kNeedMore: Fail(DecodeError::kTruncated); break;
    case VarintParse::Status::kMalformed: Fail(DecodeError::kMalformedVarint); break;
    case VarintParse::Status::kNonMinimal: Fail(DecodeError::kNonMinimalVarint); break;
  }
  return 0;
}

std::string_view Reader::Utf8String() {
  const std::string_view s = Binary().AsString();
  switch (CheckUtf8(s)) {
    case Utf8Check::kValid: return s;
    case Utf8Check::kIllFormed: Fail(DecodeError::kInvalidUtf8); break;
    case Utf8Check::kNullCharacter: Fail(DecodeError::kUtf8NullCharacter); break;
  }
  return {};
}

}  // namespace tinymq::mqtt
