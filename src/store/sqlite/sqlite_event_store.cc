#include "store/sqlite/sqlite_event_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>

namespace orderflow::sqlite {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS events (
  position       INTEGER PRIMARY KEY,
  event_id       TEXT    NOT NULL UNIQUE,
  stream_id      TEXT    NOT NULL,
  version        INTEGER NOT NULL,
  type           TEXT    NOT NULL,
  schema_version INTEGER NOT NULL,
  data           TEXT    NOT NULL,
  metadata       TEXT    NOT NULL,
  recorded_at    INTEGER NOT NULL,
  UNIQUE (stream_id, version)
) STRICT;
CREATE TABLE IF NOT EXISTS snapshots (
  stream_id      TEXT PRIMARY KEY,
  version        INTEGER NOT NULL,
  schema_version INTEGER NOT NULL,
  state          TEXT    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
  name     TEXT PRIMARY KEY,
  position INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (
  key         TEXT PRIMARY KEY,
  fingerprint TEXT    NOT NULL,
  status      INTEGER NOT NULL,
  response    TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  position    INTEGER NOT NULL  -- of the append's last event: visible once that is durable
) STRICT;
)sql";

constexpr const char* kEventColumns =
    "position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at";

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void load_event(const Statement& s, es::RecordedEvent& e) {
  e.position = s.int64(0);
  e.event_id.assign(s.text(1));
  e.stream_id.assign(s.text(2));
  e.version = s.int64(3);
  e.type.assign(s.text(4));
  e.schema_version = static_cast<std::int32_t>(s.int64(5));
  e.data.assign(s.text(6));
  e.metadata.assign(s.text(7));
  e.recorded_at_ms = s.int64(8);
}

// A category filter as a range on stream_id: "order" matches ["order-", "order.").
std::string filter_sql(const es::EventFilter& f) {
  std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE position >= ?1 AND position <= ?3";
  int param = 4;
  if (!f.stream_id.empty()) sql += " AND stream_id = ?" + std::to_string(param++);
  if (!f.categories.empty()) {
    sql += " AND (";
    for (std::size_t i = 0; i < f.categories.size(); ++i) {
      if (i) sql += " OR ";
      sql += "(stream_id >= ?" + std::to_string(param) + " AND stream_id < ?" +
             std::to_string(param + 1) + ")";
      param += 2;
    }
    sql += ")";
  }
  if (!f.types.empty()) {
    sql += " AND type IN (";
    for (std::size_t i = 0; i < f.types.size(); ++i) sql += (i ? ", ?" : "?") + std::to_string(param++);
    sql += ")";
  }
  return sql + " ORDER BY position LIMIT ?2";
}

}  // namespace

// A read connection with its prepared statements. Used by one thread at a time.
struct SqliteEventStore::Reader {
  Database db;
  Statement forward, backward, scan, last_position, version, find_event, find_idempotency, idempotency_exists, load_snapshot, load_checkpoint, begin, commit;

  static Result<std::unique_ptr<Reader>> open(const std::string& path) {
    auto r = std::make_unique<Reader>();
    auto db = Database::open(path);
    if (!db) return db.error();
    r->db = std::move(*db);
    struct {
      Statement* stmt;
      std::string sql;
    } statements[] = {
        {&r->forward, std::string("SELECT ") + kEventColumns +
                          " FROM events WHERE stream_id = ?1 AND version >= ?2 AND position <= ?4 ORDER BY version LIMIT ?3"},
        {&r->backward, std::string("SELECT ") + kEventColumns +
                           " FROM events WHERE stream_id = ?1 AND version <= ?2 AND position <= ?4 ORDER BY version DESC LIMIT ?3"},
        {&r->scan, std::string("SELECT ") + kEventColumns +
                       " FROM events WHERE position >= ?1 AND position <= ?3 ORDER BY position LIMIT ?2"},
        {&r->last_position, "SELECT coalesce(max(position), 0) FROM events"},
        {&r->version, "SELECT coalesce(max(version), -1) FROM events WHERE stream_id = ?1 AND position <= ?2"},
        {&r->find_event, "SELECT stream_id, version, position FROM events WHERE event_id = ?1"},
        {&r->find_idempotency,
         "SELECT fingerprint, status, response, created_at FROM idempotency WHERE key = ?1 AND position <= ?2"},
        {&r->idempotency_exists, "SELECT 1 FROM idempotency WHERE key = ?1"},
        {&r->load_snapshot, "SELECT version, schema_version, state FROM snapshots WHERE stream_id = ?1"},
        {&r->load_checkpoint, "SELECT position FROM checkpoints WHERE name = ?1"},
        {&r->begin, "BEGIN"},
        {&r->commit, "COMMIT"},
    };
    for (auto& s : statements) {
      auto p = r->db.prepare(s.sql);
      if (!p) return p.error();
      *s.stmt = std::move(*p);
    }
    return r;
  }
};

// Returns a reader to the pool when it goes out of scope.
class SqliteEventStore::ReaderLease {
 public:
  ReaderLease(SqliteEventStore& store, std::unique_ptr<Reader> r) : store_(&store), r_(std::move(r)) {}
  ReaderLease(ReaderLease&&) = default;
  ~ReaderLease() {
    if (!r_) return;
    std::lock_guard lk(store_->readers_mu_);
    store_->readers_.push_back(std::move(r_));
  }
  Reader* operator->() { return r_.get(); }
  Reader& operator*() { return *r_; }

 private:
  SqliteEventStore* store_;
  std::unique_ptr<Reader> r_;
};

SqliteEventStore::SqliteEventStore(SqliteEventStoreOptions options)
    : options_(std::move(options)), tail_(options_.tail), pipeline_(*this, options_.pipeline, &now_ms) {}

SqliteEventStore::~SqliteEventStore() {
  close();
  if (wal_fd_ >= 0) ::close(wal_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Result<std::unique_ptr<SqliteEventStore>> SqliteEventStore::open(SqliteEventStoreOptions options) {
  std::unique_ptr<SqliteEventStore> store(new SqliteEventStore(std::move(options)));
  if (auto r = store->init(); !r) return r.error();
  return store;
}

Result<void> SqliteEventStore::init() {
  // One writing process per file: the pipeline assigns positions in memory.
  lock_fd_ = ::open((options_.path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return fail(Errc::unavailable, "cannot open " + options_.path + ".lock: " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return fail(Errc::unavailable, options_.path + " is in use by another orderflow process");
  auto db = Database::open(options_.path);
  if (!db) return db.error();
  writer_db_ = std::move(*db);
  // Checkpoints run on their own thread so a commit never waits for one.
  // The writer keeps the indexes' hot pages cached rather than re-reading them per batch.
  // The writer does not sync: sync() does, on its own thread (see there).
  if (auto r = writer_db_.exec(std::string(kSchema) +
                               "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=" + std::to_string(options_.wal_size_limit) +
                               "; PRAGMA cache_size=-32768; PRAGMA synchronous=OFF;");
      !r)
    return fail(r.error().code, options_.path + " is not a usable event store (" + r.error().message + ")");
  struct {
    Statement* stmt;
    const char* sql;
  } statements[] = {
      {&insert_event_,
       "INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data, "
       "metadata, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&insert_idempotency_,
       "INSERT INTO idempotency (key, fingerprint, status, response, created_at, position) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
  };
  for (auto& s : statements) {
    auto p = writer_db_.prepare(s.sql);
    if (!p) return p.error();
    *s.stmt = std::move(*p);
  }

  auto aux = Database::open(options_.path);
  if (!aux) return aux.error();
  aux_db_ = std::move(*aux);
  if (auto r = aux_db_.exec("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=" +
                            std::to_string(options_.wal_size_limit));
      !r)
    return r.error();
  auto snap = aux_db_.prepare(
      "INSERT INTO snapshots (stream_id, version, schema_version, state) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
      "schema_version = excluded.schema_version, state = excluded.state");
  if (!snap) return snap.error();
  save_snapshot_ = std::move(*snap);
  auto ckpt = aux_db_.prepare(
      "INSERT INTO checkpoints (name, position) VALUES (?1, ?2) "
      "ON CONFLICT (name) DO UPDATE SET position = excluded.position");
  if (!ckpt) return ckpt.error();
  save_checkpoint_ = std::move(*ckpt);

  auto probe = Reader::open(options_.path);
  if (!probe) return probe.error();
  probe_ = std::move(*probe);

  // Sized for twice the events stored now (at least 4M ids, 5 MiB): past that it fills
  // and answers "maybe" more often, which costs lookups, never correctness.
  auto stored = committed_last_position();
  if (!stored) return stored.error();
  ids_ = std::make_unique<EventIdFilter>(std::max<std::size_t>(std::size_t{1} << 22, 2 * static_cast<std::size_t>(*stored)));
  if (auto r = pipeline_.start(); !r) return r;
  ids_loader_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "of-load-ids");
    load_ids();
  });
  checkpointer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "of-checkpoint");
    checkpoint_loop();
  });
  return {};
}

// Adds the id of every event in the file to ids_. Appends made meanwhile are added by
// on_durable(), so once this has read every row present when it started, ids_ is complete.
void SqliteEventStore::load_ids() {
  auto db = Database::open(options_.path, true);
  if (!db) return;  // every id is looked up, as before
  auto scan = db->prepare("SELECT event_id FROM events");
  if (!scan) return;
  for (std::size_t n = 1;; ++n) {
    auto row = scan->step();
    if (!row) return;
    if (!*row) break;
    ids_->add(scan->text(0));
    if (n % 65536 == 0 && ids_stop_.load(std::memory_order_relaxed)) return;
  }
  ids_loaded_.store(true, std::memory_order_release);
}

void SqliteEventStore::close() {
  ids_stop_ = true;
  if (ids_loader_.joinable()) ids_loader_.join();
  pipeline_.stop();
  {
    std::lock_guard lk(checkpointer_mu_);
    closing_ = true;
  }
  checkpointer_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

// Copies the WAL back into the database every 250 ms and keeps it from growing without
// bound (checkpoint_wal), without blocking the writer but for a RESTART's short wait. (A
// TRUNCATE checkpoint here used to cut the WAL to nothing, so that every batch after it
// grew the file anew.)
void SqliteEventStore::checkpoint_loop() {
  auto db = Database::open(options_.path);
  if (!db) return;  // the writer's auto-checkpoint is off; the WAL grows until reopen
  std::unique_lock lk(checkpointer_mu_);
  while (!closing_) {
    checkpointer_cv_.wait_for(lk, std::chrono::milliseconds(250));
    lk.unlock();
    checkpoint_wal(*db, options_.wal_size_limit / 4);
    lk.lock();
  }
}

Result<SqliteEventStore::ReaderLease> SqliteEventStore::lease_reader() {
  {
    std::lock_guard lk(readers_mu_);
    if (!readers_.empty()) {
      auto r = std::move(readers_.back());
      readers_.pop_back();
      return ReaderLease(*this, std::move(r));
    }
  }
  auto r = Reader::open(options_.path);
  if (!r) return r.error();
  return ReaderLease(*this, std::move(*r));
}

void SqliteEventStore::append_async(es::AppendRequest req, es::AppendCallback done) {
  pipeline_.append(std::move(req), std::move(done));
}

Result<std::vector<es::RecordedEvent>> SqliteEventStore::read_stream(const std::string& stream_id,
                                                                     es::StreamVersion from_version,
                                                                     std::size_t max,
                                                                     es::Direction direction) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  bool forward = direction == es::Direction::forward;
  auto& s = forward ? (*reader)->forward : (*reader)->backward;
  ResetOnExit reset(s);
  s.bind(1, stream_id)
      .bind(2, forward || from_version >= 0 ? from_version : std::numeric_limits<std::int64_t>::max())
      .bind(3, static_cast<std::int64_t>(max))
      .bind(4, pipeline_.last_committed());
  std::vector<es::RecordedEvent> events;
  for (;;) {
    auto row = s.step();
    if (!row) return row.error();
    if (!*row) break;
    load_event(s, events.emplace_back());
    if (options_.upcasters && !options_.upcasters->empty())
      if (auto u = options_.upcasters->upcast(events.back()); !u) return u.error();
  }
  return events;
}

Result<es::Position> SqliteEventStore::scan_all(es::Position from_position, std::size_t max,
                                                const es::EventFilter& filter,
                                                const std::function<void(const es::RecordedEvent&)>& fn) {
  if (auto next = tail_.scan(from_position, max, filter, fn)) return *next;
  auto reader = lease_reader();
  if (!reader) return reader.error();
  // One read transaction, so "nothing more matched" and the last position agree.
  if (auto r = (*reader)->begin.run(); !r) return r.error();
  struct EndRead {
    Reader* r;
    ~EndRead() { (void)r->commit.run(); }
  } end_read{&*(*reader)};

  Statement adhoc;
  Statement* s = &(*reader)->scan;
  if (!filter.empty()) {
    auto p = (*reader)->db.prepare(filter_sql(filter));
    if (!p) return p.error();
    adhoc = std::move(*p);
    s = &adhoc;
  }
  ResetOnExit reset(*s);
  const es::Position durable = pipeline_.last_committed();
  s->bind(1, from_position).bind(2, static_cast<std::int64_t>(max)).bind(3, durable);
  std::vector<std::string> bounds;  // keeps category bounds alive while bound
  int param = 4;
  if (!filter.stream_id.empty()) s->bind(param++, filter.stream_id);
  bounds.reserve(filter.categories.size() * 2);
  for (const auto& c : filter.categories) {
    s->bind(param++, bounds.emplace_back(c + "-"));
    s->bind(param++, bounds.emplace_back(c + "."));
  }
  for (const auto& t : filter.types) s->bind(param++, t);

  es::RecordedEvent e;
  std::size_t count = 0;
  es::Position next = from_position;
  bool upcast = options_.upcasters && !options_.upcasters->empty();
  for (;;) {
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) break;
    load_event(*s, e);
    if (upcast)
      if (auto u = options_.upcasters->upcast(e); !u) return u.error();
    fn(e);
    ++count;
    next = e.position + 1;
  }
  if (count < max) {
    // Everything up to the end was examined.
    auto& last = (*reader)->last_position;
    ResetOnExit reset_last(last);
    auto row = last.step();
    if (!row) return row.error();
    next = std::max(next, std::min(last.int64(0), durable) + 1);
  }
  return next;
}

Result<es::Position> SqliteEventStore::last_position() { return pipeline_.last_committed(); }

Result<es::StreamVersion> SqliteEventStore::stream_version(const std::string& stream_id) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->version;
  ResetOnExit reset(s);
  s.bind(1, stream_id).bind(2, pipeline_.last_committed());
  auto row = s.step();
  if (!row) return row.error();
  return s.int64(0);
}

Result<std::optional<es::IdempotencyRecord>> SqliteEventStore::find_idempotency(const std::string& key) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->find_idempotency;
  ResetOnExit reset(s);
  s.bind(1, key).bind(2, pipeline_.last_committed());
  auto row = s.step();
  if (!row) return row.error();
  if (!*row) return std::optional<es::IdempotencyRecord>();
  return std::optional<es::IdempotencyRecord>(es::IdempotencyRecord{
      key, std::string(s.text(0)), static_cast<int>(s.int64(1)), std::string(s.text(2)), s.int64(3)});
}

bool SqliteEventStore::wait_for_events(es::Position after, std::chrono::milliseconds timeout) {
  return pipeline_.wait_for_commit(after, timeout);
}

Result<void> SqliteEventStore::save_snapshot(const es::Snapshot& snapshot) {
  std::lock_guard lk(aux_mu_);
  return save_snapshot_.bind(1, snapshot.stream_id)
      .bind(2, snapshot.version)
      .bind(3, snapshot.schema_version)
      .bind(4, snapshot.state)
      .run();
}

std::optional<es::Snapshot> SqliteEventStore::load_snapshot(const std::string& stream_id) {
  auto reader = lease_reader();
  if (!reader) return std::nullopt;  // a snapshot is an optimisation: never fatal
  auto& s = (*reader)->load_snapshot;
  ResetOnExit reset(s);
  s.bind(1, stream_id);
  auto row = s.step();
  if (!row || !*row) return std::nullopt;
  return es::Snapshot{stream_id, s.int64(0), static_cast<std::int32_t>(s.int64(1)), std::string(s.text(2))};
}

Result<es::Position> SqliteEventStore::load_checkpoint(const std::string& name) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->load_checkpoint;
  ResetOnExit reset(s);
  s.bind(1, name);
  auto row = s.step();
  if (!row) return row.error();
  return *row ? s.int64(0) : es::Position{0};
}

Result<void> SqliteEventStore::save_checkpoint(const std::string& name, es::Position position) {
  std::lock_guard lk(aux_mu_);
  return save_checkpoint_.bind(1, name).bind(2, position).run();
}

// ExclusiveAppendBackend: called under the pipeline's lock, on the probe connection.

Result<es::StreamVersion> SqliteEventStore::committed_version(const std::string& stream_id) {
  auto& s = probe_->version;
  ResetOnExit reset(s);
  s.bind(1, stream_id).bind(2, std::numeric_limits<std::int64_t>::max());
  auto row = s.step();
  if (!row) return row.error();
  return s.int64(0);
}

Result<es::Position> SqliteEventStore::committed_last_position() {
  auto& s = probe_->last_position;
  ResetOnExit reset(s);
  auto row = s.step();
  if (!row) return row.error();
  return s.int64(0);
}

Result<std::optional<es::StoredEventRef>> SqliteEventStore::find_event(const std::string& event_id) {
  if (ids_loaded_.load(std::memory_order_acquire) && !ids_->may_contain(event_id))
    return std::optional<es::StoredEventRef>();
  auto& s = probe_->find_event;
  ResetOnExit reset(s);
  s.bind(1, event_id);
  auto row = s.step();
  if (!row) return row.error();
  if (!*row) return std::optional<es::StoredEventRef>();
  return std::optional<es::StoredEventRef>(es::StoredEventRef{std::string(s.text(0)), s.int64(1), s.int64(2)});
}

Result<bool> SqliteEventStore::idempotency_key_exists(const std::string& key) {
  auto& s = probe_->idempotency_exists;
  ResetOnExit reset(s);
  s.bind(1, key);
  auto row = s.step();
  if (!row) return row.error();
  return *row;
}

// The writer commits with synchronous=OFF; durability is this fdatasync of the WAL,
// which covers every transaction committed before it (WAL recovery keeps frames up to
// the last complete commit), while the writer goes on with the next batch.
Result<void> SqliteEventStore::sync(std::size_t /*batches: all of them*/) {
  if (wal_fd_ < 0) {
    wal_fd_ = ::open((options_.path + "-wal").c_str(), O_RDWR | O_CLOEXEC);
    if (wal_fd_ < 0) return fail(Errc::unavailable, "cannot open the WAL of " + options_.path + ": " + std::strerror(errno));
  }
  if (::fdatasync(wal_fd_) != 0)
    return fail(Errc::unavailable, "fdatasync of the WAL of " + options_.path + " failed: " + std::strerror(errno));
  return {};
}

Result<void> SqliteEventStore::write_batch(std::vector<es::StagedAppend>& batch) {
  if (auto r = begin_.run(); !r) return r;
  auto write_all = [&]() -> Result<void> {
    for (const auto& a : batch) {
      for (std::size_t i = 0; i < a.request.events.size(); ++i) {
        const auto& e = a.request.events[i];
        auto offset = static_cast<std::int64_t>(i);
        auto r = insert_event_.bind(1, a.first_position + offset)
                     .bind(2, e.event_id)
                     .bind(3, a.request.stream_id)
                     .bind(4, a.first_version + offset)
                     .bind(5, e.type)
                     .bind(6, e.schema_version)
                     .bind(7, e.data.empty() ? std::string_view("{}") : std::string_view(e.data))
                     .bind(8, e.metadata.empty() ? std::string_view("{}") : std::string_view(e.metadata))
                     .bind(9, a.recorded_at_ms)
                     .run();
        if (!r) return r;
      }
      if (const auto& k = a.request.idempotency) {
        auto r = insert_idempotency_.bind(1, k->key)
                     .bind(2, k->request_fingerprint)
                     .bind(3, k->status)
                     .bind(4, k->response)
                     .bind(5, k->created_at_ms ? k->created_at_ms : a.recorded_at_ms)
                     .bind(6, a.result().position)
                     .run();
        if (!r) return r;
      }
    }
    return commit_.run();
  };
  auto r = write_all();
  if (!r) (void)rollback_.run();
  return r;
}

// The batch is durable: its events join the in-memory tail, upcast as a read would see them.
void SqliteEventStore::on_durable(std::vector<es::StagedAppend>& batch) {
  for (const auto& a : batch)
    if (!a.answer)
      for (const auto& e : a.request.events) ids_->add(e.event_id);
  std::vector<es::RecordedEvent> events;
  for (auto& a : batch) {
    if (a.answer) continue;  // answered without being written
    for (std::size_t i = 0; i < a.request.events.size(); ++i) {
      auto& n = a.request.events[i];
      auto offset = static_cast<std::int64_t>(i);
      auto& e = events.emplace_back();
      e.event_id = std::move(n.event_id);
      e.stream_id = a.request.stream_id;
      e.type = std::move(n.type);
      e.version = a.first_version + offset;
      e.position = a.first_position + offset;
      e.schema_version = n.schema_version;
      e.data = n.data.empty() ? std::string("{}") : std::move(n.data);
      e.metadata = n.metadata.empty() ? std::string("{}") : std::move(n.metadata);
      e.recorded_at_ms = a.recorded_at_ms;
      if (options_.upcasters && !options_.upcasters->empty() && !options_.upcasters->upcast(e)) {
        // Not upcastable: readers must get the error from the database read, so the tail
        // drops everything and covers again only from the next batch on.
        tail_.clear();
        return;
      }
    }
  }
  tail_.push(std::move(events));
}

}  // namespace orderflow::sqlite
