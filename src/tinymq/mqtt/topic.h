#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tinymq/util/result.h"

// Topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7 and §4.8.2): validation,
// shared-subscription parsing and wildcard matching, as pure functions.
//
// The rules, by example ('/' separates levels; a level may be empty):
//   "sport/tennis/+"  matches "sport/tennis/player1", not "sport/tennis/player1/ranking"
//   "sport/+"         matches "sport/" but not "sport" ('+' is exactly one level, maybe empty)
//   "+/+" and "/+"    match "/finance"; "+" does not
//   "sport/#"         matches "sport", "sport/" and "sport/tennis/player1" ('#' takes the parent)
//   "#" and "+/x"     never match a name starting with '$', such as "$SYS/x" [MQTT-4.7.2-1]
//   valid filters     "#", "+", "/", "a//b", "+/tennis/#", "sport/+/player1"
//   invalid filters   "", "sport/tennis#", "sport/tennis/#/ranking", "sport+"
//   invalid names     "", "sport/+", "#" (no wildcards in a name), anything holding U+0000
//   "$share/g/a/+"    the shared subscription of group "g" to the filter "a/+" (MQTT 5.0)
// Names and filters are compared byte by byte: case-sensitive, never normalised [MQTT-4.7.3-4].
//
// Threading: Thread-safe.
// Lifetime:  nothing is kept between calls and nothing is allocated. The views in a returned
//            SharedSubscription point into the argument and live as long as it does.
// Errors:    a TopicError (Describe() names it); never throws. The caller turns it into the
//            packet's answer: ReasonCode::kTopicNameInvalid (0x90) for a PUBLISH,
//            ReasonCode::kTopicFilterInvalid (0x8F) for a SUBSCRIBE or UNSUBSCRIBE; in 3.1.x, a
//            SUBACK failure (0x80) or a close.

namespace tinymq::mqtt {

// Limits a broker may impose on top of the protocol's. The defaults are the protocol's own.
struct TopicLimits {
  // In bytes of UTF-8, not characters. A topic is a UTF-8 Encoded String, so the protocol caps
  // it at 65,535 bytes [MQTT-4.7.3-3].
  std::size_t max_length = 65535;
  // Levels are separated by '/': "a/b" has 2, "/" has 2 (both empty), "#" has 1. 0 = unlimited,
  // which is what the protocol says ("no limit to the number of levels", 3.1.1 and 5.0 §4.7.3).
  std::size_t max_levels = 0;
};

enum class TopicError : std::uint8_t {
  // [MQTT-4.7.3-1]: at least one character.
  kEmpty,
  // Longer than TopicLimits::max_length bytes.
  kTooLong,
  // More than TopicLimits::max_levels levels.
  kTooManyLevels,
  // '+' or '#' in a topic name: 3.1.1 [MQTT-4.7.1-1], 5.0 [MQTT-4.7.0-1].
  kWildcardInName,
  // '#' not alone in the last level: 3.1.1 [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1].
  kMisplacedMultiLevelWildcard,
  // '+' not alone in its level: 3.1.1 [MQTT-4.7.1-3], 5.0 [MQTT-4.7.1-2].
  kMisplacedSingleLevelWildcard,
  // U+0000 anywhere [MQTT-4.7.3-2].
  kNullCharacter,
  // "$share/" followed by an empty group, a group holding '+' or '#', or no filter:
  // [MQTT-4.8.2-1], [MQTT-4.8.2-2].
  kInvalidSharedSubscription,
};

// A short English description, e.g. "topic filter has '+' outside a whole level". Never empty;
// distinct for each value.
[[nodiscard]] std::string_view Describe(TopicError e) noexcept;

// Checks a topic name, as carried by PUBLISH, a will or a Response Topic. It contains no wildcard.
// Where several rules are broken, kEmpty and kTooLong come first, then the first problem from the
// left. Does not look at a leading '$': refusing "$SYS/..." from clients is the caller's policy.
util::Result<void, TopicError> ValidateTopicName(std::string_view name,
                                                 const TopicLimits& limits = {}) noexcept;

// Checks a topic filter, as carried by SUBSCRIBE and UNSUBSCRIBE. Same error order as above.
// Knows nothing of "$share/": it checks the syntax both versions share, so "$share/g/a" passes as
// a plain 3-level filter. An MQTT 5 server calls ParseSharedSubscription() first.
util::Result<void, TopicError> ValidateTopicFilter(std::string_view filter,
                                                   const TopicLimits& limits = {}) noexcept;

// A shared subscription "$share/{group}/{filter}" (MQTT 5.0 §4.8.2), split in two.
struct SharedSubscription {
  std::string_view group;   // the ShareName: at least one character, no '/', '+' or '#'
  std::string_view filter;  // a valid topic filter, matched as a non-shared one would be
};

// Splits an MQTT 5 topic filter that starts with "$share/". Returns:
//  - std::nullopt when `filter` does not start with "$share/" (case-sensitive; "$share" alone is
//    an ordinary filter), without checking anything else: call ValidateTopicFilter() then.
//  - kInvalidSharedSubscription when the group is empty or holds '+' or '#', or no filter follows
//    it ("$share/g", "$share/g/").
//  - the error of the inner filter when it is invalid; kNullCharacter for U+0000 in the group.
//  - the parts otherwise.
// `limits.max_length` counts the whole string (that is what the packet carries);
// `limits.max_levels` counts the levels of the inner filter (that is what is matched).
util::Result<std::optional<SharedSubscription>, TopicError> ParseSharedSubscription(
    std::string_view filter, const TopicLimits& limits = {}) noexcept;

// True when the topic name `name` matches the topic filter `filter`. A filter starting with a
// wildcard does not match a name starting with '$' [MQTT-4.7.2-1], so "#" does not see "$SYS/x"
// but "$SYS/#" does. Allocates nothing; one pass over both strings (it is on the publish path).
// REQUIRES: ValidateTopicName(name) and ValidateTopicFilter(filter) succeed, and `filter` is not a
//           shared subscription (pass its SharedSubscription::filter). On other input the answer
//           is unspecified, but memory-safe.
[[nodiscard]] bool TopicMatches(std::string_view filter, std::string_view name) noexcept;

}  // namespace tinymq::mqtt
