#include "tinymq/mqtt/subscribe.h"

#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

// Subscription Options bits (5.0 §3.8.3.1).
constexpr std::uint8_t kQosMask = 0x03;
constexpr std::uint8_t kNoLocal = 0x04;
constexpr std::uint8_t kRetainAsPublished = 0x08;
constexpr std::uint8_t kRetainHandlingShift = 4;
constexpr std::uint8_t kV5ReservedBits = 0xC0;
constexpr std::uint8_t kV311ReservedBits = 0xFC;  // 3.1.1 [MQTT-3-8.3-4]: only QoS may be set

SubscriptionOptions FromByte(std::uint8_t b) {
  SubscriptionOptions o;
  o.max_qos = static_cast<QoS>(b & kQosMask);
  o.no_local = (b & kNoLocal) != 0;
  o.retain_as_published = (b & kRetainAsPublished) != 0;
  o.retain_handling = static_cast<std::uint8_t>((b >> kRetainHandlingShift) & 0x03);
  return o;
}

// §2.1.3: SUBSCRIBE, UNSUBSCRIBE have flags 0010 (3.1 clients may also set DUP on a resend).
bool ValidFlags(std::uint8_t flags, ProtocolVersion version) {
  return flags == 0x02 || (version == ProtocolVersion::kV31 && flags == 0x0A);
}

bool IsShared(std::string_view filter) { return filter.starts_with("$share/"); }

template <typename W>
void WriteOptions(W& w, const SubscriptionOptions& o, ProtocolVersion version) {
  const std::uint8_t b = o.ToByte();
  w.U8(version == ProtocolVersion::kV5 ? b : static_cast<std::uint8_t>(b & kQosMask));
}

}  // namespace

std::uint8_t SubscriptionOptions::ToByte() const {
  return static_cast<std::uint8_t>(
      static_cast<unsigned>(max_qos) | (no_local ? kNoLocal : 0U) |
      (retain_as_published ? kRetainAsPublished : 0U) |
      (static_cast<unsigned>(retain_handling) << kRetainHandlingShift));
}

void SubscriptionList::Iterator::Load() {
  if (next_ == end_) {
    at_ = nullptr;
    return;
  }
  at_ = next_;
  Reader r(std::span<const std::uint8_t>(next_, static_cast<std::size_t>(end_ - next_)));
  current_.filter = r.Binary().AsString();
  current_.options = FromByte(r.U8());
  TINYMQ_DCHECK(!r.failed());
  next_ = r.position();
}

std::size_t SubscriptionList::Count() const {
  std::size_t n = 0;
  for (auto it = begin(); it != end(); ++it) {
    ++n;
  }
  return n;
}

SubscriptionListBuilder& SubscriptionListBuilder::Add(std::string_view filter,
                                                      SubscriptionOptions options) {
  TINYMQ_CHECK(filter.size() <= kMaxStringLength && options.retain_handling <= 2 &&
               static_cast<unsigned>(options.max_qos) <= 2);
  const std::size_t old = bytes_.size();
  bytes_.resize(old + 2 + filter.size() + 1);
  Writer w(bytes_.data() + old);
  w.String(filter);
  w.U8(options.ToByte());
  return *this;
}

void TopicFilterList::Iterator::Load() {
  if (next_ == end_) {
    at_ = nullptr;
    return;
  }
  at_ = next_;
  Reader r(std::span<const std::uint8_t>(next_, static_cast<std::size_t>(end_ - next_)));
  current_ = r.Binary().AsString();
  TINYMQ_DCHECK(!r.failed());
  next_ = r.position();
}

std::size_t TopicFilterList::Count() const {
  std::size_t n = 0;
  for (auto it = begin(); it != end(); ++it) {
    ++n;
  }
  return n;
}

TopicFilterListBuilder& TopicFilterListBuilder::Add(std::string_view filter) {
  TINYMQ_CHECK(filter.size() <= kMaxStringLength);
  const std::size_t old = bytes_.size();
  bytes_.resize(old + 2 + filter.size());
  Writer w(bytes_.data() + old);
  w.String(filter);
  return *this;
}

DecodeResult<Subscribe> DecodeSubscribe(std::uint8_t flags, BinaryView body,
                                        ProtocolVersion version) {
  if (!ValidFlags(flags, version)) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);  // [MQTT-3.8.1-1]
  }
  const bool v5 = version == ProtocolVersion::kV5;
  Reader r(body.span());
  Subscribe s;
  s.packet_id = r.U16();
  if (!r.failed() && s.packet_id == 0) {
    return util::Unexpected(DecodeError::kZeroPacketId);
  }
  if (v5) {
    s.properties = ReadProperties(r, PropertyContext::kSubscribe);
  }
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  const std::uint8_t* list_start = r.position();
  if (r.empty()) {
    return util::Unexpected(DecodeError::kNoTopicFilters);  // [MQTT-3.8.3-3] / 5.0 [MQTT-3.8.3-2]
  }
  while (!r.empty()) {
    const std::string_view filter = r.Utf8String();
    const std::uint8_t options = r.U8();
    if (r.failed()) {
      break;
    }
    if ((options & kQosMask) == 3) {
      return util::Unexpected(DecodeError::kInvalidSubscriptionQos);
    }
    if ((options & (v5 ? kV5ReservedBits : kV311ReservedBits)) != 0) {
      return util::Unexpected(DecodeError::kReservedSubscriptionBits);  // [MQTT-3.8.3-5]
    }
    if (v5) {
      if (((options >> kRetainHandlingShift) & 0x03) == 3) {
        return util::Unexpected(DecodeError::kInvalidRetainHandling);
      }
      if ((options & kNoLocal) != 0 && IsShared(filter)) {
        return util::Unexpected(DecodeError::kNoLocalOnSharedSubscription);  // [MQTT-3.8.3-4]
      }
    }
  }
  s.subscriptions = SubscriptionList::FromValidated(
      BinaryView(list_start, static_cast<std::size_t>(r.position() - list_start)));
  return FinishDecode(r, std::move(s));
}

DecodeResult<Unsubscribe> DecodeUnsubscribe(std::uint8_t flags, BinaryView body,
                                            ProtocolVersion version) {
  if (!ValidFlags(flags, version)) {
    return util::Unexpected(DecodeError::kInvalidFixedHeaderFlags);  // [MQTT-3.10.1-1]
  }
  Reader r(body.span());
  Unsubscribe u;
  u.packet_id = r.U16();
  if (!r.failed() && u.packet_id == 0) {
    return util::Unexpected(DecodeError::kZeroPacketId);
  }
  if (version == ProtocolVersion::kV5) {
    u.properties = ReadProperties(r, PropertyContext::kUnsubscribe);
  }
  if (r.failed()) {
    return util::Unexpected(r.error());
  }
  const std::uint8_t* list_start = r.position();
  if (r.empty()) {
    return util::Unexpected(DecodeError::kNoTopicFilters);  // [MQTT-3.10.3-2]
  }
  while (!r.empty()) {
    (void)r.Utf8String();
  }
  u.filters = TopicFilterList::FromValidated(
      BinaryView(list_start, static_cast<std::size_t>(r.position() - list_start)));
  return FinishDecode(r, std::move(u));
}

EncodeResult Encode(const Subscribe& s, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (s.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  if (s.subscriptions.empty()) {
    return util::Unexpected(EncodeError::kEmptyList);
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(s.properties, PropertyContext::kSubscribe); !r) {
      return r;
    }
  }
  if (v5) {
    for (const TopicSubscription& t : s.subscriptions) {
      if (t.options.no_local && IsShared(t.filter)) {
        return util::Unexpected(EncodeError::kInvalidValue);  // [MQTT-3.8.3-4]
      }
    }
  }
  return EncodeFramed(FirstByte(PacketType::kSubscribe, 0x02), out, [&](auto& w) {
    w.U16(s.packet_id);
    if (v5) {
      WriteProperties(w, s.properties);
    }
    for (const TopicSubscription& t : s.subscriptions) {
      w.String(t.filter);
      WriteOptions(w, t.options, version);
    }
  });
}

EncodeResult Encode(const Unsubscribe& u, ProtocolVersion version, std::vector<std::uint8_t>& out) {
  const bool v5 = version == ProtocolVersion::kV5;
  if (u.packet_id == 0) {
    return util::Unexpected(EncodeError::kZeroPacketId);
  }
  if (u.filters.empty()) {
    return util::Unexpected(EncodeError::kEmptyList);
  }
  if (v5) {
    if (EncodeResult r = CheckForEncode(u.properties, PropertyContext::kUnsubscribe); !r) {
      return r;
    }
  }
  return EncodeFramed(FirstByte(PacketType::kUnsubscribe, 0x02), out, [&](auto& w) {
    w.U16(u.packet_id);
    if (v5) {
      WriteProperties(w, u.properties);
    }
    w.Raw(u.filters.bytes());
  });
}

}  // namespace tinymq::mqtt
