// libFuzzer target for the PROXY protocol header parser (net::ProxyHeaderParser).
//
// Input: one byte whose low 3 bits give k (0-7), then k piece sizes (one byte each, used in turn;
// 0 is an empty Feed() followed by a one-byte one), then the stream a connection might start with.
// k == 0 feeds the stream one byte at a time.
//
// Properties, each checked with Check() (aborts, so libFuzzer keeps the input):
//  1. Contract of each Feed(): consumed <= bytes fed; kNeedMore consumed everything fed; after
//     kDone or kError, Feed() repeats the status and consumes nothing. kDone: version 1 or 2 and
//     no error; kError: an error and no source.
//  2. Split invariance: the stream fed whole and fed in the chosen pieces gives the same status,
//     total consumed, source, version and error.
//  3. Exact end: for kDone, the first `consumed` bytes alone give kDone with all of them consumed
//     and one byte fewer gives kNeedMore, so the header ends exactly there and no client byte was
//     taken. For kError, the first `consumed` bytes give kNeedMore and one more gives the same
//     error: the refusal falls on the first offending byte as the parser itself sees it.
//  4. Reference: a whole-buffer reading of the spec's rules (ReferenceParse below: split on
//     spaces, inet_pton, a direct read of the v2 fields) agrees: a header it accepts is kDone with
//     the same length and source; one it refuses is kError; while it still needs bytes the parser
//     is not kDone.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/net/listener.h"
#include "tinymq/net/proxy_protocol.h"

namespace tinymq::net {
namespace {

using Status = ProxyHeaderParser::Status;

void Check(bool ok, const char* what, std::string_view detail = {}) {
  if (ok) {
    return;
  }
  std::fprintf(stderr, "proxy_fuzz: %s [%.*s]\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Outcome {
  Status status = Status::kNeedMore;
  std::size_t consumed = 0;
  std::optional<std::string> source;
  int version = 0;
  std::string error;
};

// Feeds `stream` in pieces of the sizes in `pieces`, in turn (empty: one byte at a time).
Outcome FeedPieces(std::string_view stream, std::span<const std::uint8_t> pieces) {
  ProxyHeaderParser p;
  Outcome o;
  std::size_t at = 0;
  std::size_t turn = 0;
  while (at < stream.size() && o.status == Status::kNeedMore) {
    std::size_t size = pieces.empty() ? 1 : pieces[turn++ % pieces.size()];
    if (size == 0) {
      const ProxyHeaderParser::Result empty = p.Feed({});
      Check(empty.status == Status::kNeedMore && empty.consumed == 0, "empty Feed() changed state");
      size = 1;
    }
    const std::string_view piece = stream.substr(at, size);
    const ProxyHeaderParser::Result r = p.Feed(Bytes(piece));
    Check(r.consumed <= piece.size(), "consumed more than fed");
    Check(r.status != Status::kNeedMore || r.consumed == piece.size(),
          "kNeedMore left bytes unconsumed");
    o.status = r.status;
    o.consumed += r.consumed;
    at += piece.size();
  }
  if (o.status != Status::kNeedMore) {
    const ProxyHeaderParser::Result again = p.Feed(Bytes(stream));
    Check(again.status == o.status && again.consumed == 0, "Feed() after the end did something");
  }
  o.source = p.source();
  o.version = p.version();
  o.error = p.error();
  if (o.status == Status::kDone) {
    Check(o.version == 1 || o.version == 2, "kDone without a version");
    Check(o.error.empty(), "kDone with an error");
  } else if (o.status == Status::kError) {
    Check(!o.error.empty(), "kError without a reason");
    Check(!o.source.has_value(), "kError with a source");
  } else {
    Check(!o.source.has_value(), "a source before kDone");
  }
  return o;
}

Outcome FeedWhole(std::string_view stream) {
  ProxyHeaderParser p;
  const ProxyHeaderParser::Result r = p.Feed(Bytes(stream));
  Check(r.consumed <= stream.size(), "consumed more than fed (whole)");
  Check(r.status != Status::kNeedMore || r.consumed == stream.size(),
        "kNeedMore left bytes unconsumed (whole)");
  return {r.status, r.consumed, p.source(), p.version(), p.error()};
}

// ---- the reference: the spec's rules over a whole buffer ----

enum class Verdict { kIncomplete, kValid, kInvalid };

struct Reference {
  Verdict verdict = Verdict::kIncomplete;
  std::size_t length = 0;  // kValid: header bytes
  std::optional<std::string> source;
};

// A verdict without a header.
Reference Only(Verdict verdict) {
  Reference r;
  r.verdict = verdict;
  return r;
}

std::optional<std::string> Format(int family, const void* address, std::uint16_t port) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (::inet_ntop(family, address, text.data(), text.size()) == nullptr) {
    return std::nullopt;
  }
  return FormatAddress(text.data(), port);
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t space = line.find(' ', start);
    out.push_back(line.substr(start, space == line.npos ? line.npos : space - start));
    if (space == line.npos) {
      return out;
    }
    start = space + 1;
  }
}

std::optional<std::uint16_t> Port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  std::uint32_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(v);
}

bool Address(int family, std::string_view s, void* out) {
  if (s.find('\0') != s.npos) {
    return false;
  }
  return ::inet_pton(family, std::string(s).c_str(), out) == 1;
}

Reference ReferenceV1(std::string_view s) {
  constexpr std::string_view kPrefix = "PROXY ";
  if (s.substr(0, kPrefix.size()) != kPrefix.substr(0, std::min(s.size(), kPrefix.size()))) {
    return Only(Verdict::kInvalid);
  }
  // The line ends at its first CR, which must be followed by LF, within 107 bytes.
  const std::size_t cr = s.substr(0, 106).find('\r');
  if (cr == s.npos) {
    return Only(s.size() >= 106 ? Verdict::kInvalid : Verdict::kIncomplete);
  }
  if (cr + 1 >= s.size()) {
    return Only(Verdict::kIncomplete);
  }
  if (s[cr + 1] != '\n') {
    return Only(Verdict::kInvalid);
  }
  const std::string_view line = s.substr(0, cr);
  const Reference valid_unknown{Verdict::kValid, cr + 2, std::nullopt};
  if (line == "PROXY UNKNOWN" || line.starts_with("PROXY UNKNOWN ")) {
    return valid_unknown;
  }
  const std::vector<std::string_view> f = Split(line);
  if (f.size() != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6")) {
    return Only(Verdict::kInvalid);
  }
  const int family = f[1] == "TCP4" ? AF_INET : AF_INET6;
  std::array<std::uint8_t, 16> source{};
  std::array<std::uint8_t, 16> destination{};
  const std::optional<std::uint16_t> sport = Port(f[4]);
  if (!Address(family, f[2], source.data()) || !Address(family, f[3], destination.data()) ||
      !sport || !Port(f[5])) {
    return Only(Verdict::kInvalid);
  }
  return {Verdict::kValid, cr + 2, Format(family, source.data(), *sport)};
}

Reference ReferenceV2(std::string_view s) {
  constexpr std::string_view kSignature("\r\n\r\n\0\r\nQUIT\n", 12);
  const std::size_t n = std::min(s.size(), kSignature.size());
  if (s.substr(0, n) != kSignature.substr(0, n)) {
    return Only(Verdict::kInvalid);
  }
  if (s.size() < 16) {
    return Only(Verdict::kIncomplete);  // the parser may refuse early; the reference waits
  }
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(s[i]); };
  const int version = byte(12) >> 4;
  const int command = byte(12) & 0xf;
  const int family = byte(13) >> 4;
  const int transport = byte(13) & 0xf;
  const std::size_t length = std::size_t{byte(14)} << 8 | byte(15);
  if (version != 2 || command > 1 || length > ProxyHeaderParser::kMaxV2Length) {
    return Only(Verdict::kInvalid);
  }
  const bool proxy = command == 1;
  if (proxy && (family > 3 || transport > 2)) {
    return Only(Verdict::kInvalid);
  }
  const std::array<std::size_t, 4> kMin = {0, 12, 36, 216};
  if (proxy && length < kMin[static_cast<std::size_t>(family)]) {
    return Only(Verdict::kInvalid);
  }
  if (s.size() < 16 + length) {
    return Only(Verdict::kIncomplete);
  }
  Reference r{Verdict::kValid, 16 + length, std::nullopt};
  if (proxy && transport == 1 && (family == 1 || family == 2)) {
    const std::size_t a = family == 1 ? 4 : 16;
    const std::uint16_t port =
        static_cast<std::uint16_t>(byte(16 + 2 * a) << 8 | byte(16 + 2 * a + 1));
    r.source = Format(family == 1 ? AF_INET : AF_INET6, s.data() + 16, port);
  }
  return r;
}

Reference ReferenceParse(std::string_view s) {
  if (s.empty()) {
    return Only(Verdict::kIncomplete);
  }
  if (s[0] == 'P') {
    return ReferenceV1(s);
  }
  if (s[0] == '\r') {
    return ReferenceV2(s);
  }
  return Only(Verdict::kInvalid);
}

void Fuzz(std::span<const std::uint8_t> pieces, std::string_view stream) {
  const Outcome whole = FeedWhole(stream);
  const Outcome split = FeedPieces(stream, pieces);

  // 2. Split invariance.
  Check(whole.status == split.status, "status depends on the split");
  Check(whole.consumed == split.consumed, "consumed depends on the split");
  Check(whole.source == split.source, "source depends on the split", split.source.value_or("-"));
  Check(whole.version == split.version, "version depends on the split");
  Check(whole.error == split.error, "error depends on the split", split.error);

  // 3. Exact end.
  if (whole.status == Status::kDone) {
    const Outcome header = FeedWhole(stream.substr(0, whole.consumed));
    Check(header.status == Status::kDone && header.consumed == whole.consumed,
          "the header alone is not a header");
    Check(header.source == whole.source, "source depends on what follows the header");
    Check(FeedWhole(stream.substr(0, whole.consumed - 1)).status == Status::kNeedMore,
          "a header one byte short is not incomplete");
  } else if (whole.status == Status::kError) {
    Check(FeedWhole(stream.substr(0, whole.consumed)).status == Status::kNeedMore,
          "the bytes before the offending one are refused");
    const Outcome one_more = FeedWhole(stream.substr(0, whole.consumed + 1));
    Check(one_more.status == Status::kError && one_more.error == whole.error,
          "the offending byte alone is not refused the same way", one_more.error);
  }

  // 4. Reference.
  const Reference ref = ReferenceParse(stream);
  switch (ref.verdict) {
    case Verdict::kValid:
      Check(whole.status == Status::kDone, "refused a valid header", whole.error);
      Check(whole.consumed == ref.length, "header length differs from the reference");
      Check(whole.source == ref.source, "source differs from the reference",
            whole.source.value_or("-"));
      break;
    case Verdict::kInvalid:
      Check(whole.status == Status::kError, "accepted an invalid header");
      break;
    case Verdict::kIncomplete:
      Check(whole.status != Status::kDone, "kDone where the reference needs more bytes");
      break;
  }
}

}  // namespace
}  // namespace tinymq::net

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t k = data[0] & 7;
  if (size < 1 + k) {
    return 0;
  }
  const std::span<const std::uint8_t> pieces(data + 1, k);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);
  tinymq::net::Fuzz(pieces, stream);
  return 0;
}
