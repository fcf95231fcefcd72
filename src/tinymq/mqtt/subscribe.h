#pragma once

#include <cstdint>
#include <iterator>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/decode_error.h"
#include "tinymq/mqtt/encode.h"
#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// SUBSCRIBE and UNSUBSCRIBE (3.1.1 §3.8, §3.10; 5.0 §3.8, §3.10): the packets, their topic lists
// and their codecs. As with properties, a decoded list stays in its wire encoding and is read
// through an iterator; lists for sending are built with SubscriptionListBuilder and
// TopicFilterListBuilder.
//
// The codec checks the form of each entry (UTF-8, option bits); whether a filter is a valid
// filter is the broker's question, because 5.0 answers a bad filter per entry in the SUBACK
// (0x8F) rather than by closing the connection.
//
// Threading: Thread-compatible values; the functions are thread-safe.
// Lifetime:  lists and views of a decoded packet point into the `body` passed to the decoder;
//            built lists point into their builder.
// Errors:    DecodeSubscribe: kInvalidFixedHeaderFlags, kZeroPacketId, kNoTopicFilters,
//            kReservedSubscriptionBits, kInvalidSubscriptionQos, kInvalidRetainHandling,
//            kNoLocalOnSharedSubscription, property and data-type errors, kTruncated.
//            DecodeUnsubscribe: the same, less the option errors.

namespace tinymq::mqtt {

// Subscription Options (5.0 §3.8.3.1); 3.1.x has only the QoS.
struct SubscriptionOptions {
  QoS max_qos = QoS::k0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;  // 0 send retained, 1 only for a new subscription, 2 never

  std::uint8_t ToByte() const;
  friend bool operator==(const SubscriptionOptions&, const SubscriptionOptions&) = default;
};

struct TopicSubscription {
  std::string_view filter;
  SubscriptionOptions options;

  friend bool operator==(const TopicSubscription&, const TopicSubscription&) = default;
};

// A validated list of (topic filter, options) in wire encoding.
class SubscriptionList {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = TopicSubscription;
    using difference_type = std::ptrdiff_t;
    using pointer = const TopicSubscription*;
    using reference = const TopicSubscription&;

    Iterator() = default;
    const TopicSubscription& operator*() const { return current_; }
    const TopicSubscription* operator->() const { return &current_; }
    Iterator& operator++() {
      Load();
      return *this;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.at_ == b.at_; }

   private:
    friend class SubscriptionList;
    Iterator(const std::uint8_t* next, const std::uint8_t* end) : next_(next), end_(end) { Load(); }
    void Load();

    const std::uint8_t* at_ = nullptr;
    const std::uint8_t* next_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    TopicSubscription current_;
  };

  SubscriptionList() = default;
  // REQUIRES: `bytes` came from DecodeSubscribe or a SubscriptionListBuilder.
  static SubscriptionList FromValidated(BinaryView bytes) { return SubscriptionList(bytes); }

  Iterator begin() const { return Iterator(bytes_.begin(), bytes_.end()); }
  Iterator end() const { return Iterator(); }
  bool empty() const { return bytes_.empty(); }
  std::size_t Count() const;
  BinaryView bytes() const { return bytes_; }

  friend bool operator==(const SubscriptionList& a, const SubscriptionList& b) {
    return a.bytes_ == b.bytes_;
  }

 private:
  explicit SubscriptionList(BinaryView bytes) : bytes_(bytes) {}
  BinaryView bytes_;
};

class SubscriptionListBuilder {
 public:
  // REQUIRES: filter.size() <= 65535, options.retain_handling <= 2.
  SubscriptionListBuilder& Add(std::string_view filter, SubscriptionOptions options);
  SubscriptionList view() const { return SubscriptionList::FromValidated(BinaryView(bytes_)); }

 private:
  std::vector<std::uint8_t> bytes_;
};

// A validated list of topic filters (UNSUBSCRIBE payload) in wire encoding.
class TopicFilterList {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string_view*;
    using reference = const std::string_view&;

    Iterator() = default;
    const std::string_view& operator*() const { return current_; }
    Iterator& operator++() {
      Load();
      return *this;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.at_ == b.at_; }

   private:
    friend class TopicFilterList;
    Iterator(const std::uint8_t* next, const std::uint8_t* end) : next_(next), end_(end) { Load(); }
    void Load();

    const std::uint8_t* at_ = nullptr;
    const std::uint8_t* next_ = nullptr;
    const std::uint8_t* end_ = nullptr;
    std::string_view current_;
  };

  TopicFilterList() = default;
  // REQUIRES: `bytes` came from DecodeUnsubscribe or a TopicFilterListBuilder.
  static TopicFilterList FromValidated(BinaryView bytes) { return TopicFilterList(bytes); }

  Iterator begin() const { return Iterator(bytes_.begin(), bytes_.end()); }
  Iterator end() const { return Iterator(); }
  bool empty() const { return bytes_.empty(); }
  std::size_t Count() const;
  BinaryView bytes() const { return bytes_; }

  friend bool operator==(const TopicFilterList& a, const TopicFilterList& b) {
    return a.bytes_ == b.bytes_;
  }

 private:
  explicit TopicFilterList(BinaryView bytes) : bytes_(bytes) {}
  BinaryView bytes_;
};

class TopicFilterListBuilder {
 public:
  // REQUIRES: filter.size() <= 65535.
  TopicFilterListBuilder& Add(std::string_view filter);
  TopicFilterList view() const { return TopicFilterList::FromValidated(BinaryView(bytes_)); }

 private:
  std::vector<std::uint8_t> bytes_;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  Properties properties;  // 5.0 only
  SubscriptionList subscriptions;

  friend bool operator==(const Subscribe&, const Subscribe&) = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  Properties properties;  // 5.0 only
  TopicFilterList filters;

  friend bool operator==(const Unsubscribe&, const Unsubscribe&) = default;
};

DecodeResult<Subscribe> DecodeSubscribe(std::uint8_t flags, BinaryView body,
                                        ProtocolVersion version);
DecodeResult<Unsubscribe> DecodeUnsubscribe(std::uint8_t flags, BinaryView body,
                                            ProtocolVersion version);

// For 3.1.x only the QoS of each entry's options is written; the 5.0 options are dropped.
EncodeResult Encode(const Subscribe& subscribe, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);
EncodeResult Encode(const Unsubscribe& unsubscribe, ProtocolVersion version,
                    std::vector<std::uint8_t>& out);

}  // namespace tinymq::mqtt
