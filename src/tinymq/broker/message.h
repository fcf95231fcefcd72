#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// The broker's clock vocabulary and the immutable message that is routed to subscribers.
//
// Threading: Message is immutable after construction (its shared headers are filled once, by
//            whichever thread comes first: SharedHeader). MessageRef counts references atomically,
//            so workers share one Message; a single MessageRef object is not itself thread-safe.
//            A MessagePool is used by one thread (its owner: the one that calls Make); a message
//            whose last reference ends on another thread goes back through a lock-free list.
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
  // message as it is: QoS 0, no property of their own; one per HeaderIndex().
  static constexpr std::size_t kHeaders = 4;
  static constexpr std::size_t HeaderIndex(bool v5, bool retain) {
    return (v5 ? 2U : 0U) + (retain ? 1U : 0U);
  }
  // The shared header `index`: encoded by `encode(std::vector<std::uint8_t>&)` (appending to an
  // empty vector, returning false when it cannot) by the first caller, on any thread. nullptr when
  // it could not be encoded, or while another thread is encoding it (the caller then encodes a
  // header of its own).
  template <typename Encode>
  const std::vector<std::uint8_t>* SharedHeader(std::size_t index, Encode&& encode) const;
  // REQUIRES: SharedHeader(index, ...) returned this header (so it is complete).
  const std::vector<std::uint8_t>& header(std::size_t index) const { return headers_[index]; }

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
  friend void ResetHeaders(Message& m);
  enum HeaderState : std::uint8_t { kEmpty, kEncoding, kReady, kFailed };
  mutable std::array<std::vector<std::uint8_t>, kHeaders> headers_;
  mutable std::array<std::atomic<std::uint8_t>, kHeaders> header_state_{};
  mutable std::atomic<std::uint32_t> refs_{0};
  MessagePool* pool_ = nullptr;   // where it goes back when the last reference ends; null: deleted
  Message* next_free_ = nullptr;  // in a pool's list of messages returned by other threads
};

template <typename Encode>
const std::vector<std::uint8_t>* Message::SharedHeader(std::size_t index, Encode&& encode) const {
  std::atomic<std::uint8_t>& state = header_state_[index];
  std::uint8_t seen = state.load(std::memory_order_acquire);
  if (seen == kReady) {
    return &headers_[index];
  }
  if (seen != kEmpty ||
      !state.compare_exchange_strong(seen, kEncoding, std::memory_order_acquire)) {
    return seen == kReady ? &headers_[index] : nullptr;
  }
  const bool ok = encode(headers_[index]);
  state.store(ok ? kReady : kFailed, std::memory_order_release);
  return ok ? &headers_[index] : nullptr;
}

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
  std::uint32_t use_count() const {
    return m_ == nullptr ? 0 : m_->refs_.load(std::memory_order_relaxed);
  }

  void reset();

 private:
  friend class MessagePool;
  friend MessageRef MakeMessage(std::string_view, mqtt::BinaryView, mqtt::QoS, bool,
                                const mqtt::Properties&, Instant);
  explicit MessageRef(Message* m) : m_(m) { Retain(); }
  void Retain() const {
    if (m_ != nullptr) {
      m_->refs_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const Message* m_ = nullptr;
};

// Messages whose last reference ended, kept with their buffers for the next publish, so that a
// steady flow of messages allocates nothing. Holds at most kMaxMessages messages and kMaxBytes of
// their buffers. A message released on another thread than the pool's owner is pushed on a
// lock-free list, which the owner takes whole when it runs out of free messages.
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
  // Keeps `m` in free_ if there is room, else deletes it. Owner thread only.
  void Keep(Message* m);
  // Moves the messages other threads returned into free_.
  void TakeRemote();

  std::vector<Message*> free_;
  std::size_t bytes_ = 0;  // buffer capacity held by free_
  std::thread::id owner_;  // the thread of the first Make()
  std::atomic<Message*> remote_{nullptr};
};

// The one copy of a published payload. Of `properties` (a PUBLISH's or a will's) only those a
// receiver gets are kept (5.0 §3.3.2.3: Payload Format Indicator, Message Expiry Interval, Content
// Type, Response Topic, Correlation Data, User Properties); Topic Alias, Subscription Identifier
// and Will Delay Interval belong to one hop and are dropped. A Message Expiry Interval counts from
// `now`, the time the message was published. Allocated on its own (MessagePool::Make reuses).
MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties = {}, Instant now = {});

}  // namespace tinymq::broker
