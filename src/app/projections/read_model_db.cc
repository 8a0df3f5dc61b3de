#include "app/projections/read_model_db.h"

#include <algorithm>
#include <optional>

namespace orderflow::app::projections {

namespace {

// Steps `s` through its rows, calling on_row(s) at each, and resets it.
template <class OnRow>
Result<void> for_each_row(sqlite::Statement& s, OnRow on_row) {
  sqlite::ResetOnExit reset(s);
  for (;;) {
    auto row = s.step();
    if (!row) return fail(row.error());
    if (!*row) return {};
    on_row(s);
  }
}

// The layout of the read-model tables (PRAGMA user_version); 2: entity rows without states.
constexpr std::int64_t kLayout = 2;

// A file of another layout is emptied rather than misread: read models derive from the
// log, so every projection then builds again from position 1.
Result<void> check_layout(sqlite::Database& db) {
  auto version = db.prepare("PRAGMA user_version");
  if (!version) return fail(version.error());
  if (auto row = version->step(); !row) return fail(row.error());
  const auto layout = version->int64(0);
  version->reset();
  if (layout == kLayout) return {};
  auto tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'");
  if (!tables) return fail(tables.error());
  std::vector<std::string> names;
  if (auto r = for_each_row(*tables, [&](sqlite::Statement& t) { names.emplace_back(t.text(0)); }); !r) return r;
  for (const auto& name : names)
    if (auto r = db.exec("DROP TABLE \"" + name + "\""); !r) return r;
  return db.exec("PRAGMA user_version = " + std::to_string(kLayout));
}

}  // namespace

Result<std::unique_ptr<ReadModelDb>> ReadModelDb::open(const std::string& path) {
  std::unique_ptr<ReadModelDb> db(new ReadModelDb());
  db->path_ = path;
  auto writer = sqlite::Database::open(path);
  if (!writer) return fail(writer.error());
  db->writer_ = std::move(*writer);
  if (auto r = check_layout(db->writer_); !r) return fail(r.error());
  auto checkpointer = sqlite::Database::open(path);
  if (!checkpointer) return fail(checkpointer.error());
  db->checkpointer_ = std::move(*checkpointer);
  // The read models can be rebuilt from the log: a power cut may lose their last batches
  // (positions included, so they are replayed), never corrupt them. A crashed process loses nothing.
  if (auto r = db->writer_.exec("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                                "CREATE TABLE IF NOT EXISTS read_models (projection TEXT NOT NULL, "
                                "generation INTEGER NOT NULL, position INTEGER NOT NULL, live INTEGER NOT NULL, "
                                "PRIMARY KEY (projection, generation)) STRICT");
      !r)
    return fail(r.error());
  db->checkpoint_thread_ = std::thread([d = db.get()] { d->checkpoint_loop(); });
  return db;
}

ReadModelDb::~ReadModelDb() {
  {
    std::lock_guard lk(checkpoint_mu_);
    closing_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
}

void ReadModelDb::checkpoint_loop() {
  std::unique_lock lk(checkpoint_mu_);
  while (!checkpoint_cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return closing_; })) {
    lk.unlock();
    // PASSIVE: copies what no reader still needs and never blocks the writer. A failure
    // leaves the WAL longer until the next round; nothing is lost.
    (void)checkpointer_.exec("PRAGMA wal_checkpoint(PASSIVE)");
    lk.lock();
  }
}

Result<void> ReadModelDb::transaction(const std::function<Result<void>(sqlite::Database&)>& fn) {
  std::lock_guard lk(writer_mu_);
  if (auto r = writer_.exec("BEGIN IMMEDIATE"); !r) return r;
  auto r = fn(writer_);
  if (r) r = writer_.exec("COMMIT");
  if (!r) (void)writer_.exec("ROLLBACK");
  return r;
}

Result<sqlite::Statement*> ReadModelDb::Reader::prepare(const std::string& sql) {
  if (auto it = cache_.find(sql); it != cache_.end()) return &it->second;
  // Statements of copies dropped since stay behind; a bound keeps them from piling up.
  if (cache_.size() > 128) cache_.clear();
  auto stmt = db_.prepare(sql);
  if (!stmt) return fail(stmt.error());
  return &cache_.emplace(sql, std::move(*stmt)).first->second;
}

std::unique_ptr<ReadModelDb::Reader> ReadModelDb::lease() {
  {
    std::lock_guard lk(readers_mu_);
    if (!readers_.empty()) {
      auto r = std::move(readers_.back());
      readers_.pop_back();
      return r;
    }
  }
  auto r = std::make_unique<Reader>();
  auto db = sqlite::Database::open(path_);
  OF_CHECK(db.has_value(), "cannot open a reader on the read-model database");
  r->db_ = std::move(*db);
  return r;
}

void ReadModelDb::give_back(std::unique_ptr<Reader> reader) {
  std::lock_guard lk(readers_mu_);
  readers_.push_back(std::move(reader));
}

std::string with_generation(std::string_view sql, std::int64_t generation) {
  const auto suffix = "_g" + std::to_string(generation);
  std::string out;
  out.reserve(sql.size() + 16);
  for (char c : sql) {
    if (c == '$')
      out += suffix;
    else
      out += c;
  }
  return out;
}

class SqliteProjection::Copy final : public es::ReadModel {
 public:
  Copy(SqliteProjection& p, std::int64_t generation, std::unique_ptr<CopyWriter> writer, sqlite::Statement save)
      : p_(p), generation_(generation), writer_(std::move(writer)), save_(std::move(save)) {}

  std::int64_t generation() const { return generation_; }

  Result<es::Position> position() override {
    return p_.db_.read([&](ReadModelDb::Reader& r) -> Result<es::Position> {
      auto s = r.prepare("SELECT position FROM read_models WHERE projection = ?1 AND generation = ?2");
      if (!s) return fail(s.error());
      sqlite::ResetOnExit reset(**s);
      (*s)->bind(1, p_.name_).bind(2, generation_);
      auto row = (*s)->step();
      if (!row) return fail(row.error());
      return *row ? (*s)->int64(0) : 0;
    });
  }

  // Events at or below the copy's position are dropped here: a writer only ever sees events
  // its copy has not applied (FoldWriter relies on it for streams' first events).
  Result<void> apply(std::span<const es::RecordedEvent> events, es::Position through) override {
    if (!applied_) {
      auto stored = position();
      if (!stored) return fail(stored.error());
      applied_ = *stored;
    }
    if (through <= *applied_) return {};
    auto fresh = std::find_if(events.begin(), events.end(), [&](const auto& e) { return e.position > *applied_; });
    events = events.subspan(static_cast<std::size_t>(fresh - events.begin()));
    auto r = p_.db_.transaction([&](sqlite::Database&) -> Result<void> {
      if (auto r = writer_->apply(events); !r) return r;
      return save_.bind(1, through).run();
    });
    if (r)
      applied_ = through;
    else
      writer_->rolled_back();
    return r;
  }

 private:
  SqliteProjection& p_;
  std::int64_t generation_;
  std::unique_ptr<CopyWriter> writer_;
  sqlite::Statement save_;
  std::optional<es::Position> applied_;  // committed position, once read
};

SqliteProjection::SqliteProjection(ReadModelDb& db, std::string name, es::EventFilter filter,
                                   std::vector<std::string> schema, std::vector<std::string> tables)
    : db_(db), name_(std::move(name)), filter_(std::move(filter)), schema_(std::move(schema)),
      tables_(std::move(tables)) {}

// The tables of the copy of `generation`, or (indexes) its indexes.
Result<void> SqliteProjection::create_schema(sqlite::Database& db, std::int64_t generation, bool indexes) {
  for (const auto& create : schema_)
    if (create.starts_with("CREATE INDEX") == indexes)
      if (auto r = db.exec(with_generation(create, generation)); !r) return r;
  return {};
}

Result<std::unique_ptr<es::ReadModel>> SqliteProjection::make_copy(std::int64_t generation, bool indexed) {
  Result<std::unique_ptr<es::ReadModel>> out = fail(Errc::internal, "no copy made");
  auto made = db_.transaction([&](sqlite::Database& db) -> Result<void> {
    if (auto r = create_schema(db, generation, false); !r) return r;
    if (indexed)
      if (auto r = create_schema(db, generation, true); !r) return r;
    auto writer = this->writer(db, generation);
    if (!writer) return fail(writer.error());
    auto save = db.prepare("UPDATE read_models SET position = ?1 WHERE projection = '" + name_ +
                           "' AND generation = " + std::to_string(generation));
    if (!save) return fail(save.error());
    out = std::unique_ptr<es::ReadModel>(new Copy(*this, generation, std::move(*writer), std::move(*save)));
    return {};
  });
  if (!made) return fail(made.error());
  return out;
}

Result<void> SqliteProjection::drop_unused(sqlite::Database& db) {
  auto unused = db.prepare("SELECT generation FROM read_models WHERE projection = ?1 AND live = 0");
  if (!unused) return fail(unused.error());
  std::vector<std::int64_t> generations;
  unused->bind(1, name_);
  if (auto r = for_each_row(*unused, [&](sqlite::Statement& u) { generations.push_back(u.int64(0)); }); !r) return r;
  for (auto g : generations) {
    for (const auto& table : tables_)
      if (auto r = db.exec("DROP TABLE IF EXISTS " + with_generation(table, g)); !r) return r;
    if (auto r = db.exec("DELETE FROM read_models WHERE projection = '" + name_ + "' AND generation = " +
                         std::to_string(g));
        !r)
      return r;
  }
  return {};
}

// A new copy's generation: one past every generation the projection ever had, registered
// with `live` as given. Leftovers of an unfinished rebuild are dropped first.
static Result<std::int64_t> register_copy(sqlite::Database& db, const std::string& name, bool live) {
  auto next = db.prepare("SELECT coalesce(max(generation), 0) + 1 FROM read_models WHERE projection = ?1");
  if (!next) return fail(next.error());
  next->bind(1, name);
  auto row = next->step();
  if (!row) return fail(row.error());
  const auto generation = next->int64(0);
  next->reset();
  auto insert = db.prepare("INSERT INTO read_models (projection, generation, position, live) VALUES (?1, ?2, 0, ?3)");
  if (!insert) return fail(insert.error());
  if (auto r = insert->bind(1, name).bind(2, generation).bind(3, live ? 1 : 0).run(); !r) return fail(r.error());
  return generation;
}

Result<std::unique_ptr<es::ReadModel>> SqliteProjection::open_live() {
  std::int64_t generation = 0;
  auto found = db_.transaction([&](sqlite::Database& db) -> Result<void> {
    if (auto r = drop_unused(db); !r) return r;
    auto live = db.prepare("SELECT generation FROM read_models WHERE projection = ?1 AND live = 1");
    if (!live) return fail(live.error());
    live->bind(1, name_);
    auto row = live->step();
    if (!row) return fail(row.error());
    if (*row) {
      generation = live->int64(0);
      return {};
    }
    live->reset();
    auto g = register_copy(db, name_, true);
    if (!g) return fail(g.error());
    generation = *g;
    return {};
  });
  if (!found) return fail(found.error());
  live_ = generation;
  return make_copy(generation, true);
}

Result<std::unique_ptr<es::ReadModel>> SqliteProjection::create_copy() {
  std::int64_t generation = 0;
  auto made = db_.transaction([&](sqlite::Database& db) -> Result<void> {
    if (auto r = drop_unused(db); !r) return r;
    auto g = register_copy(db, name_, false);
    if (!g) return fail(g.error());
    generation = *g;
    return {};
  });
  if (!made) return fail(made.error());
  return make_copy(generation, false);
}

Result<void> SqliteProjection::promote(es::ReadModel& copy) {
  const auto generation = static_cast<Copy&>(copy).generation();
  if (auto r = db_.transaction([&](sqlite::Database& db) { return create_schema(db, generation, true); }); !r)
    return r;
  // Queries in flight finish on the old copy first; later ones read the new one.
  std::unique_lock lk(swap_mu_);
  auto swapped = db_.transaction([&](sqlite::Database& db) -> Result<void> {
    if (auto r = db.exec("UPDATE read_models SET live = (generation = " + std::to_string(generation) +
                         ") WHERE projection = '" + name_ + "'");
        !r)
      return r;
    return drop_unused(db);
  });
  if (!swapped) return swapped;
  live_ = generation;
  return {};
}

}  // namespace orderflow::app::projections
