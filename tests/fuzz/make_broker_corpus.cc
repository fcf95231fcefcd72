// Writes the seed corpus of tinymq_broker_fuzz into the directory given as argv[1]: short
// scenarios (connect, subscribe, publish at each QoS, acknowledge, reconnect, will, retained; with
// an access policy: password checks answered or not, certificate usernames, the ACL, a session
// resumed by another user; the small limits: topic, subscription and retained caps, the publish
// rate) in the operation format of tests/fuzz/broker_fuzz.h, so that the fuzzer starts from deep
// states.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/fuzz/broker_fuzz.h"
#include "tinymq/mqtt/packet.h"

namespace {

using namespace tinymq;  // NOLINT: a small test tool
using broker::fuzz::AccessOp;
using broker::fuzz::AppendAccess;
using broker::fuzz::AppendData;
using broker::fuzz::AppendOp;
using broker::fuzz::Op;
namespace config = broker::fuzz::config;
using Bytes = std::vector<std::uint8_t>;

Bytes Enc(const mqtt::Packet& p, mqtt::ProtocolVersion v) {
  Bytes out;
  if (!mqtt::Encode(p, v, out)) {
    std::fprintf(stderr, "make_broker_corpus: cannot encode a seed packet\n");
    std::exit(1);
  }
  return out;
}

mqtt::Connect MakeConnect(const char* id, mqtt::ProtocolVersion v, bool clean, bool will) {
  mqtt::Connect c;
  c.version = v;
  c.client_id = id;
  c.clean_start = clean;
  c.keep_alive = 2;
  if (will) {
    c.will = mqtt::Will{mqtt::QoS::k1, true, {}, "wills/x", mqtt::BinaryView::Of("bye")};
  }
  return c;
}

Bytes Scenario(mqtt::ProtocolVersion v, bool clean) {
  Bytes s;
  mqtt::SubscriptionListBuilder subs;
  subs.Add("a/#", {mqtt::QoS::k2, false, false, 0}).Add("a/+", {mqtt::QoS::k1, false, false, 0});
  AppendData(s, 0, Enc(MakeConnect("sub", v, clean, true), v));
  AppendData(s, 0, Enc(mqtt::Subscribe{1, {}, subs.view()}, v));
  AppendOp(s, 0, Op::kDrain);
  AppendData(s, 1, Enc(MakeConnect("pub", v, true, false), v));
  for (std::uint16_t q = 0; q < 3; ++q) {
    mqtt::Publish p;
    p.topic = "a/b";
    p.qos = static_cast<mqtt::QoS>(q);
    p.packet_id = q == 0 ? 0 : q;
    p.retain = q == 1;
    p.payload = mqtt::BinaryView::Of("payload");
    AppendData(s, 1, Enc(p, v));
  }
  AppendData(s, 1, Enc(mqtt::Pubrel{2, mqtt::ReasonCode::kSuccess, {}}, v));
  AppendOp(s, 1, Op::kCommit);  // what the persistent session queued is durable
  AppendOp(s, 1, Op::kDrain);
  AppendOp(s, 0, Op::kDrainSome);
  s.push_back(20);
  AppendData(s, 0, Enc(mqtt::Puback{1, mqtt::ReasonCode::kSuccess, {}}, v));
  AppendData(s, 0, Enc(mqtt::Pubrec{2, mqtt::ReasonCode::kSuccess, {}}, v));
  AppendOp(s, 0, Op::kPeerClose);
  AppendOp(s, 0, Op::kRestart);  // a crash: the persistent session comes back from the store
  AppendData(s, 2, Enc(MakeConnect("sub", v, clean, false), v));
  AppendOp(s, 2, Op::kDrain);
  AppendOp(s, 3, Op::kAdvance);
  s.push_back(40);
  return s;
}

// MQTT 5 features: session expiry, a delayed will, subscription options and identifiers, a shared
// subscription, topic aliases both ways, message expiry and enhanced authentication (the fuzz
// target's authenticator knows method "F": "go" continues, "ok" succeeds).
Bytes V5Scenario() {
  const auto v = mqtt::ProtocolVersion::kV5;
  Bytes s;
  mqtt::PropertiesBuilder connect_props;
  connect_props.Add(mqtt::PropertyId::kSessionExpiryInterval, 5U)
      .Add(mqtt::PropertyId::kTopicAliasMaximum, 2U)
      .Add(mqtt::PropertyId::kReceiveMaximum, 2U);
  mqtt::PropertiesBuilder will_props;
  will_props.Add(mqtt::PropertyId::kWillDelayInterval, 2U)
      .Add(mqtt::PropertyId::kMessageExpiryInterval, 3U);
  mqtt::Connect sub = MakeConnect("sub", v, false, false);
  sub.properties = connect_props.view();
  sub.will =
      mqtt::Will{mqtt::QoS::k1, false, will_props.view(), "wills/x", mqtt::BinaryView::Of("bye")};
  AppendData(s, 0, Enc(sub, v));
  mqtt::SubscriptionListBuilder subs;
  subs.Add("a/#", {mqtt::QoS::k2, true, true, 1})
      .Add("$share/g/a/+", {mqtt::QoS::k1, false, false, 0})
      .Add("a/b", {mqtt::QoS::k0, false, true, 2});
  mqtt::PropertiesBuilder id;
  id.Add(mqtt::PropertyId::kSubscriptionIdentifier, 7U);
  AppendData(s, 0, Enc(mqtt::Subscribe{1, id.view(), subs.view()}, v));
  mqtt::Connect member = MakeConnect("member", v, true, false);
  AppendData(s, 2, Enc(member, v));
  mqtt::SubscriptionListBuilder shared;
  shared.Add("$share/g/a/+", {mqtt::QoS::k2, false, false, 0});
  AppendData(s, 2, Enc(mqtt::Subscribe{1, {}, shared.view()}, v));
  mqtt::PropertiesBuilder auth;
  auth.Add(mqtt::PropertyId::kAuthenticationMethod, "F")
      .AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView::Of("go"));
  mqtt::Connect pub = MakeConnect("pub", v, true, false);
  pub.properties = auth.view();
  AppendData(s, 1, Enc(pub, v));
  auth.Clear();
  auth.Add(mqtt::PropertyId::kAuthenticationMethod, "F")
      .AddBinary(mqtt::PropertyId::kAuthenticationData, mqtt::BinaryView::Of("ok"));
  AppendData(s, 1, Enc(mqtt::Auth{mqtt::ReasonCode::kContinueAuthentication, auth.view()}, v));
  for (std::uint16_t q = 0; q < 3; ++q) {
    mqtt::PropertiesBuilder props;
    props.Add(mqtt::PropertyId::kTopicAlias, 1U).Add(mqtt::PropertyId::kMessageExpiryInterval, 1U);
    mqtt::Publish p;
    p.topic = q == 1 ? "" : "a/b";
    p.qos = static_cast<mqtt::QoS>(q);
    p.packet_id = q == 0 ? 0 : q;
    p.retain = q != 1;
    p.properties = props.view();
    p.payload = mqtt::BinaryView::Of("payload");
    AppendData(s, 1, Enc(p, v));
  }
  AppendOp(s, 0, Op::kDrain);
  AppendOp(s, 2, Op::kPeerClose);
  AppendOp(s, 0, Op::kPeerClose);
  AppendOp(s, 3, Op::kAdvance);
  s.push_back(25);
  AppendData(s, 3, Enc(sub, v));
  AppendOp(s, 3, Op::kDrain);
  return s;
}

mqtt::Connect WithUser(mqtt::Connect c, const char* user, const char* password) {
  c.user_name = user;
  if (password != nullptr) {
    c.password = mqtt::BinaryView::Of(password);
  }
  return c;
}

mqtt::Publish MakePublish(const char* topic, mqtt::QoS qos, std::uint16_t id, bool retain,
                          const char* payload = "payload") {
  mqtt::Publish p;
  p.topic = topic;
  p.qos = qos;
  p.packet_id = qos == mqtt::QoS::k0 ? 0 : id;
  p.retain = retain;
  p.payload = mqtt::BinaryView::Of(payload);
  return p;
}

// The password file and the ACL (anonymous clients refused): passwords checked (right, wrong,
// late, never), certificate usernames, publishes and subscriptions the ACL allows or denies,
// retained messages filtered by it, %c and %u patterns, and refusals after the failure delay.
Bytes AccessScenario(mqtt::ProtocolVersion v) {
  Bytes s;
  AppendAccess(s, 0, AccessOp::kConfigure, config::kPolicy);
  AppendData(s, 0, Enc(WithUser(MakeConnect("alice-dev", v, false, false), "alice", "secret"), v));
  mqtt::SubscriptionListBuilder subs;
  subs.Add("a/#", {mqtt::QoS::k1, false, false, 0})
      .Add("inbox/alice/#", {mqtt::QoS::k2, false, false, 0})
      .Add("b/#", {mqtt::QoS::k0, false, false, 0})
      .Add("#", {mqtt::QoS::k1, false, false, 0});
  AppendData(s, 0, Enc(mqtt::Subscribe{1, {}, subs.view()}, v));
  AppendAccess(s, 0, AccessOp::kAnswer, broker::fuzz::kAnswerVerify);
  AppendOp(s, 0, Op::kDrain);
  AppendData(s, 1, Enc(WithUser(MakeConnect("bob-dev", v, true, false), "bob", "wrong"), v));
  AppendAccess(s, 1, AccessOp::kAnswer, broker::fuzz::kAnswerVerify);
  AppendData(s, 2, Enc(MakeConnect("anon", v, true, false), v));
  AppendAccess(s, 3, AccessOp::kCertUser, 2);  // admin
  mqtt::Connect admin = MakeConnect("admin", v, true, true);
  admin.will->topic = "a/will";
  AppendData(s, 3, Enc(WithUser(admin, "mallory", "nope"), v));
  AppendData(s, 3, Enc(MakePublish("a/r", mqtt::QoS::k1, 1, true), v));
  AppendData(s, 3, Enc(MakePublish("a/secret/x", mqtt::QoS::k1, 2, false), v));
  AppendData(s, 3, Enc(MakePublish("b/x", mqtt::QoS::k2, 3, true), v));
  AppendData(s, 3, Enc(MakePublish("inbox/alice/1", mqtt::QoS::k1, 4, false), v));
  AppendData(s, 3, Enc(MakePublish("dev/alice-dev/x", mqtt::QoS::k0, 0, false), v));
  AppendOp(s, 3, Op::kDrain);
  AppendOp(s, 0, Op::kDrainSome);
  s.push_back(40);
  AppendOp(s, 1, Op::kAdvance);
  s.push_back(8);  // past the failure delay: bob and the anonymous client are refused
  AppendOp(s, 1, Op::kDrain);
  AppendOp(s, 2, Op::kDrain);
  AppendData(s, 1, Enc(WithUser(MakeConnect("late", v, true, false), "bob", "hunter2"), v));
  AppendOp(s, 0, Op::kDrain);
  AppendOp(s, 0, Op::kPeerClose);
  AppendAccess(s, 1, AccessOp::kAnswer, broker::fuzz::kAnswerOk);
  AppendOp(s, 1, Op::kDrain);
  AppendData(s, 2, Enc(WithUser(MakeConnect("never", v, true, false), "admin", "root"), v));
  AppendOp(s, 2, Op::kAdvance);
  s.push_back(120);  // the CONNECT timeout: the check never came back
  return s;
}

// A session that alice leaves with a QoS 1 message in flight and one queued, resumed by carol
// (a certificate username), who may read neither.
Bytes TakeoverScenario(mqtt::ProtocolVersion v) {
  Bytes s;
  mqtt::PropertiesBuilder expiry;  // 5.0: the session outlives the connection
  expiry.Add(mqtt::PropertyId::kSessionExpiryInterval, 60U);
  mqtt::Connect dev = MakeConnect("dev", v, false, false);
  if (v == mqtt::ProtocolVersion::kV5) {
    dev.properties = expiry.view();
  }
  AppendAccess(s, 0, AccessOp::kConfigure, config::kPolicy | config::kAllowAnonymous);
  AppendData(s, 0, Enc(WithUser(dev, "alice", "secret"), v));
  AppendAccess(s, 0, AccessOp::kAnswer, broker::fuzz::kAnswerVerify);
  mqtt::SubscriptionListBuilder subs;
  subs.Add("a/#", {mqtt::QoS::k1, false, false, 0});
  AppendData(s, 0, Enc(mqtt::Subscribe{1, {}, subs.view()}, v));
  AppendOp(s, 0, Op::kDrain);
  AppendAccess(s, 1, AccessOp::kCertUser, 2);  // admin
  AppendData(s, 1, Enc(MakeConnect("admin", v, true, false), v));
  AppendData(s, 1, Enc(MakePublish("a/1", mqtt::QoS::k1, 1, false), v));
  AppendOp(s, 0, Op::kDrain);  // in flight, not acknowledged
  AppendOp(s, 0, Op::kPeerClose);
  AppendData(s, 1, Enc(MakePublish("a/2", mqtt::QoS::k1, 2, false), v));  // queued
  AppendAccess(s, 2, AccessOp::kCertUser, 3);                             // carol
  AppendData(s, 2, Enc(dev, v));
  AppendOp(s, 2, Op::kDrain);
  return s;
}

// The small limits (a restart into them), without an access policy: deep and long topics, more
// subscriptions and retained messages than the caps, and a publisher over its rate until the
// grace runs out.
Bytes LimitsScenario(mqtt::ProtocolVersion v) {
  Bytes s;
  AppendAccess(s, 0, AccessOp::kConfigure, config::kSmallLimits);
  AppendData(s, 0, Enc(MakeConnect("sub", v, true, false), v));
  mqtt::SubscriptionListBuilder subs;
  subs.Add("a/#", {mqtt::QoS::k1, false, false, 0})
      .Add("a/b/c/d/e", {mqtt::QoS::k1, false, false, 0})
      .Add("r/+", {mqtt::QoS::k2, false, false, 0})
      .Add("x", {mqtt::QoS::k0, false, false, 0})
      .Add("y", {mqtt::QoS::k0, false, false, 0});
  AppendData(s, 0, Enc(mqtt::Subscribe{1, {}, subs.view()}, v));
  AppendData(s, 1, Enc(MakeConnect("pub", v, true, true), v));
  std::uint16_t id = 1;
  for (const char* topic : {"r/1", "r/2", "r/3", "r/4", "a/b/c/d/e", "a/0123456789012345678901"}) {
    AppendData(s, 1, Enc(MakePublish(topic, mqtt::QoS::k1, id++, true), v));
  }
  AppendData(s, 1, Enc(MakePublish("r/1", mqtt::QoS::k0, 0, true, ""), v));  // a delete
  for (int i = 0; i < 6; ++i) {
    AppendData(s, 1, Enc(MakePublish("a/b", mqtt::QoS::k0, 0, false), v));
  }
  AppendData(s, 1, Enc(mqtt::Pingreq{}, v));
  for (int i = 0; i < 4; ++i) {
    AppendOp(s, 1, Op::kAdvance);
    s.push_back(2);
    AppendOp(s, 0, Op::kDrain);
  }
  AppendData(s, 2, Enc(MakeConnect("late", v, true, false), v));
  mqtt::SubscriptionListBuilder retained;
  retained.Add("r/#", {mqtt::QoS::k1, false, false, 0});
  AppendData(s, 2, Enc(mqtt::Subscribe{1, {}, retained.view()}, v));
  AppendOp(s, 2, Op::kDrain);
  for (int i = 0; i < 12; ++i) {
    AppendData(s, 1, Enc(MakePublish("a/b", mqtt::QoS::k1, id++, false), v));
  }
  for (int i = 0; i < 6; ++i) {
    AppendOp(s, 1, Op::kAdvance);
    s.push_back(3);
  }
  AppendOp(s, 1, Op::kDrain);
  return s;
}

// A clean stop with messages in flight: a persistent subscriber, a clean publisher with a will,
// $SYS messages, a client behind a PROXY header; then the restart finds the session.
Bytes ShutdownScenario(mqtt::ProtocolVersion v) {
  Bytes s;
  AppendData(s, 0, Enc(MakeConnect("keeper", v, false, false), v));
  mqtt::SubscriptionListBuilder subs;
  subs.Add("#", {mqtt::QoS::k1, false, false, 0}).Add("$SYS/#", {mqtt::QoS::k0, false, false, 0});
  AppendData(s, 0, Enc(mqtt::Subscribe{1, {}, subs.view()}, v));
  AppendOp(s, 0, Op::kDrain);
  AppendAccess(s, 1, AccessOp::kPeer, 7);
  AppendData(s, 1, Enc(MakeConnect("pub", v, true, true), v));
  AppendData(s, 1, Enc(MakePublish("a/1", mqtt::QoS::k1, 1, false), v));
  AppendData(s, 1, Enc(MakePublish("a/2", mqtt::QoS::k2, 2, true), v));
  AppendAccess(s, 2, AccessOp::kSystem, 7);
  AppendAccess(s, 2, AccessOp::kShutdown, 0);
  AppendData(s, 0, Enc(MakeConnect("keeper", v, false, false), v));
  AppendOp(s, 0, Op::kDrain);
  return s;
}

bool Write(const std::string& path, const Bytes& s) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  const bool ok = f != nullptr && std::fwrite(s.data(), 1, s.size(), f) == s.size();
  if (f != nullptr) {
    std::fclose(f);
  }
  if (!ok) {
    std::fprintf(stderr, "make_broker_corpus: cannot write %s\n", path.c_str());
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tinymq_make_broker_corpus DIR\n");
    return 2;
  }
  int n = 0;
  for (auto v :
       {mqtt::ProtocolVersion::kV31, mqtt::ProtocolVersion::kV311, mqtt::ProtocolVersion::kV5}) {
    for (bool clean : {true, false}) {
      const Bytes s = Scenario(v, clean);
      const std::string path = std::string(argv[1]) + "/scenario-" + std::to_string(n++);
      std::FILE* f = std::fopen(path.c_str(), "wb");
      if (f == nullptr || std::fwrite(s.data(), 1, s.size(), f) != s.size()) {
        std::fprintf(stderr, "make_broker_corpus: cannot write %s\n", path.c_str());
        return 1;
      }
      std::fclose(f);
    }
  }
  const Bytes s = V5Scenario();
  const std::string path = std::string(argv[1]) + "/scenario-v5";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(s.data(), 1, s.size(), f) != s.size()) {
    std::fprintf(stderr, "make_broker_corpus: cannot write %s\n", path.c_str());
    return 1;
  }
  std::fclose(f);
  ++n;
  for (auto v : {mqtt::ProtocolVersion::kV311, mqtt::ProtocolVersion::kV5}) {
    const std::string suffix = v == mqtt::ProtocolVersion::kV5 ? "-v5" : "-v311";
    if (!Write(std::string(argv[1]) + "/access" + suffix, AccessScenario(v)) ||
        !Write(std::string(argv[1]) + "/takeover" + suffix, TakeoverScenario(v)) ||
        !Write(std::string(argv[1]) + "/limits" + suffix, LimitsScenario(v)) ||
        !Write(std::string(argv[1]) + "/shutdown" + suffix, ShutdownScenario(v))) {
      return 1;
    }
    n += 3;
  }
  std::printf("tinymq_make_broker_corpus: wrote %d seeds to %s\n", n, argv[1]);
  return 0;
}
