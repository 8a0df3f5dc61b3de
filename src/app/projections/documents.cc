#include "app/projections/documents.h"

#include <boost/json.hpp>

#include "core/time.h"

namespace orderflow::app::projections {

namespace json = boost::json;

std::string order_document(const domain::order::State& s, es::StreamVersion version) {
  json::array items;
  for (const auto& l : s.items)
    items.push_back(json::object{{"product_id", l.product_id},
                                 {"quantity", l.quantity},
                                 {"unit_price_cents", l.unit_price_cents},
                                 {"line_total_cents", l.line_total_cents}});
  json::object o{{"order_id", s.order_id},
                 {"customer_id", s.customer_id},
                 {"items", std::move(items)},
                 {"total_cents", s.total_cents},
                 {"status", to_string(s.status)},
                 {"payment_status", to_string(s.payment_status)},
                 {"shipping_status", to_string(s.shipping_status)}};
  if (s.cancellation_reason) o["cancellation_reason"] = *s.cancellation_reason;
  if (s.shipping_address) o["shipping_address"] = *s.shipping_address;
  o["created_at"] = format_rfc3339_ms(s.created_at_ms);
  o["updated_at"] = format_rfc3339_ms(s.updated_at_ms);
  o["version"] = version;
  return json::serialize(o);
}

std::string product_document(const domain::product::State& s, es::StreamVersion version) {
  return json::serialize(json::object{{"product_id", s.product_id},
                                      {"name", s.name},
                                      {"unit_price_cents", s.unit_price_cents},
                                      {"on_hand", s.on_hand},
                                      {"reserved", s.reserved},
                                      {"available", s.available()},
                                      {"version", version}});
}

std::string account_document(const domain::account::State& s, es::StreamVersion version) {
  return json::serialize(json::object{
      {"account_id", s.account_id}, {"owner", s.owner}, {"balance_cents", s.balance_cents}, {"version", version}});
}

}  // namespace orderflow::app::projections
