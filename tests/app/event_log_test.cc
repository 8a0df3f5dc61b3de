// The log as the entrances read it: a stream's events (a missing one not_found only when
// asked), pages of the log that stop where the caller's page is full, an order's owner.
#include "app/event_log.h"

#include <gtest/gtest.h>

#include <random>

#include "app/saga/sim_event_store.h"

namespace orderflow::app {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void append(const es::StreamId& stream, const std::string& type, const std::string& data = "{}") {
    es::AppendRequest req;
    req.stream_id = stream;
    req.events.push_back({"e" + std::to_string(++events_), type, 1, data, "{}"});
    ASSERT_TRUE(store_.append(std::move(req)));
  }

  int events_ = 0;
  std::mt19937_64 rng_{1};
  orderflow::testing::SimEventStore store_{rng_};
  EventLog log_{store_};
};

TEST_F(EventLogTest, AMissingStreamIsNotFoundOnlyWhenItMustExist) {
  append("order-o1", "OrderPlaced");
  auto missing = log_.stream("order-o2", es::StreamVersion{0}, 10, true);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  auto empty = log_.stream("order-o2", es::StreamVersion{0}, 10, false);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  // Past its end, a stream that exists is an empty page, not a missing stream.
  auto past = log_.stream("order-o1", es::StreamVersion{5}, 10, true);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->empty());
}

TEST_F(EventLogTest, APageStopsAtTheFirstEventItsCallerRefusesAndSaysWhereTheNextStarts) {
  for (int i = 0; i < 250; ++i) append(es::StreamId(i % 2 ? "order-o" + std::to_string(i) : "product-p" + std::to_string(i)), "T");
  es::EventFilter orders;
  orders.categories = {"order"};
  std::vector<std::int64_t> taken;
  auto next = log_.page(es::Position{1}, 1000, orders, [&](const es::RecordedEvent& e) {
    if (taken.size() == 30) return false;
    taken.push_back(e.position.value());
    return true;
  }, 7);
  ASSERT_TRUE(next);
  ASSERT_EQ(taken.size(), 30u);
  EXPECT_EQ(taken.front(), 2);
  EXPECT_EQ(taken.back(), 60);
  EXPECT_EQ(*next, 62) << "the first order event left out starts the next page";

  taken.clear();
  next = log_.page(es::Position{241}, 1000, orders, [&](const es::RecordedEvent& e) {
    taken.push_back(e.position.value());
    return true;
  });
  ASSERT_TRUE(next);
  EXPECT_EQ(taken, (std::vector<std::int64_t>{242, 244, 246, 248, 250}));
  EXPECT_EQ(*next, 251) << "past the end of the log";

  taken.clear();
  next = log_.page(es::Position{1}, 3, {}, [&](const es::RecordedEvent& e) {
    taken.push_back(e.position.value());
    return true;
  });
  ASSERT_TRUE(next);
  EXPECT_EQ(taken, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(*next, 4) << "a page of `limit` events";
}

TEST_F(EventLogTest, AnOrdersOwnerIsTheCustomerOfItsFirstEvent) {
  append("order-o1", "OrderPlaced", R"({"order_id":"o1","customer_id":"c-7"})");
  append("order-o2", "OrderPlaced", R"({"order_id":"o2"})");
  EXPECT_EQ(log_.order_owner("o1").value(), "c-7");
  EXPECT_EQ(log_.order_owner("o3").value(), "") << "no such order";
  auto corrupt = log_.order_owner("o2");
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code, Errc::corrupt);
}

}  // namespace
}  // namespace orderflow::app
