#include "tinymq/auth/password_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tinymq::auth {
namespace {

// Few iterations: the tests check the format and the arithmetic, not the cost.
constexpr std::uint32_t kFast = 1000;

TEST(PasswordFileTest, AHashVerifiesItsPasswordOnly) {
  const auto line = HashPassword("s3cret", kFast);
  ASSERT_TRUE(line) << line.error();
  EXPECT_TRUE(line->starts_with("$7$1000$"));
  const auto h = ParseHash(*line);
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(h->iterations, kFast);
  EXPECT_EQ(h->salt.size(), kSaltBytes);
  EXPECT_EQ(h->hash.size(), kHashBytes);
  EXPECT_TRUE(Matches(*h, "s3cret"));
  EXPECT_FALSE(Matches(*h, "s3cret "));
  EXPECT_FALSE(Matches(*h, ""));
  // A fresh salt each time: the same password never hashes the same way twice.
  EXPECT_NE(*HashPassword("s3cret", kFast), *line);
}

TEST(PasswordFileTest, AFileVerifiesEachUserWithTheirOwnPassword) {
  const std::string text = "# users\n\nalice:" + *HashPassword("a-pass", kFast) +
                           "\r\nbob:" + *HashPassword("b-pass", kFast) + "\n";
  const auto file = PasswordFile::Parse(text);
  ASSERT_TRUE(file) << file.error();
  EXPECT_EQ(file->size(), 2U);
  EXPECT_TRUE(file->Verify("alice", "a-pass"));
  EXPECT_TRUE(file->Verify("bob", "b-pass"));
  EXPECT_FALSE(file->Verify("alice", "b-pass"));
  EXPECT_FALSE(file->Verify("carol", "a-pass"));
  EXPECT_FALSE(file->Contains("carol"));
}

TEST(PasswordFileTest, BadLinesAreRefusedNamingTheLine) {
  const std::string good = *HashPassword("x", kFast);
  struct Case {
    std::string text;
    std::string expect;
  };
  for (const Case& c : {
           Case{"alice", "line 1: expected username:hash"},
           Case{"\n:" + good, "line 2: empty user name"},
           Case{"a:" + good + "\na:" + good, "line 2: user 'a' is listed twice"},
           Case{"a:$6$salt$hash", "line 1: user 'a': a SHA-512 hash without iterations"},
           Case{"a:plain", "line 1: user 'a': not a PBKDF2-SHA512 hash"},
           Case{"a:$7$0$AAAA$AAAA", "bad iteration count '0'"},
           Case{"a:$7$x1$AAAA$AAAA", "bad iteration count 'x1'"},
           Case{"a:$7$100$not*base64$AAAA", "the salt is not base64"},
           Case{"a:$7$100$AAAA$AAAA", "the hash is not 64 bytes of base64"},
           Case{"a:$7$100$AAAA", "expected $7$iterations$salt$hash"},
       }) {
    const auto file = PasswordFile::Parse(c.text);
    ASSERT_FALSE(file) << c.text;
    EXPECT_NE(file.error().find(c.expect), std::string::npos) << file.error();
  }
}

TEST(PasswordFileTest, WithUserAddsChangesAndRemovesOneLineKeepingTheRest) {
  const std::string a = *HashPassword("a", kFast);
  const std::string b = *HashPassword("b", kFast);
  const std::string start = "# devices\nalice:" + a + "\n";
  const auto added = WithUser(start, "bob", b);
  ASSERT_TRUE(added) << added.error();
  EXPECT_EQ(*added, start + "bob:" + b + "\n");
  const auto changed = WithUser(*added, "alice", b);
  ASSERT_TRUE(changed) << changed.error();
  EXPECT_EQ(*changed, "# devices\nalice:" + b + "\nbob:" + b + "\n");
  EXPECT_TRUE(PasswordFile::Parse(*changed)->Verify("alice", "b"));
  const auto removed = WithUser(*changed, "alice", "");
  ASSERT_TRUE(removed) << removed.error();
  EXPECT_EQ(*removed, "# devices\nbob:" + b + "\n");
  EXPECT_FALSE(WithUser(*removed, "alice", ""));        // not there
  EXPECT_FALSE(WithUser(*removed, "a:b", a));           // a name the format cannot hold
  EXPECT_FALSE(WithUser("broken line\n", "carol", a));  // a damaged file is not rewritten
  // "al" is not a prefix match for "alice".
  EXPECT_TRUE(WithUser(start, "al", a)->find("alice:") != std::string::npos);
}

// A file written by Mosquitto's own tool reads and verifies here (users can migrate).
TEST(PasswordFileTest, ReadsWhatMosquittoPasswdWrites) {
  if (::access("/usr/bin/mosquitto_passwd", X_OK) != 0) {
    GTEST_SKIP() << "mosquitto_passwd is not installed (Debian package mosquitto)";
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tinymq-passwd-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "passwords";
  const std::string command = "/usr/bin/mosquitto_passwd -H sha512-pbkdf2 -c -b " + path.string() +
                              " device-1 'pa:ss word' >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove_all(dir);
  ASSERT_NE(text.str().find("device-1:$7$"), std::string::npos) << text.str();
  const auto file = PasswordFile::Parse(text.str());
  ASSERT_TRUE(file) << file.error();
  EXPECT_TRUE(file->Verify("device-1", "pa:ss word"));
  EXPECT_FALSE(file->Verify("device-1", "pa:ss word!"));
}

}  // namespace
}  // namespace tinymq::auth
