// Result<T>: a value or an Error, with the member names of C++23 std::expected so a
// later switch is mechanical. Errors are values; exceptions from third-party libraries
// stop at the adapter that calls them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace orderflow {

// One taxonomy for the whole program (cqrs-es style): user errors, conflicts,
// backend unavailable, corrupt data, bugs. Each is handled differently: only
// version_conflict is retried by command handlers; corrupt is never retried.
// The HTTP edge maps each code to a status in one switch without default.
enum class Errc {
  invalid_json,            // a body that is not JSON
  invalid_argument,        // malformed input (shape, type, range)
  validation_failed,       // well-formed input with invalid values
  not_found,
  already_exists,
  version_conflict,        // expected version did not match
  invalid_state,           // a business rule forbids it now
  insufficient_funds,
  unknown_product,
  idempotency_key_reused,
  duplicate_event,         // event ids already stored at another place
  unavailable,             // backend down or shutting down; retry later
  overloaded,              // admission control: the work behind is too far behind; retry later
  corrupt,                 // stored data cannot be read
  internal,                // a bug or an unexpected library failure
};

const char* errc_name(Errc code);

struct Error {
  Errc code;
  std::string message;
  // For version_conflict: the stream's current version (-1 = no stream), so a
  // retry can go straight into the next batch without reading first.
  std::optional<std::int64_t> current_version{};
};

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

struct Unexpected {
  Error error;
};
inline Unexpected fail(Errc code, std::string message) {
  return Unexpected{Error{code, std::move(message)}};
}
inline Unexpected fail(Error e) { return Unexpected{std::move(e)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    OF_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  const T& value() const& {
    OF_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(v_);
  }
  T&& value() && {
    OF_CHECK(has_value(), "Result::value() on an error");
    return std::get<0>(std::move(v_));
  }
  const Error& error() const {
    OF_CHECK(!has_value(), "Result::error() on a value");
    return std::get<1>(v_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected u) : e_(std::move(u.error)) {}  // NOLINT
  Result(Error e) : e_(std::move(e)) {}  // NOLINT
  bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  const Error& error() const {
    OF_CHECK(e_.has_value(), "Result::error() on a value");
    return *e_;
  }

 private:
  std::optional<Error> e_;
};

}  // namespace orderflow
