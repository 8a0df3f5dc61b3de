// Parsing an order placement: every id is checked before any product is looked up, so a
// body that parses has what an order needs (the json_body fuzzer asserts the same).
#include "app/place_order.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace orderflow::app {
namespace {

Result<PlaceOrderRequest> parse(std::string_view text) {
  return parse_place_order(boost::json::parse(text).as_object());
}

TEST(ParsePlaceOrder, AcceptsAWellFormedBodyAndLowerCasesTheOrderId) {
  auto r = parse(R"({"order_id": "0190A000-0000-7000-8000-000000F0000F", "customer_id": "c-1",
                     "items": [{"product_id": "mug", "quantity": 2}], "shipping_address": "1 Road"})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->order_id, "0190a000-0000-7000-8000-000000f0000f");
  EXPECT_EQ(r->customer_id, "c-1");
  ASSERT_EQ(r->items.size(), 1u);
  EXPECT_EQ(r->items[0].product_id, "mug");
  EXPECT_EQ(r->items[0].quantity, 2);
  EXPECT_EQ(r->shipping_address, "1 Road");
}

TEST(ParsePlaceOrder, WithoutAnOrderIdLeavesItToPricing) {
  auto r = parse(R"({"customer_id": "c-1", "items": [{"product_id": "mug", "quantity": 1}]})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->order_id.empty());
}

// Found by the json_body fuzzer: an empty customer id with an order id given was accepted.
TEST(ParsePlaceOrder, RefusesAMalformedCustomerIdWhateverElseIsGiven) {
  for (std::string_view body : {
           R"({"order_id": "0190A000-0000-7000-8000-000000F0000F", "customer_id": "", "items": [{"product_id": "mug", "quantity": 1}]})",
           R"({"customer_id": "", "items": [{"product_id": "mug", "quantity": 1}]})",
           R"({"customer_id": "a b", "items": [{"product_id": "mug", "quantity": 1}]})",
       }) {
    auto r = parse(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, Errc::validation_failed) << body;
    EXPECT_NE(r.error().message.find("customer_id"), std::string::npos) << r.error().message;
  }
}

TEST(ParsePlaceOrder, RefusesAnOrderIdThatIsNotAUuid) {
  auto r = parse(R"({"order_id": "0190A000-000-00p00000000FF", "customer_id": "c-1",
                     "items": [{"product_id": "mug", "quantity": 1}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::validation_failed);
  EXPECT_NE(r.error().message.find("order_id"), std::string::npos) << r.error().message;
}

TEST(ParsePlaceOrder, RefusesAMalformedProductIdNamingItsLine) {
  auto r = parse(R"({"customer_id": "c-1", "items": [{"product_id": "mug", "quantity": 1},
                                                   {"product_id": "", "quantity": 1}]})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::validation_failed);
  EXPECT_NE(r.error().message.find("items[1].product_id"), std::string::npos) << r.error().message;
}

TEST(ParsePlaceOrder, ShapeErrorsAreInvalidArgument) {
  for (std::string_view body : {
           R"({"items": [{"product_id": "mug", "quantity": 1}]})",
           R"({"customer_id": 7, "items": [{"product_id": "mug", "quantity": 1}]})",
           R"({"customer_id": "c-1", "order_id": 5, "items": [{"product_id": "mug", "quantity": 1}]})",
           R"({"customer_id": "c-1", "items": [{"product_id": "mug", "quantity": "1"}]})",
           R"({"customer_id": "c-1", "items": {}})",
       }) {
    auto r = parse(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << body;
  }
}

}  // namespace
}  // namespace orderflow::app
