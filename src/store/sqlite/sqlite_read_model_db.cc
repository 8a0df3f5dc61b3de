#include "store/sqlite/sqlite_read_model_db.h"

#include "core/failures.h"
#include "core/named_thread.h"

namespace orderflow::sqlite {

using es::OnRow;
using es::Row;
using es::SqlValue;
using es::WriteTransaction;

const es::SqlDialect kReadModelDialect{
    .parameter_mark = '?', .integer = "INTEGER", .text = "TEXT", .table_options = " STRICT"};

namespace {

class StatementRow final : public Row {
 public:
  explicit StatementRow(const Statement& s) : s_(s) {}
  std::int64_t int64(int col) const override { return s_.int64(col); }
  std::string_view text(int col) const override { return s_.text(col); }

 private:
  const Statement& s_;
};

// The layout of the read-model tables (PRAGMA user_version); 2: entity rows without states.
constexpr std::int64_t kLayout = 2;

}  // namespace

// Runs statements at once; as the writer, inside the transaction SqliteReadModelDb began.
class SqliteReadModelDb::Connection final : public WriteTransaction {
 public:
  explicit Connection(Database db) : db_(std::move(db)) {}

  Database& db() { return db_; }

  Result<void> run(const std::string& sql, std::span<const SqlValue> params) override {
    if (params.empty()) return db_.exec(sql);
    return query(sql, params, nullptr);
  }

  Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) override {
    OF_ASSIGN_OR_RETURN(auto s, prepare(sql));
    ResetOnExit reset(*s);
    for (std::size_t i = 0; i < params.size(); ++i)
      std::visit([&](auto v) { s->bind(static_cast<int>(i + 1), v); }, params[i]);
    const StatementRow row(*s);
    for (;;) {
      OF_ASSIGN_OR_RETURN(auto more, s->step());
      if (!more) return {};
      if (on_row) on_row(row);
    }
  }

 private:
  // A statement for `sql`, prepared once per connection.
  Result<Statement*> prepare(const std::string& sql) {
    if (auto it = cache_.find(sql); it != cache_.end()) return &it->second;
    // Statements of copies dropped since stay behind; a bound keeps them from piling up.
    if (cache_.size() > 128) cache_.clear();
    OF_ASSIGN_OR_RETURN(auto stmt, db_.prepare(sql));
    return &cache_.emplace(sql, std::move(stmt)).first->second;
  }

  Database db_;
  std::unordered_map<std::string, Statement> cache_;
};

// The file's layout (PRAGMA user_version; 0 for a new file).
static Result<std::int64_t> layout_of(WriteTransaction& db) {
  std::int64_t layout = 0;
  OF_RETURN_IF_ERROR(db.query("PRAGMA user_version", {}, [&](const Row& row) { layout = row.int64(0); }));
  return layout;
}

// A file of another layout is emptied rather than misread: read models derive from the
// log, so every projection then builds again from position 1.
static Result<void> check_layout(WriteTransaction& db) {
  OF_ASSIGN_OR_RETURN(const auto layout, layout_of(db));
  if (layout == kLayout) return {};
  std::vector<std::string> names;
  if (auto r = db.query("SELECT name FROM sqlite_schema WHERE type = 'table'", {},
                        [&](const Row& row) { names.emplace_back(row.text(0)); });
      !r)
    return r;
  for (const auto& name : names)
    if (auto r = db.run("DROP TABLE \"" + name + "\""); !r) return r;
  return db.run("PRAGMA user_version = " + std::to_string(kLayout));
}

// What the WAL keeps when it starts over (journal_size_limit).
constexpr std::int64_t kWalSizeLimit = 64 << 20;

Result<std::unique_ptr<SqliteReadModelDb>> SqliteReadModelDb::open(const std::string& path, bool durable_commits) {
  std::unique_ptr<SqliteReadModelDb> db(new SqliteReadModelDb());
  db->path_ = path;
  MutexLock lk(db->writer_mu_);  // nothing else uses it yet: for the analysis
  OF_ASSIGN_OR_RETURN(auto writer, Database::open(path));
  db->writer_ = std::make_unique<Connection>(std::move(writer));
  OF_RETURN_IF_ERROR(check_layout(*db->writer_));
  OF_ASSIGN_OR_RETURN(auto checkpointer, Database::open(path));
  db->checkpointer_ = std::move(checkpointer);
  // The read models can be rebuilt from the log: a power cut may lose their last batches
  // (positions included, so they are replayed), never corrupt them. A crashed process loses nothing.
  // Statement journals stay in memory: a projection's multi-row upsert would spill one to a
  // temporary file, made and deleted in every transaction (README).
  OF_RETURN_IF_ERROR(db->writer_->db().exec(std::string("PRAGMA synchronous=") + (durable_commits ? "FULL" : "NORMAL") +
                                            "; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=" +
                                            std::to_string(kWalSizeLimit) + "; PRAGMA temp_store=MEMORY"));
  db->checkpoint_thread_ = named_thread("of-rm-checkpt", [d = db.get()] { d->checkpoint_loop(); });
  return db;
}

Result<std::unique_ptr<SqliteReadModelDb>> SqliteReadModelDb::open_read_only(const std::string& path) {
  std::unique_ptr<SqliteReadModelDb> db(new SqliteReadModelDb());
  db->path_ = path;
  db->read_only_ = true;
  OF_ASSIGN_OR_RETURN(auto opened, db->open_connection());
  auto connection = std::make_unique<Connection>(std::move(opened));
  OF_ASSIGN_OR_RETURN(const auto layout, layout_of(*connection));
  if (layout != kLayout)
    return fail(Errc::invalid_state, path + " holds read models of another layout (" + std::to_string(layout) +
                                         ", this orderflow's " + std::to_string(kLayout) +
                                         "): a server opening it builds them again from the log");
  db->give_back(std::move(connection));
  return db;
}

Result<Database> SqliteReadModelDb::open_connection() const {
  return read_only_ ? Database::open_at_rest(path_) : Database::open(path_);
}

SqliteReadModelDb::~SqliteReadModelDb() {
  {
    MutexLock lk(checkpoint_mu_);
    closing_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
}

void SqliteReadModelDb::checkpoint_loop() {
  MutexLock lk(checkpoint_mu_);
  while (!checkpoint_cv_.wait_for(checkpoint_mu_, std::chrono::milliseconds(200), [this]() REQUIRES(checkpoint_mu_) { return closing_; })) {
    lk.unlock();
    // Never blocks the writer but for a RESTART's short wait; keeps the WAL bounded.
    if (auto r = checkpoint_wal(checkpointer_, kWalSizeLimit / 4, "readmodels"); !r)
      report_failure("read models", "WAL checkpoint", r.error().message,
                     "the read models' WAL grows until a checkpoint succeeds; tried every 200 ms");
    else
      recovered("read models", "WAL checkpoint");
    lk.lock();
  }
}

// One process's own file: its writer lock is all the exclusion there is to have.
Result<void> SqliteReadModelDb::create_tables(std::span<const std::string> statements) {
  // Read-only, the tables are there already (CREATE … IF NOT EXISTS then writes nothing),
  // or the read models are not: that statement's error says so.
  if (read_only_) {
    auto reader = lease();
    Result<void> created;
    for (auto it = statements.begin(); created && it != statements.end(); ++it) created = reader->run(*it, {});
    give_back(std::move(reader));
    return created;
  }
  return transaction("", [&](WriteTransaction& tx) -> Result<void> {
    for (const auto& create : statements)
      if (auto r = tx.run(create); !r) return r;
    return {};
  });
}

Result<void> SqliteReadModelDb::transaction(const std::string&,
                                            const std::function<Result<void>(WriteTransaction&)>& fn) {
  if (read_only_) return fail(Errc::unavailable, path_ + " is open read-only");
  MutexLock lk(writer_mu_);
  auto& db = writer_->db();
  if (auto r = db.exec("BEGIN IMMEDIATE"); !r) return r;
  auto r = fn(*writer_);
  if (r) r = db.exec("COMMIT");
  if (!r) (void)db.exec("ROLLBACK");
  return r;
}

Result<void> SqliteReadModelDb::query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) {
  auto reader = lease();
  auto result = reader->query(sql, params, on_row);
  give_back(std::move(reader));
  return result;
}

std::unique_ptr<SqliteReadModelDb::Connection> SqliteReadModelDb::lease() {
  {
    MutexLock lk(readers_mu_);
    if (!readers_.empty()) {
      auto r = std::move(readers_.back());
      readers_.pop_back();
      return r;
    }
  }
  auto db = open_connection();
  OF_CHECK(db.has_value(), "cannot open a reader on the read-model database");
  return std::make_unique<Connection>(std::move(*db));
}

void SqliteReadModelDb::give_back(std::unique_ptr<Connection> reader) {
  MutexLock lk(readers_mu_);
  readers_.push_back(std::move(reader));
}

}  // namespace orderflow::sqlite
