// The application's use of the read-model database (es/read_model_db.h): TableProjection
// keeps a projection's copies in it. Every table of a copy carries the copy's generation
// as a suffix (orders_g3; in SQL, kGeneration after a table or index name stands for it),
// and the table `read_models` records each copy's position and which copy is live. A
// batch's rows and the copy's position commit in one transaction.
//
// Each projection writes its SQL once, when it is made, in the database's dialect; a
// copy's writer puts its generation in when the copy is made.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "es/projection.h"
#include "es/read_model_db.h"

namespace orderflow::app::projections {

// Where a copy's generation suffix goes in SQL: "orders{g}" is orders_g3 in copy 3.
inline constexpr std::string_view kGeneration = "{g}";

// `sql` with every kGeneration outside its string literals replaced by "_g<generation>".
std::string with_generation(std::string_view sql, std::int64_t generation);

// Rows for one statement shape, gathered through a batch and written at its end in few
// statements: n rows go as statements of 2^k rows (n's binary digits, at most kMostRows
// each), so a connection prepares few shapes, and a batch of 60 orders costs PostgreSQL a
// handful of statements to parse, plan and run instead of 60.
class BatchedRows {
 public:
  using Value = std::variant<std::int64_t, std::string>;
  static constexpr int kMostRows = 64;

  // `sql(rows)`: the statement for `rows` rows, its parameters numbered row after row,
  // `columns` to a row.
  BatchedRows(std::function<std::string(int rows)> sql, int columns);

  // Adds a row of `columns` values.
  void add(std::initializer_list<Value> row);
  void add(std::vector<Value> row);
  bool empty() const { return values_.empty(); }
  // Writes every row added and forgets them, written or not.
  Result<void> write(es::WriteTransaction& tx);

 private:
  const std::string& sql(int rows);

  std::function<std::string(int)> make_sql_;
  int columns_;
  std::vector<Value> values_;
  std::array<std::string, std::bit_width(static_cast<unsigned>(kMostRows))> sql_;  // by log2 of their rows
};

// "(?1, ?2), (?3, ?4)": `rows` rows of `columns` parameters, for INSERT … VALUES.
std::string values_rows(const es::SqlDialect& d, int rows, int columns);

// Applies batches to one copy's tables, inside the batch's open transaction.
class CopyWriter {
 public:
  virtual ~CopyWriter() = default;
  virtual Result<void> apply(es::WriteTransaction& tx, std::span<const es::RecordedEvent> events) = 0;
  // The batch's transaction was rolled back: forget whatever apply() remembered of it.
  virtual void rolled_back() {}
};

// A projection whose copies are tables in a ReadModelDb.
class TableProjection : public es::Projection {
 public:
  ~TableProjection() override;

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
  // bus_versions for the streams of the projection's categories (one row per stream per
  // copy; a dropped copy's rows are deleted with its tables). An event at or below its
  // stream's version is skipped (a redelivery changes nothing); one past the next version
  // is not applied and answered (its index in `events`): an earlier event of its stream is
  // missing, so it must come again later. The copy's position becomes the highest position
  // it applied (positions of different streams may arrive out of order).
  Result<std::vector<std::size_t>> apply_delivered(es::ReadModel& live, std::span<const es::RecordedEvent> events);
  // The version of `stream` that `live` (as above) has applied from the bus, as committed
  // (kNoStream: none); from any thread.
  Result<es::StreamVersion> delivered_version(es::ReadModel& live, const es::StreamId& stream);
  // Readies `live` to be fed from the bus, before apply_delivered; answers the highest
  // position it applied. A copy the log fed (its position a watermark, no bus versions)
  // gets the version each of its streams reached at that position, read from `store` (an
  // error without one): the bus's messages of those streams then apply past it.
  //
  // The other way, a copy the bus fed and then tailed from the log (es::ReadModel):
  // its position() is 0 and the log is applied from the start, each stream past its bus
  // version, until the copy has passed the highest position the bus applied; then its bus
  // versions are deleted and its position is a watermark again. (Tailing it from its stored
  // position would skip the events the bus had not brought below it.)
  Result<es::Position> prepare_for_bus(es::ReadModel& live, es::EventStore* store);
  // Raises the highest position `live` (fed from the bus) applied to `position`, if below:
  // the bus has brought nothing of its streams between them.
  Result<void> raise_delivered_position(es::ReadModel& live, es::Position position);
  // Forgets what memory holds of `live` (cached versions and states): another process may
  // have written it since this one last did.
  void forget(es::ReadModel& live);

 protected:
  // `schema`: CREATE statements in `db`'s dialect, `tables`: the tables they create, both
  // with kGeneration suffixes. A rebuilding copy gets its indexes (the CREATE INDEX
  // statements) only when it is promoted: building an index at once costs less than
  // keeping it through the fill.
  TableProjection(es::ReadModelDb& db, std::string name, es::EventFilter filter, std::vector<std::string> schema,
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
  es::ReadModelDb& db_;

 private:
  class Copy;
  struct Sql;  // the statements on read_models and bus_versions
  // Creates the table of copies, once.
  Result<void> create_read_models();
  Result<std::unique_ptr<es::ReadModel>> make_copy(std::int64_t generation, bool indexed);
  Result<void> create_schema(es::WriteTransaction& tx, std::int64_t generation, bool indexes);
  Result<void> drop_unused(es::WriteTransaction& tx);
  // A new copy's generation: one past every generation the projection ever had, registered
  // with `live` as given.
  Result<std::int64_t> register_copy(es::WriteTransaction& tx, bool live);

  std::string name_;
  es::EventFilter filter_;
  std::vector<std::string> schema_, tables_;
  const std::unique_ptr<const Sql> sql_;
  std::atomic<bool> read_models_created_{false};
  std::shared_mutex swap_mu_;
  std::atomic<std::int64_t> live_{0};
};

}  // namespace orderflow::app::projections
