#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

// ProxyHeaderParser: the server side of the PROXY protocol ("The PROXY protocol, Versions 1 & 2",
// haproxy's doc/proxy-protocol.txt): reads the header a load balancer sends ahead of a client's
// own bytes and reports the client's address. Sans-I/O: bytes go in, a status and a count come out.
//
// Use, one parser per accepted connection: recv(MSG_PEEK) up to kMaxPeek bytes, Feed() them, then
// read exactly `consumed` bytes out of the socket. kNeedMore: feed what arrives next (never the
// same bytes twice: MSG_PEEK cannot skip, so drain `consumed` before peeking again). kDone: what
// follows the header is still in the socket for TLS, WebSocket or MQTT. kError: close.
//
// Accepted:
//   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", the same with TCP6, and
//       "PROXY UNKNOWN[ <anything but CR>]\r\n"; at most 107 bytes, CRLF included. Exactly one
//       space between fields; addresses as inet_pton takes them for the family; ports decimal
//       0-65535 without sign or leading zero ("0" itself is fine), as §2.1 requires ("heading
//       zeroes are not permitted"). Case matters.
//   v2  the 12-byte signature; version 2; command LOCAL (0) or PROXY (1); for PROXY, a family of
//       0-3 and a transport of 0-2 (§2.2: other values must be rejected; LOCAL ignores the byte);
//       a length of at most kMaxV2Length that holds the family's addresses (AF_INET 12, AF_INET6
//       36, AF_UNIX 216 bytes); then that many bytes. TLVs after the addresses are counted as
//       consumed, not parsed or kept.
//
// Early refusal: a byte that cannot continue a valid header is refused at once, so a client that
// bypasses the load balancer is not left waiting for an answer: an MQTT CONNECT (0x10), a TLS
// ClientHello (0x16) and "GET" fail on their first byte, "POST" on its second. Two bounded
// exceptions: a v1 address is screened per byte by character and length only and checked with
// inet_pton at the space that ends it; a v1 line that cannot end within 107 bytes is refused when
// only its CRLF would still fit.
//
// Threading: Owned by one worker thread; not thread-safe.
// Lifetime:  keeps no reference to the bytes fed; holds at most one v1 address text and the
//            source address, never a TLV. source() and error() live as long as the parser.
// Errors:    Feed() throws nothing but std::bad_alloc. kError sets error() to one line, e.g.
//            "PROXY v1: bad source port" or "not a PROXY protocol header (first byte 0x10)". Once
//            kDone or kError, Feed() repeats that status and consumes nothing.

namespace tinymq::net {

class ProxyHeaderParser {
 public:
  // The most the caller needs to peek at once (v1's longest line is 107 bytes; a v2 header is 16
  // bytes plus its length).
  static constexpr std::size_t kMaxPeek = 536;
  // The longest v2 address+TLV block accepted (bytes after the 16-byte header); longer → error.
  static constexpr std::size_t kMaxV2Length = 4096;

  enum class Status : std::uint8_t { kNeedMore, kDone, kError };
  struct Result {
    Status status;
    std::size_t consumed;
  };

  // Feeds the next bytes of the stream (those after the ones consumed so far). Consumes only
  // bytes of the header, never one past its end; returns how many. kNeedMore: everything fed was
  // header (consumed == input.size()), feed more. kDone: the header is complete (consumed may be
  // less than input.size(): the rest is the client's own data). kError: not a valid header
  // (error() says why); consumed counts the bytes accepted before the offending one.
  [[nodiscard]] Result Feed(std::span<const std::uint8_t> input);

  // kDone: the client's address as the load balancer saw it, formatted like net::FormatAddress
  // ("192.0.2.1:5000", "[2001:db8::1]:5000", the address as inet_ntop writes it). nullopt for v2
  // LOCAL, v1 UNKNOWN, v2 AF_UNSPEC or AF_UNIX or a transport other than STREAM (the caller keeps
  // the socket's own peer), and before kDone.
  const std::optional<std::string>& source() const { return source_; }
  // 1 or 2 from the first byte on ('P' or '\r'); 0 before.
  int version() const { return version_; }
  // Why Feed() returned kError; empty otherwise.
  const std::string& error() const { return error_; }

 private:
  enum class State : std::uint8_t {
    kStart,
    kLiteral,        // matching literal_, then after_literal_
    kV1Protocol,     // 'T' (TCP4/TCP6) or 'U' (UNKNOWN)
    kV1Family,       // '4' or '6'
    kV1UnknownEnd,   // ' ' or '\r' after "UNKNOWN"
    kV1UnknownRest,  // anything up to '\r'
    kV1Address,      // field_ 0 (source) or 1 (destination)
    kV1Port,         // field_ 2 (source) or 3 (destination)
    kV1Lf,           // '\n' after '\r'
    kV2VersionCommand,
    kV2Family,
    kV2Length,  // two bytes, big-endian
    kV2Block,   // block_length_ bytes: addresses, then TLVs
    kDone,
    kError,
  };

  // Longest address text inet_pton may take (INET6_ADDRSTRLEN without its NUL).
  static constexpr std::size_t kMaxAddressText = 45;

  bool Step(std::uint8_t byte);
  bool StepV1Address(std::uint8_t byte);
  bool StepV1Port(std::uint8_t byte);
  bool StepV2Family(std::uint8_t byte);
  bool StepV2Length(std::uint8_t byte);
  void StepV2Block(std::uint8_t byte);
  void Expect(std::string_view literal, State then, const char* error);
  bool Fail(std::string error);
  void Finish();
  // v2: bytes at the start of the block that are read one by one (source and destination
  // address, source port); the rest is only counted.
  std::size_t V2BytesToRead() const { return source_length_ == 0 ? 0 : 2 * source_length_ + 2; }

  State state_ = State::kStart;
  int version_ = 0;
  std::size_t position_ = 0;  // header bytes consumed so far

  std::string_view literal_;  // static text
  std::size_t literal_position_ = 0;
  State after_literal_ = State::kStart;
  const char* literal_error_ = "";

  // v1
  bool v6_ = false;
  std::uint8_t field_ = 0;
  std::array<char, kMaxAddressText + 1> token_{};  // NUL-terminated for inet_pton
  std::size_t token_length_ = 0;
  std::uint32_t port_ = 0;
  std::size_t port_digits_ = 0;

  // v2
  bool proxy_command_ = false;
  std::size_t min_block_length_ = 0;
  std::size_t block_length_ = 0;
  std::size_t block_position_ = 0;
  std::size_t length_bytes_ = 0;

  // The source to report: 4 or 16 address bytes, 0 for none.
  std::size_t source_length_ = 0;
  std::array<std::uint8_t, 16> source_address_{};
  std::uint16_t source_port_ = 0;

  std::optional<std::string> source_;
  std::string error_;
};

}  // namespace tinymq::net
