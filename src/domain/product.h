// The product aggregate (stream product-<product_id>): catalogue entry and stock.
//
// Promises: 0 <= reserved <= on_hand after any sequence of decided events. Given the fact
// a ReleaseStock or CommitStock carries (the units the order holds of this product, as the
// store shows them), stock held for an order is released or committed only by that order,
// never more than it holds. That fact is looked up by the application (by the saga's
// derived event ids of the order's reservation, release and commit), not kept here: the
// state does not grow with the orders that hold stock.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/result.h"
#include "domain/decider.h"

namespace orderflow::domain::product {

// ---- commands

struct RegisterProduct {
  std::string product_id;
  std::string name;
  std::int64_t unit_price_cents = 0;
  std::int64_t initial_stock = 0;
};
struct AddStock {
  std::int64_t quantity = 0;
};
// Reservations of one order accumulate, so an order with two lines of one product may
// reserve per line. A retried command reserves again: duplicates are the caller's to stop.
struct ReserveStock {
  std::string order_id;
  std::int64_t quantity = 0;
};
struct ReleaseStock {
  std::string order_id;
  std::int64_t quantity = 0;
  std::int64_t held = 0;  // the units the order holds of this product, as stored
};
// Stock leaves the shelf (the order shipped): on_hand and reserved both drop.
struct CommitStock {
  std::string order_id;
  std::int64_t quantity = 0;
  std::int64_t held = 0;  // the units the order holds of this product, as stored
};

using Command = std::variant<RegisterProduct, AddStock, ReserveStock, ReleaseStock, CommitStock>;

// ---- events: names and fields as in docs/api.md §8; kType is the stored type string.

struct ProductRegistered {
  static constexpr const char* kType = "ProductRegistered";
  std::string product_id;
  std::string name;
  std::int64_t unit_price_cents = 0;
  std::int64_t initial_stock = 0;
  bool operator==(const ProductRegistered&) const = default;
};
struct StockAdded {
  static constexpr const char* kType = "StockAdded";
  std::int64_t quantity = 0;
  bool operator==(const StockAdded&) const = default;
};
struct StockReserved {
  static constexpr const char* kType = "StockReserved";
  std::string order_id;
  std::int64_t quantity = 0;
  bool operator==(const StockReserved&) const = default;
};
// Not an error: the saga reacts to it by releasing the order's other lines and cancelling.
struct StockReservationFailed {
  static constexpr const char* kType = "StockReservationFailed";
  std::string order_id;
  std::int64_t quantity = 0;
  std::int64_t available = 0;
  bool operator==(const StockReservationFailed&) const = default;
};
struct StockReleased {
  static constexpr const char* kType = "StockReleased";
  std::string order_id;
  std::int64_t quantity = 0;
  bool operator==(const StockReleased&) const = default;
};
struct StockCommitted {
  static constexpr const char* kType = "StockCommitted";
  std::string order_id;
  std::int64_t quantity = 0;
  bool operator==(const StockCommitted&) const = default;
};

using Event = std::variant<ProductRegistered, StockAdded, StockReserved, StockReservationFailed,
                           StockReleased, StockCommitted>;

// ---- state

struct State {
  bool exists = false;
  std::string product_id;
  std::string name;
  std::int64_t unit_price_cents = 0;
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;  // units held by orders, in all

  std::int64_t available() const { return on_hand - reserved; }
  bool operator==(const State&) const = default;
};

State initial_state();
// Rejections: not_found (no product; every command but RegisterProduct), already_exists,
// validation_failed (a field's value), invalid_state (release/commit beyond what the
// order holds).
Result<std::vector<Event>> decide(const State& state, const Command& command);
State evolve(State state, const Event& event);
const char* event_type_name(const Event& event);

inline constexpr Decider<Command, State, Event> decider{&initial_state, &decide, &evolve};

}  // namespace orderflow::domain::product
