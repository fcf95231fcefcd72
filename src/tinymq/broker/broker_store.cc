// The broker's persistence: turning state changes into store writes, holding back what promises
// durability until it is durable, spilling long queues to the store, and restoring from it.
// (broker.h describes the interface; broker.cc the protocol.)

#include <algorithm>
#include <chrono>
#include <unordered_set>
#include <utility>

#include "tinymq/broker/broker.h"
#include "tinymq/broker/broker_internal.h"
#include "tinymq/mqtt/topic.h"
#include "tinymq/mqtt/wire.h"
#include "tinymq/store/records.h"
#include "tinymq/util/check.h"

namespace tinymq::broker {
namespace {

using store::DeliveryState;
using store::Kind;

std::string Bytes(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
mqtt::BinaryView View(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// True when `bytes` is a property list (no length prefix) that a PUBLISH (or a will, `will`) may
// carry: a damaged record must not reach the code that trusts validated lists.
bool ValidProperties(std::string_view bytes, bool will) {
  if (bytes.empty()) {
    return true;
  }
  if (bytes.size() > mqtt::kMaxRemainingLength) {
    return false;
  }
  std::vector<std::uint8_t> framed;
  auto n = static_cast<std::uint32_t>(bytes.size());
  do {  // the Property Length, a Variable Byte Integer
    std::uint8_t b = n % 128;
    n /= 128;
    framed.push_back(n != 0 ? static_cast<std::uint8_t>(b | 0x80) : b);
  } while (n != 0);
  framed.insert(framed.end(), bytes.begin(), bytes.end());
  mqtt::Reader reader(framed);
  mqtt::ReadProperties(reader,
                       will ? mqtt::PropertyContext::kWill : mqtt::PropertyContext::kPublish);
  return !reader.failed() && reader.empty();
}

mqtt::SubscriptionOptions OptionsFromByte(std::uint8_t b) {
  mqtt::SubscriptionOptions o;
  o.max_qos = static_cast<QoS>(b & 0x03);
  o.no_local = (b & 0x04) != 0;
  o.retain_as_published = (b & 0x08) != 0;
  o.retain_handling = static_cast<std::uint8_t>((b >> 4) & 0x03);
  return o;
}

}  // namespace

// --- Set-up -------------------------------------------------------------------------------------

void Broker::AttachStore(const Durability& durability) {
  durability_ = durability;
  const std::size_t n = cluster_.count;
  confirm_sent_.assign(n, 0);
  confirmed_.assign(n, 0);
  confirm_seen_.assign(n, 0);
  confirm_told_.assign(n, 0);
}

store::UnixMs Broker::Wall(Instant t) const {
  return durability_.wall_offset_ms +
         std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

store::MessageRecord Broker::ToRecord(const Message& m) const {
  store::MessageRecord r;
  r.topic = m.topic;
  r.payload = Bytes(m.payload);
  r.qos = static_cast<std::uint8_t>(m.qos);
  r.retain = m.retain;
  r.properties = Bytes(m.properties);
  r.expires_at = m.expires() ? Wall(m.expires_at) : 0;
  return r;
}

std::optional<MessageRef> Broker::FromRecord(const store::MessageRecord& r, Instant now,
                                             bool pooled, bool* expired) {
  if (expired != nullptr) {
    *expired = false;
  }
  if (!mqtt::ValidateTopicName(r.topic) || r.qos > 2 || !ValidProperties(r.properties, false) ||
      r.payload.size() > mqtt::kMaxRemainingLength) {
    return std::nullopt;
  }
  mqtt::PropertiesBuilder props;
  mqtt::Properties list = mqtt::Properties::FromValidated(View(r.properties));
  if (r.expires_at != 0) {
    const store::UnixMs left = r.expires_at - Wall(now);
    if (left <= 0) {
      if (expired != nullptr) {
        *expired = true;
      }
      return std::nullopt;
    }
    // What is left of the Message Expiry Interval, in whole seconds (rounded up), from now.
    props.Add(mqtt::PropertyId::kMessageExpiryInterval,
              static_cast<std::uint32_t>(std::min<store::UnixMs>((left + 999) / 1000, UINT32_MAX)));
    for (const mqtt::Property& p : list) {
      props.Append(p);
    }
    list = props.view();
  }
  const auto qos = static_cast<QoS>(r.qos);
  return pooled ? messages_.Make(r.topic, View(r.payload), qos, r.retain, list, now)
                : MakeMessage(r.topic, View(r.payload), qos, r.retain, list, now);
}

// --- Writes -------------------------------------------------------------------------------------

void Broker::StoreSession(Session& s, Instant disconnected_at) {
  if (!s.stored) {
    return;
  }
  store::SessionRecord r;
  r.expiry_s = s.expiry_s;
  r.disconnected_at = disconnected_at == kNever ? 0 : Wall(disconnected_at);
  r.last_packet_id = s.last_packet_id;
  r.protocol_level = s.stored->level;
  writes_.Put(Kind::kSessions, store::ClientKey(s.client_id), store::Encode(r));
}

void Broker::StoreWill(Session& s, const Will* will, Instant due) {
  if (!s.stored) {
    return;
  }
  if (will == nullptr) {
    if (s.stored->has_will) {
      writes_.Delete(Kind::kWills, store::ClientKey(s.client_id));
      s.stored->has_will = false;
    }
    return;
  }
  store::WillRecord r;
  r.message.topic = will->topic;
  r.message.payload = Bytes(will->payload);
  r.message.qos = static_cast<std::uint8_t>(will->qos);
  r.message.retain = will->retain;
  r.message.properties = Bytes(will->properties);
  r.due_at = due == kNever ? 0 : Wall(due);
  writes_.Put(Kind::kWills, store::ClientKey(s.client_id), store::Encode(r));
  s.stored->has_will = true;
}

void Broker::UnstoreSession(Session& s) {
  if (!s.stored) {
    return;
  }
  Session::Stored& st = *s.stored;
  writes_.Delete(Kind::kSessions, store::ClientKey(s.client_id));
  if (s.subscriptions != nullptr) {
    for (const auto& [key, subscribed] : *s.subscriptions) {
      writes_.Delete(Kind::kSubscriptions, store::SubscriptionKey(s.client_id, key));
    }
  }
  s.queue.for_each([&](Delivery& d) { UnstoreDelivery(s, d); });
  for (Session::InFlight& f : s.inflight) {
    UnstoreDelivery(s, f.delivery);
  }
  if (st.spilled != 0) {
    writes_.DeleteRange(Kind::kQueues, store::QueueKey(s.client_id, st.spill_from),
                        store::QueueKey(s.client_id, st.next_seq));
  }
  if (s.incoming_qos2 != nullptr) {
    for (std::uint16_t id : *s.incoming_qos2) {
      writes_.Delete(Kind::kIncoming, store::IncomingKey(s.client_id, id));
    }
  }
  StoreWill(s, nullptr, kNever);
  s.stored.reset();
}

void Broker::StoreSubscription(Session& s, const std::string& key, const Subscription& sub,
                               bool shared) {
  if (!s.stored) {
    return;
  }
  store::SubscriptionRecord r;
  r.options = sub.options.ToByte();
  r.identifier = sub.identifier;
  r.shared = shared;
  writes_.Put(Kind::kSubscriptions, store::SubscriptionKey(s.client_id, key), store::Encode(r));
}

void Broker::UnstoreSubscription(Session& s, const std::string& key) {
  if (s.stored) {
    writes_.Delete(Kind::kSubscriptions, store::SubscriptionKey(s.client_id, key));
  }
}

void Broker::StoreDelivery(Session& s, Delivery& d, DeliveryState state, std::uint16_t packet_id,
                           bool spilling) {
  if (!s.stored || d.qos == QoS::k0) {
    return;
  }
  const bool fresh = d.seq == 0;
  if (fresh) {
    d.seq = s.stored->next_seq++;
  }
  store::QueueRecord r;
  r.qos = static_cast<std::uint8_t>(d.qos);
  r.retain = d.retain;
  r.state = state;
  r.packet_id = packet_id;
  r.ids = d.ids;
  r.group = d.group;
  std::string_view part = released_part_;
  if (state != DeliveryState::kReleased && d.message) {
    // One message goes to many sessions in a row: its part of the record is encoded once.
    if (encoded_ != d.message) {
      encoded_ = d.message;
      encoded_part_ = store::EncodeMessagePart(ToRecord(*d.message));
    }
    part = encoded_part_;
  }
  std::string value = store::EncodeQueue(part, r);
  if (spilling) {
    writes_.Append(Kind::kQueues, store::QueueKey(s.client_id, d.seq), std::move(value));
  } else {
    writes_.Put(Kind::kQueues, store::QueueKey(s.client_id, d.seq), std::move(value), fresh);
  }
}

void Broker::UnstoreDelivery(Session& s, Delivery& d) {
  if (s.stored && d.seq != 0) {
    writes_.Delete(Kind::kQueues, store::QueueKey(s.client_id, d.seq));
  }
  d.seq = 0;
}

bool Broker::Spill(Session& s, Delivery& d) {
  if (!s.stored || d.qos == QoS::k0 ||
      (s.stored->spilled == 0 && s.queue.size() < durability_.queue_head)) {
    return false;
  }
  Session::Stored& st = *s.stored;
  StoreDelivery(s, d, DeliveryState::kQueued, 0, /*spilling=*/true);
  if (st.spilled == 0) {
    st.spill_from = d.seq;
  }
  ++st.spilled;
  st.spilled_bytes += d.message->payload.size();
  spill_marks_.push_back(SpillMark{taken_epoch_ + 1, s.id, d.seq});
  return true;
}

bool Broker::LoadSpilled(Session& s) {
  Session::Stored& st = *s.stored;
  if (st.spilled == 0) {
    return false;
  }
  if (st.spill_written < st.spill_from) {
    st.load_waiting = true;  // not written yet: OnDurable pumps again
    return false;
  }
  const std::size_t head = std::max<std::size_t>(durability_.queue_head, 1);
  const std::size_t want = s.queue.size() >= head ? 1 : head - s.queue.size();
  std::size_t loaded = 0;
  std::uint64_t next_from = st.spill_from;
  std::vector<std::uint64_t> damaged;
  const std::string prefix = store::ClientKey(s.client_id);
  auto scanned = durability_.store->Scan(
      Kind::kQueues, prefix,
      [&](std::string_view key, std::string_view value) {
        const std::optional<std::uint64_t> seq = store::KeyNumber(key.substr(prefix.size()));
        if (!seq || *seq > st.spill_written) {
          return false;  // beyond what is written
        }
        next_from = *seq + 1;
        std::optional<store::QueueRecord> r = store::DecodeQueue(value);
        if (!r) {
          damaged.push_back(*seq);
          --st.spilled;
          return st.spilled != 0;
        }
        if (r->state != DeliveryState::kQueued) {
          return true;  // in flight (restored between queued ones): not part of the queue
        }
        bool expired = false;
        std::optional<MessageRef> m = FromRecord(r->message, last_now_, /*pooled=*/true, &expired);
        --st.spilled;
        st.spilled_bytes -= std::min(st.spilled_bytes, r->message.payload.size());
        if (!m) {
          if (expired) {
            ++counters_.dropped_expired;
          } else {
            damaged.push_back(*seq);
          }
          writes_.Delete(Kind::kQueues, std::string(key));
          return st.spilled != 0;
        }
        Delivery d;
        d.message = std::move(*m);
        d.qos = static_cast<QoS>(std::min<std::uint8_t>(r->qos, 2));
        d.retain = r->retain;
        d.ids = std::move(r->ids);
        d.group = r->group;
        d.seq = *seq;
        s.queued_bytes += d.message->payload.size();
        s.queue.push_back(std::move(d));
        ++loaded;
        return loaded < want && st.spilled != 0;
      },
      store::QueueKey(s.client_id, st.spill_from));
  st.spill_from = next_from;
  if (!scanned) {
    if (log_) {
      log_(LogLevel::kWarning,
           "client " + s.client_id + ": cannot read its queued messages back: " + scanned.error());
    }
    return loaded != 0;
  }
  for (std::uint64_t seq : damaged) {
    if (log_) {
      log_(LogLevel::kWarning, "client " + s.client_id + ": queued message " + std::to_string(seq) +
                                   " is damaged in the store; dropped");
    }
    writes_.Delete(Kind::kQueues, store::QueueKey(s.client_id, seq));
  }
  if (loaded == 0 && st.spilled != 0) {
    if (st.spill_written + 1 >= st.next_seq) {
      // Everything is written and nothing more was found: the count was wrong. Forget it rather
      // than wait forever.
      if (log_) {
        log_(LogLevel::kWarning, "client " + s.client_id + ": " + std::to_string(st.spilled) +
                                     " queued messages missing from the store");
      }
      st.spilled = 0;
      st.spilled_bytes = 0;
    } else {
      st.load_waiting = true;
    }
  }
  return loaded != 0;
}

void Broker::StoreRetained(const Message& m) {
  if (!storing()) {
    return;
  }
  if (m.payload.empty()) {
    writes_.Delete(Kind::kRetained, m.topic);
  } else {
    writes_.Put(Kind::kRetained, m.topic, store::Encode(ToRecord(m)));
  }
}

// --- Epochs, holds and confirmations ------------------------------------------------------------

std::uint64_t Broker::TakeWrites(store::Batch& batch) {
  if (!storing()) {
    return 0;
  }
  bool confirms = false;
  for (std::size_t w = 0; w < confirm_seen_.size(); ++w) {
    confirms = confirms || confirm_seen_[w] > confirm_told_[w];
  }
  const bool waited_on = (!tickets_.empty() && tickets_.back().epoch > taken_epoch_) ||
                         (!spill_marks_.empty() && spill_marks_.back().epoch > taken_epoch_);
  if (writes_.empty() && waited_on) {
    // What was written this epoch cancelled out, but work waits for the epoch: it is durable as
    // soon as the epochs before it are.
    if (durable_epoch_ == taken_epoch_) {
      durable_epoch_ = ++taken_epoch_;
      ReleaseHolds();
    } else {
      ++taken_epoch_;
      if (confirms) {
        due_confirms_.push_back(DueConfirms{taken_epoch_, confirm_seen_});
      }
      return taken_epoch_;  // an empty batch, reported durable after those before it
    }
  }
  if (writes_.empty()) {
    if (confirms) {
      if (due_confirms_.empty()) {
        SendConfirms(confirm_seen_);  // the work wrote nothing: nothing to wait for
      } else {
        due_confirms_.back().upto = confirm_seen_;  // after the epochs before it, in order
      }
    }
    return 0;
  }
  const std::uint64_t epoch = ++taken_epoch_;
  writes_.MoveTo(batch);
  if (confirms) {
    due_confirms_.push_back(DueConfirms{epoch, confirm_seen_});
  }
  return epoch;
}

void Broker::OnDurable(std::uint64_t epoch, Instant now) {
  last_now_ = std::max(last_now_, now);
  durable_epoch_ = std::max(durable_epoch_, epoch);
  while (!due_confirms_.empty() && due_confirms_.front().epoch <= durable_epoch_) {
    SendConfirms(due_confirms_.front().upto);
    due_confirms_.pop_front();
  }
  std::vector<SubscriberId> pump;
  while (!spill_marks_.empty() && spill_marks_.front().epoch <= durable_epoch_) {
    const SpillMark mark = spill_marks_.front();
    spill_marks_.pop_front();
    Session* s = FindSession(mark.session);
    if (s == nullptr || !s->stored) {
      continue;
    }
    s->stored->spill_written = std::max(s->stored->spill_written, mark.seq);
    if (s->stored->load_waiting) {
      s->stored->load_waiting = false;
      pump.push_back(s->id);
    }
  }
  ReleaseHolds();
  for (SubscriberId id : pump) {
    if (Session* s = FindSession(id)) {
      Pump(*s);
    }
  }
}

void Broker::SendConfirms(const std::vector<std::uint64_t>& upto) {
  for (std::uint16_t w = 0; w < upto.size(); ++w) {
    if (upto[w] > confirm_told_[w]) {
      confirm_told_[w] = upto[w];
      Envelope e;
      e.kind = Envelope::Kind::kConfirm;
      e.confirm = upto[w];
      Post(w, std::move(e));
    }
  }
}

void Broker::Hold(Connection& c) {
  if (!storing() || !durability_.acks_wait) {
    return;
  }
  // What it waits for: the writes so far (the open epoch, or the last one taken when nothing was
  // written since), and what other workers were sent so far.
  const std::uint64_t epoch = writes_.empty() ? taken_epoch_ : taken_epoch_ + 1;
  bool remote_done = true;
  for (std::size_t w = 0; w < confirm_sent_.size(); ++w) {
    remote_done = remote_done && confirmed_[w] >= confirm_sent_[w];
  }
  if (epoch <= durable_epoch_ && remote_done) {
    return;  // already durable everywhere
  }
  if (tickets_.empty() || tickets_.back().epoch != epoch ||
      tickets_.back().remote != confirm_sent_) {
    tickets_.push_back(Ticket{next_ticket_++, epoch, confirm_sent_});
  }
  const std::uint64_t ticket = tickets_.back().id;
  PendingOutput& o = AcquireOut(c);
  if (o.held() && o.holds.back().ticket == ticket) {
    return;  // held from an earlier point already, by the same ticket
  }
  o.holds.push_back(PendingOutput::Hold{o.end(), ticket});
  if (!o.listed) {
    o.listed = true;
    held_.push_back(c.id);
  }
}

void Broker::ReleaseHolds() {
  auto ready = [&](const Ticket& t) {
    if (t.epoch > durable_epoch_) {
      return false;
    }
    for (std::size_t w = 0; w < t.remote.size(); ++w) {
      if (confirmed_[w] < t.remote[w]) {
        return false;
      }
    }
    return true;
  };
  const std::uint64_t before = released_ticket_;
  while (!tickets_.empty() && ready(tickets_.front())) {
    released_ticket_ = tickets_.front().id;
    tickets_.pop_front();
  }
  if (released_ticket_ == before) {
    return;
  }
  std::size_t keep = 0;
  for (ConnectionId id : held_) {
    Connection* c = Find(id);
    if (c == nullptr || c->io == nullptr || !c->io->listed) {
      continue;  // gone, or its output was released (and maybe listed again later in held_)
    }
    PendingOutput& o = *c->io;
    o.listed = false;
    const std::size_t first = o.hold_begin;
    while (o.held() && o.holds[o.hold_begin].ticket <= released_ticket_) {
      ++o.hold_begin;
    }
    if (o.hold_begin != first) {
      MarkDirty(*c);
    }
    if (o.held()) {
      held_[keep++] = id;
    } else {
      o.holds.clear();
      o.hold_begin = 0;
    }
  }
  held_.resize(keep);
  for (ConnectionId id : held_) {
    Find(id)->io->listed = true;
  }
}

// --- Restore ------------------------------------------------------------------------------------

util::Result<RestoreCounts, std::string> Broker::Restore(Instant now, bool retained,
                                                         bool sessions) {
  RestoreCounts counts;
  if (!storing()) {
    return counts;
  }
  last_now_ = now;
  restoring_ = true;
  util::Result<void, std::string> r =
      retained ? RestoreRetained(now, counts) : util::Result<void, std::string>();
  if (r && sessions) {
    r = RestoreSessions(now, counts);
  }
  restoring_ = false;
  if (!r) {
    return util::Unexpected(r.error());
  }
  return counts;
}

util::Result<void, std::string> Broker::RestoreRetained(Instant now, RestoreCounts& counts) {
  std::string damaged;
  auto scanned = durability_.store->Scan(
      Kind::kRetained, "", [&](std::string_view key, std::string_view value) {
        std::optional<store::MessageRecord> rec = store::DecodeMessage(value);
        bool expired = false;
        std::optional<MessageRef> m =
            rec ? FromRecord(*rec, now, /*pooled=*/false, &expired) : std::nullopt;
        if (expired) {
          ++counts.expired_messages;
          writes_.Delete(Kind::kRetained, std::string(key));
          return true;
        }
        if (!m || (*m)->topic != key) {
          damaged = "retained message on '" + std::string(key) + "'";
          return false;
        }
        retained_->Set(*m);
        ++counts.retained;
        return true;
      });
  if (!scanned) {
    return util::Unexpected(scanned.error());
  }
  if (!damaged.empty()) {
    return util::Unexpected("damaged record in the store: " + damaged);
  }
  return {};
}

util::Result<void, std::string> Broker::RestoreSessions(Instant now, RestoreCounts& counts) {
  const store::UnixMs wall_now = Wall(now);
  std::string damaged;
  // Client ids of this worker's sessions that expired while the broker was down: their records
  // are deleted as the scans meet them, and their wills published.
  std::unordered_set<std::string> expired;
  auto homed = [&](std::string_view key, std::string_view* client, std::string_view* rest) {
    const std::optional<store::SplitKey> split = store::SplitClientKey(key);
    if (!split) {
      damaged = "a key of " + std::to_string(key.size()) + " bytes";
      return false;
    }
    *client = split->client_id;
    *rest = split->rest;
    return HomeOf(split->client_id) == cluster_.index;
  };
  auto session_of = [&](std::string_view client) -> Session* {
    auto it = sessions_.find(client);
    return it == sessions_.end() ? nullptr : it->second;
  };
  // Why a scan stopped: the store's error, or the damaged record it met.
  auto scan_failure =
      [&](const util::Result<void, std::string>& scan) -> util::Result<void, std::string> {
    return util::Unexpected(!scan ? scan.error() : "damaged record in the store: " + damaged);
  };
  auto fail = [&](std::string what, std::string_view client) {
    damaged = what + " of client '" + std::string(client) + "'";
    return false;
  };

  // Sessions.
  auto scanned = durability_.store->Scan(
      Kind::kSessions, "", [&](std::string_view key, std::string_view value) {
        std::string_view client;
        std::string_view rest;
        if (!homed(key, &client, &rest)) {
          return damaged.empty();
        }
        const std::optional<store::SessionRecord> rec = store::DecodeSession(value);
        if (!rec || !rest.empty()) {
          return fail("session record", client);
        }
        // A session connected when the broker stopped lost its connection then; counted from now.
        const store::UnixMs since = rec->disconnected_at != 0 ? rec->disconnected_at : wall_now;
        const store::UnixMs left = rec->expiry_s == kNeverExpires
                                       ? INT64_MAX
                                       : since + store::UnixMs{rec->expiry_s} * 1000 - wall_now;
        if (left <= 0) {
          expired.emplace(client);
          writes_.Delete(Kind::kSessions, std::string(key));
          ++counts.expired_sessions;
          return true;
        }
        Session& s = CreateSession(std::string(client), /*ends_with_connection=*/false);
        s.expiry_s = rec->expiry_s;
        s.last_packet_id = rec->last_packet_id;
        s.stored = std::make_unique<Session::Stored>();
        s.stored->level = rec->protocol_level;
        ++s.generation;
        if (rec->expiry_s != kNeverExpires) {
          PushSessionTimer(s, now + std::chrono::milliseconds(left), /*will=*/false);
        }
        if (rec->disconnected_at == 0) {
          StoreSession(s, now);
        }
        ++counts.sessions;
        return true;
      });
  if (!scanned || !damaged.empty()) {
    return scan_failure(scanned);
  }

  // Subscriptions.
  std::vector<Session*> with_groups;
  scanned = durability_.store->Scan(
      Kind::kSubscriptions, "", [&](std::string_view key, std::string_view value) {
        std::string_view client;
        std::string_view filter;
        if (!homed(key, &client, &filter)) {
          return damaged.empty();
        }
        if (expired.contains(std::string(client))) {
          writes_.Delete(Kind::kSubscriptions, std::string(key));
          return true;
        }
        Session* s = session_of(client);
        const std::optional<store::SubscriptionRecord> rec = store::DecodeSubscription(value);
        std::optional<mqtt::SharedSubscription> shared;
        if (rec && rec->shared) {
          if (auto parsed = mqtt::ParseSharedSubscription(filter); parsed && *parsed) {
            shared = *parsed;
          }
        }
        const std::string_view plain = shared ? shared->filter : filter;
        if (!rec || (rec->shared && !shared) || !mqtt::ValidateTopicFilter(plain)) {
          return fail("subscription record", client);
        }
        if (s == nullptr) {
          writes_.Delete(Kind::kSubscriptions, std::string(key));  // its session is gone
          return true;
        }
        const Subscription sub{s->id, OptionsFromByte(rec->options), rec->identifier};
        const std::string k(filter);
        if (s->subscriptions == nullptr) {
          s->subscriptions = std::make_unique<Session::Subscriptions>();
        }
        (*s->subscriptions)[k] = Session::Subscribed{sub.options.max_qos, rec->shared};
        if (rec->shared) {
          JoinGroupAtHome(k, sub);
          if (with_groups.empty() || with_groups.back() != s) {
            with_groups.push_back(s);
          }
        } else {
          IndexAdd(plain, sub);
        }
        ++counts.subscriptions;
        return true;
      });
  if (!scanned || !damaged.empty()) {
    return scan_failure(scanned);
  }
  for (Session* s : with_groups) {
    AnnounceOnline(*s, /*online=*/false);  // restored sessions are offline
  }

  // Queues: messages in flight go back in flight (resent when the client returns); queued ones
  // stay in the store (spilled) until the session's client returns and its queue drains.
  scanned =
      durability_.store->Scan(Kind::kQueues, "", [&](std::string_view key, std::string_view value) {
        std::string_view client;
        std::string_view rest;
        if (!homed(key, &client, &rest)) {
          return damaged.empty();
        }
        Session* s = expired.contains(std::string(client)) ? nullptr : session_of(client);
        if (s == nullptr) {
          writes_.Delete(Kind::kQueues, std::string(key));
          return true;
        }
        const std::optional<std::uint64_t> seq = store::KeyNumber(rest);
        const std::optional<store::QueuePeek> peek = store::PeekQueue(value);
        if (!seq || rest.size() != 8 || !peek || *seq == 0) {
          return fail("queued message", client);
        }
        Session::Stored& st = *s->stored;
        st.next_seq = std::max(st.next_seq, *seq + 1);
        st.spill_written = std::max(st.spill_written, *seq);
        if (peek->state == DeliveryState::kQueued) {
          // Stays in the store until its client takes it (checked in full then).
          if (peek->expires_at != 0 && peek->expires_at <= wall_now) {
            ++counts.expired_messages;
            writes_.Delete(Kind::kQueues, std::string(key));
            return true;
          }
          if (st.spilled == 0) {
            st.spill_from = *seq;
          }
          ++st.spilled;
          st.spilled_bytes += peek->payload_size;
          ++counts.queued;
          return true;
        }
        std::optional<store::QueueRecord> rec = store::DecodeQueue(value);
        if (!rec) {
          return fail("message in flight", client);
        }
        bool gone = false;
        std::optional<MessageRef> m;
        if (rec->state != DeliveryState::kReleased) {
          m = FromRecord(rec->message, now, /*pooled=*/false, &gone);
          if (!m && !gone) {
            return fail("queued message", client);
          }
        }
        if (rec->packet_id == 0 || s->FindInFlight(rec->packet_id) != s->inflight.end()) {
          return fail("message in flight", client);
        }
        // Sent before the stop: it goes again when the client returns, expired or not (the
        // client may have it already, and expects its PUBREL or a resend).
        Delivery d;
        if (m) {
          d.message = std::move(*m);
        } else if (rec->state == DeliveryState::kSent) {
          bool ignored = false;
          rec->message.expires_at = 0;
          std::optional<MessageRef> again = FromRecord(rec->message, now, false, &ignored);
          if (!again) {
            return fail("message in flight", client);
          }
          d.message = std::move(*again);
        }
        d.qos = static_cast<QoS>(rec->qos);
        d.retain = rec->retain;
        d.ids = std::move(rec->ids);
        d.group = 0;  // group ids do not outlive the process: it stays with this member
        d.seq = *seq;
        if (d.qos == QoS::k0) {
          return fail("message in flight", client);
        }
        s->AddInFlight(Session::InFlight{rec->packet_id, std::move(d),
                                         rec->state == DeliveryState::kReleased, false});
        s->last_packet_id = std::max(s->last_packet_id, rec->packet_id);
        ++counts.inflight;
        return true;
      });
  if (!scanned || !damaged.empty()) {
    return scan_failure(scanned);
  }

  // Incoming QoS 2 packet ids, and the routing of those that went to other workers: every
  // worker reads every record (the sessions a message must reach again may be on any of them).
  struct Unfinished {
    std::string key;
    store::IncomingRecord record;
    std::vector<std::uint16_t> marked;
    bool mine = false;  // its publisher's session is homed here (it counts the reroute)
  };
  std::vector<Unfinished> unfinished;
  scanned = durability_.store->Scan(
      Kind::kIncoming, "", [&](std::string_view key, std::string_view value) {
        std::string_view client;
        std::string_view rest;
        const bool mine = homed(key, &client, &rest);
        if (!damaged.empty()) {
          return false;
        }
        if (rest.size() == 4) {  // a marker: the record it belongs to came just before
          const std::string_view incoming = key.substr(0, key.size() - 2);
          const std::optional<std::uint64_t> worker = store::KeyNumber(key.substr(key.size() - 2));
          if (!unfinished.empty() && unfinished.back().key == incoming && worker) {
            unfinished.back().marked.push_back(static_cast<std::uint16_t>(*worker));
          } else if (mine) {
            writes_.Delete(Kind::kIncoming, std::string(key));  // its record is gone
          }
          return true;
        }
        const std::optional<std::uint64_t> id = store::KeyNumber(rest);
        if (!id || rest.size() != 2 || *id == 0) {
          return fail("incoming QoS 2 id", client);
        }
        Session* s = expired.contains(std::string(client)) ? nullptr : session_of(client);
        if (!value.empty()) {
          std::optional<store::IncomingRecord> record = store::DecodeIncoming(value);
          if (!record) {
            return fail("incoming QoS 2 message", client);
          }
          unfinished.push_back(Unfinished{std::string(key), std::move(*record), {}, mine});
        }
        if (!mine) {
          return true;
        }
        if (s == nullptr) {
          writes_.Delete(Kind::kIncoming, std::string(key));
          return true;
        }
        s->AwaitPubrel(static_cast<std::uint16_t>(*id));
        ++counts.incoming;
        return true;
      });
  if (!scanned || !damaged.empty()) {
    return scan_failure(scanned);
  }
  for (Unfinished& u : unfinished) {
    std::vector<std::uint16_t> missing;
    for (std::uint16_t w : u.record.routed_to) {
      if (std::find(u.marked.begin(), u.marked.end(), w) == u.marked.end()) {
        missing.push_back(w);
      }
    }
    if (missing.empty()) {
      continue;
    }
    // The broker stopped after the publisher's worker wrote the message and before those
    // workers wrote their part: route it again to the sessions they had. (Its publisher got no
    // PUBREC yet, and a resent PUBLISH is not routed twice.)
    bool gone = false;
    std::optional<MessageRef> m = FromRecord(u.record.message, now, /*pooled=*/false, &gone);
    if (!m) {
      if (gone) {
        continue;
      }
      damaged = "incoming QoS 2 message";
      return util::Unexpected("damaged record in the store: " + damaged);
    }
    restore_homes_ = &missing;
    restore_workers_ = u.record.workers;
    Route(*m, /*publisher=*/0, /*publisher_hash=*/0);
    restore_homes_ = nullptr;
    for (std::uint16_t w : missing) {
      writes_.Put(Kind::kIncoming, store::RoutedMarkerKey(u.key, w), {});
    }
    if (u.mine) {
      ++counts.rerouted;
    }
  }

  // Wills: due ones (and those of sessions that expired) go out now, the others wait.
  std::vector<Will> due;
  scanned =
      durability_.store->Scan(Kind::kWills, "", [&](std::string_view key, std::string_view value) {
        std::string_view client;
        std::string_view rest;
        if (!homed(key, &client, &rest)) {
          return damaged.empty();
        }
        const std::optional<store::WillRecord> rec = store::DecodeWill(value);
        if (!rec || !rest.empty() || !mqtt::ValidateTopicName(rec->message.topic) ||
            rec->message.qos > 2 || !ValidProperties(rec->message.properties, /*will=*/true)) {
          return fail("will", client);
        }
        Will will{rec->message.topic,
                  {rec->message.payload.begin(), rec->message.payload.end()},
                  static_cast<QoS>(rec->message.qos),
                  rec->message.retain,
                  {rec->message.properties.begin(), rec->message.properties.end()}};
        Session* s = expired.contains(std::string(client)) ? nullptr : session_of(client);
        if (s == nullptr) {
          writes_.Delete(Kind::kWills, std::string(key));
          due.push_back(std::move(will));  // its session ended: the will goes now
          return true;
        }
        s->stored->has_will = true;
        store::UnixMs left = rec->due_at - wall_now;
        if (rec->due_at == 0) {
          // Its connection was open when the broker stopped: lost now, as if it had just dropped.
          const std::uint32_t delay =
              s->stored->level == 5
                  ? mqtt::Properties::FromValidated(mqtt::BinaryView(will.properties))
                        .Number(mqtt::PropertyId::kWillDelayInterval)
                        .value_or(0)
                  : 0;
          left = store::UnixMs{delay} * 1000;
        }
        if (left <= 0) {
          StoreWill(*s, nullptr, kNever);
          due.push_back(std::move(will));
          return true;
        }
        const Instant when = now + std::chrono::milliseconds(left);
        s->delayed_will = std::make_unique<Will>(std::move(will));
        PushSessionTimer(*s, when, /*will=*/true);
        if (rec->due_at == 0) {
          StoreWill(*s, s->delayed_will.get(), when);
        }
        ++counts.wills;
        return true;
      });
  if (!scanned || !damaged.empty()) {
    return scan_failure(scanned);
  }
  for (Will& will : due) {
    PublishWill(std::move(will), now);
  }
  return {};
}

}  // namespace tinymq::broker
