// A thin RAII layer over the SQLite C API. SQLite error codes become Errc here and
// nowhere else: I/O and full-disk errors are `unavailable`, corruption is `corrupt`.
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <tuple>
#include <memory>
#include <string>
#include <string_view>

#include "core/metric.h"
#include "core/result.h"

namespace orderflow::sqlite {

Error to_error(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt, &sqlite3_finalize) {}

  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_.get(), i, v);
    return *this;
  }
  Statement& bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& bind_blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  // SQLITE_ROW: true; SQLITE_DONE: false; otherwise an error.
  Result<bool> step();
  // Runs a statement that returns no rows, then resets it.
  Result<void> run();
  void reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }

  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  // A text or blob column through its sqlite3_value: one column look-up for the bytes and
  // their length where sqlite3_column_text + _bytes make two (a scan reads five per row).
  // The value is unprotected, which only matters with the connection's mutex: connections
  // are opened NOMUTEX and a statement is used by one thread at a time.
  std::string_view blob(int col) const {
    sqlite3_value* v = sqlite3_column_value(stmt_.get(), col);
    auto* p = static_cast<const char*>(sqlite3_value_blob(v));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_value_bytes(v))) : std::string_view();
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  std::string_view text(int col) const {
    sqlite3_value* v = sqlite3_column_value(stmt_.get(), col);
    auto* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
    return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_value_bytes(v))) : std::string_view();
  }

 private:
  sqlite3* db_ = nullptr;
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt_{nullptr, &sqlite3_finalize};
};

// Resets a statement when it goes out of scope, so a read never holds a snapshot open.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

class Database {
 public:
  // Opens (creating if needed) in WAL mode with synchronous=FULL and a busy timeout,
  // through the SQLite VFS named `vfs` (empty: the default).
  static Result<Database> open(const std::string& path, bool read_only = false, const std::string& vfs = {});
  // Opens read-only a database that nothing writes while it is open (its writers are held
  // off by the caller), writing nothing beside it, so that it opens on a full or read-only
  // disk: a WAL-mode database whose WAL is empty or absent is opened immutable (SQLite would
  // make a WAL and its -shm index for it), one whose WAL holds frames through the -shm that
  // exists beside them.
  static Result<Database> open_at_rest(const std::string& path, const std::string& vfs = {});

  sqlite3* handle() const { return db_.get(); }
  Result<void> exec(const std::string& sql);
  Result<Statement> prepare(std::string_view sql);

 private:
  static Result<Database> connect(const std::string& name, const std::string& path, int flags, const std::string& vfs);

  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_{nullptr, &sqlite3_close_v2};
};

// A file opened through a SQLite VFS, for what the store does to SQLite's files itself,
// so that the VFS sees it as it sees SQLite's own calls (a test's fault-injecting VFS
// must see the store's sync of the WAL).
class VfsFile {
 public:
  // `vfs`: by name, empty for the default; `flags`: SQLITE_OPEN_*, as xOpen takes them.
  static Result<VfsFile> open(const std::string& vfs, const std::string& path, int flags);
  VfsFile();
  ~VfsFile();
  VfsFile(VfsFile&&) noexcept;
  VfsFile& operator=(VfsFile&&) noexcept;

  explicit operator bool() const { return file_ != nullptr; }
  // xSync(SQLITE_SYNC_NORMAL): fdatasync with the unix VFS, which also syncs the
  // directory on the first sync of a WAL or journal opened with SQLITE_OPEN_CREATE.
  Result<void> sync();

 private:
  struct Open;
  std::unique_ptr<Open> file_;
};

// One round of a background checkpointer, on a connection of its own: a PASSIVE checkpoint
// (never blocks the writer), then, when that copied everything and the WAL is longer than
// `restart_above` bytes, a RESTART checkpoint, which waits for the readers still on older
// frames so that the next write transaction starts the WAL over from its beginning. Under
// steady load some reader always holds some frame, and without the RESTART the WAL would
// grow without bound. Starting over reuses the file's blocks (journal_size_limit on the
// writer trims what is past it). A failure (not a checkpoint that stopped short for a
// busy reader or writer, which is normal) only leaves the WAL longer until a round
// succeeds; it is returned so that the caller can tell it (core/failures.h).
// `database` names it in /metrics (a string that outlives the process: "events", "readmodels").
Result<void> checkpoint_wal(Database& db, std::int64_t restart_above, std::string_view database);

// What checkpoint_wal counts for /metrics, process-wide, by database.
inline constexpr std::array<double, 9> kCheckpointSecondsBounds{0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
struct CheckpointMetrics {
  // Checkpoints run, by (database, mode, outcome): mode "passive" or "restart"; outcome
  // "done", "busy" (stopped short for a reader or the writer: normal, tried again) or "failed".
  Family<std::tuple<std::string_view, std::string_view, std::string_view>, Counter> runs;
  // WAL pages copied into the database by passive checkpoints.
  Family<std::string_view, Counter> pages_copied;
  // A round's time (passive and, if it ran, restart).
  Family<std::string_view, Histogram<kCheckpointSecondsBounds>> seconds;
};
CheckpointMetrics& checkpoint_metrics();

// Appends, in the Prometheus text format, the size of each database's WAL file (`files`:
// name and path, PATH-wal measured) and what checkpoint_metrics() counted.
void render_metrics(std::string& out, std::span<const std::pair<std::string, std::string>> files);

}  // namespace orderflow::sqlite
