#include "tinymq/auth/acl.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <limits>
#include <system_error>
#include <utility>

#include "tinymq/mqtt/topic.h"
#include "tinymq/util/check.h"

namespace tinymq::auth {

namespace acl_internal {

// The filters of one set of rules. A readwrite rule is in `read` and `write`. Every filter is a
// valid topic filter, but for its length (a substituted one may pass 65,535 bytes).
struct Rules {
  std::vector<std::string> deny;
  std::vector<std::string> read;
  std::vector<std::string> write;

  bool HasAllow() const { return !read.empty() || !write.empty(); }
  bool Empty() const { return deny.empty() && !HasAllow(); }
};

}  // namespace acl_internal

namespace {

using acl_internal::Rules;

enum Access : std::uint8_t { kRead = 1, kWrite = 2, kReadWrite = kRead | kWrite, kDeny = 4 };

void AddRule(Rules& rules, const std::string& filter, std::uint8_t access) {
  if (access == kDeny) {
    rules.deny.push_back(filter);
    return;
  }
  if ((access & kRead) != 0) {
    rules.read.push_back(filter);
  }
  if ((access & kWrite) != 0) {
    rules.write.push_back(filter);
  }
}

std::optional<std::uint8_t> ParseAccess(std::string_view word) {
  if (word == "read") {
    return kRead;
  }
  if (word == "write") {
    return kWrite;
  }
  if (word == "readwrite") {
    return kReadWrite;
  }
  if (word == "deny") {
    return kDeny;
  }
  return std::nullopt;
}

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsBlank(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits "word rest" at the first blank: {word, rest trimmed}.
std::pair<std::string_view, std::string_view> SplitWord(std::string_view s) {
  std::size_t end = 0;
  while (end < s.size() && !IsBlank(s[end])) {
    ++end;
  }
  return {s.substr(0, end), Trim(s.substr(end))};
}

bool HasToken(std::string_view filter) {
  return filter.find("%c") != std::string_view::npos || filter.find("%u") != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Filter algebra. A filter is a sequence of levels, each a literal, '+', or a final '#'. The set
// of names a filter matches: names with exactly as many levels (no '#'), or at least as many
// levels before the '#' ('#' includes the parent: "a/#" matches "a"), each level matched ('+' any
// text, a literal itself), excluding names starting with '$' when the filter starts with a
// wildcard [MQTT-4.7.2-1]. Valid names are never empty, so "#" and "+/#" match the same names.

enum class Kind : std::uint8_t { kLiteral, kPlus, kHash, kEnd };

struct Level {
  Kind kind = Kind::kEnd;
  std::string_view text;
};

bool IsWildcard(const Level& l) { return l.kind == Kind::kPlus || l.kind == Kind::kHash; }
bool IsDollar(const Level& l) { return l.kind == Kind::kLiteral && l.text.starts_with('$'); }

// The levels of one filter, left to right, then kEnd for ever.
class Levels {
 public:
  explicit Levels(std::string_view filter) : rest_(filter), done_(filter.empty()) {}

  Level Next() {
    if (done_) {
      return {};
    }
    const std::size_t slash = rest_.find('/');
    const std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
    } else {
      rest_.remove_prefix(slash + 1);
    }
    if (level == "+") {
      return {Kind::kPlus, level};
    }
    if (level == "#") {
      return {Kind::kHash, level};
    }
    return {Kind::kLiteral, level};
  }

 private:
  std::string_view rest_;
  bool done_;
};

// The levels of the filter matching exactly the names both `a` and `b` match, one level at a
// time, without building it. REQUIRES: Overlap(a, b).
class Intersection {
 public:
  Intersection(std::string_view a, std::string_view b) : a_(a), b_(b) {}

  Level Next() {
    if (done_) {
      return {};
    }
    // Past its '#', a filter accepts any further level, or none.
    const Level x = a_hash_ ? Level{Kind::kHash, "#"} : a_.Next();
    const Level y = b_hash_ ? Level{Kind::kHash, "#"} : b_.Next();
    a_hash_ = x.kind == Kind::kHash;
    b_hash_ = y.kind == Kind::kHash;
    // The narrower of the two: '#' is wider than anything, '+' than a literal. Equal literals, or
    // both ending, are the remaining cases the precondition allows.
    const bool y_wider = x.kind != Kind::kHash && (y.kind == Kind::kHash || y.kind == Kind::kPlus);
    const Level out = y_wider ? x : y;
    done_ = out.kind == Kind::kHash || out.kind == Kind::kEnd;
    return out;
  }

 private:
  Levels a_;
  Levels b_;
  bool a_hash_ = false;
  bool b_hash_ = false;
  bool done_ = false;
};

// True when every name `inner` matches, `outer` matches too. `Inner` is Levels or Intersection.
template <typename Inner>
bool Covers(std::string_view outer, Inner inner) {
  Levels r(outer);
  {
    Levels r0 = r;
    Inner f0 = inner;
    // [MQTT-4.7.2-1]: a rule starting with a wildcard sees none of "$SYS/...", which is all a
    // filter starting with "$SYS" matches.
    if (IsWildcard(r0.Next()) && IsDollar(f0.Next())) {
      return false;
    }
  }
  for (std::size_t i = 0;; ++i) {
    const Level x = r.Next();
    const Level y = inner.Next();
    if (x.kind == Kind::kHash) {
      return true;  // whatever `inner` has left, even nothing ("a/#" covers "a")
    }
    if (y.kind == Kind::kHash) {
      // `inner` also matches the names ending here (its parent level) and any deeper ones: only a
      // '#' here covers that, except at the very start, where no name ends ("+/#" covers "#").
      return i == 0 && x.kind == Kind::kPlus && r.Next().kind == Kind::kHash;
    }
    if (x.kind == Kind::kEnd || y.kind == Kind::kEnd) {
      return x.kind == y.kind;
    }
    if (y.kind == Kind::kPlus ? x.kind != Kind::kPlus
                              : x.kind == Kind::kLiteral && x.text != y.text) {
      return false;
    }
  }
}

// True when some valid name matches both `a` and `b`.
bool Overlap(std::string_view a, std::string_view b) {
  Levels x(a);
  Levels y(b);
  bool first_level_empty = false;  // the intersection's first level is the literal ""
  for (std::size_t i = 0;; ++i) {
    const Level p = x.Next();
    const Level q = y.Next();
    if (i == 0 && ((IsWildcard(p) && IsDollar(q)) || (IsWildcard(q) && IsDollar(p)))) {
      return false;  // [MQTT-4.7.2-1]
    }
    // The intersection has no more levels than `i` after this: the one name it can match is "",
    // which is not a valid name, when that is its only level and that level is empty.
    const bool only_empty_name = i == 1 && first_level_empty;
    if (p.kind == Kind::kHash || q.kind == Kind::kHash) {
      const Level& other = p.kind == Kind::kHash ? q : p;
      return !(other.kind == Kind::kEnd && only_empty_name);
    }
    if (p.kind == Kind::kEnd || q.kind == Kind::kEnd) {
      return p.kind == q.kind && !only_empty_name;
    }
    if (p.kind == Kind::kLiteral && q.kind == Kind::kLiteral && p.text != q.text) {
      return false;
    }
    if (i == 0) {
      first_level_empty = (p.kind == Kind::kLiteral && p.text.empty()) ||
                          (q.kind == Kind::kLiteral && q.text.empty());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Substitution.

// An allow pattern applies only when the value is a plain level: anything else would let the
// client choose a wider rule ("+", "#", "a/#", "a/b" against "dev/%c/#"), or an empty level.
bool SafeForAllow(std::string_view value) {
  return !value.empty() && value.find_first_of(std::string_view("+#/\0", 4)) == value.npos;
}

// A substituted filter may be longer than a topic can be; it then matches nothing, harmlessly.
constexpr mqtt::TopicLimits kUnlimited{.max_length = std::numeric_limits<std::size_t>::max(),
                                       .max_levels = 0};

// `pattern` with %c and %u replaced by `client_id` and `username` into `out`. False when the rule
// does not apply to this client: an allow rule with an unsafe value, an allow rule the value makes
// start with '$', or a deny rule no valid topic can match (its value holds '+', '#' or U+0000,
// which match only themselves, or it comes out empty).
bool Substitute(std::string_view pattern, bool deny, std::string_view client_id,
                std::string_view username, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() &&
        (pattern[i + 1] == 'c' || pattern[i + 1] == 'u')) {
      const std::string_view value = pattern[i + 1] == 'c' ? client_id : username;
      if (deny ? value.find_first_of(std::string_view("+#\0", 3)) != value.npos
               : !SafeForAllow(value)) {
        return false;
      }
      out.append(value);
      ++i;
    } else {
      out.push_back(pattern[i]);
    }
  }
  if (out.empty()) {
    return false;
  }
  if (!deny && out.front() == '$' && pattern.front() != '$') {
    return false;  // "%c/#" for client "$SYS" must not reach the broker's own topics
  }
  TINYMQ_DCHECK(mqtt::ValidateTopicFilter(out, kUnlimited));
  return true;
}

std::string Lowercased(std::string s) {
  if (!s.empty()) {
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  }
  return s;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

bool FilterCovers(std::string_view outer, std::string_view inner) noexcept {
  return Covers(outer, Levels(inner));
}

bool FiltersOverlap(std::string_view a, std::string_view b) noexcept { return Overlap(a, b); }

// ---------------------------------------------------------------------------------------------
// ClientAcl

ClientAcl::ClientAcl(Parts parts) noexcept : parts_(std::move(parts)) {}

bool ClientAcl::DeniesAll() const noexcept {
  for (const auto& part : parts_) {
    if (part != nullptr && part->HasAllow()) {
      return false;
    }
  }
  return true;
}

namespace {

// True when one of the filters of `list` in `parts` satisfies `pred`.
template <typename Pred>
bool AnyRule(const ClientAcl::Parts& parts, std::vector<std::string> Rules::*list, Pred pred) {
  for (const auto& part : parts) {
    if (part == nullptr) {
      continue;
    }
    for (const std::string& filter : (*part).*list) {
      if (pred(std::string_view(filter))) {
        return true;
      }
    }
  }
  return false;
}

bool Allowed(const ClientAcl::Parts& parts, std::vector<std::string> Rules::*list,
             std::string_view topic) {
  const auto matches = [topic](std::string_view filter) {
    return mqtt::TopicMatches(filter, topic);
  };
  // Allow rules first: a topic no rule allows needs no look at the deny rules.
  return AnyRule(parts, list, matches) && !AnyRule(parts, &Rules::deny, matches);
}

}  // namespace

bool ClientAcl::MayPublish(std::string_view topic) const noexcept {
  return Allowed(parts_, &Rules::write, topic);
}

bool ClientAcl::MayReceive(std::string_view topic) const noexcept {
  return Allowed(parts_, &Rules::read, topic);
}

SubscribeAccess ClientAcl::MaySubscribe(std::string_view filter) const noexcept {
  if (AnyRule(parts_, &Rules::deny,
              [filter](std::string_view deny) { return Covers(deny, Levels(filter)); })) {
    return SubscribeAccess::kDeny;  // every topic of the filter is denied
  }
  const bool covered = AnyRule(parts_, &Rules::read, [filter](std::string_view read) {
    return Covers(read, Levels(filter));
  });
  if (covered && !AnyRule(parts_, &Rules::deny,
                          [filter](std::string_view deny) { return Overlap(deny, filter); })) {
    return SubscribeAccess::kAllow;
  }
  // Granted when some read rule grants some topic of the filter that no single deny rule takes
  // back. Where only several deny rules together take it all back, this says kAllowFiltered and
  // MayReceive() drops every message: correct, if not as precise.
  const bool some = AnyRule(parts_, &Rules::read, [this, filter](std::string_view read) {
    return Overlap(read, filter) &&
           !AnyRule(parts_, &Rules::deny, [read, filter](std::string_view deny) {
             return Covers(deny, Intersection(read, filter));
           });
  });
  return some ? SubscribeAccess::kAllowFiltered : SubscribeAccess::kDeny;
}

// ---------------------------------------------------------------------------------------------
// AclFile

util::Result<AclFile, std::string> AclFile::Parse(std::string_view text) try {
  if (text.starts_with("\xEF\xBB\xBF")) {  // a UTF-8 byte order mark, as some editors write
    text.remove_prefix(3);
  }
  Rules anonymous;
  Rules patterns;
  std::unordered_map<std::string, Rules, StringHash, std::equal_to<>> users;
  Rules* current = &anonymous;  // where `topic` rules go
  AclFile file;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const std::size_t eol = text.find('\n');
    const std::string_view line = Trim(text.substr(0, eol));  // the trim takes CRLF's '\r'
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const auto fail = [number](const std::string& why) {
      return util::Unexpected("line " + std::to_string(number) + ": " + why);
    };
    const auto [keyword, rest] = SplitWord(line);
    if (keyword == "user") {
      if (rest.empty()) {
        return fail("'user' without a name");
      }
      current = &users[std::string(rest)];
      continue;
    }
    if (keyword != "topic" && keyword != "pattern") {
      return fail("unknown keyword '" + std::string(keyword) +
                  "' (expected user, topic or pattern)");
    }
    if (rest.empty()) {
      return fail("'" + std::string(keyword) + "' without a topic filter");
    }
    // "topic [access] filter": the filter is the rest of the line, spaces included. One word alone
    // is the filter, unless it is an access word: Mosquitto reads "topic deny" as readwrite on the
    // topic "deny", which turns an operator's slip into a grant.
    auto [word, filter] = SplitWord(rest);
    std::uint8_t access = kReadWrite;
    if (filter.empty()) {
      filter = word;
      if (ParseAccess(word)) {
        return fail("'" + std::string(keyword) + " " + std::string(word) +
                    "' without a topic filter (for a topic of that name, write '" +
                    std::string(keyword) + " readwrite " + std::string(word) + "')");
      }
    } else if (const std::optional<std::uint8_t> a = ParseAccess(word); a) {
      access = *a;
    } else {
      return fail("unknown access '" + std::string(word) +
                  "' (expected read, write, readwrite or deny)");
    }
    if (auto valid = mqtt::ValidateTopicFilter(filter); !valid) {
      return fail("invalid topic filter '" + std::string(filter) +
                  "': " + std::string(mqtt::Describe(valid.error())));
    }
    ++file.rule_count_;
    if (keyword == "topic") {
      AddRule(*current, std::string(filter), access);
    } else if (HasToken(filter)) {
      file.templates_.push_back(Pattern{std::string(filter), access});
    } else {
      AddRule(patterns, std::string(filter), access);
    }
  }
  const auto share = [](Rules& rules) -> std::shared_ptr<const Rules> {
    return rules.Empty() ? nullptr : std::make_shared<const Rules>(std::move(rules));
  };
  file.anonymous_ = share(anonymous);
  file.patterns_ = share(patterns);
  file.users_.reserve(users.size());
  for (auto& [name, rules] : users) {
    file.users_.emplace(name, share(rules));  // null for a user without rules: still counted
  }
  file.deny_all_ = std::make_shared<const ClientAcl>(ClientAcl::Parts{});
  return file;
} catch (const std::exception& e) {  // bad_alloc on a huge file; the contract is: no throw
  return util::Unexpected(std::string(e.what()));
}

util::Result<AclFile, std::string> AclFile::Load(const std::string& path) try {
  const auto cannot_read = [&path](int error) {
    return util::Unexpected(path + ": cannot read: " +
                            Lowercased(std::error_code(error, std::generic_category()).message()));
  };
  const std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return cannot_read(errno);
  }
  std::string text;
  char chunk[4096];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) {
    text.append(chunk, n);
  }
  if (std::ferror(f.get())) {  // e.g. EISDIR: fopen() succeeds on a directory, fread() fails
    return cannot_read(errno);
  }
  util::Result<AclFile, std::string> file = Parse(text);
  if (!file) {
    return util::Unexpected(path + ": " + file.error());
  }
  return file;
} catch (const std::exception& e) {  // bad_alloc while reading: the contract is: no throw
  return util::Unexpected(path + ": " + e.what());
}

std::shared_ptr<const ClientAcl> AclFile::For(std::string_view client_id,
                                              std::optional<std::string_view> username) const {
  ClientAcl::Parts parts;
  const bool anonymous = !username || username->empty();
  if (anonymous) {
    parts[0] = anonymous_;
  } else if (auto it = users_.find(*username); it != users_.end()) {
    parts[0] = it->second;
  }
  parts[1] = patterns_;
  if (!templates_.empty()) {
    Rules own;
    std::string filter;
    const std::string_view user = anonymous ? std::string_view() : *username;
    for (const Pattern& p : templates_) {
      if (Substitute(p.filter, p.access == kDeny, client_id, user, filter)) {
        AddRule(own, filter, p.access);
      }
    }
    if (!own.Empty()) {
      parts[2] = std::make_shared<const Rules>(std::move(own));
    }
  }
  const auto has_allow = [](const auto& part) { return part != nullptr && part->HasAllow(); };
  if (!has_allow(parts[0]) && !has_allow(parts[1]) && !has_allow(parts[2])) {
    return deny_all_;
  }
  return std::make_shared<const ClientAcl>(std::move(parts));
}

}  // namespace tinymq::auth
