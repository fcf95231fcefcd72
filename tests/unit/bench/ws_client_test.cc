#include "tools/bench/ws_client.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/net/websocket.h"

// tinymq-bench's WebSocket client side: the masked frames it sends, its decoder of the server's
// frames, and its check of the upgrade response; cross-checked against the broker's server side
// (net/websocket.h) where both meet.

namespace tinymq::bench {
namespace {

using net::WsEvent;
using net::WsOpcode;
using Bytes = std::vector<std::uint8_t>;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }
std::span<const std::uint8_t> Span(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A server frame, built by hand so that it can break the rules: `b1_extra` ORs into the second
// byte (0x80: the mask bit; a masked frame then carries a zero key), `length_form` forces the
// 7-bit (0), 16-bit (2) or 64-bit (8) length form whatever the size.
Bytes Frame(std::uint8_t b0, const Bytes& payload, int length_form = -1,
            std::uint8_t b1_extra = 0) {
  const std::size_t n = payload.size();
  if (length_form < 0) {
    length_form = n < 126 ? 0 : n <= 0xffff ? 2 : 8;
  }
  Bytes f = {b0};
  if (length_form == 0) {
    f.push_back(static_cast<std::uint8_t>(n | b1_extra));
  } else if (length_form == 2) {
    f.push_back(static_cast<std::uint8_t>(126 | b1_extra));
    f.push_back(static_cast<std::uint8_t>(n >> 8));
    f.push_back(static_cast<std::uint8_t>(n));
  } else {
    f.push_back(static_cast<std::uint8_t>(127 | b1_extra));
    for (int k = 7; k >= 0; --k) {
      f.push_back(static_cast<std::uint8_t>(std::uint64_t{n} >> (8 * k)));
    }
  }
  if ((b1_extra & 0x80) != 0) {
    f.insert(f.end(), {0, 0, 0, 0});
  }
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

Bytes Binary(const Bytes& payload, bool fin = true) {
  return Frame(static_cast<std::uint8_t>(fin ? 0x82 : 0x02), payload);
}
Bytes Continuation(const Bytes& payload, bool fin) {
  return Frame(static_cast<std::uint8_t>(fin ? 0x80 : 0x00), payload);
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& p : parts) {
    all.insert(all.end(), p.begin(), p.end());
  }
  return all;
}

// What a decoder made of a stream: the payload bytes, and each event with the payload bytes seen
// before it (and a ping's payload).
struct Decoded {
  Bytes payload;
  std::vector<std::string> events;
  std::string error;
};

// Feeds `stream` in chunks of the given sizes (the last one repeats), decoding in place as the
// worker does: the input is copied into a buffer and decoded onto itself.
Decoded DecodeInChunks(const Bytes& stream, std::vector<std::size_t> chunks) {
  WsClientDecoder d;
  Decoded out;
  std::size_t at = 0;
  std::size_t k = 0;
  while (at < stream.size()) {
    const std::size_t size = std::min(chunks[std::min(k++, chunks.size() - 1)], stream.size() - at);
    Bytes buf(stream.begin() + static_cast<std::ptrdiff_t>(at),
              stream.begin() + static_cast<std::ptrdiff_t>(at + size));
    at += size;
    std::span<const std::uint8_t> in = buf;
    std::size_t produced = 0;
    while (!in.empty()) {
      const net::WsStep s = d.Decode(in, std::span<std::uint8_t>(buf).subspan(produced));
      out.payload.insert(out.payload.end(), buf.begin() + static_cast<std::ptrdiff_t>(produced),
                         buf.begin() + static_cast<std::ptrdiff_t>(produced + s.produced));
      produced += s.produced;
      in = in.subspan(s.consumed);
      const std::string where = "@" + std::to_string(out.payload.size());
      switch (s.event) {
        case WsEvent::kNone:
          if (s.consumed == 0) {
            ADD_FAILURE() << "no progress";
            return out;
          }
          break;
        case WsEvent::kPing: {
          const auto p = d.control_payload();
          out.events.push_back("ping" + where + ":" + std::string(p.begin(), p.end()));
          break;
        }
        case WsEvent::kPong: out.events.push_back("pong" + where); break;
        case WsEvent::kClose:
          out.events.push_back("close" + where + ":" + std::to_string(d.close_code()));
          return out;
        case WsEvent::kError:
          out.events.push_back("error" + where);
          out.error = d.error();
          return out;
      }
    }
  }
  return out;
}

// Frames out ------------------------------------------------------------------------------------

TEST(WsClientFrameTest, HeaderLengthsUseTheMinimalFormAndCarryMaskBitAndKey) {
  const std::array<std::uint8_t, 4> key = {0xa1, 0xb2, 0xc3, 0xd4};
  struct Case {
    std::uint64_t size;
    Bytes expected;
  };
  const std::vector<Case> cases = {
      {0, {0x82, 0x80}},
      {125, {0x82, 0x80 | 125}},
      {126, {0x82, 0x80 | 126, 0x00, 0x7e}},
      {65535, {0x82, 0x80 | 126, 0xff, 0xff}},
      {65536, {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
  };
  for (const Case& c : cases) {
    std::array<std::uint8_t, kMaxWsClientHeader> out{};
    const std::size_t n = EncodeWsClientHeader(WsOpcode::kBinary, c.size, key, out);
    Bytes expected = c.expected;
    expected.insert(expected.end(), key.begin(), key.end());
    EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n)), expected)
        << "size " << c.size;
  }
}

TEST(WsClientFrameTest, MaskMatchesBytewiseXorForEveryLengthAndInPlace) {
  const std::array<std::uint8_t, 4> key = {0x12, 0x34, 0x56, 0x78};
  for (std::size_t n = 0; n <= 40; ++n) {
    Bytes src(n);
    for (std::size_t i = 0; i < n; ++i) {
      src[i] = static_cast<std::uint8_t>(i * 7 + 1);
    }
    Bytes expected(n);
    for (std::size_t i = 0; i < n; ++i) {
      expected[i] = static_cast<std::uint8_t>(src[i] ^ key[i % 4]);
    }
    Bytes dst(n);
    MaskWsPayload(src.data(), dst.data(), n, key);
    EXPECT_EQ(dst, expected) << n;
    MaskWsPayload(src.data(), src.data(), n, key);
    EXPECT_EQ(src, expected) << n << " in place";
  }
}

TEST(WsClientFrameTest, DataIsMaskedWithAFreshKeyPerFrameAndSplitAtTheBound) {
  Bytes payload(10);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<std::uint8_t>('a' + i);
  }
  WsRandom random(42);
  Bytes wire;
  AppendWsData(payload, random, wire, /*max_frame=*/4);

  WsRandom same(42);  // the keys the frames must carry, in order
  std::size_t at = 0;
  Bytes unmasked;
  for (std::size_t size : {4u, 4u, 2u}) {
    ASSERT_LE(at + 6 + size, wire.size());
    EXPECT_EQ(wire[at], 0x82);  // FIN, binary
    EXPECT_EQ(std::size_t{wire[at + 1]}, 0x80 | size);
    const std::array<std::uint8_t, 4> key = same.MaskKey();
    EXPECT_EQ(Bytes(wire.begin() + static_cast<std::ptrdiff_t>(at + 2),
                    wire.begin() + static_cast<std::ptrdiff_t>(at + 6)),
              Bytes(key.begin(), key.end()));
    for (std::size_t i = 0; i < size; ++i) {
      unmasked.push_back(static_cast<std::uint8_t>(wire[at + 6 + i] ^ key[i % 4]));
    }
    at += 6 + size;
  }
  EXPECT_EQ(at, wire.size());
  EXPECT_EQ(unmasked, payload);

  Bytes none;
  AppendWsData({}, random, none);
  EXPECT_TRUE(none.empty());
}

TEST(WsClientFrameTest, BrokerDecoderReadsWhatTheBenchSends) {
  Bytes mqtt(70000);
  for (std::size_t i = 0; i < mqtt.size(); ++i) {
    mqtt[i] = static_cast<std::uint8_t>(i * 31);
  }
  WsRandom random(7);
  Bytes wire;
  AppendWsData(mqtt, random, wire, /*max_frame=*/65536);  // a 64-bit and a 7-bit length frame
  const std::array<std::uint8_t, 2> ping_payload = {'h', 'i'};
  AppendWsControl(WsOpcode::kPing, ping_payload, random, wire);

  net::WebSocketDecoder server({.max_frame_size = 1 << 20, .max_message_size = 1 << 20});
  Bytes out(mqtt.size() + 10);
  const net::WsStep s = server.Decode(wire, out);
  EXPECT_EQ(s.event, WsEvent::kPing) << server.error();
  EXPECT_EQ(s.consumed, wire.size());
  ASSERT_EQ(s.produced, mqtt.size());
  EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(s.produced)), mqtt);
  EXPECT_EQ(Bytes(server.control_payload().begin(), server.control_payload().end()),
            Bytes(ping_payload.begin(), ping_payload.end()));
}

// Frames in -------------------------------------------------------------------------------------

TEST(WsClientDecoderTest, SeveralFramesInOneBufferAndEveryTwoWaySplit) {
  const Bytes stream = Concat({Binary(B("CONNACK")), Binary({}), Binary(Bytes(300, 'x')),
                               Frame(0x89, B("p")), Binary(B("tail"))});
  const Bytes expected = Concat({B("CONNACK"), Bytes(300, 'x'), B("tail")});
  const Decoded whole = DecodeInChunks(stream, {stream.size()});
  EXPECT_EQ(whole.payload, expected);
  EXPECT_EQ(whole.events, std::vector<std::string>{"ping@307:p"});
  for (std::size_t split = 1; split < stream.size(); ++split) {
    const Decoded d = DecodeInChunks(stream, {split, stream.size()});
    ASSERT_EQ(d.payload, expected) << "split at " << split;
    ASSERT_EQ(d.events, whole.events) << "split at " << split;
  }
  const Decoded bytewise = DecodeInChunks(stream, {1});
  EXPECT_EQ(bytewise.payload, expected);
  EXPECT_EQ(bytewise.events, whole.events);
}

TEST(WsClientDecoderTest, LongLengthFormsAreDecoded) {
  const Bytes big(65536, 'y');
  const Bytes stream = Concat({Binary(Bytes(65535, 'z')), Binary(big)});
  const Decoded d = DecodeInChunks(stream, {1000, 3, 70000});
  EXPECT_EQ(d.payload.size(), 65535u + 65536u);
  EXPECT_TRUE(d.error.empty()) << d.error;
}

TEST(WsClientDecoderTest, FragmentedMessageWithAPingInTheMiddle) {
  const Bytes stream =
      Concat({Binary(B("PUB"), /*fin=*/false), Continuation(B("LI"), false), Frame(0x89, B("hb")),
              Frame(0x8a, {}), Continuation(B("SH"), true), Frame(0x88, {0x03, 0xe8})});
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{5}, stream.size()}) {
    const Decoded d = DecodeInChunks(stream, {chunk});
    EXPECT_EQ(d.payload, B("PUBLISH")) << chunk;
    EXPECT_EQ(d.events, (std::vector<std::string>{"ping@5:hb", "pong@5", "close@7:1000"})) << chunk;
  }
}

TEST(WsClientDecoderTest, CloseWithoutCodeIs1005AndStaysClosed) {
  WsClientDecoder d;
  const Bytes close = Frame(0x88, {});
  Bytes out(10);
  const net::WsStep s = d.Decode(close, out);
  EXPECT_EQ(s.event, WsEvent::kClose);
  EXPECT_EQ(d.close_code(), 1005);
  const Bytes more = Binary(B("x"));
  const net::WsStep again = d.Decode(more, out);
  EXPECT_EQ(again.event, WsEvent::kClose);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(WsClientDecoderTest, ViolationsAreRefusedWithAReason) {
  struct Case {
    const char* name;
    Bytes stream;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"masked", Frame(0x82, B("ab"), -1, 0x80), "masked"},
      {"rsv1", Frame(0xc2, B("ab")), "RSV"},
      {"rsv3", Frame(0x92, B("ab")), "RSV"},
      {"opcode 3", Frame(0x83, B("ab")), "opcode 3"},
      {"opcode 11", Frame(0x8b, {}), "opcode 11"},
      {"text", Frame(0x81, B("ab")), "text"},
      {"16-bit length of 125", Frame(0x82, Bytes(125, 'a'), 2), "minimal"},
      {"64-bit length of 65535", Frame(0x82, Bytes(65535, 'a'), 8), "minimal"},
      {"64-bit top bit", Bytes{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, "top bit"},
      {"continuation alone", Continuation(B("ab"), true), "continuation"},
      {"message inside a message", Concat({Binary(B("a"), false), Binary(B("b"))}), "inside"},
      {"fragmented ping", Frame(0x09, B("a")), "fragmented control"},
      {"ping over 125", Frame(0x89, Bytes(126, 'a')), "125"},
  };
  for (const Case& c : cases) {
    for (std::size_t chunk : {std::size_t{1}, c.stream.size()}) {
      const Decoded d = DecodeInChunks(c.stream, {chunk});
      ASSERT_FALSE(d.events.empty()) << c.name;
      EXPECT_EQ(d.events.back().rfind("error", 0), 0u) << c.name << ": " << d.events.back();
      EXPECT_NE(d.error.find(c.reason), std::string::npos) << c.name << ": " << d.error;
    }
  }
}

TEST(WsClientDecoderTest, PayloadBeforeAViolationIsKeptAndTheDecoderStaysFailed) {
  WsClientDecoder d;
  Bytes stream = Concat({Binary(B("ok")), Frame(0x83, {})});
  Bytes out(stream.size());
  const net::WsStep s = d.Decode(stream, out);
  EXPECT_EQ(s.event, WsEvent::kError);
  EXPECT_EQ(s.produced, 2u);
  const Bytes more = Binary(B("x"));
  EXPECT_EQ(d.Decode(more, out).event, WsEvent::kError);
}

TEST(WsClientDecoderTest, StopsWhenOutputIsFull) {
  WsClientDecoder d;
  const Bytes stream = Binary(B("abcdef"));
  Bytes out(4);
  net::WsStep s = d.Decode(stream, out);
  EXPECT_EQ(s.event, WsEvent::kNone);
  EXPECT_EQ(s.produced, 4u);
  EXPECT_EQ(s.consumed, 6u);  // header + 4
  s = d.Decode(std::span<const std::uint8_t>(stream).subspan(6), out);
  EXPECT_EQ(s.produced, 2u);
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 2), B("ef"));
}

// Upgrade ---------------------------------------------------------------------------------------

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string Response(std::string_view status_line, std::string_view accept,
                     std::string_view extra = "") {
  std::string r(status_line);
  r += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  if (!accept.empty()) {
    r += "Sec-WebSocket-Accept: " + std::string(accept) + "\r\n";
  }
  r += extra;
  r += "\r\n";
  return r;
}

TEST(WsUpgradeTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64(Span("")), "");
  EXPECT_EQ(Base64(Span("f")), "Zg==");
  EXPECT_EQ(Base64(Span("fo")), "Zm8=");
  EXPECT_EQ(Base64(Span("foo")), "Zm9v");
  EXPECT_EQ(Base64(Span("foob")), "Zm9vYg==");
  EXPECT_EQ(Base64(Span("fooba")), "Zm9vYmE=");
  EXPECT_EQ(Base64(Span("foobar")), "Zm9vYmFy");
}

TEST(WsUpgradeTest, AcceptOfTheRfcExampleKey) {
  EXPECT_EQ(net::WebSocketAccept(kRfcKey), kRfcAccept);
}

TEST(WsUpgradeTest, GoodResponseIsDoneAndLeavesTheFramesAfterIt) {
  const std::string head =
      Response("HTTP/1.1 101 Switching Protocols", kRfcAccept, "Sec-WebSocket-Protocol: mqtt\r\n");
  const std::string bytes = head + "\x82\x02OK";
  WsUpgradeResponse r{std::string(kRfcAccept)};
  const auto result = r.Feed(Span(bytes));
  EXPECT_EQ(result.status, WsUpgradeResponse::Status::kDone) << r.error();
  EXPECT_EQ(result.consumed, head.size());
}

TEST(WsUpgradeTest, ResponseSplitOverReadsAtEveryByte) {
  const std::string head = Response("HTTP/1.1 101 Switching Protocols", kRfcAccept,
                                    "sec-websocket-protocol: mqtt\r\nServer: x\r\n");
  const std::string bytes = head + "\x82";
  for (std::size_t split = 1; split < head.size(); ++split) {
    WsUpgradeResponse r{std::string(kRfcAccept)};
    const auto first = r.Feed(Span(std::string_view(bytes).substr(0, split)));
    ASSERT_EQ(first.status, WsUpgradeResponse::Status::kNeedMore) << split;
    ASSERT_EQ(first.consumed, split);
    const auto second = r.Feed(Span(std::string_view(bytes).substr(split)));
    ASSERT_EQ(second.status, WsUpgradeResponse::Status::kDone) << split << ": " << r.error();
    ASSERT_EQ(second.consumed, head.size() - split) << split;
  }
  // One byte at a time.
  WsUpgradeResponse r{std::string(kRfcAccept)};
  for (std::size_t i = 0; i + 1 < head.size(); ++i) {
    ASSERT_EQ(r.Feed(Span(std::string_view(head).substr(i, 1))).status,
              WsUpgradeResponse::Status::kNeedMore);
  }
  EXPECT_EQ(r.Feed(Span(std::string_view(head).substr(head.size() - 1))).status,
            WsUpgradeResponse::Status::kDone);
}

TEST(WsUpgradeTest, BadResponsesAreRefusedWithAReason) {
  struct Case {
    std::string response;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {Response("HTTP/1.1 404 Not Found", ""), "404"},
      {Response("HTTP/1.1 200 OK", kRfcAccept), "200"},
      {Response("SSH-2.0-OpenSSH", kRfcAccept), "not an HTTP response"},
      {Response("HTTP/1.1 101 Switching Protocols", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "Accept"},
      {Response("HTTP/1.1 101 Switching Protocols", ""), "without Sec-WebSocket-Accept"},
      {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
           std::string(kRfcAccept) + "\r\n\r\n",
       "Upgrade: websocket"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " +
           std::string(kRfcAccept) + "\r\n\r\n",
       "Connection"},
      {Response("HTTP/1.1 101 Switching Protocols", kRfcAccept, "Sec-WebSocket-Protocol: amqp\r\n"),
       "amqp"},
      {Response("HTTP/1.1 101 Switching Protocols", kRfcAccept, "no colon here\r\n"), "malformed"},
  };
  for (const Case& c : cases) {
    WsUpgradeResponse r{std::string(kRfcAccept)};
    const auto result = r.Feed(Span(c.response));
    EXPECT_EQ(result.status, WsUpgradeResponse::Status::kRefused) << c.response;
    EXPECT_NE(r.error().find(c.reason), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
  }
}

TEST(WsUpgradeTest, OversizedHeadIsRefused) {
  WsUpgradeResponse r{std::string(kRfcAccept)};
  const std::string junk(WsUpgradeResponse::kMaxHeadBytes + 10, 'a');
  EXPECT_EQ(r.Feed(Span(junk)).status, WsUpgradeResponse::Status::kRefused);
  EXPECT_NE(r.error().find("over"), std::string::npos) << r.error();
}

TEST(WsUpgradeTest, BrokerHandshakeAcceptsTheRequestAndTheBenchAcceptsItsAnswer) {
  WsRandom random(99);
  const std::string key = NewWsKey(random);
  EXPECT_EQ(key.size(), 24u);
  EXPECT_NE(key, NewWsKey(random));
  const std::string request = WsUpgradeRequest("127.0.0.1:1883", "/mqtt", key);

  net::WebSocketHandshake server;
  const auto fed = server.Feed(Span(request));
  ASSERT_EQ(fed.status, net::WebSocketHandshake::Status::kDone) << server.error();
  EXPECT_EQ(fed.consumed, request.size());
  EXPECT_EQ(server.path(), "/mqtt");
  EXPECT_EQ(server.subprotocol(), "mqtt");

  WsUpgradeResponse client(net::WebSocketAccept(key));
  EXPECT_EQ(client.Feed(Span(server.response())).status, WsUpgradeResponse::Status::kDone)
      << client.error();
  // Another key's accept does not pass.
  WsUpgradeResponse other(net::WebSocketAccept(NewWsKey(random)));
  EXPECT_EQ(other.Feed(Span(server.response())).status, WsUpgradeResponse::Status::kRefused);
}

}  // namespace
}  // namespace tinymq::bench
