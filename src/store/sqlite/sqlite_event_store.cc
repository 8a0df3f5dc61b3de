#include "store/sqlite/sqlite_event_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>

#include "core/failures.h"
#include "core/named_thread.h"
#include "core/time.h"
#include "es/event_hash.h"

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
  checksum       INTEGER NOT NULL   -- es::event_checksum of the fields, what reads check
) STRICT;
-- The hash chain (es/event_hash.h) at every kChainStride-th position, and at the head.
CREATE TABLE IF NOT EXISTS chain (
  position INTEGER PRIMARY KEY,
  hash     BLOB    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS chain_head (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  position INTEGER NOT NULL,
  hash     BLOB    NOT NULL
) STRICT;
-- (stream, version) -> position, filled behind the events (see stream_index_backlog.h):
-- complete up to indexed_through, the rest is in memory and rebuilt at open.
CREATE TABLE IF NOT EXISTS stream_index (
  stream_id TEXT    NOT NULL,
  version   INTEGER NOT NULL,
  position  INTEGER NOT NULL,
  PRIMARY KEY (stream_id, version)
) WITHOUT ROWID, STRICT;
CREATE TABLE IF NOT EXISTS stream_index_state (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  indexed_through INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO stream_index_state (id, indexed_through) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS snapshots (
  stream_id      TEXT PRIMARY KEY,
  version        INTEGER NOT NULL,
  schema_version INTEGER NOT NULL,
  state          TEXT    NOT NULL,
  checksum       INTEGER NOT NULL   -- es::snapshot_checksum: a snapshot that fails it is not used
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
-- Records past their retention are deleted oldest first (expire_idempotency).
CREATE INDEX IF NOT EXISTS idempotency_created_at ON idempotency (created_at);
-- Per-customer keys of the personal data sealed in events (es/customer_keys.h): erasure
-- sets key to NULL (crypto-shredding); the events are never rewritten.
CREATE TABLE IF NOT EXISTS customer_keys (
  customer_id TEXT PRIMARY KEY,
  key         BLOB,              -- 32 bytes (AES-256); NULL once erased
  created_at  INTEGER NOT NULL,
  erased_at   INTEGER            -- the last erasure; NULL: never erased
) STRICT;
)sql";

// The file's format (PRAGMA user_version): 2 since the stream index left the events table,
// 3 since every event carries its hashes, 4 since it carries its checksum too, 5 since the
// hashes moved out of the rows to the chain tables, 6 since snapshots carry a checksum, 7
// since the file holds customer_keys (made at open: nothing else changes).
constexpr std::int64_t kFormat = 7;

// The chain's hash is kept at every position that is a multiple of this (and at the head):
// a break is named within this many positions.
constexpr std::int64_t kChainStride = 64;

constexpr const char* kFieldColumns =
    "position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at";
constexpr const char* kEventColumns =
    "position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at, checksum";
constexpr const char* kIndexedEventColumns =
    "e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.recorded_at, "
    "e.checksum";


// clear() + append(): into the capacity a reused event already has, without assign()'s
// handling of a source inside the string itself (a scan does five per row).
void load_text(const Statement& s, int column, std::string& out) {
  out.clear();
  out.append(s.text(column));
}

void load_event(const Statement& s, es::RecordedEvent& e) {
  e.position = es::Position{s.int64(0)};
  load_text(s, 1, e.event_id);
  e.stream_id.assign(s.text(2));
  e.version = es::StreamVersion{s.int64(3)};
  load_text(s, 4, e.type);
  e.schema_version = static_cast<std::int32_t>(s.int64(5));
  load_text(s, 6, e.data);
  load_text(s, 7, e.metadata);
  e.recorded_at_ms = s.int64(8);
}

es::EventChecksum load_checksum(const Statement& s, int column) {
  return static_cast<es::EventChecksum>(s.int64(column));
}

// A hash from stored bytes; one of the wrong length reads as kNoEventHash (and fails its check).
es::EventHash load_hash(const Statement& s, int column) {
  es::EventHash h;
  if (!es::hash_from_bytes(s.blob(column), h)) h = es::kNoEventHash;
  return h;
}

// Loads the row into `e` and checks that its fields give its stored checksum (column 9;
// not the chain: see es/event_hash.h).
Result<void> load_checked(const Statement& s, es::RecordedEvent& e) {
  load_event(s, e);
  return es::check_event_checksum(e, load_checksum(s, 9));
}

// A read that SQLite could not do (a malformed page, an I/O error), with what it was reading.
Error read_failed(const Error& e, const std::string& what) { return Error{e.code, what + ": " + e.message}; }

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
  Statement forward, backward, at_position, by_event_id, scan, last_position, version, find_event, find_idempotency, idempotency_exists, load_snapshot, load_checkpoint, begin, commit;

  static Result<std::unique_ptr<Reader>> open(const std::string& path, const std::string& vfs, bool read_only) {
    auto r = std::make_unique<Reader>();
    auto db = read_only ? Database::open_at_rest(path, vfs) : Database::open(path, false, vfs);
    if (!db) return db.error();
    r->db = std::move(*db);
    struct {
      Statement* stmt;
      std::string sql;
    } statements[] = {
        // A stream's events in stream_index: versions [?2, ?5), positions [?6, ?4].
        {&r->forward, std::string("SELECT ") + kIndexedEventColumns +
                          ", s.version FROM stream_index s CROSS JOIN events e ON e.position = s.position WHERE s.stream_id = ?1 "
                          "AND s.version >= ?2 AND s.version < ?5 AND s.position <= ?4 AND s.position >= ?6 "
                          "ORDER BY s.version LIMIT ?3"},
        // Versions <= ?2, positions <= ?4.
        {&r->backward, std::string("SELECT ") + kIndexedEventColumns +
                           ", s.version FROM stream_index s CROSS JOIN events e ON e.position = s.position WHERE s.stream_id = ?1 "
                           "AND s.version <= ?2 AND s.position <= ?4 ORDER BY s.version DESC LIMIT ?3"},
        {&r->at_position, std::string("SELECT ") + kEventColumns + " FROM events WHERE position = ?1"},
        {&r->by_event_id, std::string("SELECT ") + kEventColumns + " FROM events WHERE event_id = ?1 AND position <= ?2"},
        {&r->scan, std::string("SELECT ") + kEventColumns +
                       " FROM events WHERE position >= ?1 AND position <= ?3 ORDER BY position LIMIT ?2"},
        {&r->last_position, "SELECT coalesce(max(position), 0) FROM events"},
        {&r->version, "SELECT version FROM stream_index WHERE stream_id = ?1 AND position <= ?2 "
                      "ORDER BY version DESC LIMIT 1"},
        {&r->find_event, "SELECT stream_id, version, position FROM events WHERE event_id = ?1"},
        {&r->find_idempotency,
         "SELECT fingerprint, status, response, created_at FROM idempotency WHERE key = ?1 AND position <= ?2"},
        {&r->idempotency_exists, "SELECT 1 FROM idempotency WHERE key = ?1"},
        {&r->load_snapshot, "SELECT version, schema_version, state, checksum FROM snapshots WHERE stream_id = ?1"},
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
    MutexLock lk(store_->readers_mu_);
    store_->readers_.push_back(std::move(r_));
  }
  Reader* operator->() { return r_.get(); }
  Reader& operator*() { return *r_; }

 private:
  SqliteEventStore* store_;
  std::unique_ptr<Reader> r_;
};

SqliteEventStore::SqliteEventStore(SqliteEventStoreOptions options)
    : options_(std::move(options)),
      backlog_(options_.stream_index_backlog),
      tail_(options_.tail), pipeline_(*this, options_.pipeline, &now_unix_ms) {}

SqliteEventStore::~SqliteEventStore() {
  close();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Result<std::unique_ptr<SqliteEventStore>> SqliteEventStore::open(SqliteEventStoreOptions options) {
  std::unique_ptr<SqliteEventStore> store(new SqliteEventStore(std::move(options)));
  if (auto r = store->init(); !r) return r.error();
  return store;
}

Result<void> SqliteEventStore::init() {
  // One writing process per file: the pipeline assigns positions in memory.
  const auto lock = options_.path + ".lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  // Read-only on a disk that cannot make the file: one that exists is enough to lock.
  if (lock_fd_ < 0 && options_.read_only) lock_fd_ = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd_ < 0) return fail(Errc::unavailable, "cannot open " + lock + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return fail(Errc::unavailable, options_.path + " is in use by another orderflow process");
  auto open_db = [&] {
    return options_.read_only ? Database::open_at_rest(options_.path, options_.vfs)
                              : Database::open(options_.path, false, options_.vfs);
  };
  auto db = open_db();
  if (!db) return db.error();
  writer_db_ = std::move(*db);
  // A store that cannot be written now (a full or read-only disk) is not a broken one.
  auto unusable = [&](const Error& e) {
    return fail(e.code,
                options_.path +
                    (e.code == Errc::unavailable ? " cannot be opened now (" : " is not a usable event store (") +
                    e.message + ")");
  };
  if (options_.read_only) {
    if (auto r = check_format(); !r) return unusable(r.error());
    if (auto r = backlog_unindexed(); !r) return unusable(r.error());
  } else {
    if (auto r = create_or_migrate(); !r) return unusable(r.error());
    // Checkpoints run on their own thread so a commit never waits for one.
    // The writer keeps the indexes' hot pages cached rather than re-reading them per batch.
    // The writer does not sync: sync() does, on its own thread (see there).
    if (auto r = writer_db_.exec(
            "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=" + std::to_string(options_.wal_size_limit) +
            "; PRAGMA cache_size=-32768; PRAGMA synchronous=OFF;");
        !r)
      return unusable(r.error());
    if (auto r = index_unindexed(); !r) return unusable(r.error());
  }
  if (auto r = verify_head(); !r) return unusable(r.error());
  if (options_.read_only) read_only_last_ = head_position_;
  struct {
    Statement* stmt;
    const char* sql;
  } statements[] = {
      {&insert_event_,
       "INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data, "
       "metadata, recorded_at, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&insert_chain_, "INSERT INTO chain (position, hash) VALUES (?1, ?2)"},
      {&save_chain_head_, "INSERT INTO chain_head (id, position, hash) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE "
                          "SET position = excluded.position, hash = excluded.hash"},
      {&insert_idempotency_,
       "INSERT INTO idempotency (key, fingerprint, status, response, created_at, position) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&insert_index_, "INSERT INTO stream_index (stream_id, version, position) VALUES (?1, ?2, ?3)"},
      {&save_indexed_through_, "UPDATE stream_index_state SET indexed_through = ?1"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
  };
  for (auto& s : statements) {
    auto p = writer_db_.prepare(s.sql);
    if (!p) return p.error();
    *s.stmt = std::move(*p);
  }

  // Checkpoints commit with synchronous=FULL. Snapshots do not sync: one is only a
  // shortcut to a state the events give too, and each sync held the write lock that the
  // writer's next batch waits for (at 5k orders/s ~150 snapshots/s, each an fsync). The
  // writer's next sync of the WAL makes them durable with its batch.
  auto open_aux = [&](Database& db, const char* synchronous) -> Result<void> {
    auto opened = open_db();
    if (!opened) return opened.error();
    db = std::move(*opened);
    return db.exec(std::string("PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=") + synchronous +
                   "; PRAGMA journal_size_limit=" + std::to_string(options_.wal_size_limit));
  };
  {
    // Nothing else uses them yet: held for what the analysis checks (core/thread_annotations.h).
    MutexLock aux(aux_mu_);
    MutexLock snapshots(snapshot_mu_);
    if (auto r = open_aux(aux_db_, "FULL"); !r) return r;
    if (auto r = open_aux(snapshot_db_, "OFF"); !r) return r;
    auto snap = snapshot_db_.prepare(
        "INSERT INTO snapshots (stream_id, version, schema_version, state, checksum) VALUES (?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
        "schema_version = excluded.schema_version, state = excluded.state, checksum = excluded.checksum");
    if (!snap) return snap.error();
    save_snapshot_ = std::move(*snap);
    auto ckpt = aux_db_.prepare(
        "INSERT INTO checkpoints (name, position) VALUES (?1, ?2) "
        "ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)");
    if (!ckpt) return ckpt.error();
    save_checkpoint_ = std::move(*ckpt);
    auto expire = aux_db_.prepare(
        "DELETE FROM idempotency WHERE key IN "
        "(SELECT key FROM idempotency WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)");
    if (!expire) return expire.error();
    expire_idempotency_ = std::move(*expire);
    // An erased key's bytes are overwritten in the file, not left in a free page.
    if (auto r = aux_db_.exec("PRAGMA secure_delete=ON"); !r) return r;
    struct {
      Statement* stmt;
      const char* sql;
    } key_statements[] = {
        {&load_key_, "SELECT key, coalesce(erased_at, 0) FROM customer_keys WHERE customer_id = ?1"},
        {&create_key_,
         "INSERT INTO customer_keys (customer_id, key, created_at) VALUES (?1, ?2, ?3) "
         "ON CONFLICT (customer_id) DO UPDATE SET key = excluded.key, created_at = excluded.created_at "
         "WHERE customer_keys.key IS NULL"},
        {&erase_key_, "UPDATE customer_keys SET key = NULL, erased_at = ?2 WHERE customer_id = ?1 AND key IS NOT NULL"},
        {&record_erased_, "INSERT OR IGNORE INTO customer_keys (customer_id, key, created_at, erased_at) VALUES (?1, NULL, ?2, ?2)"},
    };
    for (auto& k : key_statements) {
      auto p = aux_db_.prepare(k.sql);
      if (!p) return p.error();
      *k.stmt = std::move(*p);
    }
  }

  auto probe = Reader::open(options_.path, options_.vfs, options_.read_only);
  if (!probe) return probe.error();
  probe_ = std::move(*probe);
  if (options_.read_only) return {};  // no writer, nothing to look up for one

  // Its whole budget (16 MiB, 13.4M ids at 10 bits) from the start, whatever the log holds
  // now: it cannot grow once ids are in it. Sized for twice the events at open (at least
  // 4M), a store opened empty and filled to 10M answered "maybe" for ~30% of fresh ids, each
  // then an index lookup under the pipeline's lock, so appends slowed as the log grew.
  // Past 13.4M ids it answers "maybe" more often, which costs lookups, never correctness.
  ids_ = std::make_unique<IdFilter>(IdFilter::kMaxIds);
  // Half the budget: a stream holds several events (an order's and its saga's 2-5).
  streams_ = std::make_unique<IdFilter>(IdFilter::kMaxIds / 2);
  if (auto r = pipeline_.start(); !r) return r;
  ids_loader_ = named_thread("of-load-ids", [this] { load_ids(); });
  checkpointer_ = named_thread("of-checkpoint", [this] { checkpoint_loop(); });
  return {};
}

// Creates the tables, or brings a file of an older format to this one.
Result<void> SqliteEventStore::create_or_migrate() {
  std::int64_t format = 0;
  bool has_events = false;
  {
    auto q = writer_db_.prepare("SELECT (SELECT user_version FROM pragma_user_version), "
                                "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')");
    if (!q) return q.error();
    auto row = q->step();
    if (!row) return row.error();
    format = q->int64(0);
    has_events = q->int64(1) != 0;
  }
  if (format > kFormat)
    return fail(Errc::corrupt, "its format " + std::to_string(format) + " is newer than this orderflow's (" +
                                   std::to_string(kFormat) + ")");
  const auto set_format = "PRAGMA user_version = " + std::to_string(kFormat) + ";";
  // Format 6 lacks only customer_keys, which kSchema makes.
  if (format >= 6 || !has_events) return writer_db_.exec(std::string(kSchema) + set_format);
  auto migrate = [&]() -> Result<void> {
    // Snapshots before format 6 had no checksum: they are dropped (each is only a shortcut
    // to what its stream's events give) and made again as commands run.
    if (auto r = writer_db_.exec("BEGIN IMMEDIATE; DROP TABLE IF EXISTS snapshots;"); !r) return r;
    if (format == 5) return writer_db_.exec(std::string(kSchema) + set_format + "COMMIT;");
    // Format 1 indexed (stream_id, version) on the events table itself. Its rows move to
    // the new table; index_unindexed() then builds stream_index from indexed_through = 0.
    // Format 2 had no hashes, format 3 no checksum: the column is added (empty) in place,
    // which leaves the event-id index as it is. Formats 3 and 4 kept both hashes in every
    // row: add_chain moves them to the chain tables, then they are dropped.
    const std::string add_checksum = "ALTER TABLE events ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;";
    auto r = format == 1 ? writer_db_.exec(std::string("ALTER TABLE events RENAME TO events_format1;") + kSchema +
                                           "INSERT INTO events (" + kFieldColumns + ", checksum) SELECT " +
                                           kFieldColumns + ", 0 FROM events_format1; DROP TABLE events_format1;")
             : format == 4 ? writer_db_.exec(kSchema)
                           : writer_db_.exec(add_checksum + kSchema);
    if (!r) return r;
    if (auto h = add_chain(format); !h) return h;
    if (format >= 3)
      if (auto d = writer_db_.exec("ALTER TABLE events DROP COLUMN prev_hash; ALTER TABLE events DROP COLUMN hash;"); !d)
        return d;
    return writer_db_.exec(set_format + "COMMIT;");
  };
  auto r = migrate();
  if (!r) (void)writer_db_.exec("ROLLBACK");
  return r;
}

// Gives a file of an older `format` what format 5 keeps, in position order, within
// create_or_migrate's transaction: every row's checksum (of its fields) and the chain's
// hashes at every kChainStride-th position and at the head. Runs once per file. Formats 1
// and 2 had no hashes: the chain is computed. Formats 3 and 4 kept both in every row:
// the chain's hashes are the ones stored, so a row rewritten before the migration still
// breaks the chain after it.
//
// A row that the old format's reads refused (format 3: its fields did not give its stored
// hash; format 4: nor its checksum) gets the complement of its checksum: it is refused by
// reads still (a checksum made from it as it is would have laundered its rot), and
// `verify` names it as before.
Result<void> SqliteEventStore::add_chain(std::int64_t format) {
  const bool has_chain = format >= 3, has_checksum = format == 4;
  // Each chunk is read before it is updated, so no update runs under an open read of the
  // same table.
  auto read = writer_db_.prepare(std::string("SELECT ") + kFieldColumns + (has_chain ? ", prev_hash, hash" : "") +
                                 (has_checksum ? ", checksum" : "") +
                                 " FROM events WHERE position > ?1 ORDER BY position LIMIT 8192");
  if (!read) return read.error();
  auto write_checksum = writer_db_.prepare("UPDATE events SET checksum = ?1 WHERE position = ?2");
  if (!write_checksum) return write_checksum.error();
  auto write_chain = writer_db_.prepare("INSERT INTO chain (position, hash) VALUES (?1, ?2)");
  if (!write_chain) return write_chain.error();
  struct Row {
    es::RecordedEvent event;
    es::EventHash prev_hash{}, hash{};
    es::EventChecksum checksum = 0;
  };
  es::Position log_end{0};
  if (options_.migration_progress) {
    auto q = writer_db_.prepare("SELECT COALESCE(MAX(position), 0) FROM events");
    if (!q) return q.error();
    if (auto row = q->step(); !row) return row.error();
    log_end = es::Position{q->int64(0)};
  }
  es::EventHash head = es::kNoEventHash;
  es::Position last{0};
  std::vector<Row> chunk;
  for (;;) {
    chunk.clear();
    {
      ResetOnExit reset(*read);
      read->bind(1, last.value());
      for (;;) {
        auto row = read->step();
        if (!row) return read_failed(row.error(), "reading the log after position " + to_string(last));
        if (!*row) break;
        auto& r = chunk.emplace_back();
        load_event(*read, r.event);
        if (has_chain) {
          r.prev_hash = load_hash(*read, 9);
          r.hash = load_hash(*read, 10);
        }
        if (has_checksum) r.checksum = load_checksum(*read, 11);
      }
    }
    if (chunk.empty()) break;
    for (auto& [e, prev_hash, hash, old_checksum] : chunk) {
      last = e.position;
      const auto fields = es::hashed_fields(e);
      auto checksum = es::event_checksum(fields);
      if (has_chain) {
        const bool refused = es::event_hash(prev_hash, fields) != hash ||
                             (has_checksum && es::format4_checksum(fields, prev_hash, hash) != old_checksum);
        if (refused) checksum = ~checksum;
        head = hash;
      } else {
        head = es::event_hash(head, fields);
      }
      if (auto r = write_checksum->bind(1, static_cast<std::int64_t>(checksum)).bind(2, e.position.value()).run(); !r)
        return r;
      if (e.position.value() % kChainStride == 0)
        if (auto r = write_chain->bind(1, e.position.value()).bind_blob(2, es::hash_bytes(head)).run(); !r) return r;
    }
    if (options_.migration_progress) options_.migration_progress(last, log_end);
  }
  if (last == 0) return {};
  auto write_head = writer_db_.prepare("INSERT INTO chain_head (id, position, hash) VALUES (1, ?1, ?2)");
  if (!write_head) return write_head.error();
  return write_head->bind(1, last.value()).bind_blob(2, es::hash_bytes(head)).run();
}

// Checks the newest options_.verify_at_open events, less up to kChainStride - 1 (each
// one's checksum, and the chain recomputed through them against every hash stored there
// and the head's) and sets the
// head of the chain that the writer goes on from. With `rewrite_head` (recover(), after
// the events past the last durable one were deleted with the head that named them), the
// head is computed from the last stored hash and written, not compared.
Result<void> SqliteEventStore::verify_head(bool rewrite_head) {
  auto head = writer_db_.prepare("SELECT (SELECT coalesce(max(position), 0) FROM events), "
                                 "(SELECT position FROM chain_head), (SELECT hash FROM chain_head)");
  if (!head) return head.error();
  auto row = head->step();
  if (!row) return read_failed(row.error(), "reading the head of the chain");
  const es::Position last{head->int64(0)};
  const bool has_head = !head->is_null(1);
  const es::Position head_position{has_head ? head->int64(1) : 0};
  const es::EventHash stored_head = has_head ? load_hash(*head, 2) : es::kNoEventHash;
  head->reset();
  if (!rewrite_head && head_position != last)
    return fail(Errc::corrupt, has_head ? "the log ends at position " + to_string(last) +
                                              " but its chain's head is at position " + to_string(head_position) +
                                              " (events were removed or added behind the store's back)"
                                        : "the log holds events but no head of their hash chain");

  // From the first stored hash among the newest events (the last one before them when they
  // hold none): a row older than these is checked when read, and never keeps a store from
  // opening.
  const auto newest = static_cast<std::int64_t>(std::max<std::size_t>(options_.verify_at_open, 1));
  const es::Position oldest{std::max<std::int64_t>(last.value() - newest, 0)};
  es::Position from{(oldest.value() + kChainStride - 1) / kChainStride * kChainStride};
  if (from >= last) from = es::Position{oldest.value() / kChainStride * kChainStride};
  auto q = writer_db_.prepare(std::string("SELECT ") + kIndexedEventColumns +
                              ", c.hash FROM events e LEFT JOIN chain c ON c.position = e.position "
                              "WHERE e.position > ?1 ORDER BY e.position");
  if (!q) return q.error();
  es::EventHash hash = es::kNoEventHash;
  if (from > 0) {
    auto at = writer_db_.prepare("SELECT hash FROM chain WHERE position = ?1");
    if (!at) return at.error();
    auto found = at->bind(1, from.value()).step();
    if (!found) return read_failed(found.error(), "reading the chain at position " + to_string(from));
    if (!*found) return fail(Errc::corrupt, "the chain's hash at position " + to_string(from) + " is missing");
    hash = load_hash(*at, 0);
  }
  ResetOnExit reset(*q);
  q->bind(1, from.value());
  es::RecordedEvent e;
  es::Position checked_from = from + 1, expected = from + 1;
  for (;;) {
    auto next = q->step();
    if (!next) return read_failed(next.error(), "checking the newest events");
    if (!*next) break;
    if (auto r = load_checked(*q, e); !r) return r;
    if (e.position != expected)
      return fail(Errc::corrupt, "position " + to_string(expected) + " is missing from the log");
    hash = es::event_hash(hash, es::hashed_fields(e));
    const bool stored_here = !q->is_null(10);
    const bool at_head = e.position == last && !rewrite_head;
    if ((stored_here && load_hash(*q, 10) != hash) || (at_head && stored_head != hash))
      return fail(Errc::corrupt, "the hash chain breaks between positions " + to_string(checked_from) + " and " +
                                     to_string(e.position) + ": the events there do not give the hash stored at " +
                                     es::describe_stored(e) + " (one of them was rewritten, or that hash was)");
    if (stored_here) checked_from = e.position + 1;
    ++expected;
  }
  head_hash_ = hash;
  head_position_ = last;
  if (!rewrite_head || last == 0) return {};
  auto write = writer_db_.prepare("INSERT INTO chain_head (id, position, hash) VALUES (1, ?1, ?2) "
                                  "ON CONFLICT (id) DO UPDATE SET position = excluded.position, hash = excluded.hash");
  if (!write) return write.error();
  return write->bind(1, last.value()).bind_blob(2, es::hash_bytes(hash)).run();
}

// Puts every event past indexed_through in stream_index (those the backlog held when
// the store last stopped without moving them; some may be there already), so the
// backlog starts empty.
Result<void> SqliteEventStore::index_unindexed() {
  auto q = writer_db_.prepare("SELECT indexed_through, (SELECT coalesce(max(position), 0) FROM events) "
                              "FROM stream_index_state");
  if (!q) return q.error();
  auto row = q->step();
  if (!row) return row.error();
  const auto from = q->int64(0), last = q->int64(1);
  q->reset();
  if (from >= last) return {};
  const auto bound = std::to_string(from);
  auto r = writer_db_.exec("BEGIN IMMEDIATE; INSERT OR IGNORE INTO stream_index (stream_id, version, position) "
                           "SELECT stream_id, version, position FROM events WHERE position > " + bound +
                           " ORDER BY stream_id, version; UPDATE stream_index_state SET indexed_through = " +
                           std::to_string(last) + "; COMMIT;");
  if (!r) (void)writer_db_.exec("ROLLBACK");
  return r;
}

Result<void> SqliteEventStore::check_format() {
  auto q = writer_db_.prepare(
      "SELECT (SELECT user_version FROM pragma_user_version), "
      "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')");
  if (!q) return q.error();
  auto row = q->step();
  if (!row) return row.error();
  const auto format = q->int64(0);
  if (!q->int64(1)) return fail(Errc::not_found, "it holds no event log");
  if (format != kFormat)
    return fail(Errc::invalid_state, "its format is " + std::to_string(format) + ", this orderflow's " +
                                         std::to_string(kFormat) + ": `orderflow migrate` brings it to this one");
  return {};
}

Result<void> SqliteEventStore::backlog_unindexed() {
  auto q = writer_db_.prepare(
      "SELECT stream_id, version, position FROM events "
      "WHERE position > (SELECT indexed_through FROM stream_index_state) ORDER BY position");
  if (!q) return q.error();
  for (;;) {
    auto row = q->step();
    if (!row) return read_failed(row.error(), "reading the events past the stream index");
    if (!*row) return {};
    backlog_.add(es::StreamId(q->text(0)), {{es::StreamVersion{q->int64(1)}, es::Position{q->int64(2)}}});
  }
}

// Adds the id of every event in the file to ids_, then of every stream to streams_ (open
// moved every event's entry into stream_index before this starts). Appends made meanwhile
// are added by write_batch(), so once this has read every row present when it started,
// each filter is complete.
void SqliteEventStore::load_ids() {
  auto failed = [&](const Error& e) {
    report_failure("event store", "id loader", options_.path + ": " + e.message,
                   "every appended event id, and the version of every stream not in memory, is looked up in the "
                   "index instead (slower appends, same answers)");
  };
  auto db = Database::open(options_.path, true, options_.vfs);
  if (!db) return failed(db.error());
  auto load = [&](const char* sql, IdFilter& into, std::atomic<bool>& loaded) -> Result<bool> {
    auto scan = db->prepare(sql);
    if (!scan) return scan.error();
    for (std::size_t n = 1;; ++n) {
      auto row = scan->step();
      if (!row) return row.error();
      if (!*row) break;
      into.add(scan->text(0));
      if (n % 65536 == 0 && ids_stop_.load(std::memory_order_relaxed)) return false;
    }
    loaded.store(true, std::memory_order_release);
    return true;
  };
  auto ids = load("SELECT event_id FROM events", *ids_, ids_loaded_);
  if (!ids) return failed(ids.error());
  if (!*ids) return;  // the store is closing
  // The primary key's order: each stream's entries one after the other.
  auto streams = load("SELECT DISTINCT stream_id FROM stream_index", *streams_, streams_loaded_);
  if (!streams) failed(streams.error());
}

void SqliteEventStore::close() {
  ids_stop_ = true;
  if (ids_loader_.joinable()) ids_loader_.join();
  pipeline_.stop();
  // The last connection to close copies the WAL into the database and deletes the WAL
  // with its own sync flags: at synchronous=OFF it syncs neither file, and a power cut
  // after the close finds the WAL gone and the database torn.
  if (writer_db_.handle()) (void)writer_db_.exec("PRAGMA synchronous=FULL");
  {
    MutexLock lk(snapshot_mu_);
    if (snapshot_db_.handle()) (void)snapshot_db_.exec("PRAGMA synchronous=FULL");
  }
  if (writer_db_.handle() && !options_.read_only) (void)index_unindexed();  // what fails here, the next open does
  {
    MutexLock lk(checkpointer_mu_);
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
  auto db = Database::open(options_.path, false, options_.vfs);
  if (!db)  // the writer's auto-checkpoint is off
    return report_failure("event store", "WAL checkpoint", db.error().message,
                          "no checkpointer runs: the WAL grows until the server restarts");
  MutexLock lk(checkpointer_mu_);
  while (!closing_) {
    checkpointer_cv_.wait_until(checkpointer_mu_, std::chrono::steady_clock::now() + std::chrono::milliseconds(250));
    lk.unlock();
    if (auto r = checkpoint_wal(*db, options_.wal_size_limit / 4, "events"); !r)
      report_failure("event store", "WAL checkpoint", options_.path + ": " + r.error().message,
                     "the WAL grows until a checkpoint succeeds; tried every 250 ms");
    else
      recovered("event store", "WAL checkpoint");
    lk.lock();
  }
}

Result<SqliteEventStore::ReaderLease> SqliteEventStore::lease_reader() {
  {
    MutexLock lk(readers_mu_);
    if (!readers_.empty()) {
      auto r = std::move(readers_.back());
      readers_.pop_back();
      return ReaderLease(*this, std::move(r));
    }
  }
  auto r = Reader::open(options_.path, options_.vfs, options_.read_only);
  if (!r) return r.error();
  return ReaderLease(*this, std::move(*r));
}

void SqliteEventStore::append_async(es::AppendRequest req, es::AppendCallback done) {
  if (options_.read_only) return done(fail(Errc::unavailable, options_.path + " is open read-only"));
  pipeline_.append(std::move(req), std::move(done));
}

Result<std::vector<es::RecordedEvent>> SqliteEventStore::read_stream(const es::StreamId& stream_id,
                                                                     es::StreamVersion from_version,
                                                                     std::size_t max,
                                                                     es::Direction direction) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  return read_stream(**reader, stream_id, from_version, max, direction, visible_through(), es::Position{0});
}

// The stream's events at positions [min_position, durable]: its newest ones from the
// backlog, copied before the table is read (see stream_index_backlog.h), the older ones
// through stream_index.
Result<std::vector<es::RecordedEvent>> SqliteEventStore::read_stream(Reader& reader, const es::StreamId& stream_id,
                                                                     es::StreamVersion from_version, std::size_t max,
                                                                     es::Direction direction, es::Position durable,
                                                                     es::Position min_position) {
  const auto newest = backlog_.entries(stream_id, durable);
  const es::StreamVersion backlog_from = newest.empty() ? es::StreamVersion{std::numeric_limits<std::int64_t>::max()} : newest.front().version;
  std::vector<es::RecordedEvent> events;
  // Each event is checked against its own checksum, and against the index entry that led
  // to it (a flipped byte in the index would serve another stream's event).
  auto from_table = [&](Statement& s) -> Result<void> {
    ResetOnExit reset(s);
    for (;;) {
      auto row = s.step();
      if (!row) return read_failed(row.error(), "reading stream " + stream_id.str());
      if (!*row) return {};
      auto& e = events.emplace_back();
      if (auto r = load_checked(s, e); !r) return r.error();
      if (e.stream_id != stream_id || e.version.value() != s.int64(10))
        return fail(Errc::corrupt, "the stream index is corrupt: its entry for stream " + stream_id.str() + " version " +
                                       std::to_string(s.int64(10)) + " names " + es::describe_stored(e));
    }
  };
  auto from_backlog = [&](const StreamIndexBacklog::Entry& e) -> Result<void> {
    auto& s = reader.at_position;
    ResetOnExit reset(s);
    auto row = s.bind(1, e.position.value()).step();
    if (!row) return read_failed(row.error(), "reading position " + to_string(e.position) + " of stream " + stream_id.str());
    if (!*row) return fail(Errc::internal, "event " + to_string(e.position) + " missing from the log");
    if (auto r = load_checked(s, events.emplace_back()); !r) return r.error();
    return {};
  };
  if (direction == es::Direction::forward) {
    auto& s = reader.forward;
    s.bind(1, stream_id.view()).bind(2, from_version.value()).bind(3, static_cast<std::int64_t>(max)).bind(4, durable.value());
    s.bind(5, backlog_from.value()).bind(6, min_position.value());
    if (auto r = from_table(s); !r) return r.error();
    for (const auto& e : newest)
      if (events.size() < max && e.version >= from_version && e.position >= min_position)
        if (auto r = from_backlog(e); !r) return r.error();
  } else {
    const es::StreamVersion until = from_version >= 0 ? from_version : es::StreamVersion{std::numeric_limits<std::int64_t>::max()};
    for (auto e = newest.rbegin(); e != newest.rend() && events.size() < max; ++e)
      if (e->version <= until)
        if (auto r = from_backlog(*e); !r) return r.error();
    if (events.size() < max) {
      auto& s = reader.backward;
      s.bind(1, stream_id.view()).bind(2, std::min(until, backlog_from - 1).value());
      s.bind(3, static_cast<std::int64_t>(max - events.size())).bind(4, durable.value());
      if (auto r = from_table(s); !r) return r.error();
    }
  }
  if (options_.upcasters && !options_.upcasters->empty())
    for (auto& e : events)
      if (auto u = options_.upcasters->upcast(e); !u) return u.error();
  return events;
}

Result<std::optional<es::RecordedEvent>> SqliteEventStore::read_event(const std::string& event_id) {
  // An event this read may show (through `durable`) had its id added to the filter before
  // last_committed() covered it (write_batch, before the batch's sync), so an id the
  // filter has never seen is not stored: answered without a read of the file (the saga
  // asks for the ids of steps not taken yet at every charge and commit).
  const es::Position durable = visible_through();
  if (ids_loaded_.load(std::memory_order_acquire) && !ids_->may_contain(event_id))
    return std::optional<es::RecordedEvent>();
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->by_event_id;
  ResetOnExit reset(s);
  auto row = s.bind(1, event_id).bind(2, durable.value()).step();
  if (!row) return read_failed(row.error(), "reading event " + event_id);
  if (!*row) return std::optional<es::RecordedEvent>();
  es::RecordedEvent e;
  if (auto r = load_checked(s, e); !r) return r.error();
  if (e.event_id != event_id)
    return fail(Errc::corrupt, "the event id index is corrupt: its entry for " + event_id + " names " + es::describe_stored(e));
  if (options_.upcasters)
    if (auto u = options_.upcasters->upcast(e); !u) return u.error();
  return std::optional(std::move(e));
}

Result<es::Position> SqliteEventStore::scan_all(es::Position from_position, std::size_t max,
                                                const es::EventFilter& filter,
                                                const std::function<void(const es::RecordedEvent&)>& fn) {
  if (auto next = tail_.scan(from_position, max, filter, fn)) return *next;
  auto reader = lease_reader();
  if (!reader) return reader.error();
  if (!filter.stream_id.empty()) return scan_stream(**reader, from_position, max, filter, fn);
  // One read transaction, so "nothing more matched" and the last position agree.
  if (auto r = (*reader)->begin.run(); !r) return r.error();
  struct EndRead {
    Reader* r;
    ~EndRead() { (void)r->commit.run(); }
  } end_read{&*(*reader)};
  const es::Position durable = visible_through();
  if (!filter.categories.empty()) {
    auto skipped = skip_to_categories(**reader, from_position, filter.categories, durable);
    if (!skipped) return skipped.error();
    from_position = *skipped;
  }

  Statement adhoc;
  Statement* s = &(*reader)->scan;
  if (!filter.empty()) {
    auto p = (*reader)->db.prepare(filter_sql(filter));
    if (!p) return p.error();
    adhoc = std::move(*p);
    s = &adhoc;
  }
  ResetOnExit reset(*s);
  s->bind(1, from_position.value()).bind(2, static_cast<std::int64_t>(max)).bind(3, durable.value());
  std::vector<std::string> bounds;  // keeps category bounds alive while bound
  int param = 4;
  if (!filter.stream_id.empty()) s->bind(param++, filter.stream_id.view());
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
  // Each event is checked against its own checksum (the chain: at open and by verify).
  for (;;) {
    auto row = s->step();
    if (!row)
      return read_failed(row.error(), "reading the log from position " + to_string(next) + " on");
    if (!*row) break;
    if (auto r = load_checked(*s, e); !r) return r.error();
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
    next = std::max(next, std::min(es::Position{last.int64(0)}, durable) + 1);
  }
  return next;
}

// A filter's categories may begin far into the log (10M events of other categories, then
// the shop's): a scan from before them would step through every row in between, once per
// subscriber. stream_index says where each category begins, and positions before that
// hold none of its events. Asked only when the scan starts far behind (a first start, a
// rebuild): finding where a category begins reads its entries in the index once; the
// answer is kept, and a category still empty is asked again (one index seek).
Result<es::Position> SqliteEventStore::skip_to_categories(Reader& reader, es::Position from_position,
                                                          const std::vector<std::string>& categories,
                                                          es::Position durable) {
  constexpr std::int64_t kFarBehind = 1 << 16;
  if (durable - from_position < kFarBehind) return from_position;
  auto through = reader.db.prepare("SELECT indexed_through FROM stream_index_state");
  if (!through) return through.error();
  auto row = through->step();
  if (!row) return row.error();
  // The table holds every entry up to indexed_through; a category with none there may
  // have events only after it.
  es::Position target{(*row ? through->int64(0) : 0) + 1};
  for (const auto& c : categories) {
    std::optional<es::Position> first;
    {
      MutexLock lk(first_of_category_mu_);
      if (auto it = first_of_category_.find(c); it != first_of_category_.end()) first = it->second;
    }
    if (!first) {
      auto q = reader.db.prepare("SELECT min(position) FROM stream_index WHERE stream_id >= ?1 AND stream_id < ?2");
      if (!q) return q.error();
      const std::string low = c + "-", high = c + ".";
      q->bind(1, low).bind(2, high);
      auto found = q->step();
      if (!found) return found.error();
      if (*found && !q->is_null(0)) {
        first = es::Position{q->int64(0)};
        // Kept only once durable: a batch that failed its sync is deleted, and its
        // positions are given again.
        if (*first <= durable) {
          MutexLock lk(first_of_category_mu_);
          first_of_category_.emplace(c, *first);
        }
      }
    }
    if (first) target = std::min(target, *first);
  }
  return std::max(from_position, std::min(target, durable + 1));
}

// Each row with its checksum and, at every kChainStride-th position and at the head, the
// chain's hash there.
Result<es::Position> SqliteEventStore::scan_stored(es::Position from_position, std::size_t max, const StoredFn& fn) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto s = (*reader)->db.prepare(std::string("SELECT ") + kIndexedEventColumns +
                                 ", coalesce(c.hash, h.hash) FROM events e LEFT JOIN chain c ON c.position = e.position "
                                 "LEFT JOIN chain_head h ON h.position = e.position "
                                 "WHERE e.position >= ?1 AND e.position <= ?3 ORDER BY e.position LIMIT ?2");
  if (!s) return s.error();
  s->bind(1, from_position.value()).bind(2, static_cast<std::int64_t>(max)).bind(3, visible_through().value());
  es::RecordedEvent e;
  es::Position next = from_position;
  for (;;) {
    auto row = s->step();
    if (!row) return read_failed(row.error(), "reading the log from position " + to_string(next) + " on");
    if (!*row) return next;
    load_event(*s, e);
    es::StoredHashes stored;
    stored.checksum = load_checksum(*s, 9);
    if (!s->is_null(10)) stored.hash = load_hash(*s, 10);
    fn(e, stored);
    next = e.position + 1;
  }
}

// scan_all of one stream: through its index rather than the whole log.
Result<es::Position> SqliteEventStore::scan_stream(Reader& reader, es::Position from_position, std::size_t max,
                                                   const es::EventFilter& filter,
                                                   const std::function<void(const es::RecordedEvent&)>& fn) {
  const es::Position durable = visible_through();
  bool in_category = filter.categories.empty();
  for (const auto& c : filter.categories) in_category = in_category || filter.stream_id.view().starts_with(c + "-");
  if (!in_category) return std::max(from_position, durable + 1);
  constexpr std::size_t kChunk = 512;
  es::StreamVersion version{0};
  es::Position next = from_position;
  std::size_t count = 0;
  for (;;) {
    auto chunk = read_stream(reader, filter.stream_id, version, kChunk, es::Direction::forward, durable, from_position);
    if (!chunk) return chunk.error();
    for (const auto& e : *chunk) {
      version = e.version + 1;
      next = e.position + 1;
      if (!filter.types.empty() && std::find(filter.types.begin(), filter.types.end(), e.type) == filter.types.end())
        continue;
      fn(e);
      if (++count == max) return next;
    }
    if (chunk->size() < kChunk) return std::max(next, durable + 1);  // everything up to durable examined
  }
}

Result<es::Position> SqliteEventStore::last_position() { return visible_through(); }

Result<es::StreamVersion> SqliteEventStore::stream_version(const es::StreamId& stream_id) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  return version_at(**reader, stream_id, visible_through());
}

// The stream's version as of position `up_to`: its newest entry in the backlog, or in the
// table (read after the backlog, see stream_index_backlog.h).
Result<es::StreamVersion> SqliteEventStore::version_at(Reader& reader, const es::StreamId& stream_id, es::Position up_to,
                                                       std::atomic<std::uint64_t>* table_reads) {
  // A stream's id is in streams_ before last_committed() covers any of its events.
  if (streams_loaded_.load(std::memory_order_acquire) && !streams_->may_contain(stream_id.view())) return es::kNoStream;
  if (auto newest = backlog_.last(stream_id, up_to)) return newest->version;
  if (table_reads) table_reads->fetch_add(1, std::memory_order_relaxed);
  auto& s = reader.version;
  ResetOnExit reset(s);
  s.bind(1, stream_id.view()).bind(2, up_to.value());
  auto row = s.step();
  if (!row) return row.error();
  return *row ? es::StreamVersion{s.int64(0)} : es::kNoStream;
}

Result<std::optional<es::IdempotencyRecord>> SqliteEventStore::find_idempotency(const std::string& key) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->find_idempotency;
  ResetOnExit reset(s);
  s.bind(1, key).bind(2, visible_through().value());
  auto row = s.step();
  if (!row) return row.error();
  if (!*row) return std::optional<es::IdempotencyRecord>();
  return std::optional<es::IdempotencyRecord>(es::IdempotencyRecord{
      key, std::string(s.text(0)), static_cast<int>(s.int64(1)), std::string(s.text(2)), s.int64(3)});
}

// This process is the only writer: its pipeline knows every append in flight.
Result<std::optional<es::IdempotencyRecord>> SqliteEventStore::find_idempotency_settled(const std::string& key) {
  pipeline_.await_key(key);
  return find_idempotency(key);
}

bool SqliteEventStore::wait_for_events(es::Position after, std::chrono::milliseconds timeout) {
  return pipeline_.wait_for_commit(after, timeout);
}

Result<void> SqliteEventStore::save_snapshot(const es::Snapshot& snapshot) {
  MutexLock lk(snapshot_mu_);
  return save_snapshot_.bind(1, snapshot.stream_id.view())
      .bind(2, snapshot.version.value())
      .bind(3, snapshot.schema_version)
      .bind(4, snapshot.state)
      .bind(5, static_cast<std::int64_t>(es::snapshot_checksum(snapshot.stream_id.str(), snapshot.version,
                                                               snapshot.schema_version, snapshot.state)))
      .run();
}

std::optional<es::Snapshot> SqliteEventStore::load_snapshot(const es::StreamId& stream_id) {
  auto reader = lease_reader();
  if (!reader) return std::nullopt;  // a snapshot is an optimisation: never fatal
  auto& s = (*reader)->load_snapshot;
  ResetOnExit reset(s);
  s.bind(1, stream_id.view());
  auto row = s.step();
  if (!row || !*row) return std::nullopt;
  es::Snapshot snapshot{stream_id, es::StreamVersion{s.int64(0)}, static_cast<std::int32_t>(s.int64(1)), std::string(s.text(2))};
  if (es::snapshot_checksum(stream_id.str(), snapshot.version, snapshot.schema_version, snapshot.state) !=
      load_checksum(s, 3)) {
    report_failure("event store", "corrupt snapshot",
                   options_.path + ": the snapshot of " + stream_id.str() + " at version " +
                       to_string(snapshot.version) + " does not give its stored checksum",
                   "the stream is folded from its events instead; the next snapshot replaces it");
    return std::nullopt;
  }
  return snapshot;
}

Result<void> SqliteEventStore::for_each_snapshot(const std::function<void(const es::Snapshot&)>& fn) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto s = (*reader)->db.prepare("SELECT stream_id, version, schema_version, state FROM snapshots ORDER BY stream_id");
  if (!s) return s.error();
  for (;;) {
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return {};
    fn(es::Snapshot{es::StreamId(s->text(0)), es::StreamVersion{s->int64(1)}, static_cast<std::int32_t>(s->int64(2)), std::string(s->text(3))});
  }
}

Result<es::Position> SqliteEventStore::load_checkpoint(const std::string& name) {
  auto reader = lease_reader();
  if (!reader) return reader.error();
  auto& s = (*reader)->load_checkpoint;
  ResetOnExit reset(s);
  s.bind(1, name);
  auto row = s.step();
  if (!row) return row.error();
  return *row ? es::Position{s.int64(0)} : es::Position{0};
}

Result<void> SqliteEventStore::save_checkpoint(const std::string& name, es::Position position) {
  MutexLock lk(aux_mu_);
  return save_checkpoint_.bind(1, name).bind(2, position.value()).run();
}

// On the aux connection, beside the writer's batches (a key being written now is not old);
// each call is one short transaction.
Result<std::size_t> SqliteEventStore::expire_idempotency(std::int64_t before_ms, std::size_t max) {
  MutexLock lk(aux_mu_);
  OF_RETURN_IF_ERROR(expire_idempotency_.bind(1, before_ms).bind(2, static_cast<std::int64_t>(max)).run());
  return static_cast<std::size_t>(sqlite3_changes(aux_db_.handle()));
}

// CustomerKeyStore: on the checkpoints' connection (synchronous=FULL, secure_delete): each
// write is its own durable transaction. Reads are rare (app/personal_data.h caches keys).

Result<std::optional<es::CustomerKey>> SqliteEventStore::load_key_locked(const std::string& customer_id) {
  ResetOnExit reset(load_key_);
  load_key_.bind(1, customer_id);
  auto row = load_key_.step();
  if (!row) return row.error();
  if (!*row) return std::optional<es::CustomerKey>();
  return std::optional(es::CustomerKey{std::string(load_key_.blob(0)), load_key_.int64(1)});
}

Result<std::optional<es::CustomerKey>> SqliteEventStore::load_key(const std::string& customer_id) {
  MutexLock lk(aux_mu_);
  return load_key_locked(customer_id);
}

Result<std::string> SqliteEventStore::create_key(const std::string& customer_id, const std::string& candidate,
                                                 std::int64_t now_ms) {
  MutexLock lk(aux_mu_);
  if (auto r = create_key_.bind(1, customer_id).bind_blob(2, candidate).bind(3, now_ms).run(); !r) return r.error();
  auto row = load_key_locked(customer_id);
  if (!row) return row.error();
  if (!*row || (*row)->key.empty()) return fail(Errc::internal, "the key of customer " + customer_id + " was not stored");
  return std::move((*row)->key);
}

// The one process holding the file writes keys only under aux_mu_: what is read here is
// what the update below changes.
Result<std::optional<es::KeyErasure>> SqliteEventStore::erase_key(const std::string& customer_id,
                                                                  std::int64_t now_ms, bool record_if_absent) {
  MutexLock lk(aux_mu_);
  auto row = load_key_locked(customer_id);
  if (!row) return row.error();
  if (!*row) {
    if (!record_if_absent) return std::optional<es::KeyErasure>();
    if (auto r = record_erased_.bind(1, customer_id).bind(2, now_ms).run(); !r) return r.error();
    return std::optional(es::KeyErasure{now_ms, true});
  }
  if ((*row)->key.empty()) return std::optional(es::KeyErasure{(*row)->erased_at_ms, false});
  if (auto r = erase_key_.bind(1, customer_id).bind(2, now_ms).run(); !r) return r.error();
  return std::optional(es::KeyErasure{now_ms, true});
}

// ExclusiveAppendBackend: called under the pipeline's lock, on the probe connection.

Result<es::StreamVersion> SqliteEventStore::committed_version(const es::StreamId& stream_id) {
  return version_at(*probe_, stream_id, es::Position{std::numeric_limits<std::int64_t>::max()}, &version_lookups_);
}

Result<es::Position> SqliteEventStore::committed_last_position() {
  auto& s = probe_->last_position;
  ResetOnExit reset(s);
  auto row = s.step();
  if (!row) return row.error();
  return es::Position{s.int64(0)};
}

Result<std::optional<es::StoredEventRef>> SqliteEventStore::find_event(const std::string& event_id) {
  if (ids_loaded_.load(std::memory_order_acquire) && !ids_->may_contain(event_id))
    return std::optional<es::StoredEventRef>();
  id_lookups_.fetch_add(1, std::memory_order_relaxed);
  auto& s = probe_->find_event;
  ResetOnExit reset(s);
  s.bind(1, event_id);
  auto row = s.step();
  if (!row) return row.error();
  if (!*row) return std::optional<es::StoredEventRef>();
  return std::optional<es::StoredEventRef>(es::StoredEventRef{es::StreamId(s.text(0)), es::StreamVersion{s.int64(1)}, es::Position{s.int64(2)}});
}

Result<bool> SqliteEventStore::idempotency_key_exists(const std::string& key) {
  auto& s = probe_->idempotency_exists;
  ResetOnExit reset(s);
  s.bind(1, key);
  auto row = s.step();
  if (!row) return row.error();
  return *row;
}

// The writer commits with synchronous=OFF; durability is this sync of the WAL (an
// fdatasync), which covers every transaction committed before it (WAL recovery keeps
// frames up to the last complete commit), while the writer goes on with the next batch.
// It goes through the connections' VFS, named as SQLite names the WAL, so a test's VFS
// sees it.
Result<void> SqliteEventStore::sync(std::size_t /*batches: all of them*/) {
  if (!wal_) {
    auto wal = VfsFile::open(options_.vfs, sqlite3_filename_wal(sqlite3_db_filename(writer_db_.handle(), "main")),
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL);
    if (!wal) return fail(Errc::unavailable, "cannot open the WAL of " + options_.path + ": " + wal.error().message);
    wal_ = std::move(*wal);
  }
  if (auto r = wal_.sync(); !r)
    return fail(Errc::unavailable, "sync of the WAL of " + options_.path + " failed: " + r.error().message);
  return {};
}

Result<void> SqliteEventStore::write_batch(std::vector<es::StagedAppend>& batch) {
  if (auto r = begin_.run(); !r) return r;
  std::size_t events = 0;
  es::Position first = std::numeric_limits<es::Position>::max();
  for (const auto& a : batch) {
    events += a.request.events.size();
    first = std::min(first, a.first_position);
  }
  // Twice what comes in, so a backlog past its target shrinks back to it.
  auto moved = backlog_.pick(2 * events, first);
  // The chain goes on from the last event written; it moves only once the batch commits.
  es::EventHash head = head_hash_;
  es::Position head_position = head_position_;
  auto write_all = [&]() -> Result<void> {
    for (const auto& a : batch) {
      for (std::size_t i = 0; i < a.request.events.size(); ++i) {
        const auto& e = a.request.events[i];
        auto offset = static_cast<std::int64_t>(i);
        const auto fields = es::hashed_fields(e, a.request.stream_id.view(), a.first_position + offset,
                                              a.first_version + offset, a.recorded_at_ms);
        OF_CHECK(fields.position == head_position + 1, "a batch's positions follow the log's head");
        head = es::event_hash(head, fields);
        head_position = fields.position;
        auto r = insert_event_.bind(1, fields.position.value())
                     .bind(2, fields.event_id)
                     .bind(3, fields.stream_id)
                     .bind(4, fields.version.value())
                     .bind(5, fields.type)
                     .bind(6, fields.schema_version)
                     .bind(7, fields.data)
                     .bind(8, fields.metadata)
                     .bind(9, fields.recorded_at_ms)
                     .bind(10, static_cast<std::int64_t>(es::event_checksum(fields)))
                     .run();
        if (!r) return r;
        if (fields.position.value() % kChainStride == 0)
          if (auto c = insert_chain_.bind(1, fields.position.value()).bind_blob(2, es::hash_bytes(head)).run(); !c) return c;
      }
      if (const auto& k = a.request.idempotency) {
        auto r = insert_idempotency_.bind(1, k->key)
                     .bind(2, k->request_fingerprint)
                     .bind(3, k->status)
                     .bind(4, k->response)
                     .bind(5, k->created_at_ms ? k->created_at_ms : a.recorded_at_ms)
                     .bind(6, a.result().position.value())
                     .run();
        if (!r) return r;
      }
    }
    for (const auto& [stream, entries] : moved.streams)
      for (const auto& e : entries)
        if (auto r = insert_index_.bind(1, stream.view()).bind(2, e.version.value()).bind(3, e.position.value()).run(); !r) return r;
    if (!moved.streams.empty())
      if (auto r = save_indexed_through_.bind(1, (moved.indexed_below - 1).value()).run(); !r) return r;
    if (head_position != head_position_)
      if (auto r = save_chain_head_.bind(1, head_position.value()).bind_blob(2, es::hash_bytes(head)).run(); !r) return r;
    return commit_.run();
  };
  auto r = write_all();
  if (!r) {
    (void)rollback_.run();
    return r;
  }
  head_hash_ = head;
  head_position_ = head_position;
  backlog_.drop(moved);
  std::vector<StreamIndexBacklog::Entry> entries;
  for (const auto& a : batch) {
    entries.clear();
    for (std::size_t i = 0; i < a.request.events.size(); ++i) {
      auto offset = static_cast<std::int64_t>(i);
      entries.push_back({a.first_version + offset, a.first_position + offset});
    }
    backlog_.add(a.request.stream_id, entries);
  }
  // The filters learn the ids here, on the writer thread, rather than once the batch is
  // durable: then under the pipeline's lock, two cache misses an append (tables of 16 and
  // 8 MiB) held it while appends waited to be accepted. An id of a batch that never
  // becomes durable only costs a lookup.
  for (const auto& a : batch) {
    for (const auto& e : a.request.events) ids_->add(e.event_id);
    streams_->add(a.request.stream_id.view());
  }
  return r;
}

// After a failed batch (see ExclusiveAppendBackend::recover). What is past `durable` was
// never acknowledged: batches that committed before their own or an earlier batch's sync
// failed. They are deleted, with their idempotency records and the index entries a later
// batch moved to the table, and forgotten in the backlog. (The tail only ever holds durable
// events; an id the filters learnt from a deleted batch, or the loader read meanwhile,
// costs a lookup, no more.)
// Then a TRUNCATE checkpoint on the synchronous=FULL connection copies the log into the
// database file, syncs it and empties the WAL, so that new batches start a WAL of their
// own. After a failed fdatasync the kernel may have dropped the WAL's dirty pages, and a
// later fsync of the file reports success anyway (PostgreSQL's "fsyncgate"); WAL frames
// are checksummed as a chain, so a crash would lose every frame behind a lost one,
// acknowledged or not. Both steps write, which makes them the probe: on a full disk they
// fail, and the pipeline tries again later.
Result<void> SqliteEventStore::recover(es::Position durable) {
  if (!sqlite3_get_autocommit(writer_db_.handle())) (void)rollback_.run();
  backlog_.forget_after(durable);
  auto last = writer_db_.prepare("SELECT coalesce(max(position), 0) FROM events");
  if (!last) return last.error();
  auto row = last->step();
  if (!row) return row.error();
  const auto past = es::Position{last->int64(0)} > durable;
  last->reset();
  // Each DELETE only when there is something to delete: idempotency has no index on position.
  const auto d = to_string(durable);
  auto r = writer_db_.exec(
      "BEGIN IMMEDIATE;" +
      (past ? "DELETE FROM stream_index WHERE (stream_id, version) IN "
              "(SELECT stream_id, version FROM events WHERE position > " + d + ");"
              "DELETE FROM idempotency WHERE position > " + d + ";"
              "DELETE FROM events WHERE position > " + d + ";"
              "DELETE FROM chain WHERE position > " + d + ";"
              "DELETE FROM chain_head WHERE position > " + d + ";"
            : std::string()) +
      "UPDATE stream_index_state SET indexed_through = min(indexed_through, " + d + "); COMMIT;");
  if (!r) {
    (void)writer_db_.exec("ROLLBACK");
    return r;
  }
  // The chain goes on from the last event kept, not from a deleted batch.
  if (auto head = verify_head(/*rewrite_head=*/true); !head) return head;
  MutexLock lk(aux_mu_);
  if (int rc = sqlite3_wal_checkpoint_v2(aux_db_.handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
      rc != SQLITE_OK)
    return to_error(aux_db_.handle(), rc, "checkpoint into " + options_.path);
  return {};
}

// The batch is durable: its events join the in-memory tail, upcast as a read would see them.
void SqliteEventStore::on_durable(std::vector<es::StagedAppend>& batch) {
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
