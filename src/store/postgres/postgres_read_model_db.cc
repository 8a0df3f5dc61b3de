#include "store/postgres/postgres_read_model_db.h"

namespace orderflow::postgres {

using es::OnRow;
using es::Row;
using es::SqlValue;
using es::WriteTransaction;

const es::SqlDialect kReadModelDialect{
    .parameter_mark = '$', .integer = "bigint", .text = "text COLLATE \"C\"", .table_options = ""};

namespace {

class ResultRow final : public Row {
 public:
  ResultRow(const PgResult& r, int row) : r_(r), row_(row) {}
  std::int64_t int64(int col) const override { return r_.is_null(row_, col) ? 0 : r_.int64(row_, col); }
  std::string_view text(int col) const override { return r_.text(row_, col); }

 private:
  const PgResult& r_;
  int row_;
};

Result<void> for_each_row(const PgResult& r, const OnRow& on_row) {
  if (on_row)
    for (int i = 0; i < r.rows(); ++i) on_row(ResultRow(r, i));
  return {};
}

std::vector<std::string> texts(std::span<const SqlValue> params) {
  std::vector<std::string> out;
  out.reserve(params.size());
  for (const auto& p : params)
    out.push_back(std::visit(
        [](auto v) {
          if constexpr (std::is_same_v<decltype(v), std::int64_t>)
            return std::to_string(v);
          else
            return std::string(v);
        },
        p));
  return out;
}

// An INSERT … VALUES plans the same whatever its table holds, so its generic plan, made once
// per connection, serves: a multi-row INSERT of a batch is not planned again at every call.
// Every other statement (lookups, updates, deletes) is planned for its parameters at each
// call: a generic plan made while the tables are small would be kept as they grow
// (bus_versions: a sequential scan per lookup, which cost a bus-fed projector most of
// PostgreSQL's CPU at 5k events/s).
Query statement(const std::string& sql, std::vector<std::string> params) {
  const bool insert_values = sql.starts_with("INSERT INTO ") && sql.find("SELECT") == std::string::npos;
  return {sql.c_str(), std::move(params), !insert_values};
}

// Statements queue until a query or the commit sends them, in one pipeline.
class PipelinedTransaction final : public WriteTransaction {
 public:
  explicit PipelinedTransaction(Connection& conn) : conn_(conn) {}

  Result<void> run(const std::string& sql, std::span<const SqlValue> params) override {
    pending_.push_back({sql, texts(params)});
    return {};
  }

  Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) override {
    pending_.push_back({sql, texts(params)});
    OF_ASSIGN_OR_RETURN(auto results, flush());
    return for_each_row(results.back(), on_row);
  }

  Result<void> commit() {
    pending_.push_back({"COMMIT", {}});
    OF_RETURN_IF_ERROR(flush());
    return {};
  }

  void rollback() {
    if (begun_ && conn_.healthy()) (void)conn_.exec("ROLLBACK");
  }

 private:
  Result<std::vector<PgResult>> flush() {
    std::vector<Query> queries;
    queries.reserve(pending_.size() + 1);
    if (!begun_) queries.push_back({"BEGIN", {}});
    for (auto& [sql, params] : pending_) queries.push_back(statement(sql, std::move(params)));
    begun_ = true;
    auto results = conn_.pipeline(queries);
    pending_.clear();
    return results;
  }

  Connection& conn_;
  std::vector<std::pair<std::string, std::vector<std::string>>> pending_;
  bool begun_ = false;  // BEGIN has been sent
};

// Advisory locks are per database, not per schema: their keys name the schema the read
// models live in ($1), or, when none is given, the connection's own (a URL's
// `options=-c search_path=…`). Keyed by an empty name, deployments in two schemas of one
// database took each other's locks (a projector in one waited for the other's to stop).
constexpr const char* kLockCreates =
    "SELECT pg_advisory_lock(hashtext('orderflow.readmodels.' || coalesce(nullif($1, ''), current_schema(), '')))";
constexpr const char* kUnlockCreates =
    "SELECT pg_advisory_unlock(hashtext('orderflow.readmodels.' || coalesce(nullif($1, ''), current_schema(), '')))";
constexpr const char* kClaim =
    "SELECT pg_try_advisory_lock(hashtext('orderflow.readmodel.' || coalesce(nullif($1, ''), current_schema(), '') "
    "|| '.' || $2))";
constexpr const char* kRelease =
    "SELECT pg_advisory_unlock(hashtext('orderflow.readmodel.' || coalesce(nullif($1, ''), current_schema(), '') "
    "|| '.' || $2))";

// Runs `create` on `conn` holding the advisory lock of `schema`'s read models: PostgreSQL
// may refuse one of two concurrent CREATEs of one table or schema.
Result<void> one_at_a_time(Connection& conn, const std::string& schema, const std::function<Result<void>()>& create) {
  Query lock{kLockCreates, {schema}};
  OF_RETURN_IF_ERROR(conn.query(lock));
  auto created = create();
  // A lost connection released the lock with its session.
  Query unlock{kUnlockCreates, {schema}};
  if (auto r = conn.query(unlock); !r && created) return fail(r.error());
  return created;
}

}  // namespace

Result<Connection> PostgresReadModelDb::connect() const { return Connection::open(options_.conninfo, options_.schema); }

Result<std::unique_ptr<PostgresReadModelDb>> PostgresReadModelDb::open(PostgresReadModelDbOptions options) {
  std::unique_ptr<PostgresReadModelDb> db(new PostgresReadModelDb(std::move(options)));
  OF_ASSIGN_OR_RETURN(auto conn, db->connect());
  const auto& schema = db->options_.schema;
  if (!schema.empty())
    OF_RETURN_IF_ERROR(one_at_a_time(
        conn, schema, [&] { return conn.exec("CREATE SCHEMA IF NOT EXISTS " + quote_identifier(schema)); }));
  MutexLock lk(db->pool_mu_);  // nothing else uses it yet: for the analysis
  db->pool_.push_back(std::move(conn));
  return db;
}

Result<void> PostgresReadModelDb::create_tables(std::span<const std::string> statements) {
  OF_ASSIGN_OR_RETURN(auto conn, take());
  // One simple query of several statements runs as one transaction.
  std::string creates;
  for (const auto& create : statements) creates += create + ";\n";
  auto r = one_at_a_time(conn, options_.schema, [&] { return conn.exec(creates); });
  restore(std::move(conn));
  return r;
}

PostgresReadModelDb::Writer& PostgresReadModelDb::writer(const std::string& name) {
  MutexLock lk(writers_mu_);
  auto& w = writers_[name];
  if (!w) w = std::make_unique<Writer>();
  return *w;
}

Result<bool> PostgresReadModelDb::claim(const std::string& name) {
  auto& w = writer(name);
  MutexLock lk(w.mu);
  if (w.held && w.conn && w.conn->healthy()) return true;
  w.held = false;
  if (!w.conn || !w.conn->healthy()) {
    OF_ASSIGN_OR_RETURN(auto conn, connect());
    if (!options_.durable_commits) OF_RETURN_IF_ERROR(conn.exec("SET synchronous_commit = off"));
    w.conn = std::move(conn);
  }
  OF_ASSIGN_OR_RETURN(auto locked, w.conn->query({kClaim, {options_.schema, name}}));
  w.held = locked.text(0, 0) == "t";
  return w.held;
}

Result<void> PostgresReadModelDb::release(const std::string& name) {
  auto& w = writer(name);
  MutexLock lk(w.mu);
  if (!w.held) return {};
  w.held = false;
  if (!w.conn || !w.conn->healthy()) return {};  // the lock went with its session
  if (auto unlocked = w.conn->query({kRelease, {options_.schema, name}}); !unlocked) w.conn.reset();
  return {};
}

Result<void> PostgresReadModelDb::transaction(const std::string& name,
                                              const std::function<Result<void>(WriteTransaction&)>& fn) {
  auto& w = writer(name);
  MutexLock lk(w.mu);
  if (!w.held || !w.conn || !w.conn->healthy()) {
    w.held = false;
    return fail(Errc::unavailable, "this process does not hold projection " + name +
                                       " (not claimed, or its connection to PostgreSQL was lost)");
  }
  PipelinedTransaction tx(*w.conn);
  auto r = fn(tx);
  if (r)
    r = tx.commit();
  else
    tx.rollback();
  // A failed pipeline dropped the connection, and the lock with it.
  if (!w.conn->healthy()) w.held = false;
  return r;
}

Result<Connection> PostgresReadModelDb::take() {
  std::optional<Connection> conn;
  {
    MutexLock lk(pool_mu_);
    if (!pool_.empty()) {
      conn = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (conn && conn->healthy()) return std::move(*conn);
  return connect();
}

void PostgresReadModelDb::restore(Connection conn) {
  if (!conn.healthy()) return;
  MutexLock lk(pool_mu_);
  if (pool_.size() < options_.idle_connections) pool_.push_back(std::move(conn));
}

Result<void> PostgresReadModelDb::query(const std::string& sql, std::span<const SqlValue> params,
                                        const OnRow& on_row) {
  OF_ASSIGN_OR_RETURN(auto conn, take());
  auto results = conn.pipeline({Query{sql.c_str(), texts(params)}});
  Result<void> r = results ? for_each_row(results->front(), on_row) : Result<void>(results.error());
  restore(std::move(conn));
  return r;
}

}  // namespace orderflow::postgres
