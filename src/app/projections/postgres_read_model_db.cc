#include "app/projections/postgres_read_model_db.h"

namespace orderflow::app::projections {

namespace {

using postgres::PgResult;
using postgres::Query;

// `sql`, written for both databases (see read_model_db.h), as PostgreSQL reads it.
std::string postgres_sql(std::string_view sql) {
  std::string out(sql);
  for (auto& c : out)
    if (c == '?') c = '$';
  auto replace = [&](std::string_view from, std::string_view to) {
    for (auto at = out.find(from); at != std::string::npos; at = out.find(from, at + to.size()))
      out.replace(at, from.size(), to);
  };
  if (out.starts_with("CREATE TABLE")) {
    replace(" INTEGER", " bigint");
    replace(" TEXT", " text COLLATE \"C\"");
    replace(") STRICT", ")");
  }
  return out;
}

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

// Statements queue until a query or the commit sends them, in one pipeline.
class PipelinedTransaction final : public WriteTransaction {
 public:
  explicit PipelinedTransaction(postgres::Connection& conn) : conn_(conn) {}

  Result<void> run(const std::string& sql, std::span<const SqlValue> params) override {
    pending_.push_back({postgres_sql(sql), texts(params)});
    return {};
  }

  Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) override {
    pending_.push_back({postgres_sql(sql), texts(params)});
    auto results = flush();
    if (!results) return fail(results.error());
    return for_each_row(results->back(), on_row);
  }

  Result<void> commit() {
    pending_.push_back({"COMMIT", {}});
    auto sent = flush();
    if (!sent) return fail(sent.error());
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
    for (auto& [sql, params] : pending_) queries.push_back({sql.c_str(), std::move(params)});
    begun_ = true;
    auto results = conn_.pipeline(queries);
    pending_.clear();
    return results;
  }

  postgres::Connection& conn_;
  std::vector<std::pair<std::string, std::vector<std::string>>> pending_;
  bool begun_ = false;  // BEGIN has been sent
};

}  // namespace

Result<postgres::Connection> PostgresReadModelDb::connect() const {
  return postgres::Connection::open(options_.conninfo, options_.schema);
}

Result<std::unique_ptr<PostgresReadModelDb>> PostgresReadModelDb::open(PostgresReadModelDbOptions options) {
  std::unique_ptr<PostgresReadModelDb> db(new PostgresReadModelDb(std::move(options)));
  auto conn = db->connect();
  if (!conn) return fail(conn.error());
  const auto& schema = db->options_.schema;
  Query lock{"SELECT pg_advisory_lock(hashtext('orderflow.readmodels.' || $1))", {schema}};
  if (auto r = conn->query(lock); !r) return fail(r.error());
  Result<void> created;
  if (!schema.empty()) created = conn->exec("CREATE SCHEMA IF NOT EXISTS " + postgres::quote_identifier(schema));
  if (created) created = conn->exec(postgres_sql(kReadModelsTable));
  // A lost connection released the lock with its session.
  Query unlock{"SELECT pg_advisory_unlock(hashtext('orderflow.readmodels.' || $1))", {schema}};
  if (auto r = conn->query(unlock); !r && created) return fail(r.error());
  if (!created) return fail(created.error());
  MutexLock lk(db->pool_mu_);  // nothing else uses it yet: for the analysis
  db->pool_.push_back(std::move(*conn));
  return db;
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
    auto conn = connect();
    if (!conn) return fail(conn.error());
    if (auto r = conn->exec("SET synchronous_commit = off"); !r) return fail(r.error());
    w.conn = std::move(*conn);
  }
  auto locked = w.conn->query(
      {"SELECT pg_try_advisory_lock(hashtext('orderflow.readmodel.' || $1))", {options_.schema + "." + name}});
  if (!locked) return fail(locked.error());
  w.held = locked->text(0, 0) == "t";
  return w.held;
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

Result<void> PostgresReadModelDb::query(const std::string& sql, std::span<const SqlValue> params,
                                        const OnRow& on_row) {
  std::optional<postgres::Connection> conn;
  {
    MutexLock lk(pool_mu_);
    if (!pool_.empty()) {
      conn = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!conn || !conn->healthy()) {
    auto fresh = connect();
    if (!fresh) return fail(fresh.error());
    conn = std::move(*fresh);
  }
  const auto text = postgres_sql(sql);
  auto results = conn->pipeline({Query{text.c_str(), texts(params)}});
  Result<void> r = results ? for_each_row(results->front(), on_row) : Result<void>(results.error());
  if (conn->healthy()) {
    MutexLock lk(pool_mu_);
    if (pool_.size() < options_.idle_connections) pool_.push_back(std::move(*conn));
  }
  return r;
}

}  // namespace orderflow::app::projections
