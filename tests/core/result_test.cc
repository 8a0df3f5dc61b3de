#include "core/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace orderflow {
namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return fail(Errc::invalid_argument, "not a digit");
  return c - '0';
}

TEST(ResultTest, ValueOrGivesTheValueOrTheFallback) {
  EXPECT_EQ(parse_digit('7').value_or(-1), 7);
  EXPECT_EQ(parse_digit('x').value_or(-1), -1);
  Result<std::string> s = std::string("kept");
  EXPECT_EQ(std::move(s).value_or("fallback"), "kept");
  EXPECT_EQ(Result<std::string>(make_error(Errc::internal, "e")).value_or("fallback"), "fallback");
}

TEST(ResultTest, AndThenChainsOnlyOnAValue) {
  auto twice = [](int d) -> Result<int> {
    if (d > 4) return fail(Errc::validation_failed, "too big");
    return d * 2;
  };
  EXPECT_EQ(*parse_digit('3').and_then(twice), 6);
  auto big = parse_digit('9').and_then(twice);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::validation_failed);
  int called = 0;
  auto bad = parse_digit('x').and_then([&](int d) -> Result<int> { return ++called + d; });
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "not a digit");
  EXPECT_EQ(called, 0);
  Result<void> nothing = parse_digit('1').and_then([](int) -> Result<void> { return {}; });
  EXPECT_TRUE(nothing);
}

TEST(ResultTest, TransformWrapsWhatFReturns) {
  Result<std::string> named = parse_digit('4').transform([](int d) { return std::to_string(d) + "!"; });
  EXPECT_EQ(*named, "4!");
  EXPECT_EQ(parse_digit('x').transform([](int d) { return d + 1; }).error().code, Errc::invalid_argument);
  int seen = 0;
  Result<void> done = parse_digit('5').transform([&](int d) { seen = d; });
  EXPECT_TRUE(done);
  EXPECT_EQ(seen, 5);
}

TEST(ResultTest, AnRvalueResultMovesItsValueOn) {
  Result<std::unique_ptr<int>> p = std::make_unique<int>(3);
  auto q = std::move(p).transform([](std::unique_ptr<int> v) { return *v + 1; });
  EXPECT_EQ(*q, 4);
}

TEST(ResultTest, VoidResultsChainToo) {
  Result<void> ok;
  EXPECT_EQ(*ok.transform([] { return 2; }), 2);
  EXPECT_EQ(*ok.and_then([]() -> Result<int> { return 3; }), 3);
  Result<void> failed = fail(Errc::unavailable, "down");
  EXPECT_EQ(failed.transform([] { return 2; }).error().code, Errc::unavailable);
}

// The propagation macros, used as the callers use them: each function returns a Result
// of a different T than the expression it propagates.
Result<std::string> describe_digit(char c) {
  OF_ASSIGN_OR_RETURN(int d, parse_digit(c));
  return "digit " + std::to_string(d);
}

Result<void> check_digit(char c, int& calls) {
  ++calls;
  if (c != '0') OF_RETURN_IF_ERROR(parse_digit(c));  // one statement: no dangling else
  ++calls;
  return {};
}

Result<std::unique_ptr<int>> boxed_digit(char c) {
  OF_ASSIGN_OR_RETURN(int d, parse_digit(c));
  return std::make_unique<int>(d);
}

Result<int> unboxed_plus_one(char c) {
  OF_ASSIGN_OR_RETURN(std::unique_ptr<int> p, boxed_digit(c));
  return *p + 1;
}

Result<void> ok_or_down(bool ok) {
  if (ok) return {};
  return fail(Errc::unavailable, "down");
}

Result<int> both(bool first, bool second, bool& reached_else) {
  int n = 0;
  if (first) OF_RETURN_IF_ERROR(ok_or_down(second));
  else reached_else = true;
  OF_RETURN_IF_ERROR(ok_or_down(first));
  OF_ASSIGN_OR_RETURN(n, parse_digit('2'));
  return n;
}

TEST(ResultTest, AssignOrReturnGivesTheValueOrReturnsTheError) {
  EXPECT_EQ(*describe_digit('6'), "digit 6");
  auto bad = describe_digit('x');
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_EQ(bad.error().message, "not a digit");
}

TEST(ResultTest, AssignOrReturnMovesAMoveOnlyValueOut) {
  EXPECT_EQ(*unboxed_plus_one('4'), 5);
  EXPECT_EQ(unboxed_plus_one('x').error().code, Errc::invalid_argument);
}

TEST(ResultTest, ReturnIfErrorStopsOnlyOnAnError) {
  int calls = 0;
  EXPECT_TRUE(check_digit('1', calls));
  EXPECT_EQ(calls, 2);
  calls = 0;
  auto bad = check_digit('x', calls);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "not a digit");
  EXPECT_EQ(calls, 1);
}

TEST(ResultTest, ReturnIfErrorPropagatesAVoidResultAndIsOneStatement) {
  bool reached_else = false;
  EXPECT_EQ(*both(true, true, reached_else), 2);
  EXPECT_FALSE(reached_else);
  auto down = both(true, false, reached_else);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, Errc::unavailable);
  EXPECT_FALSE(reached_else);  // the `else` belongs to the outer `if`, not to the macro's
  auto first_down = both(false, true, reached_else);
  EXPECT_TRUE(reached_else);
  ASSERT_FALSE(first_down);
  EXPECT_EQ(first_down.error().code, Errc::unavailable);
}

}  // namespace
}  // namespace orderflow
