// The read-model database (es/read_model_db.h) in PostgreSQL, shared by every orderflow
// process on the database: a process started later serves reads at once, without
// replaying the log.
//
// One process at a time writes a projection: it holds the projection's advisory lock
// (session level) on the connection that writes the projection's copies, so the lock and
// the writes live and die together — if that connection is lost, its transaction rolls
// back, the lock is released and another process may claim the projection; this one can
// write again only once it has claimed it anew. Write transactions go in one round trip
// per batch (libpq pipeline mode: BEGIN, the batch's statements, the copy's position,
// COMMIT); a query inside one (a row to load) sends what is queued with it. The writers
// commit with synchronous_commit=off: read models are rebuilt from the log, so a server
// crash may lose their last batches (positions with them, so they are applied again),
// never a batch's half.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mutex.h"
#include "es/read_model_db.h"
#include "store/postgres/pg.h"

namespace orderflow::postgres {

// $N parameters; bigint, and text COLLATE "C" (bytewise, as SQLite compares); no table options.
extern const es::SqlDialect kReadModelDialect;

struct PostgresReadModelDbOptions {
  std::string conninfo;  // a libpq URL or key=value string
  std::string schema;    // where the tables live; empty: the connection's current schema
  // Reader connections kept open between uses; more are opened under load.
  std::size_t idle_connections = 8;
  // false: writers commit with synchronous_commit=off (the read models are rebuilt from the
  // log: a server crash may lose their last batches, positions included, which are then
  // applied again). true: synchronous_commit=on, for a process that tells someone else what
  // it committed (a bus-fed projector or saga acknowledges its messages after the commit:
  // a batch lost after that would never be delivered again).
  bool durable_commits = false;
};

class PostgresReadModelDb final : public es::ReadModelDb {
 public:
  // Connects and creates the schema if it is missing.
  static Result<std::unique_ptr<PostgresReadModelDb>> open(PostgresReadModelDbOptions options);

  const es::SqlDialect& dialect() const override { return kReadModelDialect; }
  bool shared() const override { return true; }
  // Under an advisory lock of the schema: several processes may start at once.
  Result<void> create_tables(std::span<const std::string> statements) override;
  Result<bool> claim(const std::string& name) override;
  // Unlocks on the writer's connection (closes it if that fails: the lock ends with it).
  Result<void> release(const std::string& name) override;
  Result<void> transaction(const std::string& name,
                           const std::function<Result<void>(es::WriteTransaction&)>& fn) override;
  Result<void> query(const std::string& sql, std::span<const es::SqlValue> params, const es::OnRow& on_row) override;

 private:
  // The connection that writes one projection and holds its lock.
  struct Writer {
    Mutex mu;
    std::optional<Connection> conn GUARDED_BY(mu);
    bool held GUARDED_BY(mu) = false;  // the lock, on `conn`
  };

  explicit PostgresReadModelDb(PostgresReadModelDbOptions options) : options_(std::move(options)) {}
  Result<Connection> connect() const;
  // A connection from the pool, or a new one; give it back with restore().
  Result<Connection> take();
  void restore(Connection conn);
  Writer& writer(const std::string& name);

  PostgresReadModelDbOptions options_;
  Mutex writers_mu_;
  std::map<std::string, std::unique_ptr<Writer>> writers_ GUARDED_BY(writers_mu_);
  Mutex pool_mu_;
  std::vector<Connection> pool_ GUARDED_BY(pool_mu_);
};

}  // namespace orderflow::postgres
