// Access control in the broker core (issue #7), sans I/O on a fake clock: password checks handed
// to the caller (TakeCredentialChecks, OnCredentialResult) with the CONNECT and everything after it
// held meanwhile, refusals after the failure delay, anonymous clients, certificate usernames, and
// the ACL on PUBLISH, SUBSCRIBE, wills and every delivery (live, retained, queued, resent). Each
// test runs for 3.1.1 and 5.0, which differ in the codes they can send.

#include <gtest/gtest.h>

#include <cstdio>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "tests/unit/broker/broker_test_util.h"
#include "tests/unit/broker/packet_summary.h"
#include "tests/unit/broker/versioned_broker_test.h"
#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/broker/broker.h"

namespace tinymq::broker {
namespace {

using mqtt::PropertyId;
using mqtt::ProtocolVersion;
using mqtt::QoS;
using mqtt::ReasonCode;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::DecodePackets;
using testing::FakeClock;
using testing::MakePublish;
using testing::TestClient;

constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;

// Users of the password file: alice/secret, bob/hunter2, admin/root.
constexpr std::string_view kAcl = R"(# anonymous clients
topic read public/#
user alice
topic readwrite a/#
topic deny a/secret/#
user bob
topic read a/#
topic write b/#
user admin
topic readwrite #
pattern readwrite dev/%c/#
pattern read inbox/%u/#
)";

using testing::Hex;
using testing::Summary;
using testing::VersionName;

std::shared_ptr<const auth::PasswordFile> MakePasswords() {
  std::string text = "# made by broker_access_test\n";
  for (const auto& [user, password] :
       {std::pair{"alice", "secret"}, std::pair{"bob", "hunter2"}, std::pair{"admin", "root"}}) {
    auto hash = auth::HashPassword(password, /*iterations=*/1000);  // fast: a test, not a vault
    EXPECT_TRUE(hash.has_value());
    text += std::string(user) + ":" + (hash.has_value() ? *hash : std::string()) + "\n";
  }
  auto file = auth::PasswordFile::Parse(text);
  EXPECT_TRUE(file.has_value()) << (file.has_value() ? "" : file.error());
  return std::make_shared<const auth::PasswordFile>(file.has_value() ? std::move(*file)
                                                                     : auth::PasswordFile());
}

std::shared_ptr<const auth::AclFile> MakeAcl() {
  auto file = auth::AclFile::Parse(kAcl);
  EXPECT_TRUE(file.has_value()) << (file.has_value() ? "" : file.error());
  return std::make_shared<const auth::AclFile>(std::move(*file));
}

class BrokerAccessTest : public testing::VersionedBrokerTest {
 protected:
  BrokerAccessTest() { session_props_.Add(PropertyId::kSessionExpiryInterval, 3600U); }

  // The CONNACK of a client refused with `v5_code` (3.1.1: return code `rc`).
  std::string Refused(ReasonCode v5_code, int rc) const {
    return v5() ? "CONNACK " + Hex(v5_code) : "CONNACK rc" + std::to_string(rc);
  }
  // The policy of the broker's next connections.
  void UsePolicy(bool allow_anonymous, bool with_passwords, bool with_acl,
                 Duration failure_delay = seconds(1)) {
    auto policy = std::make_shared<AccessPolicy>();
    policy->allow_anonymous = allow_anonymous;
    policy->passwords = with_passwords ? passwords_ : nullptr;
    policy->acl = with_acl ? acl_ : nullptr;
    policy->failure_delay = failure_delay;
    policy_ = policy;
    if (broker_ != nullptr) {
      broker_->SetAccess(policy_);
    }
  }

  mqtt::Connect MakeConnect(std::string_view client_id, std::optional<std::string_view> user = {},
                            std::optional<std::string_view> password = {},
                            bool persistent = false) const {
    mqtt::Connect c;
    c.version = GetParam();
    c.client_id = client_id;
    c.user_name = user;
    if (password) {
      c.password = mqtt::BinaryView::Of(*password);
    }
    c.clean_start = !persistent;
    if (persistent && v5()) {
      c.properties = session_props_.view();
    }
    return c;
  }

  // A client that connected, had its password (if any) checked as a checker thread would, and got
  // CONNACK 0x00.
  std::unique_ptr<TestClient> LetIn(std::string_view client_id,
                                    std::optional<std::string_view> user = {},
                                    std::optional<std::string_view> password = {},
                                    bool persistent = false) {
    auto c = NewClient();
    c->Send(MakeConnect(client_id, user, password, persistent));
    AnswerChecks();
    const std::string got = Got(*c);
    EXPECT_EQ(got.substr(0, Accepted().size()), Accepted()) << client_id << ": " << got;
    return c;
  }

  // Answers every pending password check with what the password file says, now.
  void AnswerChecks() {
    for (const CredentialCheck& check : TakeChecks()) {
      broker().OnCredentialResult(check.id, check.passwords->Verify(check.username, check.password),
                                  clock_.Now());
    }
  }

  std::vector<CredentialCheck> TakeChecks() {
    std::vector<CredentialCheck> checks;
    broker().TakeCredentialChecks(checks);
    return checks;
  }

  const std::shared_ptr<const auth::PasswordFile> passwords_ = MakePasswords();
  const std::shared_ptr<const auth::AclFile> acl_ = MakeAcl();
  mqtt::PropertiesBuilder session_props_;
};

INSTANTIATE_TEST_SUITE_P(Versions, BrokerAccessTest, ::testing::Values(kV311, kV5), VersionName);

// ---------------------------------------------------------------------------------------------
// Passwords

TEST_P(BrokerAccessTest, PasswordCheckHoldsTheConnectAndEverythingSentAfterIt) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/false);
  auto watcher = LetIn("watcher", "bob", "hunter2");
  EXPECT_EQ(Sub(*watcher, {"t/#"}), "SUBACK 1 [0x01]");
  const std::size_t sessions = broker().session_count();
  const std::size_t subscriptions = broker().subscription_count();

  // One read: CONNECT, SUBSCRIBE and PUBLISH (a client that does not wait for its CONNACK).
  auto c = NewClient();
  mqtt::SubscriptionListBuilder list;
  list.Add("t/#", {QoS::k1, false, false, 0});
  (void)broker().TakeDirty();
  c->SendRaw(Encoded({MakeConnect("c", "alice", "secret"), mqtt::Subscribe{1, {}, list.view()},
                      MakePublish("t/1", "hello", QoS::k1, 7)}));
  EXPECT_EQ(Got(*c), "");
  EXPECT_TRUE(broker().InputPaused(c->id()));
  EXPECT_TRUE(Dirty(c->id()));  // the net layer looks again, and stops reading it
  std::vector<CredentialCheck> checks = TakeChecks();
  ASSERT_EQ(checks.size(), 1U);
  EXPECT_EQ(checks[0].id, c->id());
  EXPECT_EQ(checks[0].username, "alice");
  EXPECT_EQ(checks[0].password, "secret");
  EXPECT_EQ(checks[0].passwords, passwords_);
  EXPECT_TRUE(TakeChecks().empty());  // asked for once

  // The check takes its time: nothing after the CONNECT has been handled meanwhile.
  Tick(seconds(5));
  EXPECT_EQ(Got(*c), "");
  EXPECT_FALSE(c->Closed());
  EXPECT_TRUE(broker().InputPaused(c->id()));
  EXPECT_EQ(Got(*watcher), "");
  EXPECT_EQ(broker().session_count(), sessions);
  EXPECT_EQ(broker().subscription_count(), subscriptions);

  broker().OnCredentialResult(c->id(), checks[0].passwords->Verify("alice", "secret"),
                              clock_.Now());
  EXPECT_FALSE(broker().InputPaused(c->id()));
  EXPECT_TRUE(Dirty(c->id()));  // reading again, and a CONNACK to write
  EXPECT_EQ(Got(*c), Accepted() + " | SUBACK 1 [0x01] | PUBLISH t/1 q1 'hello' | " +
                         (v5() ? "PUBACK 7 0x00" : "PUBACK 7"));
  EXPECT_EQ(Got(*watcher), "PUBLISH t/1 q1 'hello'");
  EXPECT_EQ(broker().subscription_count(), subscriptions + 1);
  EXPECT_EQ(broker().counters().refused_auth, 0U);
}

TEST_P(BrokerAccessTest, WrongPasswordIsRefusedOnlyOnceTheFailureDelayPassed) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/false, seconds(2));
  auto c = NewClient();
  mqtt::SubscriptionListBuilder list;
  list.Add("t/#", {QoS::k1, false, false, 0});
  c->SendRaw(Encoded({MakeConnect("c", "alice", "guess"), mqtt::Subscribe{1, {}, list.view()}}));
  const std::vector<CredentialCheck> checks = TakeChecks();
  ASSERT_EQ(checks.size(), 1U);
  EXPECT_EQ(checks[0].password, "guess");
  EXPECT_FALSE(checks[0].passwords->Verify(checks[0].username, checks[0].password));
  broker().OnCredentialResult(c->id(), false, clock_.Now());
  EXPECT_EQ(Got(*c), "");
  EXPECT_TRUE(broker().InputPaused(c->id()));

  // The delay holds up nobody else: another client gets in meanwhile.
  auto other = LetIn("other", "bob", "hunter2");
  Tick(milliseconds(1999));
  EXPECT_EQ(Got(*c), "");
  EXPECT_FALSE(c->Closed());
  EXPECT_EQ(broker().counters().refused_auth, 0U);
  Tick(milliseconds(1));
  EXPECT_EQ(Got(*c), Refused(ReasonCode::kBadUserNameOrPassword, 5));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(broker().counters().refused_auth, 1U);
  EXPECT_EQ(broker().session_count(), 1U);       // other's
  EXPECT_EQ(broker().subscription_count(), 0U);  // the SUBSCRIBE was never handled
  EXPECT_FALSE(other->Closed());
}

TEST_P(BrokerAccessTest, UnknownUserAndMissingPasswordAreRefusedWithoutACheck) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/true, /*with_acl=*/false);
  auto unknown = NewClient();
  unknown->Send(MakeConnect("u", "mallory", "secret"));
  auto no_password = NewClient();
  no_password->Send(MakeConnect("n", "alice"));
  EXPECT_TRUE(TakeChecks().empty());  // nothing to check: no PBKDF2 spent on them
  EXPECT_TRUE(broker().InputPaused(unknown->id()));
  EXPECT_TRUE(broker().InputPaused(no_password->id()));
  Tick(milliseconds(999));
  EXPECT_EQ(Got(*unknown), "");
  EXPECT_EQ(Got(*no_password), "");
  Tick(milliseconds(1));
  EXPECT_EQ(Got(*unknown), Refused(ReasonCode::kBadUserNameOrPassword, 5));
  EXPECT_EQ(Got(*no_password), Refused(ReasonCode::kBadUserNameOrPassword, 5));
  EXPECT_TRUE(unknown->Closed());
  EXPECT_TRUE(no_password->Closed());
  EXPECT_EQ(broker().counters().refused_auth, 2U);
  EXPECT_EQ(broker().session_count(), 0U);
}

TEST_P(BrokerAccessTest, AnonymousClientIsRefusedWhenAnonymousIsNotAllowed) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/false);
  auto c = NewClient();
  c->Send(MakeConnect("anon"));
  EXPECT_TRUE(TakeChecks().empty());
  Tick(milliseconds(999));
  EXPECT_EQ(Got(*c), "");
  Tick(milliseconds(1));
  EXPECT_EQ(Got(*c), Refused(ReasonCode::kNotAuthorized, 5));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(broker().counters().refused_auth, 1U);
  if (v5()) {
    // 5.0 allows a password without a username: still anonymous, and the password is not looked at.
    auto p = NewClient();
    p->Send(MakeConnect("anon2", std::nullopt, "secret"));
    EXPECT_TRUE(TakeChecks().empty());
    Tick(seconds(1));
    EXPECT_EQ(Got(*p), Refused(ReasonCode::kNotAuthorized, 5));
    EXPECT_EQ(broker().counters().refused_auth, 2U);
  }
}

TEST_P(BrokerAccessTest, AnonymousClientIsLetInWhenAllowedAndUsersAreStillChecked) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/true, /*with_acl=*/false);
  auto anon = NewClient();
  anon->Send(MakeConnect("anon"));
  EXPECT_EQ(Got(*anon), Accepted());  // at once
  EXPECT_TRUE(TakeChecks().empty());
  // A username is checked even though anonymous clients may come in.
  auto named = NewClient();
  named->Send(MakeConnect("named", "alice", "wrong"));
  EXPECT_EQ(TakeChecks().size(), 1U);
  broker().OnCredentialResult(named->id(), false, clock_.Now());
  Tick(seconds(1));
  EXPECT_EQ(Got(*named), Refused(ReasonCode::kBadUserNameOrPassword, 5));
  EXPECT_EQ(broker().counters().refused_auth, 1U);
}

TEST_P(BrokerAccessTest, WithoutAPasswordFileAUsernameCountsAsAnonymous) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/false, /*with_acl=*/true);
  auto refused = NewClient();
  refused->Send(MakeConnect("r", "alice", "secret"));
  EXPECT_TRUE(TakeChecks().empty());
  Tick(seconds(1));
  EXPECT_EQ(Got(*refused), Refused(ReasonCode::kNotAuthorized, 5));  // not 0x86: nobody checked it
  EXPECT_EQ(broker().counters().refused_auth, 1U);

  // Anonymous allowed: let in without a check, and the ACL knows it as alice.
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto alice = NewClient();
  alice->Send(MakeConnect("c", "alice", "anything"));
  EXPECT_EQ(Got(*alice), Accepted());
  EXPECT_TRUE(TakeChecks().empty());
  EXPECT_EQ(Sub(*alice, {"a/#", "public/#"}),
            "SUBACK 1 [0x01 " + Failure(ReasonCode::kNotAuthorized) + "]");
}

TEST_P(BrokerAccessTest, CheckResultForAConnectionThatIsGoneIsIgnored) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/false);
  // Closed by the peer, not yet released.
  auto closing = NewClient();
  closing->Send(MakeConnect("closing", "alice", "secret"));
  broker().OnPeerClosed(closing->id(), clock_.Now());
  broker().OnCredentialResult(closing->id(), true, clock_.Now());
  EXPECT_EQ(Got(*closing), "");
  EXPECT_EQ(broker().session_count(), 0U);
  closing->Finish();

  // Released: its slot goes to a new connection that waits for its own check.
  auto gone = NewClient();
  gone->Send(MakeConnect("gone", "alice", "secret"));
  const ConnectionId gone_id = gone->id();
  gone->Drop();
  auto next = NewClient();
  next->Send(MakeConnect("next", "bob", "hunter2"));
  EXPECT_EQ(SlotOf(next->id()), SlotOf(gone_id));
  EXPECT_NE(next->id(), gone_id);
  broker().OnCredentialResult(gone_id, true, clock_.Now());
  EXPECT_EQ(Got(*next), "");
  EXPECT_TRUE(broker().InputPaused(next->id()));
  EXPECT_EQ(broker().session_count(), 0U);
  const std::vector<CredentialCheck> checks = TakeChecks();
  ASSERT_EQ(checks.size(), 3U);  // closing, gone, next
  EXPECT_EQ(checks[2].id, next->id());
  broker().OnCredentialResult(next->id(), true, clock_.Now());
  EXPECT_EQ(Got(*next), Accepted());
  EXPECT_EQ(broker().session_count(), 1U);
}

TEST_P(BrokerAccessTest, ConnectTimeoutClosesAConnectionWhoseCheckNeverComesBack) {
  limits_.connect_timeout = seconds(10);
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/false);
  auto c = NewClient();
  Tick(seconds(1));
  c->Send(MakeConnect("c", "alice", "secret"));
  ASSERT_EQ(TakeChecks().size(), 1U);
  Tick(milliseconds(8999));  // 10 s after the connection came
  EXPECT_FALSE(c->Closed());
  Tick(milliseconds(1));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(Got(*c), "");  // no CONNACK: the CONNECT was never accepted
  broker().OnCredentialResult(c->id(), true, clock_.Now());  // too late
  EXPECT_EQ(Got(*c), "");
  EXPECT_EQ(broker().session_count(), 0U);
  EXPECT_EQ(broker().counters().refused_auth, 0U);
}

TEST_P(BrokerAccessTest, CertificateUsernameNeedsNoPasswordAndIsWhatTheAclSees) {
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/true);
  auto c = NewClient();
  broker().SetCertUsername(c->id(), "alice");
  c->Send(MakeConnect("c", "mallory", "wrong"));  // User Name and Password are not looked at
  EXPECT_TRUE(TakeChecks().empty());
  EXPECT_EQ(Got(*c), Accepted());
  // alice's rules, not mallory's (who has none) nor the anonymous ones.
  EXPECT_EQ(Sub(*c, {"a/#", "public/#", "b/#"}), "SUBACK 1 [0x01 " +
                                                     Failure(ReasonCode::kNotAuthorized) + " " +
                                                     Failure(ReasonCode::kNotAuthorized) + "]");
  // With no User Name in the CONNECT at all, and anonymous clients refused.
  auto d = NewClient();
  broker().SetCertUsername(d->id(), "bob");
  d->Send(MakeConnect("d"));
  EXPECT_EQ(Got(*d), Accepted());
  EXPECT_EQ(Sub(*d, {"b/#", "a/#"}), "SUBACK 2 [" + Failure(ReasonCode::kNotAuthorized) + " 0x01]");
  EXPECT_EQ(broker().counters().refused_auth, 0U);
}

TEST_P(BrokerAccessTest, AcceptWithACertificateUsernameIsAsSetCertUsername) {
  // A connection handed over from another worker comes with its certificate's username.
  UsePolicy(/*allow_anonymous=*/false, /*with_passwords=*/true, /*with_acl=*/true);
  const ConnectionId id = broker().Accept("127.0.0.1:1", clock_.Now(), "alice");
  std::vector<std::uint8_t> in = Encoded({MakeConnect("c", "bob", "hunter2")});
  mqtt::SubscriptionListBuilder list;
  list.Add("a/#", {QoS::k0, false, false, 0}).Add("b/#", {QoS::k0, false, false, 0});
  EXPECT_TRUE(mqtt::Encode(mqtt::Subscribe{1, {}, list.view()}, GetParam(), in).has_value());
  const std::span<std::uint8_t> room = broker().ReadBuffer(id);
  ASSERT_GE(room.size(), in.size());
  std::copy(in.begin(), in.end(), room.begin());
  broker().OnRead(id, in.size(), clock_.Now());
  EXPECT_TRUE(TakeChecks().empty());
  const std::vector<std::uint8_t> out = broker().CopyOutput(id);
  EXPECT_EQ(Summary(DecodePackets(out, GetParam()), GetParam()),
            Accepted() + " | SUBACK 1 [0x00 " + Failure(ReasonCode::kNotAuthorized) + "]");
  broker().OnWritten(id, out.size(), clock_.Now());
  broker().OnPeerClosed(id, clock_.Now());
  broker().Release(id);
}

// ---------------------------------------------------------------------------------------------
// ACL

TEST_P(BrokerAccessTest, PublishTheAclDeniesIsAcknowledgedAsThatAndNotDelivered) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto admin = LetIn("admin", "admin");
  EXPECT_EQ(Sub(*admin, {"#"}, QoS::k2), "SUBACK 1 [0x02]");
  auto bob = LetIn("bob", "bob");
  bob->Send(MakePublish("a/x", "0"));
  bob->Send(MakePublish("a/x", "1", QoS::k1, 1));
  bob->Send(MakePublish("a/x", "2", QoS::k2, 2));
  if (v5()) {
    EXPECT_EQ(Got(*bob), "PUBACK 1 0x87 | PUBREC 2 0x87");
  } else {
    // 3.1.1 cannot say no: acknowledged, and dropped, so that the client does not resend forever.
    EXPECT_EQ(Got(*bob), "PUBACK 1 | PUBREC 2");
    bob->Send(mqtt::Pubrel{2, ReasonCode::kSuccess, {}});
    EXPECT_EQ(Got(*bob), "PUBCOMP 2");
  }
  EXPECT_EQ(Got(*admin), "");
  EXPECT_EQ(broker().counters().denied_publish, 3U);
  // What bob may write goes through.
  bob->Send(MakePublish("b/x", "3", QoS::k1, 3));
  EXPECT_EQ(Got(*bob), v5() ? "PUBACK 3 0x00" : "PUBACK 3");
  EXPECT_EQ(Got(*admin), "PUBLISH b/x q1 '3'");
  EXPECT_EQ(broker().counters().denied_publish, 3U);
  EXPECT_FALSE(bob->Closed());
}

TEST_P(BrokerAccessTest, SubscribeTheAclDeniesFailsForThatFilterOnly) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto bob = LetIn("bob", "bob");
  EXPECT_EQ(Sub(*bob, {"a/#", "b/#", "a/+/x"}),
            "SUBACK 1 [0x01 " + Failure(ReasonCode::kNotAuthorized) + " 0x01]");
  EXPECT_EQ(broker().counters().denied_subscribe, 1U);
  EXPECT_EQ(broker().subscription_count(), 2U);
  auto admin = LetIn("admin", "admin");
  admin->Send(MakePublish("b/x", "not for bob"));
  admin->Send(MakePublish("a/x", "for bob"));
  EXPECT_EQ(Got(*bob), "PUBLISH a/x q0 'for bob'");
  // The anonymous rules for a client without a username.
  auto anon = LetIn("anon");
  EXPECT_EQ(Sub(*anon, {"public/#", "a/#"}, QoS::k0),
            "SUBACK 2 [0x00 " + Failure(ReasonCode::kNotAuthorized) + "]");
  EXPECT_EQ(broker().counters().denied_subscribe, 2U);
}

TEST_P(BrokerAccessTest, WildcardSubscriptionGetsOnlyWhatTheClientMayReadRetainedIncluded) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto admin = LetIn("admin", "admin");
  for (const char* topic : {"a/r", "b/r", "c/r"}) {
    admin->Send(MakePublish(topic, topic, QoS::k0, 0, /*retain=*/true));
  }
  auto bob = LetIn("bob", "bob");
  // bob reads a/# only: '#' is granted, and filtered message by message.
  EXPECT_EQ(Sub(*bob, {"#"}, QoS::k0), "SUBACK 1 [0x00] | PUBLISH a/r q0 retain 'a/r'");
  EXPECT_EQ(broker().counters().dropped_acl, 2U);
  admin->Send(MakePublish("c/1", "no"));
  admin->Send(MakePublish("a/1", "yes"));
  admin->Send(MakePublish("b/1", "no"));
  EXPECT_EQ(Got(*bob), "PUBLISH a/1 q0 'yes'");
  EXPECT_EQ(broker().counters().dropped_acl, 4U);
  // A deny rule inside what a client reads: alice reads a/# but not a/secret/#.
  auto alice = LetIn("alice", "alice");
  EXPECT_EQ(Sub(*alice, {"a/#"}, QoS::k0), "SUBACK 2 [0x00] | PUBLISH a/r q0 retain 'a/r'");
  admin->Send(MakePublish("a/secret/x", "no"));
  admin->Send(MakePublish("a/public", "yes"));
  EXPECT_EQ(Got(*alice), "PUBLISH a/public q0 'yes'");
  EXPECT_EQ(Got(*bob), "PUBLISH a/secret/x q0 'no' | PUBLISH a/public q0 'yes'");
}

TEST_P(BrokerAccessTest, WillToATopicTheClientMayNotPublishRefusesTheConnect) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto c = NewClient();
  mqtt::Connect connect = MakeConnect("bob", "bob");
  connect.will = mqtt::Will{QoS::k0, false, {}, "a/will", mqtt::BinaryView::Of("bye")};
  c->Send(connect);
  EXPECT_EQ(Got(*c), Refused(ReasonCode::kNotAuthorized, 5));
  EXPECT_TRUE(c->Closed());
  EXPECT_EQ(broker().counters().refused_auth, 1U);
  EXPECT_EQ(broker().session_count(), 0U);
  // A will bob may write.
  auto ok = NewClient();
  connect.will->topic = "b/will";
  ok->Send(connect);
  EXPECT_EQ(Got(*ok), Accepted());
  EXPECT_EQ(broker().counters().refused_auth, 1U);
}

TEST_P(BrokerAccessTest, PatternsSubstituteClientIdAndUsername) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto admin = LetIn("admin", "admin");
  EXPECT_EQ(Sub(*admin, {"dev/#"}), "SUBACK 1 [0x01]");
  auto carol = LetIn("d1", "carol");  // no user rules: the patterns only
  carol->Send(MakePublish("dev/d1/temp", "mine", QoS::k1, 1));
  carol->Send(MakePublish("dev/d2/temp", "not mine", QoS::k1, 2));
  EXPECT_EQ(Got(*carol), v5() ? "PUBACK 1 0x00 | PUBACK 2 0x87" : "PUBACK 1 | PUBACK 2");
  EXPECT_EQ(Got(*admin), "PUBLISH dev/d1/temp q1 'mine'");
  EXPECT_EQ(Sub(*carol, {"inbox/carol/#", "inbox/dave/#", "dev/d1/#"}),
            "SUBACK 2 [0x01 " + Failure(ReasonCode::kNotAuthorized) + " 0x01]");
  admin->Send(MakePublish("inbox/carol/1", "to carol"));
  EXPECT_EQ(Got(*carol), "PUBLISH inbox/carol/1 q0 'to carol'");
  // Without a username, %u stands for nothing: no inbox at all.
  auto anon = LetIn("d3");
  EXPECT_EQ(Sub(*anon, {"inbox/#", "inbox/+/#"}, QoS::k0),
            "SUBACK 3 [" + Failure(ReasonCode::kNotAuthorized) + " " +
                Failure(ReasonCode::kNotAuthorized) + "]");
}

TEST_P(BrokerAccessTest, ClientChosenValuesCannotWidenAPattern) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto admin = LetIn("admin", "admin");
  EXPECT_EQ(Sub(*admin, {"dev/#"}), "SUBACK 1 [0x01]");
  // Client id "x/+" would turn dev/%c/# into dev/x/+/#: the pattern does not apply at all.
  auto wide = LetIn("x/+", "carol");
  wide->Send(MakePublish("dev/x/y/z", "widened", QoS::k1, 1));
  EXPECT_EQ(Got(*wide), v5() ? "PUBACK 1 0x87" : "PUBACK 1");
  EXPECT_EQ(Sub(*wide, {"dev/x/#"}), "SUBACK 2 [" + Failure(ReasonCode::kNotAuthorized) + "]");
  EXPECT_EQ(Got(*admin), "");
  // Client id "x" has dev/x/#.
  auto x = LetIn("x", "carol");
  x->Send(MakePublish("dev/x/y/z", "fine", QoS::k1, 1));
  EXPECT_EQ(Got(*x), v5() ? "PUBACK 1 0x00" : "PUBACK 1");
  EXPECT_EQ(Got(*admin), "PUBLISH dev/x/y/z q1 'fine'");
  // Username '#' would turn inbox/%u/# into inbox/#/#: no inbox, and '#' gets nobody's.
  auto hash = LetIn("h", "#");
  EXPECT_EQ(Sub(*hash, {"inbox/#", "#"}, QoS::k0),
            "SUBACK 3 [" + Failure(ReasonCode::kNotAuthorized) + " 0x00]");  // '#': dev/h/#
  admin->Send(MakePublish("inbox/alice/1", "not for #"));
  admin->Send(MakePublish("dev/h/1", "for h"));
  EXPECT_EQ(Got(*hash), "PUBLISH dev/h/1 q0 'for h'");
  EXPECT_EQ(broker().counters().denied_publish, 1U);
  EXPECT_EQ(broker().counters().denied_subscribe, 2U);
}

TEST_P(BrokerAccessTest, QueuedMessageTheSessionMayNotReadIsDroppedOnReconnect) {
  limits_.max_inflight = 1;  // one at a time: a dropped message must not hold the window
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto bob = LetIn("bobdev", "bob", {}, /*persistent=*/true);
  EXPECT_EQ(Sub(*bob, {"#"}), "SUBACK 1 [0x01]");
  bob->Drop();
  auto admin = LetIn("admin", "admin");
  std::uint16_t id = 1;
  for (const char* topic : {"b/1", "a/1", "c/1", "b/2", "a/2"}) {
    admin->Send(MakePublish(topic, topic, QoS::k1, id++));
  }
  (void)Got(*admin);
  auto back = NewClient();
  back->Send(MakeConnect("bobdev", "bob", {}, /*persistent=*/true));
  EXPECT_EQ(Got(*back), Accepted() + " sp | PUBLISH a/1 q1 'a/1'");
  back->Send(mqtt::Puback{1, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Got(*back), "PUBLISH a/2 q1 'a/2'");
  back->Send(mqtt::Puback{2, ReasonCode::kSuccess, {}});
  EXPECT_EQ(Got(*back), "");
  EXPECT_EQ(broker().counters().dropped_acl, 3U);
  // Nothing left behind: the next message goes at once.
  admin->Send(MakePublish("a/3", "a/3", QoS::k1, id++));
  EXPECT_EQ(Got(*back), "PUBLISH a/3 q1 'a/3'");
}

TEST_P(BrokerAccessTest, QueuedMessageIsNotSentToAnotherUserTakingTheSessionOver) {
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto alice = LetIn("dev", "alice", {}, /*persistent=*/true);
  EXPECT_EQ(Sub(*alice, {"a/#"}), "SUBACK 1 [0x01]");
  alice->Drop();
  auto admin = LetIn("admin", "admin");
  admin->Send(MakePublish("a/1", "for alice", QoS::k1, 1));
  // carol (the patterns only) resumes alice's session with its client id.
  auto carol = NewClient();
  carol->Send(MakeConnect("dev", "carol", {}, /*persistent=*/true));
  EXPECT_EQ(Got(*carol), Accepted() + " sp");
  EXPECT_EQ(broker().counters().dropped_acl, 1U);
}

TEST_P(BrokerAccessTest, InFlightMessageIsNotResentToAnotherUserTakingTheSessionOver) {
  // [MQTT-4.4.0-1] resends unacknowledged PUBLISHes on a resumed session, but the ACL decides
  // what a connection may read, with that connection's rights (Transmit): a message alice had in
  // flight must not reach carol, who may not read it.
  UsePolicy(/*allow_anonymous=*/true, /*with_passwords=*/false, /*with_acl=*/true);
  auto alice = LetIn("dev", "alice", {}, /*persistent=*/true);
  EXPECT_EQ(Sub(*alice, {"a/#"}), "SUBACK 1 [0x01]");
  auto admin = LetIn("admin", "admin");
  admin->Send(MakePublish("a/1", "for alice", QoS::k1, 1));
  EXPECT_EQ(Got(*alice), "PUBLISH a/1 q1 'for alice'");  // not acknowledged
  alice->Drop();
  auto carol = NewClient();
  carol->Send(MakeConnect("dev", "carol", {}, /*persistent=*/true));
  EXPECT_EQ(Got(*carol), Accepted() + " sp");
}

}  // namespace
}  // namespace tinymq::broker
