#include "api/json_body.h"

#include <gtest/gtest.h>

namespace orderflow::api {
namespace {

TEST(JsonBodyTest, CanonicalFormIsAFixedPoint) {
  auto body = parse_object(R"({"b":[1,2.5,{"z":null,"a":"x"}],"a":-3})");
  ASSERT_TRUE(body);
  const auto canonical = canonical_json(boost::json::value(*body));
  EXPECT_EQ(canonical, R"({"a":-3,"b":[1,2.5E0,{"a":"x","z":null}]})");
  EXPECT_EQ(canonical_json(boost::json::value(*parse_object(canonical))), canonical);
}

// Found by fuzzing (json_body): 1e400 parsed as infinity, whose canonical form was not JSON.
TEST(JsonBodyTest, ANumberOutOfRangeIsInvalidJson) {
  for (const char* body : {R"({"customer_id":"ann","items":[[[[{}]]]],"x":1e400})", R"({"amount_cents":-1e400})",
                           R"({"a":{"b":[1E999]}})"}) {
    auto r = parse_object(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, Errc::invalid_json) << body;
    EXPECT_NE(r.error().message.find("out of range"), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(parse_object(R"({"x":1e300})"));
}

// Found by fuzzing (json_body): a whole double past int64 was cast before its range was checked
// (undefined behaviour, UBSan's float-cast-overflow).
TEST(JsonBodyTest, AWholeNumberPastItsRangeIsNotAnInteger) {
  for (const char* body : {R"({"quantity": 533333333333333333333333333333333333333333333333333333333333333333333333})",
                           R"({"quantity": -1e300})", R"({"quantity": 9e15})"}) {
    auto r = int_field(*parse_object(body), "quantity");
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << body;
  }
  EXPECT_EQ(int_field(*parse_object(R"({"quantity": 2.0})"), "quantity").value(), 2);
  EXPECT_EQ(int_field(*parse_object(R"({"quantity": -8e15})"), "quantity").value(), -8'000'000'000'000'000);
  EXPECT_FALSE(int_field(*parse_object(R"({"quantity": 2.5})"), "quantity"));
}

}  // namespace
}  // namespace orderflow::api
