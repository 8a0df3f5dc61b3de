#include "domain/product.h"

#include <limits>

#include "domain/validation.h"

namespace orderflow::domain::product {
namespace {

using Events = std::vector<Event>;

template <class C>
std::optional<Error> check_held(const State& s, const C& c) {
  if (c.quantity <= c.held) return std::nullopt;
  return make_error(Errc::invalid_state, "order " + c.order_id + " holds only " + std::to_string(c.held) +
                                             " units of product " + s.product_id);
}

}  // namespace

State initial_state() { return State{}; }

Result<Events> decide(const State& s, const Command& command) {
  if (!s.exists && !std::holds_alternative<RegisterProduct>(command)) {
    return fail(Errc::not_found, "product does not exist");
  }
  return std::visit(
      overloaded{
          [&](const RegisterProduct& c) -> Result<Events> {
            if (auto e = check_id("product_id", c.product_id)) return fail(*e);
            if (auto e = check_not_empty("name", c.name)) return fail(*e);
            if (auto e = check_at_least("unit_price_cents", c.unit_price_cents, 0)) return fail(*e);
            if (auto e = check_at_least("initial_stock", c.initial_stock, 0)) return fail(*e);
            if (s.exists) return fail(Errc::already_exists, "product " + c.product_id + " already exists");
            return Events{ProductRegistered{c.product_id, c.name, c.unit_price_cents, c.initial_stock}};
          },
          [&](const AddStock& c) -> Result<Events> {
            if (auto e = check_at_least("quantity", c.quantity, 1)) return fail(*e);
            if (c.quantity > std::numeric_limits<std::int64_t>::max() - s.on_hand) {
              return fail(Errc::validation_failed, "quantity is too large for the stock on hand");
            }
            return Events{StockAdded{c.quantity}};
          },
          [&](const ReserveStock& c) -> Result<Events> {
            if (auto e = check_at_least("quantity", c.quantity, 1)) return fail(*e);
            if (c.quantity > s.available()) {
              return Events{StockReservationFailed{c.order_id, c.quantity, s.available()}};
            }
            return Events{StockReserved{c.order_id, c.quantity}};
          },
          [&](const ReleaseStock& c) -> Result<Events> {
            if (auto e = check_at_least("quantity", c.quantity, 1)) return fail(*e);
            if (auto e = check_held(s, c)) return fail(*e);
            return Events{StockReleased{c.order_id, c.quantity}};
          },
          [&](const CommitStock& c) -> Result<Events> {
            if (auto e = check_at_least("quantity", c.quantity, 1)) return fail(*e);
            if (auto e = check_held(s, c)) return fail(*e);
            return Events{StockCommitted{c.order_id, c.quantity}};
          },
      },
      command);
}

State evolve(State s, const Event& event) {
  std::visit(overloaded{
                 [&](const ProductRegistered& e) {
                   s.exists = true;
                   s.product_id = e.product_id;
                   s.name = e.name;
                   s.unit_price_cents = e.unit_price_cents;
                   s.on_hand = e.initial_stock;
                 },
                 [&](const StockAdded& e) { s.on_hand += e.quantity; },
                 [&](const StockReserved& e) { s.reserved += e.quantity; },
                 [&](const StockReservationFailed&) {},
                 [&](const StockReleased& e) { s.reserved -= e.quantity; },
                 [&](const StockCommitted& e) {
                   s.on_hand -= e.quantity;
                   s.reserved -= e.quantity;
                 },
             },
             event);
  return s;
}

const char* event_type_name(const Event& event) {
  return std::visit([](const auto& e) { return e.kType; }, event);
}

}  // namespace orderflow::domain::product
