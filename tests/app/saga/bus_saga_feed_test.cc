// The reorder buffer of the saga fed from the bus (app/saga/bus_saga_feed.h): whatever order
// the bus delivers in (streams interleaved any way, each stream in order, repeats), the
// events are released in the log's exact order, positions that are not events included.
#include "app/saga/bus_saga_feed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace orderflow::app::saga {
namespace {

struct Logged {
  es::RecordedEvent event;
  es::Position previous{0};
};

// A log of `n` events over `streams` streams, with holes between positions (as a
// PostgreSQL sequence may leave them).
std::vector<Logged> make_log(int n, int streams, std::mt19937_64& rng) {
  std::vector<Logged> log;
  std::map<int, std::int64_t> versions;
  es::Position position{0}, previous{0};
  for (int i = 0; i < n; ++i) {
    position = position + static_cast<std::int64_t>(1 + (rng() % 4 == 0 ? rng() % 3 : 0));
    const int s = static_cast<int>(rng() % streams);
    es::RecordedEvent e;
    e.stream_id = es::StreamId("order-" + std::to_string(s));
    e.version = es::StreamVersion{versions[s]++};
    e.position = position;
    e.event_id = "e" + std::to_string(position.value());
    log.push_back({e, previous});
    previous = position;
  }
  return log;
}

// The bus's delivery: each stream's messages in order, streams interleaved at random.
std::vector<const Logged*> shuffle_across_streams(const std::vector<Logged>& log, std::mt19937_64& rng) {
  std::map<std::string, std::vector<const Logged*>> by_stream;
  for (const auto& l : log) by_stream[l.event.stream_id.str()].push_back(&l);
  std::vector<std::pair<std::string, std::size_t>> cursor;
  for (const auto& [s, events] : by_stream) cursor.emplace_back(s, 0);
  std::vector<const Logged*> out;
  while (!cursor.empty()) {
    const auto i = rng() % cursor.size();
    auto& [s, at] = cursor[i];
    out.push_back(by_stream[s][at++]);
    if (at == by_stream[s].size()) cursor.erase(cursor.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return out;
}

TEST(ReorderBuffer, ReleasesAShuffledDeliveryInTheLogsExactOrder) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const auto log = make_log(2000, 37, rng);
    const auto delivered = shuffle_across_streams(log, rng);
    std::size_t out_of_order = 0;
    for (std::size_t i = 1; i < delivered.size(); ++i)
      if (delivered[i]->event.position < delivered[i - 1]->event.position) ++out_of_order;
    ASSERT_GT(out_of_order, 500u) << "the delivery is shuffled";

    ReorderBuffer buffer(es::Position{1});
    std::vector<es::Position> released;
    std::size_t acked = 0, most_held = 0;
    std::uint64_t tag = 0;
    auto drain = [&] {
      for (;;) {
        auto ready = buffer.ready(1 + rng() % 50);  // batches of any size
        if (ready.events.empty()) return;
        for (const auto& e : ready.events) released.push_back(e.position);
        acked += buffer.release(ready.next).size();
      }
    };
    for (const auto* l : delivered) {
      ASSERT_TRUE(buffer.add(l->event, l->previous, ++tag));
      if (rng() % 5 == 0) {
        ASSERT_TRUE(buffer.add(l->event, l->previous, ++tag));  // a redelivery before its turn
      }
      most_held = std::max(most_held, buffer.size());
      drain();
      // Redeliveries of what was released are repeats, acknowledged at once.
      if (!released.empty() && rng() % 7 == 0) {
        es::RecordedEvent again;
        again.position = released[rng() % released.size()];
        EXPECT_FALSE(buffer.add(again, std::nullopt, ++tag));
      }
    }
    std::vector<es::Position> expected;
    for (const auto& l : log) expected.push_back(l.event.position);
    EXPECT_EQ(released, expected) << "seed " << seed;
    EXPECT_EQ(buffer.size(), 0u);
    EXPECT_FALSE(buffer.gap());
    EXPECT_EQ(buffer.next(), log.back().event.position + 1);
    EXPECT_GT(most_held, 1u) << "events waited for their turn";
    EXPECT_GE(acked, log.size());  // every copy of every event held is acknowledged once released
  }
}

TEST(ReorderBuffer, AnEventWaitsForItsPreviousPositionAndAGapIsShownUntilItComes) {
  ReorderBuffer buffer(es::Position{10});
  es::RecordedEvent a, b, c;
  a.position = es::Position{12};  // previous 10: 11 is not an event
  b.position = es::Position{15};  // previous 12
  c.position = es::Position{10};  // previous 7 (below next: folded)
  EXPECT_TRUE(buffer.add(b, es::Position{12}, 1));
  EXPECT_TRUE(buffer.ready(10).events.empty());
  EXPECT_EQ(buffer.gap(), es::Position{15});
  EXPECT_TRUE(buffer.add(a, es::Position{10}, 2));
  EXPECT_EQ(buffer.gap(), es::Position{12});  // 10 is still awaited
  EXPECT_TRUE(buffer.add(c, es::Position{7}, 3));
  auto ready = buffer.ready(10);
  ASSERT_EQ(ready.events.size(), 3u);
  EXPECT_EQ(ready.events[0].position, es::Position{10});
  EXPECT_EQ(ready.events[2].position, es::Position{15});
  EXPECT_EQ(ready.next, es::Position{16});
  EXPECT_EQ(buffer.release(ready.next), (std::vector<std::uint64_t>{3, 2, 1}));
  EXPECT_FALSE(buffer.gap());
}

TEST(ReorderBuffer, WithoutAPreviousPositionOnlyTheNextPositionIsReleasedAndTheStoreFillsTheRest) {
  ReorderBuffer buffer(es::Position{1});
  es::RecordedEvent e;
  e.position = es::Position{3};  // an older relay's message: no previous position
  EXPECT_TRUE(buffer.add(e, std::nullopt, 7));
  EXPECT_TRUE(buffer.ready(10).events.empty());
  EXPECT_EQ(buffer.gap(), es::Position{3});
  // What the feed does once the gap has waited: folds the store's events 1..3, then releases.
  EXPECT_EQ(buffer.release(es::Position{4}), (std::vector<std::uint64_t>{7}));
  EXPECT_EQ(buffer.next(), es::Position{4});
  EXPECT_EQ(buffer.size(), 0u);
  e.position = es::Position{4};
  EXPECT_TRUE(buffer.add(e, std::nullopt, 8));
  EXPECT_EQ(buffer.ready(10).events.size(), 1u);
}

}  // namespace
}  // namespace orderflow::app::saga
