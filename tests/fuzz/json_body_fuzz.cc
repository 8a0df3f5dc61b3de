// JSON request bodies as the command routes read them (api/json_body.h: the body as an
// object, then typed fields by name) and the order placement's own parser
// (app::parse_place_order). Whatever parses must give the same canonical JSON when its
// canonical form is parsed again (the idempotency fingerprint of a body must not depend on
// how often it was re-serialised).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/json_body.h"
#include "app/place_order.h"

using namespace orderflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto body = api::parse_object(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body) return 0;
  const std::string canonical = api::canonical_json(boost::json::value(*body));
  auto again = api::parse_object(canonical);
  if (!again || api::canonical_json(boost::json::value(*again)) != canonical) std::abort();
  // The fields the command routes read, each as the route reads it.
  for (std::string_view name : {"product_id", "name", "account_id", "owner", "reason", "status", "customer_id"}) {
    (void)api::string_field(*body, name);
    (void)api::optional_string_field(*body, name);
  }
  for (std::string_view name : {"unit_price_cents", "initial_stock", "quantity", "amount_cents"})
    (void)api::int_field(*body, name);
  if (auto order = app::parse_place_order(*body)) {
    if (order->items.empty() || order->customer_id.empty()) std::abort();  // accepted without what it needs
  }
  return 0;
}
