// Placing an order: what the client may send, and pricing it from the products (a
// client never sets a price).
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/command_handler.h"
#include "domain/order.h"

namespace orderflow::app {

struct PlaceOrderRequest {
  std::string order_id;  // lower-case; a new UUIDv7 when the client sent none
  std::string customer_id;
  struct Item {
    std::string product_id;
    std::int64_t quantity = 0;
  };
  std::vector<Item> items;
  std::optional<std::string> shipping_address;
  std::int64_t at_ms = 0;
};

// {customer_id, items:[{product_id, quantity}], order_id?, shipping_address?}: shape
// errors are invalid_argument naming the field ("items[2].quantity must be an integer");
// a malformed id (customer, order, product) or an item count outside 1-100 is
// validation_failed, before any product is looked up.
Result<PlaceOrderRequest> parse_place_order(const boost::json::object& body);

// Looks up every line's product of a parsed request: unknown_product for one that does
// not exist.
Result<domain::order::PlaceOrder> price_order(CommandHandler& commands, PlaceOrderRequest request);

}  // namespace orderflow::app
