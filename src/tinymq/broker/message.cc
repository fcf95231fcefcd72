#include "tinymq/broker/message.h"

namespace tinymq::broker {

MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos,
                       bool retain) {
  auto m = std::make_shared<Message>();
  m->topic.assign(topic);
  m->payload.assign(payload.begin(), payload.end());
  m->qos = qos;
  m->retain = retain;
  return m;
}

}  // namespace tinymq::broker
