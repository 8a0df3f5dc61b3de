#include "app/aggregate_cache.h"

#include <gtest/gtest.h>

namespace orderflow::app {
namespace {

using Cache = AggregateCache<int>;

std::shared_ptr<const int> state(int v) { return std::make_shared<const int>(v); }

TEST(AggregateCacheTest, EntriesOnlyMoveForward) {
  Cache cache(8);
  cache.put("s-1", state(3), es::StreamVersion{3}, true);
  cache.put("s-1", state(2), es::StreamVersion{2}, true);
  auto hit = cache.get("s-1", false);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->state, 3);
  EXPECT_EQ(hit->version, 3);
}

// At one version: what the store holds wins over a pending state, and of two pending
// states the one told last (the state this process's appends in flight lead to; the
// other was a guess) is kept, with its mark.
TEST(AggregateCacheTest, AtOneVersionCommittedWinsAndThePendingStateToldLastReplacesAGuess) {
  Cache cache(8);
  cache.put("s-1", state(10), es::StreamVersion{4}, false, 7);
  cache.put("s-1", state(11), es::StreamVersion{4}, false, 9);
  auto hit = cache.get("s-1", false);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->state, 11);
  EXPECT_EQ(hit->mark, 9u);
  EXPECT_FALSE(cache.get("s-1", true));

  cache.put("s-1", state(12), es::StreamVersion{4}, true);
  hit = cache.get("s-1", true);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->state, 12);
  EXPECT_EQ(hit->mark, 0u);
  cache.put("s-1", state(13), es::StreamVersion{4}, false, 11);  // a guess after the fact
  EXPECT_EQ(*cache.get("s-1", false)->state, 12);
}

TEST(AggregateCacheTest, ARefusedAppendDropsWhatWasDecidedOnIt) {
  Cache cache(8);
  cache.put("s-1", state(1), es::StreamVersion{1}, true);
  cache.put("s-1", state(3), es::StreamVersion{3}, false, 5);  // decided behind the refused one
  cache.forget_refused("s-1", es::StreamVersion{1}, es::StreamVersion{2});
  EXPECT_FALSE(cache.get("s-1", false));
}

// A full cache drops the committed entries put least recently, down to half its limit:
// an order's state, put at its placement and again at each of its saga's steps, stays
// while older orders go. Pending entries always stay.
TEST(AggregateCacheTest, AFullCacheDropsTheLeastRecentlyPutCommittedEntriesFirst) {
  Cache cache(4);
  cache.put("s-1", state(1), es::StreamVersion{0}, true);
  cache.put("s-2", state(2), es::StreamVersion{0}, false, 1);  // pending
  cache.put("s-3", state(3), es::StreamVersion{0}, true);
  cache.put("s-4", state(4), es::StreamVersion{0}, true);
  cache.put("s-1", state(11), es::StreamVersion{1}, true);  // used again
  cache.put("s-5", state(5), es::StreamVersion{0}, true);   // full: down to 2, then s-5
  EXPECT_TRUE(cache.get("s-1", true));
  EXPECT_TRUE(cache.get("s-2", false)) << "a pending entry stays";
  EXPECT_FALSE(cache.get("s-3", false));
  EXPECT_FALSE(cache.get("s-4", false));
  EXPECT_TRUE(cache.get("s-5", true));
}

}  // namespace
}  // namespace orderflow::app
