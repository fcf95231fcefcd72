#include "tools/bench/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tools/bench/plan.h"

// The tinymq-bench command line: defaults per scenario, every bound refused with a message that
// names the option, and the connection plan that follows from the options.

namespace tinymq::bench {
namespace {

util::Result<CommandLine, std::string> Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"tinymq-bench"};
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), "abc123");
}

Options Ok(std::vector<std::string> args) {
  auto r = Parse(std::move(args));
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
  return r ? r->options : Options{};
}

TEST(BenchOptionsTest, DefaultsAreFanInOfFourToOne) {
  const Options o = Ok({});
  EXPECT_EQ(o.scenario, Scenario::kFanIn);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 1883);
  EXPECT_EQ(o.version, mqtt::ProtocolVersion::kV311);
  EXPECT_EQ(o.qos, mqtt::QoS::k0);
  EXPECT_EQ(o.payload, 64u);
  EXPECT_EQ(o.publishers, 4u);
  EXPECT_EQ(o.subscribers, 1u);
  EXPECT_EQ(o.topic_prefix, "tmqb/abc123");
  EXPECT_EQ(o.client_id_prefix, "tmqb-abc123-");
  EXPECT_EQ(o.SubscribersPerMessage(), 1u);
  EXPECT_EQ(o.TotalConnections(), 5u);
}

TEST(BenchOptionsTest, ScenarioDefaultsAndCounts) {
  const Options fanout = Ok({"--scenario", "fanout", "--subscribers", "100"});
  EXPECT_EQ(fanout.publishers, 1u);
  EXPECT_EQ(fanout.SubscribersPerMessage(), 100u);

  const Options pairs = Ok({"--scenario", "pairs", "--pairs", "100", "--idle-topics", "2500"});
  EXPECT_EQ(pairs.publishers, 100u);
  EXPECT_EQ(pairs.subscribers, 100u);
  EXPECT_EQ(pairs.SubscribersPerMessage(), 1u);
  EXPECT_EQ(pairs.IdleSubscriberConnections(), 3u);
  EXPECT_EQ(pairs.TotalConnections(), 203u);

  // Fan-in with a large index beside it (issue #5): 4 publishers, 1 subscriber, 2 idle ones.
  const Options fanin = Ok({"--idle-topics", "1001"});
  EXPECT_EQ(fanin.IdleSubscriberConnections(), 2u);
  EXPECT_EQ(fanin.TotalConnections(), 7u);

  const Options conn = Ok({"--scenario", "conn", "--connections", "200", "--mqtt", "5"});
  EXPECT_EQ(conn.connections, 200u);
  EXPECT_EQ(conn.TotalConnections(), 200u);
  EXPECT_EQ(conn.version, mqtt::ProtocolVersion::kV5);
  EXPECT_EQ(conn.warmup_s, 0.0);
}

TEST(BenchOptionsTest, BadValuesNameTheOption) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--qos", "3"}, "--qos"},
      {{"--payload", "23"}, "--payload"},
      {{"--mqtt", "4.0"}, "--mqtt"},
      {{"--scenario", "storm"}, "--scenario"},
      {{"--duration", "0"}, "--duration"},
      {{"--duration", "3601"}, "--duration"},
      {{"--warmup", "-1"}, "--warmup"},
      {{"--drain", "61"}, "--drain"},
      {{"--rate", "-5"}, "--rate"},
      {{"--inflight", "0"}, "--inflight"},
      {{"--port", "0"}, "--port"},
      {{"--threads", "65"}, "--threads"},
      {{"--pairs", "3"}, "--pairs"},  // not a fanin option
      {{"--scenario", "conn", "--publishers", "3"}, "--publishers"},
      {{"--scenario", "conn", "--idle-topics", "3"}, "--idle-topics"},
      {{"--topic-prefix", "a/#"}, "--topic-prefix"},
      {{"--no-such-option"}, "--no-such-option"},
  };
  for (const auto& [args, option] : cases) {
    const auto r = Parse(args);
    ASSERT_FALSE(r.has_value()) << args.front();
    EXPECT_NE(r.error().find(option), std::string::npos) << r.error();
  }
}

TEST(BenchOptionsTest, ConnectionsAreBounded) {
  EXPECT_TRUE(Parse({"--scenario", "conn", "--connections", "15000"}).has_value());
  EXPECT_FALSE(Parse({"--scenario", "conn", "--connections", "15001"}).has_value());
  const auto r = Parse({"--publishers", "10000", "--subscribers", "5001"});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("15001"), std::string::npos) << r.error();
}

TEST(BenchOptionsTest, WebSocketIsOffByDefaultAndItsPathIsChecked) {
  EXPECT_FALSE(Ok({}).websocket);
  const Options ws = Ok({"--websocket", "--scenario", "conn"});
  EXPECT_TRUE(ws.websocket);
  EXPECT_EQ(ws.ws_path, "/mqtt");
  EXPECT_EQ(Ok({"--websocket", "--ws-path", "/ws?x=1"}).ws_path, "/ws?x=1");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--ws-path", "/mqtt"},  // without --websocket
        {"--websocket", "--ws-path", "mqtt"},
        {"--websocket", "--ws-path", "/a b"},
        {"--websocket", "--ws-path", "/a\r\nX: y"},
        {"--websocket", "--ws-path", ""}}) {
    const auto r = Parse(args);
    ASSERT_FALSE(r.has_value()) << args.back();
    EXPECT_NE(r.error().find("--ws-path"), std::string::npos) << r.error();
  }
}

TEST(BenchOptionsTest, HelpIsAnAction) {
  const auto r = Parse({"--help"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, CommandLine::Action::kPrintHelp);
  EXPECT_NE(r->help.find("--scenario"), std::string::npos);
}

TEST(BenchPlanTest, FanInSpreadsRolesOverThreads) {
  const Options o = Ok({"--publishers", "3", "--subscribers", "2", "--threads", "2"});
  const auto plan = BuildPlan(o);
  ASSERT_EQ(plan.size(), 2u);
  std::size_t publishers = 0;
  std::size_t subscribers = 0;
  for (const auto& thread : plan) {
    for (const ConnSpec& c : thread) {
      if (c.role == Role::kPublisher) {
        ++publishers;
        EXPECT_EQ(c.topic, "tmqb/abc123/p" + std::to_string(c.index));
        EXPECT_EQ(c.client_id, "tmqb-abc123-p" + std::to_string(c.index));
      } else {
        ++subscribers;
        EXPECT_EQ(c.topic, "tmqb/abc123/#");
      }
    }
  }
  EXPECT_EQ(publishers, 3u);
  EXPECT_EQ(subscribers, 2u);
}

TEST(BenchPlanTest, PairsShareATopicAndIdleTopicsAreSplit) {
  const Options o = Ok({"--scenario", "pairs", "--pairs", "2", "--idle-topics", "1500"});
  const auto plan = BuildPlan(o);
  ASSERT_EQ(plan.size(), 1u);
  std::vector<std::string> publisher_topics(2);
  std::vector<std::string> subscriber_topics(2);
  std::uint32_t idle = 0;
  for (const ConnSpec& c : plan[0]) {
    switch (c.role) {
      case Role::kPublisher: publisher_topics[c.index] = c.topic; break;
      case Role::kSubscriber: subscriber_topics[c.index] = c.topic; break;
      case Role::kIdleSubscriber:
        EXPECT_EQ(c.idle_first, c.index * 1000);
        idle += c.idle_count;
        break;
      case Role::kIdle: ADD_FAILURE(); break;
    }
  }
  EXPECT_EQ(publisher_topics, subscriber_topics);
  EXPECT_EQ(publisher_topics[1], "tmqb/abc123/pair/1");
  EXPECT_EQ(idle, 1500u);
  EXPECT_EQ(IdleTopic(o, 7), "tmqb/abc123/idle/7");
}

}  // namespace
}  // namespace tinymq::bench
