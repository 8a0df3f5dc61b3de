// The event store on PostgreSQL, for many orderflow processes on one database.
//
// Appends go through the kernel's AppendPipeline as a shared backend: each process
// gathers concurrent appends into one batch, and one transaction per batch (libpq
// pipeline mode) locks the log's head row, checks every append against what is stored
// (from memory while this process wrote the log last; see write_until_commit), writes
// the accepted ones with multi-row statements and commits with synchronous_commit=on;
// an append is acknowledged once its COMMIT has answered, so it is durable.
//
// Ordering without skips: the head row's lock makes batches from every process commit
// one after another, in position order, and PostgreSQL makes a commit visible before
// it releases its locks. So once any reader can see position P, every position below
// P is visible too, and reading by position alone never passes an event that becomes
// visible later.
//
// Live readers share one read of the log: once anything waits for new events
// (wait_for_events: the projections, the saga, the event feed), one thread follows the
// log's head (follow_log) into an es::EventTail, and scans at or past its covered range
// are answered from memory (scan_live). Each new event is read from the database, checked
// and decoded once per process, not once per subscriber; a reader further behind, and every
// one-shot read (scan_all: it must see every acknowledged write), reads the database.
#pragma once

#include <array>
#include <chrono>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/mutex.h"
#include "es/append_pipeline.h"
#include "es/customer_keys.h"
#include "es/event_store.h"
#include "es/event_tail.h"
#include "es/leader_lease.h"
#include "es/upcaster.h"
#include "core/metric.h"
#include "store/postgres/pg.h"

namespace orderflow::postgres {

struct PostgresEventStoreOptions {
  std::string conninfo;  // a libpq URL (postgres://user@host:port/db) or key=value string
  std::string schema;    // where the tables live; empty: the connection's current schema
  es::AppendPipelineOptions pipeline;
  // Upcasters applied on every read; may be null. Must outlive the store.
  const es::UpcasterRegistry* upcasters = nullptr;
  // Read connections kept open between uses; more are opened under load.
  std::size_t idle_connections = 8;
  // The newest events whose hashes and chain links open() checks (es/event_hash.h), and
  // that the last one's hash is the head row's. Older events are checked when read.
  std::size_t verify_at_open = 4096;
  // The newest events kept in memory for live readers (see above).
  es::EventTailLimits tail;
};

// Writes events from nine arrays (ArrayLiteral), one element per event: position,
// event_id, stream_id, version, type, schema_version, data, metadata, recorded_at.
// Exposed for the benchmark's raw baseline, which inserts the same rows without the store.
extern const char* const kInsertEvents;

// The read connection pool, for /metrics, process-wide (a process has one store).
struct PoolMetrics {
  std::atomic<std::int64_t> idle{0};    // open, waiting in the pool
  std::atomic<std::int64_t> leased{0};  // running a read or a statement now
  Counter opened;                       // connections opened (the pool was empty, or one was lost)
};
PoolMetrics& pool_metrics();
// Appends, in the Prometheus text format, what pool_metrics() counts (nothing before a
// store opened a connection).
void render_pool_metrics(std::string& out);

class PostgresEventStore final : public es::EventStore,
                                 public es::SnapshotStore,
                                 public es::CheckpointStore,
                                 public es::StoredLog,
                                 public es::CustomerKeyStore,
                                 public es::IdempotencyRecords,
                                 private es::AppendBackend {
 public:
  // Connects, migrates the schema and starts the writer.
  static Result<std::unique_ptr<PostgresEventStore>> open(PostgresEventStoreOptions options);
  ~PostgresEventStore() override;

  // EventStore
  void append_async(es::AppendRequest req, es::AppendCallback done) override;
  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& stream_id,
                                                     es::StreamVersion from_version,
                                                     std::size_t max,
                                                     es::Direction direction) override;
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override;
  Result<std::vector<es::RecordedEvent>> read_events(std::span<const std::string> event_ids) override;
  Result<es::Position> scan_all(es::Position from_position, std::size_t max,
                                const es::EventFilter& filter,
                                const std::function<void(const es::RecordedEvent&)>& fn) override;
  // From the follower's tail when it covers from_position (see above), else the database.
  Result<es::Position> scan_live(es::Position from_position, std::size_t max, const es::EventFilter& filter,
                                 const std::function<void(const es::RecordedEvent&)>& fn) override;
  Result<es::Position> last_position() override;
  Result<es::StreamVersion> stream_version(const es::StreamId& stream_id) override;
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override;
  Result<std::optional<es::IdempotencyRecord>> find_idempotency_settled(const std::string& key) override;
  // Wakes once the log's follower has read what this process appended, and within a poll
  // interval for other processes' appends.
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override;
  std::size_t appends_queued() override { return pipeline_.queued(); }
  // The last failed write of a batch (the database's disk full, read-only, unreachable), for
  // kWriteFailureShown after it unless a batch has committed since: a process that takes no
  // writes meanwhile (taken out of rotation for it) is ready again then, and the next write
  // tells anew.
  std::optional<Error> write_failure() override EXCLUDES(write_failure_mu_);
  static constexpr std::chrono::seconds kWriteFailureShown{2};

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

  // A lease named `name` among every process on this store (this database and schema),
  // on a connection of its own.
  std::unique_ptr<es::LeaderLease> leader_lease(std::string name) const;

 private:
  class Lease;

  explicit PostgresEventStore(PostgresEventStoreOptions options);
  Result<Lease> lease();
  Result<PgResult> query(const Query& q);
  Result<std::vector<es::RecordedEvent>> events_of(const PgResult& rows);
  Result<void> verify_head();
  // The follower's thread: reads the log from its head on into tail_, as this process
  // commits appends and every poll interval, until the store closes.
  void follow_log();

  // AppendBackend
  Result<void> write_batch(std::vector<es::StagedAppend>& batch) override;
  Result<void> sync(std::size_t batches) override;
  void await_writable() override;
  // The batch's event ids and idempotency keys, and once looked up, where the ids are
  // stored and which keys exist.
  struct Found {
    bool any_ids = false, any_keys = false;
    std::string ids, keys;  // ArrayLiterals
    bool looked_up = false;
    std::unordered_map<std::string, es::StoredEventRef> stored;
    std::unordered_set<std::string> used_keys;
    void load_stored(const PgResult& r);
    void load_keys(const PgResult& r);
  };
  Result<void> write_until_commit(Connection& conn, std::vector<es::StagedAppend>& batch);
  // The batch's streams that memory knows (or whose caller has just made them up), with
  // their versions; answers the others, each once, as an ArrayLiteral ("" if none).
  std::string known_versions(const std::vector<es::StagedAppend>& batch,
                             std::unordered_map<es::StreamId, es::StreamVersion>& versions) const;
  static Found to_look_up(const std::vector<es::StagedAppend>& batch);
  // Where the ids are stored and which keys exist, and the versions of `unknown_streams`
  // (an ArrayLiteral, "" for none) into `versions`: one round trip, without the lock.
  Result<void> look_up(Connection& conn, Found& found, const std::string& unknown_streams,
                       std::unordered_map<es::StreamId, es::StreamVersion>& versions);
  Result<bool> write_ahead(Connection& conn, std::vector<es::StagedAppend>& batch, const Found& found,
                           std::unordered_map<es::StreamId, es::StreamVersion>& versions);
  Result<void> check_batch(Connection& conn, std::vector<es::StagedAppend>& batch, Found& found);
  std::vector<Query> decide(std::vector<es::StagedAppend>& batch, es::Position& head, es::EventHash& head_hash,
                            std::unordered_map<es::StreamId, es::StreamVersion>& versions,
                            const std::unordered_map<std::string, es::StoredEventRef>& stored,
                            std::unordered_set<std::string>& used_keys, const std::string* guard,
                            bool earlier_batches_stand);

  PostgresEventStoreOptions options_;

  // A connection for append transactions (see write_batch).
  struct Lane {
    std::optional<Connection> conn;  // reconnected by the writer when lost
    bool committing = false;         // its batch is sent; sync() has yet to read the outcome
  };
  std::array<Lane, 2> lanes_;
  std::size_t next_lane_ = 0;  // the writer thread's
  // A batch failed to write (logged once until one commits again) / one committed.
  void write_failed(const Error& e) EXCLUDES(write_failure_mu_);
  void write_committed() EXCLUDES(write_failure_mu_);
  Mutex write_failure_mu_;
  std::optional<Error> write_failure_ GUARDED_BY(write_failure_mu_);
  std::chrono::steady_clock::time_point write_failed_at_ GUARDED_BY(write_failure_mu_){};

  Mutex lanes_mu_;
  CondVar lanes_cv_;  // a lane's batch was synced
  std::deque<Lane*> committing_ GUARDED_BY(lanes_mu_);      // lanes with a COMMIT sent, oldest first

  // The writer thread's (see write_until_commit): the versions of streams appended to
  // lately, exact while the log head row's xmin is head_tag_ ("0" matches no
  // transaction), when the head is at head_position_; ahead_: the last batch found the
  // xmin it expected, so the next is decided before it takes the lock. Past the pipeline's
  // stream_cache_limit the least recently written half is dropped (core/evict.h).
  struct KnownVersion {
    es::StreamVersion version;
    std::uint64_t used = 0;  // version_uses_ when last written
  };
  std::unordered_map<es::StreamId, KnownVersion> versions_;
  std::uint64_t version_uses_ = 0;
  std::string head_tag_ = "0";
  es::Position head_position_{0};
  es::EventHash head_hash_{};  // of the event at head_position_
  bool ahead_ = false;

  Mutex pool_mu_;
  std::vector<Connection> pool_ GUARDED_BY(pool_mu_);

  std::atomic<bool> closing_{false};

  es::AppendPipeline pipeline_;

  // The log's newest events, read by follow_log for every live reader of this process.
  es::EventTail tail_;
  Mutex follow_mu_;
  CondVar followed_cv_;  // the follower read further, or the store closes
  std::optional<std::thread> follower_ GUARDED_BY(follow_mu_);  // started by the first wait_for_events
  es::Position followed_ GUARDED_BY(follow_mu_){0};             // one past what tail_ holds; 0: not read yet
};

}  // namespace orderflow::postgres
