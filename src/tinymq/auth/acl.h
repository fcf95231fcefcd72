#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinymq/util/result.h"

// ACL files: who may publish, subscribe to and receive which topics, in Mosquitto's `acl_file`
// format, so that an existing file works here unchanged (docs/acl.md is the operator's guide):
//
//   # clients without a username
//   topic read $SYS/#
//   user roger                       # the rest of the line is the name (spaces allowed)
//   topic foo/bar                    # no access word: readwrite
//   topic deny foo/bar/secret        # a matching deny always wins over read/write rules
//   pattern write dev/%c/state       # every client; %c = its client id, %u = its username
//
// Access words: read, write, readwrite, deny. `topic` rules before any `user` line are the
// anonymous client's, after `user X` they are X's (several blocks for one user add up); `pattern`
// rules apply to every client wherever they stand. %c and %u are substituted in `pattern` rules
// only (also inside a level: "dev-%c"), never in `topic` rules.
//
// What a client may do, once a file is loaded (no file = no ACL, which the broker handles):
//  - the rules that apply: its user's `topic` rules (the anonymous ones when it has no username or
//    an empty one), plus every `pattern` rule after substitution;
//  - publish T:   a write/readwrite rule matches T and no deny rule matches T;
//  - receive T:   a read/readwrite rule matches T and no deny rule matches T;
//  - subscribe F: SubscribeAccess below. F is the filter without "$share/{group}/": the broker
//    strips a shared subscription's prefix and passes SharedSubscription::filter.
// Matching is MQTT's (mqtt::TopicMatches): a rule starting with '+' or '#' does not match a topic
// starting with '$' [MQTT-4.7.2-1], deny rules included; "deny $SYS/#" must be written out.
//
// Client ids and usernames are chosen by the client, so substitution never widens a rule:
//  - an allow pattern does not apply to a client whose substituted value is empty, contains '+',
//    '#', '/' or U+0000, or starts with '$' at the very start of the filter;
//  - a deny pattern always applies, its value taken literally, byte for byte: '/' in the value
//    matches '/' in the topic, and '+'/'#' match only themselves (so never a valid topic).
//
// Threading: Immutable after construction; safe to share across threads.
// Lifetime:  a ClientAcl keeps what it needs (shared, immutable) and outlives the AclFile that
//            made it; a reloaded file does not change the views clients already hold.
// Errors:    Parse and Load return "line N: ..." (Load: "<path>: line N: ..." or
//            "<path>: cannot read: ..."); nothing throws. For() may throw std::bad_alloc, as any
//            allocation on a worker (fatal there).

namespace tinymq::auth {

namespace acl_internal {
struct Rules;  // the filters of one set of rules, by access (acl.cc)
}  // namespace acl_internal

// What a SUBSCRIBE to a filter F may do.
enum class SubscribeAccess : std::uint8_t {
  // Refused (SUBACK 0x87 Not authorized): no topic matching F can ever be received. Either no
  // read rule matches any topic of F, or for each read rule that does, one deny rule matches all
  // the topics the two have in common (one deny rule covering F, for instance). Only where several
  // deny rules together take everything back is the answer kAllowFiltered instead.
  kDeny,
  // Granted, and every message matching F may be delivered: one read rule covers F and no deny
  // rule matches any topic of F. No per-message check is needed.
  kAllow,
  // Granted, but some topics of F may not be received (F is only partly covered, or a deny rule
  // overlaps it): the broker checks MayReceive() for each message delivered, retained ones too.
  kAllowFiltered,
};

// One client's view of an AclFile, resolved once at CONNECT (For()): the substitution is done,
// and the calls below neither substitute nor allocate. Each is a linear scan of the rules that
// apply to the client, with mqtt::TopicMatches.
//
// Threading: Immutable after construction; safe to share across threads.
// Lifetime:  owns (shares) everything it uses; the views passed in are not kept.
// Errors:    none; the answers are booleans and SubscribeAccess.
class ClientAcl {
 public:
  // REQUIRES: mqtt::ValidateTopicName(topic) succeeds.
  [[nodiscard]] bool MayPublish(std::string_view topic) const noexcept;
  // REQUIRES: mqtt::ValidateTopicName(topic) succeeds.
  [[nodiscard]] bool MayReceive(std::string_view topic) const noexcept;
  // REQUIRES: mqtt::ValidateTopicFilter(filter) succeeds; a shared subscription is passed as its
  //           inner filter (SharedSubscription::filter).
  [[nodiscard]] SubscribeAccess MaySubscribe(std::string_view filter) const noexcept;
  // True when no rule allows this client anything: every answer is "no".
  [[nodiscard]] bool DeniesAll() const noexcept;

  // Made by AclFile::For(); public for std::make_shared. Null parts are skipped.
  using Parts = std::array<std::shared_ptr<const acl_internal::Rules>, 3>;
  explicit ClientAcl(Parts parts) noexcept;

 private:
  // Const after construction: the user's (or anonymous) topic rules, the patterns without %c/%u,
  // the substituted patterns of this client.
  Parts parts_;
};

// A parsed ACL file.
//
// Threading: Immutable after construction; safe to share across threads (For() is const).
// Lifetime:  see ClientAcl.
// Errors:    Parse/Load as in the file comment above.
class AclFile {
 public:
  // `text`: the file's contents. Errors, each "line N: " and then: unknown keyword, unknown
  // access word, a rule without a filter, an invalid filter (mqtt::ValidateTopicFilter's reason),
  // `user` without a name.
  static util::Result<AclFile, std::string> Parse(std::string_view text);
  // Reads and parses the file at `path`; errors start with "<path>: ".
  static util::Result<AclFile, std::string> Load(const std::string& path);

  // The rules of a client with this client id and username (nullopt or empty: anonymous),
  // resolved. A client nothing is allowed to gets a shared deny-all view (DeniesAll()).
  [[nodiscard]] std::shared_ptr<const ClientAcl> For(
      std::string_view client_id, std::optional<std::string_view> username) const;

  // Rules read (topic and pattern lines), and distinct users named by `user` lines.
  [[nodiscard]] std::size_t rule_count() const noexcept { return rule_count_; }
  [[nodiscard]] std::size_t user_count() const noexcept { return users_.size(); }

 private:
  struct Pattern {  // a pattern rule holding %c or %u, substituted by For()
    std::string filter;
    std::uint8_t access = 0;  // acl.cc's Access
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  // Const after construction.
  std::unordered_map<std::string, std::shared_ptr<const acl_internal::Rules>, StringHash,
                     std::equal_to<>>
      users_;                                             // `topic` rules per user
  std::shared_ptr<const acl_internal::Rules> anonymous_;  // `topic` rules before any `user`
  std::shared_ptr<const acl_internal::Rules> patterns_;   // `pattern` rules without %c/%u
  std::vector<Pattern> templates_;                        // `pattern` rules with %c or %u
  std::shared_ptr<const ClientAcl> deny_all_;
  std::size_t rule_count_ = 0;
};

// Filter algebra over valid topic filters (no "$share/"), with MQTT's matching rules, '$' ones
// included. Exposed for tests and the fuzz target; allocation-free.
//
// True when every topic name `inner` matches is matched by `outer` too: "a/#" covers "a/b/+",
// "+/#" covers "#", "a/+" does not cover "a/#", "#" does not cover "$SYS/#". Exact, except that it
// may answer false where a filter's only extra names are invalid ones (""): "/+/#" covers "/#".
[[nodiscard]] bool FilterCovers(std::string_view outer, std::string_view inner) noexcept;
// True when some valid topic name matches both filters: "a/+" and "+/b" (at "a/b"); not "#" and
// "$SYS/x"; not "a/+" and "a/b/c". Exact.
[[nodiscard]] bool FiltersOverlap(std::string_view a, std::string_view b) noexcept;

}  // namespace tinymq::auth
