#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// The broker's clock vocabulary and the immutable message that is routed to subscribers.
//
// Threading: Message is immutable after construction. MessageRef counts references without
//            atomics, and a MessagePool is not locked: both belong to one worker thread (issue #5
//            makes the count atomic when workers share messages).
// Lifetime:  a MessageRef keeps its Message alive; every subscriber's queue holds a reference, so
//            the payload is copied once however many subscribers receive it. The last reference
//            gives the Message back to its pool (or deletes it); a pool outlives its messages.

namespace tinymq::broker {

// Time in the broker core comes from the caller (the server reads a steady clock; tests move a
// fake one), never from a clock read inside the core.
using Clock = std::chrono::steady_clock;
using Instant = Clock::time_point;
using Duration = Clock::duration;

class MessagePool;

struct Message {
  std::string topic;
  std::vector<std::uint8_t> payload;
  mqtt::QoS qos = mqtt::QoS::k0;  // as published
  bool retain = false;            // as published
  // The 5.0 properties that travel with the message to every subscriber, in their wire encoding
  // and their original order (Payload Format Indicator, Content Type, Response Topic, Correlation
  // Data, User Properties: 5.0 §3.3.2.3). Empty for 3.1.x publishers. The Message Expiry Interval
  // is not among them: it becomes `expires_at`, and each copy sent says what is left of it.
  std::vector<std::uint8_t> properties;
  // When the message stops being delivered (5.0 §3.3.2.3.3); Instant::max() when it never does.
  Instant expires_at = Instant::max();
  // PUBLISH headers (everything but the payload) encoded once for all the receivers that get the
  // message as it is: QoS 0, no property of their own. Index HeaderIndex(); filled on first use by
  // the thread that owns the message (issue #5 revisits this when workers share messages).
  mutable std::array<std::vector<std::uint8_t>, 4> headers;
  static constexpr std::size_t HeaderIndex(bool v5, bool retain) {
    return (v5 ? 2U : 0U) + (retain ? 1U : 0U);
  }

  bool expires() const { return expires_at != Instant::max(); }
  // True once the Message Expiry Interval has passed [MQTT-3.3.2-5].
  bool expired(Instant now) const { return now > expires_at; }
  // The Message Expiry Interval to send at `now`: the seconds left, rounded up [MQTT-3.3.2-6].
  // REQUIRES: expires() and !expired(now).
  std::uint32_t remaining_expiry_s(Instant now) const;

  mqtt::BinaryView payload_view() const { return mqtt::BinaryView(payload); }
  // REQUIRES: `properties` was built by MakeMessage (a valid property list).
  mqtt::Properties properties_view() const {
    return mqtt::Properties::FromValidated(mqtt::BinaryView(properties));
  }

 private:
  friend class MessageRef;
  friend class MessagePool;
  mutable std::uint32_t refs_ = 0;
  MessagePool* pool_ = nullptr;  // where it goes back when the last reference ends; null: deleted
};

// A counted reference to an immutable Message (like std::shared_ptr<const Message>, without the
// separate control block and atomics).
class MessageRef {
 public:
  MessageRef() = default;
  MessageRef(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): like a null pointer
  MessageRef(const MessageRef& other) : m_(other.m_) { Retain(); }
  MessageRef(MessageRef&& other) noexcept : m_(other.m_) { other.m_ = nullptr; }
  MessageRef& operator=(const MessageRef& other) {
    MessageRef copy(other);
    std::swap(m_, copy.m_);
    return *this;
  }
  MessageRef& operator=(MessageRef&& other) noexcept {
    std::swap(m_, other.m_);
    other.reset();
    return *this;
  }
  ~MessageRef() { reset(); }

  const Message* get() const { return m_; }
  const Message* operator->() const { return m_; }
  const Message& operator*() const { return *m_; }
  explicit operator bool() const { return m_ != nullptr; }
  friend bool operator==(const MessageRef& a, const MessageRef& b) { return a.m_ == b.m_; }
  friend bool operator==(const MessageRef& a, std::nullptr_t) { return a.m_ == nullptr; }
  friend bool operator<(const MessageRef& a, const MessageRef& b) {
    return std::less<const Message*>()(a.m_, b.m_);
  }
  std::uint32_t use_count() const { return m_ == nullptr ? 0 : m_->refs_; }

  void reset();

 private:
  friend class MessagePool;
  friend MessageRef MakeMessage(std::string_view, mqtt::BinaryView, mqtt::QoS, bool,
                                const mqtt::Properties&, Instant);
  explicit MessageRef(Message* m) : m_(m) { Retain(); }
  void Retain() const {
    if (m_ != nullptr) {
      ++m_->refs_;
    }
  }
  const Message* m_ = nullptr;
};

// Messages whose last reference ended, kept with their buffers for the next publish, so that a
// steady flow of messages allocates nothing. Holds at most kMaxMessages messages and kMaxBytes of
// their buffers.
class MessagePool {
 public:
  MessagePool() = default;
  ~MessagePool();
  MessagePool(const MessagePool&) = delete;
  MessagePool& operator=(const MessagePool&) = delete;

  // A Message with the given contents, from the pool when it has one (see MakeMessage).
  MessageRef Make(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                  const mqtt::Properties& properties = {}, Instant now = {});

  std::size_t size() const { return free_.size(); }

 private:
  friend class MessageRef;
  static constexpr std::size_t kMaxMessages = 1024;
  static constexpr std::size_t kMaxBytes = std::size_t{4} << 20;
  void Return(Message* m);

  std::vector<Message*> free_;
  std::size_t bytes_ = 0;  // buffer capacity held by free_
};

// The one copy of a published payload. Of `properties` (a PUBLISH's or a will's) only those a
// receiver gets are kept (5.0 §3.3.2.3: Payload Format Indicator, Message Expiry Interval, Content
// Type, Response Topic, Correlation Data, User Properties); Topic Alias, Subscription Identifier
// and Will Delay Interval belong to one hop and are dropped. A Message Expiry Interval counts from
// `now`, the time the message was published. Allocated on its own (MessagePool::Make reuses).
MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties = {}, Instant now = {});

}  // namespace tinymq::broker
