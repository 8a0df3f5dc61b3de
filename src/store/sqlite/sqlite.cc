#include "store/sqlite/sqlite.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <cstring>
#include <cstddef>
#include <thread>

namespace orderflow::sqlite {

namespace {

// What the OS said, for I/O errors: SQLite's own words ("disk I/O error") do not tell a
// full disk from a failing one.
std::string os_error(sqlite3* db, int rc) {
  const int primary = rc & 0xff;
  if (!db || (primary != SQLITE_IOERR && primary != SQLITE_FULL && primary != SQLITE_CANTOPEN)) return {};
  const int e = sqlite3_system_errno(db);
  return e ? std::string(" (") + std::strerror(e) + ")" : std::string();
}

}  // namespace

Error to_error(sqlite3* db, int rc, std::string_view what) {
  std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + os_error(db, rc);
  switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return Error{Errc::unavailable, std::move(message)};
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error{Errc::corrupt, std::move(message)};
    default:
      return Error{Errc::internal, std::move(message)};
  }
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return to_error(db_, rc, "sqlite step");
}

Result<void> Statement::run() {
  auto r = step();
  reset();
  if (!r) return r.error();
  return {};
}

// SQLite's own busy timeout sleeps 1, 2, 5, 10, … 100 ms between tries: a writer that
// meets a checkpoint holding the lock for 0.1 ms sleeps 1 ms or more, and every append in
// its batch waits with it. This tries every 0.1 ms for 2 ms, then every 1 ms for 40 ms,
// then every 10 ms, and gives up after about 10 s, as before.
static int wait_when_busy(void*, int tries) {
  if (tries >= 1060) return 0;
  const auto pause = tries < 20 ? std::chrono::microseconds(100)
                   : tries < 60 ? std::chrono::microseconds(1000)
                                : std::chrono::microseconds(10000);
  std::this_thread::sleep_for(pause);
  return 1;
}

// `name` (a path or a file: URI) opened with `flags`, the busy handler and extended result codes.
Result<Database> Database::connect(const std::string& name, const std::string& path, int flags,
                                   const std::string& vfs) {
  Database d;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &raw, SQLITE_OPEN_NOMUTEX | flags, vfs.empty() ? nullptr : vfs.c_str());
  d.db_.reset(raw);
  if (rc != SQLITE_OK) return to_error(raw, rc, "cannot open " + path);
  sqlite3_busy_handler(raw, &wait_when_busy, nullptr);
  sqlite3_extended_result_codes(raw, 1);
  return d;
}

Result<Database> Database::open(const std::string& path, bool read_only, const std::string& vfs) {
  OF_ASSIGN_OR_RETURN(
      auto d, connect(path, path, read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs));
  auto setup = d.exec(read_only ? "PRAGMA synchronous=FULL"
                                : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL");
  if (!setup) {
    auto e = setup.error();
    e.message = "cannot open " + path + ": " + e.message;
    return e;
  }
  return d;
}

Result<Database> Database::open_at_rest(const std::string& path, const std::string& vfs) {
  std::error_code ec;
  const auto wal_bytes = std::filesystem::file_size(path + "-wal", ec);
  if (!ec && wal_bytes > 0) return open(path, true, vfs);
  // A URI: its path's '%', '?' and '#' escaped.
  std::string uri = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') uri += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else uri += c;
  }
  return connect(uri + "?immutable=1", path, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, vfs);
}

Result<void> Database::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    auto e = to_error(nullptr, rc, "sqlite exec");
    e.message = "sqlite: " + msg + os_error(db_.get(), rc);
    return e;
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return to_error(db_.get(), rc, "sqlite prepare");
  return Statement(db_.get(), stmt);
}

// The name outlives the file, as xOpen requires; the file is closed on destruction.
struct VfsFile::Open {
  std::string name;
  std::unique_ptr<std::max_align_t[]> storage;
  sqlite3_file* file = nullptr;

  ~Open() {
    if (file && file->pMethods) file->pMethods->xClose(file);
  }
};

VfsFile::VfsFile() = default;
VfsFile::~VfsFile() = default;
VfsFile::VfsFile(VfsFile&&) noexcept = default;
VfsFile& VfsFile::operator=(VfsFile&&) noexcept = default;

Result<VfsFile> VfsFile::open(const std::string& vfs, const std::string& path, int flags) {
  sqlite3_vfs* v = sqlite3_vfs_find(vfs.empty() ? nullptr : vfs.c_str());
  if (!v) return fail(Errc::internal, "no SQLite VFS named " + vfs);
  auto o = std::make_unique<Open>();
  // Doubly NUL-terminated, as SQLite passes file names to xOpen.
  o->name = path + '\0';
  const auto words = (static_cast<std::size_t>(v->szOsFile) + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
  o->storage = std::make_unique<std::max_align_t[]>(words);
  o->file = reinterpret_cast<sqlite3_file*>(o->storage.get());
  int rc = v->xOpen(v, o->name.c_str(), o->file, flags, nullptr);
  if (rc != SQLITE_OK) return to_error(nullptr, rc, "cannot open " + path);
  VfsFile f;
  f.file_ = std::move(o);
  return f;
}

Result<void> VfsFile::sync() {
  int rc = file_->file->pMethods->xSync(file_->file, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) return to_error(nullptr, rc, "cannot sync " + file_->name.substr(0, file_->name.size() - 1));
  return {};
}

CheckpointMetrics& checkpoint_metrics() {
  static CheckpointMetrics m;
  return m;
}

void render_metrics(std::string& out, std::span<const std::pair<std::string, std::string>> files) {
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "# HELP orderflow_sqlite_wal_bytes Size of a SQLite database's write-ahead log file.\n"
                 "# TYPE orderflow_sqlite_wal_bytes gauge\n");
  for (const auto& [name, path] : files) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path + "-wal", ec);
    fmt::format_to(it, "orderflow_sqlite_wal_bytes{{database=\"{}\"}} {}\n", name, ec ? 0 : size);
  }

  auto& checkpoints = checkpoint_metrics();
  if (auto runs = sorted_entries(checkpoints.runs); !runs.empty()) {
    fmt::format_to(
        it,
        "# HELP orderflow_sqlite_checkpoints_total WAL checkpoints run, by database, mode (passive, restart) and "
        "outcome (done; busy: stopped short for a reader or the writer, tried again; failed).\n"
        "# TYPE orderflow_sqlite_checkpoints_total counter\n");
    for (const auto& [key, n] : runs) {
      const auto& [database, mode, outcome] = key;
      fmt::format_to(it, "orderflow_sqlite_checkpoints_total{{database=\"{}\",mode=\"{}\",outcome=\"{}\"}} {}\n",
                     database, mode, outcome, n->value());
    }
    fmt::format_to(it,
                   "# HELP orderflow_sqlite_checkpoint_pages_total WAL pages copied into the database by checkpoints.\n"
                   "# TYPE orderflow_sqlite_checkpoint_pages_total counter\n");
    for (const auto& [database, n] : sorted_entries(checkpoints.pages_copied))
      fmt::format_to(it, "orderflow_sqlite_checkpoint_pages_total{{database=\"{}\"}} {}\n", database, n->value());
    fmt::format_to(it,
                   "# HELP orderflow_sqlite_checkpoint_duration_seconds Time of one checkpoint round.\n"
                   "# TYPE orderflow_sqlite_checkpoint_duration_seconds histogram\n");
    for (const auto& [database, h] : sorted_entries(checkpoints.seconds))
      append_histogram(out, "orderflow_sqlite_checkpoint_duration_seconds", fmt::format("database=\"{}\"", database),
                       h->snapshot());
  }
}

Result<void> checkpoint_wal(Database& db, std::int64_t restart_above, std::string_view database) {
  auto& metrics = checkpoint_metrics();
  const auto started = std::chrono::steady_clock::now();
  struct Timed {
    Histogram<kCheckpointSecondsBounds>& h;
    std::chrono::steady_clock::time_point started;
    ~Timed() { h.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()); }
  } timed{metrics.seconds.at(database), started};
  // Counts the checkpoint's outcome; a busy one is normal (tried again next round).
  auto run = [&](std::string_view mode, int rc) -> Result<void> {
    const bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    metrics.runs.at({database, mode, rc == SQLITE_OK ? "done" : busy ? "busy" : "failed"}).add();
    if (rc == SQLITE_OK || busy) return {};
    return to_error(db.handle(), rc, "WAL checkpoint");
  };
  int wal_pages = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(db.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
  if (rc == SQLITE_OK && copied > 0) metrics.pages_copied.at(database).add(static_cast<std::uint64_t>(copied));
  if (auto r = run("passive", rc); !r || rc != SQLITE_OK) return r;
  std::int64_t page_size = 4096;
  if (auto q = db.prepare("PRAGMA page_size"); q)
    if (auto row = q->step(); row && *row) page_size = q->int64(0);
  if (copied == wal_pages && wal_pages * page_size > restart_above)
    return run("restart", sqlite3_wal_checkpoint_v2(db.handle(), nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr));
  return {};
}

}  // namespace orderflow::sqlite
