#include "tinymq/mqtt/topic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Clause references: "3.1.1" is MQTT 3.1.1 (OASIS, 2014), "5.0" is MQTT 5.0 (OASIS, 2019). The
// two number the wildcard rules differently: 3.1.1 [MQTT-4.7.1-1/2/3] are 5.0 [MQTT-4.7.0-1] and
// [MQTT-4.7.1-1/2]. Where an example appears in both, it is the same example.

namespace tinymq::mqtt {
namespace {

using std::string_view_literals::operator""sv;

// "ok" or the error's description, so that a failed expectation prints readable text.
// (TopicErrorTest checks that descriptions are distinct, which makes comparing them exact.)
std::string_view Outcome(std::optional<TopicError> error) {
  return error ? Describe(*error) : "ok";
}
std::string_view Outcome(const util::Result<void, TopicError>& result) {
  return result.has_value() ? "ok" : Describe(result.error());
}

struct ValidityCase {
  std::string_view topic;
  std::optional<TopicError> error;  // nullopt: valid
};

constexpr std::optional<TopicError> kValid = std::nullopt;

struct MatchCase {
  std::string_view filter;
  std::string_view name;
  bool matches;
};

void ExpectMatches(const std::vector<MatchCase>& cases) {
  for (const MatchCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "filter \"" << c.filter << "\", name \"" << c.name << "\"");
    // The examples must meet TopicMatches' preconditions, or they prove nothing.
    ASSERT_EQ(Outcome(ValidateTopicFilter(c.filter)), "ok");
    ASSERT_EQ(Outcome(ValidateTopicName(c.name)), "ok");
    EXPECT_EQ(TopicMatches(c.filter, c.name), c.matches);
  }
}

// ---------------------------------------------------------------------------------------------
// Topic names

TEST(TopicNameTest, ValidNamesFromTheSpecification) {
  const std::vector<ValidityCase> cases = {
      // 3.1.1 and 5.0 §4.7.1.2 non-normative example (names matched by "sport/tennis/player1/#")
      {"sport/tennis/player1", kValid},
      {"sport/tennis/player1/ranking", kValid},
      {"sport/tennis/player1/score/wimbledon", kValid},
      // 3.1.1 and 5.0 §4.7.1.2 non-normative comment ("sport/#" also matches "sport")
      {"sport", kValid},
      // 3.1.1 and 5.0 §4.7.1.3 non-normative comment ("sport/+" matches "sport/")
      {"sport/", kValid},
      {"sport/tennis/player2", kValid},
      // 3.1.1 and 5.0 §4.7.1.3 and §4.7.3 ("/finance" is distinct from "finance")
      {"/finance", kValid},
      {"finance", kValid},
      // 3.1.1 and 5.0 §4.7.2 non-normative comment
      {"$SYS/monitor/Clients", kValid},
      // 3.1.1 and 5.0 §4.7.3: case-sensitive, "ACCOUNTS" and "Accounts" are two names
      {"ACCOUNTS", kValid},
      {"Accounts", kValid},
      // 3.1.1 and 5.0 §4.7.3: may include the space character
      {"Accounts payable", kValid},
      // 3.1.1 and 5.0 §4.7.3: a name consisting only of '/' is valid
      {"/", kValid},
      // 3.1.1 and 5.0 §4.7.1.1: adjacent separators make a zero-length level
      {"a//b", kValid},
      {"//", kValid},
      {"a/", kValid},
      // 3.1.1 §1.5.3 / 5.0 §1.5.4: any other UTF-8 (already checked by the decoder)
      {"caf\xc3\xa9/\xe2\x82\xac", kValid},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicName(c.topic)), Outcome(c.error)) << '"' << c.topic << '"';
  }
}

TEST(TopicNameTest, WildcardsAreRejected) {
  // 3.1.1 [MQTT-4.7.1-1], 5.0 [MQTT-4.7.0-1]: wildcards MUST NOT be used within a Topic Name.
  // These are the spec's valid filters, used as names.
  const std::vector<ValidityCase> cases = {
      {"#", TopicError::kWildcardInName},
      {"+", TopicError::kWildcardInName},
      {"sport/tennis/#", TopicError::kWildcardInName},
      {"sport/tennis/+", TopicError::kWildcardInName},
      {"+/tennis/#", TopicError::kWildcardInName},
      {"sport/+/player1", TopicError::kWildcardInName},
      // Not even inside a level, where a filter would call them misplaced.
      {"sport/tennis#", TopicError::kWildcardInName},
      {"sport+", TopicError::kWildcardInName},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicName(c.topic)), Outcome(c.error)) << '"' << c.topic << '"';
  }
}

TEST(TopicNameTest, EmptyNameIsRejected) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-1]: at least one character long.
  EXPECT_EQ(Outcome(ValidateTopicName("")), Outcome(TopicError::kEmpty));
}

TEST(TopicNameTest, NullCharacterIsRejected) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-2]: MUST NOT include U+0000, wherever it is.
  for (const std::string_view name : {"\0"sv, "a\0"sv, "\0a"sv, "a/\0/b"sv, "sport/tennis\0"sv}) {
    EXPECT_EQ(Outcome(ValidateTopicName(name)), Outcome(TopicError::kNullCharacter))
        << "size " << name.size();
  }
}

TEST(TopicNameTest, LengthLimitCountsBytes) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-3]: MUST NOT encode to more than 65,535 bytes.
  EXPECT_EQ(Outcome(ValidateTopicName(std::string(65535, 'a'))), "ok");
  EXPECT_EQ(Outcome(ValidateTopicName(std::string(65536, 'a'))), Outcome(TopicError::kTooLong));
  // A smaller configured limit; "é" is two bytes of UTF-8, so two of them are four bytes.
  const TopicLimits limits{.max_length = 3};
  EXPECT_EQ(Outcome(ValidateTopicName("abc", limits)), "ok");
  EXPECT_EQ(Outcome(ValidateTopicName("\xc3\xa9", limits)), "ok");
  EXPECT_EQ(Outcome(ValidateTopicName("\xc3\xa9\xc3\xa9", limits)), Outcome(TopicError::kTooLong));
  EXPECT_EQ(Outcome(ValidateTopicName("abcd", limits)), Outcome(TopicError::kTooLong));
}

TEST(TopicNameTest, LevelLimitCountsLevels) {
  const TopicLimits limits{.max_levels = 3};
  const std::vector<ValidityCase> cases = {
      {"a", kValid},
      {"a/b/c", kValid},
      {"//", kValid},  // three empty levels
      {"a/b/", kValid},
      {"a/b/c/d", TopicError::kTooManyLevels},
      {"///", TopicError::kTooManyLevels},
      {"a/b/c/", TopicError::kTooManyLevels},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicName(c.topic, limits)), Outcome(c.error))
        << '"' << c.topic << '"';
  }
}

TEST(TopicNameTest, LevelsAreUnlimitedByDefault) {
  // 3.1.1 and 5.0 §4.7.3: no limit to the number of levels other than the overall length.
  std::string name = "a";
  for (int i = 0; i < 30000; ++i) {
    name += "/a";
  }
  EXPECT_EQ(Outcome(ValidateTopicName(name)), "ok");
  EXPECT_EQ(Outcome(ValidateTopicName(name, {.max_levels = 30001})), "ok");
  EXPECT_EQ(Outcome(ValidateTopicName(name, {.max_levels = 30000})),
            Outcome(TopicError::kTooManyLevels));
}

// ---------------------------------------------------------------------------------------------
// Topic filters

TEST(TopicFilterTest, ValidFiltersFromTheSpecification) {
  const std::vector<ValidityCase> cases = {
      // 3.1.1 and 5.0 §4.7.1.2 non-normative examples
      {"sport/tennis/player1/#", kValid},
      {"sport/#", kValid},
      {"#", kValid},
      {"sport/tennis/#", kValid},
      // 3.1.1 and 5.0 §4.7.1.3 non-normative examples
      {"sport/tennis/+", kValid},
      {"sport/+", kValid},
      {"+", kValid},
      {"+/tennis/#", kValid},
      {"sport/+/player1", kValid},
      {"+/+", kValid},
      {"/+", kValid},
      // 3.1.1 and 5.0 §4.7.2 non-normative examples
      {"$SYS/#", kValid},
      {"+/monitor/Clients", kValid},
      {"$SYS/monitor/+", kValid},
      // 3.1.1 and 5.0 §4.7.3: a filter consisting only of '/' is valid; spaces are allowed
      {"/", kValid},
      {"Accounts payable", kValid},
      // 3.1.1 and 5.0 §4.7.1.1: zero-length levels
      {"a//b", kValid},
      {"/a", kValid},
      {"a/", kValid},
      {"+//+", kValid},
      {"//#", kValid},
      // 5.0 §4.8.2: the shared form is a plain filter to ValidateTopicFilter
      {"$share/consumer1/sport/tennis/+", kValid},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicFilter(c.topic)), Outcome(c.error)) << '"' << c.topic << '"';
  }
}

TEST(TopicFilterTest, MultiLevelWildcardMustBeLast) {
  // 3.1.1 [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1]: '#' on its own or after '/', and last.
  const std::vector<ValidityCase> cases = {
      // 3.1.1 and 5.0 §4.7.1.2 non-normative examples of invalid filters
      {"sport/tennis#", TopicError::kMisplacedMultiLevelWildcard},
      {"sport/tennis/#/ranking", TopicError::kMisplacedMultiLevelWildcard},
      // The rule's other cases
      {"#/", TopicError::kMisplacedMultiLevelWildcard},
      {"#/a", TopicError::kMisplacedMultiLevelWildcard},
      {"##", TopicError::kMisplacedMultiLevelWildcard},
      {"#a", TopicError::kMisplacedMultiLevelWildcard},
      {"a#", TopicError::kMisplacedMultiLevelWildcard},
      {"a/#b", TopicError::kMisplacedMultiLevelWildcard},
      {"a/b#/c", TopicError::kMisplacedMultiLevelWildcard},
      {"+/#/#", TopicError::kMisplacedMultiLevelWildcard},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicFilter(c.topic)), Outcome(c.error)) << '"' << c.topic << '"';
  }
}

TEST(TopicFilterTest, SingleLevelWildcardMustOccupyWholeLevel) {
  // 3.1.1 [MQTT-4.7.1-3], 5.0 [MQTT-4.7.1-2]: '+' MUST occupy an entire level.
  const std::vector<ValidityCase> cases = {
      // 3.1.1 and 5.0 §4.7.1.3 non-normative example of an invalid filter
      {"sport+", TopicError::kMisplacedSingleLevelWildcard},
      // The rule's other cases
      {"+sport", TopicError::kMisplacedSingleLevelWildcard},
      {"sp+ort", TopicError::kMisplacedSingleLevelWildcard},
      {"++", TopicError::kMisplacedSingleLevelWildcard},
      {"a/+b", TopicError::kMisplacedSingleLevelWildcard},
      {"a/b+/c", TopicError::kMisplacedSingleLevelWildcard},
      {"+#", TopicError::kMisplacedSingleLevelWildcard},
      {"a/+/+x", TopicError::kMisplacedSingleLevelWildcard},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicFilter(c.topic)), Outcome(c.error)) << '"' << c.topic << '"';
  }
}

TEST(TopicFilterTest, EmptyFilterIsRejected) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-1]: at least one character long.
  EXPECT_EQ(Outcome(ValidateTopicFilter("")), Outcome(TopicError::kEmpty));
}

TEST(TopicFilterTest, NullCharacterIsRejected) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-2]: MUST NOT include U+0000, not even next to a wildcard.
  for (const std::string_view filter : {"\0"sv, "a/\0"sv, "\0/#"sv, "+/\0/+"sv, "a\0b"sv}) {
    EXPECT_EQ(Outcome(ValidateTopicFilter(filter)), Outcome(TopicError::kNullCharacter))
        << "size " << filter.size();
  }
}

TEST(TopicFilterTest, LengthLimitCountsBytes) {
  // 3.1.1 and 5.0 [MQTT-4.7.3-3]: at most 65,535 bytes.
  std::string filter(65533, 'a');
  filter += "/#";
  EXPECT_EQ(Outcome(ValidateTopicFilter(filter)), "ok");
  filter.insert(0, "a");
  EXPECT_EQ(Outcome(ValidateTopicFilter(filter)), Outcome(TopicError::kTooLong));
  EXPECT_EQ(Outcome(ValidateTopicFilter("a/+/#", {.max_length = 5})), "ok");
  EXPECT_EQ(Outcome(ValidateTopicFilter("a/+/#", {.max_length = 4})),
            Outcome(TopicError::kTooLong));
}

TEST(TopicFilterTest, LevelLimitCountsWildcardLevels) {
  const TopicLimits limits{.max_levels = 2};
  const std::vector<ValidityCase> cases = {
      {"#", kValid},
      {"+/#", kValid},
      {"/", kValid},
      {"+/+/#", TopicError::kTooManyLevels},
      {"a//", TopicError::kTooManyLevels},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(Outcome(ValidateTopicFilter(c.topic, limits)), Outcome(c.error))
        << '"' << c.topic << '"';
  }
}

// A filter is checked per level, as the rules are written: each level is either free of
// wildcards, or exactly "+", or exactly "#" and last. Compared with the one-pass validator on
// every string of up to 5 characters over an alphabet that reaches every rule.
bool IsValidFilterByLevels(std::string_view filter) {
  if (filter.empty() || filter.find('\0') != std::string_view::npos) {
    return false;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(filter.find('/', start), filter.size());
    const std::string_view level = filter.substr(start, end - start);
    const bool last = end == filter.size();
    if (level.find('#') != std::string_view::npos && (level != "#" || !last)) {
      return false;
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return false;
    }
    if (last) {
      return true;
    }
    start = end + 1;
  }
}

// Every non-empty string of up to `max_size` characters from `alphabet`.
std::vector<std::string> AllStrings(std::string_view alphabet, std::size_t max_size) {
  std::vector<std::string> out;
  std::vector<std::string> previous = {""};
  for (std::size_t size = 1; size <= max_size; ++size) {
    std::vector<std::string> current;
    for (const std::string& prefix : previous) {
      for (const char c : alphabet) {
        current.push_back(prefix + c);
      }
    }
    out.insert(out.end(), current.begin(), current.end());
    previous = std::move(current);
  }
  return out;
}

TEST(TopicFilterTest, AgreesWithLevelByLevelRules) {
  int valid = 0;
  for (const std::string& filter : AllStrings("a/+#\0"sv, 5)) {
    const bool expected = IsValidFilterByLevels(filter);
    EXPECT_EQ(ValidateTopicFilter(filter).has_value(), expected) << '"' << filter << '"';
    valid += expected ? 1 : 0;
  }
  EXPECT_GT(valid, 100);  // the alphabet does produce valid filters, not only invalid ones
}

// ---------------------------------------------------------------------------------------------
// Matching

TEST(TopicMatchesTest, MultiLevelWildcardExamples) {
  ExpectMatches({
      // 3.1.1 and 5.0 §4.7.1.2 non-normative comment: a subscription to
      // "sport/tennis/player1/#" receives these
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      // 3.1.1 and 5.0 §4.7.1.2: "sport/#" also matches the singular "sport"
      {"sport/#", "sport", true},
      // 3.1.1 and 5.0 §4.7.1.2: "#" receives every Application Message (but see the $-rule)
      {"#", "sport", true},
      {"#", "sport/tennis/player1", true},
      {"#", "/", true},
      {"#", "/finance", true},
      // 3.1.1 and 5.0 §4.7.1.2 ("sport/tennis/#" is valid)
      {"sport/tennis/#", "sport/tennis", true},
      {"sport/tennis/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/#", "sport", false},
      // Beyond the examples: '#' takes the parent level, not the grandparent; an empty level
      // is a level; prefixes of a level do not count.
      {"sport/tennis/player1/#", "sport/tennis", false},
      {"sport/#", "sport/", true},
      {"sport/#", "sports", false},
      {"sport/#", "sports/tennis", false},
      {"sport/#", "other", false},
      {"a//#", "a/", true},
      {"a//#", "a//b", true},
      {"a//#", "a/b", false},
  });
}

TEST(TopicMatchesTest, SingleLevelWildcardExamples) {
  ExpectMatches({
      // 3.1.1 and 5.0 §4.7.1.3 non-normative comment
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      // 3.1.1 and 5.0 §4.7.1.3: "sport/+" does not match "sport" but does match "sport/"
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      // 3.1.1 and 5.0 §4.7.1.3 and §4.7.3: "/finance" matches "+/+" and "/+", but not "+"
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      // 3.1.1 and 5.0 §4.7.1.3 ("+/tennis/#" and "sport/+/player1" are valid)
      {"+/tennis/#", "sport/tennis/player1", true},
      {"+/tennis/#", "sport/tennis", true},
      {"+/tennis/#", "sport/golf", false},
      {"sport/+/player1", "sport/tennis/player1", true},
      {"sport/+/player1", "sport//player1", true},
      {"sport/+/player1", "sport/tennis/player2", false},
      {"sport/+/player1", "sport/player1", false},
      // Beyond the examples: "/+" vs "finance" (the leading '/' is a level of its own), and
      // '+' matching empty levels.
      {"/+", "finance", false},
      {"+", "finance", true},
      {"+", "/", false},
      {"+/+", "/", true},
      {"+/+", "a", false},
      {"+/+", "a/b/c", false},
      {"+/b", "/b", true},
      {"a/+", "a/b/c", false},
  });
}

TEST(TopicMatchesTest, LiteralLevelsMatchExactly) {
  ExpectMatches({
      // 3.1.1 and 5.0 §4.7.3: case-sensitive; a leading or trailing '/' makes a distinct name
      {"ACCOUNTS", "ACCOUNTS", true},
      {"ACCOUNTS", "Accounts", false},
      {"Accounts payable", "Accounts payable", true},
      {"/finance", "/finance", true},
      {"/finance", "finance", false},
      {"finance", "/finance", false},
      {"finance", "finance/", false},
      {"finance/", "finance", false},
      {"/", "/", true},
      {"/", "//", false},
      {"a//b", "a//b", true},
      {"a//b", "a/b", false},
      {"sport", "sport/tennis", false},
      {"sport/tennis", "sport", false},
      // 3.1.1 and 5.0 [MQTT-4.7.3-4]: no normalisation; bytes are compared as they are
      {"caf\xc3\xa9", "caf\xc3\xa9", true},
      {"caf\xc3\xa9", "cafe\xcc\x81", false},  // the same text, decomposed
  });
}

TEST(TopicMatchesTest, WildcardsAtTheStartDoNotMatchDollarTopics) {
  ExpectMatches({
      // 3.1.1 and 5.0 §4.7.2 non-normative comment, [MQTT-4.7.2-1]:
      // a subscription to "#" will not receive messages published to a topic beginning with $
      {"#", "$SYS", false},
      {"#", "$SYS/monitor/Clients", false},
      {"#", "$anything", false},
      // a subscription to "+/monitor/Clients" will not receive "$SYS/monitor/Clients"
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      // a subscription to "$SYS/#" will receive messages published to topics beginning "$SYS/"
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/#", "$SYS/", true},
      {"$SYS/#", "$SYS", true},
      // a subscription to "$SYS/monitor/+" will receive "$SYS/monitor/Clients"
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      // to see both kinds a client subscribes to "#" and "$SYS/#"
      {"#", "sport/tennis", true},
      {"$SYS/#", "sport/tennis", false},
      // Beyond the examples: only the first character of the name counts, and only a
      // wildcard in the filter's first level.
      {"+", "$SYS", false},
      {"+/+", "$SYS/x", false},
      {"+/#", "$SYS/x", false},
      {"a/+", "a/$x", true},
      {"a/#", "a/$x", true},
      {"+/$x", "a/$x", true},
      {"/#", "/$SYS", true},
      {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
      {"$SYS", "$SYS", true},
  });
}

// A matcher that splits both strings into levels, written as the rules read; used below to
// check TopicMatches on every pair of short strings.
std::vector<std::string_view> Levels(std::string_view topic) {
  std::vector<std::string_view> levels;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(topic.find('/', start), topic.size());
    levels.push_back(topic.substr(start, end - start));
    if (end == topic.size()) {
      return levels;
    }
    start = end + 1;
  }
}

bool MatchesByLevels(std::string_view filter, std::string_view name) {
  if (name.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  const std::vector<std::string_view> f = Levels(filter);
  const std::vector<std::string_view> n = Levels(name);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") {
      return true;  // this level and all below, including none (the parent rule)
    }
    if (i == n.size() || (f[i] != "+" && f[i] != n[i])) {
      return false;
    }
  }
  return f.size() == n.size();
}

TEST(TopicMatchesTest, AgreesWithLevelByLevelMatcher) {
  std::vector<std::string> filters;
  for (std::string& filter : AllStrings("ab/+#$", 4)) {
    if (ValidateTopicFilter(filter).has_value()) {
      filters.push_back(std::move(filter));
    }
  }
  const std::vector<std::string> names = AllStrings("ab/$", 4);
  int matched = 0;
  for (const std::string& filter : filters) {
    for (const std::string& name : names) {
      const bool expected = MatchesByLevels(filter, name);
      ASSERT_EQ(TopicMatches(filter, name), expected)
          << "filter \"" << filter << "\", name \"" << name << '"';
      matched += expected ? 1 : 0;
    }
  }
  EXPECT_GT(matched, 1000);  // the cases do exercise matches, not only mismatches
}

// ---------------------------------------------------------------------------------------------
// Shared subscriptions (MQTT 5.0 §4.8.2)

TEST(TopicSharedSubscriptionTest, SplitsGroupAndFilter) {
  struct Case {
    std::string_view filter;
    std::string_view group;
    std::string_view inner;
  };
  const std::vector<Case> cases = {
      // 5.0 §4.8.2 non-normative examples: two groups sharing "sport/tennis/+"
      {"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+"},
      {"$share/consumer2/sport/tennis/+", "consumer2", "sport/tennis/+"},
      // 5.0 §4.8.2 non-normative example: matches the same topics as "/finance"
      {"$share/consumer1//finance", "consumer1", "/finance"},
      // [MQTT-4.8.2-1], [MQTT-4.8.2-2]: any group of one or more characters other than
      // '/', '+' and '#'; any valid filter, wildcards and '$' included.
      {"$share/g/#", "g", "#"},
      {"$share/g/+", "g", "+"},
      {"$share/g//", "g", "/"},
      {"$share/g/$SYS/#", "g", "$SYS/#"},
      {"$share/$share/a", "$share", "a"},
      {"$share/a b/c", "a b", "c"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.filter);
    const auto parsed = ParseSharedSubscription(c.filter);
    ASSERT_TRUE(parsed.has_value()) << Describe(parsed.error());
    ASSERT_TRUE(parsed->has_value());
    const SharedSubscription& shared = **parsed;
    EXPECT_EQ(shared.group, c.group);
    EXPECT_EQ(shared.filter, c.inner);
    // Views into the argument, not copies.
    EXPECT_EQ(shared.group.data(), c.filter.data() + 7);
    EXPECT_EQ(shared.filter.data() + shared.filter.size(), c.filter.data() + c.filter.size());
  }
}

TEST(TopicSharedSubscriptionTest, InnerFilterMatchesLikeANonSharedOne) {
  // 5.0 §4.8.2 non-normative comment: "$share/consumer1/sport/tennis/+" matches the same topics
  // as a non-shared subscription to "sport/tennis/+".
  const auto parsed = ParseSharedSubscription("$share/consumer1/sport/tennis/+");
  ASSERT_TRUE(parsed.has_value() && parsed->has_value());
  EXPECT_TRUE(TopicMatches((*parsed)->filter, "sport/tennis/player1"));
  EXPECT_FALSE(TopicMatches((*parsed)->filter, "sport/tennis/player1/ranking"));
  // 5.0 §4.8.2: "$share/consumer1//finance" matches the same topics as "/finance".
  const auto finance = ParseSharedSubscription("$share/consumer1//finance");
  ASSERT_TRUE(finance.has_value() && finance->has_value());
  EXPECT_TRUE(TopicMatches((*finance)->filter, "/finance"));
  EXPECT_FALSE(TopicMatches((*finance)->filter, "finance"));
  // The $-rule applies to the inner filter: "$share/g/#" does not receive "$SYS/...".
  const auto all = ParseSharedSubscription("$share/g/#");
  ASSERT_TRUE(all.has_value() && all->has_value());
  EXPECT_FALSE(TopicMatches((*all)->filter, "$SYS/monitor/Clients"));
}

TEST(TopicSharedSubscriptionTest, OtherFiltersAreNotShared) {
  // Only a filter starting with exactly "$share/" is a shared subscription ([MQTT-4.8.2-1]).
  for (const std::string_view filter :
       {"sport/tennis/+"sv, "#"sv, "$SYS/#"sv, "$share"sv, "$sharex/g/a"sv, "$Share/g/a"sv,
        "$SHARE/g/a"sv, "share/g/a"sv, "/$share/g/a"sv, "+/g/a"sv, ""sv}) {
    const auto parsed = ParseSharedSubscription(filter);
    ASSERT_TRUE(parsed.has_value()) << '"' << filter << "\": " << Describe(parsed.error());
    EXPECT_FALSE(parsed->has_value()) << '"' << filter << '"';
  }
}

TEST(TopicSharedSubscriptionTest, MalformedSharedSubscriptionsAreRejected) {
  const std::vector<ValidityCase> cases = {
      // [MQTT-4.8.2-1]: the ShareName is at least one character long
      {"$share/", TopicError::kInvalidSharedSubscription},
      {"$share//", TopicError::kInvalidSharedSubscription},
      {"$share//sport/tennis/player1", TopicError::kInvalidSharedSubscription},
      // [MQTT-4.8.2-2]: the ShareName does not contain '+' or '#'
      {"$share/+/a", TopicError::kInvalidSharedSubscription},
      {"$share/#/a", TopicError::kInvalidSharedSubscription},
      {"$share/consumer+/a", TopicError::kInvalidSharedSubscription},
      {"$share/con#sumer/a", TopicError::kInvalidSharedSubscription},
      {"$share/#", TopicError::kInvalidSharedSubscription},
      // [MQTT-4.8.2-2]: the ShareName is followed by '/', and that by a Topic Filter
      {"$share/consumer1", TopicError::kInvalidSharedSubscription},
      {"$share/consumer1/", TopicError::kInvalidSharedSubscription},
      // The inner filter breaks a §4.7 rule: its own error
      {"$share/consumer1/sport/tennis#", TopicError::kMisplacedMultiLevelWildcard},
      {"$share/consumer1/sport/tennis/#/ranking", TopicError::kMisplacedMultiLevelWildcard},
      {"$share/consumer1/sport+", TopicError::kMisplacedSingleLevelWildcard},
      // [MQTT-4.7.3-2]: U+0000, in the group or in the filter
      {"$share/con\0sumer/a"sv, TopicError::kNullCharacter},
      {"$share/consumer1/a\0"sv, TopicError::kNullCharacter},
  };
  for (const ValidityCase& c : cases) {
    const auto parsed = ParseSharedSubscription(c.topic);
    EXPECT_EQ(parsed.has_value() ? "ok"sv : Describe(parsed.error()), Outcome(c.error))
        << '"' << c.topic << '"';
  }
}

TEST(TopicSharedSubscriptionTest, LimitsCountWholeLengthAndInnerLevels) {
  // "$share/g/a/b" is 12 bytes; its inner filter "a/b" has 2 levels.
  const auto check = [](const TopicLimits& limits) {
    const auto parsed = ParseSharedSubscription("$share/g/a/b", limits);
    return parsed.has_value() ? "ok"sv : Describe(parsed.error());
  };
  EXPECT_EQ(check({.max_length = 12}), "ok");
  EXPECT_EQ(check({.max_length = 11}), Outcome(TopicError::kTooLong));
  EXPECT_EQ(check({.max_levels = 2}), "ok");
  EXPECT_EQ(check({.max_levels = 1}), Outcome(TopicError::kTooManyLevels));
  // [MQTT-4.7.3-3] applies to the whole string, as the packet carries it.
  std::string filter = "$share/g/";
  filter.append(65535 - filter.size(), 'a');
  const auto longest = ParseSharedSubscription(filter);
  EXPECT_TRUE(longest.has_value() && longest->has_value());
  filter += 'a';
  const auto too_long = ParseSharedSubscription(filter);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(Describe(too_long.error()), Describe(TopicError::kTooLong));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(TopicErrorTest, DescriptionsAreDistinctAndNonEmpty) {
  const std::vector<TopicError> all = {
      TopicError::kEmpty,
      TopicError::kTooLong,
      TopicError::kTooManyLevels,
      TopicError::kWildcardInName,
      TopicError::kMisplacedMultiLevelWildcard,
      TopicError::kMisplacedSingleLevelWildcard,
      TopicError::kNullCharacter,
      TopicError::kInvalidSharedSubscription,
  };
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_FALSE(Describe(all[i]).empty());
    EXPECT_NE(Describe(all[i]), "ok");  // Outcome() uses "ok" for success
    for (std::size_t j = i + 1; j < all.size(); ++j) {
      EXPECT_NE(Describe(all[i]), Describe(all[j]));
    }
  }
}

}  // namespace
}  // namespace tinymq::mqtt
