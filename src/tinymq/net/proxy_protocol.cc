#include "tinymq/net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "tinymq/net/listener.h"
#include "tinymq/util/check.h"

namespace tinymq::net {

namespace {

// §2.2: "\r\n\r\n\0\r\nQUIT\n". Its first byte is taken by kStart.
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
// §2.1: the longest v1 line, CRLF included.
constexpr std::size_t kV1MaxLine = 107;
// "255.255.255.255" (INET_ADDRSTRLEN without its NUL).
constexpr std::size_t kMaxV4Text = 15;

constexpr const char* kNotProxy = "not a PROXY protocol header";

bool IsDigit(std::uint8_t b) { return b >= '0' && b <= '9'; }

bool IsHexDigit(std::uint8_t b) {
  return IsDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

std::string Hex(std::uint8_t b) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  return {'0', 'x', kDigits[b >> 4], kDigits[b & 0xf]};
}

}  // namespace

ProxyHeaderParser::Result ProxyHeaderParser::Feed(std::span<const std::uint8_t> input) {
  if (state_ == State::kDone) {
    return {Status::kDone, 0};
  }
  if (state_ == State::kError) {
    return {Status::kError, 0};
  }
  std::size_t i = 0;
  while (i < input.size()) {
    if (state_ == State::kV2Block && block_position_ >= V2BytesToRead()) {
      // TLVs (or addresses nobody reads): counted, not copied.
      const std::size_t n = std::min(block_length_ - block_position_, input.size() - i);
      block_position_ += n;
      position_ += n;
      i += n;
      if (block_position_ == block_length_) {
        Finish();
      }
    } else {
      if (!Step(input[i])) {
        state_ = State::kError;
        return {Status::kError, i};
      }
      ++position_;
      ++i;
    }
    if (state_ == State::kDone) {
      return {Status::kDone, i};
    }
  }
  return {Status::kNeedMore, i};
}

// `byte` is header byte number position_ (from 0). False (with error_ set) refuses it.
bool ProxyHeaderParser::Step(std::uint8_t byte) {
  if (version_ == 1 && state_ != State::kV1Lf) {
    // Byte 106 can only be the LF, and so byte 105 only the CR (or the LF of a shorter line).
    const std::size_t left = kV1MaxLine - position_;  // this byte included
    if (left == 1 || (left == 2 && byte != '\r')) {
      return Fail("PROXY v1: line longer than 107 bytes");
    }
  }
  switch (state_) {
    case State::kStart:
      if (byte == 'P') {
        version_ = 1;
        Expect("ROXY ", State::kV1Protocol, kNotProxy);
        return true;
      }
      if (byte == '\r') {
        version_ = 2;
        Expect(kV2Signature.substr(1), State::kV2VersionCommand, kNotProxy);
        return true;
      }
      return Fail(std::string(kNotProxy) + " (first byte " + Hex(byte) + ")");

    case State::kLiteral:
      if (byte != static_cast<std::uint8_t>(literal_[literal_position_])) {
        return Fail(literal_error_);
      }
      if (++literal_position_ == literal_.size()) {
        state_ = after_literal_;
      }
      return true;

    case State::kV1Protocol:
      if (byte == 'T') {
        Expect("CP", State::kV1Family, "PROXY v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");
        return true;
      }
      if (byte == 'U') {
        Expect("NKNOWN", State::kV1UnknownEnd,
               "PROXY v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");
        return true;
      }
      return Fail("PROXY v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");

    case State::kV1Family:
      if (byte != '4' && byte != '6') {
        return Fail("PROXY v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");
      }
      v6_ = byte == '6';
      source_length_ = v6_ ? 16 : 4;
      field_ = 0;
      token_length_ = 0;
      Expect(" ", State::kV1Address, "PROXY v1: expected one space after the protocol");
      return true;

    case State::kV1UnknownEnd:
      if (byte == ' ') {
        state_ = State::kV1UnknownRest;
        return true;
      }
      if (byte == '\r') {
        state_ = State::kV1Lf;
        return true;
      }
      return Fail("PROXY v1: unknown protocol (TCP4, TCP6 or UNKNOWN)");

    case State::kV1UnknownRest:
      // §2.1: for UNKNOWN the receiver ignores everything up to the CRLF. The first CR ends it.
      if (byte == '\r') {
        state_ = State::kV1Lf;
      }
      return true;

    case State::kV1Address: return StepV1Address(byte);
    case State::kV1Port: return StepV1Port(byte);

    case State::kV1Lf:
      if (byte != '\n') {
        return Fail("PROXY v1: CR not followed by LF");
      }
      Finish();
      return true;

    case State::kV2VersionCommand:
      if ((byte >> 4) != 2) {
        return Fail("PROXY v2: version " + std::to_string(byte >> 4) + ", not 2");
      }
      if ((byte & 0xf) > 1) {  // §2.2: receivers must drop other commands
        return Fail("PROXY v2: unknown command " + std::to_string(byte & 0xf));
      }
      proxy_command_ = (byte & 0xf) == 1;
      state_ = State::kV2Family;
      return true;

    case State::kV2Family: return StepV2Family(byte);
    case State::kV2Length: return StepV2Length(byte);

    case State::kV2Block: StepV2Block(byte); return true;

    case State::kDone:
    case State::kError: break;
  }
  TINYMQ_CHECK(false);  // Feed() never steps past kDone or kError
  return false;
}

bool ProxyHeaderParser::StepV1Address(std::uint8_t byte) {
  const char* what =
      field_ == 0 ? "PROXY v1: bad source address" : "PROXY v1: bad destination address";
  if (byte == ' ') {
    if (token_length_ == 0) {
      return Fail(what);
    }
    token_[token_length_] = '\0';
    std::array<std::uint8_t, 16> binary{};
    if (::inet_pton(v6_ ? AF_INET6 : AF_INET, token_.data(), binary.data()) != 1) {
      return Fail(what);
    }
    if (field_ == 0) {
      source_address_ = binary;
    }
    token_length_ = 0;
    if (++field_ == 2) {
      port_ = 0;
      port_digits_ = 0;
      state_ = State::kV1Port;
    }
    return true;
  }
  // Screening only: inet_pton has the last word at the space. IPv6 text may end in a dotted quad.
  const bool plausible =
      v6_ ? IsHexDigit(byte) || byte == ':' || byte == '.' : IsDigit(byte) || byte == '.';
  const std::size_t max = v6_ ? kMaxAddressText : kMaxV4Text;
  if (!plausible || token_length_ == max) {
    return Fail(what);
  }
  token_[token_length_++] = static_cast<char>(byte);
  return true;
}

bool ProxyHeaderParser::StepV1Port(std::uint8_t byte) {
  const bool source = field_ == 2;
  const char* what = source ? "PROXY v1: bad source port" : "PROXY v1: bad destination port";
  if (IsDigit(byte)) {
    // §2.1: decimal 0-65535, "heading zeroes are not permitted": after a leading '0' only the
    // field's end may follow.
    if (port_digits_ > 0 && port_ == 0) {
      return Fail(what);
    }
    port_ = port_ * 10 + static_cast<std::uint32_t>(byte - '0');
    ++port_digits_;
    if (port_ > 65535) {
      return Fail(what);
    }
    return true;
  }
  if (byte != (source ? ' ' : '\r') || port_digits_ == 0) {
    return Fail(what);
  }
  if (source) {
    source_port_ = static_cast<std::uint16_t>(port_);
    port_ = 0;
    port_digits_ = 0;
    field_ = 3;
  } else {
    state_ = State::kV1Lf;
  }
  return true;
}

bool ProxyHeaderParser::StepV2Family(std::uint8_t byte) {
  state_ = State::kV2Length;
  length_bytes_ = 0;
  if (!proxy_command_) {
    return true;  // §2.2: LOCAL discards the block, family included
  }
  const int family = byte >> 4;
  const int transport = byte & 0xf;
  if (family > 3) {
    return Fail("PROXY v2: unknown address family " + std::to_string(family));
  }
  if (transport > 2) {
    return Fail("PROXY v2: unknown transport " + std::to_string(transport));
  }
  // AF_INET: 2 x 4 address bytes + 2 x 2 port bytes; AF_INET6: 2 x 16 + 2 x 2; AF_UNIX: 2 x 108.
  constexpr std::array<std::size_t, 4> kMinLength = {0, 12, 36, 216};
  min_block_length_ = kMinLength[static_cast<std::size_t>(family)];
  const bool stream = transport == 1;
  if (stream && family == 1) {
    source_length_ = 4;
  } else if (stream && family == 2) {
    source_length_ = 16;
  }
  return true;
}

bool ProxyHeaderParser::StepV2Length(std::uint8_t byte) {
  block_length_ = (block_length_ << 8) | byte;
  if (++length_bytes_ < 2) {
    return true;
  }
  if (block_length_ > kMaxV2Length) {
    return Fail("PROXY v2: length " + std::to_string(block_length_) + " is above " +
                std::to_string(kMaxV2Length));
  }
  if (block_length_ < min_block_length_) {
    return Fail("PROXY v2: length " + std::to_string(block_length_) + " is too short for " +
                std::to_string(min_block_length_) + " bytes of addresses");
  }
  block_position_ = 0;
  if (block_length_ == 0) {
    Finish();
  } else {
    state_ = State::kV2Block;
  }
  return true;
}

// Block layout for AF_INET/AF_INET6 (§2.2): source address, destination address, source port,
// destination port, each in network byte order. Only the source parts are kept.
void ProxyHeaderParser::StepV2Block(std::uint8_t byte) {
  const std::size_t at = block_position_;
  if (at < source_length_) {
    source_address_[at] = byte;
  } else if (at == 2 * source_length_) {
    source_port_ = static_cast<std::uint16_t>(byte << 8);
  } else if (at == 2 * source_length_ + 1) {
    source_port_ = static_cast<std::uint16_t>(source_port_ | byte);
  }
  // Never the block's last byte: the destination port follows (the length check saw to that), so
  // Feed() ends the block.
  ++block_position_;
}

void ProxyHeaderParser::Expect(std::string_view literal, State then, const char* error) {
  state_ = State::kLiteral;
  literal_ = literal;
  literal_position_ = 0;
  after_literal_ = then;
  literal_error_ = error;
}

bool ProxyHeaderParser::Fail(std::string error) {
  error_ = std::move(error);
  return false;
}

void ProxyHeaderParser::Finish() {
  state_ = State::kDone;
  if (source_length_ == 0) {
    return;
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  const int family = source_length_ == 16 ? AF_INET6 : AF_INET;
  // Cannot fail: the buffer fits any address of the family.
  if (::inet_ntop(family, source_address_.data(), text.data(), text.size()) != nullptr) {
    source_ = FormatAddress(text.data(), source_port_);
  }
}

}  // namespace tinymq::net
