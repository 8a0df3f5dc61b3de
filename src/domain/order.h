// The order aggregate (stream order-<order_id>, order_id a UUID). Its life is driven by
// the fulfilment saga (docs/api.md §5): placed PENDING, then confirmed (paid) or cancelled,
// then shipped and delivered.
//
// Promises: status, payment_status and shipping_status move only along docs/api.md §5;
// a CONFIRMED order is PAID and WAITING_FOR_SHIPMENT; a CANCELLED order is never PAID.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.h"
#include "domain/decider.h"

namespace orderflow::domain::order {

inline constexpr std::size_t kMaxItems = 100;

enum class OrderStatus { pending, confirmed, shipped, delivered, cancelled };
enum class PaymentStatus { pending, paid, declined, refunded };
enum class ShippingStatus { waiting_for_payment, waiting_for_shipment, in_transit, delivered, cancelled };

// The API's spelling: "PENDING", "WAITING_FOR_SHIPMENT", ...; parse_* take exactly that.
const char* to_string(OrderStatus status);
const char* to_string(PaymentStatus status);
const char* to_string(ShippingStatus status);
std::optional<OrderStatus> parse_order_status(std::string_view s);
std::optional<PaymentStatus> parse_payment_status(std::string_view s);
std::optional<ShippingStatus> parse_shipping_status(std::string_view s);

struct OrderLine {
  std::string product_id;
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;
  std::int64_t line_total_cents = 0;
  bool operator==(const OrderLine&) const = default;
};

// ---- commands

struct PlaceOrderItem {
  std::string product_id;
  std::int64_t quantity = 0;
  std::int64_t unit_price_cents = 0;  // the product's price, looked up by the caller
};
// Lines are kept as given: two lines may name the same product. decide() computes the
// line totals and total_cents.
struct PlaceOrder {
  std::string order_id;
  std::string customer_id;
  std::vector<PlaceOrderItem> items;
  std::optional<std::string> shipping_address;
  std::int64_t at_ms = 0;
};
// Stock is reserved and the charge taken: the order becomes CONFIRMED and PAID.
struct ConfirmOrder {
  std::int64_t at_ms = 0;
};
// Cancels a PENDING or CONFIRMED order (by its customer or by the saga). For a PENDING
// order, payment_status says what became of its payment: pending (never charged),
// declined (the saga's "payment_declined" cancel) or refunded (the saga charged, then
// refunded). A CONFIRMED order was paid, so its OrderCancelled always records refunded and
// this field is not read: the saga refunds the charge when it sees that event.
struct CancelOrder {
  std::string reason;
  PaymentStatus payment_status = PaymentStatus::pending;
  std::int64_t at_ms = 0;
};
// Records what became of the payment of an order cancelled while its saga was charging:
// the cancel recorded PENDING, then the saga saw the charge refunded or declined. Only a
// CANCELLED order whose payment_status is PENDING; payment_status REFUNDED or DECLINED.
struct SettlePayment {
  PaymentStatus payment_status = PaymentStatus::refunded;
  std::int64_t at_ms = 0;
};
// status: "IN_TRANSIT" or "DELIVERED" as the client sent it; decide() parses it.
struct SetShippingStatus {
  std::string status;
  std::int64_t at_ms = 0;
};

using Command = std::variant<PlaceOrder, ConfirmOrder, CancelOrder, SettlePayment, SetShippingStatus>;

// ---- events: names and fields as in docs/api.md §8; kType is the stored type string.

struct OrderPlaced {
  static constexpr const char* kType = "OrderPlaced";
  std::string order_id;
  std::string customer_id;
  std::vector<OrderLine> items;
  std::int64_t total_cents = 0;
  std::optional<std::string> shipping_address;
  std::int64_t placed_at_ms = 0;
  bool operator==(const OrderPlaced&) const = default;
};
struct OrderConfirmed {
  static constexpr const char* kType = "OrderConfirmed";
  std::int64_t at_ms = 0;
  bool operator==(const OrderConfirmed&) const = default;
};
struct OrderCancelled {
  static constexpr const char* kType = "OrderCancelled";
  std::string reason;
  PaymentStatus payment_status = PaymentStatus::pending;  // never paid
  std::int64_t at_ms = 0;
  bool operator==(const OrderCancelled&) const = default;
};
// The payment of a cancelled order settled after its cancel (see SettlePayment): a
// contract addition to docs/api.md §8's order events.
struct OrderPaymentSettled {
  static constexpr const char* kType = "OrderPaymentSettled";
  PaymentStatus payment_status = PaymentStatus::refunded;
  std::int64_t at_ms = 0;
  bool operator==(const OrderPaymentSettled&) const = default;
};
struct OrderShipped {
  static constexpr const char* kType = "OrderShipped";
  std::int64_t at_ms = 0;
  bool operator==(const OrderShipped&) const = default;
};
struct OrderDelivered {
  static constexpr const char* kType = "OrderDelivered";
  std::int64_t at_ms = 0;
  bool operator==(const OrderDelivered&) const = default;
};

using Event =
    std::variant<OrderPlaced, OrderConfirmed, OrderCancelled, OrderPaymentSettled, OrderShipped, OrderDelivered>;

// ---- state

struct State {
  bool exists = false;
  std::string order_id;
  std::string customer_id;
  std::vector<OrderLine> items;
  std::int64_t total_cents = 0;
  OrderStatus status = OrderStatus::pending;
  PaymentStatus payment_status = PaymentStatus::pending;
  ShippingStatus shipping_status = ShippingStatus::waiting_for_payment;
  std::optional<std::string> cancellation_reason;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::optional<std::string> shipping_address;
  bool operator==(const State&) const = default;
};

State initial_state();
// Rejections: not_found (no order; every command but PlaceOrder), already_exists,
// validation_failed (a field's value, an unknown shipping status), invalid_state (a
// move docs/api.md §5 does not allow from the current status).
Result<std::vector<Event>> decide(const State& state, const Command& command);
State evolve(State state, const Event& event);
const char* event_type_name(const Event& event);

inline constexpr Decider<Command, State, Event> decider{&initial_state, &decide, &evolve};

}  // namespace orderflow::domain::order
