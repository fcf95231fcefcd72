#pragma once

#include <cstdint>
#include <vector>

// The input format of the broker fuzz target, shared with its seed-corpus generator: a sequence
// of operations on up to kConnections client connections of one Broker.
//
//   op byte: bits 0-1 connection index, bits 2-4 kind (Op), then the operation's arguments:
//     kData:      length byte N, then N bytes the client sends
//     kPeerClose: -
//     kAdvance:   byte T: the clock moves T * 100 ms, then OnTimer
//     kDrain:     - : the client reads everything the broker wrote
//     kDrainSome: byte N: the client reads at most N bytes
//     kCommit:    - : the broker's writes so far go to its (memory) store and are reported durable
//     kRestart:   - : the broker dies (a crash: what was not committed is lost, every connection
//                 with it) and a new one restores from the store
//
// Threading: Thread-compatible (test code).

namespace tinymq::broker::fuzz {

inline constexpr unsigned kConnections = 4;

enum class Op : std::uint8_t {
  kData = 0,
  kPeerClose = 1,
  kAdvance = 2,
  kDrain = 3,
  kDrainSome = 4,
  kCommit = 5,
  kRestart = 6,
};

inline void AppendOp(std::vector<std::uint8_t>& out, unsigned connection, Op op) {
  out.push_back(static_cast<std::uint8_t>((connection & 3U) | (static_cast<unsigned>(op) << 2)));
}

// Appends `bytes` as kData operations of at most 255 bytes each.
inline void AppendData(std::vector<std::uint8_t>& out, unsigned connection,
                       const std::vector<std::uint8_t>& bytes) {
  for (std::size_t at = 0; at < bytes.size(); at += 255) {
    const std::size_t n = std::min<std::size_t>(255, bytes.size() - at);
    AppendOp(out, connection, Op::kData);
    out.push_back(static_cast<std::uint8_t>(n));
    out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at),
               bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
  }
}

}  // namespace tinymq::broker::fuzz
