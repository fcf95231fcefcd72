#pragma once

#include <cstdint>
#include <optional>
#include <span>

// The stamp tinymq-bench writes at the start of every payload it publishes: who sent the message,
// its place in that publisher's sequence, and when it was sent, so that a subscriber can measure
// latency and detect loss, duplicates and reordering from the message alone.
//
// Layout (24 bytes, little-endian): magic "TMQB" (4) | publisher index (4) | sequence (8) |
// send time in CLOCK_MONOTONIC nanoseconds (8). The rest of the payload is filler.
//
// Threading: Thread-safe (pure functions).
// Errors:    ReadStamp returns nullopt for a payload shorter than a stamp or without the magic
//            (a message some other client published).

namespace tinymq::bench {

inline constexpr std::size_t kStampSize = 24;

struct Stamp {
  std::uint32_t publisher = 0;
  std::uint64_t sequence = 0;
  std::int64_t send_ns = 0;

  friend bool operator==(const Stamp&, const Stamp&) = default;
};

// REQUIRES: payload.size() >= kStampSize. Overwrites the first kStampSize bytes.
void WriteStamp(const Stamp& stamp, std::span<std::uint8_t> payload);

std::optional<Stamp> ReadStamp(std::span<const std::uint8_t> payload);

}  // namespace tinymq::bench
