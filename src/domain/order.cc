#include "domain/order.h"

#include <initializer_list>

#include "domain/validation.h"

namespace orderflow::domain::order {
namespace {

using Events = std::vector<Event>;

template <class Enum>
std::optional<Enum> parse_enum(std::string_view s, std::initializer_list<Enum> all) {
  for (Enum value : all) {
    if (s == to_string(value)) return value;
  }
  return std::nullopt;
}

Result<Events> place_order(const State& s, const PlaceOrder& c) {
  if (auto e = check_uuid("order_id", c.order_id)) return fail(*e);
  if (auto e = check_id("customer_id", c.customer_id)) return fail(*e);
  if (c.items.empty() || c.items.size() > kMaxItems) {
    return fail(Errc::validation_failed, "items must have 1 to " + std::to_string(kMaxItems) + " lines");
  }
  OrderPlaced placed{c.order_id, c.customer_id, {}, 0, c.shipping_address, c.at_ms};
  for (std::size_t i = 0; i < c.items.size(); ++i) {
    const PlaceOrderItem& item = c.items[i];
    const std::string field = "items[" + std::to_string(i) + "]";
    if (auto e = check_id(field + ".product_id", item.product_id)) return fail(*e);
    if (auto e = check_at_least(field + ".quantity", item.quantity, 1)) return fail(*e);
    if (auto e = check_at_least(field + ".unit_price_cents", item.unit_price_cents, 0)) return fail(*e);
    std::int64_t line_total = 0;
    if (__builtin_mul_overflow(item.quantity, item.unit_price_cents, &line_total) ||
        __builtin_add_overflow(placed.total_cents, line_total, &placed.total_cents)) {
      return fail(Errc::validation_failed, "total_cents of the order is too large");
    }
    placed.items.push_back({item.product_id, item.quantity, item.unit_price_cents, line_total});
  }
  if (s.exists) return fail(Errc::already_exists, "order " + c.order_id + " already exists");
  return Events{std::move(placed)};
}

Result<Events> cancel_order(const State& s, const CancelOrder& c) {
  if (auto e = check_not_empty("reason", c.reason)) return fail(*e);
  if (c.payment_status == PaymentStatus::paid) {
    return fail(Errc::validation_failed, "payment_status of a cancelled order cannot be PAID");
  }
  if (s.status == OrderStatus::pending) return Events{OrderCancelled{c.reason, c.payment_status, c.at_ms}};
  if (s.status == OrderStatus::confirmed) {
    return Events{OrderCancelled{c.reason, PaymentStatus::refunded, c.at_ms}};
  }
  return fail(
      Errc::invalid_state,
      std::string("only a PENDING or CONFIRMED order can be cancelled; this one is ") + to_string(s.status));
}

Result<Events> settle_payment(const State& s, const SettlePayment& c) {
  if (c.payment_status != PaymentStatus::refunded && c.payment_status != PaymentStatus::declined) {
    return fail(Errc::validation_failed, "a settled payment_status is REFUNDED or DECLINED");
  }
  if (s.status != OrderStatus::cancelled || s.payment_status != PaymentStatus::pending) {
    return fail(Errc::invalid_state, std::string("only a CANCELLED order with payment_status PENDING can settle its "
                                                 "payment; this one is ") +
                                         to_string(s.status) + " and " + to_string(s.payment_status));
  }
  return Events{OrderPaymentSettled{c.payment_status, c.at_ms}};
}

Result<Events> set_shipping_status(const State& s, const SetShippingStatus& c) {
  auto target = parse_shipping_status(c.status);
  if (target != ShippingStatus::in_transit && target != ShippingStatus::delivered) {
    return fail(Errc::validation_failed, "status must be IN_TRANSIT or DELIVERED");
  }
  ShippingStatus from = target == ShippingStatus::in_transit ? ShippingStatus::waiting_for_shipment
                                                             : ShippingStatus::in_transit;
  if (s.shipping_status != from) {
    return fail(Errc::invalid_state, std::string("shipping status can move to ") + to_string(*target) +
                                         " only from " + to_string(from) + "; it is " +
                                         to_string(s.shipping_status));
  }
  if (target == ShippingStatus::in_transit) return Events{OrderShipped{c.at_ms}};
  return Events{OrderDelivered{c.at_ms}};
}

}  // namespace

const char* to_string(OrderStatus status) {
  switch (status) {
    case OrderStatus::pending: return "PENDING";
    case OrderStatus::confirmed: return "CONFIRMED";
    case OrderStatus::shipped: return "SHIPPED";
    case OrderStatus::delivered: return "DELIVERED";
    case OrderStatus::cancelled: return "CANCELLED";
  }
  return "?";
}

const char* to_string(PaymentStatus status) {
  switch (status) {
    case PaymentStatus::pending: return "PENDING";
    case PaymentStatus::paid: return "PAID";
    case PaymentStatus::declined: return "DECLINED";
    case PaymentStatus::refunded: return "REFUNDED";
  }
  return "?";
}

const char* to_string(ShippingStatus status) {
  switch (status) {
    case ShippingStatus::waiting_for_payment: return "WAITING_FOR_PAYMENT";
    case ShippingStatus::waiting_for_shipment: return "WAITING_FOR_SHIPMENT";
    case ShippingStatus::in_transit: return "IN_TRANSIT";
    case ShippingStatus::delivered: return "DELIVERED";
    case ShippingStatus::cancelled: return "CANCELLED";
  }
  return "?";
}

std::optional<OrderStatus> parse_order_status(std::string_view s) {
  using enum OrderStatus;
  return parse_enum(s, {pending, confirmed, shipped, delivered, cancelled});
}

std::optional<PaymentStatus> parse_payment_status(std::string_view s) {
  using enum PaymentStatus;
  return parse_enum(s, {pending, paid, declined, refunded});
}

std::optional<ShippingStatus> parse_shipping_status(std::string_view s) {
  using enum ShippingStatus;
  return parse_enum(s, {waiting_for_payment, waiting_for_shipment, in_transit, delivered, cancelled});
}

State initial_state() { return State{}; }

Result<Events> decide(const State& s, const Command& command) {
  if (!s.exists && !std::holds_alternative<PlaceOrder>(command)) {
    return fail(Errc::not_found, "order does not exist");
  }
  return std::visit(overloaded{
                        [&](const PlaceOrder& c) { return place_order(s, c); },
                        [&](const ConfirmOrder& c) -> Result<Events> {
                          if (s.status != OrderStatus::pending) {
                            return fail(Errc::invalid_state,
                                        std::string("only a PENDING order can be confirmed; this one is ") +
                                            to_string(s.status));
                          }
                          return Events{OrderConfirmed{c.at_ms}};
                        },
                        [&](const CancelOrder& c) { return cancel_order(s, c); },
                        [&](const SettlePayment& c) { return settle_payment(s, c); },
                        [&](const SetShippingStatus& c) { return set_shipping_status(s, c); },
                    },
                    command);
}

State evolve(State s, const Event& event) {
  std::visit(overloaded{
                 [&](const OrderPlaced& e) {
                   s.exists = true;
                   s.order_id = e.order_id;
                   s.customer_id = e.customer_id;
                   s.items = e.items;
                   s.total_cents = e.total_cents;
                   s.shipping_address = e.shipping_address;
                   s.created_at_ms = s.updated_at_ms = e.placed_at_ms;
                 },
                 [&](const OrderConfirmed& e) {
                   s.status = OrderStatus::confirmed;
                   s.payment_status = PaymentStatus::paid;
                   s.shipping_status = ShippingStatus::waiting_for_shipment;
                   s.updated_at_ms = e.at_ms;
                 },
                 [&](const OrderCancelled& e) {
                   s.status = OrderStatus::cancelled;
                   s.payment_status = e.payment_status;
                   s.shipping_status = ShippingStatus::cancelled;
                   s.cancellation_reason = e.reason;
                   s.updated_at_ms = e.at_ms;
                 },
                 [&](const OrderPaymentSettled& e) {
                   s.payment_status = e.payment_status;
                   s.updated_at_ms = e.at_ms;
                 },
                 [&](const OrderShipped& e) {
                   s.status = OrderStatus::shipped;
                   s.shipping_status = ShippingStatus::in_transit;
                   s.updated_at_ms = e.at_ms;
                 },
                 [&](const OrderDelivered& e) {
                   s.status = OrderStatus::delivered;
                   s.shipping_status = ShippingStatus::delivered;
                   s.updated_at_ms = e.at_ms;
                 },
             },
             event);
  return s;
}

const char* event_type_name(const Event& event) {
  return std::visit([](const auto& e) { return e.kType; }, event);
}

}  // namespace orderflow::domain::order
