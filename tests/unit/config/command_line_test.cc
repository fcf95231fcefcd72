#include "tinymq/config/command_line.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace tinymq::config {
namespace {

util::Result<CommandLine, std::string> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "tinymq");
  return ParseCommandLine(static_cast<int>(args.size()), args.data());
}

std::string ErrorOf(std::vector<const char*> args) {
  const auto r = Parse(std::move(args));
  if (r) {
    ADD_FAILURE() << "parsed, but an error was expected";
    return "";
  }
  return r.error();
}

// Writes `text` to a temporary file; removes it when destroyed.
class TempFile {
 public:
  explicit TempFile(std::string_view text)
      : path_(testing::TempDir() + "command_line_test_" +
              testing::UnitTest::GetInstance()->current_test_info()->name() + ".toml") {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    EXPECT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CommandLineTest, NoOptionsRunsWithDefaults) {
  const auto r = Parse({});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->action, CommandLine::Action::kRun);
  EXPECT_FALSE(r->config_file || r->bind || r->port || r->log_level || r->log_file || r->workers ||
               r->data_dir || r->durability || r->repair);
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(*c, Config{});
}

TEST(CommandLineTest, ReadsEveryOption) {
  const auto r = Parse({"--config", "x.toml", "--bind", "::1", "--port", "1999", "--log-level",
                        "warn", "--workers", "8"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->config_file, "x.toml");
  EXPECT_EQ(r->bind, "::1");
  EXPECT_EQ(r->port, 1999);
  EXPECT_EQ(r->log_level, LogLevel::kWarn);
  EXPECT_EQ(r->workers, 8);
}

TEST(CommandLineTest, ReadsThePersistenceOptions) {
  const auto r = Parse({"--data-dir", "data", "--durability", "always", "--repair"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->data_dir, "data");
  EXPECT_EQ(r->durability, Durability::kAlways);
  EXPECT_TRUE(r->repair);
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->data_dir, "data");
  EXPECT_EQ(c->durability, Durability::kAlways);
  EXPECT_TRUE(c->repair);
  EXPECT_EQ(c->sync_interval_ms, 10u);
  for (const auto& [text, expected] :
       {std::pair{"always", Durability::kAlways}, std::pair{"batch", Durability::kBatch},
        std::pair{"none", Durability::kNone}}) {
    const auto d = Parse({"--durability", text});
    ASSERT_TRUE(d) << text << ": " << d.error();
    EXPECT_EQ(d->durability, expected) << text;
  }
}

// `make run` passes --data-dir data before ARGS, so a --data-dir in ARGS must win, not fail.
TEST(CommandLineTest, TheLastDataDirCounts) {
  const auto r = Parse({"--data-dir", "data", "--port", "1884", "--data-dir=/tmp/other"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->data_dir, "/tmp/other");
  const auto none = Parse({"--data-dir", "data", "--data-dir", ""});
  ASSERT_TRUE(none) << none.error();
  const auto c = ResolveConfig(*none);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->data_dir, "");  // an empty DIR: nothing kept
}

TEST(CommandLineTest, RepairNeedsADataDirectory) {
  const auto r = Parse({"--repair"});
  ASSERT_TRUE(r) << r.error();
  const auto c = ResolveConfig(*r);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(),
            "--repair: there is no data directory to repair (give --data-dir DIR, or data_dir in "
            "the configuration file)");
  const TempFile file("data_dir = 'kept'\n");
  const auto from_file = Parse({"-c", file.path().c_str(), "--repair"});
  ASSERT_TRUE(from_file) << from_file.error();
  const auto ok = ResolveConfig(*from_file);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->data_dir, "kept");
  EXPECT_TRUE(ok->repair);
}

TEST(CommandLineTest, PersistenceOptionsOverrideTheFile) {
  const TempFile file("data_dir = 'from-file'\ndurability = 'always'\nsync_interval_ms = 50\n");
  const auto kept = Parse({"-c", file.path().c_str()});
  ASSERT_TRUE(kept) << kept.error();
  const auto c = ResolveConfig(*kept);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->data_dir, "from-file");
  EXPECT_EQ(c->durability, Durability::kAlways);
  EXPECT_EQ(c->sync_interval_ms, 50u);
  const auto r =
      Parse({"-c", file.path().c_str(), "--data-dir", "from-line", "--durability", "none"});
  ASSERT_TRUE(r) << r.error();
  const auto o = ResolveConfig(*r);
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->data_dir, "from-line");
  EXPECT_EQ(o->durability, Durability::kNone);
  EXPECT_EQ(o->sync_interval_ms, 50u);  // not on the command line: the file's value
  CommandLine line;
  line.data_dir = "";
  EXPECT_EQ(ApplyCommandLine(*c, line).data_dir, "");  // an explicit empty one overrides too
}

TEST(CommandLineTest, AcceptsEveryWorkerCountInRange) {
  for (const auto& [text, expected] :
       {std::pair{"0", 0}, std::pair{"1", 1}, std::pair{"64", 64}, std::pair{"1024", 1024}}) {
    const auto r = Parse({"--workers", text});
    ASSERT_TRUE(r) << text << ": " << r.error();
    EXPECT_EQ(r->workers, expected) << text;
  }
  const auto r = Parse({"--workers=3"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->workers, 3);
}

TEST(CommandLineTest, AcceptsEqualsFormAndShortNames) {
  const auto r = Parse({"--port=1999", "-c", "y.toml"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->port, 1999);
  EXPECT_EQ(r->config_file, "y.toml");
}

TEST(CommandLineTest, VersionAndHelp) {
  EXPECT_EQ(Parse({"--version"})->action, CommandLine::Action::kPrintVersion);
  const auto help = Parse({"--help"});
  ASSERT_TRUE(help);
  EXPECT_EQ(help->action, CommandLine::Action::kPrintHelp);
  for (const char* option : {"--config", "--bind", "--port", "--log-level", "--log-file",
                             "--workers", "--data-dir", "--durability", "--repair", "--version"}) {
    EXPECT_NE(help->help.find(option), std::string::npos) << option;
  }
}

TEST(CommandLineTest, ErrorsNameTheOption) {
  EXPECT_EQ(ErrorOf({"--no-such-option"}), "unknown option '--no-such-option' (try --help)");
  EXPECT_EQ(ErrorOf({"stray"}), "unexpected argument 'stray' (try --help)");
  EXPECT_EQ(ErrorOf({"--port", "65536"}),
            "--port: must be a number between 0 and 65535, got '65536'");
  EXPECT_EQ(ErrorOf({"--port", "-1"}), "--port: must be a number between 0 and 65535, got '-1'");
  EXPECT_EQ(ErrorOf({"--port", "18x"}), "--port: must be a number between 0 and 65535, got '18x'");
  EXPECT_EQ(ErrorOf({"--bind", "localhost"}),
            "--bind: must be a numeric IPv4 or IPv6 address (no host name, no brackets), got "
            "'localhost'");
  EXPECT_EQ(ErrorOf({"--log-level", "loud"}),
            "--log-level: must be one of trace, debug, info, warn, error, got 'loud'");
  EXPECT_EQ(ErrorOf({"--port"}).rfind("--port", 0), 0u);
  EXPECT_EQ(ErrorOf({"--workers", "1025"}),
            "--workers: must be a number between 0 and 1024, got '1025'");
  EXPECT_EQ(ErrorOf({"--workers", "65536"}),
            "--workers: must be a number between 0 and 1024, got '65536'");
  EXPECT_EQ(ErrorOf({"--workers", "-1"}),
            "--workers: must be a number between 0 and 1024, got '-1'");
  EXPECT_EQ(ErrorOf({"--workers", "four"}),
            "--workers: must be a number between 0 and 1024, got 'four'");
  EXPECT_EQ(ErrorOf({"--workers", "4x"}),
            "--workers: must be a number between 0 and 1024, got '4x'");
  EXPECT_EQ(ErrorOf({"--workers", ""}), "--workers: must be a number between 0 and 1024, got ''");
  EXPECT_EQ(ErrorOf({"--workers"}).rfind("--workers", 0), 0u);
  EXPECT_EQ(ErrorOf({"--durability", "sometimes"}),
            "--durability: must be one of always, batch, none, got 'sometimes'");
  EXPECT_EQ(ErrorOf({"--durability", "Always"}),
            "--durability: must be one of always, batch, none, got 'Always'");
  EXPECT_EQ(ErrorOf({"--durability"}).rfind("--durability", 0), 0u);
  EXPECT_EQ(ErrorOf({"--data-dir"}).rfind("--data-dir", 0), 0u);
  EXPECT_EQ(ErrorOf({"--log-file", ""}), "--log-file: must not be empty");
  EXPECT_EQ(ErrorOf({"--log-file"}).rfind("--log-file", 0), 0u);
}

TEST(CommandLineTest, LogFileSetsTheDestinationAndThePath) {
  const auto r = Parse({"--log-file", "/var/log/tinymq.log"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->log_file, "/var/log/tinymq.log");
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->log_destination, LogDestination::kFile);
  EXPECT_EQ(c->log_file, "/var/log/tinymq.log");
  EXPECT_EQ(Parse({"--log-file=t.log"})->log_file, "t.log");
}

TEST(CommandLineTest, LogFileOverridesTheFileDestination) {
  // A file that logs to syslog: --log-file replaces both keys, so the pair stays consistent.
  const TempFile syslog("log_destination = 'syslog'\nlog_level = 'warn'\n");
  const auto r = Parse({"-c", syslog.path().c_str(), "--log-file", "x.log"});
  ASSERT_TRUE(r) << r.error();
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->log_destination, LogDestination::kFile);
  EXPECT_EQ(c->log_file, "x.log");
  EXPECT_EQ(c->log_level, LogLevel::kWarn);  // not on the command line: the file's
  // Without --log-file the file's destination stays.
  const auto plain = Parse({"-c", syslog.path().c_str()});
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_EQ(ResolveConfig(*plain)->log_destination, LogDestination::kSyslog);
}

TEST(CommandLineTest, OptionsOverrideTheFile) {
  const TempFile file(
      "log_level = 'error'\n"
      "workers = 2\n"
      "[[listeners]]\nbind = '0.0.0.0'\nport = 1884\n"
      "[[listeners]]\nbind = '::'\nport = 1884\n"
      "[limits]\nmax_inflight = 3\n");
  const auto r = Parse({"--config", file.path().c_str(), "--port", "2000", "--log-level", "debug",
                        "--workers", "6"});
  ASSERT_TRUE(r) << r.error();
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  // --port replaces the listeners with one, keeping the first one's address.
  EXPECT_EQ(c->listeners, (std::vector<ListenerConfig>{{"0.0.0.0", 2000, {}}}));
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  EXPECT_EQ(c->workers, 6);
  EXPECT_EQ(c->limits.max_inflight, 3);  // not on the command line: the file's value
}

TEST(CommandLineTest, BindAloneKeepsTheFilePort) {
  const TempFile file("[[listeners]]\nbind = '0.0.0.0'\nport = 1884\n");
  const auto r = Parse({"-c", file.path().c_str(), "--bind", "127.0.0.1"});
  ASSERT_TRUE(r) << r.error();
  const auto c = ResolveConfig(*r);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listeners, (std::vector<ListenerConfig>{{"127.0.0.1", 1884, {}}}));
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
}

TEST(CommandLineTest, WorkersAloneKeepsTheFileWorkers) {
  const TempFile file("workers = 3\n");
  const auto from_file = Parse({"-c", file.path().c_str()});
  ASSERT_TRUE(from_file) << from_file.error();
  const auto c = ResolveConfig(*from_file);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->workers, 3);
  CommandLine line;
  line.workers = 0;
  EXPECT_EQ(ApplyCommandLine(*c, line).workers, 0);  // an explicit 0 overrides the file too
}

TEST(CommandLineTest, WithoutAFileOptionsOverrideTheDefaults) {
  CommandLine line;
  line.port = 0;
  EXPECT_EQ(ApplyCommandLine(Config{}, line).listeners,
            (std::vector<ListenerConfig>{{"127.0.0.1", 0, {}}}));
  line.bind = "::1";
  EXPECT_EQ(ApplyCommandLine(Config{}, line).listeners,
            (std::vector<ListenerConfig>{{"::1", 0, {}}}));
}

TEST(CommandLineTest, FileErrorsComeThrough) {
  const TempFile file("[limits]\nmax_inflight = 0\n");
  const auto r = Parse({"--config", file.path().c_str(), "--port", "2000"});
  ASSERT_TRUE(r) << r.error();
  const auto c = ResolveConfig(*r);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), file.path() + ": limits.max_inflight: must be between 1 and 65535, got 0");
}

}  // namespace
}  // namespace tinymq::config
