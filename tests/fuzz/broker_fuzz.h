#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
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
//     kAccess:    byte S, then by S & 7 (AccessOp; other values do nothing):
//       kConfigure: byte F (Config bits): the access policy of the connections to come (SetAccess)
//                   and the limits; a change of limits restarts the broker as kRestart does
//       kAnswer:    byte A: answers the oldest unanswered password check (CredentialCheck) of this
//                   connection index, of any when A & kAnswerAny: ok when A & kAnswerOk, or what
//                   the password file says when A & kAnswerVerify. Unanswered checks stay (late
//                   answers, for connections gone meanwhile, or none at all).
//       kCertUser:  byte N: the connection's certificate username is kCertNames[N % size]
//                   (SetCertUsername; a connection not accepted yet is accepted with it)
//
// Without kAccess the broker has no access policy and the default limits of the harness, so
// inputs written before kAccess existed run as they did.
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
  kAccess = 7,
};

enum class AccessOp : std::uint8_t {
  kConfigure = 0,
  kAnswer = 1,
  kCertUser = 2,
  kSystem = 3,    // Broker::PublishSystem on one of a few $SYS topics
  kPeer = 4,      // Broker::SetPeer (a PROXY protocol header)
  kShutdown = 5,  // Broker::BeginShutdown, the connections drained and closed, then a restart
};

// kConfigure's flags. The policy uses a fixed password file (alice/secret, bob/hunter2,
// admin/root; 10 PBKDF2 iterations) and a fixed ACL with user, anonymous and %c/%u pattern rules.
namespace config {
inline constexpr std::uint8_t kPolicy = 1;          // an AccessPolicy (else none: anything goes)
inline constexpr std::uint8_t kAllowAnonymous = 2;  // AccessPolicy::allow_anonymous
inline constexpr std::uint8_t kSmallLimits = 4;     // small topic/subscription/retained caps, rate
inline constexpr std::uint8_t kNoDelay = 8;         // failure_delay 0 (else 700 ms)
inline constexpr std::uint8_t kNoPasswords = 16;    // no password file (usernames unchecked)
inline constexpr std::uint8_t kNoAcl = 32;          // no ACL
}  // namespace config

inline constexpr std::uint8_t kAnswerOk = 1;
inline constexpr std::uint8_t kAnswerVerify = 2;
inline constexpr std::uint8_t kAnswerAny = 4;

inline constexpr std::array<std::string_view, 6> kCertNames = {"alice", "bob", "admin",
                                                               "carol", "#",   "x/+"};

inline void AppendOp(std::vector<std::uint8_t>& out, unsigned connection, Op op) {
  out.push_back(static_cast<std::uint8_t>((connection & 3U) | (static_cast<unsigned>(op) << 2)));
}

// Appends a kAccess operation.
inline void AppendAccess(std::vector<std::uint8_t>& out, unsigned connection, AccessOp op,
                         std::uint8_t arg) {
  AppendOp(out, connection, Op::kAccess);
  out.push_back(static_cast<std::uint8_t>(op));
  out.push_back(arg);
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
