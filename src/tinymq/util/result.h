#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "tinymq/util/check.h"

// Result<T, E>: a value or an error, with the interface of C++23 std::expected (has_value(),
// value(), error(), operator*, operator->), so that moving to std::expected later is mechanical.
// Build an error with `return util::Unexpected(e);`.
//
// Threading: Thread-compatible.
// Errors:    value() on an error, or error() on a value, is a bug and aborts (TINYMQ_CHECK).

namespace tinymq::util {

template <typename E>
class Unexpected {
 public:
  constexpr explicit Unexpected(E e) : error_(std::move(e)) {}
  constexpr const E& error() const& { return error_; }
  constexpr E&& error() && { return std::move(error_); }

 private:
  E error_;
};

template <typename E>
Unexpected(E) -> Unexpected<E>;

template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  // NOLINTNEXTLINE(google-explicit-constructor): implicit, as std::expected's.
  constexpr Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  template <typename G>
  requires std::is_convertible_v<G, E>
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Result(Unexpected<G> u) : v_(std::in_place_index<1>, std::move(u).error()) {}

  constexpr bool has_value() const { return v_.index() == 0; }
  constexpr explicit operator bool() const { return has_value(); }

  constexpr T& value() & {
    TINYMQ_CHECK(has_value());
    return std::get<0>(v_);
  }
  constexpr const T& value() const& {
    TINYMQ_CHECK(has_value());
    return std::get<0>(v_);
  }
  constexpr T&& value() && {
    TINYMQ_CHECK(has_value());
    return std::get<0>(std::move(v_));
  }
  constexpr const E& error() const {
    TINYMQ_CHECK(!has_value());
    return std::get<1>(v_);
  }

  constexpr T& operator*() & { return value(); }
  constexpr const T& operator*() const& { return value(); }
  constexpr T&& operator*() && { return std::move(*this).value(); }
  constexpr T* operator->() { return &value(); }
  constexpr const T* operator->() const { return &value(); }

 private:
  std::variant<T, E> v_;
};

// Result<void, E>: success carries nothing.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  constexpr Result() = default;
  template <typename G>
  requires std::is_convertible_v<G, E>
  // NOLINTNEXTLINE(google-explicit-constructor)
  constexpr Result(Unexpected<G> u) : has_error_(true), error_(std::move(u).error()) {}

  constexpr bool has_value() const { return !has_error_; }
  constexpr explicit operator bool() const { return has_value(); }
  constexpr void value() const { TINYMQ_CHECK(has_value()); }
  constexpr const E& error() const {
    TINYMQ_CHECK(has_error_);
    return error_;
  }

 private:
  bool has_error_ = false;
  E error_{};
};

}  // namespace tinymq::util
