// SUBSCRIBE and UNSUBSCRIBE, shared subscription groups (members, rehoming, rerouting), and the
// envelopes other workers send.

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

void Broker::RehomeShared(Session& s, bool session_ends) {
  std::vector<Delivery> moving;
  s.queue.remove_if([](const Delivery& d) { return d.group != 0; },
                    [&](Delivery&& d) {
                      s.queued_bytes -= d.message->payload.size();
                      UnstoreDelivery(s, d);
                      moving.push_back(std::move(d));
                    });
  // Unacknowledged QoS 1 goes too (at least once allows the copy this member may have got); QoS 2
  // stays, since exactly once forbids a second receiver.
  for (auto it = s.inflight.begin(); it != s.inflight.end();) {
    if (it->delivery.group != 0 && it->delivery.qos == QoS::k1) {
      UnstoreDelivery(s, it->delivery);
      Delivery d = std::move(it->delivery);
      it = s.EraseInFlight(it);
      moving.push_back(std::move(d));
    } else {
      ++it;
    }
  }
  for (Delivery& d : moving) {
    const std::uint16_t home = WorkerOf(d.group);
    if (home == cluster_.index) {
      Reroute(d.group, s.id, session_ends, std::move(d));
    } else {
      Envelope e;
      e.kind = Envelope::Kind::kSharedReroute;
      e.flag = session_ends;
      e.message = std::move(d.message);
      e.member.subscriber = s.id;
      e.group = d.group;
      Post(home, std::move(e));
    }
  }
}

void Broker::Reroute(SubscriberId group_id, SubscriberId from, bool session_ended, Delivery d) {
  auto group = shared_by_id_.find(group_id);
  const Subscription* member =
      group == shared_by_id_.end()
          ? nullptr
          : PickMember(*group->second, 0, /*exclude=*/from, /*online_only=*/!session_ended);
  if (member != nullptr) {
    GiveToMember(*group->second, *member, std::move(d));
    return;
  }
  if (session_ended) {
    return;  // nobody left to take it
  }
  // Nobody else can take it: it waits in the session of the member that had it.
  Subscription back;
  back.subscriber = from;
  back.options.max_qos = d.qos;
  if (!d.ids.empty()) {
    back.identifier = d.ids.front();
  }
  if (group != shared_by_id_.end()) {
    for (const Subscription& m : group->second->members) {
      if (m.subscriber == from) {
        back = m;
      }
    }
    GiveToMember(*group->second, back, std::move(d), /*keep=*/true);
  }
}

void Broker::GiveToMember(const SharedGroup& group, const Subscription& member, Delivery d,
                          bool keep) {
  d.qos = MinQos(d.message->qos, member.options.max_qos);
  d.retain = member.options.retain_as_published && d.message->retain;
  d.group = group.id;
  d.ids.clear();
  if (member.identifier != 0) {
    d.ids.push_back(member.identifier);
  }
  const std::uint16_t worker = WorkerOf(member.subscriber);
  if (worker != cluster_.index) {
    Envelope e;
    e.kind = Envelope::Kind::kSharedDeliver;
    e.flag = keep;
    e.message = std::move(d.message);
    e.member = member;
    e.group = group.id;
    if (d.qos != QoS::k0 && storing() && durability_.acks_wait) {
      e.confirm = ++confirm_sent_[worker];
      ++confirm_posts_;
    }
    Post(worker, std::move(e));
    return;
  }
  if (Session* s = FindSession(member.subscriber)) {
    Deliver(*s, std::move(d));
  }
}

void Broker::HandleSubscribe(Connection& c, const mqtt::Subscribe& sub) {
  Session& s = *c.session;
  const bool v5 = c.version == ProtocolVersion::kV5;
  const std::uint32_t identifier =
      v5 ? sub.properties.Number(mqtt::PropertyId::kSubscriptionIdentifier).value_or(0) : 0;
  if (identifier != 0 && !limits_.subscription_identifiers) {
    // The CONNACK said Subscription Identifier Available 0 (5.0 §3.2.2.3.12).
    Reject(c, ReasonCode::kSubscriptionIdentifiersNotSupported,
           "subscription identifiers not supported", last_now_);
    return;
  }
  std::vector<ReasonCode> codes;
  std::vector<Delivery> retained;
  std::string reason_text;
  const std::uint64_t promised = promises();
  auto fail = [&](ReasonCode v5_code, std::string_view filter, std::string_view why) {
    codes.push_back(v5 ? v5_code : ReasonCode::kUnspecifiedError);  // 3.1.1: 0x80
    if (reason_text.empty()) {
      reason_text = std::string(filter) + ": " + std::string(why);
    }
  };
  for (const mqtt::TopicSubscription& t : sub.subscriptions) {
    std::optional<mqtt::SharedSubscription> shared;
    std::string_view filter = t.filter;
    if (v5) {  // "$share/" means nothing special to a 3.1.x client
      auto parsed = mqtt::ParseSharedSubscription(t.filter);
      if (!parsed) {
        fail(ReasonCode::kTopicFilterInvalid, t.filter, "invalid shared subscription");
        continue;
      }
      shared = *parsed;
      if (shared) {
        filter = shared->filter;
      }
    }
    if (!mqtt::ValidateTopicFilter(filter)) {
      fail(ReasonCode::kTopicFilterInvalid, t.filter, "invalid topic filter");
      continue;
    }
    if (!WithinTopicLimits(t.filter, filter)) {
      fail(ReasonCode::kTopicFilterInvalid, t.filter, "topic filter over the topic limits");
      continue;
    }
    if (const auth::ClientAcl* acl = c.acl();
        acl != nullptr && acl->MaySubscribe(filter) == auth::SubscribeAccess::kDeny) {
      // (A filter only partly readable is granted: each message is checked as it goes out.)
      ++counters_.denied_subscribe;
      fail(ReasonCode::kNotAuthorized, t.filter, "not authorized");
      continue;
    }
    if (!limits_.wildcard_subscriptions && mqtt::HasWildcard(filter)) {
      fail(ReasonCode::kWildcardSubscriptionsNotSupported, t.filter,
           "wildcard subscriptions are not available");
      continue;
    }
    if (shared && !limits_.shared_subscriptions) {
      fail(ReasonCode::kSharedSubscriptionsNotSupported, t.filter,
           "shared subscriptions are not available");
      continue;
    }
    // 5.0 [MQTT-3.2.2-10]: never granted above the Maximum QoS.
    const QoS granted = MinQos(t.options.max_qos, limits_.maximum_qos);
    mqtt::SubscriptionOptions options = t.options;
    options.max_qos = granted;
    const std::string key(t.filter);
    if (s.subscriptions == nullptr) {
      s.subscriptions = std::make_unique<Session::Subscriptions>();
    }
    auto old = s.subscriptions->find(key);
    bool existed = old != s.subscriptions->end();
    if (!existed && s.subscriptions->size() >= limits_.max_subscriptions_per_client) {
      ++counters_.refused_subscription_limit;
      fail(ReasonCode::kQuotaExceeded, t.filter, "too many subscriptions");
      continue;
    }
    if (existed && old->second.shared != shared.has_value()) {
      // "$share/..." subscribed by this session as a 3.1.x client, now as a 5.0 one (or back).
      RemoveSubscription(s, key, old->second.shared);
      existed = false;
    }
    // [MQTT-3.8.4-3]: a subscription to a filter already subscribed replaces the old one.
    (*s.subscriptions)[key] = Session::Subscribed{granted, shared.has_value()};
    codes.push_back(static_cast<ReasonCode>(granted));
    StoreSubscription(s, key, Subscription{s.id, options, identifier}, shared.has_value());
    if (shared) {
      JoinGroupAtHome(key, Subscription{s.id, options, identifier});
      continue;  // 5.0 §4.8.2: retained messages are not sent on a shared subscription
    }
    IndexAdd(filter, Subscription{s.id, options, identifier});
    // 5.0 §3.8.3.1: Retain Handling 0 sends the retained messages, 1 only for a new subscription
    // [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
    if (options.retain_handling == 2 || (options.retain_handling == 1 && existed)) {
      continue;
    }
    retained_scratch_.clear();
    retained_->Match(filter, retained_scratch_);
    for (MessageRef& m : retained_scratch_) {
      if (m->expired(last_now_)) {
        retained_->Erase(m);  // expired: forget it
        continue;
      }
      Delivery d;
      d.qos = MinQos(m->qos, granted);
      d.retain = true;  // [MQTT-3.3.1-8]
      if (identifier != 0) {
        d.ids.push_back(identifier);
      }
      d.message = std::move(m);
      retained.push_back(std::move(d));
    }
  }
  if (promises() != promised) {
    Hold(c);  // a SUBACK promises that the subscription survives a restart
  }
  const mqtt::Suback plain{sub.packet_id, {}, mqtt::ReasonCodeList(codes)};
  if (v5 && !reason_text.empty() && c.problem_information) {
    // [MQTT-3.9.2-1]: the Reason String only if the SUBACK stays within the client's maximum.
    SendFitting(
        c,
        mqtt::Suback{sub.packet_id, ReasonString(reason_text).view(), mqtt::ReasonCodeList(codes)},
        plain, c.client_max_packet_size);
  } else {
    Send(c, plain);
  }
  // [MQTT-3.3.1-6], [MQTT-3.3.1-8]: matching retained messages follow, with RETAIN set.
  for (Delivery& d : retained) {
    Deliver(s, std::move(d));
  }
}

void Broker::RemoveSubscription(Session& s, const std::string& key, bool shared) {
  // (A 3.1.x session's "$share/..." is an ordinary filter, even beside a 5.0 group of that name.)
  if (!shared) {
    IndexRemove(key, s.id);
    return;
  }
  const std::uint16_t home = HomeOf(key);
  if (home == cluster_.index) {
    LeaveGroup(key, s.id);
    return;
  }
  Envelope e;
  e.kind = Envelope::Kind::kSharedLeave;
  e.member.subscriber = s.id;
  e.key = key;
  Post(home, std::move(e));
}

void Broker::JoinGroupAtHome(const std::string& key, const Subscription& member) {
  const std::uint16_t home = HomeOf(key);
  if (home == cluster_.index) {
    JoinGroup(key, member);
    return;
  }
  Envelope e;
  e.kind = Envelope::Kind::kSharedJoin;
  e.member = member;
  e.key = key;
  Post(home, std::move(e));
}

void Broker::JoinGroup(const std::string& key, const Subscription& member) {
  auto [it, created] = shared_groups_.try_emplace(key);
  if (created) {
    const auto parsed = mqtt::ParseSharedSubscription(key);
    TINYMQ_CHECK(parsed.has_value() && parsed->has_value());  // the member's broker parsed it
    it->second = std::make_unique<SharedGroup>();
    SharedGroup& g = *it->second;
    g.id = kSharedBit | (SubscriberId{cluster_.index} << kWorkerShift) | next_group_id_++;
    g.key = key;
    g.filter = std::string((*parsed)->filter);
    shared_by_id_.emplace(g.id, &g);
    mqtt::SubscriptionOptions group_options;
    group_options.max_qos = QoS::k2;
    IndexAdd(g.filter, Subscription{g.id, group_options, 0});
  }
  SharedGroup& g = *it->second;
  std::erase(g.offline, member.subscriber);  // it subscribes: it is online
  auto m = std::find_if(g.members.begin(), g.members.end(),
                        [&](const Subscription& x) { return x.subscriber == member.subscriber; });
  if (m == g.members.end()) {
    g.members.push_back(member);
  } else {
    *m = member;
  }
}

void Broker::LeaveGroup(const std::string& key, SubscriberId member) {
  auto group = shared_groups_.find(key);
  if (group == shared_groups_.end()) {
    return;
  }
  SharedGroup& g = *group->second;
  std::erase_if(g.members, [&](const Subscription& m) { return m.subscriber == member; });
  std::erase(g.offline, member);
  if (g.members.empty()) {
    IndexRemove(g.filter, g.id);
    shared_by_id_.erase(g.id);
    shared_groups_.erase(group);
  }
}

void Broker::SetMemberOnline(const std::string& key, SubscriberId member, bool online) {
  auto group = shared_groups_.find(key);
  if (group == shared_groups_.end() || WorkerOf(member) == cluster_.index) {
    return;  // members here are looked up directly
  }
  std::vector<SubscriberId>& offline = group->second->offline;
  std::erase(offline, member);
  if (!online) {
    offline.push_back(member);
  }
}

void Broker::AnnounceOnline(const Session& s, bool online) {
  if (cluster_.count == 1 || s.subscriptions == nullptr) {
    return;
  }
  for (const auto& [key, subscribed] : *s.subscriptions) {
    const std::uint16_t home = subscribed.shared ? HomeOf(key) : cluster_.index;
    if (home == cluster_.index) {
      continue;
    }
    Envelope e;
    e.kind = Envelope::Kind::kSharedOnline;
    e.flag = online;
    e.member.subscriber = s.id;
    e.key = key;
    Post(home, std::move(e));
  }
}

void Broker::OnEnvelope(Envelope e, Instant now) {
  last_now_ = now;
  if (e.confirm != 0 && e.kind != Envelope::Kind::kConfirm && e.from < confirm_seen_.size()) {
    // Confirmed to the sender once what handling it writes is durable (TakeWrites, OnDurable).
    confirm_seen_[e.from] = std::max(confirm_seen_[e.from], e.confirm);
  }
  switch (e.kind) {
    case Envelope::Kind::kConfirm:
      if (e.from < confirmed_.size()) {
        confirmed_[e.from] = std::max(confirmed_[e.from], e.confirm);
        ReleaseHolds();
      }
      return;
    case Envelope::Kind::kPublish:
      Route(e.message, /*publisher=*/0, e.publisher_hash);
      if (!e.origin.empty() && storing()) {
        // With what Route queued, atomically: this worker has its part of the message.
        writes_.Put(store::Kind::kIncoming, store::RoutedMarkerKey(e.origin, cluster_.index), {});
      }
      return;
    case Envelope::Kind::kSharedJoin: JoinGroup(e.key, e.member); return;
    case Envelope::Kind::kSharedLeave: LeaveGroup(e.key, e.member.subscriber); return;
    case Envelope::Kind::kSharedOnline: SetMemberOnline(e.key, e.member.subscriber, e.flag); return;
    case Envelope::Kind::kSharedDeliver: {
      Session* found = FindSession(e.member.subscriber);
      Delivery d;
      d.message = std::move(e.message);
      d.qos = MinQos(d.message->qos, e.member.options.max_qos);
      d.retain = e.member.options.retain_as_published && d.message->retain;
      d.group = e.group;
      if (e.member.identifier != 0) {
        d.ids.push_back(e.member.identifier);
      }
      if (found != nullptr) {
        Session& s = *found;
        if (s.connection == nullptr && d.qos != QoS::k0 && !e.flag) {
          // Went offline after the group's home picked it: another member may take it.
          Envelope back;
          back.kind = Envelope::Kind::kSharedReroute;
          back.message = std::move(d.message);
          back.member.subscriber = s.id;
          back.group = d.group;
          Post(WorkerOf(d.group), std::move(back));
          return;
        }
        Deliver(s, std::move(d));
      } else if (d.qos != QoS::k0) {
        Envelope back;  // the session ended meanwhile
        back.kind = Envelope::Kind::kSharedReroute;
        back.flag = true;
        back.message = std::move(d.message);
        back.member.subscriber = e.member.subscriber;
        back.group = d.group;
        Post(WorkerOf(d.group), std::move(back));
      }
      return;
    }
    case Envelope::Kind::kSharedReroute: {
      Delivery d;
      d.message = std::move(e.message);
      d.qos = d.message->qos;
      Reroute(e.group, e.member.subscriber, e.flag, std::move(d));
      return;
    }
  }
}

void Broker::HandleUnsubscribe(Connection& c, const mqtt::Unsubscribe& unsub) {
  Session& s = *c.session;
  std::vector<ReasonCode> codes;
  const std::uint64_t promised = promises();
  for (std::string_view filter : unsub.filters) {
    const std::string key(filter);
    auto it = s.subscriptions != nullptr ? s.subscriptions->find(key)
                                         : Session::Subscriptions::iterator();
    const bool existed = s.subscriptions != nullptr && it != s.subscriptions->end();
    if (existed) {
      const bool shared = it->second.shared;
      s.subscriptions->erase(it);
      RemoveSubscription(s, key, shared);
      UnstoreSubscription(s, key);
    }
    codes.push_back(existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted);
  }
  if (promises() != promised) {
    Hold(c);
  }
  // [MQTT-3.10.4-5]: UNSUBACK even when nothing was subscribed.
  Send(c, mqtt::Unsuback{unsub.packet_id, {}, mqtt::ReasonCodeList(codes)});
}

}  // namespace tinymq::broker
