// The embedded read-model database (es/read_model_db.h): its own SQLite file (WAL) beside
// the event store, so projections never wait for the event writer's lock; one process's
// own. One writer connection (each batch is one transaction), a pool of reader
// connections, statements prepared once per connection.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/mutex.h"
#include "es/read_model_db.h"
#include "store/sqlite/sqlite.h"

namespace orderflow::sqlite {

// ?N parameters; STRICT tables, whose INTEGER is 64 bits and TEXT compares bytewise.
extern const es::SqlDialect kReadModelDialect;

class SqliteReadModelDb final : public es::ReadModelDb {
 public:
  // `durable_commits`: each commit is synced (PRAGMA synchronous=FULL), for a process that
  // tells someone else what it committed (a bus-fed projector or saga acknowledges its
  // messages after the commit); else NORMAL: a power cut may lose the last batches,
  // positions included, which are then applied again from the log.
  static Result<std::unique_ptr<SqliteReadModelDb>> open(const std::string& path, bool durable_commits = false);
  // Reads the read models as they are and writes nothing, in the file or beside it
  // (Database::open_at_rest: nothing may write it meanwhile), so that it opens on a full or
  // read-only disk: claim() answers false, so a ProjectionRunner follows every projection
  // where it stands; transactions answer unavailable.
  static Result<std::unique_ptr<SqliteReadModelDb>> open_read_only(const std::string& path);
  ~SqliteReadModelDb() override;

  const es::SqlDialect& dialect() const override { return kReadModelDialect; }
  bool shared() const override { return false; }
  Result<void> create_tables(std::span<const std::string> statements) override;
  Result<bool> claim(const std::string&) override { return !read_only_; }
  Result<void> release(const std::string&) override { return {}; }
  Result<void> transaction(const std::string& name,
                           const std::function<Result<void>(es::WriteTransaction&)>& fn) override;
  Result<void> query(const std::string& sql, std::span<const es::SqlValue> params, const es::OnRow& on_row) override;

 private:
  // A connection and the statements prepared on it, by SQL text.
  class Connection;

  SqliteReadModelDb() = default;
  std::unique_ptr<Connection> lease();
  Result<Database> open_connection() const;
  void give_back(std::unique_ptr<Connection> reader);
  void checkpoint_loop();

  std::string path_;
  bool read_only_ = false;
  Mutex writer_mu_;
  std::unique_ptr<Connection> writer_ GUARDED_BY(writer_mu_);
  Mutex readers_mu_;
  std::vector<std::unique_ptr<Connection>> readers_ GUARDED_BY(readers_mu_);

  // Checkpoints the WAL on a thread of its own: a checkpoint syncs the files, and SQLite's
  // automatic one, run by whichever commit crossed the threshold, stalled that projection.
  Database checkpointer_;
  Mutex checkpoint_mu_;
  CondVar checkpoint_cv_;
  bool closing_ GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpoint_thread_;
};

}  // namespace orderflow::sqlite
