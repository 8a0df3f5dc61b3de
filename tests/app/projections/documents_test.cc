#include "app/projections/documents.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace orderflow::app::projections {
namespace {

namespace json = boost::json;

TEST(Documents, AnOrderIsValidJsonWithEveryFieldAndTextEscaped) {
  domain::order::State s;
  s.order_id = "o-1";
  s.customer_id = "c \"quoted\" \\ back";
  s.items = {{"p1", 2, 250, 500}, {"p\n2", 1, 100, 100}};
  s.total_cents = 600;
  s.status = domain::order::OrderStatus::cancelled;
  s.cancellation_reason = std::string("tab\there, bell\x07, é");
  s.created_at_ms = 1795550000123;
  s.updated_at_ms = 1795550000456;
  const auto doc = json::parse(order_document(s, es::StreamVersion{7})).as_object();
  EXPECT_EQ(doc.at("order_id"), "o-1");
  EXPECT_EQ(doc.at("customer_id").as_string(), s.customer_id);
  const auto& items = doc.at("items").as_array();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].at("product_id"), "p\n2");
  EXPECT_EQ(items[0].at("line_total_cents"), 500);
  EXPECT_EQ(doc.at("total_cents"), 600);
  EXPECT_EQ(doc.at("status"), "CANCELLED");
  EXPECT_EQ(doc.at("cancellation_reason").as_string(), *s.cancellation_reason);
  EXPECT_FALSE(doc.contains("shipping_address"));
  EXPECT_EQ(doc.at("created_at"), "2026-11-24T19:53:20.123Z");
  EXPECT_EQ(doc.at("updated_at"), "2026-11-24T19:53:20.456Z");
  EXPECT_EQ(doc.at("version"), 7);
}

TEST(Documents, EmptyItemsAndNegativeNumbers) {
  domain::order::State order;
  EXPECT_EQ(json::parse(order_document(order, es::StreamVersion{-1})).at("items"), json::array());
  domain::account::State account;
  account.balance_cents = -42;
  EXPECT_EQ(account_document(account, es::StreamVersion{3}),
            R"({"account_id":"","owner":"","balance_cents":-42,"version":3})");
  domain::product::State product;
  product.on_hand = 5;
  product.reserved = 2;
  EXPECT_EQ(json::parse(product_document(product, es::StreamVersion{0})).at("available"), 3);
}

}  // namespace
}  // namespace orderflow::app::projections
