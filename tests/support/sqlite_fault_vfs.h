// A SQLite VFS that simulates power cuts and full disks (leveldb's fault_injection_test
// idea), for tests that prove what a store promises about durability.
//
// It wraps the default VFS. For every file opened by name it remembers what was written
// since that file's last xSync (an undo log). A power cut stops the disk: from then on
// every write, truncate, sync and delete fails with SQLITE_IOERR and changes nothing, so
// the store under test can be closed as if its process had died. restore_power() then
// puts every file back to what its last sync made durable:
// - writes and truncates since the file's last sync are undone;
// - a file created since the last power cut and never synced is removed (its directory
//   entry was never made durable; the unix VFS syncs the directory of a new WAL or
//   journal on its first sync, so a first sync counts as syncing the entry);
// - deletes are durable at once (the worst case for a store that deletes a file whose
//   content it has moved elsewhere without syncing).
// Not modelled: torn or partial writes (every unsynced write is lost, none survives
// alone), and the -shm file, which SQLite rebuilds from the WAL after a crash anyway.
//
// Thread-safe; every tracked operation takes one mutex, so it is for tests only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace orderflow::testing {

class SqliteFaultVfs {
 public:
  // Registers the VFS under `name` (not as the default). One instance per name.
  explicit SqliteFaultVfs(std::string name = "fault");
  // Unregisters it. REQUIRES: no connection or file open on it.
  ~SqliteFaultVfs();
  SqliteFaultVfs(const SqliteFaultVfs&) = delete;
  SqliteFaultVfs& operator=(const SqliteFaultVfs&) = delete;

  const std::string& name() const;

  // Cuts the power now: every later write, truncate, sync and delete fails and changes
  // nothing. Reads still see what was written (the dying process's page cache).
  void cut_power();
  // Cuts the power as the `n`th write, truncate or sync from now is attempted (that one
  // fails too). 0: never.
  void cut_power_after(std::uint64_t n);
  bool power_is_cut() const;

  struct Restored {
    std::uint64_t files = 0;           // files changed back or removed
    std::uint64_t bytes_undone = 0;    // unsynced bytes overwritten, cut off or removed
  };
  // Puts every file back to its synced content (see the top of this file) and powers on;
  // the content now on disk counts as synced. REQUIRES: every file opened through this
  // VFS closed (close every connection first).
  Restored restore_power();

  // While set, every write fails with SQLITE_FULL and writes nothing, as on a full disk.
  void set_disk_full(bool full);

  // The next `n` syncs fail (SQLITE_IOERR_FSYNC) and make nothing durable; writes go on.
  void fail_syncs(std::uint64_t n);

  // Syncs that reached the disk since the VFS was made.
  std::uint64_t syncs() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace orderflow::testing
