// Result<T>: a value or an Error, with the member names of C++23 std::expected so a
// later switch is mechanical. Errors are values; exceptions from third-party libraries
// stop at the adapter that calls them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/check.h"
#include "core/strong_int.h"

namespace orderflow {

namespace es {
struct StreamVersionTag;  // es::StreamVersion (es/event.h), named here for Error::current_version
}  // namespace es

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
  projection_lagging,      // a read model has not applied what the read asks for yet; retry later
  rate_limited,            // the caller sent more than its share; retry after retry_after_s
  not_served,              // this process's roles do not include what was asked (send it elsewhere)
  corrupt,                 // stored data cannot be read
  internal,                // a bug or an unexpected library failure
};

const char* errc_name(Errc code);

struct Error {
  Errc code;
  std::string message;
  // For version_conflict: the stream's current version (-1 = no stream), so a
  // retry can go straight into the next batch without reading first.
  std::optional<StrongInt<es::StreamVersionTag>> current_version{};
  // For the errors worth retrying (unavailable, overloaded, projection_lagging,
  // rate_limited): when, in seconds; unset: 1.
  std::optional<std::int64_t> retry_after_s{};
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
class Result;
template <>
class Result<void>;

namespace detail {
template <class R>
inline constexpr bool is_result = false;
template <class T>
inline constexpr bool is_result<Result<T>> = true;

// std::expected's and_then and transform once `self` holds a value: f(args...), whose
// result is a Result already (and_then) or is wrapped in one (transform; Result<void> for
// an f that returns nothing).
template <class F, class... Args>
auto then(F&& f, Args&&... args) {
  using R = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;
  static_assert(is_result<R>, "and_then: f must return a Result");
  return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
}
template <class F, class... Args>
auto transformed(F&& f, Args&&... args) {
  using U = std::remove_cv_t<std::invoke_result_t<F, Args...>>;
  if constexpr (std::is_void_v<U>) {
    std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
    return Result<U>();  // Result<void>, named by U so that it is complete by the time it is used
  } else {
    return Result<U>(std::invoke(std::forward<F>(f), std::forward<Args>(args)...));
  }
}
template <class F, class... Args>
using Then = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;
template <class F, class... Args>
using Transformed = Result<std::remove_cv_t<std::invoke_result_t<F, Args...>>>;
}  // namespace detail

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

  // As std::expected's: the value, or `fallback` on an error.
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return has_value() ? std::get<0>(std::move(v_)) : static_cast<T>(std::forward<U>(fallback));
  }
  // f(value) -> Result<U>, or this error.
  template <class F>
  detail::Then<F, T&> and_then(F&& f) & {
    if (!has_value()) return error();
    return detail::then(std::forward<F>(f), std::get<0>(v_));
  }
  template <class F>
  detail::Then<F, const T&> and_then(F&& f) const& {
    if (!has_value()) return error();
    return detail::then(std::forward<F>(f), std::get<0>(v_));
  }
  template <class F>
  detail::Then<F, T&&> and_then(F&& f) && {
    if (!has_value()) return error();
    return detail::then(std::forward<F>(f), std::get<0>(std::move(v_)));
  }
  // f(value) -> U as a Result<U> (Result<void> if f returns nothing), or this error.
  template <class F>
  detail::Transformed<F, T&> transform(F&& f) & {
    if (!has_value()) return error();
    return detail::transformed(std::forward<F>(f), std::get<0>(v_));
  }
  template <class F>
  detail::Transformed<F, const T&> transform(F&& f) const& {
    if (!has_value()) return error();
    return detail::transformed(std::forward<F>(f), std::get<0>(v_));
  }
  template <class F>
  detail::Transformed<F, T&&> transform(F&& f) && {
    if (!has_value()) return error();
    return detail::transformed(std::forward<F>(f), std::get<0>(std::move(v_)));
  }

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
  // f() -> Result<U>, or this error.
  template <class F>
  detail::Then<F> and_then(F&& f) const {
    if (!has_value()) return error();
    return detail::then(std::forward<F>(f));
  }
  // f() -> U as a Result<U>, or this error.
  template <class F>
  detail::Transformed<F> transform(F&& f) const {
    if (!has_value()) return error();
    return detail::transformed(std::forward<F>(f));
  }

 private:
  std::optional<Error> e_;
};

}  // namespace orderflow

// Plain error propagation, in the spirit of absl's RETURN_IF_ERROR and ASSIGN_OR_RETURN.
// Both only work inside a function that returns a Result (of any T: the error goes back
// through ::orderflow::fail(Error) and Unexpected, never through a local `fail`), and not
// in a coroutine, where a plain `return` does not compile: keep the explicit
// `if (!r) co_return fail(...)` there. Where the error is transformed, wrapped with context
// or logged, write the `if` out too: these are for plain propagation only. The expression
// may contain commas (template arguments, lambdas); it is evaluated exactly once.
//
// OF_RETURN_IF_ERROR(expr); evaluates expr, a Result of any T, and on an error returns it:
//   do { if (auto tmp = (expr); !tmp) return ::orderflow::fail(tmp.error()); } while (false);
// One statement, so it can be the body of an unbraced `if` or loop (and a following `else`
// binds to that `if`). A value, if any, is dropped at once.
#define OF_RETURN_IF_ERROR(...) OF_RETURN_IF_ERROR_IMPL_(OF_RESULT_CONCAT_(of_result_, __COUNTER__), __VA_ARGS__)

// OF_ASSIGN_OR_RETURN(lhs, expr); evaluates expr, a Result<T> with T not void; on an
// error returns it, otherwise declares or assigns lhs from the value, moved out:
//   auto tmp = (expr);
//   if (!tmp) return ::orderflow::fail(tmp.error());
//   lhs = std::move(tmp).value();
// So after `OF_ASSIGN_OR_RETURN(auto rows, db.query(q));` `rows` is the value, not the
// Result. It expands to several statements: not for the body of an unbraced `if` or
// loop. lhs may not contain a comma (no structured bindings): name a type alias or use auto.
#define OF_ASSIGN_OR_RETURN(lhs, ...) \
  OF_ASSIGN_OR_RETURN_IMPL_(OF_RESULT_CONCAT_(of_result_, __COUNTER__), lhs, __VA_ARGS__)

#define OF_RESULT_CONCAT_INNER_(a, b) a##b
#define OF_RESULT_CONCAT_(a, b) OF_RESULT_CONCAT_INNER_(a, b)
#define OF_RETURN_IF_ERROR_IMPL_(tmp, ...)                                     \
  do {                                                                         \
    if (auto tmp = (__VA_ARGS__); !tmp) return ::orderflow::fail(tmp.error()); \
  } while (false)
#define OF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, ...)   \
  auto tmp = (__VA_ARGS__);                        \
  if (!tmp) return ::orderflow::fail(tmp.error()); \
  lhs = std::move(tmp).value()
