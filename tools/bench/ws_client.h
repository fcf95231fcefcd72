#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/net/websocket.h"

// The client side of MQTT over WebSocket (RFC 6455) for tinymq-bench, sans-I/O: the upgrade
// request and the check of its response, masked frames out, the server's frames in. The broker's
// net/websocket.h is the server side (its decoder requires masked frames); its frame header
// encoder, opcodes and decoder events are reused here.
//
// Threading: Owned by one worker thread; not thread-safe (the free functions are thread-safe).
// Lifetime:  nothing keeps a reference to the bytes passed in.
// Errors:    WsUpgradeResponse and WsClientDecoder report a refusal or a violation with one line
//            in error(); nothing throws (bad_alloc aside).

namespace tinymq::bench {

// Mask keys and Sec-WebSocket-Keys (SplitMix64). RFC 6455 §5.3 wants keys a proxy cannot
// predict; a load generator on loopback needs only a fresh key per frame, seeded per thread from
// std::random_device, and must not pay a system call per frame.
class WsRandom {
 public:
  explicit WsRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next();
  std::array<std::uint8_t, 4> MaskKey();

 private:
  std::uint64_t state_;
};

// Base64 with padding (RFC 4648 §4).
std::string Base64(std::span<const std::uint8_t> bytes);
// A Sec-WebSocket-Key: the base64 of 16 random bytes (RFC 6455 §4.1).
std::string NewWsKey(WsRandom& random);
// The upgrade request: GET `path` with Host `host`, subprotocol "mqtt".
// REQUIRES: `host` and `path` hold no CR, LF or space.
std::string WsUpgradeRequest(std::string_view host, std::string_view path, std::string_view key);

// WsUpgradeResponse: reads the server's response head incrementally and checks it: status line
// "HTTP/1.1 101 ...", Upgrade: websocket, Connection: upgrade (a token of the list),
// Sec-WebSocket-Accept equal to the expected value, and Sec-WebSocket-Protocol "mqtt" when
// present (§4.1: a subprotocol the client did not offer fails the connection; none is tolerated).
// No extension may be announced: none was offered.
class WsUpgradeResponse {
 public:
  static constexpr std::size_t kMaxHeadBytes = 16 * 1024;
  enum class Status : std::uint8_t { kNeedMore, kDone, kRefused };
  struct Result {
    Status status;
    std::size_t consumed;
  };

  explicit WsUpgradeResponse(std::string expected_accept)
      : expected_accept_(std::move(expected_accept)) {}

  // Consumes bytes of the head from `in`: all of them for kNeedMore; through the blank line that
  // ends the head for kDone (what follows is the server's first frames, which the caller keeps).
  // After kDone or kRefused it consumes nothing and repeats the status.
  Result Feed(std::span<const std::uint8_t> in);

  Status status() const { return status_; }
  // kRefused: why, one line (values from the response quoted and reduced to printable ASCII).
  const std::string& error() const { return error_; }

 private:
  void Check(std::string_view head);
  void Refuse(std::string error);

  std::string expected_accept_;
  std::string head_;
  Status status_ = Status::kNeedMore;
  std::string error_;
};

inline constexpr std::size_t kMaxWsClientHeader = net::kMaxWsHeader + 4;
// Pending output goes out as one frame, or several of at most this many payload bytes.
inline constexpr std::size_t kMaxWsFramePayload = 1024 * 1024;

// Writes the header of one masked frame with FIN set (header of net::EncodeWsHeader, mask bit
// and `key`) into `out`; returns its length (6, 8 or 14).
// REQUIRES: size < 2^63; size <= 125 for a control opcode.
std::size_t EncodeWsClientHeader(net::WsOpcode opcode, std::uint64_t size,
                                 std::array<std::uint8_t, 4> key,
                                 std::span<std::uint8_t, kMaxWsClientHeader> out);
// dst[i] = src[i] ^ key[i % 4] for i < n, 8 bytes at a time; dst may be src.
void MaskWsPayload(const std::uint8_t* src, std::uint8_t* dst, std::size_t n,
                   std::array<std::uint8_t, 4> key);
// Appends `payload` to `wire` as masked binary frames of at most `max_frame` payload bytes, each
// with a fresh key from `random`; nothing for an empty payload.
// REQUIRES: max_frame > 0.
void AppendWsData(std::span<const std::uint8_t> payload, WsRandom& random,
                  std::vector<std::uint8_t>& wire, std::size_t max_frame = kMaxWsFramePayload);
// Appends one masked control frame (ping, pong or close).
// REQUIRES: payload.size() <= 125.
void AppendWsControl(net::WsOpcode opcode, std::span<const std::uint8_t> payload, WsRandom& random,
                     std::vector<std::uint8_t>& wire);

// WsClientDecoder: the frames a server sends, as the byte stream of its binary messages' payload
// (MQTT packets, which may span frames, several to a frame) plus the control frames.
//
// Violations (kError, and the decoder stays failed): a masked frame (§5.1), RSV bits (no
// extension was negotiated), an opcode other than continuation, binary, close, ping, pong (a text
// frame too: MQTT 5.0 §6 allows binary only), a fragmented control frame or one over 125 bytes, a
// continuation without an open message or a new message inside one, a length not in its minimal
// encoding or with the 64-bit form's top bit set.
class WsClientDecoder {
 public:
  // Decodes frames from `in`; the payload of binary frames and their continuations goes to `out`,
  // as much as fits. Stops early at a complete control frame (kPing: answer with a pong carrying
  // control_payload(); kPong: nothing to do; kClose: close_code()), at a violation (kError:
  // error(); `produced` bytes before it are valid), or with `out` full (kNone and consumed <
  // in.size()). Partial headers and control payloads are kept inside: every byte consumed is done
  // with. `in` and `out` may be the same memory (decoding in place): output never overtakes input.
  // After kClose or kError it consumes nothing and returns the same event again.
  net::WsStep Decode(std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

  // kPing, kPong, kClose: the payload of that control frame.
  std::span<const std::uint8_t> control_payload() const { return {control_.data(), control_size_}; }
  // kClose: the close code, 1005 when the frame had none.
  std::uint16_t close_code() const { return close_code_; }
  // kError: why.
  const std::string& error() const { return error_; }

 private:
  enum class State : std::uint8_t { kHeader, kData, kControl, kClosed, kFailed };

  bool CheckStart();    // the first two header bytes are in; false on a violation
  bool StartPayload();  // the whole header is in; false on a violation
  net::WsEvent EndControl();
  bool Fail(std::string error);
  void NextFrame() {
    state_ = State::kHeader;
    header_size_ = 0;
    header_needed_ = 2;
  }

  State state_ = State::kHeader;
  std::uint8_t header_size_ = 0;
  std::uint8_t header_needed_ = 2;
  std::uint8_t control_size_ = 0;
  std::uint8_t control_needed_ = 0;
  bool message_open_ = false;  // a fragmented binary message awaits continuation frames
  std::array<std::uint8_t, net::kMaxWsHeader> header_{};
  std::array<std::uint8_t, net::kMaxWsControlPayload> control_{};
  std::uint64_t remaining_ = 0;  // payload bytes of the current data frame still to come
  std::uint16_t close_code_ = 0;
  std::string error_;
};

}  // namespace tinymq::bench
