#include "tools/bench/ws_client.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace tinymq::bench {
namespace {

// RFC 6455 §1.3.
constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kRsvBits = 0x70;

// A value from the server for a message.
std::string Quote(std::string_view value) { return net::QuotePrintable(value, 60); }

bool IsControlOpcode(std::uint8_t opcode) { return opcode >= 8; }

}  // namespace

// WsRandom, base64, the request ---------------------------------------------------------------

std::uint64_t WsRandom::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::array<std::uint8_t, 4> WsRandom::MaskKey() {
  const std::uint64_t v = Next();
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}

std::string Base64(std::span<const std::uint8_t> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  s.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) |
                            std::uint32_t{bytes[i + 2]};
    s.push_back(kAlphabet[(v >> 18) & 63]);
    s.push_back(kAlphabet[(v >> 12) & 63]);
    s.push_back(kAlphabet[(v >> 6) & 63]);
    s.push_back(kAlphabet[v & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    const std::uint32_t v =
        (std::uint32_t{bytes[i]} << 16) | (rest == 2 ? std::uint32_t{bytes[i + 1]} << 8 : 0);
    s.push_back(kAlphabet[(v >> 18) & 63]);
    s.push_back(kAlphabet[(v >> 12) & 63]);
    s.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    s.push_back('=');
  }
  return s;
}

std::string NewWsKey(WsRandom& random) {
  std::array<std::uint8_t, 16> bytes{};
  for (std::size_t i = 0; i < bytes.size(); i += 8) {
    const std::uint64_t v = random.Next();
    std::memcpy(bytes.data() + i, &v, 8);
  }
  return Base64(bytes);
}

std::string WsUpgradeRequest(std::string_view host, std::string_view path, std::string_view key) {
  std::string r;
  r.reserve(200 + host.size() + path.size());
  r += "GET ";
  r += path;
  r += " HTTP/1.1\r\nHost: ";
  r += host;
  r += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  r += key;
  r += "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
  return r;
}

// The response ----------------------------------------------------------------------------------

WsUpgradeResponse::Result WsUpgradeResponse::Feed(std::span<const std::uint8_t> in) {
  if (status_ != Status::kNeedMore) {
    return {status_, 0};
  }
  // The blank line may straddle two reads: search from 3 bytes before the new ones.
  const std::size_t before = head_.size();
  const std::size_t take = std::min(in.size(), kMaxHeadBytes - before);
  head_.append(reinterpret_cast<const char*>(in.data()), take);
  const std::size_t end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
  if (end == std::string::npos) {
    if (head_.size() >= kMaxHeadBytes) {
      Refuse("the upgrade response head is over " + std::to_string(kMaxHeadBytes) + " bytes");
      return {status_, take};
    }
    return {status_, take};
  }
  const std::size_t consumed = end + 4 - before;
  head_.resize(end + 2);  // keep the last line's CRLF: every line ends with one
  Check(head_);
  if (status_ == Status::kNeedMore) {
    status_ = Status::kDone;
  }
  head_ = std::string();  // a connection holds it no longer than the handshake
  return {status_, consumed};
}

void WsUpgradeResponse::Refuse(std::string error) {
  status_ = Status::kRefused;
  error_ = std::move(error);
  head_ = std::string();
}

void WsUpgradeResponse::Check(std::string_view head) {
  std::size_t eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  // RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason]; RFC 6455 §4.1: anything but 101 fails.
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    Refuse("not an HTTP response: " + Quote(status_line));
    return;
  }
  if (status_line.substr(9, 3) != "101") {
    Refuse("HTTP status " + Quote(status_line.substr(9)) + " instead of 101");
    return;
  }
  bool upgrade = false;
  bool connection = false;
  bool accept_seen = false;
  head.remove_prefix(eol + 2);
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      Refuse("malformed header line " + Quote(line));
      return;
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = net::TrimOws(line.substr(colon + 1));
    if (net::EqualsIgnoreCase(name, "Upgrade")) {
      upgrade = net::EqualsIgnoreCase(value, "websocket");
    } else if (net::EqualsIgnoreCase(name, "Connection")) {
      connection = net::ListHasToken(value, "upgrade");
    } else if (net::EqualsIgnoreCase(name, "Sec-WebSocket-Accept")) {
      if (value != expected_accept_) {
        Refuse("Sec-WebSocket-Accept " + Quote(value) + " instead of " + Quote(expected_accept_));
        return;
      }
      accept_seen = true;
    } else if (net::EqualsIgnoreCase(name, "Sec-WebSocket-Protocol")) {
      if (value != "mqtt") {
        Refuse("Sec-WebSocket-Protocol " + Quote(value) + " instead of 'mqtt'");
        return;
      }
    } else if (net::EqualsIgnoreCase(name, "Sec-WebSocket-Extensions") && !value.empty()) {
      Refuse("Sec-WebSocket-Extensions " + Quote(value) + " though none was offered");
      return;
    }
  }
  if (!upgrade) {
    Refuse("101 response without 'Upgrade: websocket'");
  } else if (!connection) {
    Refuse("101 response without 'Connection: Upgrade'");
  } else if (!accept_seen) {
    Refuse("101 response without Sec-WebSocket-Accept");
  }
}

// Frames out ------------------------------------------------------------------------------------

std::size_t EncodeWsClientHeader(net::WsOpcode opcode, std::uint64_t size,
                                 std::array<std::uint8_t, 4> key,
                                 std::span<std::uint8_t, kMaxWsClientHeader> out) {
  const std::size_t n = net::EncodeWsHeader(opcode, size, out.first<net::kMaxWsHeader>());
  out[1] = static_cast<std::uint8_t>(out[1] | kMaskBit);
  std::memcpy(out.data() + n, key.data(), key.size());
  return n + key.size();
}

void MaskWsPayload(const std::uint8_t* src, std::uint8_t* dst, std::size_t n,
                   std::array<std::uint8_t, 4> key) {
  std::uint64_t key8 = 0;
  std::memcpy(&key8, key.data(), 4);
  std::memcpy(reinterpret_cast<std::uint8_t*>(&key8) + 4, key.data(), 4);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v = 0;
    std::memcpy(&v, src + i, 8);
    v ^= key8;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) {
    dst[i] = static_cast<std::uint8_t>(src[i] ^ key[i & 3]);
  }
}

namespace {

void AppendFrame(net::WsOpcode opcode, std::span<const std::uint8_t> payload,
                 std::array<std::uint8_t, 4> key, std::vector<std::uint8_t>& wire) {
  std::array<std::uint8_t, kMaxWsClientHeader> header{};
  const std::size_t h = EncodeWsClientHeader(opcode, payload.size(), key, header);
  const std::size_t at = wire.size();
  wire.resize(at + h + payload.size());
  std::memcpy(wire.data() + at, header.data(), h);
  MaskWsPayload(payload.data(), wire.data() + at + h, payload.size(), key);
}

}  // namespace

void AppendWsData(std::span<const std::uint8_t> payload, WsRandom& random,
                  std::vector<std::uint8_t>& wire, std::size_t max_frame) {
  while (!payload.empty()) {
    const std::size_t n = std::min(payload.size(), max_frame);
    AppendFrame(net::WsOpcode::kBinary, payload.first(n), random.MaskKey(), wire);
    payload = payload.subspan(n);
  }
}

void AppendWsControl(net::WsOpcode opcode, std::span<const std::uint8_t> payload, WsRandom& random,
                     std::vector<std::uint8_t>& wire) {
  AppendFrame(opcode, payload, random.MaskKey(), wire);
}

// Frames in -------------------------------------------------------------------------------------

bool WsClientDecoder::Fail(std::string error) {
  state_ = State::kFailed;
  error_ = std::move(error);
  return false;
}

bool WsClientDecoder::CheckStart() {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  const auto opcode = static_cast<std::uint8_t>(b0 & 0x0f);
  const bool fin = (b0 & kFin) != 0;
  const auto len7 = static_cast<std::uint8_t>(b1 & 0x7f);
  if ((b1 & kMaskBit) != 0) {
    return Fail("masked frame from the server (RFC 6455 §5.1)");
  }
  if ((b0 & kRsvBits) != 0) {
    return Fail("frame with RSV bits set, but no extension was negotiated");
  }
  switch (opcode) {
    case 0:
      if (!message_open_) {
        return Fail("continuation frame without a message to continue");
      }
      break;
    case 1: return Fail("text frame (MQTT over WebSocket uses binary frames only)");
    case 2:
      if (message_open_) {
        return Fail("new binary message inside a fragmented one");
      }
      break;
    case 8:
    case 9:
    case 10:
      if (!fin) {
        return Fail("fragmented control frame");
      }
      if (len7 > net::kMaxWsControlPayload) {
        return Fail("control frame over 125 bytes");
      }
      break;
    default: return Fail("unknown opcode " + std::to_string(opcode));
  }
  header_needed_ = len7 == 127 ? 10 : len7 == 126 ? 4 : 2;
  return true;
}

bool WsClientDecoder::StartPayload() {
  const auto opcode = static_cast<std::uint8_t>(header_[0] & 0x0f);
  std::uint64_t size = header_[1] & 0x7f;
  if (header_needed_ == 4) {
    size = (std::uint64_t{header_[2]} << 8) | header_[3];
    if (size < 126) {
      return Fail("16-bit length " + std::to_string(size) + " not in its minimal encoding");
    }
  } else if (header_needed_ == 10) {
    size = 0;
    for (std::size_t k = 2; k < 10; ++k) {
      size = (size << 8) | header_[k];
    }
    if ((size >> 63) != 0) {
      return Fail("64-bit length with its top bit set");
    }
    if (size <= 0xffff) {
      return Fail("64-bit length " + std::to_string(size) + " not in its minimal encoding");
    }
  }
  if (IsControlOpcode(opcode)) {
    state_ = State::kControl;
    control_size_ = 0;
    control_needed_ = static_cast<std::uint8_t>(size);
    return true;
  }
  message_open_ = (header_[0] & kFin) == 0;
  remaining_ = size;
  if (size == 0) {
    NextFrame();
  } else {
    state_ = State::kData;
  }
  return true;
}

net::WsEvent WsClientDecoder::EndControl() {
  const auto opcode = static_cast<std::uint8_t>(header_[0] & 0x0f);
  NextFrame();
  switch (opcode) {
    case 9: return net::WsEvent::kPing;
    case 10: return net::WsEvent::kPong;
    default: break;
  }
  close_code_ = control_size_ >= 2
                    ? static_cast<std::uint16_t>((std::uint16_t{control_[0]} << 8) | control_[1])
                    : net::kWsCloseNoStatus;
  state_ = State::kClosed;
  return net::WsEvent::kClose;
}

net::WsStep WsClientDecoder::Decode(std::span<const std::uint8_t> in, std::span<std::uint8_t> out) {
  net::WsStep step;
  while (true) {
    switch (state_) {
      case State::kClosed: step.event = net::WsEvent::kClose; return step;
      case State::kFailed: step.event = net::WsEvent::kError; return step;
      case State::kHeader: {
        if (step.consumed == in.size()) {
          return step;
        }
        header_[header_size_++] = in[step.consumed++];
        if (header_size_ == 2 && !CheckStart()) {
          break;  // kFailed: reported at the top
        }
        if (header_size_ == header_needed_ && StartPayload() && state_ == State::kControl &&
            control_needed_ == 0) {
          step.event = EndControl();
          return step;
        }
        break;
      }
      case State::kData: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(
            remaining_, std::min(in.size() - step.consumed, out.size() - step.produced)));
        if (n == 0) {
          return step;  // input used up, or `out` full
        }
        // memmove: decoding in place, the output trails the input.
        std::memmove(out.data() + step.produced, in.data() + step.consumed, n);
        step.consumed += n;
        step.produced += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          NextFrame();
        }
        break;
      }
      case State::kControl: {
        const std::size_t n =
            std::min<std::size_t>(control_needed_ - control_size_, in.size() - step.consumed);
        if (n == 0) {
          return step;  // input used up
        }
        std::memcpy(control_.data() + control_size_, in.data() + step.consumed, n);
        step.consumed += n;
        control_size_ = static_cast<std::uint8_t>(control_size_ + n);
        if (control_size_ == control_needed_) {
          step.event = EndControl();
        }
        return step;  // a control frame's end, or input used up
      }
    }
  }
}

}  // namespace tinymq::bench
