#include "tinymq/net/websocket.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

// WebSocketHandshake, WebSocketDecoder and the frame encoders, byte for byte: the RFC 6455
// example, requests and frames in every split, each refusal and each violation with its code.

namespace tinymq::net {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Status = WebSocketHandshake::Status;

Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::span<const std::uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string_view AsText(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// ---- Handshake -------------------------------------------------------------------------------

// The example of RFC 6455 §1.3: the key, and the base64 of SHA-1(key + GUID) = b3 7a 4f 2c ... c4
// ea.
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// A valid upgrade request with `fields` (each "Name: value\r\n") after the usual ones.
std::string Request(std::string_view fields = "Sec-WebSocket-Protocol: mqtt\r\n",
                    std::string_view request_line = "GET /mqtt HTTP/1.1") {
  std::string r(request_line);
  r += "\r\nHost: broker.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  r += "Sec-WebSocket-Key: ";
  r += kKey;
  r += "\r\nSec-WebSocket-Version: 13\r\n";
  r += fields;
  r += "\r\n";
  return r;
}

// A request built from exactly these lines (each without its CRLF), ended by the empty line.
std::string RequestOf(std::initializer_list<std::string_view> lines) {
  std::string r;
  for (std::string_view line : lines) {
    r += line;
    r += "\r\n";
  }
  r += "\r\n";
  return r;
}

WebSocketHandshake::Result FeedAll(WebSocketHandshake& hs, std::string_view bytes) {
  return hs.Feed(AsSpan(bytes));
}

std::string StatusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

TEST(WebSocketHandshakeTest, Rfc6455ExampleKeyGivesTheExampleAccept) {
  WebSocketHandshake hs;
  const std::string request = Request();
  const auto r = FeedAll(hs, request);
  ASSERT_EQ(r.status, Status::kDone) << hs.error();
  EXPECT_EQ(r.consumed, request.size());
  EXPECT_EQ(hs.status(), Status::kDone);
  EXPECT_EQ(hs.response(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: " +
                std::string(kAccept) + "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n");
  EXPECT_EQ(hs.path(), "/mqtt");
  EXPECT_EQ(hs.subprotocol(), "mqtt");
  EXPECT_TRUE(hs.error().empty());
}

TEST(WebSocketHandshakeTest, WithoutSubprotocolHeaderIsAcceptedAndNamesNone) {
  WebSocketHandshake hs;
  ASSERT_EQ(FeedAll(hs, Request("")).status, Status::kDone) << hs.error();
  EXPECT_EQ(hs.subprotocol(), "");
  EXPECT_EQ(hs.response().find("Sec-WebSocket-Protocol"), std::string::npos);
  EXPECT_NE(hs.response().find("Sec-WebSocket-Accept: " + std::string(kAccept) + "\r\n\r\n"),
            std::string::npos);
}

TEST(WebSocketHandshakeTest, ChoosesMqttOverMqttv31AcrossSeveralFieldsAndLists) {
  struct Case {
    std::string_view fields;
    std::string_view chosen;
  };
  const Case cases[] = {
      {"Sec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"},
      {"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", "mqtt"},
      {"Sec-WebSocket-Protocol: foo,,bar\r\nSec-WebSocket-Protocol:  mqtt \r\n", "mqtt"},
      {"Sec-WebSocket-Protocol: foo\r\nsec-websocket-protocol: x, mqttv3.1\r\n", "mqttv3.1"},
  };
  for (const Case& c : cases) {
    WebSocketHandshake hs;
    ASSERT_EQ(FeedAll(hs, Request(c.fields)).status, Status::kDone) << c.fields << hs.error();
    EXPECT_EQ(hs.subprotocol(), c.chosen) << c.fields;
    EXPECT_NE(hs.response().find("\r\nSec-WebSocket-Protocol: " + std::string(c.chosen) + "\r\n"),
              std::string::npos)
        << c.fields;
  }
}

TEST(WebSocketHandshakeTest, OneByteAtATime) {
  const std::string request = Request();
  WebSocketHandshake hs;
  for (std::size_t i = 0; i + 1 < request.size(); ++i) {
    const auto r = hs.Feed(AsSpan(request).subspan(i, 1));
    ASSERT_EQ(r.status, Status::kNeedMore) << "byte " << i << ": " << hs.error();
    ASSERT_EQ(r.consumed, 1u);
  }
  const auto last = hs.Feed(AsSpan(request).subspan(request.size() - 1));
  ASSERT_EQ(last.status, Status::kDone) << hs.error();
  EXPECT_EQ(last.consumed, 1u);
  EXPECT_NE(hs.response().find(kAccept), std::string::npos);
}

TEST(WebSocketHandshakeTest, BytesAfterTheHeadAreNotConsumed) {
  const std::string request = Request();
  const std::string frames = "\x82\x80\x01\x02\x03\x04\r\n\r\nGET";
  WebSocketHandshake hs;
  const auto r = FeedAll(hs, request + frames);
  ASSERT_EQ(r.status, Status::kDone) << hs.error();
  EXPECT_EQ(r.consumed, request.size());

  // Split inside the terminating CRLFCRLF: the second piece is taken only up to the head's end.
  WebSocketHandshake split;
  const std::string all = request + frames;
  const std::size_t cut = request.size() - 3;
  ASSERT_EQ(split.Feed(AsSpan(all).subspan(0, cut)).status, Status::kNeedMore);
  const auto second = split.Feed(AsSpan(all).subspan(cut));
  ASSERT_EQ(second.status, Status::kDone) << split.error();
  EXPECT_EQ(second.consumed, 3u);
}

TEST(WebSocketHandshakeTest, NamesAreCaseInsensitiveAndValuesTrimmed) {
  WebSocketHandshake hs;
  const std::string request = RequestOf({
      "GET /a/b?c=d HTTP/1.1",
      "hOsT: \t x:1883 \t",
      "UPGRADE:\tWebSocket ",
      "connection: keep-alive, Upgrade",
      "sec-websocket-key:   " + std::string(kKey) + "  ",
      "SEC-WEBSOCKET-VERSION:13",
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
      "Origin: http://example.com",
      "Content-Length: 0",
  });
  ASSERT_EQ(FeedAll(hs, request).status, Status::kDone) << hs.error();
  EXPECT_EQ(hs.path(), "/a/b?c=d");
  EXPECT_NE(hs.response().find(kAccept), std::string::npos);
  // No extension is negotiated.
  EXPECT_EQ(hs.response().find("Extensions"), std::string::npos);
}

struct Refusal {
  std::string name;
  std::string request;
  std::string_view status_line;
  std::string_view error_part;
};

std::vector<Refusal> Refusals() {
  const std::string key = "Sec-WebSocket-Key: " + std::string(kKey);
  return {
      {"post", Request("", "POST /mqtt HTTP/1.1"), "HTTP/1.1 405 Method Not Allowed",
       "method 'POST' is not GET"},
      {"lowercase_get", Request("", "get /mqtt HTTP/1.1"), "HTTP/1.1 405 Method Not Allowed",
       "is not GET"},
      {"http10", Request("", "GET /mqtt HTTP/1.0"), "HTTP/1.1 505 HTTP Version Not Supported",
       "'HTTP/1.0' is not HTTP/1.1"},
      {"http2", Request("", "GET /mqtt HTTP/2.0"), "HTTP/1.1 505 HTTP Version Not Supported",
       "is not HTTP/1.1"},
      {"bad_version", Request("", "GET /mqtt HTTP/1.1x"), "HTTP/1.1 400 Bad Request",
       "malformed request line"},
      {"lowercase_http", Request("", "GET /mqtt http/1.1"), "HTTP/1.1 400 Bad Request",
       "malformed request line"},
      {"double_space", Request("", "GET  /mqtt HTTP/1.1"), "HTTP/1.1 400 Bad Request",
       "malformed request line"},
      {"no_version", Request("", "GET /mqtt"), "HTTP/1.1 400 Bad Request",
       "malformed request line"},
      {"asterisk", Request("", "GET * HTTP/1.1"), "HTTP/1.1 400 Bad Request", "is not a path"},
      {"absolute_form", Request("", "GET http://x/mqtt HTTP/1.1"), "HTTP/1.1 400 Bad Request",
       "is not a path"},
      {"non_ascii_path", Request("", "GET /\xc3\xa9 HTTP/1.1"), "HTTP/1.1 400 Bad Request",
       "is not a path"},
      {"empty_first_line", "\r\n" + Request(), "HTTP/1.1 400 Bad Request",
       "malformed request line"},
      {"obs_fold", Request("X-A: b\r\n c\r\n"), "HTTP/1.1 400 Bad Request",
       "obsolete line folding"},
      {"bare_lf_in_field", Request("X-A: b\nX-B: c\r\n"), "HTTP/1.1 400 Bad Request", "bare LF"},
      {"bare_lf_request_line", "GET /mqtt HTTP/1.1\n", "HTTP/1.1 400 Bad Request", "bare LF"},
      {"bare_lf_end", Request("X-A: b\r\n\n"), "HTTP/1.1 400 Bad Request", "bare LF"},
      {"bare_cr", Request("X-A: b\rc\r\n"), "HTTP/1.1 400 Bad Request", "CR not followed by LF"},
      {"nul_in_value", Request(std::string("X-A: b\0c\r\n", 10)), "HTTP/1.1 400 Bad Request",
       "control character"},
      {"del_in_value", Request("X-A: b\x7f\r\n"), "HTTP/1.1 400 Bad Request", "control character"},
      {"control_in_request_line", Request("", "GET /m\x01 HTTP/1.1"), "HTTP/1.1 400 Bad Request",
       "control character"},
      {"missing_colon", Request("X-A b\r\n"), "HTTP/1.1 400 Bad Request", "without a colon"},
      {"empty_name", Request(": b\r\n"), "HTTP/1.1 400 Bad Request", "empty name"},
      {"space_before_colon", Request("Host : x\r\n"), "HTTP/1.1 400 Bad Request",
       "whitespace before the colon"},
      {"tab_before_colon", Request("X-A\t: x\r\n"), "HTTP/1.1 400 Bad Request",
       "whitespace before the colon"},
      {"bad_name_char", Request("X(A): x\r\n"), "HTTP/1.1 400 Bad Request", "bad character"},
      {"no_host",
       RequestOf({"GET / HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade", key,
                  "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "no Host"},
      {"two_hosts", Request("Host: other\r\n"), "HTTP/1.1 400 Bad Request", "more than one Host"},
      {"plain_get", RequestOf({"GET / HTTP/1.1", "Host: x"}), "HTTP/1.1 426 Upgrade Required",
       "WebSocket endpoint for MQTT"},
      {"upgrade_h2c",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: h2c", "Connection: Upgrade", key,
                  "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 426 Upgrade Required", "WebSocket endpoint for MQTT"},
      {"no_connection_upgrade",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: keep-alive", key,
                  "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 426 Upgrade Required", "WebSocket endpoint for MQTT"},
      {"version_8",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade", key,
                  "Sec-WebSocket-Version: 8"}),
       "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version '8' is not 13"},
      {"version_list",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade", key,
                  "Sec-WebSocket-Version: 13, 8"}),
       "HTTP/1.1 426 Upgrade Required", "is not 13"},
      {"no_version",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade", key}),
       "HTTP/1.1 426 Upgrade Required", "no Sec-WebSocket-Version"},
      {"two_versions", Request("Sec-WebSocket-Version: 13\r\n"), "HTTP/1.1 400 Bad Request",
       "more than one Sec-WebSocket-Version"},
      {"no_key",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "no Sec-WebSocket-Key"},
      {"two_keys", Request("Sec-WebSocket-Key: " + std::string(kKey) + "\r\n"),
       "HTTP/1.1 400 Bad Request", "more than one Sec-WebSocket-Key"},
      {"key_15_bytes",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA", "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "is not the base64 of 16 bytes"},
      {"key_17_bytes",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=", "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "is not the base64 of 16 bytes"},
      {"key_not_base64",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==", "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "is not the base64 of 16 bytes"},
      {"key_not_canonical",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "is not the base64 of 16 bytes"},
      {"empty_key",
       RequestOf({"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key:", "Sec-WebSocket-Version: 13"}),
       "HTTP/1.1 400 Bad Request", "is not the base64 of 16 bytes"},
      {"no_mqtt_subprotocol", Request("Sec-WebSocket-Protocol: chat, MQTT\r\n"),
       "HTTP/1.1 400 Bad Request", "no supported subprotocol (mqtt)"},
      {"empty_subprotocol", Request("Sec-WebSocket-Protocol:\r\n"), "HTTP/1.1 400 Bad Request",
       "no supported subprotocol (mqtt)"},
      {"body", Request("Content-Length: 5\r\n"), "HTTP/1.1 400 Bad Request",
       "request body is not allowed"},
      {"chunked", Request("Transfer-Encoding: chunked\r\n"), "HTTP/1.1 400 Bad Request",
       "request body is not allowed"},
  };
}

TEST(WebSocketHandshakeTest, EachRuleRefusesWithItsStatus) {
  for (const Refusal& c : Refusals()) {
    SCOPED_TRACE(c.name);
    WebSocketHandshake hs;
    const auto r = FeedAll(hs, c.request);
    ASSERT_EQ(r.status, Status::kRefused);
    EXPECT_LE(r.consumed, c.request.size());
    EXPECT_EQ(StatusLine(hs.response()), c.status_line);
    EXPECT_NE(hs.error().find(c.error_part), std::string::npos) << hs.error();
    EXPECT_EQ(hs.error().find_first_of("\r\n"), std::string::npos);
    EXPECT_TRUE(hs.path().empty());
    EXPECT_TRUE(hs.subprotocol().empty());

    // The same request a byte at a time is refused identically.
    WebSocketHandshake slow;
    std::size_t fed = 0;
    while (slow.status() == Status::kNeedMore && fed < c.request.size()) {
      const auto step = slow.Feed(AsSpan(c.request).subspan(fed, 1));
      ASSERT_LE(step.consumed, 1u);
      fed += step.consumed;
    }
    EXPECT_EQ(slow.status(), Status::kRefused);
    EXPECT_EQ(fed, r.consumed);
    EXPECT_EQ(slow.response(), hs.response());
  }
}

TEST(WebSocketHandshakeTest, RefusalResponseIsCompleteHttp) {
  for (const Refusal& c : Refusals()) {
    SCOPED_TRACE(c.name);
    WebSocketHandshake hs;
    ASSERT_EQ(FeedAll(hs, c.request).status, Status::kRefused);
    const std::string& response = hs.response();
    const std::size_t end = response.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos);
    const std::string head = response.substr(0, end + 2);
    const std::string body = response.substr(end + 4);
    EXPECT_EQ(body, hs.error() + "\n");
    EXPECT_NE(head.find("\r\nContent-Type: text/plain\r\n"), std::string::npos);
    EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
              std::string::npos);
    EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos);
    const bool is405 = c.status_line.find(" 405 ") != std::string_view::npos;
    const bool is426 = c.status_line.find(" 426 ") != std::string_view::npos;
    EXPECT_EQ(head.find("\r\nAllow: GET\r\n") != std::string::npos, is405);
    EXPECT_EQ(head.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos, is426);
    EXPECT_EQ(head.find("\r\nUpgrade: websocket\r\n") != std::string::npos, is426);
  }
}

TEST(WebSocketHandshakeTest, RefusalStopsConsumingAtTheBadLine) {
  const std::string request = Request("", "POST /mqtt HTTP/1.1");
  WebSocketHandshake hs;
  const auto r = FeedAll(hs, request);
  ASSERT_EQ(r.status, Status::kRefused);
  EXPECT_EQ(r.consumed, std::string_view("POST /mqtt HTTP/1.1\r\n").size());

  WebSocketHandshake bare;
  const auto b = FeedAll(bare, "GET / HTTP/1.1\nHost: x\r\n");
  ASSERT_EQ(b.status, Status::kRefused);
  EXPECT_EQ(b.consumed, std::string_view("GET / HTTP/1.1\n").size());
}

TEST(WebSocketHandshakeTest, RequestValuesInTheErrorArePrintableAndShort) {
  WebSocketHandshake hs;
  const std::string version(200, 'x');
  const std::string request = RequestOf(
      {"GET / HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
       "Sec-WebSocket-Key: " + std::string(kKey), "Sec-WebSocket-Version: 1\xff" + version});
  ASSERT_EQ(FeedAll(hs, request).status, Status::kRefused);
  EXPECT_EQ(hs.error(), "Sec-WebSocket-Version '1?" + std::string(38, 'x') + "...' is not 13");
}

// A request padded by an X-Pad field to exactly `size` bytes.
std::string RequestOfSize(std::size_t size) {
  const std::size_t base = Request("X-Pad: \r\n").size();
  return Request("X-Pad: " + std::string(size - base, 'p') + "\r\n");
}

TEST(WebSocketHandshakeTest, HeadOfExactlyTheLimitIsAccepted) {
  const std::string request = RequestOfSize(WebSocketHandshake::kMaxRequestBytes);
  ASSERT_EQ(request.size(), WebSocketHandshake::kMaxRequestBytes);
  WebSocketHandshake hs;
  const auto r = FeedAll(hs, request + "\x88\x80");
  EXPECT_EQ(r.status, Status::kDone) << hs.error();
  EXPECT_EQ(r.consumed, request.size());
}

TEST(WebSocketHandshakeTest, HeadOverTheLimitIsRefusedAsSoonAsItPassesIt) {
  const std::string request = RequestOfSize(WebSocketHandshake::kMaxRequestBytes + 1);
  WebSocketHandshake hs;
  const auto r = FeedAll(hs, request);
  ASSERT_EQ(r.status, Status::kRefused);
  EXPECT_EQ(r.consumed, WebSocketHandshake::kMaxRequestBytes);
  EXPECT_EQ(StatusLine(hs.response()), "HTTP/1.1 431 Request Header Fields Too Large");

  // Without waiting for the end of the head: a field line that never ends.
  WebSocketHandshake endless;
  const std::string start = "GET / HTTP/1.1\r\nX-Long: ";
  ASSERT_EQ(FeedAll(endless, start).status, Status::kNeedMore);
  const std::string filler(WebSocketHandshake::kMaxRequestBytes, 'a');
  const auto e = FeedAll(endless, filler);
  ASSERT_EQ(e.status, Status::kRefused);
  EXPECT_EQ(start.size() + e.consumed, WebSocketHandshake::kMaxRequestBytes);
  EXPECT_EQ(StatusLine(endless.response()), "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST(WebSocketHandshakeTest, IncompleteHeadNeedsMore) {
  WebSocketHandshake hs;
  const std::string request = Request();
  const auto r = FeedAll(hs, std::string_view(request).substr(0, request.size() - 1));
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.consumed, request.size() - 1);
  EXPECT_TRUE(hs.response().empty());
  const auto none = hs.Feed({});
  EXPECT_EQ(none.status, Status::kNeedMore);
  EXPECT_EQ(none.consumed, 0u);
}

// ---- Decoder ---------------------------------------------------------------------------------

constexpr std::array<std::uint8_t, 4> kMask = {0x37, 0xfa, 0x21, 0x3d};

enum class LengthForm { kMinimal, k16, k64 };

// A client frame: first byte `b0` (FIN, RSV, opcode), `payload` masked with `mask`.
Bytes Frame(std::uint8_t b0, std::span<const std::uint8_t> payload, bool masked = true,
            LengthForm form = LengthForm::kMinimal, std::array<std::uint8_t, 4> mask = kMask) {
  Bytes f{b0};
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  const std::uint64_t n = payload.size();
  if (form == LengthForm::kMinimal && n < 126) {
    f.push_back(static_cast<std::uint8_t>(mask_bit | n));
  } else if (form == LengthForm::k16 || (form == LengthForm::kMinimal && n <= 0xffff)) {
    f.push_back(mask_bit | 126);
    f.push_back(static_cast<std::uint8_t>(n >> 8));
    f.push_back(static_cast<std::uint8_t>(n));
  } else {
    f.push_back(mask_bit | 127);
    for (int k = 7; k >= 0; --k) {
      f.push_back(static_cast<std::uint8_t>(n >> (8 * k)));
    }
  }
  if (masked) {
    f.insert(f.end(), mask.begin(), mask.end());
  }
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(masked ? static_cast<std::uint8_t>(payload[i] ^ mask[i % 4]) : payload[i]);
  }
  return f;
}

Bytes Frame(std::uint8_t b0, std::string_view payload, bool masked = true) {
  return Frame(b0, AsSpan(payload), masked);
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& p : parts) {
    all.insert(all.end(), p.begin(), p.end());
  }
  return all;
}

Bytes Pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  }
  return b;
}

constexpr WebSocketDecoder::Limits kLimits = {1 << 20, 1 << 22};

struct Seen {
  WsEvent event;
  Bytes payload;  // control payload
};

struct Decoded {
  Bytes data;
  std::vector<Seen> events;
  std::size_t consumed = 0;
};

// Feeds `in` in pieces of `piece` bytes with an output buffer of `out_size`, until the input is
// used up or a kClose/kError; checks the step invariants on the way.
Decoded DecodeAll(WebSocketDecoder& d, std::span<const std::uint8_t> in, std::size_t piece,
                  std::size_t out_size = 1 << 20) {
  Decoded r;
  Bytes out(out_size);
  std::size_t fed = 0;
  while (fed < in.size()) {
    const std::size_t end = std::min(in.size(), fed + piece);
    while (r.consumed < end) {
      const auto chunk = in.subspan(r.consumed, end - r.consumed);
      const WsStep s = d.Decode(chunk, out);
      EXPECT_LE(s.consumed, chunk.size());
      EXPECT_LE(s.produced, out.size());
      r.consumed += s.consumed;
      r.data.insert(r.data.end(), out.begin(),
                    out.begin() + static_cast<std::ptrdiff_t>(s.produced));
      if (s.event != WsEvent::kNone) {
        const auto p = d.control_payload();
        r.events.push_back({s.event, Bytes(p.begin(), p.end())});
        if (s.event == WsEvent::kClose || s.event == WsEvent::kError) {
          return r;
        }
      } else if (s.consumed < chunk.size()) {
        EXPECT_EQ(s.produced, out.size()) << "stopped early without a full output";
        if (s.produced == 0) {
          ADD_FAILURE() << "no progress";
          return r;
        }
      }
    }
    fed = end;
  }
  return r;
}

Decoded DecodeAll(std::span<const std::uint8_t> in, std::size_t piece = 1 << 30,
                  std::size_t out_size = 1 << 20, WebSocketDecoder::Limits limits = kLimits) {
  WebSocketDecoder d(limits);
  return DecodeAll(d, in, piece, out_size);
}

// Both live inside a connection, which moves between containers and workers.
static_assert(std::is_nothrow_move_constructible_v<WebSocketDecoder> &&
              std::is_move_assignable_v<WebSocketDecoder>);
static_assert(std::is_nothrow_move_constructible_v<WebSocketHandshake> &&
              std::is_move_assignable_v<WebSocketHandshake>);

TEST(WebSocketDecoderTest, MaskedBinaryFrameSplitAtEveryBoundary) {
  const Bytes payload = Pattern(37);  // long enough for the word-at-a-time path, and odd
  const Bytes frame = Frame(0x82, payload);
  for (std::size_t a = 0; a <= frame.size(); ++a) {
    for (std::size_t b = a; b <= frame.size(); ++b) {
      WebSocketDecoder d(kLimits);
      Bytes got;
      std::array<std::uint8_t, 64> out{};
      const std::span<const std::uint8_t> all(frame);
      for (const auto piece : {all.subspan(0, a), all.subspan(a, b - a), all.subspan(b)}) {
        const WsStep s = d.Decode(piece, out);
        ASSERT_EQ(s.event, WsEvent::kNone);
        ASSERT_EQ(s.consumed, piece.size());
        got.insert(got.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(s.produced));
      }
      ASSERT_EQ(got, payload) << "split at " << a << " and " << b;
    }
  }
}

TEST(WebSocketDecoderTest, SixteenAndSixtyFourBitLengths) {
  for (const std::size_t n : {126u, 300u, 65535u, 65536u, 70001u}) {
    const Bytes payload = Pattern(n);
    const Bytes frame = Frame(0x82, payload);
    EXPECT_EQ(frame.size(), n + (n <= 0xffff ? 8u : 14u));
    for (const std::size_t piece : {std::size_t{1} << 30, std::size_t{4093}, std::size_t{3}}) {
      const Decoded r = DecodeAll(frame, piece);
      EXPECT_TRUE(r.events.empty());
      EXPECT_EQ(r.consumed, frame.size());
      EXPECT_EQ(r.data, payload) << n << " bytes in pieces of " << piece;
    }
  }
}

TEST(WebSocketDecoderTest, FragmentedMessageWithPingInTheMiddle) {
  const Bytes stream = Cat({Frame(0x02, "hello "), Frame(0x89, "are you there?"),
                            Frame(0x00, "brave "), Frame(0x8a, ""), Frame(0x80, "world")});
  for (const std::size_t piece : {std::size_t{1} << 30, std::size_t{1}, std::size_t{5}}) {
    WebSocketDecoder d(kLimits);
    Decoded r = DecodeAll(d, stream, piece);
    EXPECT_EQ(r.consumed, stream.size());
    EXPECT_EQ(AsText(r.data), "hello brave world");
    ASSERT_EQ(r.events.size(), 2u);
    EXPECT_EQ(r.events[0].event, WsEvent::kPing);
    EXPECT_EQ(AsText(r.events[0].payload), "are you there?");
    EXPECT_EQ(r.events[1].event, WsEvent::kPong);
    EXPECT_TRUE(r.events[1].payload.empty());
    EXPECT_FALSE(d.failed());
  }
}

TEST(WebSocketDecoderTest, StopsAtAControlFrameWithTheDataBeforeIt) {
  const Bytes stream = Cat({Frame(0x82, "abc"), Frame(0x89, "p1"), Frame(0x82, "def")});
  WebSocketDecoder d(kLimits);
  std::array<std::uint8_t, 16> out{};
  const WsStep s = d.Decode(stream, out);
  EXPECT_EQ(s.event, WsEvent::kPing);
  EXPECT_EQ(s.consumed, Frame(0x82, "abc").size() + Frame(0x89, "p1").size());
  EXPECT_EQ(s.produced, 3u);
  EXPECT_EQ(AsText(std::span(out).first(3)), "abc");
  EXPECT_EQ(AsText(d.control_payload()), "p1");
  const WsStep rest = d.Decode(std::span(stream).subspan(s.consumed), out);
  EXPECT_EQ(rest.event, WsEvent::kNone);
  EXPECT_EQ(rest.produced, 3u);
  EXPECT_EQ(AsText(std::span(out).first(3)), "def");
}

TEST(WebSocketDecoderTest, OutputSmallerThanAFrame) {
  const Bytes payload = Pattern(100);
  const Bytes stream = Cat({Frame(0x82, payload), Frame(0x82, "xyz")});
  WebSocketDecoder d(kLimits);
  std::array<std::uint8_t, 7> out{};
  const WsStep first = d.Decode(stream, out);
  EXPECT_EQ(first.event, WsEvent::kNone);
  EXPECT_EQ(first.produced, out.size());
  EXPECT_EQ(first.consumed, 6u + 7u);  // header and the first 7 bytes of payload
  EXPECT_TRUE(std::equal(out.begin(), out.end(), payload.begin()));

  Bytes expected = payload;
  expected.insert(expected.end(), {'x', 'y', 'z'});
  for (const std::size_t out_size : {1u, 7u, 8u, 9u, 64u}) {
    const Decoded r = DecodeAll(stream, 1 << 30, out_size);
    EXPECT_EQ(r.data, expected) << out_size;
    EXPECT_EQ(r.consumed, stream.size());
  }
}

TEST(WebSocketDecoderTest, EmptyOutputStillTakesHeadersAndControlFrames) {
  const Bytes stream = Cat({Frame(0x8a, "x"), Frame(0x82, ""), Frame(0x82, "ab")});
  WebSocketDecoder d(kLimits);
  const WsStep pong = d.Decode(stream, {});
  EXPECT_EQ(pong.event, WsEvent::kPong);
  const WsStep s = d.Decode(std::span(stream).subspan(pong.consumed), {});
  EXPECT_EQ(s.event, WsEvent::kNone);
  EXPECT_EQ(s.produced, 0u);
  // Stopped at the first payload byte of "ab", which needs room.
  EXPECT_EQ(pong.consumed + s.consumed, stream.size() - 2);
}

TEST(WebSocketDecoderTest, SeveralFramesAndEmptyFramesMakeOneStream) {
  const Bytes stream = Cat({Frame(0x82, ""), Frame(0x82, "\x10\x02"), Frame(0x02, ""),
                            Frame(0x00, "ab"), Frame(0x80, ""), Frame(0x82, "cd")});
  const Decoded r = DecodeAll(stream);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(AsText(r.data),
            "\x10\x02"
            "abcd");
  EXPECT_EQ(r.consumed, stream.size());
}

TEST(WebSocketDecoderTest, DecodesInPlace) {
  const Bytes payload = Pattern(300);
  Bytes stream = Cat({Frame(0x02, std::span(payload).first(131)), Frame(0x89, "ping"),
                      Frame(0x80, std::span(payload).subspan(131))});
  WebSocketDecoder d(kLimits);
  std::size_t in = 0;
  std::size_t out = 0;
  while (in < stream.size()) {
    const std::span<std::uint8_t> rest(stream.data() + in, stream.size() - in);
    const WsStep s = d.Decode(rest, std::span(stream.data() + out, stream.size() - out));
    ASSERT_NE(s.event, WsEvent::kError);
    in += s.consumed;
    out += s.produced;
    ASSERT_LE(out, in);
  }
  EXPECT_EQ(Bytes(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(out)), payload);
}

TEST(WebSocketDecoderTest, MaskKeyOffsetCarriesAcrossCalls) {
  const Bytes payload = Pattern(64);
  const Bytes frame = Frame(0x82, payload, true, LengthForm::kMinimal, {0xde, 0xad, 0xbe, 0xef});
  // Pieces of every size from 1 to 11, so payload pieces start at every key offset.
  for (std::size_t piece = 1; piece <= 11; ++piece) {
    EXPECT_EQ(DecodeAll(frame, piece).data, payload) << piece;
  }
}

TEST(WebSocketDecoderTest, CloseWithoutCode) {
  const Bytes stream = Cat({Frame(0x82, "ab"), Frame(0x88, ""), Frame(0x82, "cd")});
  WebSocketDecoder d(kLimits);
  std::array<std::uint8_t, 16> out{};
  const WsStep s = d.Decode(stream, out);
  EXPECT_EQ(s.event, WsEvent::kClose);
  EXPECT_EQ(s.produced, 2u);
  EXPECT_EQ(s.consumed, stream.size() - Frame(0x82, "cd").size());
  EXPECT_EQ(d.close_code(), kWsCloseNoStatus);
  EXPECT_EQ(d.close_reason(), "");
  EXPECT_TRUE(d.closed());
  EXPECT_FALSE(d.failed());
  // Finished: nothing more is taken.
  const WsStep again = d.Decode(std::span(stream).subspan(s.consumed), out);
  EXPECT_EQ(again.event, WsEvent::kClose);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(again.produced, 0u);
}

TEST(WebSocketDecoderTest, CloseWithCodeAndReason) {
  for (const int code : {1000, 1001, 1003, 1007, 1011, 3000, 4999}) {
    std::string payload = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    payload += "bye \xc3\xa9";
    const Bytes frame = Frame(0x88, payload);
    for (const std::size_t piece : {std::size_t{1} << 30, std::size_t{1}}) {
      WebSocketDecoder d(kLimits);
      const Decoded r = DecodeAll(d, frame, piece);
      ASSERT_EQ(r.events.size(), 1u);
      EXPECT_EQ(r.events[0].event, WsEvent::kClose);
      EXPECT_EQ(d.close_code(), code);
      EXPECT_EQ(d.close_reason(), "bye \xc3\xa9");
      EXPECT_EQ(AsText(d.control_payload()), payload);
    }
  }
}

struct Violation {
  std::string name;
  Bytes stream;
  std::uint16_t code;
  std::string_view error_part;
  WebSocketDecoder::Limits limits = kLimits;
};

Bytes Header64(std::uint64_t n) {
  Bytes h{0x82, 0xff};
  for (int k = 7; k >= 0; --k) {
    h.push_back(static_cast<std::uint8_t>(n >> (8 * k)));
  }
  h.insert(h.end(), kMask.begin(), kMask.end());
  return h;
}

Bytes CloseWith(std::uint16_t code, std::string_view reason = "") {
  std::string payload = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  payload += reason;
  return Frame(0x88, payload);
}

std::vector<Violation> Violations() {
  const Bytes ok = Frame(0x82, "ok");
  return {
      {"unmasked", Frame(0x82, "ab", false), 1002, "unmasked"},
      {"unmasked_ping", Frame(0x89, "", false), 1002, "unmasked"},
      {"rsv1", Frame(0xc2, "ab"), 1002, "RSV"},
      {"rsv2", Frame(0xa2, "ab"), 1002, "RSV"},
      {"rsv3", Frame(0x92, "ab"), 1002, "RSV"},
      {"text", Frame(0x81, "{}"), 1003, "text frame"},
      {"text_fragment", Frame(0x01, "{"), 1003, "text frame"},
      {"opcode_3", Frame(0x83, ""), 1002, "unknown opcode 3"},
      {"opcode_7", Frame(0x87, ""), 1002, "unknown opcode 7"},
      {"opcode_b", Frame(0x8b, ""), 1002, "unknown opcode 11"},
      {"opcode_f", Frame(0x8f, ""), 1002, "unknown opcode 15"},
      {"ping_not_fin", Frame(0x09, "x"), 1002, "fragmented control frame"},
      {"close_not_fin", Frame(0x08, ""), 1002, "fragmented control frame"},
      {"ping_126", Frame(0x89, AsSpan(std::string(126, 'p'))), 1002, "over 125"},
      {"pong_126_form_small", Frame(0x8a, AsSpan("x"), true, LengthForm::k16), 1002, "over 125"},
      {"continuation_alone", Frame(0x80, "ab"), 1002, "continuation frame without a message"},
      {"continuation_after_whole", Cat({ok, Frame(0x00, "ab")}), 1002,
       "continuation frame without a message"},
      {"binary_inside_message", Cat({Frame(0x02, "a"), Frame(0x82, "b")}), 1002,
       "new data frame inside a fragmented message"},
      {"not_minimal_16", Frame(0x82, AsSpan("abc"), true, LengthForm::k16), 1002,
       "minimal encoding"},
      {"not_minimal_16_125", Frame(0x82, Pattern(125), true, LengthForm::k16), 1002,
       "minimal encoding"},
      {"not_minimal_64", Frame(0x82, Pattern(65535), true, LengthForm::k64), 1002,
       "minimal encoding"},
      {"not_minimal_64_small", Frame(0x82, AsSpan("abc"), true, LengthForm::k64), 1002,
       "minimal encoding"},
      {"top_bit", Header64(std::uint64_t{1} << 63), 1002, "top bit"},
      {"top_bit_all", Header64(~std::uint64_t{0}), 1002, "top bit"},
      {"frame_too_big", Frame(0x82, Pattern(101)), 1009, "over the limit of 100", {100, 1000}},
      {"frame_too_big_header_only", Header64(std::uint64_t{1} << 40), 1009, "over the limit"},
      {"message_too_big",
       Cat({Frame(0x02, Pattern(100)), Frame(0x00, Pattern(100)), Frame(0x80, Pattern(51))}),
       1009,
       "message over the limit of 250 bytes",
       {100, 250}},
      {"close_1_byte", Frame(0x88, "\x03"), 1002, "1-byte"},
      {"close_999", CloseWith(999), 1002, "close code 999"},
      {"close_1004", CloseWith(1004), 1002, "close code 1004"},
      {"close_1005", CloseWith(1005), 1002, "close code 1005"},
      {"close_1006", CloseWith(1006), 1002, "close code 1006"},
      {"close_1012", CloseWith(1012), 1002, "close code 1012"},
      {"close_1015", CloseWith(1015), 1002, "close code 1015"},
      {"close_2999", CloseWith(2999), 1002, "close code 2999"},
      {"close_5000", CloseWith(5000), 1002, "close code 5000"},
      {"close_0", CloseWith(0), 1002, "close code 0"},
      {"close_reason_bad_byte", CloseWith(1000, "a\xff"), 1007, "UTF-8"},
      {"close_reason_overlong", CloseWith(1000, "\xc0\xaf"), 1007, "UTF-8"},
      {"close_reason_surrogate", CloseWith(1000, "\xed\xa0\x80"), 1007, "UTF-8"},
      {"close_reason_truncated", CloseWith(1000, "ok\xe2\x82"), 1007, "UTF-8"},
      {"close_reason_too_high", CloseWith(1000, "\xf4\x90\x80\x80"), 1007, "UTF-8"},
  };
}

TEST(WebSocketDecoderTest, EachViolationFailsWithItsCode) {
  for (const Violation& v : Violations()) {
    SCOPED_TRACE(v.name);
    for (const std::size_t piece : {std::size_t{1} << 30, std::size_t{1}}) {
      WebSocketDecoder d(v.limits);
      const Decoded r = DecodeAll(d, v.stream, piece);
      ASSERT_FALSE(r.events.empty());
      EXPECT_EQ(r.events.back().event, WsEvent::kError);
      EXPECT_TRUE(d.failed());
      EXPECT_EQ(d.error_code(), v.code);
      EXPECT_NE(d.error().find(v.error_part), std::string::npos) << d.error();
      // Dead: nothing more is taken, the error repeats.
      std::array<std::uint8_t, 4> out{};
      const Bytes more = Frame(0x82, "ok");
      const WsStep again = d.Decode(more, out);
      EXPECT_EQ(again.event, WsEvent::kError);
      EXPECT_EQ(again.consumed, 0u);
      EXPECT_EQ(again.produced, 0u);
    }
  }
}

TEST(WebSocketDecoderTest, SizeViolationsAreDecidedFromTheHeader) {
  // The header alone (no payload follows) is enough.
  WebSocketDecoder d({100, 1000});
  const Bytes header = {0x82, 0x80 | 101, 1, 2, 3, 4};
  const WsStep s = d.Decode(header, {});
  EXPECT_EQ(s.event, WsEvent::kError);
  EXPECT_EQ(s.consumed, header.size());
  EXPECT_EQ(d.error_code(), kWsCloseTooBig);

  // Data before the violation is delivered; the violating header is the last thing consumed.
  const Bytes first = Frame(0x02, Pattern(90));
  const Bytes stream = Cat({first, Frame(0x00, Pattern(20))});
  WebSocketDecoder m({100, 100});
  std::array<std::uint8_t, 128> out{};
  const WsStep t = m.Decode(stream, out);
  EXPECT_EQ(t.event, WsEvent::kError);
  EXPECT_EQ(t.produced, 90u);
  EXPECT_EQ(t.consumed, first.size() + 6);
  EXPECT_EQ(m.error_code(), kWsCloseTooBig);
}

TEST(WebSocketDecoderTest, LimitsAreInclusive) {
  const Bytes frame = Frame(0x82, Pattern(100));
  EXPECT_TRUE(DecodeAll(frame, 1 << 30, 1 << 10, {100, 100}).events.empty());
  const Bytes message = Cat({Frame(0x02, Pattern(100)), Frame(0x80, Pattern(100))});
  const Decoded r = DecodeAll(message, 1 << 30, 1 << 10, {100, 200});
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.data.size(), 200u);
  // The message size starts again with each message.
  const Bytes two = Cat({message, message});
  EXPECT_TRUE(DecodeAll(two, 1 << 30, 1 << 10, {100, 200}).events.empty());
  // Control frames do not count against the limits.
  EXPECT_EQ(DecodeAll(Frame(0x89, AsSpan(std::string(125, 'p'))), 1 << 30, 1 << 10, {10, 10})
                .events.at(0)
                .event,
            WsEvent::kPing);
}

// ---- Encoders --------------------------------------------------------------------------------

Bytes Header(WsOpcode opcode, std::uint64_t size) {
  std::array<std::uint8_t, kMaxWsHeader> out{};
  const std::size_t n = EncodeWsHeader(opcode, size, out);
  return Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
}

TEST(WebSocketEncodeTest, HeaderUsesTheMinimalLengthForm) {
  EXPECT_EQ(Header(WsOpcode::kBinary, 0), (Bytes{0x82, 0}));
  EXPECT_EQ(Header(WsOpcode::kBinary, 125), (Bytes{0x82, 125}));
  EXPECT_EQ(Header(WsOpcode::kBinary, 126), (Bytes{0x82, 126, 0, 126}));
  EXPECT_EQ(Header(WsOpcode::kBinary, 65535), (Bytes{0x82, 126, 0xff, 0xff}));
  EXPECT_EQ(Header(WsOpcode::kBinary, 65536), (Bytes{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(Header(WsOpcode::kContinuation, 0x0102030405ull),
            (Bytes{0x80, 127, 0, 0, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(Header(WsOpcode::kPong, 3), (Bytes{0x8a, 3}));
}

TEST(WebSocketEncodeTest, Close) {
  EXPECT_EQ(EncodeWsClose(1000, "bye"), (Bytes{0x88, 5, 0x03, 0xe8, 'b', 'y', 'e'}));
  EXPECT_EQ(EncodeWsClose(1002, ""), (Bytes{0x88, 2, 0x03, 0xea}));
  EXPECT_EQ(EncodeWsClose(kWsCloseNoStatus, "ignored"), (Bytes{0x88, 0}));
  EXPECT_EQ(EncodeWsClose(0, ""), (Bytes{0x88, 0}));
}

TEST(WebSocketEncodeTest, CloseReasonIsCutAtACharacterBoundary) {
  const std::string ascii(200, 'a');
  const Bytes a = EncodeWsClose(1009, ascii);
  EXPECT_EQ(a.size(), 2u + 125u);
  EXPECT_EQ(a[1], 125);

  // 122 ASCII bytes, then "é" (2 bytes) would end at 124 > 123: it is dropped whole.
  const std::string straddling = std::string(122, 'a') + "\xc3\xa9" + "tail";
  const Bytes s = EncodeWsClose(1009, straddling);
  EXPECT_EQ(s[1], 2 + 122);
  EXPECT_TRUE(IsValidUtf8(std::span(s).subspan(4)));

  // Three-byte "€" characters: 41 of them fill 123 bytes exactly.
  std::string euros;
  for (int i = 0; i < 50; ++i) {
    euros += "\xe2\x82\xac";
  }
  const Bytes e = EncodeWsClose(1000, euros);
  EXPECT_EQ(e[1], 2 + 123);
  const Bytes e2 = EncodeWsClose(1000, "x" + euros);
  EXPECT_EQ(e2[1], 2 + 121);  // "x" and 40 characters
  EXPECT_TRUE(IsValidUtf8(std::span(e2).subspan(4)));
}

TEST(WebSocketEncodeTest, ControlFrames) {
  const Bytes payload = ToBytes("are you there?");
  Bytes expected = {0x8a, static_cast<std::uint8_t>(payload.size())};
  expected.insert(expected.end(), payload.begin(), payload.end());
  EXPECT_EQ(EncodeWsControl(WsOpcode::kPong, payload), expected);
  EXPECT_EQ(EncodeWsControl(WsOpcode::kPing, {}), (Bytes{0x89, 0}));
  const Bytes max(125, 'm');
  EXPECT_EQ(EncodeWsControl(WsOpcode::kPong, max).size(), 127u);
}

TEST(WebSocketEncodeTest, PongEchoesTheDecodedPing) {
  WebSocketDecoder d(kLimits);
  const Bytes ping = Frame(0x89, "\x01\x02\x03");
  ASSERT_EQ(d.Decode(ping, {}).event, WsEvent::kPing);
  EXPECT_EQ(EncodeWsControl(WsOpcode::kPong, d.control_payload()),
            (Bytes{0x8a, 3, 0x01, 0x02, 0x03}));
}

TEST(WebSocketEncodeTest, Utf8AndCloseCodes) {
  EXPECT_TRUE(IsValidUtf8(AsSpan("")));
  EXPECT_TRUE(IsValidUtf8(AsSpan("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf")));
  EXPECT_FALSE(IsValidUtf8(AsSpan("\x80")));
  EXPECT_FALSE(IsValidUtf8(AsSpan("\xe0\x80\xaf")));      // overlong
  EXPECT_FALSE(IsValidUtf8(AsSpan("\xf0\x80\x80\xaf")));  // overlong
  EXPECT_FALSE(IsValidUtf8(AsSpan("\xf8\x88\x80\x80\x80")));
  EXPECT_FALSE(IsValidUtf8(AsSpan("\xc3")));
  EXPECT_FALSE(IsValidUtf8(AsSpan("\xc3x")));
  EXPECT_TRUE(IsValidReceivedCloseCode(1000));
  EXPECT_TRUE(IsValidReceivedCloseCode(1010));
  EXPECT_FALSE(IsValidReceivedCloseCode(1004));
  EXPECT_FALSE(IsValidReceivedCloseCode(65535));
}

TEST(HttpFieldTest, EqualsIgnoreCaseFoldsAsciiLettersOnly) {
  EXPECT_TRUE(EqualsIgnoreCase("Sec-WebSocket-Key", "sec-websocket-KEY"));
  EXPECT_FALSE(EqualsIgnoreCase("upgrade", "upgrades"));
  EXPECT_FALSE(EqualsIgnoreCase("a-b", "a_b"));
  EXPECT_FALSE(EqualsIgnoreCase("[", "{"));  // 0x5B and 0x7B differ by 0x20 but are not letters
}

TEST(HttpFieldTest, TrimOwsTakesSpacesAndTabsOnly) {
  EXPECT_EQ(TrimOws(" \t websocket\t "), "websocket");
  EXPECT_EQ(TrimOws("\r\nx\r\n"), "\r\nx\r\n");
  EXPECT_EQ(TrimOws(" \t "), "");
}

TEST(HttpFieldTest, ListHasTokenLooksAtEveryTrimmedElement) {
  EXPECT_TRUE(ListHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(ListHasToken(",,\tUPGRADE ,", "upgrade"));
  EXPECT_FALSE(ListHasToken("keep-alive, upgrades", "upgrade"));
  EXPECT_FALSE(ListHasToken("", "upgrade"));
}

}  // namespace
}  // namespace tinymq::net
