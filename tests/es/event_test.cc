#include "es/event.h"

#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <sstream>
#include <type_traits>
#include <unordered_set>

#include "core/result.h"
#include "es/append_pipeline.h"
#include "es/event_store.h"

namespace orderflow::es {
namespace {

// What must not compile: a position where a version is expected, and the other way round.
static_assert(!std::is_convertible_v<Position, StreamVersion>);
static_assert(!std::is_convertible_v<StreamVersion, Position>);
static_assert(!std::is_constructible_v<Position, StreamVersion>);
static_assert(!std::is_constructible_v<StreamVersion, Position>);
static_assert(!std::is_assignable_v<Position&, StreamVersion>);
// Nor a bare integer, unless said so: Position{3}.
static_assert(!std::is_convertible_v<std::int64_t, Position>);
static_assert(!std::is_convertible_v<std::int64_t, StreamVersion>);
// Nor the number without .value(): it would let the two meet again as integers.
static_assert(!std::is_convertible_v<Position, std::int64_t>);
static_assert(!std::is_convertible_v<StreamVersion, std::int64_t>);

// Swapped in the structs built positionally (C++20 aggregates take parentheses too).
static_assert(std::is_constructible_v<AppendResult, StreamVersion, Position>);
static_assert(!std::is_constructible_v<AppendResult, Position, StreamVersion>);
static_assert(!std::is_constructible_v<Snapshot, std::string, Position>);
static_assert(!std::is_constructible_v<StoredEventRef, std::string, Position, StreamVersion>);
static_assert(!std::is_constructible_v<HashedFields, StreamVersion>);
static_assert(!std::is_constructible_v<Error, Errc, std::string, Position>);
static_assert(!std::is_assignable_v<std::optional<StreamVersion>&, Position>);
static_assert(!std::is_invocable_v<decltype(&ExpectedVersion::exact), Position>);
static_assert(!std::is_invocable_r_v<void, decltype(&CheckpointStore::save_checkpoint), CheckpointStore&,
                                     const std::string&, StreamVersion>);

// Compared, added or subtracted only within a kind.
template <class A, class B>
concept Comparable = requires(A a, B b) { a < b; a == b; };
template <class A, class B>
concept Addable = requires(A a, B b) { a + b; };
template <class A, class B>
concept Subtractable = requires(A a, B b) { a - b; };
static_assert(!Comparable<Position, StreamVersion>);
static_assert(!Comparable<StreamVersion, Position>);
static_assert(!Addable<Position, StreamVersion>);
static_assert(!Addable<Position, Position>);
static_assert(!Subtractable<Position, StreamVersion>);
static_assert(Comparable<Position, Position>);
static_assert(Comparable<Position, int>);
static_assert(std::is_same_v<decltype(Position{} + 1), Position>);
static_assert(std::is_same_v<decltype(StreamVersion{} - 1), StreamVersion>);
static_assert(std::is_same_v<decltype(Position{} - Position{}), std::int64_t>);

// A stream id is made from text only when said so: an event id, a type or a customer id
// (all std::string) does not become one by itself, nor does a stream id become text.
static_assert(!std::is_convertible_v<std::string, StreamId>);
static_assert(!std::is_convertible_v<std::string_view, StreamId>);
static_assert(!std::is_convertible_v<const char*, StreamId>);
static_assert(!std::is_convertible_v<StreamId, std::string>);
static_assert(!std::is_convertible_v<StreamId, std::string_view>);
static_assert(!std::is_assignable_v<StreamId&, std::string>);
static_assert(!std::is_assignable_v<std::string&, StreamId>);
// A literal does: it is written as the stream id it is.
static_assert(std::is_convertible_v<const char (&)[8], StreamId>);
// Swapped with the event id beside it in the structs built positionally.
static_assert(!std::is_constructible_v<RecordedEvent, std::string, std::string>);
static_assert(std::is_constructible_v<RecordedEvent, std::string, StreamId>);
static_assert(!std::is_constructible_v<StoredEventRef, std::string, StreamVersion, Position>);
static_assert(!std::is_constructible_v<AppendRequest, std::string, ExpectedVersion>);
static_assert(!std::is_invocable_v<decltype(&EventStore::stream_version), EventStore&, const std::string&>);

// As cheap as the integer they hold.
static_assert(sizeof(Position) == sizeof(std::int64_t));
static_assert(std::is_trivially_copyable_v<Position>);

TEST(StreamId, HoldsItsTextAndComparesWithItsKindAndWithText) {
  const StreamId id(std::string("order-42"));
  EXPECT_EQ(id.str(), "order-42");
  EXPECT_EQ(id.category(), "order");
  EXPECT_EQ(id, StreamId("order-42"));
  EXPECT_EQ(id, std::string_view("order-42"));
  EXPECT_TRUE(id == "order-42");
  EXPECT_FALSE(id == "order-4");
  EXPECT_LT(StreamId("a-1"), StreamId("a-2"));
  EXPECT_EQ(StreamId("deadletters").category(), "deadletters");
  EXPECT_EQ(std::hash<StreamId>{}(id), std::hash<std::string_view>{}("order-42"));
  StreamId reused("product-1");
  reused.assign("account-7");
  EXPECT_EQ(reused, "account-7");
  EXPECT_TRUE(StreamId().empty());
}

TEST(StrongInt, OffsetsKeepTheKindAndADistanceIsAnInteger) {
  Position p{10};
  EXPECT_EQ((p + 5).value(), 15);
  EXPECT_EQ((p - 3).value(), 7);
  EXPECT_EQ(Position{15} - p, 5);
  EXPECT_EQ(p - Position{15}, -5);
  p += 2;
  EXPECT_EQ(p, Position{12});
  p -= 4;
  EXPECT_EQ(p, Position{8});
  EXPECT_EQ((++p).value(), 9);
  EXPECT_EQ((p++).value(), 9);
  EXPECT_EQ(p.value(), 10);
}

TEST(StrongInt, OrdersWithinItsKindAndAgainstPlainIntegers) {
  EXPECT_LT(Position{1}, Position{2});
  EXPECT_GT(StreamVersion{0}, kNoStream);
  EXPECT_EQ(kNoStream, -1);
  EXPECT_TRUE(Position{3} > 2);
  EXPECT_TRUE(0 < Position{3});
  EXPECT_NE(Position{3}, 4);
  EXPECT_EQ(Position{}, 0) << "a default position is 0";
  EXPECT_EQ(std::max(Position{4}, Position{7}), Position{7});
  // Not the primary template's 0: `least = max(); least = min(least, p)` finds the least.
  EXPECT_EQ(std::numeric_limits<Position>::max().value(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(std::numeric_limits<StreamVersion>::min().value(), std::numeric_limits<std::int64_t>::min());
}

TEST(StrongInt, WritesAndHashesAsItsNumber) {
  EXPECT_EQ(to_string(Position{42}), "42");
  EXPECT_EQ(to_string(kNoStream), "-1");
  std::ostringstream os;
  os << StreamVersion{7} << '/' << Position{8};
  EXPECT_EQ(os.str(), "7/8");
  std::unordered_set<Position> seen{Position{1}, Position{2}, Position{1}};
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.contains(Position{2}));
}

TEST(StrongInt, AnAppendResultNamesItsFieldsWhereverItIsBuilt) {
  const AppendResult r{StreamVersion{3}, Position{17}};
  EXPECT_EQ(r.version.value(), 3);
  EXPECT_EQ(r.position.value(), 17);
  EXPECT_TRUE(ExpectedVersion::exact(StreamVersion{3}).matches(r.version));
  EXPECT_FALSE(ExpectedVersion::no_stream().matches(r.version));
}

}  // namespace
}  // namespace orderflow::es
