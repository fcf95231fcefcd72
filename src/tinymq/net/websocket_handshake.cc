#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "tinymq/net/websocket.h"
#include "tinymq/util/check.h"

// The opening handshake (websocket.h): WebSocketHandshake, Sec-WebSocket-Accept. The frames are
// in websocket.cc.
//
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

// Calls f(element) for each non-empty element of a comma-separated list (RFC 9110 §5.6.1: empty
// elements are ignored), trimmed.
template <typename F>
void ForEachListElement(std::string_view list, F f) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = TrimOws(list.substr(0, comma));
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

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool ListHasToken(std::string_view list, std::string_view token) {
  bool found = false;
  ForEachListElement(
      list, [&](std::string_view element) { found = found || EqualsIgnoreCase(element, token); });
  return found;
}

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
  const std::string_view value = TrimOws(line.substr(colon + 1));

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

}  // namespace tinymq::net
