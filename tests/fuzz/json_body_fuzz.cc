// JSON request bodies as the command routes read them (api/json_body.h: the body as an
// object, then typed fields by name) and the order placement's own parser
// (app::parse_place_order). A body without fractions or exponents must give the same
// canonical JSON when its canonical form is parsed again (the idempotency fingerprint must not
// depend on key order or spacing). Not with doubles: Boost.JSON 1.81 does not round every long
// number correctly, so a double written back may read back one bit apart (a fingerprint is
// made from the bytes a client sent, so a retry still matches).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/json_body.h"
#include "app/place_order.h"
#include "domain/validation.h"

using namespace orderflow;

namespace {

bool has_double(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::double_: return true;
    case boost::json::kind::object:
      for (const auto& kv : v.get_object())
        if (has_double(kv.value())) return true;
      return false;
    case boost::json::kind::array:
      for (const auto& e : v.get_array())
        if (has_double(e)) return true;
      return false;
    default: return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto body = api::parse_object(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body) return 0;
  const boost::json::value whole(*body);
  if (!has_double(whole)) {
    const std::string canonical = api::canonical_json(whole);
    auto again = api::parse_object(canonical);
    if (!again || api::canonical_json(boost::json::value(*again)) != canonical) std::abort();
  }
  // The fields the command routes read, each as the route reads it.
  for (std::string_view name : {"product_id", "name", "account_id", "owner", "reason", "status", "customer_id"}) {
    (void)api::string_field(*body, name);
    (void)api::optional_string_field(*body, name);
  }
  for (std::string_view name : {"unit_price_cents", "initial_stock", "quantity", "amount_cents"})
    (void)api::int_field(*body, name);
  if (auto order = app::parse_place_order(*body)) {
    // Accepted only with what an order needs, every id well-formed.
    if (order->items.empty() || !domain::is_valid_id(order->customer_id)) std::abort();
    if (!order->order_id.empty() && !domain::is_uuid(order->order_id)) std::abort();
    for (const auto& item : order->items)
      if (!domain::is_valid_id(item.product_id)) std::abort();
  }
  return 0;
}
