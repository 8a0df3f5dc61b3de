// The embedded event store: one SQLite file in WAL mode, synchronous=FULL, written by
// the kernel's AppendPipeline (group commit) and read through a pool of connections.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/mutex.h"
#include "es/append_pipeline.h"
#include "es/customer_keys.h"
#include "es/event_tail.h"
#include "es/event_store.h"
#include "es/upcaster.h"
#include "store/sqlite/id_filter.h"
#include "store/sqlite/sqlite.h"
#include "store/sqlite/stream_index_backlog.h"

namespace orderflow::sqlite {

struct SqliteEventStoreOptions {
  std::string path;  // the database file; created if missing
  es::AppendPipelineOptions pipeline;
  // Upcasters applied on every read; may be null. Must outlive the store.
  const es::UpcasterRegistry* upcasters = nullptr;
  // Bytes the WAL keeps when it starts over after a complete checkpoint (it is reused
  // from its beginning; what is past this is cut off).
  std::int64_t wal_size_limit = 64 << 20;
  // The newest events kept in memory for live subscribers.
  es::EventTailLimits tail;
  // Stream-index entries kept in memory before the writer moves them to the file, a few
  // streams per batch (see stream_index_backlog.h): those of the last seconds of appends,
  // within bounds. Tests fix a number (0: every batch moves some).
  StreamIndexBacklog::Limits stream_index_backlog;
  // While a file of an older format is brought to this one, told after each chunk the last
  // position migrated and the log's last position (orderflow migrate shows it). May be empty.
  std::function<void(es::Position migrated, es::Position last)> migration_progress;
  // The newest events whose checksums and chain open() checks (es/event_hash.h), so a
  // corrupt head of the log is refused before anything is served or appended to it. Older
  // events' checksums are checked when they are read, and the whole chain by
  // scan_stored's caller (verify).
  std::size_t verify_at_open = 4096;
  // The SQLite VFS every file is opened through, by name; empty: the default. For tests
  // (support/sqlite_fault_vfs.h drops what was not synced).
  std::string vfs;
  // Reads the file as it is and writes nothing, in it or beside it (no migration, no
  // writer, stream-index entries missing from the file kept in memory), so that it opens
  // on a full or read-only disk and leaves a backup as it found it. Appends and every other
  // write answer unavailable. The lock is taken as for writing: no server writes meanwhile.
  bool read_only = false;
};

class SqliteEventStore final : public es::EventStore,
                               public es::SnapshotStore,
                               public es::CheckpointStore,
                               public es::StoredLog,
                               public es::CustomerKeyStore,
                               public es::IdempotencyRecords,
                               private es::ExclusiveAppendBackend {
 public:
  // Opens or creates the store and starts its writer. Fails with a clear error if the
  // file is not a readable event store.
  static Result<std::unique_ptr<SqliteEventStore>> open(SqliteEventStoreOptions options);
  ~SqliteEventStore() override;

  // EventStore
  void append_async(es::AppendRequest req, es::AppendCallback done) override;
  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& stream_id,
                                                     es::StreamVersion from_version,
                                                     std::size_t max,
                                                     es::Direction direction) override;
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override;
  Result<es::Position> scan_all(es::Position from_position, std::size_t max,
                                const es::EventFilter& filter,
                                const std::function<void(const es::RecordedEvent&)>& fn) override;
  Result<es::Position> last_position() override;
  Result<es::StreamVersion> stream_version(const es::StreamId& stream_id) override;
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override;
  Result<std::optional<es::IdempotencyRecord>> find_idempotency_settled(const std::string& key) override;
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override;
  std::optional<Error> write_failure() override { return pipeline_.write_failure(); }
  std::size_t appends_queued() override { return pipeline_.queued(); }

  // SnapshotStore
  Result<void> save_snapshot(const es::Snapshot& snapshot) override;
  std::optional<es::Snapshot> load_snapshot(const es::StreamId& stream_id) override;
  Result<void> for_each_snapshot(const std::function<void(const es::Snapshot&)>& fn) override;

  // CheckpointStore
  Result<es::Position> load_checkpoint(const std::string& name) override;
  Result<void> save_checkpoint(const std::string& name, es::Position position) override;

  // IdempotencyRecords
  Result<std::size_t> expire_idempotency(std::int64_t before_ms, std::size_t max) override;

  // StoredLog
  Result<es::Position> scan_stored(es::Position from_position, std::size_t max, const StoredFn& fn) override;

  // CustomerKeyStore
  Result<std::optional<es::CustomerKey>> load_key(const std::string& customer_id) override;
  Result<std::string> create_key(const std::string& customer_id, const std::string& candidate,
                                 std::int64_t now_ms) override;
  Result<std::optional<es::KeyErasure>> erase_key(const std::string& customer_id, std::int64_t now_ms,
                                                  bool record_if_absent) override;

  // Finishes accepted appends and stops the writer; later appends answer unavailable.
  void close();

  // Reads of the file that checking appends took, each under the pipeline's lock: event
  // ids the id filter could not clear (a lookup in the event-id index), and stream
  // versions that neither the pipeline's cache nor the backlog held (a lookup in
  // stream_index). Counted since open; `bench append` shows them per million appends.
  struct AppendLookups {
    std::uint64_t event_ids = 0;
    std::uint64_t versions = 0;
  };
  AppendLookups append_lookups() const {
    return {id_lookups_.load(std::memory_order_relaxed), version_lookups_.load(std::memory_order_relaxed)};
  }

 private:
  struct Reader;
  class ReaderLease;

  explicit SqliteEventStore(SqliteEventStoreOptions options);
  Result<void> init();
  Result<ReaderLease> lease_reader();
  void checkpoint_loop();
  Result<void> create_or_migrate();
  Result<void> index_unindexed();
  // Read-only: what index_unindexed() would put in stream_index goes to backlog_ instead.
  Result<void> backlog_unindexed();
  // Read-only: the file is of this orderflow's format.
  Result<void> check_format();
  // The last position readers may see: the pipeline's last committed one, or read-only
  // the log's last.
  es::Position visible_through() const { return options_.read_only ? read_only_last_ : pipeline_.last_committed(); }
  Result<void> add_chain(std::int64_t format);
  Result<void> verify_head(bool rewrite_head = false);
  Result<std::vector<es::RecordedEvent>> read_stream(Reader& reader, const es::StreamId& stream_id,
                                                     es::StreamVersion from_version, std::size_t max,
                                                     es::Direction direction, es::Position durable,
                                                     es::Position min_position);
  Result<es::Position> scan_stream(Reader& reader, es::Position from_position, std::size_t max,
                                   const es::EventFilter& filter,
                                   const std::function<void(const es::RecordedEvent&)>& fn);
  // `table_reads`, if given, counts the answers read from stream_index.
  Result<es::StreamVersion> version_at(Reader& reader, const es::StreamId& stream_id, es::Position up_to,
                                       std::atomic<std::uint64_t>* table_reads = nullptr);
  Result<es::Position> skip_to_categories(Reader& reader, es::Position from_position,
                                          const std::vector<std::string>& categories, es::Position durable);

  // ExclusiveAppendBackend
  Result<es::StreamVersion> committed_version(const es::StreamId& stream_id) override;
  Result<es::Position> committed_last_position() override;
  Result<std::optional<es::StoredEventRef>> find_event(const std::string& event_id) override;
  Result<bool> idempotency_key_exists(const std::string& key) override;
  Result<void> write_batch(std::vector<es::StagedAppend>& batch) override;
  Result<void> sync(std::size_t batches) override;
  void on_durable(std::vector<es::StagedAppend>& batch) override;
  Result<void> recover(es::Position durable) override;

  SqliteEventStoreOptions options_;
  int lock_fd_ = -1;  // flock held while open
  VfsFile wal_;       // for sync(); opened on first use

  // The writer thread's connection.
  Database writer_db_;
  Statement insert_event_, insert_chain_, save_chain_head_, insert_idempotency_, insert_index_, save_indexed_through_,
      begin_, commit_, rollback_;
  // The last event written and its hash, which the next one's covers: set at open, then
  // moved by the writer.
  es::Position head_position_{0};
  es::Position read_only_last_{0};  // read_only: the log's last position, set by init()
  es::EventHash head_hash_{};
  // The stream index's newest entries; written and moved to the file by the writer.
  StreamIndexBacklog backlog_;

  // Used by the pipeline under its lock.
  std::unique_ptr<Reader> probe_;

  // The ids of every stored event, so find_event() skips the index lookup for an id that
  // is surely new. Filled from the file by a thread of its own at open (until it is done,
  // every id is looked up) and by write_batch() with every event it writes, so an id is in
  // it before it leaves the pipeline's in-flight set (answered once the batch is durable).
  std::unique_ptr<IdFilter> ids_;
  std::atomic<bool> ids_loaded_{false};
  // The same for the ids of every stream with a stored event, so version_at() answers a
  // stream never written (a saga's record opens saga-<order id>, one per order) without a
  // read; filled by the same thread after the event ids, from stream_index.
  std::unique_ptr<IdFilter> streams_;
  std::atomic<bool> streams_loaded_{false};
  std::atomic<std::uint64_t> id_lookups_{0}, version_lookups_{0};  // see append_lookups()
  std::atomic<bool> ids_stop_{false};
  std::thread ids_loader_;
  void load_ids();

  Mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> readers_ GUARDED_BY(readers_mu_);

  // The first position of each category found in stream_index (it never changes: the
  // log only grows at its end), for skip_to_categories.
  Mutex first_of_category_mu_;
  std::unordered_map<std::string, es::Position> first_of_category_ GUARDED_BY(first_of_category_mu_);

  Mutex aux_mu_;  // checkpoints, customer keys, idempotency expiry
  Database aux_db_ GUARDED_BY(aux_mu_);
  Statement save_checkpoint_ GUARDED_BY(aux_mu_), expire_idempotency_ GUARDED_BY(aux_mu_), load_key_ GUARDED_BY(aux_mu_), create_key_ GUARDED_BY(aux_mu_),
      erase_key_ GUARDED_BY(aux_mu_), record_erased_ GUARDED_BY(aux_mu_);
  Result<std::optional<es::CustomerKey>> load_key_locked(const std::string& customer_id) REQUIRES(aux_mu_);
  Mutex snapshot_mu_;
  Database snapshot_db_ GUARDED_BY(snapshot_mu_);
  Statement save_snapshot_ GUARDED_BY(snapshot_mu_);

  Mutex checkpointer_mu_;
  CondVar checkpointer_cv_;
  bool closing_ GUARDED_BY(checkpointer_mu_) = false;
  std::thread checkpointer_;

  es::EventTail tail_;
  es::AppendPipeline pipeline_;
};

}  // namespace orderflow::sqlite
