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

// A fresh or recycled message has no reference but its maker's: no other thread looks.
void ResetHeaders(Message& m) {
  for (std::size_t i = 0; i < Message::kHeaders; ++i) {
    m.headers_[i].clear();
    m.header_state_[i].store(Message::kEmpty, std::memory_order_relaxed);
  }
}

namespace {

// Fills `m` (fresh or recycled: its buffers keep their capacity) with a message's contents.
void Fill(Message& m, std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
          const mqtt::Properties& properties, Instant now) {
  m.topic.assign(topic);
  m.payload.assign(payload.begin(), payload.end());
  m.qos = qos;
  m.retain = retain;
  m.expires_at = Instant::max();
  m.properties.clear();
  ResetHeaders(m);
  if (properties.empty()) {
    return;
  }
  if (auto expiry = properties.Number(mqtt::PropertyId::kMessageExpiryInterval)) {
    m.expires_at = now + std::chrono::seconds(*expiry);
  }
  const bool all_travel =
      std::all_of(properties.begin(), properties.end(),
                  [](const mqtt::Property& p) { return TravelsWithTheMessage(p.id); });
  if (all_travel) {  // the common case: one copy of the bytes as they came
    m.properties.assign(properties.bytes().begin(), properties.bytes().end());
  } else {
    mqtt::PropertiesBuilder kept;
    for (const mqtt::Property& p : properties) {
      if (TravelsWithTheMessage(p.id)) {
        kept.Append(p);
      }
    }
    const mqtt::BinaryView bytes = kept.view().bytes();
    m.properties.assign(bytes.begin(), bytes.end());
  }
}

std::size_t BufferBytes(const Message& m) {
  std::size_t bytes = m.topic.capacity() + m.payload.capacity() + m.properties.capacity();
  for (std::size_t i = 0; i < Message::kHeaders; ++i) {
    bytes += m.header(i).capacity();
  }
  return bytes;
}

}  // namespace

MessageRef MakeMessage(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos, bool retain,
                       const mqtt::Properties& properties, Instant now) {
  auto* m = new Message();
  Fill(*m, topic, payload, qos, retain, properties, now);
  return MessageRef(m);
}

void MessageRef::reset() {
  const Message* m = m_;
  m_ = nullptr;
  if (m == nullptr || m->refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    return;
  }
  Message* owned = const_cast<Message*>(m);  // the last reference: no one else sees it
  if (owned->pool_ != nullptr) {
    owned->pool_->Return(owned);
  } else {
    delete owned;
  }
}

MessagePool::~MessagePool() {
  for (Message* m : free_) {
    delete m;
  }
  Message* m = remote_.exchange(nullptr, std::memory_order_acquire);
  while (m != nullptr) {
    delete std::exchange(m, m->next_free_);
  }
}

void MessagePool::TakeRemote() {
  Message* m = remote_.exchange(nullptr, std::memory_order_acquire);
  while (m != nullptr) {
    Keep(std::exchange(m, m->next_free_));
  }
}

MessageRef MessagePool::Make(std::string_view topic, mqtt::BinaryView payload, mqtt::QoS qos,
                             bool retain, const mqtt::Properties& properties, Instant now) {
  if (owner_ == std::thread::id()) {
    owner_ = std::this_thread::get_id();
  }
  if (free_.empty() && remote_.load(std::memory_order_relaxed) != nullptr) {
    TakeRemote();
  }
  Message* m = nullptr;
  if (free_.empty()) {
    m = new Message();
    m->pool_ = this;
  } else {
    m = free_.back();
    free_.pop_back();
    bytes_ -= BufferBytes(*m);
  }
  Fill(*m, topic, payload, qos, retain, properties, now);
  return MessageRef(m);
}

void MessagePool::Return(Message* m) {
  if (std::this_thread::get_id() == owner_) {
    Keep(m);
    return;
  }
  m->next_free_ = remote_.load(std::memory_order_relaxed);
  while (!remote_.compare_exchange_weak(m->next_free_, m, std::memory_order_release,
                                        std::memory_order_relaxed)) {
  }
}

void MessagePool::Keep(Message* m) {
  const std::size_t bytes = BufferBytes(*m);
  if (free_.size() >= kMaxMessages || bytes_ + bytes > kMaxBytes) {
    delete m;
    return;
  }
  bytes_ += bytes;
  free_.push_back(m);
}

}  // namespace tinymq::broker
