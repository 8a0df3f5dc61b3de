#include "store/sqlite/stream_index_backlog.h"

#include <gtest/gtest.h>

namespace orderflow::sqlite {
namespace {

using Entry = StreamIndexBacklog::Entry;

// Entries written as {version, position} pairs.
std::vector<Entry> entries(std::initializer_list<std::pair<std::int64_t, std::int64_t>> pairs) {
  std::vector<Entry> out;
  for (auto [version, position] : pairs) out.push_back(Entry{es::StreamVersion{version}, es::Position{position}});
  return out;
}

std::size_t picked_entries(const StreamIndexBacklog::Pick& p) {
  std::size_t n = 0;
  for (const auto& [stream, entries] : p.streams) n += entries.size();
  return n;
}

TEST(StreamIndexBacklog, ReadersSeeEntriesUpToAPosition) {
  StreamIndexBacklog b(100);
  b.add("s", entries({{0, 1}, {1, 3}}));
  b.add("s", entries({{2, 7}}));
  ASSERT_EQ(b.entries("s", es::Position{3}).size(), 2u);
  EXPECT_EQ(b.entries("s", es::Position{100}).back().version, 2);
  EXPECT_TRUE(b.entries("other", es::Position{100}).empty());
  EXPECT_EQ(b.last("s", es::Position{6})->version, 1);
  EXPECT_FALSE(b.last("s", es::Position{0}));
  EXPECT_EQ(b.size(), 3u);
}

// After a failed batch, the store forgets the entries of every position past the last
// durable one; what is left still bounds indexed_below.
TEST(StreamIndexBacklog, ForgetsEverythingPastAPosition) {
  StreamIndexBacklog b(0);
  b.add("a", entries({{0, 1}, {1, 4}}));
  b.add("b", entries({{0, 2}}));
  b.add("c", entries({{0, 5}, {1, 6}}));
  b.forget_after(es::Position{3});
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.last("a", es::Position{100})->version, 0);
  EXPECT_EQ(b.last("b", es::Position{100})->version, 0);
  EXPECT_FALSE(b.last("c", es::Position{100}));
  b.add("c", entries({{0, 4}}));  // position 4 again, written by the next batch
  EXPECT_EQ(b.last("c", es::Position{100})->position, 4);
  auto p = b.pick(1, es::Position{5});
  EXPECT_EQ(p.indexed_below, 2);  // "a" picked first; b's position 2 is left
  b.drop(p);
  b.forget_after(es::Position{0});
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.pick(1, es::Position{5}).indexed_below, 5);
}

TEST(StreamIndexBacklog, NothingIsPickedBelowTheTarget) {
  StreamIndexBacklog b(4);
  b.add("a", entries({{0, 1}, {1, 2}, {2, 3}}));
  auto p = b.pick(10, es::Position{4});
  EXPECT_TRUE(p.streams.empty());
  EXPECT_EQ(p.indexed_below, 1);  // position 1 is still only here
}

// What is kept follows the rate: the entries added over the last window, within bounds.
// A burst is kept whole; once the appends slow down, the minimum.
TEST(StreamIndexBacklog, KeepsTheEntriesOfTheLastWindowWithinItsBounds) {
  using namespace std::chrono_literals;
  StreamIndexBacklog b(StreamIndexBacklog::Limits{2, 6, 10s});
  const auto t0 = StreamIndexBacklog::Clock::time_point{} + 1h;
  EXPECT_TRUE(b.pick(1, es::Position{1}, t0).streams.empty());  // the first mark; nothing here yet
  es::Position next{1};
  auto add = [&](const es::StreamId& stream, int n) {
    for (int i = 0; i < n; ++i, ++next) b.add(stream, entries({{next.value(), next.value()}}));
  };
  add("a", 3);
  add("b", 2);
  // 5 added in the window: 5 kept, so nothing moves.
  EXPECT_TRUE(b.pick(1, next, t0 + 1s).streams.empty());
  add("c", 3);
  // 8 added in the window, at most 6 kept: 8 here, so some move.
  auto p = b.pick(1, next, t0 + 2s);
  ASSERT_FALSE(p.streams.empty());
  b.drop(p);
  EXPECT_EQ(b.size(), 5u);  // "a" went, 3 entries
  // Twenty seconds without an append: the window holds none, so the minimum is kept.
  EXPECT_EQ(picked_entries(b.pick(10, next, t0 + 22s)), 5u);
}

// Picks go round the streams in key order, whole streams at a time, and what stays
// bounds indexed_below.
TEST(StreamIndexBacklog, PicksWholeStreamsInTurnAndTracksTheOldestLeft) {
  StreamIndexBacklog b(0);
  b.add("c", entries({{0, 1}}));
  b.add("a", entries({{0, 2}, {1, 3}}));
  b.add("b", entries({{0, 4}}));
  auto p = b.pick(2, es::Position{5});
  ASSERT_EQ(p.streams.size(), 1u);
  EXPECT_EQ(p.streams[0].first, "a");
  EXPECT_EQ(picked_entries(p), 2u);
  EXPECT_EQ(p.indexed_below, 1);  // "c" at position 1 stays
  b.drop(p);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_TRUE(b.entries("a", es::Position{100}).empty());

  p = b.pick(2, es::Position{5});
  ASSERT_EQ(p.streams.size(), 2u);
  EXPECT_EQ(p.streams[0].first, "b");
  EXPECT_EQ(p.streams[1].first, "c");
  EXPECT_EQ(p.indexed_below, 5);  // nothing left: all below the next position
  b.drop(p);
  EXPECT_EQ(b.size(), 0u);

  b.add("a", entries({{2, 5}}));
  p = b.pick(1, es::Position{6});  // wraps around to the start
  ASSERT_EQ(p.streams.size(), 1u);
  EXPECT_EQ(p.streams[0].first, "a");
}

// Entries added after a pick (the writer adds its batch after the commit) survive its drop.
TEST(StreamIndexBacklog, DropKeepsEntriesAddedAfterThePick) {
  StreamIndexBacklog b(0);
  b.add("a", entries({{0, 1}}));
  auto p = b.pick(1, es::Position{2});
  b.add("a", entries({{1, 2}}));
  b.drop(p);
  auto left = b.entries("a", es::Position{100});
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].version, 1);
  EXPECT_EQ(b.pick(1, es::Position{3}).streams.at(0).second.front().version, 1);
}

}  // namespace
}  // namespace orderflow::sqlite
