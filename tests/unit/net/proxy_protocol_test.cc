#include "tinymq/net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tinymq::net {
namespace {

using Status = ProxyHeaderParser::Status;
using namespace std::string_literals;  // "...\0..."s keeps embedded NULs

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Outcome {
  Status status = Status::kNeedMore;
  std::size_t consumed = 0;  // total over all Feed() calls
  std::optional<std::string> source;
  int version = 0;
  std::string error;
};

Outcome Finish(const ProxyHeaderParser& p, Status status, std::size_t consumed) {
  return {status, consumed, p.source(), p.version(), p.error()};
}

Outcome FeedWhole(std::string_view stream) {
  ProxyHeaderParser p;
  const ProxyHeaderParser::Result r = p.Feed(Bytes(stream));
  EXPECT_LE(r.consumed, stream.size());
  if (r.status == Status::kNeedMore) {
    EXPECT_EQ(r.consumed, stream.size());
  }
  return Finish(p, r.status, r.consumed);
}

// One byte per Feed(), until the parser stops asking for more; then once more past the end.
Outcome FeedByteAtATime(std::string_view stream) {
  ProxyHeaderParser p;
  std::size_t total = 0;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    const ProxyHeaderParser::Result r = p.Feed(Bytes(stream.substr(i, 1)));
    total += r.consumed;
    if (r.status != Status::kNeedMore) {
      EXPECT_EQ(r.consumed, r.status == Status::kDone ? 1u : 0u);
      const ProxyHeaderParser::Result again = p.Feed(Bytes(stream.substr(i)));
      EXPECT_EQ(again.status, r.status);
      EXPECT_EQ(again.consumed, 0u);
      return Finish(p, r.status, total);
    }
    EXPECT_EQ(r.consumed, 1u);
  }
  return Finish(p, Status::kNeedMore, total);
}

// Feeds `stream` whole and one byte at a time; both must agree. Returns the outcome.
Outcome Parse(std::string_view stream) {
  const Outcome whole = FeedWhole(stream);
  const Outcome bytewise = FeedByteAtATime(stream);
  EXPECT_EQ(whole.status, bytewise.status);
  EXPECT_EQ(whole.consumed, bytewise.consumed);
  EXPECT_EQ(whole.source, bytewise.source);
  EXPECT_EQ(whole.version, bytewise.version);
  EXPECT_EQ(whole.error, bytewise.error);
  return whole;
}

// A complete, valid header: kDone with every byte consumed, and also when client bytes follow
// (consumed stops at the header's end). Returns the source.
std::optional<std::string> ParseHeader(std::string_view header) {
  const Outcome o = Parse(header);
  EXPECT_EQ(o.status, Status::kDone) << o.error;
  EXPECT_EQ(o.consumed, header.size());
  EXPECT_EQ(o.error, "");
  // An MQTT 3.1.1 CONNECT follows.
  const std::string with_client = std::string(header) + "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c"s;
  const Outcome followed = Parse(with_client);
  EXPECT_EQ(followed.status, Status::kDone);
  EXPECT_EQ(followed.consumed, header.size());
  EXPECT_EQ(followed.source, o.source);
  // Every proper prefix asks for more.
  for (std::size_t n = 0; n < header.size(); ++n) {
    const Outcome prefix = FeedWhole(header.substr(0, n));
    EXPECT_EQ(prefix.status, Status::kNeedMore) << "prefix of " << n << " bytes: " << prefix.error;
  }
  return o.source;
}

// Refused: kError, with `consumed` bytes accepted before the offending one.
void ExpectError(std::string_view stream, std::size_t consumed, std::string_view error_part = {}) {
  const Outcome o = Parse(stream);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.consumed, consumed);
  EXPECT_FALSE(o.source.has_value());
  EXPECT_NE(o.error.find(error_part), std::string::npos) << o.error;
  EXPECT_FALSE(o.error.empty());
}

std::string V2(std::uint8_t version_command, std::uint8_t family, std::string_view block) {
  std::string h = "\r\n\r\n\0\r\nQUIT\n"s;
  h += static_cast<char>(version_command);
  h += static_cast<char>(family);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xff);
  h += block;
  return h;
}

// AF_INET block: 192.0.2.1:5000 -> 198.51.100.2:1883.
const std::string kInetBlock = "\xc0\x00\x02\x01\xc6\x33\x64\x02\x13\x88\x07\x5b"s;

// AF_INET6 block: [2001:db8::1]:5000 -> [2001:db8::2]:1883.
std::string Inet6Block() {
  std::string b(36, '\0');
  b[0] = '\x20';
  b[1] = '\x01';
  b[2] = '\x0d';
  b[3] = '\xb8';
  b[15] = '\x01';
  b[16] = '\x20';
  b[17] = '\x01';
  b[18] = '\x0d';
  b[19] = '\xb8';
  b[31] = '\x02';
  b[32] = '\x13';
  b[33] = '\x88';
  b[34] = '\x07';
  b[35] = '\x5b';
  return b;
}

// ---- v1 ----

TEST(ProxyHeaderParserTest, V1Tcp4GivesTheSource) {
  EXPECT_EQ(ParseHeader("PROXY TCP4 192.0.2.1 198.51.100.2 5000 1883\r\n"), "192.0.2.1:5000");
  EXPECT_EQ(Parse("PROXY TCP4 192.0.2.1 198.51.100.2 5000 1883\r\n").version, 1);
}

TEST(ProxyHeaderParserTest, V1Tcp6GivesTheSourceInBrackets) {
  EXPECT_EQ(ParseHeader("PROXY TCP6 2001:db8::1 2001:db8::2 5000 1883\r\n"), "[2001:db8::1]:5000");
}

TEST(ProxyHeaderParserTest, V1Tcp6SourceIsWrittenAsInetNtopWritesIt) {
  // Same client, same peer string as from an accepted socket (per-address limits key on it).
  EXPECT_EQ(ParseHeader("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 5000 1883\r\n"), "[2001:db8::1]:5000");
  EXPECT_EQ(ParseHeader("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), "[::ffff:192.0.2.1]:1");
  EXPECT_EQ(ParseHeader("PROXY TCP6 :: :: 0 0\r\n"), "[::]:0");
}

TEST(ProxyHeaderParserTest, V1PortsSpanZeroTo65535) {
  EXPECT_EQ(ParseHeader("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), "0.0.0.0:0");
  EXPECT_EQ(ParseHeader("PROXY TCP4 10.0.0.1 10.0.0.2 65535 0\r\n"), "10.0.0.1:65535");
}

TEST(ProxyHeaderParserTest, V1UnknownKeepsTheSocketPeer) {
  EXPECT_EQ(ParseHeader("PROXY UNKNOWN\r\n"), std::nullopt);
  EXPECT_EQ(ParseHeader("PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n"), std::nullopt);
  EXPECT_EQ(ParseHeader("PROXY UNKNOWN \x01\xff\n\0 anything\r\n"s), std::nullopt);
}

TEST(ProxyHeaderParserTest, V1LongestTcp6LineIsAccepted) {
  const std::string line =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  ASSERT_EQ(line.size(), 104u);
  EXPECT_EQ(ParseHeader(line), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

TEST(ProxyHeaderParserTest, V1LineOf107BytesIsAcceptedAnd108Refused) {
  const std::string head = "PROXY UNKNOWN ";
  const std::string at_limit = head + std::string(107 - head.size() - 2, 'x') + "\r\n";
  ASSERT_EQ(at_limit.size(), 107u);
  EXPECT_EQ(ParseHeader(at_limit), std::nullopt);

  // Byte 105 must be the CR: with one more 'x' only the CR would still fit.
  const std::string over = head + std::string(107 - head.size() - 1, 'x') + "\r\n";
  ExpectError(over, 105, "longer than 107");
  // A TCP6 line made long by dotted-quad tails, refused where its CRLF no longer fits.
  const std::string tcp6 =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
      "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n";
  ExpectError(tcp6, 105, "longer than 107");
}

TEST(ProxyHeaderParserTest, V1PortsAreStrictDecimal) {
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n", 31, "bad source port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", 33, "bad destination port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n", 28, "bad source port");  // leading zero
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", 30, "bad destination port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 +1 1\r\n", 27, "bad source port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 -1 1\r\n", 27, "bad source port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8  1 1\r\n", 27, "bad source port");  // empty
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", 29, "bad destination port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 30, "bad destination port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 28, "bad source port");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 0x1\r\n", 30, "bad destination port");
}

TEST(ProxyHeaderParserTest, V1AddressesMustBeOfTheFamily) {
  ExpectError("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 11, "bad source address");
  ExpectError("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", 19, "bad destination address");
  ExpectError("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 18, "bad source address");  // at the space
  ExpectError("PROXY TCP6 ::1 1.2.3.4 1 2\r\n", 22, "bad destination address");
}

TEST(ProxyHeaderParserTest, V1AddressesAreCheckedByInetPton) {
  ExpectError("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n", 20, "bad source address");
  ExpectError("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 16, "bad source address");
  ExpectError("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 20, "bad source address");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8. 1 2\r\n", 27, "bad destination address");
  ExpectError("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 28, "bad source address");
  ExpectError("PROXY TCP6 1::2::3 ::1 1 2\r\n", 18, "bad source address");
  ExpectError("PROXY TCP6 12345::1 ::1 1 2\r\n", 19, "bad source address");
  ExpectError("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 18, "bad source address");       // no zone
  ExpectError("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 19, "bad destination address");  // empty
  ExpectError("PROXY TCP4 1.2.3.4\r\n", 18, "bad source address");
  // Longer than any address of the family: refused at the first byte too many.
  ExpectError("PROXY TCP4 1111111111111111 5.6.7.8 1 2\r\n", 26, "bad source address");
  ExpectError("PROXY TCP6 " + std::string(46, 'f') + " ::1 1 2\r\n", 56, "bad source address");
}

TEST(ProxyHeaderParserTest, V1SyntaxIsExact) {
  ExpectError("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "not a PROXY protocol header");
  ExpectError("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6, "unknown protocol");
  ExpectError("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", 5, "not a PROXY protocol header");
  ExpectError("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 9, "unknown protocol");
  ExpectError("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 6, "unknown protocol");
  ExpectError("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 7, "unknown protocol");
  ExpectError("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 11, "bad source address");
  ExpectError("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", 10, "one space");
  ExpectError("PROXY UNKNOWNX\r\n", 13, "unknown protocol");
  ExpectError("PROXY UNKNOWN\n", 13, "unknown protocol");
  ExpectError("PROXY UNKNOWN x\ry\r\n", 16, "CR not followed by LF");
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 30, "bad destination port");  // LF alone
  ExpectError("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", 31, "CR not followed by LF");
}

// ---- the first bytes of what a client that bypasses the load balancer sends ----

TEST(ProxyHeaderParserTest, OtherProtocolsAreRefusedAtTheirFirstDifferentByte) {
  ExpectError("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c"s, 0, "first byte 0x10");  // MQTT CONNECT
  ExpectError("\x16\x03\x01\x02\x00"s, 0, "first byte 0x16");                  // TLS ClientHello
  ExpectError("GET /mqtt HTTP/1.1\r\n", 0, "first byte 0x47");
  ExpectError("POST / HTTP/1.1\r\n", 1, "not a PROXY protocol header");
  ExpectError("\r\n\r\n\0\r\nQUIT?"s, 11, "not a PROXY protocol header");
  ExpectError("\r\nGET"s, 2, "not a PROXY protocol header");
  ExpectError("\0"s, 0, "first byte 0x00");
}

// ---- v2 ----

TEST(ProxyHeaderParserTest, V2ProxyTcp4GivesTheSource) {
  const std::string h = V2(0x21, 0x11, kInetBlock);
  EXPECT_EQ(ParseHeader(h), "192.0.2.1:5000");
  EXPECT_EQ(Parse(h).version, 2);
}

TEST(ProxyHeaderParserTest, V2ProxyTcp6GivesTheSourceInBrackets) {
  EXPECT_EQ(ParseHeader(V2(0x21, 0x21, Inet6Block())), "[2001:db8::1]:5000");
}

TEST(ProxyHeaderParserTest, V2TlvsAreConsumedAndSkipped) {
  // PP2_TYPE_ALPN "mqtt", then PP2_TYPE_NOOP of 300 bytes.
  const std::string tlvs = "\x01\x00\x04mqtt\x04\x01\x2c"s + std::string(300, '\xaa');
  EXPECT_EQ(ParseHeader(V2(0x21, 0x11, kInetBlock + tlvs)), "192.0.2.1:5000");
  EXPECT_EQ(ParseHeader(V2(0x21, 0x21, Inet6Block() + tlvs)), "[2001:db8::1]:5000");
}

TEST(ProxyHeaderParserTest, V2LengthOfExactlyTheMaximumIsAccepted) {
  const std::string block = kInetBlock + std::string(ProxyHeaderParser::kMaxV2Length - 12, 'x');
  const std::string h = V2(0x21, 0x11, block);
  ASSERT_EQ(h.size(), 16 + ProxyHeaderParser::kMaxV2Length);
  EXPECT_EQ(Parse(h).source, "192.0.2.1:5000");
  EXPECT_EQ(Parse(h).consumed, h.size());

  // The worker's loop: peek at most kMaxPeek, drain what was consumed, peek again.
  ProxyHeaderParser p;
  std::size_t at = 0;
  ProxyHeaderParser::Result r{Status::kNeedMore, 0};
  const std::string stream = h + "\x10";
  while (r.status == Status::kNeedMore) {
    const std::string_view peeked =
        std::string_view(stream).substr(at, ProxyHeaderParser::kMaxPeek);
    r = p.Feed(Bytes(peeked));
    at += r.consumed;
  }
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(at, h.size());
  EXPECT_EQ(p.source(), "192.0.2.1:5000");
}

TEST(ProxyHeaderParserTest, V2LocalKeepsTheSocketPeerAndConsumesItsBlock) {
  EXPECT_EQ(ParseHeader(V2(0x20, 0x00, "")), std::nullopt);
  EXPECT_EQ(ParseHeader(V2(0x20, 0x11, kInetBlock)), std::nullopt);
  // §2.2: LOCAL ignores the family byte, whatever it holds, and the block's contents.
  EXPECT_EQ(ParseHeader(V2(0x20, 0xff, std::string(20, '\x01'))), std::nullopt);
  EXPECT_EQ(ParseHeader(V2(0x20, 0x11, "")), std::nullopt);  // no addresses needed
}

TEST(ProxyHeaderParserTest, V2OtherFamiliesAndTransportsKeepTheSocketPeer) {
  EXPECT_EQ(ParseHeader(V2(0x21, 0x00, "")), std::nullopt);     // AF_UNSPEC
  EXPECT_EQ(ParseHeader(V2(0x21, 0x00, "abc")), std::nullopt);  // AF_UNSPEC, TLV-ish
  EXPECT_EQ(ParseHeader(V2(0x21, 0x31, std::string(216, '/'))), std::nullopt);  // AF_UNIX
  EXPECT_EQ(ParseHeader(V2(0x21, 0x32, std::string(230, '/'))), std::nullopt);  // UNIX DGRAM
  EXPECT_EQ(ParseHeader(V2(0x21, 0x12, kInetBlock)), std::nullopt);             // UDP
  EXPECT_EQ(ParseHeader(V2(0x21, 0x10, kInetBlock)), std::nullopt);             // AF_INET, UNSPEC
  EXPECT_EQ(ParseHeader(V2(0x21, 0x22, Inet6Block())), std::nullopt);           // UDP over IPv6
}

TEST(ProxyHeaderParserTest, V2VersionAndCommandAreChecked) {
  ExpectError(V2(0x11, 0x11, kInetBlock), 12, "version 1");
  ExpectError(V2(0x31, 0x11, kInetBlock), 12, "version 3");
  ExpectError(V2(0x22, 0x11, kInetBlock), 12, "unknown command 2");
  ExpectError(V2(0x2f, 0x11, kInetBlock), 12, "unknown command 15");
}

TEST(ProxyHeaderParserTest, V2FamilyAndTransportAreChecked) {
  ExpectError(V2(0x21, 0x41, kInetBlock), 13, "unknown address family 4");
  ExpectError(V2(0x21, 0xf1, kInetBlock), 13, "unknown address family 15");
  ExpectError(V2(0x21, 0x13, kInetBlock), 13, "unknown transport 3");
}

TEST(ProxyHeaderParserTest, V2LengthIsChecked) {
  // Too long: refused at the length's second byte, before any of the block arrives.
  ExpectError(V2(0x21, 0x00, std::string(ProxyHeaderParser::kMaxV2Length + 1, 'x')), 15,
              "above 4096");
  ExpectError(V2(0x20, 0x00, std::string(65535, 'x')), 15, "above 4096");
  // Too short for the family's addresses.
  ExpectError(V2(0x21, 0x11, kInetBlock.substr(0, 11)), 15, "too short");
  ExpectError(V2(0x21, 0x21, Inet6Block().substr(0, 35)), 15, "too short");
  ExpectError(V2(0x21, 0x31, std::string(215, '/')), 15, "too short");
  ExpectError(V2(0x21, 0x12, kInetBlock.substr(0, 11)), 15, "too short");  // UDP too
}

TEST(ProxyHeaderParserTest, V2TruncatedHeaderAsksForMore) {
  const std::string h = V2(0x21, 0x11,
                           kInetBlock +
                               "\x03\x00\x04"
                               "abcd"s);
  const Outcome o = Parse(h.substr(0, h.size() - 1));
  EXPECT_EQ(o.status, Status::kNeedMore);
  EXPECT_EQ(o.consumed, h.size() - 1);
  EXPECT_EQ(o.source, std::nullopt);  // nothing reported before kDone
}

// ---- the call contract ----

TEST(ProxyHeaderParserTest, EmptyFeedAsksForMore) {
  ProxyHeaderParser p;
  EXPECT_EQ(p.version(), 0);
  const ProxyHeaderParser::Result r = p.Feed({});
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(p.Feed(Bytes("PROXY UNKNOWN\r")).status, Status::kNeedMore);
  EXPECT_EQ(p.Feed({}).status, Status::kNeedMore);
  EXPECT_EQ(p.Feed(Bytes("\n")).status, Status::kDone);
}

TEST(ProxyHeaderParserTest, FeedAfterTheEndRepeatsTheStatusAndConsumesNothing) {
  ProxyHeaderParser done;
  EXPECT_EQ(done.Feed(Bytes("PROXY UNKNOWN\r\n")).status, Status::kDone);
  const ProxyHeaderParser::Result again = done.Feed(Bytes("PROXY UNKNOWN\r\n"));
  EXPECT_EQ(again.status, Status::kDone);
  EXPECT_EQ(again.consumed, 0u);

  ProxyHeaderParser failed;
  EXPECT_EQ(failed.Feed(Bytes("\x10")).status, Status::kError);
  const ProxyHeaderParser::Result still = failed.Feed(Bytes("PROXY UNKNOWN\r\n"));
  EXPECT_EQ(still.status, Status::kError);
  EXPECT_EQ(still.consumed, 0u);
  EXPECT_EQ(failed.error(), "not a PROXY protocol header (first byte 0x10)");
}

TEST(ProxyHeaderParserTest, KeepsNoCopyOfTheBlock) {
  // A v1 address text, the source and the bookkeeping: nothing sized by kMaxV2Length or kMaxPeek.
  EXPECT_LT(sizeof(ProxyHeaderParser), ProxyHeaderParser::kMaxPeek);
}

}  // namespace
}  // namespace tinymq::net
