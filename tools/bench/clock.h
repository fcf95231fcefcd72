#pragma once

#include <time.h>

#include <cstdint>

// The one clock of tinymq-bench: CLOCK_MONOTONIC in nanoseconds, the time base of payload stamps.
// Publishers and subscribers run on the same machine, so their readings compare directly.
//
// Threading: Thread-safe.

namespace tinymq::bench {

inline constexpr std::int64_t kNsPerSecond = 1'000'000'000;

inline std::int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * kNsPerSecond + ts.tv_nsec;
}

}  // namespace tinymq::bench
