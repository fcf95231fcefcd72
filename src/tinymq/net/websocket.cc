#include "tinymq/net/websocket.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "tinymq/mqtt/utf8.h"
#include "tinymq/util/check.h"

// The frames (websocket.h): WebSocketDecoder and the frames to the client. The opening handshake
// is in websocket_handshake.cc.

namespace tinymq::net {

// ---- WebSocketDecoder ------------------------------------------------------------------------

namespace {

constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kRsv = 0x70;
constexpr std::uint8_t kOpcodeBits = 0x0f;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7f;

bool IsControlOpcode(std::uint8_t opcode) { return (opcode & 0x08) != 0; }

}  // namespace

WsStep WebSocketDecoder::Decode(std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
  std::size_t i = 0;
  std::size_t o = 0;
  for (;;) {
    switch (state_) {
      case State::kClosed: return {i, o, WsEvent::kClose};
      case State::kFailed: return {i, o, WsEvent::kError};

      case State::kHeader: {
        if (i == in.size()) {
          return {i, o, WsEvent::kNone};
        }
        const std::size_t take =
            std::min<std::size_t>(header_needed_ - header_size_, in.size() - i);
        std::memcpy(header_.data() + header_size_, in.data() + i, take);
        i += take;
        header_size_ = static_cast<std::uint8_t>(header_size_ + take);
        if (header_size_ == 2 && header_needed_ == 2) {
          if (!CheckStart()) {
            return {i, o, WsEvent::kError};
          }
          // header_needed_ grew to the full header (at least 6: a mask key always follows).
          continue;
        }
        if (header_size_ < header_needed_) {
          continue;  // input used up
        }
        if (!StartPayload()) {
          return {i, o, WsEvent::kError};
        }
        if (state_ == State::kControl && control_needed_ == 0) {
          return {i, o, EndControl()};
        }
        break;
      }

      case State::kData: {
        const std::size_t room = out.size() - o;
        const std::size_t available = in.size() - i;
        if (available == 0 || room == 0) {
          return {i, o, WsEvent::kNone};
        }
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(remaining_, std::min(room, available)));
        Unmask(in.data() + i, out.data() + o, n);
        i += n;
        o += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = State::kHeader;
        }
        break;
      }

      case State::kControl: {
        if (i == in.size()) {
          return {i, o, WsEvent::kNone};
        }
        const std::size_t n = std::min<std::size_t>(control_needed_ - control_size_, in.size() - i);
        Unmask(in.data() + i, control_.data() + control_size_, n);
        i += n;
        control_size_ = static_cast<std::uint8_t>(control_size_ + n);
        if (control_size_ == control_needed_) {
          return {i, o, EndControl()};
        }
        break;
      }
    }
  }
}

bool WebSocketDecoder::CheckStart() {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  const std::uint8_t opcode = b0 & kOpcodeBits;
  const std::uint8_t length = b1 & kLengthBits;
  if ((b0 & kRsv) != 0) {  // §5.2: no extension was negotiated
    return Fail(kWsCloseProtocolError, "RSV bits set in a frame (no extension negotiated)");
  }
  switch (static_cast<WsOpcode>(opcode)) {
    case WsOpcode::kContinuation:
    case WsOpcode::kBinary:
    case WsOpcode::kClose:
    case WsOpcode::kPing:
    case WsOpcode::kPong: break;
    case WsOpcode::kText:
      // MQTT 5.0 §6 and 3.1.1 §6: "MQTT Control Packets MUST be sent in WebSocket binary data
      // frames. If any other type of data frame is received the recipient MUST close the Network
      // Connection".
      return Fail(kWsCloseUnsupportedData, "text frame (MQTT is carried in binary frames only)");
    default: return Fail(kWsCloseProtocolError, "unknown opcode " + std::to_string(opcode));
  }
  if ((b1 & kMaskBit) == 0) {  // §5.1: the server closes on an unmasked client frame
    return Fail(kWsCloseProtocolError, "unmasked frame from the client");
  }
  if (IsControlOpcode(opcode)) {
    if ((b0 & kFin) == 0) {  // §5.5
      return Fail(kWsCloseProtocolError, "fragmented control frame");
    }
    if (length > kMaxWsControlPayload) {
      return Fail(kWsCloseProtocolError, "control frame payload over 125 bytes");
    }
  } else if (opcode == 0 && !message_open_) {  // §5.4
    return Fail(kWsCloseProtocolError, "continuation frame without a message to continue");
  } else if (opcode != 0 && message_open_) {
    return Fail(kWsCloseProtocolError, "new data frame inside a fragmented message");
  }
  opcode_ = opcode;
  const std::uint8_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
  header_needed_ = static_cast<std::uint8_t>(2 + extended + 4);
  return true;
}

bool WebSocketDecoder::StartPayload() {
  const std::uint8_t length7 = header_[1] & kLengthBits;
  std::uint64_t length = length7;
  std::size_t key_at = 2;
  if (length7 == 126) {
    length = (std::uint64_t{header_[2]} << 8) | header_[3];
    key_at = 4;
    if (length < 126) {  // §5.2: "the minimal number of bytes MUST be used"
      return Fail(kWsCloseProtocolError, "frame length not in its minimal encoding");
    }
  } else if (length7 == 127) {
    length = 0;
    for (std::size_t k = 2; k < 10; ++k) {
      length = (length << 8) | header_[k];
    }
    key_at = 10;
    if ((length >> 63) != 0) {  // §5.2: "the most significant bit MUST be 0"
      return Fail(kWsCloseProtocolError, "frame length with its top bit set");
    }
    if (length <= 0xffff) {
      return Fail(kWsCloseProtocolError, "frame length not in its minimal encoding");
    }
  }
  std::memcpy(mask_.data(), header_.data() + key_at, 4);
  mask_offset_ = 0;
  header_size_ = 0;
  header_needed_ = 2;

  if (IsControlOpcode(opcode_)) {
    control_needed_ = static_cast<std::uint8_t>(length);
    control_size_ = 0;
    state_ = State::kControl;
    return true;
  }
  if (length > limits_.max_frame_size) {
    return Fail(kWsCloseTooBig, "frame of " + std::to_string(length) + " bytes over the limit of " +
                                    std::to_string(limits_.max_frame_size));
  }
  if (opcode_ != 0) {  // a new message (binary)
    message_size_ = 0;
  }
  if (length > limits_.max_message_size || message_size_ > limits_.max_message_size - length) {
    return Fail(kWsCloseTooBig,
                "message over the limit of " + std::to_string(limits_.max_message_size) + " bytes");
  }
  message_size_ += length;
  message_open_ = (header_[0] & kFin) == 0;
  remaining_ = length;
  state_ = length == 0 ? State::kHeader : State::kData;
  return true;
}

WsEvent WebSocketDecoder::EndControl() {
  state_ = State::kHeader;
  switch (static_cast<WsOpcode>(opcode_)) {
    case WsOpcode::kPing: return WsEvent::kPing;
    case WsOpcode::kPong: return WsEvent::kPong;
    default: break;
  }
  // A close frame (§5.5.1, §7.1.5, §7.4).
  if (control_size_ == 0) {
    close_code_ = kWsCloseNoStatus;
  } else if (control_size_ == 1) {
    Fail(kWsCloseProtocolError, "close frame with a 1-byte payload");
    return WsEvent::kError;
  } else {
    const auto code = static_cast<std::uint16_t>((control_[0] << 8) | control_[1]);
    if (!IsValidReceivedCloseCode(code)) {
      Fail(kWsCloseProtocolError, "close code " + std::to_string(code) + " is not valid");
      return WsEvent::kError;
    }
    if (!IsValidUtf8(control_payload().subspan(2))) {
      Fail(kWsCloseInvalidPayload, "close reason is not valid UTF-8");
      return WsEvent::kError;
    }
    close_code_ = code;
  }
  state_ = State::kClosed;
  return WsEvent::kClose;
}

std::string_view WebSocketDecoder::close_reason() const {
  if (opcode_ != static_cast<std::uint8_t>(WsOpcode::kClose) || control_size_ < 2) {
    return {};
  }
  return {reinterpret_cast<const char*>(control_.data()) + 2, control_size_ - 2u};
}

bool WebSocketDecoder::Fail(std::uint16_t code, std::string error) {
  error_code_ = code;
  error_ = std::move(error);
  state_ = State::kFailed;
  return false;
}

void WebSocketDecoder::Unmask(const std::uint8_t* src, std::uint8_t* dst, std::size_t n) {
  std::size_t k = mask_offset_;
  while (n > 0 && k != 0) {
    *dst++ = *src++ ^ mask_[k];
    k = (k + 1) & 3;
    --n;
  }
  // Key-aligned now: 8 bytes at a time with the key twice over. Loads and stores go through
  // memcpy (no alignment needed) and happen in this order, so dst <= src overlap is fine.
  if (n >= 8) {
    std::uint8_t key8[8];
    std::memcpy(key8, mask_.data(), 4);
    std::memcpy(key8 + 4, mask_.data(), 4);
    std::uint64_t key;
    std::memcpy(&key, key8, 8);
    for (; n >= 8; n -= 8, src += 8, dst += 8) {
      std::uint64_t word;
      std::memcpy(&word, src, 8);
      word ^= key;
      std::memcpy(dst, &word, 8);
    }
  }
  while (n > 0) {
    *dst++ = *src++ ^ mask_[k];
    k = (k + 1) & 3;
    --n;
  }
  mask_offset_ = static_cast<std::uint8_t>(k);
}

// ---- Frames to the client --------------------------------------------------------------------

std::size_t EncodeWsHeader(WsOpcode opcode, std::uint64_t size,
                           std::span<std::uint8_t, kMaxWsHeader> out) {
  TINYMQ_DCHECK((size >> 63) == 0);
  TINYMQ_DCHECK(!IsControlOpcode(static_cast<std::uint8_t>(opcode)) || size <= 125);
  out[0] = static_cast<std::uint8_t>(kFin | static_cast<std::uint8_t>(opcode));
  if (size < 126) {
    out[1] = static_cast<std::uint8_t>(size);
    return 2;
  }
  if (size <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(size >> 8);
    out[3] = static_cast<std::uint8_t>(size);
    return 4;
  }
  out[1] = 127;
  for (std::size_t k = 0; k < 8; ++k) {
    out[2 + k] = static_cast<std::uint8_t>(size >> (8 * (7 - k)));
  }
  return 10;
}

std::vector<std::uint8_t> EncodeWsClose(std::uint16_t code, std::string_view reason) {
  std::vector<std::uint8_t> frame;
  if (code == 0 || code == kWsCloseNoStatus) {  // §7.4.1: 1005 is never sent
    frame = {static_cast<std::uint8_t>(kFin | 8), 0};
    return frame;
  }
  std::size_t cut = std::min<std::size_t>(reason.size(), kMaxWsControlPayload - 2);
  // Back off to a character boundary: the byte at the cut must not be a continuation byte.
  while (cut > 0 && cut < reason.size() &&
         (static_cast<unsigned char>(reason[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  frame.reserve(4 + cut);
  frame.push_back(static_cast<std::uint8_t>(kFin | 8));
  frame.push_back(static_cast<std::uint8_t>(2 + cut));
  frame.push_back(static_cast<std::uint8_t>(code >> 8));
  frame.push_back(static_cast<std::uint8_t>(code));
  frame.insert(frame.end(), reason.begin(), reason.begin() + static_cast<std::ptrdiff_t>(cut));
  return frame;
}

std::vector<std::uint8_t> EncodeWsControl(WsOpcode opcode, std::span<const std::uint8_t> payload) {
  TINYMQ_CHECK(opcode == WsOpcode::kPing || opcode == WsOpcode::kPong);
  TINYMQ_CHECK(payload.size() <= kMaxWsControlPayload);
  std::vector<std::uint8_t> frame;
  frame.reserve(2 + payload.size());
  frame.push_back(static_cast<std::uint8_t>(kFin | static_cast<std::uint8_t>(opcode)));
  frame.push_back(static_cast<std::uint8_t>(payload.size()));
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

bool IsValidReceivedCloseCode(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

bool IsValidUtf8(std::span<const std::uint8_t> text) {
  // The codec's check; U+0000, which MQTT strings may not hold, is well-formed UTF-8.
  const std::string_view view(reinterpret_cast<const char*>(text.data()), text.size());
  return mqtt::CheckUtf8(view) != mqtt::Utf8Check::kIllFormed;
}

}  // namespace tinymq::net
