#include "tinymq/auth/acl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tinymq::auth {
namespace {

using Access = SubscribeAccess;

AclFile Parsed(std::string_view text) {
  auto file = AclFile::Parse(text);
  EXPECT_TRUE(file) << file.error();
  return file ? std::move(*file) : *AclFile::Parse("");
}

// The view of `username` (client id "client").
std::shared_ptr<const ClientAcl> User(const AclFile& file, std::string_view username,
                                      std::string_view client_id = "client") {
  return file.For(client_id, username);
}

std::shared_ptr<const ClientAcl> Anonymous(const AclFile& file,
                                           std::string_view client_id = "client") {
  return file.For(client_id, std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(AclFileTest, CommentsBlankLinesCrlfAndSurroundingBlanksAreIgnored) {
  const AclFile file = Parsed(
      "\xEF\xBB\xBF# a comment\r\n"
      "\r\n"
      "   \t\n"
      "  # an indented comment\n"
      "\ttopic read  a/b  \r\n"
      "user  alice \r\n"
      "topic\twrite\tc/#\r\n");
  EXPECT_EQ(file.rule_count(), 2U);
  EXPECT_EQ(file.user_count(), 1U);
  EXPECT_TRUE(Anonymous(file)->MayReceive("a/b"));
  EXPECT_FALSE(Anonymous(file)->MayPublish("a/b"));
  EXPECT_TRUE(User(file, "alice")->MayPublish("c/d/e"));
  EXPECT_FALSE(User(file, "alice")->MayReceive("c/d/e"));
  EXPECT_FALSE(User(file, "alice")->MayReceive("a/b"));  // anonymous rules are not alice's
}

TEST(AclFileTest, EachErrorNamesItsLine) {
  struct Case {
    std::string text;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"topic a\nfrobnicate a/b",
            "line 2: unknown keyword 'frobnicate' (expected user, "
            "topic or pattern)"},
           {"Topic a", "line 1: unknown keyword 'Topic' (expected user, topic or pattern)"},
           {"topics a", "line 1: unknown keyword 'topics'"},
           {"\n\ntopic reed a/b",
            "line 3: unknown access 'reed' (expected read, write, "
            "readwrite or deny)"},
           {"topic READ a/b", "line 1: unknown access 'READ'"},
           {"# c\ntopic", "line 2: 'topic' without a topic filter"},
           {"pattern   \r\n", "line 1: 'pattern' without a topic filter"},
           {"topic deny",
            "line 1: 'topic deny' without a topic filter (for a topic of that "
            "name, write 'topic readwrite deny')"},
           {"topic read \t", "line 1: 'topic read' without a topic filter"},
           {"pattern write", "line 1: 'pattern write' without a topic filter"},
           {"topic read a/#/b",
            "line 1: invalid topic filter 'a/#/b': topic filter has '#' "
            "outside a whole last level"},
           {"topic sport+",
            "line 1: invalid topic filter 'sport+': topic filter has '+' "
            "outside a whole level"},
           {"pattern read dev/%c#", "line 1: invalid topic filter 'dev/%c#'"},
           {std::string("topic read a\0b", 14), "line 1: invalid topic filter"},
           {"topic a\nuser\n", "line 2: 'user' without a name"},
           {"user \t\r\n", "line 1: 'user' without a name"},
       }) {
    const auto file = AclFile::Parse(c.text);
    ASSERT_FALSE(file) << c.text;
    EXPECT_TRUE(file.error().starts_with(c.error)) << file.error();
  }
}

TEST(AclFileTest, PercentTokensInTopicRulesAreLiteral) {
  const AclFile file = Parsed("topic dev/%c/%u\n");  // Mosquitto substitutes in `pattern` only
  EXPECT_TRUE(Anonymous(file, "x")->MayPublish("dev/%c/%u"));
  EXPECT_FALSE(Anonymous(file, "x")->MayPublish("dev/x/"));
}

TEST(AclFileTest, FilterIsTheRestOfTheLineSpacesIncluded) {
  const AclFile file = Parsed("topic read my room/temp\nuser Jane Doe\ntopic write a b\n");
  EXPECT_TRUE(Anonymous(file)->MayReceive("my room/temp"));
  EXPECT_FALSE(Anonymous(file)->MayReceive("room/temp"));
  EXPECT_FALSE(AclFile::Parse("topic a b"));  // two words: the first must be an access word
  EXPECT_TRUE(User(file, "Jane Doe")->MayPublish("a b"));
  EXPECT_TRUE(User(file, "Jane Doe")->DeniesAll() == false);
  EXPECT_TRUE(User(file, "Jane")->DeniesAll());
}

TEST(AclFileTest, EachAccessWordGrantsItsOwnDirections) {
  const AclFile file = Parsed(
      "topic read r\n"
      "topic write w\n"
      "topic readwrite rw\n"
      "topic bare\n"
      "topic deny d\n");
  const auto acl = Anonymous(file);
  struct Case {
    const char* topic;
    bool publish;
    bool receive;
    Access subscribe;
  };
  for (const Case& c : {
           Case{"r", false, true, Access::kAllow},
           Case{"w", true, false, Access::kDeny},
           Case{"rw", true, true, Access::kAllow},
           Case{"bare", true, true, Access::kAllow},  // no access word: readwrite
           Case{"d", false, false, Access::kDeny},
           Case{"other", false, false, Access::kDeny},
       }) {
    EXPECT_EQ(acl->MayPublish(c.topic), c.publish) << c.topic;
    EXPECT_EQ(acl->MayReceive(c.topic), c.receive) << c.topic;
    EXPECT_EQ(acl->MaySubscribe(c.topic), c.subscribe) << c.topic;
  }
}

TEST(AclFileTest, TopicRulesGoToTheLastUserAndBlocksOfOneUserAddUp) {
  const AclFile file = Parsed(
      "topic read anon/#\n"
      "user alice\n"
      "topic read a1\n"
      "user bob\n"
      "topic read b1\n"
      "pattern read all/#\n"  // a pattern among bob's rules is still everybody's
      "user alice\n"
      "topic read a2\n");
  EXPECT_EQ(file.user_count(), 2U);
  EXPECT_EQ(file.rule_count(), 5U);
  const auto alice = User(file, "alice");
  EXPECT_TRUE(alice->MayReceive("a1"));
  EXPECT_TRUE(alice->MayReceive("a2"));
  EXPECT_FALSE(alice->MayReceive("b1"));
  EXPECT_FALSE(alice->MayReceive("anon/x"));
  EXPECT_TRUE(alice->MayReceive("all/x"));
  const auto bob = User(file, "bob");
  EXPECT_TRUE(bob->MayReceive("b1"));
  EXPECT_FALSE(bob->MayReceive("a2"));
  EXPECT_TRUE(Anonymous(file)->MayReceive("anon/x"));
  EXPECT_TRUE(Anonymous(file)->MayReceive("all/x"));
  EXPECT_FALSE(Anonymous(file)->MayReceive("a1"));
  // A user the file does not name gets the patterns only; so do names that differ by case.
  for (const char* name : {"carol", "Alice", "alice "}) {
    EXPECT_TRUE(User(file, name)->MayReceive("all/x")) << name;
    EXPECT_FALSE(User(file, name)->MayReceive("anon/x")) << name;
    EXPECT_FALSE(User(file, name)->MayReceive("a1")) << name;
  }
}

TEST(AclFileTest, AnEmptyUsernameIsAnonymous) {
  // No `user` line can name "", so an empty username must not escape the anonymous deny rules.
  const AclFile file = Parsed("topic read #\ntopic deny secret/#\npattern read #\n");
  const auto empty = file.For("c", std::string_view());
  EXPECT_FALSE(empty->MayReceive("secret/x"));
  EXPECT_TRUE(empty->MayReceive("public"));
}

// Mosquitto's example ACL file (aclfile.example), rule for rule.
TEST(AclFileTest, MosquittoExampleFile) {
  const AclFile file = Parsed(
      "# This affects access control for clients with no username.\n"
      "topic read $SYS/#\n"
      "\n"
      "# This only affects clients with username \"roger\".\n"
      "user roger\n"
      "topic foo/bar\n"
      "\n"
      "# This affects all clients.\n"
      "pattern write $SYS/broker/connection/%c/state\n");
  const auto anon = Anonymous(file, "bridge-1");
  EXPECT_TRUE(anon->MayReceive("$SYS/broker/uptime"));
  EXPECT_EQ(anon->MaySubscribe("$SYS/#"), Access::kAllow);
  EXPECT_EQ(anon->MaySubscribe("#"), Access::kDeny);  // '#' never reaches $SYS/...
  EXPECT_FALSE(anon->MayPublish("$SYS/broker/uptime"));
  EXPECT_TRUE(anon->MayPublish("$SYS/broker/connection/bridge-1/state"));
  EXPECT_FALSE(anon->MayPublish("$SYS/broker/connection/bridge-2/state"));
  EXPECT_FALSE(anon->MayReceive("foo/bar"));
  const auto roger = User(file, "roger", "r1");
  EXPECT_TRUE(roger->MayPublish("foo/bar"));
  EXPECT_TRUE(roger->MayReceive("foo/bar"));
  EXPECT_FALSE(roger->MayReceive("$SYS/broker/uptime"));
  EXPECT_TRUE(roger->MayPublish("$SYS/broker/connection/r1/state"));
  EXPECT_FALSE(roger->MayPublish("foo/baz"));
}

// The man page's examples, and rules of every shape together.
TEST(AclFileTest, MosquittoManPageStyleFile) {
  const AclFile file = Parsed(
      "topic read public/#\n"
      "user admin\n"
      "topic readwrite #\n"
      "topic readwrite $SYS/#\n"
      "topic deny secret/#\n"
      "user sensor-7\n"
      "topic read config/+/sensors\n"
      "pattern write sensor/%u/data\n"
      "pattern readwrite clients/%c/#\n"
      "pattern deny clients/%c/locked\n");
  const auto admin = User(file, "admin", "adm");
  EXPECT_TRUE(admin->MayPublish("anything/at/all"));
  EXPECT_TRUE(admin->MayReceive("$SYS/broker/load"));
  EXPECT_FALSE(admin->MayReceive("secret/plans"));
  EXPECT_EQ(admin->MaySubscribe("#"), Access::kAllowFiltered);  // secret/# is taken out
  EXPECT_EQ(admin->MaySubscribe("public/#"), Access::kAllow);
  EXPECT_EQ(admin->MaySubscribe("secret/+"), Access::kDeny);
  EXPECT_FALSE(admin->MayPublish("clients/adm/locked"));
  const auto sensor = User(file, "sensor-7", "s7");
  EXPECT_TRUE(sensor->MayPublish("sensor/sensor-7/data"));
  EXPECT_FALSE(sensor->MayPublish("sensor/sensor-8/data"));
  EXPECT_FALSE(sensor->MayReceive("sensor/sensor-7/data"));
  EXPECT_TRUE(sensor->MayReceive("config/eu/sensors"));
  EXPECT_TRUE(sensor->MayPublish("clients/s7/status"));
  EXPECT_FALSE(sensor->MayPublish("clients/s7/locked"));
  EXPECT_FALSE(sensor->MayReceive("public/news"));  // anonymous rules are not a user's
}

TEST(AclFileTest, LoadReadsAFileAndNamesItInErrors) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tinymq-acl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.acl").string();
  const std::string bad = (dir / "bad.acl").string();
  std::ofstream(good) << "user u\ntopic read t/#\n";
  std::ofstream(bad) << "topic read t\ntopic bogus t\n";
  const auto loaded = AclFile::Load(good);
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_TRUE(loaded->For("c", "u")->MayReceive("t/1"));
  const auto refused = AclFile::Load(bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), bad +
                                 ": line 2: unknown access 'bogus' (expected read, write, "
                                 "readwrite or deny)");
  const auto missing = AclFile::Load((dir / "none.acl").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(),
            (dir / "none.acl").string() + ": cannot read: no such file or directory");
  const auto directory = AclFile::Load(dir.string());
  ASSERT_FALSE(directory);
  EXPECT_TRUE(directory.error().starts_with(dir.string() + ": cannot read: ")) << directory.error();
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Decisions

TEST(AclFileTest, DenyWinsOverAllowWhereverEitherComesFrom) {
  const AclFile file = Parsed(
      "user u\n"
      "topic readwrite a/#\n"
      "topic deny a/private/#\n"
      "topic readwrite b/#\n"
      "pattern deny b/%u/x\n"
      "pattern readwrite c/#\n"
      "user u\n"
      "topic deny c/+/hidden\n");
  const auto acl = User(file, "u");
  EXPECT_TRUE(acl->MayPublish("a/public"));
  EXPECT_FALSE(acl->MayPublish("a/private"));  // '#' includes the parent level
  EXPECT_FALSE(acl->MayReceive("a/private/x/y"));
  EXPECT_TRUE(acl->MayPublish("b/v/x"));
  EXPECT_FALSE(acl->MayPublish("b/u/x"));  // a pattern deny over a topic allow
  EXPECT_TRUE(acl->MayReceive("c/1/seen"));
  EXPECT_FALSE(acl->MayReceive("c/1/hidden"));  // a topic deny over a pattern allow
  EXPECT_TRUE(User(file, "v")->MayReceive("c/1/hidden"));
}

TEST(AclFileTest, WildcardRulesDoNotSeeDollarTopicsDenyRulesIncluded) {
  const AclFile file = Parsed("topic readwrite #\ntopic readwrite $SYS/#\ntopic deny +/x\n");
  const auto acl = Anonymous(file);
  EXPECT_FALSE(acl->MayPublish("a/x"));
  EXPECT_TRUE(acl->MayPublish("$SYS/x"));  // "+/x" does not match "$SYS/x" [MQTT-4.7.2-1]
  EXPECT_FALSE(Anonymous(Parsed("topic read #"))->MayReceive("$SYS/broker/uptime"));
  EXPECT_EQ(Anonymous(Parsed("topic read #"))->MaySubscribe("$SYS/#"), Access::kDeny);
}

TEST(AclFileTest, PatternsSubstituteClientIdAndUsername) {
  const AclFile file = Parsed(
      "pattern readwrite dev/%c/#\n"
      "pattern read users/%u/inbox\n"
      "pattern write pair/%u/%c\n"
      "pattern read in-level/%u-%c.log\n");
  const auto acl = file.For("dev-1", "alice");
  EXPECT_TRUE(acl->MayPublish("dev/dev-1/temp"));
  EXPECT_TRUE(acl->MayPublish("dev/dev-1"));
  EXPECT_FALSE(acl->MayPublish("dev/dev-2/temp"));
  EXPECT_FALSE(acl->MayPublish("dev/%c/temp"));
  EXPECT_TRUE(acl->MayReceive("users/alice/inbox"));
  EXPECT_FALSE(acl->MayReceive("users/bob/inbox"));
  EXPECT_TRUE(acl->MayPublish("pair/alice/dev-1"));
  EXPECT_FALSE(acl->MayPublish("pair/dev-1/alice"));
  // Inside a level too (Mosquitto 2.0 does the same, whatever its man page says).
  EXPECT_TRUE(acl->MayReceive("in-level/alice-dev-1.log"));
  EXPECT_EQ(acl->MaySubscribe("dev/dev-1/#"), Access::kAllow);
  EXPECT_EQ(acl->MaySubscribe("dev/+/#"), Access::kAllowFiltered);
  EXPECT_EQ(acl->MaySubscribe("users/+/outbox"), Access::kDeny);
  // Each client its own rules from one file.
  EXPECT_TRUE(file.For("dev-2", "bob")->MayPublish("dev/dev-2/temp"));
  EXPECT_FALSE(file.For("dev-2", "bob")->MayPublish("dev/dev-1/temp"));
}

TEST(AclFileTest, AllowPatternsIgnoreValuesThatWouldWidenThem) {
  const AclFile file = Parsed(
      "pattern readwrite dev/%c/data\n"
      "pattern readwrite user/%u/#\n"
      "pattern readwrite %c/own\n");
  struct Case {
    const char* client_id;
    std::optional<std::string_view> username;
    const char* topic;  // what the value would reach if the pattern applied
  };
  for (const Case& c : {
           Case{"+", "ok", "dev/anyone/data"}, Case{"#", "ok", "dev/x/data"},
           Case{"a/b", "ok", "dev/a/b/data"}, Case{"+/x", "ok", "dev/a/x/data"},
           Case{"ok", "#", "user/other/x"}, Case{"ok", "+", "user/other/x"},
           Case{"ok", "a/b", "user/a/b/x"}, Case{"ok", "a/#", "user/a/anything"},
           Case{"ok", std::nullopt, "user//x"},  // %u of a client without a username
           Case{"ok", "", "user//x"},
           Case{"$SYS", "ok", "$SYS/own"},  // a client id must not reach '$' topics
       }) {
    const auto acl = file.For(c.client_id, c.username);
    const std::string label =
        std::string(c.client_id) + " / " + std::string(c.username.value_or("(none)"));
    EXPECT_FALSE(acl->MayPublish(c.topic)) << label;
    EXPECT_FALSE(acl->MayReceive(c.topic)) << label;
    EXPECT_NE(acl->MaySubscribe(c.topic), Access::kAllow) << label;
  }
  // The patterns whose value is plain still apply to such a client.
  const auto odd = file.For("+", "bob");
  EXPECT_TRUE(odd->MayPublish("user/bob/x"));
  EXPECT_EQ(odd->MaySubscribe("dev/+/data"), Access::kDeny);
  EXPECT_EQ(odd->MaySubscribe("+/own"), Access::kDeny);
  EXPECT_EQ(odd->MaySubscribe("#"), Access::kAllowFiltered);  // user/bob/# only
  // Names with other punctuation are fine, and so is '$' where it cannot start a topic.
  EXPECT_TRUE(file.For("$x", "a.b-c d")->MayPublish("user/a.b-c d/1"));
  EXPECT_TRUE(file.For("$x", "u")->MayPublish("dev/$x/data"));
  EXPECT_TRUE(file.For("$x", "u")->DeniesAll() == false);
  EXPECT_TRUE(file.For("#", std::nullopt)->DeniesAll());
}

TEST(AclFileTest, DenyPatternsApplyLiterallyWhateverTheValue) {
  // Everyone may read and write everything but their own locked/ topics. A client id or username
  // with '/' or wildcards must not make its own deny miss.
  const AclFile file = Parsed(
      "pattern readwrite #\n"
      "pattern deny locked/%c/#\n"
      "pattern deny %u/locked\n");
  {
    const auto acl = file.For("a/b", "x/y");
    EXPECT_FALSE(acl->MayPublish("locked/a/b"));  // byte for byte: "a/b" is two levels here
    EXPECT_FALSE(acl->MayPublish("locked/a/b/c"));
    EXPECT_TRUE(acl->MayPublish("locked/a"));
    EXPECT_FALSE(acl->MayReceive("x/y/locked"));
    EXPECT_TRUE(acl->MayReceive("x/locked"));
    EXPECT_EQ(acl->MaySubscribe("locked/a/+"), Access::kAllowFiltered);
    EXPECT_EQ(acl->MaySubscribe("locked/a/b/#"), Access::kDeny);
  }
  {
    // '+' and '#' in a value are literal: they match no valid topic, so those denies take out
    // nothing, exactly as for a client whose id really were "+". They do not become wildcards.
    const auto acl = file.For("+", "#");
    EXPECT_TRUE(acl->MayPublish("locked/other"));
    EXPECT_TRUE(acl->MayPublish("other/locked"));
    EXPECT_EQ(acl->MaySubscribe("#"), Access::kAllow);
  }
  {
    // No username: %u is empty, literally, so "/locked" is denied.
    const auto acl = file.For("c", std::nullopt);
    EXPECT_FALSE(acl->MayPublish("/locked"));
    EXPECT_TRUE(acl->MayPublish("c/locked"));
    EXPECT_FALSE(acl->MayPublish("locked/c/x"));
  }
  {
    // A deny substituted to "$SYS/..." denies "$SYS/...": literal, never narrower.
    const AclFile sys = Parsed("topic readwrite $SYS/#\npattern deny %c/#\n");
    EXPECT_FALSE(sys.For("$SYS", std::nullopt)->MayReceive("$SYS/broker"));
    EXPECT_TRUE(sys.For("other", std::nullopt)->MayReceive("$SYS/broker"));
  }
}

TEST(AclFileTest, ClientsWithoutAllowRulesShareTheDenyAllView) {
  const AclFile file = Parsed("topic deny a\nuser u\ntopic read x\npattern deny b/%c\n");
  const auto anon = Anonymous(file);
  EXPECT_TRUE(anon->DeniesAll());
  EXPECT_EQ(anon.get(), Anonymous(file, "other").get());
  EXPECT_EQ(anon.get(), User(file, "stranger").get());
  EXPECT_FALSE(User(file, "u")->DeniesAll());
  EXPECT_FALSE(anon->MayPublish("a"));
  EXPECT_FALSE(anon->MayReceive("x"));
  EXPECT_EQ(anon->MaySubscribe("#"), Access::kDeny);

  const AclFile empty = Parsed("# nothing\n\n");
  EXPECT_EQ(empty.rule_count(), 0U);
  for (const auto& acl : {empty.For("c", "u"), empty.For("", std::nullopt)}) {
    EXPECT_TRUE(acl->DeniesAll());
    EXPECT_FALSE(acl->MayPublish("t"));
    EXPECT_FALSE(acl->MayReceive("t"));
    EXPECT_EQ(acl->MaySubscribe("t"), Access::kDeny);
  }
}

TEST(AclFileTest, AViewOutlivesItsFile) {
  std::shared_ptr<const ClientAcl> acl;
  {
    const AclFile file = Parsed("pattern read x/%c\ntopic read y\n");
    acl = Anonymous(file, "me");
  }
  EXPECT_TRUE(acl->MayReceive("x/me"));
  EXPECT_TRUE(acl->MayReceive("y"));
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

TEST(AclFileTest, SubscribeIsAllowedFilteredOrDenied) {
  const AclFile file = Parsed(
      "topic read a/#\n"
      "topic read b/+\n"
      "topic read c/1\n"
      "topic read c/2\n"
      "topic deny a/secret/#\n"
      "topic read d/#\n"
      "topic deny d/+/x\n"
      "topic deny d/+/y\n"
      "topic readwrite e/+/f\n"
      "topic deny +/g/#\n"
      "topic write w/#\n");
  const auto acl = Anonymous(file);
  struct Case {
    const char* filter;
    Access expect;
  };
  for (const Case& c : {
           Case{"a/b", Access::kAllow},
           Case{"a/b/+", Access::kAllow},
           Case{"a/+/c", Access::kAllowFiltered},  // a/secret/c is denied
           Case{"a/#", Access::kAllowFiltered},
           Case{"a/secret", Access::kDeny},
           Case{"a/secret/+/#", Access::kDeny},
           Case{"a", Access::kAllow},            // "a/#" matches "a"
           Case{"b/+", Access::kAllowFiltered},  // b/g is denied by "+/g/#"
           Case{"b/x", Access::kAllow},
           Case{"b/#", Access::kAllowFiltered},  // b/x/y is not readable, b/x is
           Case{"b", Access::kDeny},             // "b/+" does not match "b"
           Case{"c/+", Access::kAllowFiltered},  // only c/1 and c/2: not one rule covers c/+
           Case{"c/3", Access::kDeny},
           Case{"+", Access::kAllowFiltered},  // "a" and "d" are (the parents of a/#, d/#)
           Case{"x/y/z", Access::kDeny},
           Case{"#", Access::kAllowFiltered},
           Case{"+/+", Access::kAllowFiltered},
           Case{"d/+/x", Access::kDeny},
           Case{"d/q/+", Access::kAllowFiltered},
           Case{"e/1/f", Access::kAllow},
           Case{"e/+/f", Access::kAllowFiltered},  // e/g/f is denied
           Case{"e/g/f", Access::kDeny},           // "+/g/#" covers it
           Case{"a/g/x", Access::kDeny},           // ... and this one
           Case{"a/g", Access::kDeny},             // '#' takes the parent level
           Case{"w/x", Access::kDeny},             // write-only
           Case{"$SYS/#", Access::kDeny},          // "+/g/#" and "#"-like rules never see '$'
       }) {
    EXPECT_EQ(acl->MaySubscribe(c.filter), c.expect) << c.filter;
  }
}

TEST(AclFileTest, SubscribeDeniedWhereOneDenyTakesBackAllAReadRuleGrantsThere) {
  // "a/+" overlaps the read rule "+/b/#" only in "a/b", which "a/b" deny covers.
  const AclFile file = Parsed("topic read +/b/#\ntopic read x/#\ntopic deny a/b\n");
  const auto acl = Anonymous(file);
  EXPECT_EQ(acl->MaySubscribe("a/+"), Access::kDeny);
  EXPECT_EQ(acl->MaySubscribe("a/#"), Access::kAllowFiltered);  // a/b/c is readable
  EXPECT_EQ(acl->MaySubscribe("+/+"), Access::kAllowFiltered);  // x/1 and c/b are readable
}

// A concrete topic used as a filter gets exactly the Receive answer.
TEST(AclFileTest, SubscribeToATopicNameAgreesWithReceive) {
  const AclFile file = Parsed(
      "topic read a/#\ntopic deny a/x/#\ntopic read +/y\ntopic read $SYS/+\ntopic deny /+\n"
      "topic read /#\n");
  const auto acl = Anonymous(file);
  for (const char* topic :
       {"a", "a/b", "a/x", "a/x/y", "b/y", "$SYS/y", "$SYS/y/z", "/", "//", "/a", "b", "$SYS"}) {
    const Access sub = acl->MaySubscribe(topic);
    EXPECT_NE(sub, Access::kAllowFiltered) << topic;
    EXPECT_EQ(sub == Access::kAllow, acl->MayReceive(topic)) << topic;
  }
}

// ---------------------------------------------------------------------------------------------
// Filter algebra

TEST(FilterAlgebraTest, Covers) {
  struct Case {
    const char* outer;
    const char* inner;
    bool covers;
  };
  for (const Case& c : {
           Case{"a/#", "a/b/+", true},
           Case{"a/+", "a/#", false},
           Case{"+/b", "x/b", true},
           Case{"#", "$SYS/#", false},
           Case{"+/#", "$SYS/x", false},
           Case{"+", "$SYS", false},
           Case{"$SYS/#", "$SYS/broker/x", true},
           Case{"$SYS/#", "$SYS", true},
           Case{"$SYS/+", "$SYS/#", false},
           Case{"#", "#", true},
           Case{"#", "+/#", true},
           Case{"+/#", "#", true},  // a topic has at least one level
           Case{"+/+/#", "#", false},
           Case{"+/#", "+", true},
           Case{"+", "#", false},
           Case{"#", "a", true},
           Case{"#", "/", true},
           Case{"a/#", "a", true},
           Case{"a/#", "a/#", true},
           Case{"a/+/#", "a/#", false},  // "a/#" matches "a"
           Case{"a/+/#", "a/b/#", true},
           Case{"a", "a/#", false},
           Case{"a", "a", true},
           Case{"a", "b", false},
           Case{"a/b", "a/+", false},
           Case{"a/+", "a/b", true},
           Case{"a/+", "a/", true},  // '+' matches an empty level
           Case{"a/+", "a", false},
           Case{"a/", "a/+", false},
           Case{"+/+", "/", true},
           Case{"a/b/c", "a/b", false},
           Case{"a/b", "a/b/c", false},
           Case{"+/b/#", "x/b/y/+", true},
           Case{"+/b/#", "+/+/#", false},
           Case{"+/+/#", "+/b/#", true},
       }) {
    EXPECT_EQ(FilterCovers(c.outer, c.inner), c.covers) << c.outer << " covers " << c.inner;
  }
}

TEST(FilterAlgebraTest, Overlaps) {
  struct Case {
    const char* a;
    const char* b;
    bool overlap;
  };
  for (const Case& c : {
           Case{"a/+", "+/b", true},
           Case{"#", "$SYS/x", false},
           Case{"+/x", "$SYS/+", false},
           Case{"$SYS/#", "$SYS/x", true},
           Case{"a/+", "a/b/c", false},
           Case{"a/#", "a", true},
           Case{"a/#", "+/b/#", true},
           Case{"a/#", "b/#", false},
           Case{"#", "#", true},
           Case{"+", "a/#", true},  // at "a"
           Case{"+/+", "+", false},
           Case{"/#", "+", false},  // only at "", which is not a topic
           Case{"/#", "#", true},   // at "/"
           Case{"/+", "+/", true},  // at "/"
           Case{"a/b", "a/b", true},
           Case{"a/b", "a/c", false},
           Case{"a/+/c", "a/b/+", true},
       }) {
    EXPECT_EQ(FiltersOverlap(c.a, c.b), c.overlap) << c.a << " & " << c.b;
    EXPECT_EQ(FiltersOverlap(c.b, c.a), c.overlap) << c.b << " & " << c.a;
  }
}

}  // namespace
}  // namespace tinymq::auth
