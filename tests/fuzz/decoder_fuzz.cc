// libFuzzer target for the MQTT stream decoder (mqtt::Decoder) and the packet codecs behind it.
//
// Input: one mode byte (decoder_fuzz_mode.h: preset version, max packet size, read chunk, split
// pattern, read API), then the bytes a peer might send.
//
// Properties, each checked with TINYMQ_CHECK or Fail() (both abort, so libFuzzer keeps the input):
//  1. Split invariance. The packets and the error the Decoder yields for the reads the split
//     pattern makes equal those of a one-shot walk over the whole stream with ParseFixedHeader +
//     DecodePacket that follows the Decoder's documented rules (CONNECT first unless a version is
//     preset, a CONNECT that decodes sets the version, AUTH only in 5.0). A failed Decoder repeats
//     its error. In the PrepareRead mode the unused part of each read buffer is poisoned, so a
//     read of uncommitted bytes shows up as a difference.
//  2. Memory. The Decoder's buffer never exceeds max(read_chunk + 4, largest packet framed so far):
//     the 4 is an incomplete fixed header carried into the next read. So a declared length that
//     max_packet_size refuses never allocates; Release() on an idle decoder frees everything.
//  3. Views. Every Properties, SubscriptionList, TopicFilterList and ReasonCodeList is iterated and
//     every byte of every view is read, in the Decoder's packets, in the one-shot packets (views
//     into libFuzzer's exactly sized input) and in the re-decoded packets (views into an exactly
//     sized vector), so ASan sees a view that runs off the end. The lists are rebuilt with their
//     builders and must come out byte-identical; property lists must be valid for their packet
//     (IsValidFor, the encoders' rule); 3.1.x packets carry none.
//  4. Round trip. Encode(packet, version) succeeds for every decoded packet; parsing the result
//     with ParseFixedHeader + DecodePacket gives an equal packet (operator==), and encoding that
//     gives the same bytes. No decoded packet is legitimately unencodable in its own version: a
//     3.1.x CONNACK reads return codes 0-5 as reason codes that ToConnackReturnCode maps back.
//  5. Cross-version. Encoding the packet for each other version succeeds, except where the target
//     version cannot carry it (MayFailCrossVersion lists those cases), and the bytes are a fixed
//     point of decode + encode in that version.
//
// Views from Next() are checked after the whole batch of consecutive Next() calls, which the
// Decoder's lifetime contract allows. No state outlives one input.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "tests/fuzz/decoder_fuzz_mode.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

constexpr std::array<ProtocolVersion, 3> kVersions = {ProtocolVersion::kV31, ProtocolVersion::kV311,
                                                      ProtocolVersion::kV5};
constexpr std::uint8_t kPoison = 0xA5;

// Reports a broken property with the bytes involved, then aborts so libFuzzer keeps the input.
[[noreturn]] void Fail(const char* what, const Packet& packet, ProtocolVersion version,
                       BinaryView bytes, std::string_view detail = {}) {
  std::fprintf(stderr, "decoder_fuzz: %s: %.*s packet, version %u", what,
               static_cast<int>(PacketTypeName(TypeOf(packet)).size()),
               PacketTypeName(TypeOf(packet)).data(), static_cast<unsigned>(version));
  if (!detail.empty()) {
    std::fprintf(stderr, " (%.*s)", static_cast<int>(detail.size()), detail.data());
  }
  std::fprintf(stderr, "\n  bytes:");
  for (const std::uint8_t b : bytes) {
    std::fprintf(stderr, " %02x", b);
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

BinaryView View(const std::vector<std::uint8_t>& bytes) { return {bytes.data(), bytes.size()}; }

constexpr PropertyContext AckContext(PacketType type) {
  switch (type) {
    case PacketType::kPuback: return PropertyContext::kPuback;
    case PacketType::kPubrec: return PropertyContext::kPubrec;
    case PacketType::kPubrel: return PropertyContext::kPubrel;
    default: return PropertyContext::kPubcomp;
  }
}

// Checks the invariants a decoded packet must hold and reads every byte its views cover.
class Inspector {
 public:
  // `version` is the one the packet was decoded in (a CONNECT carries its own).
  explicit Inspector(ProtocolVersion version) : v5_(version == ProtocolVersion::kV5) {}

  std::uint32_t sum() const { return sum_; }

  void operator()(const Connect& c) {
    const bool v5 = c.version == ProtocolVersion::kV5;
    List(c.properties, PropertyContext::kConnect, v5);
    Text(c.client_id);
    if (c.will) {
      List(c.will->properties, PropertyContext::kWill, v5);
      TINYMQ_CHECK(static_cast<unsigned>(c.will->qos) <= 2);
      TINYMQ_CHECK(!c.will->topic.empty() && !HasWildcard(c.will->topic));
      Text(c.will->topic);
      Bytes(c.will->payload);
    }
    if (c.user_name) {
      Text(*c.user_name);
    }
    if (c.password) {
      Bytes(*c.password);
    }
    TINYMQ_CHECK(v5 || !c.password || c.user_name);  // 3.1.x [MQTT-3.1.2-22]
  }

  void operator()(const Connack& c) {
    List(c.properties, PropertyContext::kConnack, v5_);
    if (v5_) {
      TINYMQ_CHECK(IsValidReasonCode(PacketType::kConnack, c.reason));
    } else {
      TINYMQ_CHECK(ToConnackReturnCode(c.reason).has_value());
    }
  }

  void operator()(const Publish& p) {
    List(p.properties, PropertyContext::kPublish, v5_);
    Text(p.topic);
    Bytes(p.payload);
    TINYMQ_CHECK(static_cast<unsigned>(p.qos) <= 2);
    TINYMQ_CHECK((p.qos == QoS::k0) == (p.packet_id == 0));
    TINYMQ_CHECK(!p.dup || p.qos != QoS::k0);
    TINYMQ_CHECK(!HasWildcard(p.topic));
    TINYMQ_CHECK(!p.topic.empty() || p.properties.Find(PropertyId::kTopicAlias).has_value());
  }

  template <PacketType kType>
  void operator()(const PubAckPacket<kType>& a) {
    List(a.properties, AckContext(kType), v5_);
    TINYMQ_CHECK(a.packet_id != 0);
    TINYMQ_CHECK(v5_ ? IsValidReasonCode(kType, a.reason) : a.reason == ReasonCode::kSuccess);
  }

  void operator()(const Subscribe& s) {
    List(s.properties, PropertyContext::kSubscribe, v5_);
    TINYMQ_CHECK(s.packet_id != 0);
    SubscriptionListBuilder rebuilt;
    std::size_t count = 0;
    for (const TopicSubscription& t : s.subscriptions) {
      ++count;
      Text(t.filter);
      const SubscriptionOptions& o = t.options;
      TINYMQ_CHECK(static_cast<unsigned>(o.max_qos) <= 2 && o.retain_handling <= 2);
      TINYMQ_CHECK(v5_ || (!o.no_local && !o.retain_as_published && o.retain_handling == 0));
      TINYMQ_CHECK(!o.no_local || !t.filter.starts_with("$share/"));  // [MQTT-3.8.3-4]
      sum_ += o.ToByte();
      rebuilt.Add(t.filter, o);
    }
    TINYMQ_CHECK(count > 0 && count == s.subscriptions.Count());
    TINYMQ_CHECK(rebuilt.view() == s.subscriptions);
  }

  void operator()(const Suback& s) {
    List(s.properties, PropertyContext::kSuback, v5_);
    TINYMQ_CHECK(s.packet_id != 0);
    TINYMQ_CHECK(!s.reason_codes.empty());
    Codes(s.reason_codes, PacketType::kSuback);
  }

  void operator()(const Unsubscribe& u) {
    List(u.properties, PropertyContext::kUnsubscribe, v5_);
    TINYMQ_CHECK(u.packet_id != 0);
    TopicFilterListBuilder rebuilt;
    std::size_t count = 0;
    for (const std::string_view filter : u.filters) {
      ++count;
      Text(filter);
      rebuilt.Add(filter);
    }
    TINYMQ_CHECK(count > 0 && count == u.filters.Count());
    TINYMQ_CHECK(rebuilt.view() == u.filters);
  }

  void operator()(const Unsuback& u) {
    List(u.properties, PropertyContext::kUnsuback, v5_);
    TINYMQ_CHECK(u.packet_id != 0);
    TINYMQ_CHECK(v5_ != u.reason_codes.empty());  // 3.1.x UNSUBACK has no codes, 5.0 at least one
    Codes(u.reason_codes, PacketType::kUnsuback);
  }

  void operator()(const Pingreq&) {}
  void operator()(const Pingresp&) {}

  void operator()(const Disconnect& d) {
    List(d.properties, PropertyContext::kDisconnect, v5_);
    TINYMQ_CHECK(v5_ ? IsValidReasonCode(PacketType::kDisconnect, d.reason)
                     : d.reason == ReasonCode::kSuccess);
  }

  void operator()(const Auth& a) {
    TINYMQ_CHECK(v5_);
    List(a.properties, PropertyContext::kAuth, v5_);
    TINYMQ_CHECK(IsValidReasonCode(PacketType::kAuth, a.reason));
  }

 private:
  void Bytes(BinaryView b) {
    for (const std::uint8_t c : b) {
      sum_ = sum_ * 31 + c;
    }
  }
  void Text(std::string_view s) { Bytes(BinaryView::Of(s)); }

  void List(const Properties& properties, PropertyContext context, bool v5) {
    if (!v5) {
      TINYMQ_CHECK(properties.empty());
      return;
    }
    TINYMQ_CHECK(IsValidFor(properties, context));
    PropertiesBuilder rebuilt;
    std::size_t count = 0;
    for (const Property& p : properties) {
      ++count;
      TINYMQ_CHECK(IsKnownProperty(static_cast<std::uint32_t>(p.id)));
      TINYMQ_CHECK(IsAllowedIn(p.id, context));
      sum_ += static_cast<std::uint32_t>(p.id) + p.number;
      Text(p.text);
      Text(p.value);
      Bytes(p.binary);
      // Find scans the list: bound the quadratic cost on long lists of User Properties.
      if (count <= 16) {
        const std::optional<Property> first = properties.Find(p.id);
        TINYMQ_CHECK(first.has_value());
        TINYMQ_CHECK(MayRepeat(p.id, context) || *first == p);
      }
      rebuilt.Append(p);
    }
    TINYMQ_CHECK(count == properties.Count());
    TINYMQ_CHECK(rebuilt.view() == properties);
  }

  void Codes(const ReasonCodeList& codes, PacketType type) {
    for (std::size_t i = 0; i < codes.size(); ++i) {
      const auto b = static_cast<std::uint8_t>(codes[i]);
      sum_ += b;
      // 3.1.x SUBACK: granted QoS 0-2 or 0x80 (3.1.1 [MQTT-3.9.3-2]).
      TINYMQ_CHECK(v5_ ? IsValidReasonCode(type, codes[i]) : (b <= 0x02 || b == 0x80));
    }
  }

  bool v5_;
  std::uint32_t sum_ = 0;
};

// A CONNECT is encoded and decoded in its own version; everything else in the stream's.
ProtocolVersion NativeVersion(const Packet& packet, ProtocolVersion stream_version) {
  const auto* connect = std::get_if<Connect>(&packet);
  return connect != nullptr ? connect->version : stream_version;
}

// Runs the Inspector over `packet`, decoded in `stream_version`; returns the checksum of its views.
std::uint32_t Inspect(const Packet& packet, ProtocolVersion stream_version) {
  Inspector inspector(NativeVersion(packet, stream_version));
  std::visit(inspector, packet);
  return inspector.sum();
}

// Parses `wire`, which must hold exactly one packet, in `version`; any failure is a bug.
Packet DecodeWhole(BinaryView wire, ProtocolVersion version, const Packet& source,
                   const char* what) {
  const auto header = ParseFixedHeader(wire, kMaxRemainingLength + 5);
  if (!header) {
    Fail(what, source, version, wire, Describe(header.error()));
  }
  if (!header->has_value() || (*header)->packet_size() != wire.size()) {
    Fail(what, source, version, wire, "fixed header does not frame the bytes");
  }
  const FixedHeader& h = **header;
  auto packet = DecodePacket(h, BinaryView(wire.data() + h.size, h.remaining_length), version);
  if (!packet) {
    Fail(what, source, version, wire, Describe(packet.error()));
  }
  return std::move(packet).value();
}

// Which packets decoded in one version another version cannot carry; encoding them for it fails
// with exactly this error, and everything else must encode. Only ever across versions.
bool MayFailCrossVersion(const Packet& packet, ProtocolVersion to, EncodeError error) {
  const bool to_v3 = to != ProtocolVersion::kV5;
  if (const auto* c = std::get_if<Connack>(&packet)) {
    // 5.0 Malformed Packet, Protocol Error, Topic Name invalid, Packet too large and Payload
    // format invalid: 3.1.1 §3.1.4 answers those with a closed connection, not a CONNACK.
    return to_v3 && !ToConnackReturnCode(c->reason) && error == EncodeError::kNotInVersion;
  }
  if (std::holds_alternative<Auth>(packet)) {
    return to_v3 && error == EncodeError::kNotInVersion;  // AUTH exists only in 5.0
  }
  if (const auto* p = std::get_if<Publish>(&packet)) {
    // A 5.0 PUBLISH whose Topic Alias stands in for the topic: 3.1.x has no aliases.
    return to_v3 && p->topic.empty() && error == EncodeError::kInvalidValue;
  }
  if (const auto* c = std::get_if<Connect>(&packet)) {
    // 5.0 allows a password without a user name; 3.1.x does not ([MQTT-3.1.2-22]).
    return to_v3 && c->password && !c->user_name && error == EncodeError::kNotInVersion;
  }
  if (const auto* u = std::get_if<Unsuback>(&packet)) {
    // A 3.1.x UNSUBACK has no codes and does not say how many filters there were; 5.0 needs one
    // code per filter.
    return !to_v3 && u->reason_codes.empty() && error == EncodeError::kEmptyList;
  }
  return false;
}

void CrossVersion(const Packet& packet, ProtocolVersion from, ProtocolVersion to) {
  Packet converted = packet;
  if (auto* c = std::get_if<Connect>(&converted)) {
    c->version = to;
  }
  std::vector<std::uint8_t> wire;
  const EncodeResult encoded = Encode(converted, to, wire);
  if (!encoded) {
    if (!MayFailCrossVersion(packet, to, encoded.error())) {
      Fail("cross-version encode failed", packet, from, {}, Describe(encoded.error()));
    }
    TINYMQ_CHECK(wire.empty());  // encoders leave `out` unchanged on failure
    return;
  }
  const Packet decoded =
      DecodeWhole(View(wire), to, packet, "a cross-version encoding does not decode");
  TINYMQ_CHECK(TypeOf(decoded) == TypeOf(packet));
  std::vector<std::uint8_t> again;
  TINYMQ_CHECK(Encode(decoded, to, again).has_value());
  if (again != wire) {
    Fail("cross-version encoding is not a fixed point of decode + encode", packet, to, View(wire));
  }
}

std::uint32_t RoundTrip(const Packet& packet, ProtocolVersion stream_version) {
  const ProtocolVersion version = NativeVersion(packet, stream_version);
  std::vector<std::uint8_t> wire;
  const EncodeResult encoded = Encode(packet, version, wire);
  if (!encoded) {
    Fail("a decoded packet does not encode", packet, version, {}, Describe(encoded.error()));
  }
  // Exactly sized (libstdc++ reallocates to size()), so ASan flags a view that runs past the end:
  // std::vector's spare capacity is not poisoned.
  wire.shrink_to_fit();
  const Packet decoded =
      DecodeWhole(View(wire), version, packet, "the re-encoded packet does not decode");
  if (!(decoded == packet)) {
    Fail("decode(encode(packet)) != packet", packet, version, View(wire));
  }
  const std::uint32_t sum = Inspect(decoded, version);
  std::vector<std::uint8_t> again;
  TINYMQ_CHECK(Encode(decoded, version, again).has_value());
  if (again != wire) {
    Fail("encoding equal packets gave different bytes", packet, version, View(wire));
  }
  for (const ProtocolVersion to : kVersions) {
    if (to != version) {
      CrossVersion(packet, version, to);
    }
  }
  return sum;
}

struct Framed {
  Packet packet;
  ProtocolVersion version;  // the stream's version once the packet was decoded
};

// What the Decoder must produce for a stream, worked out from the whole stream at once.
struct Expected {
  std::vector<Framed> packets;
  std::optional<DecodeError> error;
  std::size_t consumed = 0;       // bytes of the whole packets decoded
  std::size_t largest_frame = 0;  // largest packet size whose fixed header the Decoder accepts
};

Expected DecodeAtOnce(BinaryView stream, const DecoderFuzzMode& mode) {
  Expected e;
  std::optional<ProtocolVersion> version = mode.version;
  while (true) {
    const BinaryView rest(stream.data() + e.consumed, stream.size() - e.consumed);
    const auto header = ParseFixedHeader(rest, mode.max_packet_size());
    if (!header) {
      e.error = header.error();
      break;
    }
    if (!header->has_value()) {
      break;
    }
    const FixedHeader& h = **header;
    if (!version && h.type != PacketType::kConnect) {
      e.error = DecodeError::kProtocolVersionUnknown;
      break;
    }
    if (h.type == PacketType::kAuth && version && *version != ProtocolVersion::kV5) {
      e.error = DecodeError::kReservedPacketType;
      break;
    }
    e.largest_frame = std::max(e.largest_frame, h.packet_size());
    if (rest.size() < h.packet_size()) {
      break;
    }
    auto packet = DecodePacket(h, BinaryView(rest.data() + h.size, h.remaining_length),
                               version.value_or(ProtocolVersion::kV311));
    if (!packet) {
      e.error = packet.error();
      break;
    }
    if (const auto* c = std::get_if<Connect>(&*packet); c != nullptr && !version) {
      version = c->version;
    }
    e.packets.push_back(Framed{std::move(packet).value(), *version});
    e.consumed += h.packet_size();
  }
  return e;
}

// Hands the Decoder a prefix of `bytes` through the mode's API; returns its length (>= 1).
std::size_t Read(Decoder& decoder, const DecoderFuzzMode& mode, BinaryView bytes) {
  if (!mode.prepare_read_api) {
    const std::size_t n = decoder.Feed(bytes);
    TINYMQ_CHECK(n >= 1 && n <= bytes.size());
    return n;
  }
  const std::span<std::uint8_t> room = decoder.PrepareRead();
  TINYMQ_CHECK(!room.empty());
  const std::size_t n = std::min(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), n);
  // Bytes offered but not committed must never be read: poison them.
  std::memset(room.data() + n, kPoison, room.size() - n);
  decoder.CommitRead(n);
  return n;
}

// Calls Next() until it yields nothing, then checks the batch against `expected`. Returns the
// Decoder's error, if it reported one.
std::optional<DecodeError> Drain(Decoder& decoder, const Expected& expected, std::size_t& next,
                                 std::uint32_t& sum) {
  std::vector<Framed> batch;
  std::optional<DecodeError> error;
  while (true) {
    auto r = decoder.Next();
    if (!r) {
      error = r.error();
      const auto again = decoder.Next();  // a failed decoder stays failed
      TINYMQ_CHECK(!again && again.error() == *error);
      break;
    }
    if (!r->has_value()) {
      break;
    }
    TINYMQ_CHECK(decoder.version().has_value());
    batch.push_back(Framed{std::move(**r), *decoder.version()});
  }
  // Views of packets from consecutive Next() calls stay valid together (decoder.h).
  for (const Framed& f : batch) {
    TINYMQ_CHECK(next < expected.packets.size());
    const Framed& want = expected.packets[next++];
    TINYMQ_CHECK(f.version == want.version);
    if (!(f.packet == want.packet)) {
      Fail("the Decoder and a one-shot decode disagree", f.packet, f.version, {});
    }
    // The one-shot packets point into libFuzzer's exactly sized copy of the input, so an overrun
    // of a packet that ends the input reaches ASan; the Decoder's buffer may have room to spare.
    sum += Inspect(f.packet, f.version) + Inspect(want.packet, want.version);
    sum += RoundTrip(f.packet, f.version);
  }
  return error;
}

void Run(const DecoderFuzzMode& mode, BinaryView stream) {
  const Expected expected = DecodeAtOnce(stream, mode);
  Decoder decoder(
      Decoder::Options{.max_packet_size = mode.max_packet_size(), .read_chunk = mode.read_chunk()},
      mode.version);
  const std::size_t capacity_bound = std::max(mode.read_chunk() + 4, expected.largest_frame);
  Splitter split(mode.split, stream.size());
  std::size_t pos = 0;
  std::size_t next = 0;
  std::uint32_t sum = 0;
  std::optional<DecodeError> error;
  while (pos < stream.size() && !error) {
    const std::size_t end = pos + std::min(split.Next(), stream.size() - pos);
    while (pos < end && !error) {
      pos += Read(decoder, mode, BinaryView(stream.data() + pos, end - pos));
      TINYMQ_CHECK(decoder.capacity() <= capacity_bound);
      error = Drain(decoder, expected, next, sum);
      if (mode.prepare_read_api && decoder.buffered() == 0) {
        decoder.Release();
        TINYMQ_CHECK(decoder.capacity() == 0);
      }
    }
  }
  TINYMQ_CHECK(error == expected.error);
  TINYMQ_CHECK(next == expected.packets.size());
  if (!error) {
    TINYMQ_CHECK(decoder.buffered() == stream.size() - expected.consumed);
  }
  // Keeps the reads of every view from being optimised away.
  volatile std::uint32_t sink = sum;
  static_cast<void>(sink);
}

}  // namespace
}  // namespace tinymq::mqtt

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tinymq::mqtt::BinaryView;
  using tinymq::mqtt::DecoderFuzzMode;
  if (size == 0) {
    return 0;
  }
  tinymq::mqtt::Run(DecoderFuzzMode::FromByte(data[0]), BinaryView(data + 1, size - 1));
  return 0;
}
