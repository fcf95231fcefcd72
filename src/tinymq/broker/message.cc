#include "tinymq/broker/message.h"

#include <algorithm>

namespace tinymq::broker {
namespace {

// Properties that describe the message itself and go to every subscriber unchanged.
bool TravelsWithTheMessage(mqtt::PropertyId id) {
  switch (id) {
    case mqtt::PropertyId::kPayloadFormatIndicator:
    case mqtt::PropertyId::kContentType:
    case mqtt::PropertyId::kResponseTopic:
    case mqtt::PropertyId::kCorrelationData:
    case mqtt::PropertyId::kUserProperty: return true;
    default: return false;
  }
}

}  // namespace

std::uint32_t Message::remaining_expiry_s(Instant now) const {
  const auto left = std::chrono::ceil<std::chrono::seconds>(expires_at - now).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 0, UINT32_MAX));
}

MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties, Instant now) {
  auto m = std::make_shared<Message>();
  m->topic.assign(topic);
  m->payload.assign(payload.begin(), payload.end());
  m->qos = qos;
  m->retain = retain;
  if (properties.empty()) {
    return m;
  }
  if (auto expiry = properties.Number(mqtt::PropertyId::kMessageExpiryInterval)) {
    m->expires_at = now + std::chrono::seconds(*expiry);
  }
  const bool all_travel =
      std::all_of(properties.begin(), properties.end(),
                  [](const mqtt::Property& p) { return TravelsWithTheMessage(p.id); });
  if (all_travel) {  // the common case: one copy of the bytes as they came
    m->properties.assign(properties.bytes().begin(), properties.bytes().end());
  } else {
    mqtt::PropertiesBuilder kept;
    for (const mqtt::Property& p : properties) {
      if (TravelsWithTheMessage(p.id)) {
        kept.Append(p);
      }
    }
    const mqtt::BinaryView bytes = kept.view().bytes();
    m->properties.assign(bytes.begin(), bytes.end());
  }
  return m;
}

}  // namespace tinymq::broker
