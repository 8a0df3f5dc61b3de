#include "app/place_order.h"

#include <boost/json.hpp>
#include <map>

#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "domain/validation.h"

namespace orderflow::app {

namespace {

Result<std::string> string_at(const boost::json::object& o, std::string_view name, const std::string& where) {
  auto* v = o.if_contains(name);
  if (!v) return fail(Errc::invalid_argument, where + std::string(name) + " is required");
  if (!v->is_string()) return fail(Errc::invalid_argument, where + std::string(name) + " must be a string");
  return std::string(v->as_string());
}

}  // namespace

Result<PlaceOrderRequest> parse_place_order(const boost::json::object& body) {
  PlaceOrderRequest r;
  OF_ASSIGN_OR_RETURN(auto customer, string_at(body, "customer_id", ""));
  if (auto bad = domain::check_id("customer_id", customer)) return fail(*bad);
  r.customer_id = std::move(customer);
  if (auto* id = body.if_contains("order_id"); id && !id->is_null()) {
    if (!id->is_string()) return fail(Errc::invalid_argument, "order_id must be a string");
    if (auto bad = domain::check_uuid("order_id", id->as_string())) return fail(*bad);
    r.order_id = ascii_lower(id->as_string());
  }
  if (auto* addr = body.if_contains("shipping_address"); addr && !addr->is_null()) {
    if (!addr->is_string()) return fail(Errc::invalid_argument, "shipping_address must be a string");
    r.shipping_address = std::string(addr->as_string());
  }
  auto* items = body.if_contains("items");
  if (!items) return fail(Errc::invalid_argument, "items is required");
  if (!items->is_array()) return fail(Errc::invalid_argument, "items must be an array");
  const auto& arr = items->as_array();
  if (arr.size() > domain::order::kMaxItems || arr.empty())
    return fail(Errc::validation_failed, "items must have 1-100 lines");
  for (std::size_t i = 0; i < arr.size(); ++i) {
    auto where = "items[" + std::to_string(i) + "].";
    if (!arr[i].is_object()) return fail(Errc::invalid_argument, "items[" + std::to_string(i) + "] must be an object");
    const auto& item = arr[i].as_object();
    OF_ASSIGN_OR_RETURN(auto product, string_at(item, "product_id", where));
    if (auto bad = domain::check_id(where + "product_id", product)) return fail(*bad);
    auto* q = item.if_contains("quantity");
    if (!q) return fail(Errc::invalid_argument, where + "quantity is required");
    if (!q->is_int64()) return fail(Errc::invalid_argument, where + "quantity must be an integer");
    r.items.push_back({std::move(product), q->as_int64()});
  }
  return r;
}

Result<domain::order::PlaceOrder> price_order(CommandHandler& commands, PlaceOrderRequest request) {
  domain::order::PlaceOrder cmd;
  cmd.order_id = request.order_id.empty() ? uuid_v7() : std::move(request.order_id);
  cmd.customer_id = std::move(request.customer_id);
  cmd.shipping_address = std::move(request.shipping_address);
  cmd.at_ms = request.at_ms ? request.at_ms : now_unix_ms();
  std::map<std::string, std::int64_t> prices;
  for (std::size_t i = 0; i < request.items.size(); ++i) {
    auto& item = request.items[i];
    auto known = prices.find(item.product_id);
    if (known == prices.end()) {
      OF_ASSIGN_OR_RETURN(auto product, commands.load_latest<Product>(item.product_id));  // a price never changes
      if (!product.state.exists)
        return fail(Errc::unknown_product, "items[" + std::to_string(i) + "].product_id " + item.product_id +
                                               " is not a known product");
      known = prices.emplace(item.product_id, product.state.unit_price_cents).first;
    }
    cmd.items.push_back({std::move(item.product_id), item.quantity, known->second});
  }
  return cmd;
}

}  // namespace orderflow::app
