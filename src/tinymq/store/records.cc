#include "tinymq/store/records.h"

#include <algorithm>
#include <cstring>

namespace tinymq::store {
namespace {

// Appends big-endian integers and length-prefixed strings.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(std::uint16_t v) { Int(v, 2); }
  void U32(std::uint32_t v) { Int(v, 4); }
  void U64(std::uint64_t v) { Int(v, 8); }
  void I64(std::int64_t v) { Int(static_cast<std::uint64_t>(v), 8); }
  void Bytes(std::string_view s) {  // u32 length, then the bytes
    U32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }

 private:
  void Int(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) {
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    }
  }
  std::string& out_;
};

// Reads what Writer wrote; once a read fails, every later one fails too (ok() is false).
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  std::uint8_t U8() { return static_cast<std::uint8_t>(Int(1)); }
  std::uint16_t U16() { return static_cast<std::uint16_t>(Int(2)); }
  std::uint32_t U32() { return static_cast<std::uint32_t>(Int(4)); }
  std::uint64_t U64() { return Int(8); }
  std::int64_t I64() { return static_cast<std::int64_t>(Int(8)); }
  // Skips a length-prefixed string; returns its length.
  std::size_t SkipBytes() {
    const std::uint32_t n = U32();
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return 0;
    }
    in_.remove_prefix(n);
    return n;
  }
  std::string Bytes() {
    const std::uint32_t n = U32();
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }

 private:
  std::uint64_t Int(std::size_t n) {
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      v = (v << 8) | static_cast<unsigned char>(in_[i]);
    }
    in_.remove_prefix(n);
    return v;
  }
  std::string_view in_;
  bool ok_ = true;
};

void Put(Writer& w, const MessageRecord& r) {
  w.Bytes(r.topic);
  w.Bytes(r.payload);
  w.U8(r.qos);
  w.U8(r.retain ? 1 : 0);
  w.Bytes(r.properties);
  w.I64(r.expires_at);
}

bool Get(Reader& rd, MessageRecord& r) {
  r.topic = rd.Bytes();
  r.payload = rd.Bytes();
  r.qos = rd.U8();
  const std::uint8_t retain = rd.U8();
  r.properties = rd.Bytes();
  r.expires_at = rd.I64();
  r.retain = retain == 1;
  return rd.ok() && r.qos <= 2 && retain <= 1;
}

// Starts a value: the record version.
std::string Begin() { return std::string(1, static_cast<char>(kRecordVersion)); }
bool Versioned(Reader& rd) { return rd.U8() == kRecordVersion && rd.ok(); }

}  // namespace

std::string ClientKey(std::string_view client_id) {
  std::string key;
  Writer w(key);
  w.U16(static_cast<std::uint16_t>(client_id.size()));  // MQTT client ids are at most 65,535 bytes
  key.append(client_id);
  return key;
}

std::string SubscriptionKey(std::string_view client_id, std::string_view filter) {
  return ClientKey(client_id).append(filter);
}

std::string QueueKey(std::string_view client_id, std::uint64_t sequence) {
  std::string key = ClientKey(client_id);
  Writer(key).U64(sequence);
  return key;
}

std::string IncomingKey(std::string_view client_id, std::uint16_t packet_id) {
  std::string key = ClientKey(client_id);
  Writer(key).U16(packet_id);
  return key;
}

std::string RoutedMarkerKey(std::string_view incoming_key, std::uint16_t worker) {
  std::string key(incoming_key);
  Writer(key).U16(worker);
  return key;
}

std::optional<SplitKey> SplitClientKey(std::string_view key) {
  Reader rd(key);
  const std::uint16_t n = rd.U16();
  if (!rd.ok() || key.size() < 2U + n) {
    return std::nullopt;
  }
  return SplitKey{key.substr(2, n), key.substr(2 + n)};
}

std::optional<std::uint64_t> KeyNumber(std::string_view rest) {
  if (rest.size() != 2 && rest.size() != 8) {
    return std::nullopt;
  }
  Reader rd(rest);
  return rest.size() == 2 ? rd.U16() : rd.U64();
}

std::string Encode(const MessageRecord& r) {
  std::string out = Begin();
  Writer w(out);
  Put(w, r);
  return out;
}

std::string Encode(const SessionRecord& r) {
  std::string out = Begin();
  Writer w(out);
  w.U32(r.expiry_s);
  w.I64(r.disconnected_at);
  w.U16(r.last_packet_id);
  w.U8(r.protocol_level);
  return out;
}

std::string Encode(const SubscriptionRecord& r) {
  std::string out = Begin();
  Writer w(out);
  w.U8(r.options);
  w.U32(r.identifier);
  w.U8(r.shared ? 1 : 0);
  return out;
}

std::string Encode(const QueueRecord& r) { return EncodeQueue(EncodeMessagePart(r.message), r); }

std::string EncodeMessagePart(const MessageRecord& m) {
  std::string out;
  Writer w(out);
  Put(w, m);
  return out;
}

std::string EncodeQueue(std::string_view message_part, const QueueRecord& r) {
  std::string out = Begin();
  out.reserve(1 + message_part.size() + 17 + 4 * r.ids.size());
  out.append(message_part);
  Writer w(out);
  w.U8(r.qos);
  w.U8(r.retain ? 1 : 0);
  w.U8(static_cast<std::uint8_t>(r.state));
  w.U16(r.packet_id);
  w.U64(r.group);
  w.U32(static_cast<std::uint32_t>(r.ids.size()));
  for (std::uint32_t id : r.ids) {
    w.U32(id);
  }
  return out;
}

std::string Encode(const WillRecord& r) {
  std::string out = Begin();
  Writer w(out);
  Put(w, r.message);
  w.I64(r.due_at);
  return out;
}

std::string Encode(const IncomingRecord& r) {
  std::string out = Begin();
  Writer w(out);
  Put(w, r.message);
  w.U16(r.workers);
  w.U16(static_cast<std::uint16_t>(r.routed_to.size()));
  for (std::uint16_t to : r.routed_to) {
    w.U16(to);
  }
  return out;
}

std::optional<IncomingRecord> DecodeIncoming(std::string_view bytes) {
  Reader rd(bytes);
  IncomingRecord r;
  if (!Versioned(rd) || !Get(rd, r.message)) {
    return std::nullopt;
  }
  r.workers = rd.U16();
  const std::uint16_t n = rd.U16();
  if (!rd.ok() || n > bytes.size() / 2) {
    return std::nullopt;
  }
  for (std::uint16_t i = 0; i < n; ++i) {
    r.routed_to.push_back(rd.U16());
  }
  if (!rd.done() || r.workers == 0 ||
      std::any_of(r.routed_to.begin(), r.routed_to.end(),
                  [&](std::uint16_t to) { return to >= r.workers; })) {
    return std::nullopt;
  }
  return r;
}

std::optional<MessageRecord> DecodeMessage(std::string_view bytes) {
  Reader rd(bytes);
  MessageRecord r;
  if (!Versioned(rd) || !Get(rd, r) || !rd.done()) {
    return std::nullopt;
  }
  return r;
}

std::optional<SessionRecord> DecodeSession(std::string_view bytes) {
  Reader rd(bytes);
  SessionRecord r;
  if (!Versioned(rd)) {
    return std::nullopt;
  }
  r.expiry_s = rd.U32();
  r.disconnected_at = rd.I64();
  r.last_packet_id = rd.U16();
  r.protocol_level = rd.U8();
  if (!rd.done() || r.protocol_level < 3 || r.protocol_level > 5) {
    return std::nullopt;
  }
  return r;
}

std::optional<SubscriptionRecord> DecodeSubscription(std::string_view bytes) {
  Reader rd(bytes);
  SubscriptionRecord r;
  if (!Versioned(rd)) {
    return std::nullopt;
  }
  r.options = rd.U8();
  r.identifier = rd.U32();
  const std::uint8_t shared = rd.U8();
  r.shared = shared == 1;
  if (!rd.done() || shared > 1 || (r.options & 0x03) == 3) {
    return std::nullopt;
  }
  return r;
}

std::optional<QueueRecord> DecodeQueue(std::string_view bytes) {
  Reader rd(bytes);
  QueueRecord r;
  if (!Versioned(rd)) {
    return std::nullopt;
  }
  if (!Get(rd, r.message)) {
    return std::nullopt;
  }
  r.qos = rd.U8();
  const std::uint8_t retain = rd.U8();
  const std::uint8_t state = rd.U8();
  r.packet_id = rd.U16();
  r.group = rd.U64();
  const std::uint32_t n = rd.U32();
  // At most what the rest of the value can hold: a damaged count cannot make a huge allocation.
  if (!rd.ok() || n > bytes.size() / 4) {
    return std::nullopt;
  }
  r.ids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    r.ids.push_back(rd.U32());
  }
  r.retain = retain == 1;
  r.state = static_cast<DeliveryState>(state);
  if (!rd.done() || r.qos > 2 || retain > 1 || state > 2) {
    return std::nullopt;
  }
  return r;
}

std::optional<QueuePeek> PeekQueue(std::string_view bytes) {
  Reader rd(bytes);
  if (!Versioned(rd)) {
    return std::nullopt;
  }
  QueuePeek p;
  rd.SkipBytes();  // topic
  p.payload_size = rd.SkipBytes();
  rd.U8();  // qos, retain as published
  rd.U8();
  rd.SkipBytes();  // properties
  p.expires_at = rd.I64();
  rd.U8();  // qos, retain as delivered
  rd.U8();
  const std::uint8_t state = rd.U8();
  if (!rd.ok() || state > 2) {
    return std::nullopt;
  }
  p.state = static_cast<DeliveryState>(state);
  return p;
}

std::optional<WillRecord> DecodeWill(std::string_view bytes) {
  Reader rd(bytes);
  WillRecord r;
  if (!Versioned(rd) || !Get(rd, r.message)) {
    return std::nullopt;
  }
  r.due_at = rd.I64();
  if (!rd.done()) {
    return std::nullopt;
  }
  return r;
}

}  // namespace tinymq::store
