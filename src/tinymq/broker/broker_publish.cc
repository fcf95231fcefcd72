// Incoming PUBLISH: its checks, limits and rate, retained messages, and routing to subscribers
// (local sessions, shared groups, other workers).

#include <algorithm>
#include <cstdio>
#include <list>
#include <unordered_set>
#include <utility>

#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"
#include "tinymq/broker/broker_internal.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/reason_code.h"
#include "tinymq/mqtt/topic.h"
#include "tinymq/util/check.h"
#include "tinymq/util/fifo.h"

namespace tinymq::broker {

void Broker::HandlePublish(Connection& c, const mqtt::Publish& p, Instant now) {
  Session& s = *c.session;
  const bool v5 = c.version == ProtocolVersion::kV5;
  ++counters_.messages_received;
  ++counters_.received_by_qos[static_cast<std::size_t>(p.qos)];
  counters_.publish_bytes_received[static_cast<std::size_t>(p.qos)] += p.payload.size();
  std::string_view topic = p.topic;
  if (v5) {
    if (auto alias = p.properties.Number(mqtt::PropertyId::kTopicAlias)) {
      // 5.0 §3.3.2.3.4: 1 to the CONNACK's Topic Alias Maximum [MQTT-3.3.2-9].
      if (*alias == 0 || *alias > limits_.topic_alias_maximum) {
        Reject(c, ReasonCode::kTopicAliasInvalid, "topic alias out of range", now);
        return;
      }
      std::unique_ptr<std::string[]>& aliases_in = c.Extra().aliases_in;
      if (aliases_in == nullptr) {
        aliases_in = std::make_unique<std::string[]>(limits_.topic_alias_maximum);
      }
      std::string& known = aliases_in[*alias - 1];
      if (!topic.empty()) {
        known.assign(topic);  // [MQTT-3.3.2-12]: a name with an alias sets (or resets) it
      } else if (known.empty()) {
        Reject(c, ReasonCode::kProtocolError, "protocol error: topic alias not set", now);
        return;
      } else {
        topic = known;
      }
    }
    if (p.properties.Find(mqtt::PropertyId::kSubscriptionIdentifier)) {
      // [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
      Reject(c, ReasonCode::kProtocolError,
             "protocol error: subscription identifier in a client PUBLISH", now);
      return;
    }
  }
  if (static_cast<unsigned>(p.qos) > static_cast<unsigned>(limits_.maximum_qos)) {
    Reject(c, ReasonCode::kQosNotSupported, "QoS above the maximum QoS", now);  // [MQTT-3.2.2-11]
    return;
  }
  if (!WithinTopicLimits(topic, topic)) {
    // A well-formed name this server does not take: 5.0 says so in the acknowledgement (0x90 is
    // "not accepted by the Server"); 3.1.x can only acknowledge it or close [MQTT-3.3.5-2].
    if (!v5) {
      Close(c, "topic over the topic limits", /*publish_will=*/true, now);
    } else if (p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, ReasonCode::kTopicNameInvalid, {}});
    } else if (p.qos == QoS::k2) {
      Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kTopicNameInvalid, {}});
    }
    return;
  }
  if (const auth::ClientAcl* acl = c.acl();
      IsSystemTopic(topic) || (acl != nullptr && !acl->MayPublish(topic))) {
    // $SYS/ belongs to the broker (PublishSystem): no client may publish there, whatever the ACL
    // says, so that what subscribers read there is the broker's own figures.
    // 5.0: 0x87 in the acknowledgement. 3.1.x has no way to say it [MQTT-3.3.5-2]: the message
    // is acknowledged as usual and dropped (so a client does not resend it forever).
    ++counters_.denied_publish;
    const ReasonCode code = v5 ? ReasonCode::kNotAuthorized : ReasonCode::kSuccess;
    if (p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, code, {}});
    } else if (p.qos == QoS::k2) {
      Send(c, mqtt::Pubrec{p.packet_id, code, {}});  // a 3.1.x PUBREL then gets its PUBCOMP
    }
    if (log_) {
      log_(LogLevel::kDebug, "client " + s.client_id + " may not publish to " + std::string(topic));
    }
    return;
  }
  if (p.retain && !limits_.retain_available) {
    Reject(c, ReasonCode::kRetainNotSupported, "retain not available", now);  // [MQTT-3.2.2-14]
    return;
  }
  if (p.qos != QoS::k0 && durability_.failed != nullptr &&
      durability_.failed->load(std::memory_order_relaxed)) {
    // The store cannot write (a full disk): nothing more is promised until it can. 5.0 says so;
    // a 3.1.x client gets no acknowledgement and sends the message again later.
    ++counters_.refused_store_failed;
    if (v5 && p.qos == QoS::k1) {
      Send(c, mqtt::Puback{p.packet_id, ReasonCode::kQuotaExceeded, {}});
    } else if (v5) {
      Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kQuotaExceeded, {}});
    }
    return;
  }
  if (p.qos == QoS::k2 && s.AwaitsPubrel(p.packet_id)) {
    // Resent before our PUBREC arrived: acknowledge again, never route twice ([MQTT-4.3.3-2]).
    Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
    return;
  }
  if (v5 && p.qos == QoS::k2 && s.incoming_qos2 != nullptr &&
      s.incoming_qos2->size() >= limits_.receive_maximum) {
    // [MQTT-3.3.4-8]: more unfinished QoS 2 PUBLISHes than the CONNACK's Receive Maximum.
    Reject(c, ReasonCode::kReceiveMaximumExceeded, "receive maximum exceeded", now);
    return;
  }
  MessageRef m = messages_.Make(topic, p.payload, p.qos, p.retain, p.properties, now);
  const std::uint64_t promised = promises();
  bool retained = false;
  if (m->retain) {
    retained = Retain(m);
    if (!retained && v5 && p.qos != QoS::k0) {
      // The retained limits: 5.0 refuses the message (0x97), which is then not delivered either.
      if (p.qos == QoS::k1) {
        Send(c, mqtt::Puback{p.packet_id, ReasonCode::kQuotaExceeded, {}});
      } else {
        Send(c, mqtt::Pubrec{p.packet_id, ReasonCode::kQuotaExceeded, {}});
      }
      return;
    }
    if (!retained) {
      // Delivered as any message, not kept: 3.1.x and QoS 0 have no way to be told. A retained
      // message it was to replace goes: a subscriber must not get a value older than this one.
      Retain(messages_.Make(topic, {}, p.qos, /*retain=*/true, {}, now));
      m = messages_.Make(topic, p.payload, p.qos, /*retain=*/false, p.properties, now);
    }
  }
  const std::size_t outbox_before = outbox_.size();
  const bool matched = Publish(m, s.id, s.client_id, /*retained=*/retained);
  // 5.0 §3.4.2.1: 0x10 tells the publisher that nobody subscribes to the topic.
  const ReasonCode ack = matched || !v5 ? ReasonCode::kSuccess : ReasonCode::kNoMatchingSubscribers;
  if (p.qos == QoS::k2) {
    s.AwaitPubrel(p.packet_id);
    if (s.stored) {
      // Other workers it went to write a marker with their part of the routing; with the message
      // in the record, a restore can route it again where a marker is missing.
      std::string key = store::IncomingKey(s.client_id, p.packet_id);
      store::IncomingRecord record;
      for (std::size_t i = outbox_before; i < outbox_.size(); ++i) {
        Envelope& e = outbox_[i].envelope;
        if (e.kind == Envelope::Kind::kPublish && e.message == m) {
          e.origin = key;
          record.routed_to.push_back(outbox_[i].to);
        }
      }
      std::string value;
      if (!record.routed_to.empty()) {
        record.message = ToRecord(*m);
        record.workers = cluster_.count;
        value = store::Encode(record);
      }
      writes_.Put(store::Kind::kIncoming, std::move(key), std::move(value), /*fresh=*/true);
    }
  }
  if (p.qos != QoS::k0 && promises() != promised) {
    Hold(c);  // acknowledged once what routing it wrote is durable, here and elsewhere
  }
  switch (p.qos) {
    case QoS::k0: break;
    case QoS::k1: Send(c, mqtt::Puback{p.packet_id, ack, {}}); break;
    case QoS::k2: Send(c, mqtt::Pubrec{p.packet_id, ack, {}}); break;
  }
}

bool Broker::WithinTopicLimits(std::string_view whole, std::string_view matched) {
  if (whole.size() > limits_.max_topic_length ||
      static_cast<std::size_t>(std::count(matched.begin(), matched.end(), '/')) >=
          limits_.max_topic_levels) {
    ++counters_.refused_topic_limits;
    return false;
  }
  return true;
}

void Broker::ArmResume(Connection& c, Instant when) {
  resume_timers_.push_back({when, c.id});
  std::push_heap(resume_timers_.begin(), resume_timers_.end(),
                 [](const TimerEntry& a, const TimerEntry& b) { return TimerLater(a, b); });
}

void Broker::TakePublishToken(Connection& c, Instant now) {
  const double rate = limits_.max_publish_rate;
  const double burst = limits_.publish_rate_burst != 0 ? limits_.publish_rate_burst : rate;
  std::unique_ptr<Connection::Extras::Rate>& state = c.Extra().rate;
  if (state == nullptr) {
    state = std::make_unique<Connection::Extras::Rate>();
    state->tokens = burst;
    state->refilled = now;
  }
  Connection::Extras::Rate& r = *state;
  const double elapsed = std::chrono::duration<double>(now - r.refilled).count();
  r.tokens = std::min(burst, r.tokens + elapsed * rate);
  r.refilled = now;
  r.tokens -= 1;
  if (r.tokens >= 1) {
    r.over_since = kNever;  // room to spare: not over the rate
    return;
  }
  if (r.over_since == kNever) {
    r.over_since = now;
  } else if (limits_.publish_rate_grace != Duration::zero() &&
             now - r.over_since >= limits_.publish_rate_grace) {
    ++counters_.rate_disconnects;
    SendDisconnect(c, ReasonCode::kMessageRateTooHigh, "message rate too high");
    Close(c, "message rate too high for too long", /*publish_will=*/true, now);
    return;
  }
  // Input waits until a whole token is back.
  ++counters_.throttled;
  r.paused = true;
  const double wait_s = (1 - r.tokens) / rate;
  ArmResume(c, now + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(wait_s)) +
                   Duration(1));
  MarkDirty(c);
}

bool Broker::Retain(const MessageRef& message) {
  // [MQTT-3.3.1-5]; an empty payload deletes ([MQTT-3.3.1-10]), which the limits never refuse.
  if (!retained_->TrySet(message, limits_.max_retained_messages, limits_.max_retained_bytes)) {
    ++counters_.refused_retained_limit;
    return false;
  }
  if (!IsSystemTopic(message->topic)) {  // $SYS/ values are the running broker's only
    StoreRetained(*message);
  }
  return true;
}

bool Broker::Publish(const MessageRef& message, SubscriberId publisher,
                     std::string_view publisher_id, bool retained) {
  if (message->retain && !retained) {
    Retain(message);  // a will over the limits is delivered, not kept
  }
  // Only the publisher_hash policy looks at it (and 0 means none, so a hash is never 0).
  const std::uint64_t publisher_hash =
      limits_.shared_policy != SharedPolicy::kPublisherHash || publisher_id.empty()
          ? 0
          : std::hash<std::string_view>{}(publisher_id) | 1;
  bool matched = Route(message, publisher, publisher_hash);
  for (std::uint16_t w = 0; w < cluster_.count; ++w) {
    if (w == cluster_.index) {
      continue;
    }
    if (cluster_.summary != nullptr && !cluster_.summary->MayMatch(w, message->topic)) {
      continue;  // nothing there can match
    }
    matched = true;  // may match there: 0x00, not 0x10
    Envelope e;
    e.kind = Envelope::Kind::kPublish;
    e.message = message;
    e.publisher_hash = publisher_hash;
    if (message->qos != QoS::k0 && storing() && durability_.acks_wait) {
      e.confirm = ++confirm_sent_[w];  // its acknowledgement waits for that worker's writes too
      ++confirm_posts_;
    }
    Post(w, std::move(e));
  }
  return matched;
}

void Broker::Post(std::uint16_t to, Envelope envelope) {
  envelope.from = cluster_.index;
  outbox_.push_back(Letter{to, std::move(envelope)});
}

void Broker::TakeOutbox(std::vector<Letter>& out) { MoveAppend(outbox_, out); }

void Broker::IndexAdd(std::string_view filter, const Subscription& subscription) {
  if (index_.Subscribe(filter, subscription) && cluster_.summary != nullptr) {
    cluster_.summary->Add(cluster_.index, filter);
  }
}

void Broker::IndexRemove(std::string_view filter, SubscriberId subscriber) {
  if (index_.Unsubscribe(filter, subscriber) && cluster_.summary != nullptr) {
    cluster_.summary->Remove(cluster_.index, filter);
  }
}

bool Broker::Route(const MessageRef& message, SubscriberId publisher,
                   std::uint64_t publisher_hash) {
  matches_.clear();
  index_.Match(message->topic, matches_);
  if (matches_.empty()) {
    return false;
  }
  // A subscriber with overlapping filters gets the message once, at the highest QoS granted
  // among them, with the identifiers of all of them (3.1.1 §3.3.5, 5.0 §3.3.4).
  std::sort(matches_.begin(), matches_.end(), [](const Subscription* a, const Subscription* b) {
    return a->subscriber < b->subscriber;
  });
  for (std::size_t i = 0; i < matches_.size();) {
    const SubscriberId id = matches_[i]->subscriber;
    if ((id & kSharedBit) != 0) {
      auto group = shared_by_id_.find(id);
      ++i;
      if (group != shared_by_id_.end() && restore_homes_ == nullptr) {
        RouteShared(*group->second, message, publisher_hash);
      }
      continue;
    }
    Delivery d;
    d.message = message;
    bool any = false;
    QoS granted = QoS::k0;
    for (; i < matches_.size() && matches_[i]->subscriber == id; ++i) {
      const Subscription& sub = *matches_[i];
      if (sub.options.no_local && id == publisher) {
        continue;  // 5.0 [MQTT-3.8.3-3]: not back to its own publisher
      }
      any = true;
      granted = MaxQos(granted, sub.options.max_qos);
      // [MQTT-3.3.1-12] / [MQTT-3.3.1-13]: RETAIN as published, or 0 ([MQTT-3.3.1-9]).
      d.retain = d.retain || (sub.options.retain_as_published && message->retain);
      if (sub.identifier != 0) {
        d.ids.push_back(sub.identifier);  // [MQTT-3.3.4-3]
      }
    }
    Session* s = any ? FindSession(id) : nullptr;
    if (s != nullptr && restore_homes_ != nullptr &&
        std::find(restore_homes_->begin(), restore_homes_->end(),
                  HomeAmong(s->client_id, restore_workers_)) == restore_homes_->end()) {
      s = nullptr;  // (restore) had it already
    }
    if (s != nullptr) {
      d.qos = MinQos(message->qos, granted);
      Deliver(*s, std::move(d));
    }
  }
  return true;
}

void Broker::RouteShared(SharedGroup& group, const MessageRef& message,
                         std::uint64_t publisher_hash) {
  // QoS 0 goes only to a member that is online; QoS 1/2 may wait in an offline member's session.
  const Subscription* member =
      PickMember(group, publisher_hash, /*exclude=*/0, /*online_only=*/message->qos == QoS::k0);
  if (member == nullptr) {
    ++counters_.dropped_offline_qos0;
    return;
  }
  Delivery d;
  d.message = message;
  GiveToMember(group, *member, std::move(d));
}

const Subscription* Broker::PickMember(SharedGroup& group, std::uint64_t publisher_hash,
                                       SubscriberId exclude, bool online_only) {
  const std::size_t n = group.members.size();
  if (n == 0) {
    return nullptr;
  }
  const bool hashed = limits_.shared_policy == SharedPolicy::kPublisherHash && publisher_hash != 0;
  const std::size_t start = hashed ? publisher_hash % n : group.next % n;
  // First choice: a member that can take the message now; then one that is online; then (QoS 1/2
  // only) any member, whose session keeps it until it comes back. By publisher: the publisher's
  // member while it is online, ready or not (a busy member keeps its publishers).
  for (int pass = hashed ? 1 : 0; pass < 3; ++pass) {
    if (pass == 2 && online_only) {
      break;
    }
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (start + k) % n;
      const Subscription& m = group.members[i];
      if (m.subscriber == exclude) {
        continue;
      }
      bool ready = false;
      bool online = false;
      if (WorkerOf(m.subscriber) != cluster_.index) {
        // A member on another worker: whether it is online is all this broker knows.
        online = std::find(group.offline.begin(), group.offline.end(), m.subscriber) ==
                 group.offline.end();
        ready = online;
      } else {
        const Session* found = FindSession(m.subscriber);
        if (found == nullptr) {
          continue;
        }
        const Session& s = *found;
        online = s.connection != nullptr && s.connection->state == Connection::State::kConnected;
        ready = Ready(s);
      }
      if ((pass == 0 && !ready) || (pass == 1 && !online)) {
        continue;
      }
      if (!hashed) {
        group.next = i + 1;
      }
      return &m;
    }
  }
  return nullptr;
}

}  // namespace tinymq::broker
