#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/properties.h"
#include "tinymq/mqtt/types.h"

// The broker's clock vocabulary and the immutable message that is routed to subscribers.
//
// Threading: Message is immutable after construction; safe to share across threads.
// Lifetime:  a MessageRef keeps its Message alive; every subscriber's queue holds a reference, so
//            the payload is copied once however many subscribers receive it.

namespace tinymq::broker {

// Time in the broker core comes from the caller (the server reads a steady clock; tests move a
// fake one), never from a clock read inside the core.
using Clock = std::chrono::steady_clock;
using Instant = Clock::time_point;
using Duration = Clock::duration;

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
};

using MessageRef = std::shared_ptr<const Message>;

// The one copy of a published payload. Of `properties` (a PUBLISH's or a will's) only those a
// receiver gets are kept (5.0 §3.3.2.3: Payload Format Indicator, Message Expiry Interval, Content
// Type, Response Topic, Correlation Data, User Properties); Topic Alias, Subscription Identifier
// and Will Delay Interval belong to one hop and are dropped. A Message Expiry Interval counts from
// `now`, the time the message was published.
MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties = {}, Instant now = {});

}  // namespace tinymq::broker
