#include "tinymq/mqtt/topic.h"

namespace tinymq::mqtt {
namespace {

constexpr std::string_view kSharePrefix = "$share/";

// [MQTT-4.7.3-1] and the byte limit, checked before anything else for names and filters alike.
util::Result<void, TopicError> CheckLength(std::string_view topic, const TopicLimits& limits) {
  if (topic.empty()) {
    return util::Unexpected(TopicError::kEmpty);
  }
  if (topic.size() > limits.max_length) {
    return util::Unexpected(TopicError::kTooLong);
  }
  return {};
}

// Called on each '/' with the number seen so far, this one included: there are
// `separators + 1` levels at least.
bool TooManyLevels(std::size_t separators, const TopicLimits& limits) {
  return limits.max_levels != 0 && separators >= limits.max_levels;
}

}  // namespace

std::string_view Describe(TopicError e) noexcept {
  switch (e) {
    case TopicError::kEmpty: return "topic is empty";
    case TopicError::kTooLong: return "topic is too long";
    case TopicError::kTooManyLevels: return "topic has too many levels";
    case TopicError::kWildcardInName: return "topic name contains a wildcard ('+' or '#')";
    case TopicError::kMisplacedMultiLevelWildcard:
      return "topic filter has '#' outside a whole last level";
    case TopicError::kMisplacedSingleLevelWildcard:
      return "topic filter has '+' outside a whole level";
    case TopicError::kNullCharacter: return "topic contains the null character U+0000";
    case TopicError::kInvalidSharedSubscription:
      return "shared subscription is not $share/{group}/{filter}";
  }
  return "unknown topic error";  // not reached for a valid enumerator
}

util::Result<void, TopicError> ValidateTopicName(std::string_view name,
                                                 const TopicLimits& limits) noexcept {
  if (auto length = CheckLength(name, limits); !length) {
    return length;
  }
  std::size_t separators = 0;
  for (const char c : name) {
    switch (c) {
      case '\0': return util::Unexpected(TopicError::kNullCharacter);
      case '+':
      case '#': return util::Unexpected(TopicError::kWildcardInName);
      case '/':
        if (TooManyLevels(++separators, limits)) {
          return util::Unexpected(TopicError::kTooManyLevels);
        }
        break;
      default: break;
    }
  }
  return {};
}

util::Result<void, TopicError> ValidateTopicFilter(std::string_view filter,
                                                   const TopicLimits& limits) noexcept {
  if (auto length = CheckLength(filter, limits); !length) {
    return length;
  }
  const std::size_t size = filter.size();
  std::size_t separators = 0;
  for (std::size_t i = 0; i < size; ++i) {
    switch (filter[i]) {
      case '\0': return util::Unexpected(TopicError::kNullCharacter);
      case '/':
        if (TooManyLevels(++separators, limits)) {
          return util::Unexpected(TopicError::kTooManyLevels);
        }
        break;
      case '+': {
        const bool starts_level = i == 0 || filter[i - 1] == '/';
        const bool ends_level = i + 1 == size || filter[i + 1] == '/';
        if (!starts_level || !ends_level) {
          return util::Unexpected(TopicError::kMisplacedSingleLevelWildcard);
        }
        break;
      }
      case '#': {
        const bool starts_level = i == 0 || filter[i - 1] == '/';
        if (!starts_level || i + 1 != size) {
          return util::Unexpected(TopicError::kMisplacedMultiLevelWildcard);
        }
        break;
      }
      default: break;
    }
  }
  return {};
}

util::Result<std::optional<SharedSubscription>, TopicError> ParseSharedSubscription(
    std::string_view filter, const TopicLimits& limits) noexcept {
  if (!filter.starts_with(kSharePrefix)) {
    return std::optional<SharedSubscription>();
  }
  if (filter.size() > limits.max_length) {
    return util::Unexpected(TopicError::kTooLong);
  }
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const std::size_t slash = rest.find('/');
  const std::string_view group = rest.substr(0, slash);  // all of `rest` when there is no '/'
  if (group.empty()) {  // [MQTT-4.8.2-1]: a ShareName of at least one character
    return util::Unexpected(TopicError::kInvalidSharedSubscription);
  }
  for (const char c : group) {
    if (c == '\0') {
      return util::Unexpected(TopicError::kNullCharacter);
    }
    if (c == '+' || c == '#') {  // [MQTT-4.8.2-2]; '/' cannot occur, it ends the group
      return util::Unexpected(TopicError::kInvalidSharedSubscription);
    }
  }
  // [MQTT-4.8.2-2]: the ShareName MUST be followed by '/' and that by a Topic Filter.
  if (slash == std::string_view::npos || slash + 1 == rest.size()) {
    return util::Unexpected(TopicError::kInvalidSharedSubscription);
  }
  const std::string_view inner = rest.substr(slash + 1);
  if (auto valid = ValidateTopicFilter(inner, limits); !valid) {
    return util::Unexpected(valid.error());
  }
  return std::optional<SharedSubscription>(SharedSubscription{.group = group, .filter = inner});
}

bool TopicMatches(std::string_view filter, std::string_view name) noexcept {
  // [MQTT-4.7.2-1]: "#" and "+/..." must not see "$SYS/..." (nor any other '$' name).
  if (!name.empty() && name.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  const std::size_t filter_size = filter.size();
  const std::size_t name_size = name.size();
  std::size_t f = 0;
  std::size_t n = 0;
  // Each turn consumes one level of both: f and n start at the first byte of a level (or at the
  // end, for an empty last level) and stop on the '/' after it (or at the end).
  while (true) {
    if (f < filter_size && filter[f] == '#') {
      return true;  // the rest of the name, any number of levels, even none
    }
    if (f < filter_size && filter[f] == '+') {
      ++f;  // a valid filter has '/' or the end here
      while (n < name_size && name[n] != '/') {
        ++n;
      }
    } else {
      while (f < filter_size && filter[f] != '/') {
        if (n == name_size || name[n] != filter[f]) {
          return false;
        }
        ++f;
        ++n;
      }
      if (n < name_size && name[n] != '/') {
        return false;  // the name's level is longer: "sport" vs "sports"
      }
    }
    if (f == filter_size) {
      return n == name_size;
    }
    if (n == name_size) {
      // The name ended, the filter goes on: only a final "/#" still matches, as '#' includes
      // the parent level ("sport/#" matches "sport").
      return filter_size - f == 2 && filter[f + 1] == '#';
    }
    ++f;  // both are on a '/'
    ++n;
  }
}

}  // namespace tinymq::mqtt
