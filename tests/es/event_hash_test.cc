#include "es/event_hash.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "es/event_store.h"

namespace orderflow::es {
namespace {

RecordedEvent event(std::int64_t position, std::string data) {
  return RecordedEvent{"id-" + std::to_string(position), "order-1", "OrderPlaced", StreamVersion{position - 1},
                       Position{position}, 1, std::move(data), "{}", 1000 + position};
}

// A log held in memory, its hashes made by the chain and each row's checksum, for
// check_chain to walk. With a stride, like SQLite's: it shows the chain's hash only at
// every stride-th position and the last one, and no prev_hash.
struct MemoryLog : StoredLog {
  struct Row {
    RecordedEvent e;
    EventHash prev, hash;
    EventChecksum checksum;
  };
  std::vector<Row> rows;
  std::int64_t stride = 0;

  void append(RecordedEvent e) {
    const EventHash prev = rows.empty() ? kNoEventHash : rows.back().hash;
    const EventHash hash = event_hash(prev, hashed_fields(e));
    const EventChecksum checksum = event_checksum(hashed_fields(e));
    rows.push_back({std::move(e), prev, hash, checksum});
  }
  Result<Position> scan_stored(Position from, std::size_t max, const StoredFn& fn) override {
    Position next = from;
    for (const auto& r : rows)
      if (r.e.position >= from && max > 0) {
        StoredHashes stored{r.prev, r.hash, r.checksum};
        if (stride > 0) {
          stored.prev_hash.reset();
          if (r.e.position.value() % stride != 0 && &r != &rows.back()) stored.hash.reset();
        }
        fn(r.e, stored);
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

// Each a change of one stored field of event(7, ...); the last moves bytes from one text
// to the next (lengths go with the texts, so that is a change too).
const std::vector<std::function<void(RecordedEvent&)>> kFieldChanges = {
    [](RecordedEvent& c) { c.position = Position{8}; },
    [](RecordedEvent& c) { c.event_id = "id-x"; },
    [](RecordedEvent& c) { c.stream_id = "order-2"; },
    [](RecordedEvent& c) { c.version = StreamVersion{1}; },
    [](RecordedEvent& c) { c.type = "OrderPlacee"; },
    [](RecordedEvent& c) { c.schema_version = 2; },
    [](RecordedEvent& c) { c.data = R"({"a":2})"; },
    [](RecordedEvent& c) { c.metadata = "{ }"; },
    [](RecordedEvent& c) { c.recorded_at_ms = 1; },
    [](RecordedEvent& c) {
      c.stream_id = "order-1O";
      c.type = "rderPlaced";
    },
};

TEST(EventHash, EveryFieldAndThePreviousHashCount) {
  const auto e = event(7, R"({"a":1})");
  const auto h = event_hash(kNoEventHash, hashed_fields(e));
  EXPECT_EQ(h, event_hash(kNoEventHash, hashed_fields(e)));
  EventHash other_prev{};
  other_prev[31] = 1;
  EXPECT_NE(h, event_hash(other_prev, hashed_fields(e)));
  for (std::size_t i = 0; i < kFieldChanges.size(); ++i) {
    auto c = e;
    kFieldChanges[i](c);
    EXPECT_NE(h, event_hash(kNoEventHash, hashed_fields(c))) << "change " << i;
  }
}

// The checksum covers what the hash does.
TEST(EventChecksum, EveryFieldCounts) {
  const auto e = event(7, R"({"a":1})");
  const auto sum = event_checksum(hashed_fields(e));
  EXPECT_EQ(sum, event_checksum(hashed_fields(e)));
  EXPECT_TRUE(check_event_checksum(e, sum));
  for (std::size_t i = 0; i < kFieldChanges.size(); ++i) {
    auto c = e;
    kFieldChanges[i](c);
    EXPECT_NE(sum, event_checksum(hashed_fields(c))) << "change " << i;
  }
  auto long_texts = e;  // past the block kept on the stack
  long_texts.stream_id = StreamId(std::string(300, 's'));
  const auto long_sum = event_checksum(hashed_fields(long_texts));
  EXPECT_EQ(long_sum, event_checksum(hashed_fields(long_texts)));
  long_texts.stream_id = StreamId(std::string(299, 's') + 't');
  EXPECT_NE(long_sum, event_checksum(hashed_fields(long_texts)));
  auto refused = check_event_checksum(e, sum ^ 1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::corrupt);
  EXPECT_NE(refused.error().message.find("position 7 (stream order-1 version 6)"), std::string::npos)
      << refused.error().message;
}

// Format 4's checksum covered the row's two hashes as well.
TEST(EventChecksum, Format4CoversBothHashes) {
  const auto e = event(7, R"({"a":1})");
  EventHash prev{}, hash{};
  hash[0] = 9;
  const auto sum = format4_checksum(hashed_fields(e), prev, hash);
  EXPECT_NE(sum, event_checksum(hashed_fields(e)));
  auto flipped = [](EventHash h, int byte) {
    h[static_cast<std::size_t>(byte)] ^= 0x10;
    return h;
  };
  EXPECT_NE(sum, format4_checksum(hashed_fields(e), flipped(prev, 0), hash));
  EXPECT_NE(sum, format4_checksum(hashed_fields(e), prev, flipped(hash, 31)));
  auto c = e;
  c.data = R"({"a":2})";
  EXPECT_NE(sum, format4_checksum(hashed_fields(c), prev, hash));
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
  for (std::int64_t p = 1; p <= 30; ++p) log.append(event(p, "{}"));
  EXPECT_TRUE(breaks_of(log).empty());
}

TEST(CheckChain, AChangedFieldIsABreakAtItsPosition) {
  MemoryLog log;
  for (std::int64_t p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  log.rows[2].e.data = R"({"x":1})";
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 3 (stream order-1 version 2)"), std::string::npos) << breaks[0];
}

// Rewriting an event with its own hash and checksum still breaks the link from the event after it.
TEST(CheckChain, AnEventRewrittenWithItsHashBreaksTheNextLink) {
  MemoryLog log;
  for (std::int64_t p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  auto& r = log.rows[2];
  r.e.data = R"({"x":1})";
  r.hash = event_hash(r.prev, hashed_fields(r.e));
  r.checksum = event_checksum(hashed_fields(r.e));
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("chain is broken at position 4 "), std::string::npos) << breaks[0];
}

TEST(CheckChain, AStoredChecksumThatDoesNotMatchIsABreakAtItsPosition) {
  MemoryLog log;
  for (std::int64_t p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  log.rows[1].checksum ^= 1;
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 2 (stream order-1 version 1)"), std::string::npos) << breaks[0];
  EXPECT_NE(breaks[0].find("checksum"), std::string::npos) << breaks[0];
}

TEST(CheckChain, ARemovedEventIsNoticed) {
  MemoryLog log;
  for (std::int64_t p = 1; p <= 5; ++p) log.append(event(p, "{}"));
  log.rows.erase(log.rows.begin() + 1);
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 2u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 2 is missing"), std::string::npos) << breaks[0];
  EXPECT_NE(breaks[1].find("chain is broken at position 3 "), std::string::npos) << breaks[1];
}

// A row's data changed and its checksum recomputed, as a tamperer would.
void rewrite(MemoryLog::Row& r) {
  r.e.data = R"({"x":1})";
  r.checksum = event_checksum(hashed_fields(r.e));
}

// 30 events, the chain's hash shown at 8, 16, 24 and 30.
MemoryLog strided_log() {
  MemoryLog log;
  log.stride = 8;
  for (std::int64_t p = 1; p <= 30; ++p) log.append(event(p, "{}"));
  return log;
}

// Where the chain's hash is stored at some rows only, a rewritten event (its checksum
// recomputed) breaks the chain at the next stored hash, named as the range since the last.
TEST(CheckChain, WithHashesAtSomeRowsOnlyARewrittenEventIsARangeBreak) {
  auto log = strided_log();
  EXPECT_TRUE(breaks_of(log).empty());
  rewrite(log.rows[10]);  // position 11
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("between positions 9 and 16"), std::string::npos) << breaks[0];
}

// A row whose checksum fails is named alone: the range break it causes is not repeated.
TEST(CheckChain, WithHashesAtSomeRowsOnlyARottedRowIsNamedOnce) {
  auto log = strided_log();
  log.rows[10].e.data = R"({"x":1})";  // its checksum not recomputed
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 11 (stream order-1 version 10)"), std::string::npos) << breaks[0];
}

// The last event's hash is stored too: a rewrite after the last stride is seen.
TEST(CheckChain, WithHashesAtSomeRowsOnlyTheNewestEventsAreCoveredByTheHead) {
  auto log = strided_log();
  rewrite(log.rows[28]);  // position 29
  auto breaks = breaks_of(log);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("between positions 25 and 30"), std::string::npos) << breaks[0];
}

}  // namespace
}  // namespace orderflow::es
