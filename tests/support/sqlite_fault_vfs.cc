#include "support/sqlite_fault_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <vector>

namespace orderflow::testing {

namespace {

// What a file held before a write or truncate since its last sync.
struct Undo {
  sqlite3_int64 offset;
  std::string bytes;
};

struct FileState {
  sqlite3_int64 synced_size = 0;
  bool created = false;  // since the last power cut, and never synced
  std::vector<Undo> undo;
};

}  // namespace

struct SqliteFaultVfs::State {
  std::string name;
  sqlite3_vfs vfs{};
  sqlite3_vfs* real = nullptr;

  mutable std::mutex mu;
  // By the name SQLite opens them with. A deleted file leaves the map; handles still
  // open on it keep its state, which no longer matters.
  std::map<std::string, std::shared_ptr<FileState>> files;
  bool cut = false;
  std::uint64_t cut_countdown = 0;
  bool full = false;
  std::uint64_t failing_syncs = 0;
  std::uint64_t syncs = 0;
  std::atomic<int> open_files{0};

  // REQUIRES mu. Whether the power is off for this write, truncate or sync, counting it
  // toward a planned cut.
  bool powered_off() {
    if (!cut && cut_countdown && --cut_countdown == 0) cut = true;
    return cut;
  }
};

namespace {

using State = SqliteFaultVfs::State;

// The file SQLite sees; the wrapped VFS's file follows it in the same allocation.
struct FaultFile {
  sqlite3_file base;
  State* vfs;
  std::shared_ptr<FileState> state;  // null: a temporary file, not tracked
};
constexpr std::size_t kRealOffset = (sizeof(FaultFile) + 15) & ~std::size_t{15};

FaultFile* fault(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kRealOffset); }
State* vfs_state(sqlite3_vfs* v) { return static_cast<State*>(v->pAppData); }

// REQUIRES the VFS's mutex. Saves what [from, to) holds now, as far as it was synced.
int remember(sqlite3_file* f, FileState& s, sqlite3_int64 from, sqlite3_int64 to) {
  sqlite3_int64 size = 0;
  if (int rc = real(f)->pMethods->xFileSize(real(f), &size); rc != SQLITE_OK) return rc;
  to = std::min({to, size, s.synced_size});
  if (from >= to) return SQLITE_OK;
  std::string old(static_cast<std::size_t>(to - from), '\0');
  if (int rc = real(f)->pMethods->xRead(real(f), old.data(), static_cast<int>(old.size()), from); rc != SQLITE_OK)
    return rc;
  s.undo.push_back({from, std::move(old)});
  return SQLITE_OK;
}

int x_close(sqlite3_file* f) {
  int rc = real(f)->pMethods ? real(f)->pMethods->xClose(real(f)) : SQLITE_OK;
  --fault(f)->vfs->open_files;
  fault(f)->~FaultFile();
  return rc;
}

int x_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 offset) {
  return real(f)->pMethods->xRead(real(f), buf, n, offset);
}

int x_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 offset) {
  auto& v = *fault(f)->vfs;
  std::lock_guard lk(v.mu);
  if (v.full) return SQLITE_FULL;
  if (auto& s = fault(f)->state) {
    if (v.powered_off()) return SQLITE_IOERR_WRITE;
    if (int rc = remember(f, *s, offset, offset + n); rc != SQLITE_OK) return rc;
  }
  return real(f)->pMethods->xWrite(real(f), buf, n, offset);
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  auto& v = *fault(f)->vfs;
  std::lock_guard lk(v.mu);
  if (auto& s = fault(f)->state) {
    if (v.powered_off()) return SQLITE_IOERR_TRUNCATE;
    if (int rc = remember(f, *s, size, s->synced_size); rc != SQLITE_OK) return rc;
  }
  return real(f)->pMethods->xTruncate(real(f), size);
}

// Held under the mutex, so no write slips in between the sync and the bookkeeping.
int x_sync(sqlite3_file* f, int flags) {
  auto& v = *fault(f)->vfs;
  std::lock_guard lk(v.mu);
  auto& s = fault(f)->state;
  if (s && v.powered_off()) return SQLITE_IOERR_FSYNC;
  if (s && v.failing_syncs > 0) {
    --v.failing_syncs;
    return SQLITE_IOERR_FSYNC;
  }
  int rc = real(f)->pMethods->xSync(real(f), flags);
  if (rc != SQLITE_OK || !s) return rc;
  sqlite3_int64 size = 0;
  if (rc = real(f)->pMethods->xFileSize(real(f), &size); rc != SQLITE_OK) return rc;
  s->synced_size = size;
  s->created = false;
  s->undo.clear();
  ++v.syncs;
  return SQLITE_OK;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); }
int x_lock(sqlite3_file* f, int level) { return real(f)->pMethods->xLock(real(f), level); }
int x_unlock(sqlite3_file* f, int level) { return real(f)->pMethods->xUnlock(real(f), level); }
int x_check_reserved_lock(sqlite3_file* f, int* out) { return real(f)->pMethods->xCheckReservedLock(real(f), out); }
int x_file_control(sqlite3_file* f, int op, void* arg) { return real(f)->pMethods->xFileControl(real(f), op, arg); }
int x_sector_size(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int x_device_characteristics(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int x_shm_unmap(sqlite3_file* f, int delete_flag) { return real(f)->pMethods->xShmUnmap(real(f), delete_flag); }

// Version 2: shared memory for WAL, no memory-mapped reads (xFetch).
const sqlite3_io_methods kMethods = {
    2,           x_close,         x_read,  x_write,  x_truncate, x_sync, x_file_size, x_lock, x_unlock,
    x_check_reserved_lock, x_file_control, x_sector_size, x_device_characteristics, x_shm_map,
    x_shm_lock, x_shm_barrier, x_shm_unmap, nullptr, nullptr,
};

int x_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto& v = *vfs_state(vfs);
  auto* f = new (file) FaultFile{};
  f->vfs = &v;
  ++v.open_files;
  std::lock_guard lk(v.mu);
  bool existed = true;
  struct stat st {};
  if (name) existed = ::stat(name, &st) == 0;
  int rc = v.real->xOpen(v.real, name, real(file), flags, out_flags);
  if (rc != SQLITE_OK) {
    // SQLite calls xClose only if pMethods is set.
    if (real(file)->pMethods) real(file)->pMethods->xClose(real(file));
    --v.open_files;
    f->~FaultFile();
    file->pMethods = nullptr;
    return rc;
  }
  f->base.pMethods = &kMethods;
  if (name) {
    auto& s = v.files[name];
    if (!s) {
      s = std::make_shared<FileState>();
      s->synced_size = existed ? st.st_size : 0;
      s->created = !existed;
    }
    f->state = s;
  }
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  auto& v = *vfs_state(vfs);
  std::lock_guard lk(v.mu);
  if (v.cut) return SQLITE_IOERR_DELETE;
  v.files.erase(name);
  return v.real->xDelete(v.real, name, sync_dir);
}

int x_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xAccess(r, name, flags, out);
}
int x_full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xFullPathname(r, name, n, out);
}
void* x_dl_open(sqlite3_vfs* vfs, const char* name) {
  auto* r = vfs_state(vfs)->real;
  return r->xDlOpen(r, name);
}
void x_dl_error(sqlite3_vfs* vfs, int n, char* out) {
  auto* r = vfs_state(vfs)->real;
  r->xDlError(r, n, out);
}
void (*x_dl_sym(sqlite3_vfs* vfs, void* lib, const char* sym))(void) {
  auto* r = vfs_state(vfs)->real;
  return r->xDlSym(r, lib, sym);
}
void x_dl_close(sqlite3_vfs* vfs, void* lib) {
  auto* r = vfs_state(vfs)->real;
  r->xDlClose(r, lib);
}
int x_randomness(sqlite3_vfs* vfs, int n, char* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xRandomness(r, n, out);
}
int x_sleep(sqlite3_vfs* vfs, int us) {
  auto* r = vfs_state(vfs)->real;
  return r->xSleep(r, us);
}
int x_current_time(sqlite3_vfs* vfs, double* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xCurrentTime(r, out);
}
int x_get_last_error(sqlite3_vfs* vfs, int n, char* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xGetLastError(r, n, out);
}
int x_current_time_int64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  auto* r = vfs_state(vfs)->real;
  return r->xCurrentTimeInt64(r, out);
}

}  // namespace

SqliteFaultVfs::SqliteFaultVfs(std::string name) : state_(std::make_unique<State>()) {
  auto& s = *state_;
  s.name = std::move(name);
  s.real = sqlite3_vfs_find(nullptr);
  if (!s.real) throw std::runtime_error("no default SQLite VFS");
  s.vfs.iVersion = 2;
  s.vfs.szOsFile = static_cast<int>(kRealOffset) + s.real->szOsFile;
  s.vfs.mxPathname = s.real->mxPathname;
  s.vfs.zName = s.name.c_str();
  s.vfs.pAppData = &s;
  s.vfs.xOpen = x_open;
  s.vfs.xDelete = x_delete;
  s.vfs.xAccess = x_access;
  s.vfs.xFullPathname = x_full_pathname;
  s.vfs.xDlOpen = x_dl_open;
  s.vfs.xDlError = x_dl_error;
  s.vfs.xDlSym = x_dl_sym;
  s.vfs.xDlClose = x_dl_close;
  s.vfs.xRandomness = x_randomness;
  s.vfs.xSleep = x_sleep;
  s.vfs.xCurrentTime = x_current_time;
  s.vfs.xGetLastError = x_get_last_error;
  s.vfs.xCurrentTimeInt64 = x_current_time_int64;
  if (sqlite3_vfs_register(&s.vfs, 0) != SQLITE_OK) throw std::runtime_error("cannot register VFS " + s.name);
}

SqliteFaultVfs::~SqliteFaultVfs() { sqlite3_vfs_unregister(&state_->vfs); }

const std::string& SqliteFaultVfs::name() const { return state_->name; }

void SqliteFaultVfs::cut_power() {
  std::lock_guard lk(state_->mu);
  state_->cut = true;
}

void SqliteFaultVfs::cut_power_after(std::uint64_t n) {
  std::lock_guard lk(state_->mu);
  state_->cut_countdown = n;
}

bool SqliteFaultVfs::power_is_cut() const {
  std::lock_guard lk(state_->mu);
  return state_->cut;
}

SqliteFaultVfs::Restored SqliteFaultVfs::restore_power() {
  auto& v = *state_;
  std::lock_guard lk(v.mu);
  if (v.open_files != 0)
    throw std::logic_error("restore_power with " + std::to_string(v.open_files) + " files open on " + v.name);
  Restored restored;
  auto fail = [](const std::string& what, const std::string& path) {
    throw std::runtime_error(what + " " + path + " failed");
  };
  for (auto& [path, s] : v.files) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;  // deleted by someone else
    if (s->created) {
      if (::unlink(path.c_str()) != 0) fail("unlink", path);
      restored.bytes_undone += static_cast<std::uint64_t>(st.st_size);
      ++restored.files;
      continue;
    }
    if (s->undo.empty() && st.st_size == s->synced_size) continue;
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("open", path);
    for (auto u = s->undo.rbegin(); u != s->undo.rend(); ++u) {
      if (::pwrite(fd, u->bytes.data(), u->bytes.size(), u->offset) != static_cast<ssize_t>(u->bytes.size()))
        fail("pwrite", path);
      restored.bytes_undone += u->bytes.size();
    }
    if (::ftruncate(fd, s->synced_size) != 0) fail("ftruncate", path);
    ::close(fd);
    if (st.st_size > s->synced_size) restored.bytes_undone += static_cast<std::uint64_t>(st.st_size - s->synced_size);
    ++restored.files;
  }
  v.files.clear();
  v.cut = false;
  v.cut_countdown = 0;
  return restored;
}

void SqliteFaultVfs::set_disk_full(bool full) {
  std::lock_guard lk(state_->mu);
  state_->full = full;
}

void SqliteFaultVfs::fail_syncs(std::uint64_t n) {
  std::lock_guard lk(state_->mu);
  state_->failing_syncs = n;
}

std::uint64_t SqliteFaultVfs::syncs() const {
  std::lock_guard lk(state_->mu);
  return state_->syncs;
}

}  // namespace orderflow::testing
