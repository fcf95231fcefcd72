#include "tools/bench/stamp.h"

#include "tinymq/util/check.h"

namespace tinymq::bench {
namespace {

constexpr std::uint32_t kMagic = 0x42514D54;  // "TMQB" read as a little-endian integer

template <typename T>
void Put(std::uint8_t* at, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    at[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i));
  }
}

template <typename T>
T Get(const std::uint8_t* at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    v |= std::uint64_t{at[i]} << (8 * i);
  }
  return static_cast<T>(v);
}

}  // namespace

void WriteStamp(const Stamp& stamp, std::span<std::uint8_t> payload) {
  TINYMQ_CHECK(payload.size() >= kStampSize);
  std::uint8_t* p = payload.data();
  Put(p, kMagic);
  Put(p + 4, stamp.publisher);
  Put(p + 8, stamp.sequence);
  Put(p + 16, static_cast<std::uint64_t>(stamp.send_ns));
}

std::optional<Stamp> ReadStamp(std::span<const std::uint8_t> payload) {
  if (payload.size() < kStampSize) {
    return std::nullopt;
  }
  const std::uint8_t* p = payload.data();
  if (Get<std::uint32_t>(p) != kMagic) {
    return std::nullopt;
  }
  Stamp s;
  s.publisher = Get<std::uint32_t>(p + 4);
  s.sequence = Get<std::uint64_t>(p + 8);
  s.send_ns = static_cast<std::int64_t>(Get<std::uint64_t>(p + 16));
  return s;
}

}  // namespace tinymq::bench
