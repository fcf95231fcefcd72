#pragma once

#include <cstddef>
#include <functional>
#include <string_view>
#include <utility>

// Shared by the subscription index and the retained store: splitting a topic into levels without
// copying, and the transparent hash that lets maps keyed by std::string be searched with a
// string_view (C++20 heterogeneous lookup), so that matching does not allocate.
//
// Threading: Thread-compatible.
// Lifetime:  LevelReader's views point into the topic it was given.

namespace tinymq::broker {

// Takes the levels of a topic name or filter off its front, as views into it: "a//b" gives "a",
// "", "b" and "/" gives "", "" (an empty level is a real level, 3.1.1 and 5.0 §4.7.1.1). Copied
// by value to branch.
class LevelReader {
 public:
  explicit LevelReader(std::string_view topic) : rest_(topic) {}

  bool done() const { return done_; }

  // REQUIRES: !done().
  std::string_view Next() {
    const std::size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      done_ = true;
      return std::exchange(rest_, std::string_view());
    }
    const std::string_view level = rest_.substr(0, slash);
    rest_.remove_prefix(slash + 1);
    return level;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace tinymq::broker
