// Writes the seed corpus of tinymq_broker_fuzz into the directory given as argv[1]: short
// scenarios (connect, subscribe, publish at each QoS, acknowledge, reconnect, will, retained) in
// the operation format of tests/fuzz/broker_fuzz.h, so that the fuzzer starts from deep states.

#include <cstdio>
#include <string>
#include <vector>

#include "tests/fuzz/broker_fuzz.h"
#include "tinymq/mqtt/packet.h"

namespace {

using namespace tinymq;  // NOLINT: a small test tool
using broker::fuzz::AppendData;
using broker::fuzz::AppendOp;
using broker::fuzz::Op;
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
  std::printf("tinymq_make_broker_corpus: wrote %d seeds to %s\n", n, argv[1]);
  return 0;
}
