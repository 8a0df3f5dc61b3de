#include "app/projections/read_model_db.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "app/projections/read_model_backends.h"

namespace orderflow::app::projections {
namespace {

TEST(WithGeneration, PutsTheSuffixWhereTheMarkerIsAndNowhereElse) {
  EXPECT_EQ(with_generation("CREATE INDEX IF NOT EXISTS orders_by_status{g} ON orders{g} (status)", 3),
            "CREATE INDEX IF NOT EXISTS orders_by_status_g3 ON orders_g3 (status)");
  // PostgreSQL's parameters, SQLite's, and string literals stay as written.
  EXPECT_EQ(with_generation("SELECT 'a {g} $1 ?1', n FROM t{g} WHERE id = $1 AND note = ?2", 12),
            "SELECT 'a {g} $1 ?1', n FROM t_g12 WHERE id = $1 AND note = ?2");
  // A quote written twice inside a literal does not end it.
  EXPECT_EQ(with_generation("SELECT 'it''s {g}' FROM t{g} WHERE x = '' AND y = '{g}'", 1),
            "SELECT 'it''s {g}' FROM t_g1 WHERE x = '' AND y = '{g}'");
}

// What a transaction was asked to run: each statement's text and parameters.
class RecordingTransaction final : public es::WriteTransaction {
 public:
  struct Statement {
    std::string sql;
    std::vector<std::string> params;  // integers as their digits
  };
  Result<void> run(const std::string& sql, std::span<const es::SqlValue> params) override {
    auto& s = statements.emplace_back(Statement{sql, {}});
    for (const auto& p : params)
      s.params.push_back(std::holds_alternative<std::int64_t>(p) ? std::to_string(std::get<std::int64_t>(p))
                                                                 : std::string(std::get<std::string_view>(p)));
    return {};
  }
  Result<void> query(const std::string&, std::span<const es::SqlValue>, const es::OnRow&) override {
    return fail(Errc::internal, "not asked");
  }
  std::vector<Statement> statements;
};

const es::SqlDialect kPostgres{'$', "BIGINT", "TEXT", ""};

TEST(BatchedRows, WritesRowsInStatementsOfPowersOfTwoRowsInTheOrderAdded) {
  int shapes_made = 0;
  BatchedRows rows(
      [&](int n) {
        ++shapes_made;
        return "INSERT INTO t (id, n) VALUES " + values_rows(kPostgres, n, 2);
      },
      2);
  for (int i = 0; i < 205; ++i) rows.add({"id" + std::to_string(i), std::int64_t{i}});
  RecordingTransaction tx;
  ASSERT_TRUE(rows.write(tx));
  std::vector<std::size_t> sizes;
  std::vector<std::string> params;
  for (const auto& s : tx.statements) {
    sizes.push_back(s.params.size() / 2);
    params.insert(params.end(), s.params.begin(), s.params.end());
  }
  // 205 = 3 x 64 + 8 + 4 + 1: never more than kMostRows in one statement.
  EXPECT_EQ(sizes, (std::vector<std::size_t>{64, 64, 64, 8, 4, 1}));
  ASSERT_EQ(params.size(), 410u);
  for (int i = 0; i < 205; ++i) {
    EXPECT_EQ(params[static_cast<std::size_t>(2 * i)], "id" + std::to_string(i));
    EXPECT_EQ(params[static_cast<std::size_t>(2 * i + 1)], std::to_string(i));
  }
  EXPECT_EQ(tx.statements[3].sql,
            "INSERT INTO t (id, n) VALUES ($1, $2), ($3, $4), ($5, $6), ($7, $8), ($9, $10), ($11, $12), ($13, $14), "
            "($15, $16)");
  EXPECT_EQ(shapes_made, 4) << "each shape is spelled once";

  EXPECT_TRUE(rows.empty()) << "written rows are forgotten";
  RecordingTransaction again;
  ASSERT_TRUE(rows.write(again));
  EXPECT_TRUE(again.statements.empty());
}

// A bus-fed projection of orders that keeps nothing but what TableProjection keeps for it:
// its copies (one empty table each) and their bus versions; with `applied`, each event its
// copies apply is noted there as "stream@version".
class VersionsOnly final : public TableProjection {
 public:
  VersionsOnly(es::ReadModelDb& db, const std::string& name, std::vector<std::string>* applied = nullptr)
      : TableProjection(db, name, es::EventFilter{.categories = {"order"}},
                        {"CREATE TABLE IF NOT EXISTS " + name + "{g} (id " + db.dialect().text + " PRIMARY KEY)" +
                         db.dialect().table_options},
                        {name + "{g}"}),
        applied_(applied) {}

 private:
  class Noting final : public CopyWriter {
   public:
    explicit Noting(std::vector<std::string>* applied) : applied_(applied) {}
    Result<void> apply(es::WriteTransaction&, std::span<const es::RecordedEvent> events) override {
      if (applied_)
        for (const auto& e : events) applied_->push_back(e.stream_id.str() + "@" + to_string(e.version));
      return {};
    }

   private:
    std::vector<std::string>* applied_;
  };
  std::unique_ptr<CopyWriter> writer(std::int64_t) override { return std::make_unique<Noting>(applied_); }

  std::vector<std::string>* applied_;
};

// Events of `stream@version` at positions from `first` on.
std::vector<es::RecordedEvent> events_of(std::initializer_list<std::pair<const char*, std::int64_t>> of,
                                         std::int64_t first) {
  std::vector<es::RecordedEvent> out;
  for (const auto& [stream, version] : of) {
    es::RecordedEvent e;
    e.stream_id = es::StreamId(std::string(stream));
    e.version = es::StreamVersion{version};
    e.position = es::Position{first++};
    out.push_back(e);
  }
  return out;
}

// The first event of each of `streams`, at positions from `first` on.
std::vector<es::RecordedEvent> first_events(std::initializer_list<const char*> streams, std::int64_t first) {
  std::vector<es::RecordedEvent> out;
  for (const auto* s : streams) {
    es::RecordedEvent e;
    e.stream_id = es::StreamId(std::string(s));
    e.version = es::StreamVersion{0};
    e.position = es::Position{first++};
    out.push_back(e);
  }
  return out;
}

class BusVersionsTest : public ::testing::TestWithParam<testing::ReadModelBackend> {
 protected:
  void SetUp() override {
    if (auto why = place_.unavailable(); !why.empty()) GTEST_SKIP() << why;
    db_ = place_.open();
  }
  // "projection generation stream" of every row of bus_versions.
  std::multiset<std::string> rows() {
    std::multiset<std::string> out;
    EXPECT_TRUE(db_->query("SELECT projection, generation, stream_id FROM bus_versions", {}, [&](const es::Row& r) {
      out.insert(std::string(r.text(0)) + " " + std::to_string(r.int64(1)) + " " + std::string(r.text(2)));
    }));
    return out;
  }

  testing::ReadModelPlace place_{GetParam()};
  std::unique_ptr<es::ReadModelDb> db_;
};

// A rebuild of a bus-fed read model swaps in a new copy and drops the old one: the old
// copy's bus versions go with its tables, as do those of a rebuild's copy dropped before it
// was swapped in; the live copies' stay, another projection's too.
TEST_P(BusVersionsTest, ADroppedCopysBusVersionsAreDeletedWithItAndTheLiveCopysKept) {
  ASSERT_TRUE(*db_->claim("a"));
  ASSERT_TRUE(*db_->claim("b"));
  VersionsOnly a(*db_, "a"), b(*db_, "b");
  auto a1 = std::move(*a.open_live());
  auto b1 = std::move(*b.open_live());
  ASSERT_TRUE(a.apply_delivered(*a1, first_events({"order-1", "order-2"}, 1)));
  ASSERT_TRUE(b.apply_delivered(*b1, first_events({"order-1"}, 1)));
  EXPECT_EQ(rows(), (std::multiset<std::string>{"a 1 order-1", "a 1 order-2", "b 1 order-1"}));

  auto a2 = std::move(*a.create_copy());
  ASSERT_TRUE(a.apply_delivered(*a2, first_events({"order-3"}, 3)));
  ASSERT_TRUE(a.promote(*a2));
  EXPECT_EQ(rows(), (std::multiset<std::string>{"a 2 order-3", "b 1 order-1"})) << "copy 1 of a dropped";

  auto a3 = std::move(*a.create_copy());
  ASSERT_TRUE(a.apply_delivered(*a3, first_events({"order-4"}, 4)));
  auto a4 = std::move(*a.create_copy());  // copy 3 unfinished: dropped
  EXPECT_EQ(rows(), (std::multiset<std::string>{"a 2 order-3", "b 1 order-1"})) << "copy 3 of a dropped";
}

// Rows a dropped copy left in bus_versions before they were deleted with it (before
// 4545d49): a new copy that gets the dropped copy's generation number does not take them for
// its own (it would skip those streams' events as applied), and rows of copies older than
// every registered one are deleted.
TEST_P(BusVersionsTest, RowsLeftByAnEarlierDroppedCopyPassForNoNewCopysAndAreDeleted) {
  ASSERT_TRUE(*db_->claim("a"));
  VersionsOnly a(*db_, "a");
  auto a1 = std::move(*a.open_live());  // generation 1
  ASSERT_TRUE(a.apply_delivered(*a1, first_events({"order-1"}, 1)));
  ASSERT_TRUE(db_->transaction("a", [](es::WriteTransaction& tx) -> Result<void> {
    // As an older build left them: a dropped copy 2 (a rebuild's next generation) and a
    // copy 0 older than every registered one.
    return tx.run(
        "INSERT INTO bus_versions (projection, generation, stream_id, version) VALUES ('a', 2, 'order-9', 5), "
        "('a', 0, 'order-8', 3)");
  }));
  auto a2 = std::move(*a.create_copy());
  auto version = a.delivered_version(*a2, es::StreamId(std::string("order-9")));
  ASSERT_TRUE(version) << version.error().message;
  EXPECT_EQ(*version, es::kNoStream) << "the new copy 2 has applied nothing of order-9";
  EXPECT_EQ(rows(), (std::multiset<std::string>{"a 1 order-1"}));
}

// A new stream's first event claims its bus version instead of looking it up (one insert
// per new order): what a redelivery brings again after a restart (an empty cache) is still
// skipped as applied, a stream further along keeps its version, and one taken past its
// first event in the batch that claims it saves the version it reached.
TEST_P(BusVersionsTest, FirstEventsDeliveredAgainAfterARestartAreNotAppliedTwice) {
  ASSERT_TRUE(*db_->claim("a"));
  std::vector<std::string> applied;
  {
    VersionsOnly a(*db_, "a", &applied);
    auto copy = std::move(*a.open_live());
    auto early = a.apply_delivered(*copy, events_of({{"order-1", 0}, {"order-2", 0}, {"order-2", 1}}, 1));
    ASSERT_TRUE(early) << early.error().message;
    EXPECT_TRUE(early->empty());
  }
  EXPECT_EQ(applied, (std::vector<std::string>{"order-1@0", "order-2@0", "order-2@1"}));
  applied.clear();
  {
    VersionsOnly a(*db_, "a", &applied);  // as after a restart: nothing cached
    auto copy = std::move(*a.open_live());
    auto early = a.apply_delivered(
        *copy, events_of({{"order-2", 0}, {"order-1", 0}, {"order-3", 0}, {"order-1", 1}, {"order-4", 2}}, 1));
    ASSERT_TRUE(early) << early.error().message;
    EXPECT_EQ(*early, (std::vector<std::size_t>{4})) << "order-4@2 came before its first event";
    for (const char* stream : {"order-1", "order-2", "order-3", "order-4"})
      ASSERT_TRUE(a.delivered_version(*copy, es::StreamId(std::string(stream))));
    EXPECT_EQ(*a.delivered_version(*copy, es::StreamId(std::string("order-1"))), es::StreamVersion{1});
    EXPECT_EQ(*a.delivered_version(*copy, es::StreamId(std::string("order-2"))), es::StreamVersion{1})
        << "a redelivered first event leaves a stream further along where it was";
    EXPECT_EQ(*a.delivered_version(*copy, es::StreamId(std::string("order-3"))), es::StreamVersion{0});
    EXPECT_EQ(*a.delivered_version(*copy, es::StreamId(std::string("order-4"))), es::kNoStream);
  }
  EXPECT_EQ(applied, (std::vector<std::string>{"order-3@0", "order-1@1"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, BusVersionsTest,
                         ::testing::Values(testing::ReadModelBackend::sqlite, testing::ReadModelBackend::postgres),
                         testing::backend_name);

}  // namespace
}  // namespace orderflow::app::projections
