#include "es/event_tail.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orderflow::es {
namespace {

RecordedEvent event_at(std::int64_t position, StreamId stream_id = "order-1", std::string type = "OrderPlaced") {
  RecordedEvent e;
  e.event_id = "e" + std::to_string(position);
  e.stream_id = std::move(stream_id);
  e.type = std::move(type);
  e.position = Position{position};
  e.data = "{}";
  e.metadata = "{}";
  return e;
}

std::vector<RecordedEvent> events(std::int64_t from, std::int64_t to) {
  std::vector<RecordedEvent> out;
  for (auto p = from; p <= to; ++p) out.push_back(event_at(p));
  return out;
}

struct Scanned {
  std::optional<Position> next;
  std::vector<std::int64_t> positions;
};

Scanned scan(const EventTail& tail, std::int64_t from, std::size_t max = 1000, const EventFilter& filter = {}) {
  Scanned s;
  s.next = tail.scan(Position{from}, max, filter, [&](const RecordedEvent& e) { s.positions.push_back(e.position.value()); });
  return s;
}

TEST(EventTail, CoversNothingBeforeTheFirstPush) {
  EventTail tail;
  EXPECT_FALSE(tail.covered_from());
  EXPECT_FALSE(scan(tail, 1).next);
}

TEST(EventTail, ServesFromTheFirstPushedPositionOn) {
  EventTail tail;
  tail.push(events(5, 9));
  EXPECT_EQ(tail.covered_from(), 5);
  EXPECT_FALSE(scan(tail, 4).next) << "position 4 may be in the database only";
  auto s = scan(tail, 7);
  EXPECT_EQ(s.positions, (std::vector<std::int64_t>{7, 8, 9}));
  EXPECT_EQ(s.next, 10);
}

TEST(EventTail, PastTheEndAnswersNothingMoreYet) {
  EventTail tail;
  tail.push(events(1, 3));
  auto s = scan(tail, 4);
  EXPECT_TRUE(s.positions.empty());
  EXPECT_EQ(s.next, 4);
}

TEST(EventTail, MaxCountsMatchingEventsAndNextIsOnePastTheLastExamined) {
  EventTail tail;
  tail.push({event_at(1, "order-1"), event_at(2, "product-1"), event_at(3, "order-2"), event_at(4, "product-2"),
             event_at(5, "order-3")});
  EventFilter orders;
  orders.categories = {"order"};
  auto s = scan(tail, 1, 2, orders);
  EXPECT_EQ(s.positions, (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(s.next, 4);
  s = scan(tail, 4, 2, orders);
  EXPECT_EQ(s.positions, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(s.next, 6);
}

TEST(EventTail, AFilterThatMatchesNothingStillAdvancesToTheEnd) {
  EventTail tail;
  tail.push(events(1, 50));
  EventFilter none;
  none.types = {"NoSuchType"};
  auto s = scan(tail, 1, 10, none);
  EXPECT_TRUE(s.positions.empty());
  EXPECT_EQ(s.next, 51);
}

TEST(EventTail, PositionsMayHaveGaps) {
  EventTail tail;
  tail.push({event_at(2), event_at(5)});
  tail.push({event_at(9)});
  EXPECT_EQ(scan(tail, 3).positions, (std::vector<std::int64_t>{5, 9}));
  EXPECT_EQ(scan(tail, 3).next, 10);
}

TEST(EventTail, DropsTheOldestPastTheEventLimitAndStopsCoveringThem) {
  EventTail tail(EventTailLimits{10, 1u << 30});
  tail.push(events(1, 25));
  EXPECT_EQ(tail.covered_from(), 16);
  EXPECT_FALSE(scan(tail, 15).next);
  EXPECT_EQ(scan(tail, 16).positions.size(), 10u);
}

TEST(EventTail, DropsTheOldestPastTheByteLimit) {
  EventTail tail(EventTailLimits{1000, 4096});
  std::vector<RecordedEvent> big;
  for (std::int64_t p = 1; p <= 8; ++p) {
    big.push_back(event_at(p));
    big.back().data.assign(1000, 'x');
  }
  tail.push(std::move(big));
  ASSERT_TRUE(tail.covered_from());
  EXPECT_GT(*tail.covered_from(), 4);
  auto s = scan(tail, tail.covered_from()->value());
  EXPECT_EQ(s.positions.back(), 8);
  EXPECT_EQ(s.next, 9);
}

TEST(EventTail, ClearCoversAgainOnlyFromTheNextPush) {
  EventTail tail;
  tail.push(events(1, 5));
  tail.clear();
  EXPECT_FALSE(scan(tail, 3).next);
  tail.push(events(8, 9));
  EXPECT_FALSE(scan(tail, 6).next) << "6 and 7 were never pushed after the clear";
  EXPECT_EQ(scan(tail, 8).positions, (std::vector<std::int64_t>{8, 9}));
}

TEST(EventTail, CoverUntilCoversAnEmptyTailFromThereAndEndsScansThere) {
  EventTail tail;
  tail.cover_until(Position{10});
  EXPECT_EQ(tail.covered_from(), 10);
  EXPECT_FALSE(scan(tail, 9).next) << "position 9 was never examined";
  auto s = scan(tail, 10);
  EXPECT_TRUE(s.positions.empty());
  EXPECT_EQ(s.next, 10) << "nothing more yet";
  tail.push(events(10, 11));
  tail.cover_until(Position{15});  // a reader found nothing more through 14
  s = scan(tail, 10);
  EXPECT_EQ(s.positions, (std::vector<std::int64_t>{10, 11}));
  EXPECT_EQ(s.next, 15);
  EXPECT_EQ(tail.covered_from(), 10) << "a tail holding events keeps covering from its oldest";
  tail.clear();
  tail.cover_until(Position{20});
  EXPECT_FALSE(scan(tail, 15).next) << "15 to 19 are not held after the clear";
  EXPECT_EQ(scan(tail, 20).next, 20);
}

TEST(EventTailDeathTest, RefusesPositionsOutOfOrder) {
  EventTail tail;
  tail.push(events(5, 6));
  EXPECT_DEATH(tail.push(events(3, 3)), "out of position order");
  EXPECT_DEATH(tail.cover_until(Position{6}), "before the last event pushed");
}

}  // namespace
}  // namespace orderflow::es
