#include "tools/bench/report.h"

#include <gtest/gtest.h>

#include <string>

// The summary line and the JSON object carry the figures under fixed names.

namespace tinymq::bench {
namespace {

Report Sample() {
  Report r;
  r.options.scenario = Scenario::kFanIn;
  r.options.qos = mqtt::QoS::k1;
  r.options.publishers = 4;
  r.options.subscribers = 1;
  r.options.topic_prefix = "tmqb/\"quoted\"";
  r.connections = 5;
  r.measured_s = 2;
  r.sent = 1000;
  r.published = 1000;
  r.expected = 1000;
  r.delivered = 998;
  r.loss = 2;
  r.duplicates = 1;
  r.p50_ns = 12'345;
  r.p99_ns = 100'000;
  r.p999_ns = 150'000;
  r.max_ns = 2'000'000;
  return r;
}

TEST(BenchReportTest, SummaryIsOneLineWithTheNamedFigures) {
  const std::string s = FormatSummary(Sample());
  EXPECT_EQ(s.find('\n'), std::string::npos);
  for (const char* part :
       {"scenario=fanin", "mqtt=3.1.1", "qos=1", "inflight=32", "delivered=998", "msg/s=499",
        "p50=12.3us", "p99=100.0us", "p99.9=150.0us", "max=2000.0us", "loss=2", "dup=1", "ooo=0"}) {
    EXPECT_NE(s.find(part), std::string::npos) << part << " in " << s;
  }
}

TEST(BenchReportTest, JsonHasTheSameFiguresAndEscapesStrings) {
  const std::string j = FormatJson(Sample());
  for (const char* part :
       {"\"scenario\": \"fanin\"", "\"delivered\": 998", "\"published\": 1000", "\"loss\": 2",
        "\"duplicates\": 1", "\"p99_us\": 100.000", "\"subscribers_per_message\": 1",
        "\"topic_prefix\": \"tmqb/\\\"quoted\\\"\""}) {
    EXPECT_NE(j.find(part), std::string::npos) << part << " in " << j;
  }
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
}

TEST(BenchReportTest, ConnScenarioReportsConnectionsNotMessages) {
  Report r;
  r.options.scenario = Scenario::kConn;
  r.connections = 200;
  r.connect_s = 0.5;
  r.stayed_up = 200;
  const std::string s = FormatSummary(r);
  EXPECT_NE(s.find("conn/s=400"), std::string::npos) << s;
  EXPECT_NE(s.find("stayed_up=200"), std::string::npos) << s;
  EXPECT_EQ(s.find("p99"), std::string::npos) << s;
  EXPECT_NE(FormatJson(r).find("\"stayed_up\": 200"), std::string::npos);
}

}  // namespace
}  // namespace tinymq::bench
