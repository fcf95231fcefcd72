#include "tinymq/mqtt/properties.h"

#include <array>

#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

using Ctx = PropertyContext;
using T = PropertyType;

constexpr std::uint16_t Bit(Ctx c) {
  return static_cast<std::uint16_t>(1U << static_cast<unsigned>(c));
}

template <typename... C>
constexpr std::uint16_t In(C... contexts) {
  return static_cast<std::uint16_t>((Bit(contexts) | ...));
}

struct Entry {
  bool known = false;
  PropertyType type = T::kByte;
  std::uint16_t contexts = 0;
  std::string_view name;
};

constexpr std::uint32_t kMaxId = 0x2A;

// 5.0 §2.2.2.2, Table 2-4.
constexpr std::array<Entry, kMaxId + 1> MakeTable() {
  std::array<Entry, kMaxId + 1> t{};
  auto set = [&t](PropertyId id, PropertyType type, std::uint16_t contexts, std::string_view name) {
    t[static_cast<std::size_t>(id)] = Entry{true, type, contexts, name};
  };
  using P = PropertyId;
  set(P::kPayloadFormatIndicator, T::kByte, In(Ctx::kPublish, Ctx::kWill),
      "Payload Format Indicator");
  set(P::kMessageExpiryInterval, T::kFourByteInteger, In(Ctx::kPublish, Ctx::kWill),
      "Message Expiry Interval");
  set(P::kContentType, T::kUtf8String, In(Ctx::kPublish, Ctx::kWill), "Content Type");
  set(P::kResponseTopic, T::kUtf8String, In(Ctx::kPublish, Ctx::kWill), "Response Topic");
  set(P::kCorrelationData, T::kBinaryData, In(Ctx::kPublish, Ctx::kWill), "Correlation Data");
  set(P::kSubscriptionIdentifier, T::kVarint, In(Ctx::kPublish, Ctx::kSubscribe),
      "Subscription Identifier");
  set(P::kSessionExpiryInterval, T::kFourByteInteger,
      In(Ctx::kConnect, Ctx::kConnack, Ctx::kDisconnect), "Session Expiry Interval");
  set(P::kAssignedClientIdentifier, T::kUtf8String, In(Ctx::kConnack),
      "Assigned Client Identifier");
  set(P::kServerKeepAlive, T::kTwoByteInteger, In(Ctx::kConnack), "Server Keep Alive");
  set(P::kAuthenticationMethod, T::kUtf8String, In(Ctx::kConnect, Ctx::kConnack, Ctx::kAuth),
      "Authentication Method");
  set(P::kAuthenticationData, T::kBinaryData, In(Ctx::kConnect, Ctx::kConnack, Ctx::kAuth),
      "Authentication Data");
  set(P::kRequestProblemInformation, T::kByte, In(Ctx::kConnect), "Request Problem Information");
  set(P::kWillDelayInterval, T::kFourByteInteger, In(Ctx::kWill), "Will Delay Interval");
  set(P::kRequestResponseInformation, T::kByte, In(Ctx::kConnect), "Request Response Information");
  set(P::kResponseInformation, T::kUtf8String, In(Ctx::kConnack), "Response Information");
  set(P::kServerReference, T::kUtf8String, In(Ctx::kConnack, Ctx::kDisconnect), "Server Reference");
  set(P::kReasonString, T::kUtf8String,
      In(Ctx::kConnack, Ctx::kPuback, Ctx::kPubrec, Ctx::kPubrel, Ctx::kPubcomp, Ctx::kSuback,
         Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth),
      "Reason String");
  set(P::kReceiveMaximum, T::kTwoByteInteger, In(Ctx::kConnect, Ctx::kConnack), "Receive Maximum");
  set(P::kTopicAliasMaximum, T::kTwoByteInteger, In(Ctx::kConnect, Ctx::kConnack),
      "Topic Alias Maximum");
  set(P::kTopicAlias, T::kTwoByteInteger, In(Ctx::kPublish), "Topic Alias");
  set(P::kMaximumQos, T::kByte, In(Ctx::kConnack), "Maximum QoS");
  set(P::kRetainAvailable, T::kByte, In(Ctx::kConnack), "Retain Available");
  set(P::kUserProperty, T::kUtf8StringPair,
      In(Ctx::kConnect, Ctx::kWill, Ctx::kConnack, Ctx::kPublish, Ctx::kPuback, Ctx::kPubrec,
         Ctx::kPubrel, Ctx::kPubcomp, Ctx::kSubscribe, Ctx::kSuback, Ctx::kUnsubscribe,
         Ctx::kUnsuback, Ctx::kDisconnect, Ctx::kAuth),
      "User Property");
  set(P::kMaximumPacketSize, T::kFourByteInteger, In(Ctx::kConnect, Ctx::kConnack),
      "Maximum Packet Size");
  set(P::kWildcardSubscriptionAvailable, T::kByte, In(Ctx::kConnack),
      "Wildcard Subscription Available");
  set(P::kSubscriptionIdentifierAvailable, T::kByte, In(Ctx::kConnack),
      "Subscription Identifier Available");
  set(P::kSharedSubscriptionAvailable, T::kByte, In(Ctx::kConnack),
      "Shared Subscription Available");
  return t;
}

constexpr std::array<Entry, kMaxId + 1> kTable = MakeTable();

const Entry& Lookup(PropertyId id) {
  TINYMQ_CHECK(IsKnownProperty(static_cast<std::uint32_t>(id)));
  return kTable[static_cast<std::size_t>(id)];
}

// Range rules the specification states per property; a value outside them is a Protocol Error
// (or, for Topic Alias 0, Topic Alias invalid).
std::optional<DecodeError> CheckValue(PropertyId id, std::uint32_t v) {
  using P = PropertyId;
  switch (id) {
    case P::kPayloadFormatIndicator:           // §3.3.2.3.2
    case P::kRequestProblemInformation:        // §3.1.2.11.7
    case P::kRequestResponseInformation:       // §3.1.2.11.6
    case P::kMaximumQos:                       // §3.2.2.3.4
    case P::kRetainAvailable:                  // §3.2.2.3.5
    case P::kWildcardSubscriptionAvailable:    // §3.2.2.3.11
    case P::kSubscriptionIdentifierAvailable:  // §3.2.2.3.12
    case P::kSharedSubscriptionAvailable:      // §3.2.2.3.13
      return v > 1 ? std::optional(DecodeError::kInvalidPropertyValue) : std::nullopt;
    case P::kReceiveMaximum:          // §3.1.2.11.3, §3.2.2.3.3
    case P::kMaximumPacketSize:       // §3.1.2.11.4, §3.2.2.3.6
    case P::kSubscriptionIdentifier:  // §3.8.2.1.2: 1 to 268,435,455
      return v == 0 ? std::optional(DecodeError::kInvalidPropertyValue) : std::nullopt;
    case P::kTopicAlias:  // [MQTT-3.3.2-8]
      return v == 0 ? std::optional(DecodeError::kTopicAliasZero) : std::nullopt;
    default: return std::nullopt;
  }
}

// The value rules of one property; nullopt when it is acceptable.
std::optional<DecodeError> CheckProperty(const Property& p) {
  if (p.id == PropertyId::kResponseTopic && (p.text.empty() || HasWildcard(p.text))) {
    // [MQTT-3.3.2-13], [MQTT-3.3.2-14]: a Response Topic is a topic name.
    return DecodeError::kInvalidPropertyValue;
  }
  return CheckValue(p.id, p.number);
}

// Reads one property's value into `p` per its type.
void ReadValue(Reader& r, Property& p) {
  switch (TypeOf(p.id)) {
    case T::kByte: p.number = r.U8(); break;
    case T::kTwoByteInteger: p.number = r.U16(); break;
    case T::kFourByteInteger: p.number = r.U32(); break;
    case T::kVarint: p.number = r.Varint(); break;
    case T::kUtf8String: p.text = r.Utf8String(); break;
    case T::kBinaryData: p.binary = r.Binary(); break;
    case T::kUtf8StringPair:
      p.text = r.Utf8String();
      p.value = r.Utf8String();
      break;
  }
}

}  // namespace

bool IsKnownProperty(std::uint32_t id) { return id <= kMaxId && kTable[id].known; }

PropertyType TypeOf(PropertyId id) { return Lookup(id).type; }

std::string_view PropertyName(PropertyId id) { return Lookup(id).name; }

bool IsAllowedIn(PropertyId id, PropertyContext context) {
  return (Lookup(id).contexts & Bit(context)) != 0;
}

bool MayRepeat(PropertyId id, PropertyContext context) {
  return id == PropertyId::kUserProperty ||
         (id == PropertyId::kSubscriptionIdentifier && context == Ctx::kPublish);
}

void Properties::Iterator::Load() {
  if (next_ == end_) {
    at_ = nullptr;
    return;
  }
  at_ = next_;
  Reader r(std::span<const std::uint8_t>(next_, static_cast<std::size_t>(end_ - next_)));
  current_ = Property{};
  current_.id = static_cast<PropertyId>(r.Varint());
  ReadValue(r, current_);
  TINYMQ_DCHECK(!r.failed());  // REQUIRES of FromValidated
  next_ = r.position();
}

std::optional<Property> Properties::Find(PropertyId id) const {
  for (const Property& p : *this) {
    if (p.id == id) {
      return p;
    }
  }
  return std::nullopt;
}

std::optional<std::uint32_t> Properties::Number(PropertyId id) const {
  auto p = Find(id);
  return p ? std::optional(p->number) : std::nullopt;
}

std::optional<std::string_view> Properties::Text(PropertyId id) const {
  auto p = Find(id);
  return p ? std::optional(p->text) : std::nullopt;
}

std::optional<BinaryView> Properties::Binary(PropertyId id) const {
  auto p = Find(id);
  return p ? std::optional(p->binary) : std::nullopt;
}

std::size_t Properties::Count() const {
  std::size_t n = 0;
  for (auto it = begin(); it != end(); ++it) {
    ++n;
  }
  return n;
}

PropertiesBuilder& PropertiesBuilder::Add(PropertyId id, std::uint32_t number) {
  const PropertyType type = TypeOf(id);
  TINYMQ_CHECK(type == T::kByte || type == T::kTwoByteInteger || type == T::kFourByteInteger ||
               type == T::kVarint);
  Property p;
  p.id = id;
  p.number = number;
  return Append(p);
}

PropertiesBuilder& PropertiesBuilder::Add(PropertyId id, std::string_view text) {
  TINYMQ_CHECK(TypeOf(id) == T::kUtf8String);
  Property p;
  p.id = id;
  p.text = text;
  return Append(p);
}

PropertiesBuilder& PropertiesBuilder::AddBinary(PropertyId id, BinaryView data) {
  TINYMQ_CHECK(TypeOf(id) == T::kBinaryData);
  Property p;
  p.id = id;
  p.binary = data;
  return Append(p);
}

PropertiesBuilder& PropertiesBuilder::AddUserProperty(std::string_view name,
                                                      std::string_view value) {
  Property p;
  p.id = PropertyId::kUserProperty;
  p.text = name;
  p.value = value;
  return Append(p);
}

namespace {
template <typename W>
void WriteProperty(W& w, const Property& p) {
  w.Varint(static_cast<std::uint32_t>(p.id));
  switch (TypeOf(p.id)) {
    case T::kByte: w.U8(static_cast<std::uint8_t>(p.number)); break;
    case T::kTwoByteInteger: w.U16(static_cast<std::uint16_t>(p.number)); break;
    case T::kFourByteInteger: w.U32(p.number); break;
    case T::kVarint: w.Varint(p.number); break;
    case T::kUtf8String: w.String(p.text); break;
    case T::kBinaryData: w.Binary(p.binary); break;
    case T::kUtf8StringPair:
      w.String(p.text);
      w.String(p.value);
      break;
  }
}
}  // namespace

PropertiesBuilder& PropertiesBuilder::Append(const Property& p) {
  switch (TypeOf(p.id)) {
    case T::kByte: TINYMQ_CHECK(p.number <= 0xFF); break;
    case T::kTwoByteInteger: TINYMQ_CHECK(p.number <= 0xFFFF); break;
    case T::kVarint: TINYMQ_CHECK(p.number <= kMaxVarint); break;
    case T::kUtf8String:
    case T::kBinaryData:
    case T::kUtf8StringPair:
    case T::kFourByteInteger: break;
  }
  Counter c;
  WriteProperty(c, p);
  TINYMQ_CHECK(!c.overflow());
  const std::size_t old = bytes_.size();
  bytes_.resize(old + c.size());
  Writer w(bytes_.data() + old);
  WriteProperty(w, p);
  return *this;
}

Properties ReadProperties(Reader& r, PropertyContext context) {
  const std::uint32_t length = r.Varint();
  const BinaryView bytes = r.Bytes(length);
  if (r.failed()) {
    return {};
  }
  Reader list(bytes.span());
  std::uint64_t seen = 0;  // one bit per identifier; every defined identifier is below 64
  while (!list.empty()) {
    const std::uint32_t id = list.Varint();
    if (list.failed()) {
      break;
    }
    if (!IsKnownProperty(id)) {
      list.Fail(DecodeError::kUnknownProperty);
      break;
    }
    Property p;
    p.id = static_cast<PropertyId>(id);
    if (!IsAllowedIn(p.id, context)) {
      list.Fail(DecodeError::kPropertyNotAllowed);
      break;
    }
    const std::uint64_t bit = std::uint64_t{1} << id;
    if ((seen & bit) != 0 && !MayRepeat(p.id, context)) {
      list.Fail(DecodeError::kDuplicateProperty);
      break;
    }
    seen |= bit;
    ReadValue(list, p);
    if (list.failed()) {
      break;
    }
    if (auto bad = CheckProperty(p)) {
      list.Fail(*bad);
      break;
    }
  }

  if (list.failed()) {
    r.Fail(list.error());
    return {};
  }
  return Properties::FromValidated(bytes);
}

namespace {

constexpr std::uint64_t BitOf(PropertyId id) {
  return std::uint64_t{1} << static_cast<unsigned>(id);
}

// The Authentication Method rule on the set of identifiers present (one bit each).
bool MissesAuthenticationMethod(std::uint64_t seen, PropertyContext context) {
  if ((seen & BitOf(PropertyId::kAuthenticationMethod)) != 0) {
    return false;
  }
  return context == Ctx::kAuth ||
         (context == Ctx::kConnect && (seen & BitOf(PropertyId::kAuthenticationData)) != 0);
}

}  // namespace

std::optional<DecodeError> CheckAuthenticationMethod(const Properties& properties,
                                                     PropertyContext context) {
  if (context != Ctx::kConnect && context != Ctx::kAuth) {
    return std::nullopt;
  }
  std::uint64_t seen = 0;
  for (const Property& p : properties) {
    seen |= BitOf(p.id);
  }
  if (MissesAuthenticationMethod(seen, context)) {
    return DecodeError::kMissingAuthenticationMethod;
  }
  return std::nullopt;
}

bool IsValidFor(const Properties& properties, PropertyContext context) {
  const EncodeResult r = CheckForEncode(properties, context);
  return r.has_value() || r.error() != EncodeError::kPropertyNotAllowed;
}

EncodeResult CheckForEncode(const Properties& properties, PropertyContext context) {
  std::uint64_t seen = 0;
  bool bad_value = false;
  for (const Property& p : properties) {
    if (!IsAllowedIn(p.id, context)) {
      return util::Unexpected(EncodeError::kPropertyNotAllowed);
    }
    const std::uint64_t bit = std::uint64_t{1} << static_cast<unsigned>(p.id);
    if ((seen & bit) != 0 && !MayRepeat(p.id, context)) {
      return util::Unexpected(EncodeError::kPropertyNotAllowed);
    }
    seen |= bit;
    bad_value |= CheckProperty(p).has_value();
  }
  if (bad_value || MissesAuthenticationMethod(seen, context)) {
    return util::Unexpected(EncodeError::kInvalidValue);
  }
  return {};
}

}  // namespace tinymq::mqtt
