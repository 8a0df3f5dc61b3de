// The embedded read-model database: its own SQLite file (WAL) beside the event store, so
// projections never wait for the event writer's lock. One writer connection (each batch is
// one transaction), a pool of reader connections with prepared statements cached by text.
//
// SqliteProjection keeps a projection's copies in it: every table of a copy carries the
// copy's generation as a suffix (orders_g3; in SQL the '$' after a table name stands for it),
// and the table `read_models` records each copy's position and which copy is live.
// A batch's rows and the copy's position commit in one transaction.
//
// Thread safety: every public method may be called from any thread at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "es/projection.h"
#include "store/sqlite/sqlite.h"

namespace orderflow::app::projections {

class ReadModelDb {
 public:
  static Result<std::unique_ptr<ReadModelDb>> open(const std::string& path);
  ~ReadModelDb();

  // Runs `fn` on the writer connection inside one transaction (rolled back if fn fails).
  Result<void> transaction(const std::function<Result<void>(sqlite::Database&)>& fn);

  class Reader {
   public:
    // A statement for `sql`, prepared once per connection. Reset it after use.
    Result<sqlite::Statement*> prepare(const std::string& sql);

   private:
    friend class ReadModelDb;
    sqlite::Database db_;
    std::map<std::string, sqlite::Statement> cache_;
  };
  // Runs fn(Reader&) on a pooled reader connection.
  template <class F>
  auto read(F&& fn) {
    auto reader = lease();
    auto result = fn(*reader);
    give_back(std::move(reader));
    return result;
  }

 private:
  ReadModelDb() = default;
  std::unique_ptr<Reader> lease();
  void give_back(std::unique_ptr<Reader> reader);
  void checkpoint_loop();

  std::string path_;
  std::mutex writer_mu_;
  sqlite::Database writer_;
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> readers_;

  // Checkpoints the WAL on a thread of its own: a checkpoint syncs the files, and SQLite's
  // automatic one, run by whichever commit crossed the threshold, stalled that projection.
  sqlite::Database checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool closing_ = false;
  std::thread checkpoint_thread_;
};

// `sql` with every '$' replaced by "_g<generation>".
std::string with_generation(std::string_view sql, std::int64_t generation);

// Applies batches to one copy's tables, inside the batch's open transaction.
class CopyWriter {
 public:
  virtual ~CopyWriter() = default;
  virtual Result<void> apply(std::span<const es::RecordedEvent> events) = 0;
  // The batch's transaction was rolled back: forget whatever apply() remembered of it.
  virtual void rolled_back() {}
};

// A projection whose copies live in a ReadModelDb.
class SqliteProjection : public es::Projection {
 public:
  const std::string& name() const override { return name_; }
  es::EventFilter filter() const override { return filter_; }
  Result<std::unique_ptr<es::ReadModel>> open_live() override;
  Result<std::unique_ptr<es::ReadModel>> create_copy() override;
  Result<void> promote(es::ReadModel& copy) override;

 protected:
  // `schema`: CREATE statements, `tables`: the tables they create, both with '$' suffixes.
  // A rebuilding copy gets its indexes (the CREATE INDEX statements) only when it is
  // promoted: building an index at once costs less than keeping it through the fill.
  SqliteProjection(ReadModelDb& db, std::string name, es::EventFilter filter, std::vector<std::string> schema,
                   std::vector<std::string> tables);
  // A writer for the copy of `generation`, its statements prepared on `db` (the writer).
  virtual Result<std::unique_ptr<CopyWriter>> writer(sqlite::Database& db, std::int64_t generation) = 0;

  // Runs fn(reader, generation) on the live copy; a swap waits until it returns.
  template <class F>
  auto read(F&& fn) {
    std::shared_lock lk(swap_mu_);
    const auto generation = live_.load();
    return db_.read([&](ReadModelDb::Reader& r) { return fn(r, generation); });
  }

  ReadModelDb& db_;

 private:
  class Copy;
  Result<std::unique_ptr<es::ReadModel>> make_copy(std::int64_t generation, bool indexed);
  Result<void> create_schema(sqlite::Database& db, std::int64_t generation, bool indexes);
  Result<void> drop_unused(sqlite::Database& db);

  std::string name_;
  es::EventFilter filter_;
  std::vector<std::string> schema_, tables_;
  std::shared_mutex swap_mu_;
  std::atomic<std::int64_t> live_{0};
};

}  // namespace orderflow::app::projections
