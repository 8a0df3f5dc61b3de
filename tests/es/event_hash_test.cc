#include "es/event_hash.h"

#include <gtest/gtest.h>

#include "es/event_store.h"

namespace orderflow::es {
namespace {

RecordedEvent event(Position position, std::string data) {
  return RecordedEvent{"id-" + std::to_string(position), "order-1", "OrderPlaced", position - 1, position, 1,
                       std::move(data), "{}", 1000 + position};
}

// A log held in memory, its hashes made by the chain, for check_chain to walk.
struct MemoryLog : StoredLog {
  struct Row {
    RecordedEvent e;
    EventHash prev, hash;
  };
  std::vector<Row> rows;

  void append(RecordedEvent e) {
    const EventHash prev = rows.empty() ? kNoEventHash : rows.back().hash;
    const EventHash hash = event_hash(prev, hashed_fields(e));
    rows.push_back({std::move(e), prev, hash});
  }
  Result<Position> scan_stored(Position from, std::size_t max, const StoredFn& fn) override {
    Position next = from;
    for (const auto& r : rows)
      if (r.e.position >= from && max > 0) {
        fn(r.e, r.prev, r.hash);
        next = r.e.position + 1;
        --max;
      }
    return next;
  }
};

std::vector<std::string> breaks_of(MemoryLog& log) {
  std::vector<std::string> breaks;
  check_chain(log, breaks);
  return breaks;
}

TEST(EventHash, EveryFieldAndThePreviousHashCount) {
  const auto e = event(7, R"({"a":1})");
  const auto h = event_hash(kNoEventHash, hashed_fields(e));
  EXPECT_EQ(h, event_hash(kNoEventHash, hashed_fields(e)));
  EventHash other_prev{};
  other_prev[31] = 1;
  EXPECT_NE(h, event_hash(other_prev, hashed_fields(e)));
  auto changed = [&](auto change) {
    auto c = e;
    change(c);
    return event_hash(kNoEventHash, hashed_fields(c));
  };
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.position = 8; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.event_id = "id-x"; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.stream_id = "order-2"; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.version = 1; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.type = "OrderPlacee"; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.schema_version = 2; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.data = R"({"a":2})"; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.metadata = "{ }"; }));
  EXPECT_NE(h, changed([](RecordedEvent& c) { c.recorded_at_ms = 1; }));
  // Lengths go with the texts: bytes moved from one field to the next are a change.
  EXPECT_NE(h, changed([](RecordedEvent& c) {
    c.stream_id = "order-1O";
    c.type = "rderPlaced";
  }));
}

TEST(EventHash, HexRoundTrip) {
  const auto h = event_hash(kNoEventHash, hashed_fields(event(1, "{}")));
  EventHash back{};
  ASSERT_TRUE(hash_from_hex(to_hex(h), back));
  EXPECT_EQ(back, h);
  EXPECT_FALSE(hash_from_hex(to_hex(h).substr(1), back));
  EXPECT_FALSE(hash_from_hex(std::string(64, 'g'), back));
}

TEST(CheckChain, AnUntouchedLogHasNoBreaks) {
  MemoryLog log;
  for (Position p = 1; p <= 30; ++p) log.append(event(p, "{}"));
  EXPECT_TRUE(breaks_of(log).empty());
}

TEST(CheckChain, AChangedFieldIsABreakAtItsPosition) {
  MemoryLog log;
  for (Position p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  log.rows[2].e.data = R"({"x":1})";
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 3 (stream order-1 version 2)"), std::string::npos) << breaks[0];
}

// Rewriting an event and its own hash still breaks the link from the event after it.
TEST(CheckChain, AnEventRewrittenWithItsHashBreaksTheNextLink) {
  MemoryLog log;
  for (Position p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  auto& r = log.rows[2];
  r.e.data = R"({"x":1})";
  r.hash = event_hash(r.prev, hashed_fields(r.e));
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("chain is broken at position 4 "), std::string::npos) << breaks[0];
}

TEST(CheckChain, ARemovedEventIsNoticed) {
  MemoryLog log;
  for (Position p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  log.rows.erase(log.rows.begin() + 1);
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 2u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 2 is missing"), std::string::npos) << breaks[0];
  EXPECT_NE(breaks[1].find("chain is broken at position 3 "), std::string::npos) << breaks[1];
}

}  // namespace
}  // namespace orderflow::es
