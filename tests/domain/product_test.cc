#include "domain/product.h"

#include <gtest/gtest.h>

#include <limits>

#include "domain/decider_spec.h"

namespace orderflow::domain::product {
namespace {

auto given(std::vector<Event> history) { return spec::given(decider, std::move(history)); }

const ProductRegistered kWidget{"widget", "Widget", 250, 10};
const std::string kOrder = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const std::string kOther = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

// ---- RegisterProduct

TEST(Product, RegisterDecidesProductRegistered) {
  given({}).when(RegisterProduct{"widget", "Widget", 250, 10}).then({kWidget});
}

TEST(Product, RegisterWithZeroPriceAndStockIsAllowed) {
  given({})
      .when(RegisterProduct{"free", "Free sample", 0, 0})
      .then({ProductRegistered{"free", "Free sample", 0, 0}});
}

TEST(Product, RegisterExistingIsAlreadyExists) {
  given({kWidget})
      .when(RegisterProduct{"widget", "Widget", 250, 10})
      .then_error(Errc::already_exists, "widget");
}

TEST(Product, RegisterRejectsIdOutsideCharset) {
  given({})
      .when(RegisterProduct{"wid get", "Widget", 250, 10})
      .then_error(Errc::validation_failed, "product_id");
}

TEST(Product, RegisterRejectsEmptyName) {
  given({}).when(RegisterProduct{"widget", "", 250, 10}).then_error(Errc::validation_failed, "name");
}

TEST(Product, RegisterRejectsNegativePrice) {
  given({})
      .when(RegisterProduct{"widget", "Widget", -1, 10})
      .then_error(Errc::validation_failed, "unit_price_cents");
}

TEST(Product, RegisterRejectsNegativeInitialStock) {
  given({})
      .when(RegisterProduct{"widget", "Widget", 250, -1})
      .then_error(Errc::validation_failed, "initial_stock");
}

// ---- AddStock

TEST(Product, AddStockDecidesStockAdded) { given({kWidget}).when(AddStock{5}).then({StockAdded{5}}); }

TEST(Product, AddStockToMissingProductIsNotFound) {
  given({}).when(AddStock{5}).then_error(Errc::not_found, "product");
}

TEST(Product, AddStockRejectsZeroQuantity) {
  given({kWidget}).when(AddStock{0}).then_error(Errc::validation_failed, "quantity must be at least 1");
}

TEST(Product, AddStockRejectsOverflowingQuantity) {
  given({kWidget})
      .when(AddStock{std::numeric_limits<std::int64_t>::max()})
      .then_error(Errc::validation_failed, "quantity");
}

// ---- ReserveStock

TEST(Product, ReserveWithinAvailableDecidesStockReserved) {
  given({kWidget}).when(ReserveStock{kOrder, 10}).then({StockReserved{kOrder, 10}});
}

TEST(Product, ReserveOverAvailableDecidesStockReservationFailed) {
  given({kWidget, StockReserved{kOther, 7}})
      .when(ReserveStock{kOrder, 4})
      .then({StockReservationFailed{kOrder, 4, 3}});
}

TEST(Product, ReserveOnMissingProductIsNotFound) {
  given({}).when(ReserveStock{kOrder, 1}).then_error(Errc::not_found, "product");
}

TEST(Product, ReserveRejectsZeroQuantity) {
  given({kWidget}).when(ReserveStock{kOrder, 0}).then_error(Errc::validation_failed, "quantity");
}

TEST(Product, ReservationsOfOneOrderAccumulate) {
  given({kWidget, StockReserved{kOrder, 2}}).when(ReserveStock{kOrder, 3}).then({StockReserved{kOrder, 3}});
}

// ---- ReleaseStock

// The units the order holds come with the command (the application reads them from the
// store by the saga's event ids): the state keeps none per order.
TEST(Product, ReleaseWhatTheOrderHoldsDecidesStockReleased) {
  given({kWidget, StockReserved{kOrder, 4}}).when(ReleaseStock{kOrder, 4, 4}).then({StockReleased{kOrder, 4}});
}

TEST(Product, ReleaseMoreThanTheOrderHoldsIsInvalidState) {
  given({kWidget, StockReserved{kOrder, 4}, StockReserved{kOther, 4}})
      .when(ReleaseStock{kOrder, 5, 4})
      .then_error(Errc::invalid_state, "holds only 4 units");
}

TEST(Product, ReleaseForAnOrderWithoutReservationIsInvalidState) {
  given({kWidget, StockReserved{kOther, 4}})
      .when(ReleaseStock{kOrder, 1, 0})
      .then_error(Errc::invalid_state, kOrder);
}

TEST(Product, ReleaseRejectsZeroQuantity) {
  given({kWidget, StockReserved{kOrder, 4}})
      .when(ReleaseStock{kOrder, 0, 4})
      .then_error(Errc::validation_failed, "quantity");
}

TEST(Product, ReleaseOnMissingProductIsNotFound) {
  given({}).when(ReleaseStock{kOrder, 1, 1}).then_error(Errc::not_found, "product");
}

// ---- CommitStock

TEST(Product, CommitWhatTheOrderHoldsDecidesStockCommitted) {
  given({kWidget, StockReserved{kOrder, 4}}).when(CommitStock{kOrder, 4, 4}).then({StockCommitted{kOrder, 4}});
}

TEST(Product, CommitMoreThanTheOrderHoldsIsInvalidState) {
  given({kWidget, StockReserved{kOrder, 4}})
      .when(CommitStock{kOrder, 5, 4})
      .then_error(Errc::invalid_state, "holds only 4 units");
}

TEST(Product, CommitOfNothingHeldIsInvalidState) {  // e.g. after a release
  given({kWidget, StockReserved{kOrder, 4}, StockReleased{kOrder, 4}})
      .when(CommitStock{kOrder, 4, 0})
      .then_error(Errc::invalid_state, "holds only 0 units");
}

TEST(Product, CommitRejectsZeroQuantity) {
  given({kWidget, StockReserved{kOrder, 4}})
      .when(CommitStock{kOrder, 0, 4})
      .then_error(Errc::validation_failed, "quantity");
}

TEST(Product, CommitOnMissingProductIsNotFound) {
  given({}).when(CommitStock{kOrder, 1, 1}).then_error(Errc::not_found, "product");
}

// ---- evolve

TEST(Product, EvolveKeepsStockCounts) {
  State s =
      fold(decider, initial_state(),
           {kWidget, StockAdded{5}, StockReserved{kOrder, 6}, StockReserved{kOther, 3},
            StockReservationFailed{kOrder, 100, 6}, StockCommitted{kOrder, 2}, StockReleased{kOther, 3}});
  EXPECT_TRUE(s.exists);
  EXPECT_EQ(s.product_id, "widget");
  EXPECT_EQ(s.name, "Widget");
  EXPECT_EQ(s.unit_price_cents, 250);
  EXPECT_EQ(s.on_hand, 13);
  EXPECT_EQ(s.reserved, 4);
  EXPECT_EQ(s.available(), 9);
}

TEST(Product, EventTypeNamesAreTheApiTypes) {
  EXPECT_STREQ(event_type_name(kWidget), "ProductRegistered");
  EXPECT_STREQ(event_type_name(StockAdded{}), "StockAdded");
  EXPECT_STREQ(event_type_name(StockReserved{}), "StockReserved");
  EXPECT_STREQ(event_type_name(StockReservationFailed{}), "StockReservationFailed");
  EXPECT_STREQ(event_type_name(StockReleased{}), "StockReleased");
  EXPECT_STREQ(event_type_name(StockCommitted{}), "StockCommitted");
}

}  // namespace
}  // namespace orderflow::domain::product
