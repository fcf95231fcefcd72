// Writes the seed corpus of tinymq_decoder_fuzz: tinymq_make_corpus <dir>.
//
// One file per packet type per version it exists in (3.1, 3.1.1, 5.0), each a valid packet built
// with the codec's builders and encoders, plus streams of several packets in one file. Every file
// starts with the mode byte of decoder_fuzz_mode.h: a CONNECT-led stream with no preset version
// (the Decoder learns it from the CONNECT), anything else with its version preset. The split
// pattern and read API rotate over the files so the seeds start from every path. Each file is fed
// through a Decoder before it is written, to prove it decodes to the packets it was built from.
//
// Exit status 0 on success, 2 on a usage or I/O error; an invalid seed is a bug (TINYMQ_CHECK).

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tests/fuzz/decoder_fuzz_mode.h"
#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

using P = PropertyId;
using RC = ReasonCode;

std::string_view Tag(ProtocolVersion v) {
  switch (v) {
    case ProtocolVersion::kV31: return "v31";
    case ProtocolVersion::kV311: return "v311";
    case ProtocolVersion::kV5: return "v5";
  }
  return "unknown";
}

class CorpusWriter {
 public:
  explicit CorpusWriter(std::filesystem::path dir) : dir_(std::move(dir)) {}

  bool ok() const { return ok_; }
  int files() const { return files_; }

  // Writes `packets` encoded for `version` as one seed. `preset` is the Decoder's starting version
  // (nullopt: the first packet must be a CONNECT).
  void Add(std::string_view name, std::optional<ProtocolVersion> preset, ProtocolVersion version,
           std::initializer_list<Packet> packets) {
    DecoderFuzzMode mode;
    mode.version = preset;
    mode.split = static_cast<SplitPattern>(files_ % 8);
    mode.prepare_read_api = (files_ / 8) % 2 == 1;
    TINYMQ_CHECK(DecoderFuzzMode::FromByte(mode.ToByte()).ToByte() == mode.ToByte());

    std::vector<std::uint8_t> bytes;
    for (const Packet& p : packets) {
      TINYMQ_CHECK(Encode(p, version, bytes).has_value());
    }
    TINYMQ_CHECK(Decodes(bytes, preset, packets.size()));

    const std::filesystem::path path = dir_ / (std::string(Tag(version)) + "_" + std::string(name));
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    const auto mode_byte = static_cast<char>(mode.ToByte());
    out.write(&mode_byte, 1);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::fprintf(stderr, "tinymq_make_corpus: cannot write %s\n", path.c_str());
      ok_ = false;
    }
    ++files_;
  }

 private:
  // True when a Decoder turns `bytes` into exactly `count` packets and nothing is left over.
  static bool Decodes(const std::vector<std::uint8_t>& bytes, std::optional<ProtocolVersion> preset,
                      std::size_t count) {
    Decoder decoder(Decoder::Options{.max_packet_size = kLargeMaxPacketSize}, preset);
    BinaryView rest(bytes);
    std::size_t decoded = 0;
    while (!rest.empty()) {
      const std::size_t n = decoder.Feed(rest);
      rest = BinaryView(rest.data() + n, rest.size() - n);
      while (true) {
        auto next = decoder.Next();
        if (!next) {
          std::fprintf(stderr, "tinymq_make_corpus: seed does not decode: %.*s\n",
                       static_cast<int>(Describe(next.error()).size()),
                       Describe(next.error()).data());
          return false;
        }
        if (!next->has_value()) {
          break;
        }
        ++decoded;
      }
    }
    return decoded == count && decoder.buffered() == 0;
  }

  std::filesystem::path dir_;
  bool ok_ = true;
  int files_ = 0;
};

// Every packet type `version` has, with every optional part filled in.
void WriteVersion(CorpusWriter& w, ProtocolVersion v) {
  const bool v5 = v == ProtocolVersion::kV5;
  const std::optional<ProtocolVersion> preset = v;
  const std::optional<ProtocolVersion> none;
  const std::array<std::uint8_t, 8> correlation = {0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02, 0xFF};
  const std::string_view payload_text = "{\"temp\":21.5,\"unit\":\"C\"}";

  // CONNECT: will, user name, password; 5.0 properties on the packet and on the will.
  PropertiesBuilder connect_props;
  connect_props.Add(P::kSessionExpiryInterval, 3600)
      .Add(P::kReceiveMaximum, 32)
      .Add(P::kMaximumPacketSize, 1U << 20)
      .Add(P::kTopicAliasMaximum, 16)
      .Add(P::kRequestResponseInformation, 1)
      .Add(P::kRequestProblemInformation, 0)
      .AddUserProperty("region", "eu-west-1")
      .AddUserProperty("region", "eu-west-2");
  PropertiesBuilder will_props;
  will_props.Add(P::kWillDelayInterval, 30)
      .Add(P::kPayloadFormatIndicator, 1)
      .Add(P::kMessageExpiryInterval, 600)
      .Add(P::kContentType, "text/plain")
      .Add(P::kResponseTopic, "sensors/plant-7/reply")
      .AddBinary(P::kCorrelationData, BinaryView(correlation))
      .AddUserProperty("reason", "power loss");
  Connect connect;
  connect.version = v;
  connect.clean_start = false;
  connect.keep_alive = 60;
  connect.client_id = "sensor-gateway-0042";
  connect.will = Will{.qos = QoS::k1,
                      .retain = true,
                      .properties = v5 ? will_props.view() : Properties(),
                      .topic = "sensors/plant-7/status",
                      .payload = BinaryView::Of("offline")};
  connect.user_name = "gateway";
  connect.password = BinaryView::Of("s3cr3t-passw0rd");
  if (v5) {
    connect.properties = connect_props.view();
  }
  w.Add("connect", none, v, {connect});

  Connect minimal;
  minimal.version = v;
  minimal.client_id = "c";
  w.Add("connect_minimal", none, v, {minimal});

  // CONNACK
  PropertiesBuilder connack_props;
  connack_props.Add(P::kSessionExpiryInterval, 7200)
      .Add(P::kAssignedClientIdentifier, "auto-7F3A")
      .Add(P::kServerKeepAlive, 30)
      .Add(P::kReceiveMaximum, 100)
      .Add(P::kMaximumQos, 1)
      .Add(P::kRetainAvailable, 0)
      .Add(P::kMaximumPacketSize, 65536)
      .Add(P::kTopicAliasMaximum, 8)
      .Add(P::kWildcardSubscriptionAvailable, 1)
      .Add(P::kSubscriptionIdentifierAvailable, 0)
      .Add(P::kSharedSubscriptionAvailable, 1)
      .Add(P::kResponseInformation, "replies/")
      .Add(P::kServerReference, "broker-2.example:1883")
      .Add(P::kReasonString, "welcome")
      .Add(P::kAuthenticationMethod, "SCRAM-SHA-256")
      .AddBinary(P::kAuthenticationData, BinaryView::Of("server-final"))
      .AddUserProperty("node", "b1");
  Connack connack{.session_present = v != ProtocolVersion::kV31,
                  .reason = RC::kSuccess,
                  .properties = v5 ? connack_props.view() : Properties()};
  w.Add("connack", preset, v, {connack});
  PropertiesBuilder refused_props;
  refused_props.Add(P::kReasonString, "not on the list");
  const Connack refused{.reason = RC::kNotAuthorized,
                        .properties = v5 ? refused_props.view() : Properties()};
  w.Add("connack_refused", preset, v, {refused});

  // PUBLISH at each QoS, 5.0 with properties.
  PropertiesBuilder publish_props;
  publish_props.Add(P::kPayloadFormatIndicator, 1)
      .Add(P::kMessageExpiryInterval, 120)
      .Add(P::kContentType, "application/json")
      .Add(P::kResponseTopic, "sensors/plant-7/line-3/temp/reply")
      .AddBinary(P::kCorrelationData, BinaryView(correlation))
      .Add(P::kSubscriptionIdentifier, 7)
      .Add(P::kSubscriptionIdentifier, 300000)
      .AddUserProperty("unit", "celsius")
      .AddUserProperty("sensor", "pt100");
  const Properties pub_props = v5 ? publish_props.view() : Properties();
  const Publish qos0{.topic = "sensors/plant-7/line-3/temp",
                     .properties = pub_props,
                     .payload = BinaryView::Of(payload_text)};
  const Publish qos1{.qos = QoS::k1,
                     .retain = true,
                     .topic = "sensors/plant-7/line-3/temp",
                     .packet_id = 1,
                     .properties = pub_props,
                     .payload = BinaryView::Of(payload_text)};
  const Publish qos2{.dup = true,
                     .qos = QoS::k2,
                     .topic = "sensors/plant-7/line-3/pressure",
                     .packet_id = 65535,
                     .properties = pub_props,
                     .payload = BinaryView::Of(payload_text)};
  w.Add("publish_qos0", preset, v, {qos0});
  w.Add("publish_qos1", preset, v, {qos1});
  w.Add("publish_qos2", preset, v, {qos2});
  const Publish empty_payload{.topic = "a/b"};
  w.Add("publish_empty_payload", preset, v, {empty_payload});
  PropertiesBuilder alias_props;
  alias_props.Add(P::kTopicAlias, 3);
  if (v5) {
    const Publish aliased{.qos = QoS::k1,
                          .packet_id = 2,
                          .properties = alias_props.view(),
                          .payload = BinaryView::Of(payload_text)};
    w.Add("publish_topic_alias", preset, v, {aliased});
  }

  // PUBACK, PUBREC, PUBREL, PUBCOMP: 5.0 with a reason code and properties.
  PropertiesBuilder ack_props;
  ack_props.Add(P::kReasonString, "quota").AddUserProperty("retry-after", "5");
  const Properties ap = v5 ? ack_props.view() : Properties();
  const RC pub_fail = v5 ? RC::kQuotaExceeded : RC::kSuccess;
  const RC rel_fail = v5 ? RC::kPacketIdentifierNotFound : RC::kSuccess;
  w.Add("puback", preset, v, {Puback{.packet_id = 1, .reason = pub_fail, .properties = ap}});
  w.Add("pubrec", preset, v, {Pubrec{.packet_id = 2, .reason = pub_fail, .properties = ap}});
  w.Add("pubrel", preset, v, {Pubrel{.packet_id = 3, .reason = rel_fail, .properties = ap}});
  w.Add("pubcomp", preset, v, {Pubcomp{.packet_id = 4, .reason = rel_fail, .properties = ap}});
  w.Add("puback_short", preset, v, {Puback{.packet_id = 5}});

  // SUBSCRIBE with several filters and options.
  PropertiesBuilder sub_props;
  sub_props.Add(P::kSubscriptionIdentifier, 42).AddUserProperty("client", "dashboard");
  SubscriptionListBuilder subs;
  subs.Add("sensors/+/line-3/#", {.max_qos = QoS::k2});
  if (v5) {
    subs.Add("sensors/plant-7/line-3/temp",
             {.max_qos = QoS::k1, .no_local = true, .retain_as_published = true});
    subs.Add("$share/dash/alerts/#", {.max_qos = QoS::k0, .retain_handling = 1});
    subs.Add("config/#", {.max_qos = QoS::k1, .retain_handling = 2});
  } else {
    subs.Add("sensors/plant-7/line-3/temp", {.max_qos = QoS::k1});
    subs.Add("alerts/#", {.max_qos = QoS::k0});
  }
  const Subscribe subscribe{.packet_id = 10,
                            .properties = v5 ? sub_props.view() : Properties(),
                            .subscriptions = subs.view()};
  w.Add("subscribe", preset, v, {subscribe});

  // SUBACK: a code per filter.
  const std::array<RC, 4> suback_codes = {RC::kGrantedQos2, RC::kGrantedQos1, RC::kSuccess,
                                          v5 ? RC::kNotAuthorized : RC::kUnspecifiedError};
  PropertiesBuilder suback_props;
  suback_props.Add(P::kReasonString, "one refused").AddUserProperty("acl", "v2");
  const Suback suback{.packet_id = 10,
                      .properties = v5 ? suback_props.view() : Properties(),
                      .reason_codes = ReasonCodeList(suback_codes)};
  w.Add("suback", preset, v, {suback});

  // UNSUBSCRIBE and UNSUBACK.
  PropertiesBuilder unsub_props;
  unsub_props.AddUserProperty("why", "closing dashboard");
  TopicFilterListBuilder filters;
  filters.Add("sensors/+/line-3/#").Add("alerts/#").Add("config/#");
  const Unsubscribe unsubscribe{.packet_id = 11,
                                .properties = v5 ? unsub_props.view() : Properties(),
                                .filters = filters.view()};
  w.Add("unsubscribe", preset, v, {unsubscribe});
  const std::array<RC, 3> unsuback_codes = {RC::kSuccess, RC::kNoSubscriptionExisted,
                                            RC::kNotAuthorized};
  PropertiesBuilder unsuback_props;
  unsuback_props.Add(P::kReasonString, "partly");
  const Unsuback unsuback{.packet_id = 11,
                          .properties = v5 ? unsuback_props.view() : Properties(),
                          .reason_codes = v5 ? ReasonCodeList(unsuback_codes) : ReasonCodeList()};
  w.Add("unsuback", preset, v, {unsuback});

  w.Add("pingreq", preset, v, {Pingreq{}});
  w.Add("pingresp", preset, v, {Pingresp{}});

  // DISCONNECT, and AUTH (5.0 only).
  PropertiesBuilder disconnect_props;
  disconnect_props.Add(P::kSessionExpiryInterval, 0)
      .Add(P::kReasonString, "shutting down")
      .Add(P::kServerReference, "broker-3.example")
      .AddUserProperty("drain", "yes");
  const Disconnect disconnect{.reason = v5 ? RC::kDisconnectWithWill : RC::kSuccess,
                              .properties = v5 ? disconnect_props.view() : Properties()};
  w.Add("disconnect", preset, v, {disconnect});
  PropertiesBuilder auth_props;
  auth_props.Add(P::kAuthenticationMethod, "SCRAM-SHA-256")
      .AddBinary(P::kAuthenticationData, BinaryView::Of("c=biws,r=fyko+d2lbbFgONRv9qkxdawL"))
      .Add(P::kReasonString, "continue")
      .AddUserProperty("step", "2");
  const Auth auth{.reason = RC::kContinueAuthentication, .properties = auth_props.view()};
  if (v5) {
    w.Add("auth", preset, v, {auth});
  }

  // Streams: a client's session from CONNECT on (no preset version), and a server's replies.
  w.Add("stream_client", none, v,
        {connect, subscribe, qos0, qos1, qos2, Pubrel{.packet_id = 65535}, Puback{.packet_id = 9},
         Pingreq{}, unsubscribe, disconnect});
  if (v5) {
    w.Add("stream_server", preset, v,
          {connack, auth, suback, qos1, Puback{.packet_id = 1}, Pubrec{.packet_id = 2},
           Pubcomp{.packet_id = 2}, unsuback, Pingresp{}, disconnect});
  } else {
    w.Add("stream_server", preset, v,
          {connack, suback, qos1, Puback{.packet_id = 1}, Pubrec{.packet_id = 2},
           Pubcomp{.packet_id = 2}, unsuback, Pingresp{}, disconnect});
  }
}

}  // namespace
}  // namespace tinymq::mqtt

int main(int argc, char** argv) {
  using tinymq::mqtt::CorpusWriter;
  using tinymq::mqtt::ProtocolVersion;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(argv[1], ec);
  if (ec) {
    std::fprintf(stderr, "tinymq_make_corpus: cannot create %s: %s\n", argv[1],
                 ec.message().c_str());
    return 2;
  }
  CorpusWriter writer{std::filesystem::path(argv[1])};
  for (const ProtocolVersion v :
       {ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    tinymq::mqtt::WriteVersion(writer, v);
  }
  if (!writer.ok()) {
    return 2;
  }
  std::printf("tinymq_make_corpus: wrote %d seeds to %s\n", writer.files(), argv[1]);
  return 0;
}
