#include "codec/domain_codec.h"

#include <boost/describe.hpp>
#include <boost/json.hpp>

namespace orderflow::domain {

// Enums travel in the API's spelling ("REFUNDED", "reserve"), not as enumerator names.
template <class Enum, auto Parse>
void enum_from(boost::json::value& v, Enum e) {
  v = to_string(e);
}
template <class Enum, auto Parse>
boost::json::result<Enum> enum_to(const boost::json::value& v) {
  if (auto* s = v.if_string())
    if (auto parsed = Parse(std::string_view(*s))) return *parsed;
  return boost::json::make_error_code(boost::json::error::not_string);
}

namespace product {
BOOST_DESCRIBE_STRUCT(ProductRegistered, (), (product_id, name, unit_price_cents, initial_stock))
BOOST_DESCRIBE_STRUCT(StockAdded, (), (quantity))
BOOST_DESCRIBE_STRUCT(StockReserved, (), (order_id, quantity))
BOOST_DESCRIBE_STRUCT(StockReservationFailed, (), (order_id, quantity, available))
BOOST_DESCRIBE_STRUCT(StockReleased, (), (order_id, quantity))
BOOST_DESCRIBE_STRUCT(StockCommitted, (), (order_id, quantity))
BOOST_DESCRIBE_STRUCT(State, (), (exists, product_id, name, unit_price_cents, on_hand, reserved))
}  // namespace product
namespace account {
BOOST_DESCRIBE_STRUCT(AccountOpened, (), (account_id, owner))
BOOST_DESCRIBE_STRUCT(FundsDeposited, (), (amount_cents))
BOOST_DESCRIBE_STRUCT(FundsWithdrawn, (), (amount_cents))
BOOST_DESCRIBE_STRUCT(AccountCharged, (), (order_id, amount_cents))
BOOST_DESCRIBE_STRUCT(ChargeDeclined, (), (order_id, amount_cents, reason))
BOOST_DESCRIBE_STRUCT(AccountRefunded, (), (order_id, amount_cents))
BOOST_DESCRIBE_STRUCT(State, (), (exists, account_id, owner, balance_cents))
}  // namespace account
namespace order {
BOOST_DESCRIBE_STRUCT(OrderLine, (), (product_id, quantity, unit_price_cents, line_total_cents))
BOOST_DESCRIBE_STRUCT(OrderPlaced, (), (order_id, customer_id, items, total_cents, shipping_address, placed_at_ms))
BOOST_DESCRIBE_STRUCT(OrderConfirmed, (), (at_ms))
BOOST_DESCRIBE_STRUCT(OrderCancelled, (), (reason, payment_status, at_ms))
BOOST_DESCRIBE_STRUCT(OrderPaymentSettled, (), (payment_status, at_ms))
BOOST_DESCRIBE_STRUCT(OrderShipped, (), (at_ms))
BOOST_DESCRIBE_STRUCT(OrderDelivered, (), (at_ms))
BOOST_DESCRIBE_STRUCT(State, (), (exists, order_id, customer_id, items, total_cents, status, payment_status,
                                  shipping_status, cancellation_reason, created_at_ms, updated_at_ms,
                                  shipping_address))

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, PaymentStatus e) {
  enum_from<PaymentStatus, &parse_payment_status>(v, e);
}
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, OrderStatus e) {
  enum_from<OrderStatus, &parse_order_status>(v, e);
}
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, ShippingStatus e) {
  enum_from<ShippingStatus, &parse_shipping_status>(v, e);
}
boost::json::result<PaymentStatus> tag_invoke(boost::json::try_value_to_tag<PaymentStatus>,
                                              const boost::json::value& v) {
  return enum_to<PaymentStatus, &parse_payment_status>(v);
}
boost::json::result<OrderStatus> tag_invoke(boost::json::try_value_to_tag<OrderStatus>,
                                            const boost::json::value& v) {
  return enum_to<OrderStatus, &parse_order_status>(v);
}
boost::json::result<ShippingStatus> tag_invoke(boost::json::try_value_to_tag<ShippingStatus>,
                                               const boost::json::value& v) {
  return enum_to<ShippingStatus, &parse_shipping_status>(v);
}
}  // namespace order
namespace saga {
BOOST_DESCRIBE_STRUCT(StepRecord, (), (name, status, attempts, last_error, at_ms))
BOOST_DESCRIBE_STRUCT(SagaStepRetried, (), (order_id, step, attempt, deadline_ms, error))
BOOST_DESCRIBE_STRUCT(SagaEnded, (), (order_id, state, reason, steps))
BOOST_DESCRIBE_STRUCT(DeadLetterRecorded, (), (dead_letter_id, order_id, step, attempts, last_error, at_ms))
BOOST_DESCRIBE_STRUCT(DeadLetterRetried, (), (dead_letter_id, order_id))

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, SagaState e) {
  enum_from<SagaState, &parse_saga_state>(v, e);
}
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, SagaStep e) {
  enum_from<SagaStep, &parse_saga_step>(v, e);
}
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, StepStatus e) {
  enum_from<StepStatus, &parse_step_status>(v, e);
}
boost::json::result<SagaState> tag_invoke(boost::json::try_value_to_tag<SagaState>, const boost::json::value& v) {
  return enum_to<SagaState, &parse_saga_state>(v);
}
boost::json::result<SagaStep> tag_invoke(boost::json::try_value_to_tag<SagaStep>, const boost::json::value& v) {
  return enum_to<SagaStep, &parse_saga_step>(v);
}
boost::json::result<StepStatus> tag_invoke(boost::json::try_value_to_tag<StepStatus>, const boost::json::value& v) {
  return enum_to<StepStatus, &parse_step_status>(v);
}
// SagaStepRetried's step when the saga had none left to run: "", as it was always written.
void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const std::optional<SagaStep>& e) {
  v = e ? to_string(*e) : "";
}
boost::json::result<std::optional<SagaStep>> tag_invoke(boost::json::try_value_to_tag<std::optional<SagaStep>>,
                                                        const boost::json::value& v) {
  if (auto* s = v.if_string(); s && s->empty()) return std::optional<SagaStep>();
  auto step = enum_to<SagaStep, &parse_saga_step>(v);
  if (!step) return step.error();
  return std::optional(*step);
}
}  // namespace saga
}  // namespace orderflow::domain

namespace orderflow::codec {

namespace {

template <class Variant>
std::string encode_variant(const Variant& v) {
  return std::visit([](const auto& e) { return boost::json::serialize(boost::json::value_from(e)); }, v);
}

template <class T>
Result<T> decode_as(std::string_view what, std::string_view json) {
  // The DOM lives only until value_to: a stack buffer holds it (small events need no heap),
  // since decoding is the hot path of every fold.
  unsigned char buffer[2048];
  boost::json::monotonic_resource memory(buffer, sizeof buffer);
  boost::system::error_code ec;
  auto value = boost::json::parse(json, ec, &memory);
  if (ec) return fail(Errc::corrupt, std::string(what) + " is not valid JSON: " + ec.message());
  auto decoded = boost::json::try_value_to<T>(value);
  if (!decoded) return fail(Errc::corrupt, std::string(what) + " does not have the expected fields");
  return std::move(*decoded);
}

// Finds the alternative whose kType is `type` and decodes into it.
template <class Variant, std::size_t I = 0>
Result<Variant> decode_alternative(std::string_view type, std::string_view data) {
  if constexpr (I == std::variant_size_v<Variant>) {
    return fail(Errc::corrupt, "unknown event type " + std::string(type));
  } else {
    using Alt = std::variant_alternative_t<I, Variant>;
    if (type == Alt::kType) {
      OF_ASSIGN_OR_RETURN(auto decoded, decode_as<Alt>(std::string("event ") + Alt::kType, data));
      return Variant(std::move(decoded));
    }
    return decode_alternative<Variant, I + 1>(type, data);
  }
}

}  // namespace

std::string encode_event(const domain::product::Event& e) { return encode_variant(e); }
std::string encode_event(const domain::account::Event& e) { return encode_variant(e); }
std::string encode_event(const domain::order::Event& e) { return encode_variant(e); }
std::string encode_event(const domain::saga::Event& e) { return encode_variant(e); }
std::string encode_event(const domain::saga::DeadLetterEvent& e) { return encode_variant(e); }

template <class Event>
Result<Event> decode_event(std::string_view type, std::string_view data) {
  return decode_alternative<Event>(type, data);
}
template Result<domain::product::Event> decode_event(std::string_view, std::string_view);
template Result<domain::account::Event> decode_event(std::string_view, std::string_view);
template Result<domain::order::Event> decode_event(std::string_view, std::string_view);
template Result<domain::saga::Event> decode_event(std::string_view, std::string_view);
template Result<domain::saga::DeadLetterEvent> decode_event(std::string_view, std::string_view);

std::string encode_state(const domain::product::State& s) { return boost::json::serialize(boost::json::value_from(s)); }
std::string encode_state(const domain::account::State& s) { return boost::json::serialize(boost::json::value_from(s)); }
std::string encode_state(const domain::order::State& s) { return boost::json::serialize(boost::json::value_from(s)); }

template <class State>
Result<State> decode_state(std::string_view json) {
  return decode_as<State>("snapshot state", json);
}
template Result<domain::product::State> decode_state(std::string_view);
template Result<domain::account::State> decode_state(std::string_view);
template Result<domain::order::State> decode_state(std::string_view);

}  // namespace orderflow::codec
