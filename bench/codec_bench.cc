// Micro-benchmarks of the MQTT codec (Google Benchmark): decode and encode of the packets that
// dominate a broker's traffic, so that ns/packet can be read off items_per_second.
//
//   DecodePacket/<sample>   ParseFixedHeader + DecodePacket on a ready buffer holding one packet.
//   DecodeStream/<sample>   the stream Decoder: kStreamPackets copies of the packet back to back,
//                           handed over with Feed() (4 KiB reads, the Decoder's default chunk) and
//                           taken out with Next(); includes the copy into the Decoder's buffer.
//   Encode/<sample>         Encode(const Packet&, version, out) appending to one reused vector,
//                           cleared each iteration, so the steady state allocates nothing.
//
// Samples: a QoS 0 and a QoS 1 PUBLISH with a 64-byte payload to "sensors/plant-7/line-3/temp",
// in 3.1.1 and 5.0 (no properties), and a 5.0 CONNECT with properties, a will with properties,
// user name and password.

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tinymq/mqtt/decoder.h"
#include "tinymq/mqtt/packet.h"
#include "tinymq/util/check.h"

namespace tinymq::mqtt {
namespace {

constexpr std::string_view kTopic = "sensors/plant-7/line-3/temp";
constexpr int kStreamPackets = 64;

enum class Sample { kPublishQos0, kPublishQos1, kConnect };

// The sample packet encoded for `version` (CONNECT: always 5.0).
std::vector<std::uint8_t> Wire(Sample sample, ProtocolVersion version) {
  std::vector<std::uint8_t> out;
  if (sample == Sample::kConnect) {
    PropertiesBuilder props;
    props.Add(PropertyId::kSessionExpiryInterval, 3600)
        .Add(PropertyId::kReceiveMaximum, 32)
        .Add(PropertyId::kMaximumPacketSize, 1U << 20)
        .Add(PropertyId::kTopicAliasMaximum, 16)
        .AddUserProperty("region", "eu-west-1");
    PropertiesBuilder will_props;
    will_props.Add(PropertyId::kWillDelayInterval, 30)
        .Add(PropertyId::kPayloadFormatIndicator, 1)
        .Add(PropertyId::kMessageExpiryInterval, 600);
    Connect c;
    c.version = ProtocolVersion::kV5;
    c.keep_alive = 60;
    c.properties = props.view();
    c.client_id = "sensor-gateway-0042";
    c.will = Will{.qos = QoS::k1,
                  .retain = true,
                  .properties = will_props.view(),
                  .topic = "sensors/plant-7/status",
                  .payload = BinaryView::Of("offline")};
    c.user_name = "gateway";
    c.password = BinaryView::Of("s3cr3t-passw0rd");
    TINYMQ_CHECK(Encode(c, out).has_value());
    return out;
  }
  std::array<std::uint8_t, 64> payload{};
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<std::uint8_t>('a' + i % 26);
  }
  Publish p;
  p.qos = sample == Sample::kPublishQos1 ? QoS::k1 : QoS::k0;
  p.topic = kTopic;
  p.packet_id = p.qos == QoS::k0 ? 0 : 4711;
  p.payload = BinaryView(payload);
  TINYMQ_CHECK(Encode(p, version, out).has_value());
  return out;
}

// Decodes the one packet in `wire`; its views point into `wire`.
Packet DecodeOne(const std::vector<std::uint8_t>& wire, ProtocolVersion version) {
  const auto header = ParseFixedHeader(BinaryView(wire), kMaxRemainingLength + 5);
  TINYMQ_CHECK(header.has_value() && header->has_value());
  const FixedHeader& h = **header;
  TINYMQ_CHECK(h.packet_size() == wire.size());
  auto packet = DecodePacket(h, BinaryView(wire.data() + h.size, h.remaining_length), version);
  TINYMQ_CHECK(packet.has_value());
  return std::move(packet).value();
}

void BM_DecodePacket(benchmark::State& state, Sample sample, ProtocolVersion version) {
  const std::vector<std::uint8_t> wire = Wire(sample, version);
  const BinaryView bytes(wire.data(), wire.size());
  for (auto _ : state) {
    auto header = ParseFixedHeader(bytes, kMaxRemainingLength + 5);
    if (!header || !*header) [[unlikely]] {
      state.SkipWithError("fixed header did not parse");
      break;
    }
    const FixedHeader& h = **header;
    auto packet = DecodePacket(h, BinaryView(bytes.data() + h.size, h.remaining_length), version);
    benchmark::DoNotOptimize(packet);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}

void BM_DecodeStream(benchmark::State& state, Sample sample, ProtocolVersion version) {
  const std::vector<std::uint8_t> one = Wire(sample, version);
  std::vector<std::uint8_t> stream;
  for (int i = 0; i < kStreamPackets; ++i) {
    stream.insert(stream.end(), one.begin(), one.end());
  }
  Decoder decoder(Decoder::Options{}, version);  // reused: its buffer is allocated once
  for (auto _ : state) {
    int decoded = 0;
    BinaryView rest(stream.data(), stream.size());
    while (!rest.empty()) {
      const std::size_t n = decoder.Feed(rest);
      rest = BinaryView(rest.data() + n, rest.size() - n);
      while (true) {
        auto next = decoder.Next();
        if (!next || !*next) [[unlikely]] {
          if (!next) {
            state.SkipWithError("stream did not decode");
            return;
          }
          break;
        }
        benchmark::DoNotOptimize(**next);
        ++decoded;
      }
    }
    if (decoded != kStreamPackets) [[unlikely]] {
      state.SkipWithError("wrong packet count");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kStreamPackets);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(stream.size()));
}

void BM_Encode(benchmark::State& state, Sample sample, ProtocolVersion version) {
  const std::vector<std::uint8_t> wire = Wire(sample, version);
  const Packet packet = DecodeOne(wire, version);
  std::vector<std::uint8_t> out;
  out.reserve(wire.size());
  for (auto _ : state) {
    out.clear();
    auto encoded = Encode(packet, version, out);
    benchmark::DoNotOptimize(encoded);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if (out != wire) {
    state.SkipWithError("encoding differs from the sample");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}

constexpr auto kV311 = ProtocolVersion::kV311;
constexpr auto kV5 = ProtocolVersion::kV5;

#define TINYMQ_CODEC_BENCH(fn)                                           \
  BENCHMARK_CAPTURE(fn, publish_qos0_v311, Sample::kPublishQos0, kV311); \
  BENCHMARK_CAPTURE(fn, publish_qos0_v5, Sample::kPublishQos0, kV5);     \
  BENCHMARK_CAPTURE(fn, publish_qos1_v311, Sample::kPublishQos1, kV311); \
  BENCHMARK_CAPTURE(fn, publish_qos1_v5, Sample::kPublishQos1, kV5);     \
  BENCHMARK_CAPTURE(fn, connect_v5, Sample::kConnect, kV5)

TINYMQ_CODEC_BENCH(BM_DecodePacket);
TINYMQ_CODEC_BENCH(BM_DecodeStream);
TINYMQ_CODEC_BENCH(BM_Encode);

#undef TINYMQ_CODEC_BENCH

}  // namespace
}  // namespace tinymq::mqtt
