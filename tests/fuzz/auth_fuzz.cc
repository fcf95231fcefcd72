// libFuzzer target for the auth layer's file formats: ACL files (auth::AclFile) and password files
// (auth::PasswordFile).
//
// Input: one mode byte, then the file's text. 'P': a password file; anything else: an ACL file.
//
// Properties, each checked with Check() (aborts, so libFuzzer keeps the input):
//  ACL files
//  1. Parse answers, never crashes; an error reads "line N: ..." with N a line of the text.
//  2. A file without rules lets nobody do anything (every view DeniesAll()).
//  3. For every client (fixed ids and usernames, hostile ones, words of the input), for every
//     sample filter F (fixed, words of the input) and sample topic T (fixed, words of the input,
//     names built from each F): MaySubscribe(F) == kAllow implies MayReceive(T) for each T that F
//     matches; kDeny implies !MayReceive(T) for each; a topic name used as a filter gets exactly
//     MayReceive's answer (kAllow or kDeny, never kAllowFiltered); DeniesAll() means no to all.
//  4. No widening: a client id holding '+', '#' and '/' gets, on every topic that does not hold a
//     fresh id, exactly what a client with that fresh id gets (and likewise a username, when the
//     file cannot name it): its allow patterns do not apply, its deny patterns match nothing.
//  5. MayPublish, MayReceive and MaySubscribe allocate nothing (operator new is counted).
//  6. The filter algebra agrees with mqtt::TopicMatches: FilterCovers(A, B) and B matching T imply
//     A matches T; A and B both matching T imply FiltersOverlap(A, B); FilterCovers(A, T) for a
//     name T is TopicMatches(A, T).
//  Password files
//  7. Parse answers; a parsed file with a user added by WithUser parses and contains that user
//     (size + 1), and removing the user again gives the original size.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/counting_new.h"
#include "tinymq/auth/acl.h"
#include "tinymq/auth/password_file.h"
#include "tinymq/mqtt/topic.h"

using fuzz_alloc::allocations;
using fuzz_alloc::counting;

namespace tinymq::auth {
namespace {

constexpr std::size_t kMaxWords = 12;

void Check(bool ok, const char* what, std::string_view a = {}, std::string_view b = {},
           std::string_view c = {}) {
  if (ok) {
    return;
  }
  std::fprintf(stderr, "auth_fuzz: %s ['%.*s' '%.*s' '%.*s']\n", what, static_cast<int>(a.size()),
               a.data(), static_cast<int>(b.size()), b.data(), static_cast<int>(c.size()),
               c.data());
  std::abort();
}

// The blank-separated words of `text`, at most kMaxWords distinct ones.
std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size() && out.size() < kMaxWords) {
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
      ++i;
    }
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\n' &&
           text[i] != '\r') {
      ++i;
    }
    if (i > start) {
      std::string word(text.substr(start, i - start));
      bool seen = false;
      for (const std::string& w : out) {
        seen = seen || w == word;
      }
      if (!seen) {
        out.push_back(std::move(word));
      }
    }
  }
  return out;
}

bool IsName(std::string_view s) { return static_cast<bool>(mqtt::ValidateTopicName(s)); }
bool IsFilter(std::string_view s) { return static_cast<bool>(mqtt::ValidateTopicFilter(s)); }

// Topic names `filter` matches: its wildcards replaced by `level`, '#' also by nothing.
void Instances(std::string_view filter, std::string_view level, std::vector<std::string>& out) {
  std::string plain;
  std::string deeper;
  bool hash = false;
  std::size_t i = 0;
  while (true) {
    const std::size_t slash = filter.find('/', i);
    const std::string_view l = filter.substr(i, slash == filter.npos ? filter.npos : slash - i);
    const bool first = i == 0;
    if (l == "#") {
      hash = true;
      break;
    }
    const std::string_view text = l == "+" ? level : l;
    plain.append(first ? "" : "/").append(text);
    if (slash == filter.npos) {
      break;
    }
    i = slash + 1;
  }
  if (hash) {
    deeper = plain.empty() ? std::string(level) : plain + "/" + std::string(level);
    out.push_back(deeper);
    out.push_back(deeper + "/" + std::string(level));
  }
  out.push_back(plain);  // for "a/#", the parent level "a"
}

void CheckAlgebra(const std::vector<std::string>& filters, const std::vector<std::string>& topics) {
  for (const std::string& a : filters) {
    for (const std::string& t : topics) {
      Check(FilterCovers(a, t) == mqtt::TopicMatches(a, t), "FilterCovers(A, name) != match", a, t);
    }
    for (const std::string& b : filters) {
      const bool covers = FilterCovers(a, b);
      const bool overlap = FiltersOverlap(a, b);
      Check(overlap == FiltersOverlap(b, a), "FiltersOverlap is not symmetric", a, b);
      Check(!covers || overlap, "covers without overlapping", a, b);
      for (const std::string& t : topics) {
        const bool in_a = mqtt::TopicMatches(a, t);
        const bool in_b = mqtt::TopicMatches(b, t);
        Check(!covers || !in_b || in_a, "FilterCovers(A, B) but B matches T and A does not", a, b,
              t);
        Check(!(in_a && in_b) || overlap, "A and B match T but FiltersOverlap is false", a, b, t);
      }
    }
  }
}

void CheckView(const ClientAcl& acl, const std::vector<std::string>& filters,
               const std::vector<std::string>& topics, bool empty_file) {
  std::vector<bool> receive(topics.size());
  counting = true;
  allocations = 0;
  const bool denies_all = acl.DeniesAll();
  Check(!empty_file || denies_all, "a file without rules allows something");
  for (std::size_t i = 0; i < topics.size(); ++i) {
    receive[i] = acl.MayReceive(topics[i]);
    const bool publish = acl.MayPublish(topics[i]);
    const SubscribeAccess as_filter = acl.MaySubscribe(topics[i]);
    if (denies_all || empty_file) {
      Check(!receive[i] && !publish && as_filter == SubscribeAccess::kDeny, "deny-all allows",
            topics[i]);
    }
    Check(as_filter != SubscribeAccess::kAllowFiltered, "a topic name as filter: filtered",
          topics[i]);
    Check((as_filter == SubscribeAccess::kAllow) == receive[i],
          "a topic name as filter disagrees with MayReceive", topics[i]);
  }
  for (const std::string& f : filters) {
    const SubscribeAccess s = acl.MaySubscribe(f);
    Check(!(denies_all || empty_file) || s == SubscribeAccess::kDeny, "deny-all subscribes", f);
    for (std::size_t i = 0; i < topics.size(); ++i) {
      if (!mqtt::TopicMatches(f, topics[i])) {
        continue;
      }
      Check(s != SubscribeAccess::kAllow || receive[i], "kAllow but MayReceive is false", f,
            topics[i]);
      Check(s != SubscribeAccess::kDeny || !receive[i], "kDeny but MayReceive is true", f,
            topics[i]);
    }
  }
  counting = false;
  Check(allocations == 0, "a check allocated");
}

// Property 4: `weird` and `fresh` clients agree on every topic that does not hold `fresh`.
void CheckNoWidening(const std::shared_ptr<const ClientAcl>& weird,
                     const std::shared_ptr<const ClientAcl>& fresh, std::string_view marker,
                     const std::vector<std::string>& topics) {
  for (const std::string& t : topics) {
    if (t.find(marker) != std::string::npos) {
      continue;
    }
    Check(weird->MayPublish(t) == fresh->MayPublish(t), "hostile value changed MayPublish", t);
    Check(weird->MayReceive(t) == fresh->MayReceive(t), "hostile value changed MayReceive", t);
  }
}

void FuzzAcl(std::string_view text) {
  const util::Result<AclFile, std::string> file = AclFile::Parse(text);
  if (!file) {
    const std::string& e = file.error();
    Check(e.starts_with("line "), "error without a line", e);
    const std::size_t n = std::strtoul(e.c_str() + 5, nullptr, 10);
    std::size_t lines = 1;
    for (const char c : text) {
      lines += c == '\n' ? 1 : 0;
    }
    Check(n >= 1 && n <= lines, "error names a line the text does not have", e);
    return;
  }
  const bool empty_file = file->rule_count() == 0;

  const std::vector<std::string> words = Words(text);
  std::vector<std::string> filters = {"#", "+", "+/+", "a/#", "$SYS/#", "/#", "a/+/c", "+/b"};
  std::vector<std::string> topics = {"a", "a/b", "a/b/c", "$SYS/x", "/", "/a", "x/b"};
  for (const std::string& w : words) {
    if (IsFilter(w) && filters.size() < 16) {
      filters.push_back(w);
    }
  }
  for (const std::string& f : std::vector<std::string>(filters)) {
    std::vector<std::string> instances;
    Instances(f, "x", instances);
    Instances(f, words.empty() ? "y" : words.front(), instances);
    for (std::string& t : instances) {
      if (IsName(t) && topics.size() < 40) {
        topics.push_back(std::move(t));
      }
    }
  }
  for (const std::string& w : words) {
    if (IsName(w) && topics.size() < 48) {
      topics.push_back(w);
    }
  }
  CheckAlgebra(filters, topics);

  std::vector<std::optional<std::string>> users = {std::nullopt, "", "u", "#", "a/b", "$SYS"};
  std::vector<std::string> ids = {"c", "+/x", "$SYS", ""};
  for (std::size_t i = 0; i < words.size() && i < 2; ++i) {
    users.emplace_back(words[i]);
    ids.push_back(words[i]);
  }
  // After "user": the names the file gives rules to.
  for (std::size_t at = text.find("user "); at != text.npos; at = text.find("user ", at + 1)) {
    const std::size_t eol = text.find('\n', at);
    std::string_view name = text.substr(at + 5, eol == text.npos ? eol : eol - at - 5);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ' || name.back() == '\t')) {
      name.remove_suffix(1);
    }
    if (users.size() < 12) {
      users.emplace_back(std::string(name));
    }
  }
  for (const auto& user : users) {
    for (const std::string& id : ids) {
      const std::optional<std::string_view> u =
          user ? std::optional<std::string_view>(*user) : std::nullopt;
      const std::shared_ptr<const ClientAcl> acl = file->For(id, u);
      Check(acl != nullptr, "For() gave null");
      CheckView(*acl, filters, topics, empty_file);
    }
  }

  // Property 4, with values holding every character that could widen a rule.
  constexpr std::string_view kHostile = "+#/";
  constexpr std::string_view kFresh = "\x01z";
  if (text.find(kFresh) == text.npos) {
    for (const auto& user : users) {
      const std::optional<std::string_view> u =
          user ? std::optional<std::string_view>(*user) : std::nullopt;
      CheckNoWidening(file->For(std::string(kHostile) + "a", u), file->For(kFresh, u), kFresh,
                      topics);
    }
    if (text.find(kHostile) == text.npos) {
      CheckNoWidening(file->For("c", std::string(kHostile) + "a"), file->For("c", kFresh), kFresh,
                      topics);
    }
  }
}

void FuzzPasswords(std::string_view text) {
  const util::Result<PasswordFile, std::string> file = PasswordFile::Parse(text);
  if (!file) {
    Check(file.error().starts_with("line "), "error without a line", file.error());
    return;
  }
  // A well-formed hash, one iteration: nothing is derived here, the format is what is checked.
  static const std::string kHash =
      "$7$1$AAAAAAAAAAAAAAAA$" + std::string(84, 'A') + "AA==";  // 12-byte salt, 64-byte hash
  Check(ParseHash(kHash).has_value(), "the test hash does not parse");
  const std::string user = "fuzz-user-" + std::to_string(file->size());
  if (file->Contains(user)) {
    return;
  }
  const util::Result<std::string, std::string> added = WithUser(text, user, kHash);
  Check(added.has_value(), "WithUser refused a parsed file");
  const util::Result<PasswordFile, std::string> again = PasswordFile::Parse(*added);
  Check(again.has_value(), "WithUser made a file that does not parse", *added);
  Check(again->Contains(user) && again->size() == file->size() + 1, "WithUser lost a user");
  const util::Result<std::string, std::string> removed = WithUser(*added, user, "");
  Check(removed.has_value(), "WithUser could not remove the user it added");
  const util::Result<PasswordFile, std::string> back = PasswordFile::Parse(*removed);
  Check(back.has_value() && back->size() == file->size() && !back->Contains(user),
        "removing the added user did not give the file back");
}

}  // namespace
}  // namespace tinymq::auth

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 2048) {  // the checks multiply rules, clients, filters and topics
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 'P') {
    tinymq::auth::FuzzPasswords(text);
  } else {
    tinymq::auth::FuzzAcl(text);
  }
  return 0;
}
