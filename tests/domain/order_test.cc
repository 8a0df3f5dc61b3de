#include "domain/order.h"

#include <gtest/gtest.h>

#include <limits>

#include "domain/decider_spec.h"

namespace orderflow::domain::order {
namespace {

auto given(std::vector<Event> history) { return spec::given(decider, std::move(history)); }

const std::string kOrder = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

PlaceOrder place(std::vector<PlaceOrderItem> items) {
  return PlaceOrder{kOrder, "alice", std::move(items), "1 Main St", 1000};
}

const OrderPlaced kPlaced{kOrder, "alice",     {{"widget", 2, 250, 500}, {"gadget", 1, 1000, 1000}},
                          1500,   "1 Main St", 1000};
const OrderConfirmed kConfirmed{2000};
const OrderShipped kShipped{3000};
const OrderDelivered kDelivered{4000};
const OrderCancelled kCancelled{"changed my mind", PaymentStatus::pending, 2000};

// ---- PlaceOrder

TEST(Order, PlaceComputesLineTotalsAndTotal) {
  given({}).when(place({{"widget", 2, 250}, {"gadget", 1, 1000}})).then({kPlaced});
}

TEST(Order, PlaceWithoutShippingAddressIsAllowed) {
  given({})
      .when(PlaceOrder{kOrder, "alice", {{"widget", 1, 250}}, std::nullopt, 1000})
      .then({OrderPlaced{kOrder, "alice", {{"widget", 1, 250, 250}}, 250, std::nullopt, 1000}});
}

TEST(Order, PlaceKeepsTwoLinesOfOneProduct) {
  given({})
      .when(place({{"widget", 1, 250}, {"widget", 2, 250}}))
      .then({OrderPlaced{
          kOrder, "alice", {{"widget", 1, 250, 250}, {"widget", 2, 250, 500}}, 750, "1 Main St", 1000}});
}

TEST(Order, PlaceAcceptsHundredLines) {
  std::vector<PlaceOrderItem> items(kMaxItems, PlaceOrderItem{"widget", 1, 1});
  auto decided = decide(initial_state(), place(items));
  ASSERT_TRUE(decided.has_value());
  EXPECT_EQ(std::get<OrderPlaced>(decided->at(0)).total_cents, 100);
}

TEST(Order, PlaceExistingIsAlreadyExists) {
  given({kPlaced}).when(place({{"widget", 2, 250}})).then_error(Errc::already_exists, kOrder);
}

TEST(Order, PlaceRejectsOrderIdThatIsNotAUuid) {
  given({})
      .when(PlaceOrder{"order-1", "alice", {{"widget", 1, 250}}, std::nullopt, 1000})
      .then_error(Errc::validation_failed, "order_id must be a UUID");
}

TEST(Order, PlaceRejectsCustomerIdOutsideCharset) {
  given({})
      .when(PlaceOrder{kOrder, "alice smith", {{"widget", 1, 250}}, std::nullopt, 1000})
      .then_error(Errc::validation_failed, "customer_id");
}

TEST(Order, PlaceRejectsNoLines) { given({}).when(place({})).then_error(Errc::validation_failed, "items"); }

TEST(Order, PlaceRejectsMoreThanHundredLines) {
  given({})
      .when(place(std::vector<PlaceOrderItem>(kMaxItems + 1, PlaceOrderItem{"widget", 1, 1})))
      .then_error(Errc::validation_failed, "items must have 1 to 100 lines");
}

TEST(Order, PlaceRejectsProductIdOutsideCharset) {
  given({})
      .when(place({{"widget", 1, 250}, {"", 1, 250}}))
      .then_error(Errc::validation_failed, "items[1].product_id");
}

TEST(Order, PlaceRejectsZeroQuantity) {
  given({})
      .when(place({{"widget", 0, 250}}))
      .then_error(Errc::validation_failed, "items[0].quantity must be at least 1");
}

TEST(Order, PlaceRejectsNegativeUnitPrice) {
  given({})
      .when(place({{"widget", 1, -250}}))
      .then_error(Errc::validation_failed, "items[0].unit_price_cents");
}

TEST(Order, PlaceRejectsLineTotalThatOverflows) {
  given({})
      .when(place({{"widget", std::numeric_limits<std::int64_t>::max() / 2, 3}}))
      .then_error(Errc::validation_failed, "total_cents");
}

TEST(Order, PlaceRejectsTotalThatOverflows) {
  const std::int64_t half = std::numeric_limits<std::int64_t>::max() / 2 + 1;
  given({})
      .when(place({{"widget", half, 1}, {"gadget", half, 1}}))
      .then_error(Errc::validation_failed, "total_cents");
}

// ---- ConfirmOrder

TEST(Order, ConfirmPendingDecidesOrderConfirmed) {
  given({kPlaced}).when(ConfirmOrder{2000}).then({kConfirmed});
}

TEST(Order, ConfirmMissingOrderIsNotFound) {
  given({}).when(ConfirmOrder{2000}).then_error(Errc::not_found, "order");
}

TEST(Order, ConfirmTwiceIsInvalidState) {
  given({kPlaced, kConfirmed}).when(ConfirmOrder{2500}).then_error(Errc::invalid_state, "CONFIRMED");
}

TEST(Order, ConfirmCancelledIsInvalidState) {
  given({kPlaced, kCancelled}).when(ConfirmOrder{2500}).then_error(Errc::invalid_state, "CANCELLED");
}

// ---- CancelOrder

TEST(Order, CancelPendingNeverChargedRecordsPaymentPending) {
  given({kPlaced})
      .when(CancelOrder{"out_of_stock:widget", PaymentStatus::pending, 2000})
      .then({OrderCancelled{"out_of_stock:widget", PaymentStatus::pending, 2000}});
}

TEST(Order, CancelPendingForDeclinedPaymentRecordsDeclined) {
  given({kPlaced})
      .when(CancelOrder{"payment_declined", PaymentStatus::declined, 2000})
      .then({OrderCancelled{"payment_declined", PaymentStatus::declined, 2000}});
}

TEST(Order, CancelPendingAfterRefundRecordsRefunded) {
  given({kPlaced})
      .when(CancelOrder{"timeout", PaymentStatus::refunded, 2000})
      .then({OrderCancelled{"timeout", PaymentStatus::refunded, 2000}});
}

TEST(Order, CancelConfirmedRecordsRefunded) {
  given({kPlaced, kConfirmed})
      .when(CancelOrder{"changed my mind", PaymentStatus::pending, 2500})
      .then({OrderCancelled{"changed my mind", PaymentStatus::refunded, 2500}});
}

TEST(Order, CancelShippedIsInvalidState) {
  given({kPlaced, kConfirmed, kShipped})
      .when(CancelOrder{"too late", PaymentStatus::pending, 3500})
      .then_error(Errc::invalid_state, "SHIPPED");
}

TEST(Order, CancelDeliveredIsInvalidState) {
  given({kPlaced, kConfirmed, kShipped, kDelivered})
      .when(CancelOrder{"too late", PaymentStatus::pending, 4500})
      .then_error(Errc::invalid_state, "DELIVERED");
}

TEST(Order, CancelCancelledIsInvalidState) {
  given({kPlaced, kCancelled})
      .when(CancelOrder{"again", PaymentStatus::pending, 2500})
      .then_error(Errc::invalid_state, "CANCELLED");
}

// ---- SettlePayment

TEST(Order, SettleRefundOfPendingCancelRecordsRefunded) {
  given({kPlaced, kCancelled})
      .when(SettlePayment{PaymentStatus::refunded, 2600})
      .then({OrderPaymentSettled{PaymentStatus::refunded, 2600}});
}

TEST(Order, SettleDeclineOfPendingCancelRecordsDeclined) {
  given({kPlaced, kCancelled})
      .when(SettlePayment{PaymentStatus::declined, 2600})
      .then({OrderPaymentSettled{PaymentStatus::declined, 2600}});
}

TEST(Order, SettleLeavesTheOrderCancelledWithTheSettledStatus) {
  auto s = evolve(evolve(evolve(initial_state(), kPlaced), kCancelled), OrderPaymentSettled{PaymentStatus::refunded, 2600});
  EXPECT_EQ(s.status, OrderStatus::cancelled);
  EXPECT_EQ(s.payment_status, PaymentStatus::refunded);
  EXPECT_EQ(s.shipping_status, ShippingStatus::cancelled);
  EXPECT_EQ(s.updated_at_ms, 2600);
}

TEST(Order, SettleOfAnOrderNotCancelledIsInvalidState) {
  given({kPlaced}).when(SettlePayment{PaymentStatus::refunded, 2600}).then_error(Errc::invalid_state, "PENDING");
  given({kPlaced, kConfirmed}).when(SettlePayment{PaymentStatus::refunded, 2600}).then_error(Errc::invalid_state, "CONFIRMED");
}

TEST(Order, SettleTwiceIsInvalidState) {
  given({kPlaced, kCancelled, OrderPaymentSettled{PaymentStatus::refunded, 2600}})
      .when(SettlePayment{PaymentStatus::declined, 2700})
      .then_error(Errc::invalid_state, "REFUNDED");
}

TEST(Order, SettleOfACancelThatRecordedItsPaymentIsInvalidState) {
  given({kPlaced, OrderCancelled{"payment_declined", PaymentStatus::declined, 2000}})
      .when(SettlePayment{PaymentStatus::refunded, 2600})
      .then_error(Errc::invalid_state, "DECLINED");
}

TEST(Order, SettleToPendingOrPaidIsValidationFailed) {
  given({kPlaced, kCancelled}).when(SettlePayment{PaymentStatus::paid, 2600}).then_error(Errc::validation_failed, "REFUNDED");
  given({kPlaced, kCancelled}).when(SettlePayment{PaymentStatus::pending, 2600}).then_error(Errc::validation_failed, "REFUNDED");
}

TEST(Order, CancelRejectsEmptyReason) {
  given({kPlaced})
      .when(CancelOrder{"", PaymentStatus::pending, 2000})
      .then_error(Errc::validation_failed, "reason");
}

TEST(Order, CancelRejectsPaymentStatusPaid) {
  given({kPlaced})
      .when(CancelOrder{"oops", PaymentStatus::paid, 2000})
      .then_error(Errc::validation_failed, "payment_status");
}

TEST(Order, CancelMissingOrderIsNotFound) {
  given({}).when(CancelOrder{"oops", PaymentStatus::pending, 2000}).then_error(Errc::not_found, "order");
}

// ---- SetShippingStatus

TEST(Order, InTransitOfConfirmedDecidesOrderShipped) {
  given({kPlaced, kConfirmed}).when(SetShippingStatus{"IN_TRANSIT", 3000}).then({kShipped});
}

TEST(Order, DeliveredOfShippedDecidesOrderDelivered) {
  given({kPlaced, kConfirmed, kShipped}).when(SetShippingStatus{"DELIVERED", 4000}).then({kDelivered});
}

TEST(Order, ShippingPendingOrderIsInvalidState) {
  given({kPlaced})
      .when(SetShippingStatus{"IN_TRANSIT", 3000})
      .then_error(Errc::invalid_state, "WAITING_FOR_PAYMENT");
}

TEST(Order, ShippingCancelledOrderIsInvalidState) {
  given({kPlaced, kCancelled})
      .when(SetShippingStatus{"IN_TRANSIT", 3000})
      .then_error(Errc::invalid_state, "CANCELLED");
}

TEST(Order, DeliveredBeforeInTransitIsInvalidState) {
  given({kPlaced, kConfirmed})
      .when(SetShippingStatus{"DELIVERED", 3000})
      .then_error(Errc::invalid_state, "only from IN_TRANSIT");
}

TEST(Order, InTransitTwiceIsInvalidState) {
  given({kPlaced, kConfirmed, kShipped})
      .when(SetShippingStatus{"IN_TRANSIT", 3500})
      .then_error(Errc::invalid_state, "only from WAITING_FOR_SHIPMENT");
}

TEST(Order, InTransitAfterDeliveredIsInvalidState) {
  given({kPlaced, kConfirmed, kShipped, kDelivered})
      .when(SetShippingStatus{"IN_TRANSIT", 4500})
      .then_error(Errc::invalid_state, "DELIVERED");
}

TEST(Order, UnknownShippingStatusIsValidationFailed) {
  given({kPlaced, kConfirmed})
      .when(SetShippingStatus{"LOST", 3000})
      .then_error(Errc::validation_failed, "status");
}

TEST(Order, ShippingStatusIsCaseSensitive) {
  given({kPlaced, kConfirmed})
      .when(SetShippingStatus{"in_transit", 3000})
      .then_error(Errc::validation_failed, "status");
}

TEST(Order, ShippingStatusThatCannotBeSetIsValidationFailed) {
  given({kPlaced, kConfirmed})
      .when(SetShippingStatus{"WAITING_FOR_SHIPMENT", 3000})
      .then_error(Errc::validation_failed, "status must be IN_TRANSIT or DELIVERED");
}

TEST(Order, ShippingMissingOrderIsNotFound) {
  given({}).when(SetShippingStatus{"IN_TRANSIT", 3000}).then_error(Errc::not_found, "order");
}

// ---- evolve

TEST(Order, PlacedOrderIsPendingAndWaitsForPayment) {
  State s = fold(decider, initial_state(), {kPlaced});
  EXPECT_TRUE(s.exists);
  EXPECT_EQ(s.order_id, kOrder);
  EXPECT_EQ(s.customer_id, "alice");
  EXPECT_EQ(s.items, kPlaced.items);
  EXPECT_EQ(s.total_cents, 1500);
  EXPECT_EQ(s.status, OrderStatus::pending);
  EXPECT_EQ(s.payment_status, PaymentStatus::pending);
  EXPECT_EQ(s.shipping_status, ShippingStatus::waiting_for_payment);
  EXPECT_EQ(s.cancellation_reason, std::nullopt);
  EXPECT_EQ(s.shipping_address, "1 Main St");
  EXPECT_EQ(s.created_at_ms, 1000);
  EXPECT_EQ(s.updated_at_ms, 1000);
}

TEST(Order, ConfirmedOrderIsPaidAndWaitsForShipment) {
  State s = fold(decider, initial_state(), {kPlaced, kConfirmed});
  EXPECT_EQ(s.status, OrderStatus::confirmed);
  EXPECT_EQ(s.payment_status, PaymentStatus::paid);
  EXPECT_EQ(s.shipping_status, ShippingStatus::waiting_for_shipment);
  EXPECT_EQ(s.created_at_ms, 1000);
  EXPECT_EQ(s.updated_at_ms, 2000);
}

TEST(Order, ShippedAndDeliveredOrdersFollowShippingStatus) {
  State shipped = fold(decider, initial_state(), {kPlaced, kConfirmed, kShipped});
  EXPECT_EQ(shipped.status, OrderStatus::shipped);
  EXPECT_EQ(shipped.shipping_status, ShippingStatus::in_transit);
  EXPECT_EQ(shipped.updated_at_ms, 3000);
  State delivered = decider.evolve(shipped, kDelivered);
  EXPECT_EQ(delivered.status, OrderStatus::delivered);
  EXPECT_EQ(delivered.shipping_status, ShippingStatus::delivered);
  EXPECT_EQ(delivered.payment_status, PaymentStatus::paid);
  EXPECT_EQ(delivered.updated_at_ms, 4000);
}

TEST(Order, CancelledOrderTakesPaymentStatusFromTheEvent) {
  State s = fold(decider, initial_state(),
                 {kPlaced, OrderCancelled{"payment_declined", PaymentStatus::declined, 2000}});
  EXPECT_EQ(s.status, OrderStatus::cancelled);
  EXPECT_EQ(s.payment_status, PaymentStatus::declined);
  EXPECT_EQ(s.shipping_status, ShippingStatus::cancelled);
  EXPECT_EQ(s.cancellation_reason, "payment_declined");
  EXPECT_EQ(s.updated_at_ms, 2000);
}

// ---- names

TEST(Order, EventTypeNamesAreTheApiTypes) {
  EXPECT_STREQ(event_type_name(kPlaced), "OrderPlaced");
  EXPECT_STREQ(event_type_name(kConfirmed), "OrderConfirmed");
  EXPECT_STREQ(event_type_name(kCancelled), "OrderCancelled");
  EXPECT_STREQ(event_type_name(kShipped), "OrderShipped");
  EXPECT_STREQ(event_type_name(kDelivered), "OrderDelivered");
}

TEST(Order, StatusesRoundTripThroughTheirApiNames) {
  for (auto s : {OrderStatus::pending, OrderStatus::confirmed, OrderStatus::shipped, OrderStatus::delivered,
                 OrderStatus::cancelled}) {
    EXPECT_EQ(parse_order_status(to_string(s)), s);
  }
  for (auto s :
       {PaymentStatus::pending, PaymentStatus::paid, PaymentStatus::declined, PaymentStatus::refunded}) {
    EXPECT_EQ(parse_payment_status(to_string(s)), s);
  }
  for (auto s : {ShippingStatus::waiting_for_payment, ShippingStatus::waiting_for_shipment,
                 ShippingStatus::in_transit, ShippingStatus::delivered, ShippingStatus::cancelled}) {
    EXPECT_EQ(parse_shipping_status(to_string(s)), s);
  }
  EXPECT_STREQ(to_string(ShippingStatus::waiting_for_shipment), "WAITING_FOR_SHIPMENT");
  EXPECT_EQ(parse_order_status("pending"), std::nullopt);
  EXPECT_EQ(parse_payment_status(""), std::nullopt);
}

}  // namespace
}  // namespace orderflow::domain::order
