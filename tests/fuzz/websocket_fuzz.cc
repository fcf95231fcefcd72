// libFuzzer target for MQTT over WebSocket (net/websocket.h): the opening handshake parser and the
// decoder of client frames.
//
// Input: byte 0: bits 0-1 the mode, bits 2-6 the decoder's output buffer size less 1 (1 to 32),
// bit 7 the decoder's limits (kSmall, or kLarge, which lets 16-bit lengths through).
// Byte 1: how the stream is cut into the pieces fed: 0 one piece, else pieces of 1 to byte 1
// bytes, sizes drawn from a generator seeded with it. The rest: the stream from the client.
//  mode 0: the handshake alone.
//  mode 1: the decoder alone, output to a separate buffer.
//  mode 2: a connection: the handshake, then the decoder on the bytes after the head.
//  mode 3: the decoder alone, decoding in place (output written over the input already read).
//
// Properties, each checked with Check() (aborts, so libFuzzer keeps the input):
//  Handshake
//  1. Feed takes at most what it is given, all of it while it needs more.
//  2. The result does not depend on the split: fed whole, the same status, bytes consumed,
//     response, error, path and subprotocol.
//  3. kDone: the bytes consumed end exactly at the first "\r\n\r\n", within kMaxRequestBytes;
//     the first line is "GET <path> HTTP/1.1"; the response is a 101 with a 28-character accept
//     and the chosen subprotocol (mqtt, mqttv3.1 or none) echoed.
//  4. kRefused: a status line of a known error status; the body is error() plus "\n", its
//     Content-Length right, "Connection: close" present; error() is one line of printable ASCII;
//     431 exactly at kMaxRequestBytes; nothing consumed past the head's end.
//  5. kNeedMore at the end: everything consumed, no "\r\n\r\n" in it, under the limit.
//  Decoder
//  6. Decode takes at most its input and writes at most its output; kNone with input left
//     means the output is full; after kClose or kError it takes nothing and repeats the event.
//  7. Events are consistent: control payloads of at most 125 bytes; kClose with closed() and a
//     code that may be received (or 1005); kError with failed(), a code of 1002, 1003, 1007 or
//     1009 and an error text.
//  8. The output bytes, the events with their payloads, the error code and where decoding
//     stopped equal those of a reference decoder below: whole-buffer, byte-by-byte unmasking,
//     written for clarity, not speed (so splits, the key offset across calls, the word-at-a-time
//     unmasking, a full output and in-place decoding must not change anything).
//  9. Decode allocates nothing unless it fails (operator new is counted).
// 10. EncodeWsControl and EncodeWsClose give back what came in: the pong for a ping carries its
//     payload; the close frame built from close_code() and close_reason() is the client's own.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/counting_new.h"
#include "tinymq/net/websocket.h"

using fuzz_alloc::allocations;
using fuzz_alloc::counting;

namespace tinymq::net {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Status = WebSocketHandshake::Status;

// Small enough that inputs of a few hundred bytes reach both limits.
constexpr WebSocketDecoder::Limits kSmall = {40, 100};
constexpr WebSocketDecoder::Limits kLarge = {1000, 3000};

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "websocket_fuzz: property failed: %s\n", what);
    std::abort();
  }
}

// Piece sizes: all at once (seed 0), or 1 to `seed` bytes from an xorshift generator.
class Splitter {
 public:
  explicit Splitter(std::uint8_t seed) : max_(seed), state_(0x9e3779b9u * (seed + 1u)) {}
  std::size_t Next(std::size_t left) {
    if (max_ == 0) {
      return left;
    }
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return std::min<std::size_t>(left, 1 + state_ % max_);
  }

 private:
  std::uint32_t max_;
  std::uint32_t state_;
};

std::string_view Text(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// ---- Handshake -------------------------------------------------------------------------------

// Feeds `stream` in pieces; returns the bytes consumed in all (properties 1, 3, 4, 5).
std::size_t CheckHandshake(WebSocketHandshake& hs, std::span<const std::uint8_t> stream,
                           std::uint8_t split) {
  Splitter splitter(split);
  std::size_t consumed = 0;
  std::size_t fed = 0;  // bytes offered so far
  while (hs.status() == Status::kNeedMore && fed < stream.size()) {
    const std::size_t n = splitter.Next(stream.size() - fed);
    const auto r = hs.Feed(stream.subspan(fed, n));
    Check(r.consumed <= n, "Feed took more than it was given");
    Check(r.status == hs.status(), "Feed's status differs from status()");
    Check(r.status != Status::kNeedMore || r.consumed == n, "kNeedMore without taking all");
    consumed += r.consumed;
    fed += n;
    if (r.status != Status::kNeedMore) {
      break;
    }
  }

  const std::string_view text = Text(stream);
  const std::size_t head_end = text.find("\r\n\r\n");
  const std::string& response = hs.response();
  switch (hs.status()) {
    case Status::kNeedMore:
      Check(consumed == stream.size(), "kNeedMore at the end without taking everything");
      Check(head_end == std::string_view::npos, "kNeedMore after the head ended");
      Check(consumed < WebSocketHandshake::kMaxRequestBytes, "kNeedMore past the limit");
      Check(response.empty() && hs.error().empty(), "kNeedMore with a response");
      break;

    case Status::kDone: {
      Check(head_end != std::string_view::npos && consumed == head_end + 4,
            "kDone did not end exactly at the first CRLFCRLF");
      Check(consumed <= WebSocketHandshake::kMaxRequestBytes, "kDone past the limit");
      Check(hs.error().empty(), "kDone with an error");
      const std::string_view first_line = text.substr(0, text.find("\r\n"));
      Check(first_line == "GET " + hs.path() + " HTTP/1.1", "path is not the request's");
      const std::string_view sub = hs.subprotocol();
      Check(sub.empty() || sub == "mqtt" || sub == "mqttv3.1", "unknown subprotocol");
      const std::string_view start =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: ";
      Check(response.starts_with(start), "101 response start");
      std::string end = "\r\n";
      if (!sub.empty()) {
        end += "Sec-WebSocket-Protocol: " + std::string(sub) + "\r\n";
      }
      end += "\r\n";
      Check(response.size() == start.size() + 28 + end.size() && response.ends_with(end),
            "101 response: accept value or subprotocol line");
      break;
    }

    case Status::kRefused: {
      const std::string& error = hs.error();
      Check(!error.empty(), "refused without an error");
      for (const char c : error) {
        Check(c >= 0x20 && c < 0x7f, "error holds a byte that is not printable ASCII");
      }
      const std::string_view status = std::string_view(response).substr(0, 13);
      const bool known = status == "HTTP/1.1 400 " || status == "HTTP/1.1 405 " ||
                         status == "HTTP/1.1 426 " || status == "HTTP/1.1 431 " ||
                         status == "HTTP/1.1 505 " || status == "HTTP/1.1 500 ";
      Check(known, "refusal with an unexpected status line");
      const std::size_t end = response.find("\r\n\r\n");
      Check(end != std::string::npos, "refusal without the end of its head");
      const std::string_view head = std::string_view(response).substr(0, end + 2);
      const std::string_view body = std::string_view(response).substr(end + 4);
      Check(body == error + "\n", "refusal body is not the error");
      Check(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n") !=
                std::string_view::npos,
            "refusal Content-Length");
      Check(head.find("\r\nConnection: close\r\n") != std::string_view::npos,
            "no Connection: close");
      Check(head.find("\r\nContent-Type: text/plain\r\n") != std::string_view::npos,
            "no Content-Type");
      // 431 exactly at the limit; another refusal there only when the limit's byte ended a line
      // (the line is checked first) or broke one (a CR not followed by LF: a 400 at that byte).
      if (status == "HTTP/1.1 431 ") {
        Check(consumed == WebSocketHandshake::kMaxRequestBytes, "431 other than at the limit");
      } else if (consumed == WebSocketHandshake::kMaxRequestBytes) {
        Check(stream[consumed - 1] == '\n' || stream[consumed - 2] == '\r',
              "refused at the limit but not with 431");
      }
      Check(head_end == std::string_view::npos || consumed <= head_end + 4,
            "refusal consumed past the head's end");
      Check(hs.path().empty() && hs.subprotocol().empty(), "refusal with a path or subprotocol");
      break;
    }
  }
  return consumed;
}

// ---- Decoder ---------------------------------------------------------------------------------

struct Seen {
  WsEvent event;
  Bytes payload;
  bool operator==(const Seen&) const = default;
};

struct Outcome {
  Bytes data;
  std::vector<Seen> events;
  std::uint16_t error_code = 0;
  std::uint16_t close_code = 0;
  std::size_t stop = 0;  // input consumed when decoding ended
};

// The reference: the whole stream at once, the rules of websocket.h in the order it checks them.
Outcome Reference(std::span<const std::uint8_t> in, WebSocketDecoder::Limits limits) {
  Outcome r;
  bool open = false;
  std::uint64_t message = 0;
  std::size_t p = 0;
  const auto fail = [&r](std::uint16_t code, std::size_t at) {
    r.events.push_back({WsEvent::kError, {}});
    r.error_code = code;
    r.stop = at;
    return r;
  };
  for (;;) {
    if (in.size() - p < 2) {
      r.stop = in.size();
      return r;
    }
    const bool fin = (in[p] & 0x80) != 0;
    const int opcode = in[p] & 0x0f;
    const int length7 = in[p + 1] & 0x7f;
    const bool control = opcode >= 8;
    if ((in[p] & 0x70) != 0) {
      return fail(1002, p + 2);
    }
    if (opcode == 1) {
      return fail(1003, p + 2);
    }
    if (opcode != 0 && opcode != 2 && opcode != 8 && opcode != 9 && opcode != 10) {
      return fail(1002, p + 2);
    }
    if ((in[p + 1] & 0x80) == 0) {
      return fail(1002, p + 2);
    }
    if (control && (!fin || length7 > 125)) {
      return fail(1002, p + 2);
    }
    if (!control && (opcode == 0) != open) {
      return fail(1002, p + 2);
    }
    const std::size_t extended = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
    const std::size_t header = 2 + extended + 4;
    if (in.size() - p < header) {
      r.stop = in.size();
      return r;
    }
    std::uint64_t length = static_cast<std::uint64_t>(length7);
    if (extended != 0) {
      length = 0;
      for (std::size_t k = 0; k < extended; ++k) {
        length = length * 256 + in[p + 2 + k];
      }
      if (length >= (std::uint64_t{1} << 63)) {
        return fail(1002, p + header);
      }
      if ((extended == 2 && length < 126) || (extended == 8 && length < 65536)) {
        return fail(1002, p + header);
      }
    }
    const std::uint8_t* key = &in[p + 2 + extended];
    if (!control) {
      if (length > limits.max_frame_size) {
        return fail(1009, p + header);
      }
      if (opcode == 2) {
        message = 0;
      }
      if (message + length > limits.max_message_size) {  // both small here: no overflow
        return fail(1009, p + header);
      }
      message += length;
      open = !fin;
    }
    const std::size_t available = in.size() - p - header;
    const std::size_t n = length < available ? static_cast<std::size_t>(length) : available;
    Bytes payload(n);
    for (std::size_t k = 0; k < n; ++k) {
      payload[k] = in[p + header + k] ^ key[k % 4];
    }
    if (!control) {
      r.data.insert(r.data.end(), payload.begin(), payload.end());
    }
    if (n < length) {
      r.stop = in.size();
      return r;
    }
    p += header + n;
    if (!control) {
      continue;
    }
    if (opcode == 8) {
      if (n == 1) {
        return fail(1002, p);
      }
      if (n >= 2) {
        const auto code = static_cast<std::uint16_t>(payload[0] << 8 | payload[1]);
        if (!IsValidReceivedCloseCode(code)) {
          return fail(1002, p);
        }
        if (!IsValidUtf8(std::span(payload).subspan(2))) {
          return fail(1007, p);
        }
        r.close_code = code;
      } else {
        r.close_code = kWsCloseNoStatus;
      }
      r.events.push_back({WsEvent::kClose, payload});
      r.stop = p;
      return r;
    }
    r.events.push_back({opcode == 9 ? WsEvent::kPing : WsEvent::kPong, payload});
  }
}

// Checks one step's invariants and records its event (properties 6, 7, 9); false when decoding
// has ended.
bool Record(WebSocketDecoder& d, const WsStep& s, std::size_t in_size, std::size_t out_size,
            std::size_t allocated, Outcome& got) {
  Check(s.consumed <= in_size, "Decode took more than it was given");
  Check(s.produced <= out_size, "Decode wrote more than the output holds");
  Check(s.event == WsEvent::kError || allocated == 0, "Decode allocated without failing");
  if (s.event == WsEvent::kNone) {
    Check(s.consumed == in_size || s.produced == out_size, "stopped early with room left");
    return true;
  }
  const auto payload = d.control_payload();
  Check(payload.size() <= 125, "control payload over 125 bytes");
  switch (s.event) {
    case WsEvent::kPing:
    case WsEvent::kPong: {
      Check(!d.failed() && !d.closed(), "ping/pong on a finished decoder");
      const Bytes pong = EncodeWsControl(WsOpcode::kPong, payload);  // property 10
      Check(pong.size() == 2 + payload.size() && pong[0] == 0x8a && pong[1] == payload.size() &&
                std::equal(payload.begin(), payload.end(), pong.begin() + 2),
            "the pong does not carry the ping's payload");
      break;
    }
    case WsEvent::kClose: {
      Check(d.closed() && !d.failed(), "kClose without closed()");
      Check(d.close_code() == kWsCloseNoStatus || IsValidReceivedCloseCode(d.close_code()),
            "close code not valid");
      got.close_code = d.close_code();
      // Echoing the client's close gives back its payload exactly (property 10).
      const Bytes echo = EncodeWsClose(d.close_code(), d.close_reason());
      Check(echo.size() == 2 + payload.size() && echo[0] == 0x88 && echo[1] == payload.size() &&
                std::equal(payload.begin(), payload.end(), echo.begin() + 2),
            "the close echoed is not the client's");
      break;
    }
    case WsEvent::kError: {
      const std::uint16_t c = d.error_code();
      Check(d.failed() && !d.closed(), "kError without failed()");
      Check(c == 1002 || c == 1003 || c == 1007 || c == 1009, "unexpected error code");
      Check(!d.error().empty(), "kError without an error text");
      got.error_code = c;
      break;
    }
    case WsEvent::kNone: break;
  }
  got.events.push_back(
      {s.event, s.event == WsEvent::kError ? Bytes{} : Bytes(payload.begin(), payload.end())});
  if (s.event == WsEvent::kClose || s.event == WsEvent::kError) {
    std::array<std::uint8_t, 1> more_in = {0x82};
    std::array<std::uint8_t, 1> more_out{};
    const WsStep again = d.Decode(more_in, more_out);
    Check(again.event == s.event && again.consumed == 0 && again.produced == 0,
          "a finished decoder took more or changed its event");
    return false;
  }
  return true;
}

WsStep CountedDecode(WebSocketDecoder& d, std::span<const std::uint8_t> in,
                     std::span<std::uint8_t> out, std::size_t& allocated) {
  allocations = 0;
  counting = true;
  const WsStep s = d.Decode(in, out);
  counting = false;
  allocated = allocations;
  return s;
}

// Decodes `stream` in pieces through an output buffer of `out_size` bytes.
Outcome DecodeSplit(std::span<const std::uint8_t> stream, std::uint8_t split, std::size_t out_size,
                    WebSocketDecoder::Limits limits) {
  WebSocketDecoder d(limits);
  Splitter splitter(split);
  Outcome got;
  Bytes out(out_size);
  std::size_t fed = 0;
  while (fed < stream.size()) {
    const std::size_t end = fed + splitter.Next(stream.size() - fed);
    while (got.stop < end) {
      const auto in = stream.subspan(got.stop, end - got.stop);
      std::size_t allocated = 0;
      const WsStep s = CountedDecode(d, in, out, allocated);
      got.stop += s.consumed;
      got.data.insert(got.data.end(), out.begin(),
                      out.begin() + static_cast<std::ptrdiff_t>(s.produced));
      if (!Record(d, s, in.size(), out.size(), allocated, got)) {
        return got;
      }
    }
    fed = end;
  }
  return got;
}

// Decodes a copy of `stream` in place: the output goes over the input already consumed.
Outcome DecodeInPlace(std::span<const std::uint8_t> stream, std::uint8_t split,
                      std::size_t out_size, WebSocketDecoder::Limits limits) {
  WebSocketDecoder d(limits);
  Splitter splitter(split);
  Outcome got;
  Bytes buffer(stream.begin(), stream.end());
  std::size_t written = 0;
  std::size_t fed = 0;
  bool going = true;
  while (going && fed < buffer.size()) {
    const std::size_t end = fed + splitter.Next(buffer.size() - fed);
    while (going && got.stop < end) {
      const std::span<const std::uint8_t> in(buffer.data() + got.stop, end - got.stop);
      const std::span<std::uint8_t> out(buffer.data() + written,
                                        std::min(out_size, buffer.size() - written));
      std::size_t allocated = 0;
      const WsStep s = CountedDecode(d, in, out, allocated);
      got.stop += s.consumed;
      written += s.produced;
      Check(written <= got.stop, "in-place output overtook the input");
      going = Record(d, s, in.size(), out.size(), allocated, got);
    }
    fed = end;
  }
  got.data.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(written));
  return got;
}

void CheckDecoder(std::span<const std::uint8_t> stream, std::uint8_t split, std::size_t out_size,
                  WebSocketDecoder::Limits limits, bool in_place) {
  const Outcome got = in_place ? DecodeInPlace(stream, split, out_size, limits)
                               : DecodeSplit(stream, split, out_size, limits);
  const Outcome want = Reference(stream, limits);
  Check(got.events == want.events, "events differ from the reference");
  Check(got.error_code == want.error_code, "error code differs from the reference");
  Check(got.close_code == want.close_code, "close code differs from the reference");
  Check(got.stop == want.stop, "stop position differs from the reference");
  Check(got.data == want.data, "output differs from the reference");
}

int Run(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const int mode = data[0] & 3;
  const std::size_t out_size = 1 + ((data[0] >> 2) & 31);
  const WebSocketDecoder::Limits limits = (data[0] & 0x80) != 0 ? kLarge : kSmall;
  const std::uint8_t split = data[1];
  const std::span<const std::uint8_t> stream(data + 2, size - 2);

  if (mode == 1 || mode == 3) {
    CheckDecoder(stream, split, out_size, limits, mode == 3);
    return 0;
  }

  WebSocketHandshake hs;
  const std::size_t consumed = CheckHandshake(hs, stream, split);
  WebSocketHandshake whole;  // property 2
  const auto r = whole.Feed(stream);
  Check(r.status == hs.status() && r.consumed == consumed, "split changed the status or consumed");
  Check(whole.response() == hs.response() && whole.error() == hs.error() &&
            whole.path() == hs.path() && whole.subprotocol() == hs.subprotocol(),
        "split changed the response");
  if (mode == 2 && hs.status() == Status::kDone) {
    CheckDecoder(stream.subspan(consumed), split, out_size, limits, false);
  }
  return 0;
}

}  // namespace
}  // namespace tinymq::net

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return tinymq::net::Run(data, size);
}
