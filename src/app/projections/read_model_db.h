// The read-model database, whatever it is: SQLite (a file of one process,
// SqliteReadModelDb) or PostgreSQL (shared by many processes, PostgresReadModelDb).
//
// SQL is written once, in the dialect both accept: numbered `?N` parameters, INSERT …
// ON CONFLICT, INTEGER and TEXT columns, STRICT tables (PostgresReadModelDb reads
// `?N` as `$N`, INTEGER as bigint, TEXT as text COLLATE "C" — SQLite's bytewise order —
// and drops STRICT).
//
// TableProjection keeps a projection's copies in it: every table of a copy carries the
// copy's generation as a suffix (orders_g3; in SQL the '$' after a table name stands for
// it), and the table `read_models` records each copy's position and which copy is live.
// A batch's rows and the copy's position commit in one transaction.
//
// Thread safety: every method of ReadModelDb may be called from any thread at once;
// one projection's transactions must not overlap (the runner applies one batch at a time).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "es/projection.h"

namespace orderflow::app::projections {

// A statement's parameter; a text is only read during the call it is passed to.
using SqlValue = std::variant<std::int64_t, std::string_view>;

// One row of a query's answer.
class Row {
 public:
  // NULL reads as 0 and "".
  virtual std::int64_t int64(int col) const = 0;
  virtual std::string_view text(int col) const = 0;

 protected:
  ~Row() = default;
};
using OnRow = std::function<void(const Row&)>;

// A write transaction of one projection.
class WriteTransaction {
 public:
  // A statement that answers no rows. SQLite runs it at once; PostgreSQL sends it with the
  // next query or the commit, so a batch is one round trip, and its error may surface only
  // there.
  virtual Result<void> run(const std::string& sql, std::span<const SqlValue> params = {}) = 0;
  // A query, answered at once (on PostgreSQL together with the statements before it).
  virtual Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) = 0;

 protected:
  ~WriteTransaction() = default;
};

class ReadModelDb {
 public:
  virtual ~ReadModelDb() = default;

  // Whether other processes read and write the same database. Then one process at a time
  // writes a given projection (claim) and the others serve queries from what it wrote.
  virtual bool shared() const = 0;
  // Claims the right to write projection `name`: true if this process holds it (always,
  // on a database of its own). Held until the process ends or its writer's connection is
  // lost; then another process may take it. Cheap while held.
  virtual Result<bool> claim(const std::string& name) = 0;
  // Runs fn in one transaction of projection `name`, rolled back if fn or the commit fails.
  // unavailable if this process does not hold `name` (any more).
  virtual Result<void> transaction(const std::string& name,
                                   const std::function<Result<void>(WriteTransaction&)>& fn) = 0;
  // A query on a reader connection, each statement prepared once per connection.
  virtual Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) = 0;
};

// The table of copies, in the dialect of both.
extern const char* const kReadModelsTable;

// `sql` with every '$' replaced by "_g<generation>".
std::string with_generation(std::string_view sql, std::int64_t generation);

// Applies batches to one copy's tables, inside the batch's open transaction.
class CopyWriter {
 public:
  virtual ~CopyWriter() = default;
  virtual Result<void> apply(WriteTransaction& tx, std::span<const es::RecordedEvent> events) = 0;
  // The batch's transaction was rolled back: forget whatever apply() remembered of it.
  virtual void rolled_back() {}
};

// A projection whose copies are tables in a ReadModelDb.
class TableProjection : public es::Projection {
 public:
  const std::string& name() const override { return name_; }
  es::EventFilter filter() const override { return filter_; }
  bool shared() const override { return db_.shared(); }
  Result<bool> claim() override { return db_.claim(name_); }
  Result<es::Position> follow() override;
  Result<std::unique_ptr<es::ReadModel>> open_live() override;
  Result<std::unique_ptr<es::ReadModel>> create_copy() override;
  Result<void> promote(es::ReadModel& copy) override;

  // For a copy fed from a message bus instead of the log (app/bus_projector/), `live` from
  // open_live(): applies `events` (each stream's in version order, streams interleaved) in
  // one transaction with the version each stream reached, kept per copy in the table
  // bus_versions for the streams of the projection's categories. An event at or below its
  // stream's version is skipped (a redelivery changes nothing); one past the next version
  // is not applied and answered (its index in `events`): an earlier event of its stream is
  // missing, so it must come again later. The copy's position becomes the highest position
  // it applied (positions of different streams may arrive out of order).
  Result<std::vector<std::size_t>> apply_delivered(es::ReadModel& live, std::span<const es::RecordedEvent> events);

 protected:
  // `schema`: CREATE statements, `tables`: the tables they create, both with '$' suffixes.
  // A rebuilding copy gets its indexes (the CREATE INDEX statements) only when it is
  // promoted: building an index at once costs less than keeping it through the fill.
  TableProjection(ReadModelDb& db, std::string name, es::EventFilter filter, std::vector<std::string> schema,
                  std::vector<std::string> tables);
  // A writer for the copy of `generation`.
  virtual std::unique_ptr<CopyWriter> writer(std::int64_t generation) = 0;

  // Runs fn(generation) on the live copy; a swap in this process waits until it returns.
  // On a shared database another process may swap copies: a query that fails is tried
  // again once on the copy then live.
  template <class F>
  auto read(F&& fn) {
    std::shared_lock lk(swap_mu_);
    const auto generation = live_.load();
    auto result = fn(generation);
    if (result || !db_.shared()) return result;
    lk.unlock();
    if (auto followed = follow(); !followed || live_.load() == generation) return result;
    lk.lock();
    return fn(live_.load());
  }
  ReadModelDb& db_;

 private:
  class Copy;
  Result<std::unique_ptr<es::ReadModel>> make_copy(std::int64_t generation, bool indexed);
  Result<void> create_schema(WriteTransaction& tx, std::int64_t generation, bool indexes);
  Result<void> drop_unused(WriteTransaction& tx);

  std::string name_;
  es::EventFilter filter_;
  std::vector<std::string> schema_, tables_;
  std::shared_mutex swap_mu_;
  std::atomic<std::int64_t> live_{0};
};

}  // namespace orderflow::app::projections
