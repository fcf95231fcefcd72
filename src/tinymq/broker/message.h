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
  // and their original order (Payload Format Indicator, Message Expiry Interval, Content Type,
  // Response Topic, Correlation Data, User Properties: 5.0 §3.3.2.3). Empty for 3.1.x publishers.
  std::vector<std::uint8_t> properties;

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
// and Will Delay Interval belong to one hop and are dropped.
MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties = {});

}  // namespace tinymq::broker
