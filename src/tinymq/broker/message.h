#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

  mqtt::BinaryView payload_view() const { return mqtt::BinaryView(payload); }
};

using MessageRef = std::shared_ptr<const Message>;

// The one copy of a published payload.
MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos,
                       bool retain);

}  // namespace tinymq::broker
