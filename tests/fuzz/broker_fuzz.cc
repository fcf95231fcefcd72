// libFuzzer target for the broker core's connection state machine: several clients of one Broker
// send arbitrary bytes, vanish, read their output in pieces, while the fake clock moves. Whatever
// they do, the broker must not crash, leak (ASan), hit undefined behaviour (UBSan) or break its
// own invariants (TINYMQ_CHECK), and what it writes must always be well-formed MQTT: every byte
// of output is decoded, in the version the connection speaks.
//
// With an access policy (kAccess), also: every password check names a user of the file and a
// connection that exists; a connection let in (CONNACK 0x00) without a certificate username had
// its password answered ok, or was anonymous where anonymous clients are allowed; and no
// connection is sent a PUBLISH (live, retained, queued or resent) its ACL view may not receive.
// The harness learns who each client is by decoding its CONNECT itself; clients whose policy
// changed while they connected, or whose client id the broker assigned, are not checked.
//
// Input format: tests/fuzz/broker_fuzz.h. No state outlives one input (the password file and the
// ACL are parsed once: immutable).

#include "tests/fuzz/broker_fuzz.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/store/store.h"
#include "tinymq/util/check.h"

namespace tinymq::broker::fuzz {
namespace {

// Enhanced authentication for method "F": data "go" asks for another round, "ok" succeeds,
// anything else fails.
class FuzzAuthenticator : public Authenticator {
 public:
  class Exchange : public AuthExchange {
   public:
    AuthStep Next(mqtt::BinaryView data) override {
      AuthStep step;
      if (data.AsString() == "go") {
        step.outcome = AuthStep::Outcome::kContinue;
        step.data.assign({'?'});
      } else if (data.AsString() == "ok") {
        step.outcome = AuthStep::Outcome::kSuccess;
      }
      return step;
    }
  };
  std::unique_ptr<AuthExchange> Begin(std::string_view method, std::string_view) override {
    return method == "F" ? std::make_unique<Exchange>() : nullptr;
  }
};

// The fixed password file: alice/secret, bob/hunter2, admin/root, 10 iterations (cheap to verify).
constexpr std::string_view kPasswordFile =
    "alice:$7$10$ZnV6ei1zYWx0LTAx$BrPNJV2RGpPZFrOWVwnjn6zc6N7go8YuXzXlqqf7Ij9U8I4bpP8dl1T++u5c2sX/"
    "HFq1T7xguyfOKvIy9+Inpg==\n"
    "bob:$7$10$ZnV6ei1zYWx0LTAy$9Yc5GWmGExYWXNtC6+EOcRqJb8tkMfydv8ILVaLxMTHMRU9u5S1vQfnE+iN5nBa4+"
    "kZ+9OiBtl6bVwJaoq+BHA==\n"
    "admin:$7$10$ZnV6ei1zYWx0LTAz$azlNUwpSSuq7yERj/vGtK4XbLimE7r0A2sz+cTYvcWl0Ke3cMOvDia5L9DlE8M0j"
    "NyyESxjcUg/trHI4Zi85Qw==\n";

// The fixed ACL: anonymous, user and pattern rules, deny rules inside allowed ones.
constexpr std::string_view kAclFile =
    "topic read a/#\n"
    "topic write wills/#\n"
    "user alice\n"
    "topic readwrite a/#\n"
    "topic deny a/secret/#\n"
    "topic write wills/#\n"
    "user bob\n"
    "topic read a/#\n"
    "topic write b/#\n"
    "user admin\n"
    "topic readwrite #\n"
    "pattern readwrite dev/%c/#\n"
    "pattern read inbox/%u/#\n"
    "pattern deny a/%c/x\n";

std::shared_ptr<const auth::PasswordFile> Passwords() {
  static const auto file = [] {
    auto parsed = auth::PasswordFile::Parse(kPasswordFile);
    TINYMQ_CHECK(parsed.has_value());
    return std::make_shared<const auth::PasswordFile>(std::move(*parsed));
  }();
  return file;
}

std::shared_ptr<const auth::AclFile> Acl() {
  static const auto file = [] {
    auto parsed = auth::AclFile::Parse(kAclFile);
    TINYMQ_CHECK(parsed.has_value());
    return std::make_shared<const auth::AclFile>(std::move(*parsed));
  }();
  return file;
}

// The harness's limits with kSmallLimits.
Limits Small(Limits l) {
  l.max_connect_packet_size = 160;
  l.max_topic_levels = 4;
  l.max_topic_length = 24;
  l.max_subscriptions_per_client = 3;
  l.max_retained_messages = 3;
  l.max_retained_bytes = 96;
  l.max_publish_rate = 5;
  l.publish_rate_burst = 3;
  l.publish_rate_grace = std::chrono::seconds(1);
  return l;
}

struct Client {
  std::optional<ConnectionId> id;
  // Decodes what the broker writes; its version follows the CONNECT the client sent (sniffed).
  std::optional<mqtt::Decoder> reader;
  std::vector<std::uint8_t> sent;  // the first bytes sent, to learn the protocol version

  // Who the client is, for the access invariants. `sniffer` decodes the client's first packet;
  // once it is whole (`connect_done`), `connect_ok` says whether it was a CONNECT.
  std::optional<mqtt::Decoder> sniffer;
  bool connect_done = false;
  bool connect_ok = false;
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> cert_name;  // set before the CONNECT was handled
  std::uint64_t epoch = 0;               // the policy epoch when the connection was accepted
  bool answered_ok = false;              // a password check of this connection was answered ok
  bool let_in = false;                   // CONNACK 0x00 seen
  std::shared_ptr<const auth::ClientAcl> view;  // what it may receive; null: not checked
  std::vector<std::string> aliases;             // topic aliases the broker set towards it (5.0)
};

class Harness {
 public:
  Harness() {
    limits_.max_inflight = 3;
    limits_.max_queued_messages = 16;
    limits_.output_high_water = 512;
    limits_.max_packet_size = 4096;
    limits_.receive_maximum = 3;
    limits_.topic_alias_maximum = 4;
    limits_.outbound_topic_alias_maximum = 2;
    base_limits_ = limits_;
    Start();
  }

  // A broker on the store, restored from it.
  void Start() {
    broker_ = std::make_unique<Broker>(limits_);
    broker_->set_authenticator(&authenticator_);
    broker_->SetAccess(policy_);
    Durability d;
    d.store = store_.get();
    d.queue_head = 2;  // spill early
    broker_->AttachStore(d);
    auto restored = broker_->Restore(now_, /*retained=*/true);
    TINYMQ_CHECK(restored.has_value());  // it wrote every record itself
    Commit();
  }

  void Commit() {
    store::Batch batch;
    if (const std::uint64_t epoch = broker_->TakeWrites(batch); epoch != 0) {
      TINYMQ_CHECK(store_->Write(batch, true).has_value());
      broker_->OnDurable(epoch, now_);
    }
  }

  void Run(const std::uint8_t* data, std::size_t size) {
    std::size_t at = 0;
    auto next = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
    while (at < size) {
      const std::uint8_t op_byte = next();
      Client& c = clients_[op_byte & 3U];
      switch (static_cast<Op>((op_byte >> 2) & 7U)) {
        case Op::kData: {
          const std::size_t n = std::min<std::size_t>(next(), size - at);
          Feed(c, data + at, n);
          at += n;
          break;
        }
        case Op::kPeerClose:
          if (c.id) {
            broker_->OnPeerClosed(*c.id, now_);
          }
          break;
        case Op::kAdvance:
          now_ += std::chrono::milliseconds(100 * next());
          broker_->OnTimer(now_);
          break;
        case Op::kDrain: Drain(c, SIZE_MAX); break;
        case Op::kDrainSome: Drain(c, next()); break;
        case Op::kCommit: Commit(); break;
        case Op::kRestart: Restart(); break;
        case Op::kAccess: {
          const std::uint8_t sub = next();
          const std::uint8_t arg = next();
          switch (static_cast<AccessOp>(sub & 7U)) {
            case AccessOp::kConfigure: Configure(arg); break;
            case AccessOp::kAnswer: Answer(op_byte & 3U, arg); break;
            case AccessOp::kCertUser: CertUser(c, arg); break;
            case AccessOp::kSystem:
              broker_->PublishSystem((arg & 1U) != 0 ? "$SYS/broker/uptime" : "$SYS/a",
                                     std::string(arg >> 1U, 'x'), (arg & 2U) != 0, now_);
              break;
            case AccessOp::kPeer:
              if (c.id) {
                broker_->SetPeer(*c.id, "192.0.2." + std::to_string(arg) + ":4000");
              }
              break;
            case AccessOp::kShutdown: ShutDown(); break;
            default: break;
          }
          break;
        }
      }
      Settle();
    }
    Commit();  // output held for durability goes, so that the connections can close
    for (Client& c : clients_) {
      if (c.id) {
        broker_->OnPeerClosed(*c.id, now_);
        Drain(c, SIZE_MAX);
      }
    }
    Settle();
    Commit();
    Settle();
    TINYMQ_CHECK(broker_->connection_count() == 0);
  }

 private:
  // A clean stop: every connection gets what the broker has for it and is closed; the store is
  // what the next start restores.
  void ShutDown() {
    broker_->BeginShutdown(now_);
    Settle();
    Commit();
    for (Client& each : clients_) {
      if (each.id) {
        TINYMQ_CHECK(broker_->ShouldClose(*each.id));
        Drain(each, SIZE_MAX);
      }
    }
    Settle();
    Commit();
    Restart();
  }

  void Restart() {
    broker_.reset();
    for (Client& each : clients_) {
      each.id.reset();
    }
    pending_.clear();  // the checker threads died with the process
    Start();
  }

  void Configure(std::uint8_t flags) {
    ++policy_epoch_;
    if ((flags & config::kPolicy) != 0) {
      auto policy = std::make_shared<AccessPolicy>();
      policy->allow_anonymous = (flags & config::kAllowAnonymous) != 0;
      policy->passwords = (flags & config::kNoPasswords) != 0 ? nullptr : Passwords();
      policy->acl = (flags & config::kNoAcl) != 0 ? nullptr : Acl();
      policy->failure_delay =
          (flags & config::kNoDelay) != 0 ? Duration::zero() : std::chrono::milliseconds(700);
      policy_ = std::move(policy);
    } else {
      policy_.reset();
    }
    broker_->SetAccess(policy_);
    const bool small = (flags & config::kSmallLimits) != 0;
    if (small != small_limits_) {
      small_limits_ = small;
      limits_ = small ? Small(base_limits_) : base_limits_;
      Restart();  // limits are the broker's from its start
    }
  }

  void Answer(unsigned connection, std::uint8_t how) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((how & kAnswerAny) == 0 && it->client != connection) {
        continue;
      }
      const CredentialCheck check = std::move(it->check);
      const unsigned client = it->client;
      pending_.erase(it);
      const bool ok = (how & kAnswerVerify) != 0
                          ? check.passwords->Verify(check.username, check.password)
                          : (how & kAnswerOk) != 0;
      if (ok && client < kConnections && clients_[client].id == check.id) {
        clients_[client].answered_ok = true;
      }
      broker_->OnCredentialResult(check.id, ok, now_);
      return;
    }
  }

  void CertUser(Client& c, std::uint8_t which) {
    const std::string name(kCertNames[which % kCertNames.size()]);
    if (!c.id) {
      Accepted(c, broker_->Accept("fuzz", now_, name));  // as a connection handed over
      c.cert_name = name;
      return;
    }
    broker_->SetCertUsername(*c.id, name);
    if (!c.connect_done) {  // the broker takes it until it handles the CONNECT
      c.cert_name = name;
    }
  }

  // A new connection for client slot `c`.
  void Accepted(Client& c, ConnectionId id) {
    c = Client{};
    c.id = id;
    c.epoch = policy_epoch_;
  }

  // Learns the client's CONNECT from the bytes it sends.
  void Sniff(Client& c, const std::uint8_t* bytes, std::size_t n) {
    if (c.connect_done) {
      return;
    }
    if (!c.sniffer) {
      c.sniffer.emplace(mqtt::Decoder::Options{});
    }
    std::size_t fed = 0;
    while (fed < n && !c.connect_done) {
      fed += c.sniffer->Feed(mqtt::BinaryView(bytes + fed, n - fed));
      auto p = c.sniffer->Next();
      if (!p) {
        c.connect_done = true;  // not a CONNECT the broker can take either
      } else if (p->has_value()) {
        c.connect_done = true;
        if (const auto* connect = std::get_if<mqtt::Connect>(&**p)) {
          c.connect_ok = true;
          c.client_id = std::string(connect->client_id);
          if (connect->user_name) {
            c.username = std::string(*connect->user_name);
          }
        }
      }
    }
    if (c.connect_done) {
      c.sniffer.reset();
    }
  }

  // The client got CONNACK 0x00: checks that it was right to let it in, and learns what it may
  // receive.
  void OnLetIn(Client& c, const mqtt::Connack& connack) {
    c.let_in = true;
    if (!c.connect_ok || c.epoch != policy_epoch_ || policy_ == nullptr) {
      return;  // unknown, or the policy changed since: whichever applied is not known here
    }
    if (!c.cert_name) {
      const bool checked = policy_->passwords != nullptr && c.username.has_value();
      if (checked) {
        if (!c.answered_ok) {
          std::fprintf(stderr, "client '%s' (user '%s') let in without a password check\n",
                       c.client_id.c_str(), c.username->c_str());
        }
        TINYMQ_CHECK(c.answered_ok);
      } else {
        TINYMQ_CHECK(policy_->allow_anonymous);
      }
    }
    if (policy_->acl == nullptr) {
      return;
    }
    std::string id = c.client_id;
    if (id.empty()) {
      const auto assigned = connack.properties.Text(mqtt::PropertyId::kAssignedClientIdentifier);
      if (!assigned) {
        return;  // 3.1.1: the broker made one up and did not say which
      }
      id = std::string(*assigned);
    }
    const std::optional<std::string>& user = c.cert_name ? c.cert_name : c.username;
    c.view = policy_->acl->For(
        id, user && !user->empty() ? std::optional<std::string_view>(*user) : std::nullopt);
  }

  // A PUBLISH the client was sent: its ACL view must let it receive the topic.
  void OnPublish(Client& c, const mqtt::Publish& p) {
    std::string topic(p.topic);
    if (const auto alias = p.properties.Number(mqtt::PropertyId::kTopicAlias)) {
      TINYMQ_CHECK(*alias != 0);
      if (c.aliases.size() < *alias) {
        c.aliases.resize(*alias);
      }
      if (topic.empty()) {
        topic = c.aliases[*alias - 1];
        TINYMQ_CHECK(!topic.empty());  // an alias the broker never set up
      } else {
        c.aliases[*alias - 1] = topic;
      }
    }
    if (c.view != nullptr && !c.view->MayReceive(topic)) {
      std::fprintf(stderr, "client '%s' (user '%s') sent %s on '%s', which its ACL denies\n",
                   c.client_id.c_str(),
                   c.cert_name  ? c.cert_name->c_str()
                   : c.username ? c.username->c_str()
                                : "",
                   p.dup ? "a resent PUBLISH" : "a PUBLISH", topic.c_str());
      TINYMQ_CHECK(false);
    }
  }

  void Feed(Client& c, const std::uint8_t* bytes, std::size_t n) {
    if (!c.id) {
      Accepted(c, broker_->Accept("fuzz", now_));
    }
    Sniff(c, bytes, n);
    if (c.sent.size() < 64) {
      c.sent.insert(c.sent.end(), bytes, bytes + std::min<std::size_t>(n, 64));
    }
    std::size_t done = 0;
    while (done < n && !broker_->ShouldClose(*c.id)) {
      const std::span<std::uint8_t> room = broker_->ReadBuffer(*c.id);
      TINYMQ_CHECK(!room.empty());
      const std::size_t k = std::min(room.size(), n - done);
      std::memcpy(room.data(), bytes + done, k);
      broker_->OnRead(*c.id, k, now_);
      done += k;
    }
  }

  // The client reads up to `limit` bytes of output and decodes them.
  void Drain(Client& c, std::size_t limit) {
    if (!c.id) {
      return;
    }
    const std::vector<std::uint8_t> all = broker_->CopyOutput(*c.id);
    TINYMQ_CHECK(all.size() == broker_->OutputSize(*c.id));
    // The pieces a writev would take are the same bytes, in order.
    std::array<Broker::OutputChunk, 3> chunks;
    std::size_t at = 0;
    for (std::size_t i = 0, k = broker_->Output(*c.id, chunks); i < k; ++i) {
      TINYMQ_CHECK(chunks[i].size != 0 && at + chunks[i].size <= all.size());
      TINYMQ_CHECK(std::memcmp(all.data() + at, chunks[i].data, chunks[i].size) == 0);
      at += chunks[i].size;
    }
    const std::span<const std::uint8_t> out(all);
    const std::size_t n = std::min(limit, out.size());
    if (n == 0) {
      return;
    }
    if (!c.reader) {
      // The broker answers in the version of the client's CONNECT; 3.1.1 when it refused one.
      std::optional<mqtt::ProtocolVersion> v;
      if (c.sent.size() > 8) {
        v = mqtt::PeekConnectVersion(mqtt::BinaryView(c.sent.data() + 2, c.sent.size() - 2));
      }
      mqtt::Decoder::Options o;
      c.reader.emplace(o, v.value_or(mqtt::ProtocolVersion::kV311));
    }
    std::size_t fed = 0;
    while (fed < n) {
      fed += c.reader->Feed(mqtt::BinaryView(out.data() + fed, n - fed));
      for (;;) {
        auto p = c.reader->Next();
        if (!p) {
          // The broker wrote something a client cannot decode. Unless the sniffed version was a
          // guess (a CONNECT split oddly), that is a bug.
          if (c.sent.size() > 8 && c.sent[0] == 0x10) {
            std::fprintf(stderr, "broker output does not decode: %s; output:",
                         std::string(mqtt::Describe(p.error())).c_str());
            for (std::size_t i = 0; i < n; ++i) {
              std::fprintf(stderr, " %02x", out[i]);
            }
            std::fprintf(stderr, "\n");
          }
          TINYMQ_CHECK(c.sent.size() <= 8 || c.sent[0] != 0x10);
          c.reader.reset();
          broker_->OnWritten(*c.id, n, now_);
          return;
        }
        if (!p->has_value()) {
          break;
        }
        if (trace_) {
          const auto* pub = std::get_if<mqtt::Publish>(&**p);
          const auto* ack = std::get_if<mqtt::Connack>(&**p);
          std::fprintf(
              stderr, "  %s <- %s %s%s\n", c.client_id.c_str(),
              std::string(mqtt::PacketTypeName(mqtt::TypeOf(**p))).c_str(),
              pub != nullptr ? std::string(pub->topic).c_str() : "",
              ack != nullptr ? std::string(mqtt::ReasonCodeName(ack->reason)).c_str() : "");
        }
        if (const auto* connack = std::get_if<mqtt::Connack>(&**p)) {
          if (connack->reason == mqtt::ReasonCode::kSuccess) {
            OnLetIn(c, *connack);
          }
        } else if (const auto* publish = std::get_if<mqtt::Publish>(&**p)) {
          OnPublish(c, *publish);
        }
      }
    }
    broker_->OnWritten(*c.id, n, now_);
  }

  // What the net layer does after each turn: close what the broker wants closed once flushed.
  void Settle() {
    for (ConnectionId id : broker_->TakeDirty()) {
      (void)id;
    }
    std::vector<CredentialCheck> checks;
    broker_->TakeCredentialChecks(checks);
    for (CredentialCheck& check : checks) {
      // Asked for in this operation, by a connection still here, for a user of the file.
      unsigned client = 0;
      while (client < kConnections && clients_[client].id != check.id) {
        ++client;
      }
      TINYMQ_CHECK(client < kConnections);
      TINYMQ_CHECK(check.passwords != nullptr && check.passwords->Contains(check.username));
      pending_.push_back(Pending{client, std::move(check)});
    }
    for (Client& c : clients_) {
      if (c.id && broker_->ShouldClose(*c.id) && broker_->OutputSize(*c.id) == 0) {
        broker_->Release(*c.id);
        c.id.reset();
      } else if (c.id && broker_->ShouldClose(*c.id)) {
        Drain(c, SIZE_MAX);
        broker_->Release(*c.id);
        c.id.reset();
      }
    }
  }

  struct Pending {
    unsigned client = 0;  // the index of the connection that asked
    CredentialCheck check;
  };

  FuzzAuthenticator authenticator_;
  Limits base_limits_;
  Limits limits_;
  bool small_limits_ = false;
  std::shared_ptr<const AccessPolicy> policy_;
  std::uint64_t policy_epoch_ = 0;
  std::deque<Pending> pending_;
  // Set (TINYMQ_FUZZ_TRACE=1) to list what each client is sent, for writing seeds.
  const bool trace_ = std::getenv("TINYMQ_FUZZ_TRACE") != nullptr;
  std::unique_ptr<store::Store> store_ = store::MakeMemoryStore();
  std::unique_ptr<Broker> broker_;
  Instant now_ = Instant{} + std::chrono::hours(1);
  std::array<Client, kConnections> clients_;
};

}  // namespace
}  // namespace tinymq::broker::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinymq::broker::fuzz::Harness h;
  h.Run(data, size);
  return 0;
}
