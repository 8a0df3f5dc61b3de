// Integers that mean different things, as types of their own (redpanda's
// model/fundamental.h): a position where a version is expected does not compile.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>

namespace orderflow {

// A std::int64_t that means what Tag names. Made from an integer explicitly, read with
// value(). Compared with its own kind, or with a plain integer (`position > 0`): a plain
// integer has no kind to mix up, and another kind never converts to one. An offset is a
// plain integer: p + 1 is of p's kind, and so is p - 1; the distance between two of a
// kind, a - b, is an integer.
//
// Deliberately no conversion to std::int64_t: with one, `position == version` and
// `position + version` would compile (both sides convert), the very mix-up these types
// exist to refuse. SQL binds, JSON and text say .value() where the number leaves.
template <class Tag>
class StrongInt {
 public:
  constexpr StrongInt() = default;
  constexpr explicit StrongInt(std::int64_t v) : v_(v) {}

  constexpr std::int64_t value() const { return v_; }

  friend constexpr bool operator==(StrongInt, StrongInt) = default;
  friend constexpr auto operator<=>(StrongInt, StrongInt) = default;
  friend constexpr bool operator==(StrongInt a, std::int64_t n) { return a.v_ == n; }
  friend constexpr auto operator<=>(StrongInt a, std::int64_t n) { return a.v_ <=> n; }

  friend constexpr StrongInt operator+(StrongInt a, std::int64_t n) { return StrongInt(a.v_ + n); }
  friend constexpr StrongInt operator-(StrongInt a, std::int64_t n) { return StrongInt(a.v_ - n); }
  friend constexpr std::int64_t operator-(StrongInt a, StrongInt b) { return a.v_ - b.v_; }
  constexpr StrongInt& operator+=(std::int64_t n) { v_ += n; return *this; }
  constexpr StrongInt& operator-=(std::int64_t n) { v_ -= n; return *this; }
  constexpr StrongInt& operator++() { ++v_; return *this; }
  constexpr StrongInt operator++(int) { auto old = *this; ++v_; return old; }

 private:
  std::int64_t v_ = 0;
};

// The number in decimal, as std::to_string would write it.
template <class Tag>
std::string to_string(StrongInt<Tag> v) {
  return std::to_string(v.value());
}

// The number, as for a std::int64_t (log lines, test failures).
template <class Char, class Traits, class Tag>
std::basic_ostream<Char, Traits>& operator<<(std::basic_ostream<Char, Traits>& os, StrongInt<Tag> v) {
  return os << v.value();
}

}  // namespace orderflow

template <class Tag>
struct std::hash<orderflow::StrongInt<Tag>> {
  std::size_t operator()(orderflow::StrongInt<Tag> v) const noexcept { return std::hash<std::int64_t>{}(v.value()); }
};

// The integer's limits, as values of the kind (the primary template would answer 0).
template <class Tag>
struct std::numeric_limits<orderflow::StrongInt<Tag>> : std::numeric_limits<std::int64_t> {
  using T = orderflow::StrongInt<Tag>;
  static constexpr T min() noexcept { return T(std::numeric_limits<std::int64_t>::min()); }
  static constexpr T lowest() noexcept { return T(std::numeric_limits<std::int64_t>::lowest()); }
  static constexpr T max() noexcept { return T(std::numeric_limits<std::int64_t>::max()); }
};
