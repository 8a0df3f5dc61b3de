#include "codec/domain_codec.h"

#include <gtest/gtest.h>

namespace orderflow::codec {
namespace {

using namespace domain;

template <class Event>
void expect_round_trip(const Event& e) {
  auto data = encode_event(e);
  auto back = decode_event<Event>(std::visit([](const auto& x) { return x.kType; }, e), data);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, e) << data;
}

TEST(DomainCodec, EveryEventRoundTrips) {
  expect_round_trip<product::Event>(product::ProductRegistered{"p-1", "Mug", 1299, 10});
  expect_round_trip<product::Event>(product::StockAdded{5});
  expect_round_trip<product::Event>(product::StockReserved{"o", 2});
  expect_round_trip<product::Event>(product::StockReservationFailed{"o", 2, 1});
  expect_round_trip<product::Event>(product::StockReleased{"o", 2});
  expect_round_trip<product::Event>(product::StockCommitted{"o", 2});
  expect_round_trip<account::Event>(account::AccountOpened{"a", "Ann"});
  expect_round_trip<account::Event>(account::FundsDeposited{100});
  expect_round_trip<account::Event>(account::FundsWithdrawn{100});
  expect_round_trip<account::Event>(account::AccountCharged{"o", 100});
  expect_round_trip<account::Event>(account::ChargeDeclined{"o", 100, "insufficient_funds"});
  expect_round_trip<account::Event>(account::AccountRefunded{"o", 100});
  expect_round_trip<order::Event>(
      order::OrderPlaced{"o", "c", {{"p", 2, 100, 200}, {"q", 1, 5, 5}}, 205, std::nullopt, 17});
  expect_round_trip<order::Event>(order::OrderPlaced{"o", "c", {{"p", 1, 1, 1}}, 1, "1 Main St", 17});
  expect_round_trip<order::Event>(order::OrderConfirmed{3});
  expect_round_trip<order::Event>(order::OrderCancelled{"payment_declined", order::PaymentStatus::declined, 4});
  expect_round_trip<order::Event>(order::OrderShipped{5});
  expect_round_trip<order::Event>(order::OrderDelivered{6});
}

TEST(DomainCodec, EnumsUseTheApiSpelling) {
  auto data = encode_event(order::Event(order::OrderCancelled{"r", order::PaymentStatus::refunded, 1}));
  EXPECT_NE(data.find(R"("payment_status":"REFUNDED")"), std::string::npos) << data;
}

TEST(DomainCodec, BadDataIsCorruptNamingTheType) {
  auto unknown = decode_event<order::Event>("Nope", "{}");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::corrupt);
  auto bad = decode_event<order::Event>("OrderShipped", R"({"at_ms":"x"})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("OrderShipped"), std::string::npos);
  EXPECT_FALSE(decode_event<order::Event>("OrderShipped", "{not json"));
}

// The saga's records as stores written before they were typed hold them (the JSON objects
// app/saga built by hand): they decode to the same values, and are written byte for byte
// as before.
template <class Event>
void expect_stored_as(std::string_view type, std::string_view stored, const Event& expected) {
  auto decoded = decode_event<Event>(type, stored);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, expected) << stored;
  EXPECT_EQ(encode_event(expected), stored);
}

TEST(DomainCodec, SagaRecordsDecodeExactlyAsStoredBefore) {
  using namespace domain::saga;
  expect_stored_as<saga::Event>(
      "SagaStepRetried",
      R"({"order_id":"o-1","step":"charge","attempt":2,"deadline_ms":1700000005000,"error":"unavailable: down"})",
      SagaStepRetried{"o-1", SagaStep::charge, 2, 1700000005000, "unavailable: down"});
  // A retry of the saga's own bookkeeping, with no step left to run.
  expect_stored_as<saga::Event>("SagaStepRetried",
                                R"({"order_id":"o-1","step":"","attempt":3,"deadline_ms":9,"error":""})",
                                SagaStepRetried{"o-1", std::nullopt, 3, 9, ""});
  expect_stored_as<saga::Event>(
      "SagaEnded",
      R"({"order_id":"o-1","state":"COMPENSATED","reason":"out_of_stock:p-1","steps":[)"
      R"({"name":"reserve","status":"failed","attempts":1,"last_error":"","at_ms":5},)"
      R"({"name":"compensate","status":"completed","attempts":2,"last_error":"deadline passed","at_ms":7}]})",
      SagaEnded{"o-1",
                SagaState::compensated,
                "out_of_stock:p-1",
                {{SagaStep::reserve, StepStatus::failed, 1, "", 5},
                 {SagaStep::compensate, StepStatus::completed, 2, "deadline passed", 7}}});
  expect_stored_as<saga::Event>("SagaEnded", R"({"order_id":"o-2","state":"COMPLETED","reason":"","steps":[]})",
                                SagaEnded{"o-2", SagaState::completed, "", {}});
  expect_stored_as<saga::DeadLetterEvent>(
      "DeadLetterRecorded",
      R"({"dead_letter_id":"d-1","order_id":"o-1","step":"reserve","attempts":3,"last_error":"deadline passed","at_ms":11})",
      DeadLetterRecorded{"d-1", "o-1", SagaStep::reserve, 3, "deadline passed", 11});
  expect_stored_as<saga::DeadLetterEvent>("DeadLetterRetried", R"({"dead_letter_id":"d-1","order_id":"o-1"})",
                                          DeadLetterRetried{"d-1", "o-1"});
}

TEST(DomainCodec, ASagaRecordThatDoesNotDecodeIsCorrupt) {
  for (auto [type, data] : std::initializer_list<std::pair<const char*, const char*>>{
           {"SagaEnded", R"({"order_id":"o","state":"DONE","reason":"","steps":[]})"},
           {"SagaEnded", R"({"order_id":"o","state":"COMPLETED","steps":[]})"},
           {"SagaStepRetried", R"({"order_id":"o","step":"ship","attempt":2,"deadline_ms":1,"error":""})"},
           {"SagaStepRetried", "[]"},
           {"DeadLetterRecorded", "{}"},
           {"Nope", "{}"}}) {
    auto saga = decode_event<domain::saga::Event>(type, data);
    auto letter = decode_event<domain::saga::DeadLetterEvent>(type, data);
    ASSERT_FALSE(saga) << type << " " << data;
    ASSERT_FALSE(letter) << type << " " << data;
    EXPECT_EQ(saga.error().code, Errc::corrupt);
    EXPECT_EQ(letter.error().code, Errc::corrupt);
  }
}

TEST(DomainCodec, StatesRoundTripForSnapshots) {
  product::State p{true, "p", "Mug", 5, 10, 3};
  auto p2 = decode_state<product::State>(encode_state(p));
  ASSERT_TRUE(p2);
  EXPECT_EQ(*p2, p);
  account::State a{true, "a", "Ann", 50};
  auto a2 = decode_state<account::State>(encode_state(a));
  ASSERT_TRUE(a2);
  EXPECT_EQ(*a2, a);
  order::State o = order::initial_state();
  o.exists = true;
  o.items = {{"p", 1, 2, 2}};
  o.status = order::OrderStatus::confirmed;
  o.cancellation_reason = "x";
  auto o2 = decode_state<order::State>(encode_state(o));
  ASSERT_TRUE(o2);
  EXPECT_EQ(o2->status, order::OrderStatus::confirmed);
  EXPECT_EQ(o2->items, o.items);
  EXPECT_EQ(o2->cancellation_reason, "x");
  EXPECT_FALSE(decode_state<order::State>(R"({"exists":true})"));
}

}  // namespace
}  // namespace orderflow::codec
