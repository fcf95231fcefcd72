#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// MQTT over WebSocket (RFC 6455; MQTT 5.0 §6, 3.1.1 §6), server side and sans-I/O: the opening
// handshake, the frames a client sends, and the frames the server sends. Nothing here reads or
// writes a socket; the caller moves the bytes (through TLS or not) and keeps the buffers.

namespace tinymq::net {

// WebSocketHandshake: an incremental, strict parser of the client's HTTP/1.1 upgrade request
// (the request head: request line, header fields, empty line) that produces the response to send:
// "101 Switching Protocols", or an HTTP error after which the connection is to be closed.
//
// Strict: one request line "GET <origin-form> HTTP/1.1"; CRLF line ends only; header field names
// are tokens followed at once by ':'; no obsolete line folding and no control characters. Any
// other HTTP version is refused with 505. A request body is refused (Content-Length other than 0,
// or any Transfer-Encoding): the bytes after the head must be WebSocket frames. Unknown header
// fields, Origin and Sec-WebSocket-Extensions are ignored (no extension is ever negotiated).
//
// The checks, in order: the head's syntax and size as it arrives (400, 405, 505, 431, and a
// duplicate Host, Sec-WebSocket-Key or Sec-WebSocket-Version: 400); then, at the empty line, the
// Upgrade and Connection tokens (426: a plain GET gets told this is a WebSocket endpoint for
// MQTT), Host, Sec-WebSocket-Version (426 with "Sec-WebSocket-Version: 13"), Sec-WebSocket-Key
// (400 unless the canonical base64 of 16 bytes) and the subprotocol (400 when offered but not
// "mqtt" or "mqttv3.1").
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  keeps no reference to the bytes fed; response(), error(), path() and subprotocol()
//            live as long as the object.
// Errors:    kRefused, with the HTTP status in response() and one line in error(). Never throws
//            (bad_alloc aside).
class WebSocketHandshake {
 public:
  static constexpr std::size_t kMaxRequestBytes = 8192;  // the whole request head
  enum class Status : std::uint8_t { kNeedMore, kDone, kRefused };
  struct Result {
    Status status;
    std::size_t consumed;
  };

  // Consumes bytes of the request head from `input`; returns how many it took: all of them for
  // kNeedMore; through the "\r\n\r\n" that ends the head for kDone (bytes after it are the client's
  // first frames, which the caller keeps); through the byte that decided it for kRefused.
  // REQUIRES: no earlier call returned kDone or kRefused.
  Result Feed(std::span<const std::uint8_t> input);

  Status status() const { return status_; }
  // kDone: the "101 Switching Protocols" response to send. kRefused: the complete HTTP error
  // response to send (status line, Content-Type text/plain, Content-Length, Connection: close,
  // a one-line body saying why), after which the caller closes the connection.
  const std::string& response() const { return response_; }
  // kRefused: why, one line for the log (e.g. "Sec-WebSocket-Version '8' is not 13"). Values from
  // the request are quoted, shortened and reduced to printable ASCII.
  const std::string& error() const { return error_; }
  // kDone: the request-target (its query too, if any; no check of which path) and the chosen
  // subprotocol ("mqtt", "mqttv3.1" or empty when the client offered none).
  const std::string& path() const { return path_; }
  const std::string& subprotocol() const { return subprotocol_; }

 private:
  bool EndLine();  // false when refused
  bool ParseRequestLine(std::string_view line);
  bool ParseField(std::string_view line);
  void Finish();
  bool Refuse(int status, std::string error);

  Status status_ = Status::kNeedMore;
  std::size_t size_ = 0;      // bytes of the head consumed so far
  bool cr_ = false;           // the last byte consumed was CR
  bool request_line_ = true;  // the next line is the request line
  std::string line_;          // the current line, without its CRLF

  // What the header fields said.
  int hosts_ = 0;
  bool upgrade_websocket_ = false;
  bool connection_upgrade_ = false;
  bool has_version_ = false;
  bool has_key_ = false;
  bool has_protocol_ = false;
  bool offers_mqtt_ = false;
  bool offers_mqttv31_ = false;
  std::string version_;
  std::string key_;

  std::string path_;
  std::string subprotocol_;
  std::string response_;
  std::string error_;
};

// HTTP field helpers (RFC 9110), for the handshake on both sides: ASCII case-insensitive
// equality (field names, tokens); a field value without its optional whitespace (spaces and
// tabs) at either end; whether a comma-separated list holds `token` (case-insensitive).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string_view TrimOws(std::string_view s);
bool ListHasToken(std::string_view list, std::string_view token);

// `value` from a peer, for a log line or an error message: in single quotes, at most `max` bytes
// (then "..."), every byte outside printable ASCII shown as '?'.
std::string QuotePrintable(std::string_view value, std::size_t max);

// The Sec-WebSocket-Accept that answers a Sec-WebSocket-Key: base64(SHA-1(key + the RFC 6455
// GUID)) (§4.2.2); empty when OpenSSL fails. (Also what a client checks the answer against.)
std::string WebSocketAccept(std::string_view key);

// WebSocket close codes this layer produces (RFC 6455 §7.4.1).
inline constexpr std::uint16_t kWsCloseNormal = 1000;
inline constexpr std::uint16_t kWsCloseGoingAway = 1001;
inline constexpr std::uint16_t kWsCloseProtocolError = 1002;
inline constexpr std::uint16_t kWsCloseUnsupportedData = 1003;
inline constexpr std::uint16_t kWsCloseNoStatus = 1005;  // never sent: "the close had no code"
inline constexpr std::uint16_t kWsCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kWsCloseTooBig = 1009;

enum class WsEvent : std::uint8_t { kNone, kPing, kPong, kClose, kError };
struct WsStep {
  std::size_t consumed = 0;
  std::size_t produced = 0;
  WsEvent event = WsEvent::kNone;
};

// WebSocketDecoder: the frames a client sends, as a byte stream of the binary messages' payload
// (the MQTT packets, which may span frames and of which a frame may hold several) plus the control
// frames, checked strictly against RFC 6455 §5 and MQTT's "binary frames only" rule.
//
// Violations and their close codes: an unmasked frame, RSV bits set, an unknown opcode, a
// fragmented control frame or one over 125 bytes, a continuation without an open message or a new
// message inside one, a length not in its minimal encoding or with the 64-bit form's top bit set,
// a close frame with 1 byte or a code not valid to receive: 1002. A text frame: 1003 (MQTT 5.0 §6:
// "If any other type of data frame is received the recipient MUST close the Network Connection").
// A close reason that is not UTF-8: 1007. A data frame over max_frame_size or a message (sum of its
// fragments) over max_message_size: 1009, decided from the frame header, before its payload.
// The limits apply to data frames; control frames are bounded by 125 bytes.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  keeps no reference to `in` or `out`. control_payload() lives until the next Decode().
// Errors:    kError, with error_code() (1002, 1003, 1007 or 1009) and error(); the decoder is then
//            failed for good. Never throws, never allocates except for error().
class WebSocketDecoder {
 public:
  struct Limits {
    std::uint64_t max_frame_size;
    std::uint64_t max_message_size;
  };

  explicit WebSocketDecoder(Limits limits) : limits_(limits) {}

  // Decodes frames from `in`: the unmasked payload of binary data frames (and their continuation
  // frames) is written to `out`, as much as fits. Returns the input consumed, the bytes written to
  // `out`, and the event that stopped it, if any. It stops early at: a complete control frame
  // (kPing: its payload is control_payload(), to be sent back in a pong; kPong: nothing to do;
  // kClose: close_code(), 1005 when it had none; answer with a close frame and end), a violation
  // (kError: error_code() is the close code to send, error() one line for the log; `produced`
  // bytes before it are valid payload), or `out` full. kNone with consumed < in.size() means `out`
  // was full (produced == out.size()): call again with the rest. Partial frame headers and partial
  // control payloads are kept inside (at most 14 + 125 bytes), so every byte consumed is done with.
  //
  // `in` and `out` may be the same memory (decoding in place): output never overtakes input.
  // After kClose or kError the decoder is finished: further calls consume nothing and return the
  // same event again.
  WsStep Decode(std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

  // kPing, kPong, kClose: the unmasked payload of that control frame.
  std::span<const std::uint8_t> control_payload() const { return {control_.data(), control_size_}; }
  // kClose: the code, 1005 when the frame had none; its reason (UTF-8, maybe empty).
  std::uint16_t close_code() const { return close_code_; }
  std::string_view close_reason() const;
  // kError: the close code to send, and why.
  std::uint16_t error_code() const { return error_code_; }
  const std::string& error() const { return error_; }
  bool failed() const { return state_ == State::kFailed; }
  bool closed() const { return state_ == State::kClosed; }

 private:
  enum class State : std::uint8_t { kHeader, kData, kControl, kClosed, kFailed };

  // Checks the first two header bytes; false (failed) on a violation.
  bool CheckStart();
  // The header is complete: checks the length and starts the payload; false on a violation.
  bool StartPayload();
  // The control payload is complete: its event.
  WsEvent EndControl();
  bool Fail(std::uint16_t code, std::string error);
  void Unmask(const std::uint8_t* src, std::uint8_t* dst, std::size_t n);

  // Const after construction.
  Limits limits_;

  State state_ = State::kHeader;
  std::uint8_t opcode_ = 0;          // of the current frame
  std::uint8_t header_size_ = 0;     // bytes in header_
  std::uint8_t header_needed_ = 2;   // the header's full size, once its second byte is known
  std::uint8_t control_size_ = 0;    // bytes in control_
  std::uint8_t control_needed_ = 0;  // the control frame's payload size
  std::uint8_t mask_offset_ = 0;     // index into mask_ of the next payload byte
  bool message_open_ = false;        // a fragmented message awaits continuation frames
  std::array<std::uint8_t, 14> header_{};
  std::array<std::uint8_t, 4> mask_{};
  std::array<std::uint8_t, 125> control_{};
  std::uint64_t remaining_ = 0;     // payload bytes of the current data frame still to come
  std::uint64_t message_size_ = 0;  // payload bytes of the current message so far
  std::uint16_t close_code_ = 0;
  std::uint16_t error_code_ = 0;
  std::string error_;
};

// Frames to the client (RFC 6455 §5.2), always with FIN set; server frames are never masked.
//
// Threading: Thread-safe (pure functions).
// Lifetime:  the returned vectors own their bytes; nothing is kept.
// Errors:    none. A broken REQUIRES is a bug: TINYMQ_CHECK for EncodeWsControl, TINYMQ_DCHECK for
//            EncodeWsHeader (on the data path).
enum class WsOpcode : std::uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10
};
inline constexpr std::size_t kMaxWsHeader = 10;
inline constexpr std::size_t kMaxWsControlPayload = 125;

// Writes the header of one unmasked frame with FIN set, `opcode`, and a payload of `size` bytes
// into `out`; returns its length (2, 4 or 10).
// REQUIRES: size < 2^63; size <= 125 for a control opcode.
std::size_t EncodeWsHeader(WsOpcode opcode, std::uint64_t size,
                           std::span<std::uint8_t, kMaxWsHeader> out);
// A whole close frame: `code` (omitted, with the reason, when 1005 or 0), then `reason` cut to fit
// 125 bytes at a UTF-8 character boundary.
std::vector<std::uint8_t> EncodeWsClose(std::uint16_t code, std::string_view reason);
// A whole pong (or ping) frame carrying `payload`.
// REQUIRES: opcode is kPing or kPong; payload.size() <= 125.
std::vector<std::uint8_t> EncodeWsControl(WsOpcode opcode, std::span<const std::uint8_t> payload);

// True when `code` may arrive in a close frame (RFC 6455 §7.4: 1000-1003, 1007-1011, 3000-4999).
bool IsValidReceivedCloseCode(std::uint16_t code);
// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF).
bool IsValidUtf8(std::span<const std::uint8_t> text);

}  // namespace tinymq::net
