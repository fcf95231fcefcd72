// CONNECT and AUTH: credentials (asynchronous checks), refusals, the session a connection takes or
// creates, and sessions ending or outliving their connection.

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

void Broker::HandleAuth(Connection& c, const mqtt::Auth& auth, Instant now) {
  const std::string_view method =
      auth.properties.Text(mqtt::PropertyId::kAuthenticationMethod).value_or("");
  const mqtt::BinaryView data =
      auth.properties.Binary(mqtt::PropertyId::kAuthenticationData).value_or(mqtt::BinaryView{});
  const bool connecting = c.state == Connection::State::kAuthenticating;
  auto fail = [&](ReasonCode reason, std::string_view why) {
    ++counters_.protocol_errors;
    if (connecting) {
      Send(c, mqtt::Connack{false, reason, {}});
      Close(c, why, /*publish_will=*/false, now);
    } else {
      SendDisconnect(c, reason, why);
      Close(c, why, /*publish_will=*/true, now);
    }
  };
  // [MQTT-4.12.0-5] / [MQTT-4.12.1-1]: AUTH only within an exchange, with the method it began.
  if (c.auth() == nullptr || method != c.auth()->method) {
    fail(ReasonCode::kProtocolError, "protocol error: AUTH without enhanced authentication");
    return;
  }
  std::unique_ptr<AuthExchange>& exchange = c.auth()->exchange;
  if (auth.reason == ReasonCode::kReAuthenticate && exchange == nullptr && !connecting) {
    exchange =
        authenticator_ != nullptr ? authenticator_->Begin(method, c.session->client_id) : nullptr;
    if (exchange == nullptr) {
      fail(ReasonCode::kBadAuthenticationMethod, "authentication method no longer supported");
      return;
    }
  } else if (auth.reason != ReasonCode::kContinueAuthentication || exchange == nullptr) {
    fail(ReasonCode::kProtocolError, "protocol error: unexpected AUTH");
    return;
  }
  AuthStep step = exchange->Next(data);
  mqtt::PropertiesBuilder props;
  props.Add(mqtt::PropertyId::kAuthenticationMethod, c.auth()->method);
  if (!step.data.empty()) {
    props.AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView(step.data));
  }
  switch (step.outcome) {
    case AuthStep::Outcome::kContinue:
      Send(c, mqtt::Auth{ReasonCode::kContinueAuthentication, props.view()});
      return;
    case AuthStep::Outcome::kFail:
      exchange.reset();
      if (connecting) {
        Send(c, mqtt::Connack{false, step.reason, {}});
        Close(c, "authentication failed", /*publish_will=*/false, now);
      } else {
        SendDisconnect(c, step.reason, "re-authentication failed");
        Close(c, "re-authentication failed", /*publish_will=*/true, now);
      }
      return;
    case AuthStep::Outcome::kSuccess: break;
  }
  exchange.reset();
  if (!connecting) {
    Send(c, mqtt::Auth{ReasonCode::kSuccess, props.view()});  // 5.0 §4.12.1: re-authenticated
    return;
  }
  // The CONNECT that waited for the exchange goes on (it decoded once, so it decodes again).
  const std::vector<std::uint8_t> bytes = std::move(c.auth()->pending_connect);
  c.auth()->pending_connect.clear();
  auto header = mqtt::ParseFixedHeader(mqtt::BinaryView(bytes), mqtt::kMaxRemainingLength + 5);
  TINYMQ_CHECK(header && header->has_value());
  const std::size_t at = (*header)->size;
  auto packet = mqtt::DecodePacket(**header, mqtt::BinaryView(bytes.data() + at, bytes.size() - at),
                                   c.version);
  TINYMQ_CHECK(packet && std::holds_alternative<mqtt::Connect>(*packet));
  AcceptConnect(c, std::get<mqtt::Connect>(*packet), now, mqtt::BinaryView(step.data));
}

std::string Broker::GenerateClientId() {
  for (;;) {
    const std::uint64_t x = SplitMix64(limits_.client_id_seed + generated_ids_++);
    char buf[32];
    std::snprintf(buf, sizeof buf, "tinymq-%016llx", static_cast<unsigned long long>(x));
    // An identifier of this worker's, so that the client finds its session here next time.
    if (HomeOf(buf) == cluster_.index && !sessions_.contains(buf)) {
      return buf;
    }
  }
}

void Broker::HandleConnect(Connection& c, const mqtt::Connect& connect, Instant now) {
  if (c.state != Connection::State::kAwaitConnect) {
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
    if (c.state == Connection::State::kAuthenticating) {
      ++counters_.protocol_errors;
      Send(c, mqtt::Connack{false, ReasonCode::kProtocolError, {}});
      Close(c, "protocol error: second CONNECT", /*publish_will=*/false, now);
      return;
    }
    Reject(c, ReasonCode::kProtocolError, "protocol error: second CONNECT", now);
    return;
  }
  if (cluster_.count > 1 && !connect.client_id.empty()) {
    const std::uint16_t home = HomeOf(connect.client_id);
    if (home != cluster_.index) {
      // The session of this client id lives on another worker, which takes the connection with
      // the bytes read so far and handles this CONNECT as if it had arrived there.
      c.state = Connection::State::kHandedOff;
      c.handoff_to = home;
      c.decoder.Rewind();  // the CONNECT was the first packet: nothing was dropped from the buffer
      MarkDirty(c);
      return;
    }
  }
  c.version = connect.version;
  const bool v5 = connect.version == ProtocolVersion::kV5;
  auto refuse = [&](ReasonCode reason, std::string_view why) {
    RefuseConnect(c, connect, reason, why, now);
  };

  if (connect.client_id.empty() &&
      (connect.version == ProtocolVersion::kV31 || (!v5 && !connect.clean_start))) {
    // 3.1 needs an identifier; 3.1.1 gives one only to a clean session ([MQTT-3.1.3-6],
    // [MQTT-3.1.3-8]); 5.0 assigns one in every case (§3.1.3.1).
    refuse(ReasonCode::kClientIdentifierNotValid, "empty client identifier");
    return;
  }
  if (connect.client_id.size() > limits_.max_client_id_length) {
    refuse(ReasonCode::kClientIdentifierNotValid, "client identifier too long");
    return;
  }
  if (connect.will &&
      static_cast<unsigned>(connect.will->qos) > static_cast<unsigned>(limits_.maximum_qos)) {
    refuse(ReasonCode::kQosNotSupported, "will QoS above the maximum QoS");  // [MQTT-3.2.2-12]
    return;
  }
  if (connect.will && connect.will->retain && !limits_.retain_available) {
    refuse(ReasonCode::kRetainNotSupported, "retained wills are not available");  // [MQTT-3.2.2-13]
    return;
  }
  if (connect.will && !WithinTopicLimits(connect.will->topic, connect.will->topic)) {
    // (3.1.x has no code for it; 5 "not authorized" is the closest a client shows.)
    refuse(v5 ? ReasonCode::kTopicNameInvalid : ReasonCode::kNotAuthorized,
           "will topic over the topic limits");
    return;
  }
  ReasonCode refusal = ReasonCode::kNotAuthorized;
  std::string why;
  const std::optional<bool> allowed = CheckCredentials(c, connect, refusal, why);
  if (!allowed) {
    // A password to check, off this thread: the CONNECT waits (and so does the input after it).
    c.state = Connection::State::kVerifying;
    MarkDirty(c);  // the net layer stops reading it
    TINYMQ_CHECK(
        mqtt::Encode(mqtt::Packet(connect), c.version, c.Extra().held_connect).has_value());
    return;
  }
  if (!*allowed) {
    RefuseLater(c, refusal, std::move(why), now);
    return;
  }
  ContinueConnect(c, connect, now);
}

std::optional<bool> Broker::CheckCredentials(Connection& c, const mqtt::Connect& connect,
                                             ReasonCode& refusal, std::string& why) {
  if (access_ == nullptr) {
    if (connect.user_name) {
      c.Extra().username = std::string(*connect.user_name);
    }
    return true;  // no access control at all (tests, tools)
  }
  // 3.1.1 has one code for both (0x05 Not authorized, what clients show as "not authorised");
  // 5.0 tells a bad password (0x86) from a client that may not connect (0x87).
  const bool v5 = connect.version == ProtocolVersion::kV5;
  const ReasonCode bad_password =
      v5 ? ReasonCode::kBadUserNameOrPassword : ReasonCode::kNotAuthorized;
  if (c.extras != nullptr && c.extras->cert_user) {
    return true;  // the certificate says who it is; User Name and Password are not looked at
  }
  if (connect.user_name) {
    c.Extra().username = std::string(*connect.user_name);
  }
  if (!connect.user_name || access_->passwords == nullptr) {
    // Anonymous: no username, or one nobody can check (no password file), which the ACL still
    // sees and the log shows.
    if (access_->allow_anonymous) {
      return true;
    }
    refusal = ReasonCode::kNotAuthorized;
    why = connect.user_name ? "no password file to check user '" + std::string(*connect.user_name) +
                                  "' against, and anonymous clients are not allowed"
                            : "anonymous clients are not allowed";
    return false;
  }
  if (!access_->passwords->Contains(*connect.user_name) || !connect.password) {
    refusal = bad_password;
    why = connect.password ? "unknown user '" + std::string(*connect.user_name) + "'"
                           : "no password for user '" + std::string(*connect.user_name) + "'";
    return false;
  }
  credential_checks_.push_back(
      CredentialCheck{c.id, std::string(*connect.user_name),
                      std::string(reinterpret_cast<const char*>(connect.password->data()),
                                  connect.password->size()),
                      access_->passwords});
  return std::nullopt;
}

void Broker::RefuseLater(Connection& c, ReasonCode reason, std::string why, Instant now) {
  Connection::Extras& extras = c.Extra();
  extras.refusal = reason;
  extras.refusal_why = std::move(why);
  extras.held_connect.clear();
  extras.held_connect.shrink_to_fit();
  c.state = Connection::State::kRefusing;
  c.deadline = now + (access_ != nullptr ? access_->failure_delay : Duration::zero());
  ArmTimer(c);
  MarkDirty(c);  // the net layer stops reading it
}

void Broker::TakeCredentialChecks(std::vector<CredentialCheck>& out) {
  MoveAppend(credential_checks_, out);
}

void Broker::OnCredentialResult(ConnectionId id, bool ok, Instant now) {
  last_now_ = now;
  Connection* c = Find(id);
  if (c == nullptr || c->state != Connection::State::kVerifying) {
    return;  // gone (or timed out) meanwhile
  }
  const bool v5 = c->version == ProtocolVersion::kV5;
  if (!ok) {
    RefuseLater(*c, v5 ? ReasonCode::kBadUserNameOrPassword : ReasonCode::kNotAuthorized,
                "wrong password for user '" + c->extras->username + "'", now);
    return;
  }
  // The CONNECT decoded once, so it decodes again.
  const std::vector<std::uint8_t> bytes = std::move(c->extras->held_connect);
  c->extras->held_connect.clear();
  auto header = mqtt::ParseFixedHeader(mqtt::BinaryView(bytes), mqtt::kMaxRemainingLength + 5);
  TINYMQ_CHECK(header && header->has_value());
  const std::size_t at = (*header)->size;
  auto packet = mqtt::DecodePacket(**header, mqtt::BinaryView(bytes.data() + at, bytes.size() - at),
                                   c->version);
  TINYMQ_CHECK(packet && std::holds_alternative<mqtt::Connect>(*packet));
  c->state = Connection::State::kAwaitConnect;
  MarkDirty(*c);  // input again (and a CONNACK to write)
  ContinueConnect(*c, std::get<mqtt::Connect>(*packet), now);
  DrainInput(*c, now);  // what the client sent after its CONNECT
}

void Broker::RefuseConnect(Connection& c, const mqtt::Connect& connect, ReasonCode reason,
                           std::string_view why, Instant now) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  // [MQTT-3.2.2-19]: the Reason String only if the CONNACK stays within the client's maximum.
  SendFitting(
      c, mqtt::Connack{false, reason, v5 ? ReasonString(why).view() : mqtt::Properties{}},
      mqtt::Connack{false, reason, {}},
      v5 ? connect.properties.Number(mqtt::PropertyId::kMaximumPacketSize).value_or(UINT32_MAX)
         : UINT32_MAX);
  Close(c, why, /*publish_will=*/false, now);
}

void Broker::ContinueConnect(Connection& c, const mqtt::Connect& connect, Instant now) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  auto refuse = [&](ReasonCode reason, std::string_view why) {
    RefuseConnect(c, connect, reason, why, now);
  };
  const std::optional<std::string_view> method =
      v5 ? connect.properties.Text(mqtt::PropertyId::kAuthenticationMethod) : std::nullopt;
  if (!method) {
    AcceptConnect(c, connect, now, {});
    return;
  }
  // 5.0 §4.12: enhanced authentication, through the Authenticator.
  std::unique_ptr<AuthExchange> exchange =
      authenticator_ != nullptr ? authenticator_->Begin(*method, connect.client_id) : nullptr;
  if (exchange == nullptr) {
    refuse(ReasonCode::kBadAuthenticationMethod,
           "authentication method '" + std::string(*method) + "' not supported");
    return;
  }
  AuthStep step = exchange->Next(connect.properties.Binary(mqtt::PropertyId::kAuthenticationData)
                                     .value_or(mqtt::BinaryView{}));
  auto state = std::make_unique<Connection::AuthState>();
  Connection::AuthState& auth = *state;
  auth.method = *method;
  c.Extra().auth = std::move(state);
  switch (step.outcome) {
    case AuthStep::Outcome::kFail: refuse(step.reason, "authentication failed"); return;
    case AuthStep::Outcome::kSuccess:
      AcceptConnect(c, connect, now, mqtt::BinaryView(step.data));
      return;
    case AuthStep::Outcome::kContinue: break;
  }
  auth.exchange = std::move(exchange);
  c.state = Connection::State::kAuthenticating;
  TINYMQ_CHECK(mqtt::Encode(mqtt::Packet(connect), c.version, auth.pending_connect).has_value());
  mqtt::PropertiesBuilder props;
  props.Add(mqtt::PropertyId::kAuthenticationMethod, auth.method);
  if (!step.data.empty()) {
    props.AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView(step.data));
  }
  Send(c, mqtt::Auth{ReasonCode::kContinueAuthentication, props.view()});
}

void Broker::AcceptConnect(Connection& c, const mqtt::Connect& connect, Instant now,
                           mqtt::BinaryView auth_data) {
  const bool v5 = connect.version == ProtocolVersion::kV5;
  std::string client_id(connect.client_id);
  const bool assigned = client_id.empty();
  if (assigned) {
    client_id = GenerateClientId();
  }
  if (access_ != nullptr && access_->acl != nullptr) {
    const std::string& user = c.Extra().username;
    c.extras->acl = access_->acl->For(
        client_id, user.empty() ? std::nullopt : std::optional<std::string_view>(user));
    if (connect.will && !c.extras->acl->MayPublish(connect.will->topic)) {
      // A will is a PUBLISH the client asks for in advance: the ACL applies now, when the client
      // can still be told (5.0 0x87, 3.1.x 0x05).
      ++counters_.refused_auth;
      if (log_) {
        log_(LogLevel::kInfo, "connection from " + c.peer + " refused: client " + client_id +
                                  " may not publish its will to " +
                                  std::string(connect.will->topic));
      }
      Send(c, mqtt::Connack{false, ReasonCode::kNotAuthorized, {}});
      Close(c, "will topic not authorized", /*publish_will=*/false, now);
      return;
    }
  }
  c.decoder.set_max_packet_size(limits_.max_packet_size);  // past the CONNECT cap
  c.keep_alive = connect.keep_alive;
  bool keep_alive_changed = false;
  if (v5 && limits_.max_keep_alive_s != 0 &&
      (c.keep_alive == 0 || c.keep_alive > limits_.max_keep_alive_s)) {
    c.keep_alive = limits_.max_keep_alive_s;  // 5.0 §3.2.2.3.14: Server Keep Alive
    keep_alive_changed = true;
  }
  if (v5) {
    // 5.0 §3.1.2.11: what the client can take.
    c.client_receive_maximum = static_cast<std::uint16_t>(
        connect.properties.Number(mqtt::PropertyId::kReceiveMaximum).value_or(65535));
    c.client_max_packet_size =
        connect.properties.Number(mqtt::PropertyId::kMaximumPacketSize).value_or(UINT32_MAX);
    c.problem_information =
        connect.properties.Number(mqtt::PropertyId::kRequestProblemInformation).value_or(1) != 0;
    const auto alias_max = static_cast<std::uint16_t>(std::min<std::uint32_t>(
        connect.properties.Number(mqtt::PropertyId::kTopicAliasMaximum).value_or(0),
        limits_.outbound_topic_alias_maximum));
    if (alias_max != 0) {
      auto aliases = std::make_unique<OutboundAliases>();
      aliases->capacity = alias_max;
      c.Extra().aliases_out = std::move(aliases);
    }
  }
  if (connect.will) {
    const mqtt::BinaryView will_props = connect.will->properties.bytes();
    c.Extra().will =
        std::make_unique<Will>(Will{std::string(connect.will->topic),
                                    {connect.will->payload.begin(), connect.will->payload.end()},
                                    connect.will->qos,
                                    connect.will->retain,
                                    {will_props.begin(), will_props.end()}});
  }

  // Session takeover: [MQTT-3.1.4-2] the server disconnects the existing client.
  auto existing = sessions_.find(client_id);
  if (existing != sessions_.end() && existing->second->connection != nullptr) {
    Connection& old = *existing->second->connection;
    SendDisconnect(old, ReasonCode::kSessionTakenOver, "session taken over");
    Close(old, "session taken over by a new connection", /*publish_will=*/true, now);
    existing = sessions_.find(client_id);  // Close may have ended a clean session
  }
  // 3.1.1 Clean Session / 5.0 Clean Start discard the old state ([MQTT-3.1.2-6]); 5.0 keeps the
  // session after the connection only when the Session Expiry Interval is above 0.
  const std::uint32_t asked_expiry_s =
      v5 ? connect.properties.Number(mqtt::PropertyId::kSessionExpiryInterval).value_or(0)
         : (connect.clean_start ? 0 : kNeverExpires);
  const std::uint32_t expiry_s = limits_.max_session_expiry_s != 0
                                     ? std::min(asked_expiry_s, limits_.max_session_expiry_s)
                                     : asked_expiry_s;
  const bool ends_with_connection = expiry_s == 0;
  bool session_present = false;
  Session* session = nullptr;
  if (existing != sessions_.end() && connect.clean_start) {
    DestroySession(*existing->second);  // a delayed will goes out now: its session ended
  } else if (existing != sessions_.end()) {
    session = existing->second;
    session_present = true;         // [MQTT-3.2.2-2]
    session->delayed_will.reset();  // [MQTT-3.1.3-9]: back before the delay passed
  }
  if (session == nullptr) {
    session = &CreateSession(client_id, ends_with_connection);
  }
  session->ends_with_connection = ends_with_connection;
  session->expiry_s = expiry_s;
  ++session->generation;  // pending session timers no longer apply
  session->connection = &c;
  c.session = session;
  c.state = Connection::State::kConnected;
  if (storing() && (!ends_with_connection || session->stored)) {
    // (A stored session resumed as one that ends with its connection stays stored, expiry 0,
    // until it ends: what it has in the store only is not lost meanwhile.)
    if (!session->stored) {
      session->stored = std::make_unique<Session::Stored>();
    }
    session->stored->level =
        v5 ? 5 : (connect.version == ProtocolVersion::kV31 ? std::uint8_t{3} : std::uint8_t{4});
    StoreSession(*session, kNever);
    StoreWill(*session, c.extras != nullptr ? c.extras->will.get() : nullptr, kNever);
  }
  if (session_present) {
    AnnounceOnline(*session, /*online=*/true);
  }
  c.deadline = c.keep_alive != 0 ? now + KeepAliveWindow(c.keep_alive) : kNever;
  ArmTimer(c);

  mqtt::PropertiesBuilder props;
  if (v5) {
    // 5.0 §3.2.2.3: what this broker allows. An absent property means its default: Receive
    // Maximum 65535, Maximum QoS 2, Retain Available, no Maximum Packet Size, Topic Alias Maximum
    // 0, wildcard, identifier and shared subscriptions available.
    if (assigned) {
      props.Add(mqtt::PropertyId::kAssignedClientIdentifier, client_id);
    }
    if (expiry_s != asked_expiry_s) {
      props.Add(mqtt::PropertyId::kSessionExpiryInterval, expiry_s);
    }
    if (limits_.receive_maximum != 65535) {
      props.Add(mqtt::PropertyId::kReceiveMaximum, limits_.receive_maximum);
    }
    if (limits_.maximum_qos != QoS::k2) {
      props.Add(mqtt::PropertyId::kMaximumQos, static_cast<std::uint32_t>(limits_.maximum_qos));
    }
    if (!limits_.retain_available) {
      props.Add(mqtt::PropertyId::kRetainAvailable, 0U);
    }
    if (limits_.max_packet_size < mqtt::kMaxRemainingLength + 5) {
      props.Add(mqtt::PropertyId::kMaximumPacketSize, limits_.max_packet_size);
    }
    if (limits_.topic_alias_maximum != 0) {
      props.Add(mqtt::PropertyId::kTopicAliasMaximum, limits_.topic_alias_maximum);
    }
    if (!limits_.wildcard_subscriptions) {
      props.Add(mqtt::PropertyId::kWildcardSubscriptionAvailable, 0U);
    }
    if (!limits_.subscription_identifiers) {
      props.Add(mqtt::PropertyId::kSubscriptionIdentifierAvailable, 0U);
    }
    if (!limits_.shared_subscriptions) {
      props.Add(mqtt::PropertyId::kSharedSubscriptionAvailable, 0U);
    }
    if (keep_alive_changed) {
      props.Add(mqtt::PropertyId::kServerKeepAlive, c.keep_alive);
    }
    if (c.auth() != nullptr) {
      props.Add(mqtt::PropertyId::kAuthenticationMethod, c.auth()->method);
      if (!auth_data.empty()) {
        props.AddBinary(mqtt::PropertyId::kAuthenticationData, auth_data);
      }
    }
  }
  Send(c, mqtt::Connack{session_present, ReasonCode::kSuccess, props.view()});
  if (log_) {
    log_(LogLevel::kInfo,
         "client " + client_id + " connected from " + c.peer + " (" +
             std::string(VersionName(c.version)) +
             (ends_with_connection ? ", clean session" : ", persistent session") +
             (session_present ? ", session resumed" : "") +
             (c.extras != nullptr && !c.extras->username.empty() ? ", user " + c.extras->username
                                                                 : "") +
             ", keep-alive " + std::to_string(c.keep_alive) + " s)");
  }
  // [MQTT-4.4.0-1]: unacknowledged PUBLISH and PUBREL packets go again, then the queue.
  Resend(*session, c);
}

Broker::Session& Broker::CreateSession(const std::string& client_id, bool ends_with_connection) {
  std::uint32_t slot = 0;
  if (free_session_slots_.empty()) {
    TINYMQ_CHECK(session_slots_.size() <= kSessionSlotMask);  // 16.7 million sessions a worker
    slot = static_cast<std::uint32_t>(session_slots_.size());
    session_slots_.grow();
  } else {
    slot = free_session_slots_.back();
    free_session_slots_.pop_back();
  }
  Session& ref = session_slots_[slot];
  // The worker's index, a sequence number (so that an id outlives its slot's reuse), the slot.
  const SubscriberId seq = next_session_seq_++ % kSessionSeqModulus + 1;
  ref.id = (SubscriberId{cluster_.index} << kWorkerShift) | (seq << kSessionSeqShift) | slot;
  ref.client_id = client_id;
  ref.ends_with_connection = ends_with_connection;
  sessions_.emplace(std::string_view(ref.client_id), &ref);
  return ref;
}

void Broker::DestroySession(Session& s) {
  TINYMQ_CHECK(s.connection == nullptr);
  UnstoreSession(s);  // first: what follows must not write for it
  RehomeShared(s, /*session_ends=*/true);
  if (s.subscriptions != nullptr) {
    for (const auto& [key, subscribed] : *s.subscriptions) {
      RemoveSubscription(s, key, subscribed.shared);
    }
  }
  std::unique_ptr<Will> will = std::move(s.delayed_will);
  sessions_.erase(s.client_id);
  const auto slot = static_cast<std::uint32_t>(s.id & kSessionSlotMask);
  std::destroy_at(&s);  // frees what it holds; the slot is a fresh, unused (id 0) Session
  std::construct_at(&s);
  free_session_slots_.push_back(slot);
  if (will) {
    PublishWill(std::move(*will), last_now_);  // 5.0 §3.1.3.2.2: the session ended first
  }
}

void Broker::Detach(Session& s, Instant now) {
  s.connection = nullptr;
  if (s.ends_with_connection || s.expiry_s == 0) {
    DestroySession(s);
    return;
  }
  AnnounceOnline(s, /*online=*/false);
  RehomeShared(s, /*session_ends=*/false);
  StoreSession(s, now);
  ++s.generation;
  if (s.expiry_s != kNeverExpires) {
    PushSessionTimer(s, now + std::chrono::seconds(s.expiry_s), /*will=*/false);
  }
}

}  // namespace tinymq::broker
