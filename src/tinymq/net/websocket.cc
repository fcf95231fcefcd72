#include "tinymq/net/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "tinymq/mqtt/utf8.h"
#include "tinymq/util/check.h"

// OpenSSL here is only SHA-1 and base64 for Sec-WebSocket-Accept (RFC 6455 §4.2.2); the header
// stays free of it, as tls.h does.

namespace tinymq::net {
namespace {

// RFC 6455 §1.3.
constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// RFC 9110 §5.6.2: tchar.
bool IsTchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A control character other than HTAB (RFC 9110 §5.5: field values hold VCHAR, SP, HTAB and
// obs-text only).
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls f(element) for each non-empty element of a comma-separated list (RFC 9110 §5.6.1: empty
// elements are ignored), trimmed.
template <typename F>
void ForEachListElement(std::string_view list, F f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = Trim(list.substr(0, comma));
    if (!element.empty()) {
      f(element);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

// A value from the request for the log and the error body (no byte from the client can split a
// log line or the response).
std::string Quote(std::string_view value) { return QuotePrintable(value, 40); }

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

// RFC 6455 §4.1: the key is the base64 of 16 random bytes: 22 characters and "==". The last
// character carries 2 bits of data, so its 4 low bits must be 0 (canonical form, RFC 4648 §3.5).
bool IsKey16(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") {
    return false;
  }
  for (std::size_t i = 0; i < 22; ++i) {
    if (Base64Value(key[i]) < 0) {
      return false;
    }
  }
  return (Base64Value(key[21]) & 0x0f) == 0;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
  }
}

}  // namespace

std::string QuotePrintable(std::string_view value, std::size_t max) {
  std::string q = "'";
  for (std::size_t i = 0; i < value.size() && i < max; ++i) {
    const auto u = static_cast<unsigned char>(value[i]);
    q.push_back(u >= 0x20 && u < 0x7f ? value[i] : '?');
  }
  if (value.size() > max) {
    q += "...";
  }
  q.push_back('\'');
  return q;
}

std::string WebSocketAccept(std::string_view key) {
  std::string input(key);
  input += kAcceptGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_size, EVP_sha1(), nullptr) != 1 ||
      digest_size != 20) {
    return {};
  }
  unsigned char encoded[29];  // 4 * ceil(20 / 3) + NUL
  const int n = EVP_EncodeBlock(encoded, digest, 20);
  if (n != 28) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(encoded), 28);
}

// ---- WebSocketHandshake ----------------------------------------------------------------------

WebSocketHandshake::Result WebSocketHandshake::Feed(std::span<const std::uint8_t> input) {
  TINYMQ_DCHECK(status_ == Status::kNeedMore);
  std::size_t i = 0;
  while (i < input.size() && status_ == Status::kNeedMore) {
    const char c = static_cast<char>(input[i++]);
    ++size_;
    if (cr_) {
      cr_ = false;
      if (c != '\n') {
        Refuse(400, "CR not followed by LF in the request head");
        break;
      }
      if (!EndLine() || status_ == Status::kDone) {
        break;
      }
    } else if (c == '\r') {
      cr_ = true;
    } else if (c == '\n') {
      Refuse(400, "bare LF without CR in the request head");
      break;
    } else {
      line_.push_back(c);
    }
    // Refused at once: a head that has not ended within the limit can only grow past it.
    if (status_ == Status::kNeedMore && size_ >= kMaxRequestBytes) {
      Refuse(431, "request head larger than " + std::to_string(kMaxRequestBytes) + " bytes");
    }
  }
  if (status_ != Status::kNeedMore) {
    line_ = std::string();
  }
  return {status_, i};
}

bool WebSocketHandshake::EndLine() {
  bool ok;
  if (request_line_) {
    request_line_ = false;
    ok = ParseRequestLine(line_);
  } else if (line_.empty()) {
    Finish();
    ok = status_ == Status::kDone;
  } else {
    ok = ParseField(line_);
  }
  line_.clear();  // keeps its capacity for the next line
  return ok;
}

bool WebSocketHandshake::ParseRequestLine(std::string_view line) {
  if (std::any_of(line.begin(), line.end(), IsControl)) {
    return Refuse(400, "control character in the request line");
  }
  // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) {
    return Refuse(400, "malformed request line " + Quote(line));
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  const bool version_syntax = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                              version[5] >= '0' && version[5] <= '9' && version[6] == '.' &&
                              version[7] >= '0' && version[7] <= '9';
  if (!std::all_of(method.begin(), method.end(), IsTchar) || !version_syntax) {
    return Refuse(400, "malformed request line " + Quote(line));
  }
  // RFC 6455 §4.1 needs HTTP/1.1 or later; later versions do not use this syntax. 505, not 400,
  // for a well-formed other version such as HTTP/1.0.
  if (version != "HTTP/1.1") {
    return Refuse(505, "HTTP version " + Quote(version) + " is not HTTP/1.1");
  }
  if (method != "GET") {  // methods are case-sensitive (RFC 9110 §9.1)
    return Refuse(405, "method " + Quote(method) + " is not GET");
  }
  // Origin-form (RFC 9112 §3.2.1): an absolute path and maybe a query, in visible ASCII.
  const auto visible = [](char c) { return c > 0x20 && c < 0x7f; };
  if (target.front() != '/' || !std::all_of(target.begin(), target.end(), visible)) {
    return Refuse(400, "request target " + Quote(target) + " is not a path");
  }
  path_ = target;
  return true;
}

bool WebSocketHandshake::ParseField(std::string_view line) {
  if (IsSpace(line.front())) {  // RFC 9112 §5.2: obs-fold is refused, not joined.
    return Refuse(400, "obsolete line folding in the header fields");
  }
  if (std::any_of(line.begin(), line.end(), IsControl)) {
    return Refuse(400, "control character in a header field");
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return Refuse(400, "header field without a colon: " + Quote(line));
  }
  if (colon == 0) {
    return Refuse(400, "header field with an empty name");
  }
  const std::string_view name = line.substr(0, colon);
  // RFC 9112 §5.1: no whitespace between the name and the colon (a request smuggling vector).
  if (IsSpace(name.back())) {
    return Refuse(400, "whitespace before the colon in header field " + Quote(name));
  }
  if (!std::all_of(name.begin(), name.end(), IsTchar)) {
    return Refuse(400, "bad character in header field name " + Quote(name));
  }
  const std::string_view value = Trim(line.substr(colon + 1));

  if (EqualsIgnoreCase(name, "Host")) {
    if (++hosts_ > 1) {
      return Refuse(400, "more than one Host header field");
    }
  } else if (EqualsIgnoreCase(name, "Upgrade")) {
    ForEachListElement(value, [this](std::string_view token) {
      upgrade_websocket_ = upgrade_websocket_ || EqualsIgnoreCase(token, "websocket");
    });
  } else if (EqualsIgnoreCase(name, "Connection")) {
    ForEachListElement(value, [this](std::string_view token) {
      connection_upgrade_ = connection_upgrade_ || EqualsIgnoreCase(token, "upgrade");
    });
  } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Version")) {
    if (has_version_) {  // RFC 6455 §11.3.5: not more than once in a request
      return Refuse(400, "more than one Sec-WebSocket-Version header field");
    }
    has_version_ = true;
    version_ = value;
  } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Key")) {
    if (has_key_) {  // RFC 6455 §11.3.1: not more than once in a request
      return Refuse(400, "more than one Sec-WebSocket-Key header field");
    }
    has_key_ = true;
    key_ = value;
  } else if (EqualsIgnoreCase(name, "Sec-WebSocket-Protocol")) {
    // May appear several times, each a list. Names are compared exactly (case-sensitive), as the
    // 101 must echo one of the client's own values.
    has_protocol_ = true;
    ForEachListElement(value, [this](std::string_view token) {
      offers_mqtt_ = offers_mqtt_ || token == "mqtt";
      offers_mqttv31_ = offers_mqttv31_ || token == "mqttv3.1";
    });
  } else if (EqualsIgnoreCase(name, "Content-Length")) {
    if (value != "0") {
      return Refuse(400, "a request body is not allowed (Content-Length " + Quote(value) + ")");
    }
  } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
    return Refuse(400, "a request body is not allowed (Transfer-Encoding)");
  }
  return true;
}

void WebSocketHandshake::Finish() {
  if (!upgrade_websocket_ || !connection_upgrade_) {
    Refuse(426,
           "not a WebSocket upgrade: this is a WebSocket endpoint for MQTT (a GET with "
           "Upgrade: websocket and Connection: Upgrade)");
    return;
  }
  if (hosts_ == 0) {
    Refuse(400, "no Host header field");
    return;
  }
  if (!has_version_) {
    Refuse(426, "no Sec-WebSocket-Version (must be 13)");
    return;
  }
  if (version_ != "13") {
    Refuse(426, "Sec-WebSocket-Version " + Quote(version_) + " is not 13");
    return;
  }
  if (!has_key_) {
    Refuse(400, "no Sec-WebSocket-Key header field");
    return;
  }
  if (!IsKey16(key_)) {
    Refuse(400, "Sec-WebSocket-Key " + Quote(key_) + " is not the base64 of 16 bytes");
    return;
  }
  // MQTT 5.0 §6 / 3.1.1 §6: the client offers "mqtt"; some 3.1 clients offer "mqttv3.1" only.
  // No header at all is accepted (lenient: some tools and test clients omit it), and the 101 then
  // names no subprotocol, which RFC 6455 §4.2.2 allows.
  if (offers_mqtt_) {
    subprotocol_ = "mqtt";
  } else if (offers_mqttv31_) {
    subprotocol_ = "mqttv3.1";
  } else if (has_protocol_) {
    Refuse(400, "no supported subprotocol (mqtt)");
    return;
  }
  const std::string accept = WebSocketAccept(key_);
  if (accept.empty()) {
    Refuse(500, "cannot compute Sec-WebSocket-Accept (OpenSSL SHA-1 failed)");
    return;
  }
  response_ =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept + "\r\n";
  if (!subprotocol_.empty()) {
    response_ += "Sec-WebSocket-Protocol: " + subprotocol_ + "\r\n";
  }
  response_ += "\r\n";
  key_.clear();
  key_.shrink_to_fit();
  version_.clear();
  version_.shrink_to_fit();
  status_ = Status::kDone;
}

bool WebSocketHandshake::Refuse(int status, std::string error) {
  error_ = std::move(error);
  const std::string body = error_ + "\n";
  response_ = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) + "\r\n";
  if (status == 405) {
    response_ += "Allow: GET\r\n";  // RFC 9110 §15.5.6: a 405 lists the methods allowed
  }
  if (status == 426) {  // RFC 9110 §15.5.22: a 426 names the protocol in Upgrade
    response_ += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  }
  response_ += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\n\r\n" + body;
  path_.clear();
  subprotocol_.clear();
  status_ = Status::kRefused;
  return false;
}

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
