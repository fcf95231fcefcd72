#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/types.h"
#include "tinymq/mqtt/wire.h"

// MQTT 5.0 properties (§2.2.2): the table of identifiers with their types and the packets they may
// appear in, a zero-copy view over a validated property list, and a builder for outgoing lists.
//
// A decoded packet's properties stay in their wire encoding: `Properties` is a view of bytes that
// ReadProperties has checked (every identifier known and allowed in the packet, values of the
// right type and range, UTF-8 valid, no forbidden duplicates). Accessors scan the list; lists are
// short, and nothing is allocated or copied on decode.
//
// Threading: Properties is an immutable view; PropertiesBuilder is Thread-compatible.
// Lifetime:  Properties borrows its bytes (the decoder's buffer or a PropertiesBuilder); it and
//            every string_view/BinaryView it returns live no longer than those bytes.
// Errors:    ReadProperties fails with kTruncated, kMalformedVarint, kNonMinimalVarint,
//            kUnknownProperty, kPropertyNotAllowed, kDuplicateProperty, kInvalidPropertyValue,
//            kTopicAliasZero, kInvalidUtf8 or kUtf8NullCharacter.

namespace tinymq::mqtt {

enum class PropertyId : std::uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

enum class PropertyType : std::uint8_t {
  kByte,
  kTwoByteInteger,
  kFourByteInteger,
  kVarint,
  kUtf8String,
  kBinaryData,
  kUtf8StringPair,
};

// Where a property list stands: each packet that has one, and the will properties of CONNECT.
enum class PropertyContext : std::uint8_t {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

// The table of 5.0 §2.2.2.2. IsKnownProperty is false for identifiers the table does not define;
// the other functions REQUIRE a known identifier.
bool IsKnownProperty(std::uint32_t id);
PropertyType TypeOf(PropertyId id);
std::string_view PropertyName(PropertyId id);
bool IsAllowedIn(PropertyId id, PropertyContext context);
// Only User Property may repeat, and Subscription Identifier in PUBLISH (§3.3.2.3.8).
bool MayRepeat(PropertyId id, PropertyContext context);

// One property as it stands in a list. Which field holds the value follows TypeOf(id).
struct Property {
  PropertyId id{};
  std::uint32_t number = 0;  // Byte, Two/Four Byte Integer, Variable Byte Integer
  std::string_view text;     // UTF-8 String, or the name of a User Property
  std::string_view value;    // the value of a User Property
  BinaryView binary;         // Binary Data

  friend bool operator==(const Property&, const Property&) = default;
};

class Properties {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Property;
    using difference_type = std::ptrdiff_t;
    using pointer = const Property*;
    using reference = const Property&;

    Iterator() = default;
    const Property& operator*() const { return current_; }
    const Property* operator->() const { return &current_; }
    Iterator& operator++() {
      Load();
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      Load();
      return old;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.at_ == b.at_; }

   private:
    friend class Properties;
    Iterator(const std::uint8_t* next, const std::uint8_t* end) : next_(next), end_(end) { Load(); }
    void Load();  // parses the property at next_ into current_, or becomes the end iterator

    const std::uint8_t* at_ = nullptr;  // start of current_, nullptr at the end
    const std::uint8_t* next_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    Property current_;
  };

  Properties() = default;
  // REQUIRES: `bytes` is a property list (without its length prefix) that ReadProperties accepted
  // or a PropertiesBuilder wrote.
  static Properties FromValidated(BinaryView bytes) { return Properties(bytes); }

  bool empty() const { return bytes_.empty(); }
  // The encoded list, without the length prefix.
  BinaryView bytes() const { return bytes_; }
  Iterator begin() const { return Iterator(bytes_.begin(), bytes_.end()); }
  Iterator end() const { return Iterator(); }

  // The first property with `id`, if any.
  std::optional<Property> Find(PropertyId id) const;
  std::optional<std::uint32_t> Number(PropertyId id) const;
  std::optional<std::string_view> Text(PropertyId id) const;
  std::optional<BinaryView> Binary(PropertyId id) const;
  // Number of properties in the list.
  std::size_t Count() const;

  // Lists are equal when their encodings are (order matters: User Property order is kept).
  friend bool operator==(const Properties& a, const Properties& b) { return a.bytes_ == b.bytes_; }

 private:
  explicit Properties(BinaryView bytes) : bytes_(bytes) {}
  BinaryView bytes_;
};

// Builds a property list in its wire encoding. Adding a value of the wrong type for `id`, or a
// number too large for the type, is a bug (TINYMQ_CHECK); which properties a packet may carry is
// checked when the packet is encoded.
class PropertiesBuilder {
 public:
  // Byte, Two Byte, Four Byte or Variable Byte Integer properties.
  PropertiesBuilder& Add(PropertyId id, std::uint32_t number);
  // UTF-8 String properties.
  PropertiesBuilder& Add(PropertyId id, std::string_view text);
  // Binary Data properties.
  PropertiesBuilder& AddBinary(PropertyId id, BinaryView data);
  PropertiesBuilder& AddUserProperty(std::string_view name, std::string_view value);
  // Appends `property` as it is (e.g. one taken from a decoded list to forward).
  PropertiesBuilder& Append(const Property& property);
  void Clear() { bytes_.clear(); }

  // A view of what was built; valid until the builder is changed or destroyed.
  Properties view() const { return Properties::FromValidated(BinaryView(bytes_)); }

 private:
  std::vector<std::uint8_t> bytes_;
};

// Reads a Property Length and the list after it, validating the list for `context` (see the top of
// this file). On failure the reader holds the error and the result is empty.
Properties ReadProperties(Reader& reader, PropertyContext context);

// True when every property in `properties` may appear in `context`, and none repeats that may
// not (values are not looked at).
bool IsValidFor(const Properties& properties, PropertyContext context);

// The one rule between two properties: in CONNECT, Authentication Data needs an Authentication
// Method (5.0 §3.1.2.11.10); a long-form AUTH must carry one (§3.15.2.2.2). The packet decoders
// apply it after ReadProperties, which looks at each property alone.
std::optional<DecodeError> CheckAuthenticationMethod(const Properties& properties,
                                                     PropertyContext context);

// What the encoders check before writing a list, so that whatever they write decodes:
// kPropertyNotAllowed for a property not allowed in `context` or repeated where it may not be,
// kInvalidValue for a value ReadProperties would refuse (range, Response Topic, Authentication
// Method rules).
EncodeResult CheckForEncode(const Properties& properties, PropertyContext context);

template <typename W>
void WriteProperties(W& w, const Properties& properties) {
  w.Varint(static_cast<std::uint32_t>(properties.bytes().size()));
  w.Raw(properties.bytes());
}

}  // namespace tinymq::mqtt
