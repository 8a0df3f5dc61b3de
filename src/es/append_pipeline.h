// The append pipeline: optimistic concurrency and group commit, independent of storage.
//
// Accepted appends gather in the open batch; one writer thread takes the whole batch,
// writes it in one transaction with one sync, then answers every append in it. While
// it syncs, the next batch fills (leveldb's DBImpl::Write, made asynchronous).
//
// Who checks expected versions depends on who else writes the storage:
// - An ExclusiveAppendBackend (this process is the only writer, e.g. SQLite under a
//   flock): appends are validated as they arrive, under one lock, against the versions
//   of every append already accepted (committed or still in flight); a conflict is
//   answered at once with the stream's current version, so the caller's retry can join
//   the batch that is still open. Versions and positions are assigned in memory.
//   After a failed batch write or sync, that batch and every append accepted behind it
//   answer `unavailable` (they were validated against versions that may never exist;
//   none was acknowledged), and later appends are refused at once until the writer has
//   had the backend recover(): drop what the failed batches left, show with a write that
//   it can write again (tried after 100 ms, then backing off to 2 s). Then versions and
//   positions are re-read from what is durable and appends are accepted again.
// - A shared AppendBackend (other processes write too, e.g. PostgreSQL): memory cannot
//   know the streams' versions, so write_batch checks every append under the storage's
//   own lock and assigns versions and positions there. Only appends in flight in this
//   process are checked in memory, against the version they will leave if they succeed,
//   so a conflict among this process's own appends to a hot stream is answered at once
//   and the retry joins the open batch; the database still has the last word (and the
//   only word for an append expecting a version newer than memory's: another process
//   may have appended behind this one's). "At once"
//   waits until write_batch has numbered the appends it conflicts with (and on_staged
//   told their callers the state they leave), so a caller that decides again on that
//   state does not spin on the same conflict; once the database has rejected one of
//   this process's appends to a stream, memory no longer knows its version and the
//   database alone decides until nothing is in flight there. A failed
//   batch answers only its own appends `unavailable` (their outcome is unknown: a retry
//   with the same event ids finds out); later appends are tried again, so the store
//   recovers by itself.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/mutex.h"
#include "es/event_store.h"

namespace orderflow::es {

// Where a stored event is.
struct StoredEventRef {
  StreamId stream_id;
  StreamVersion version{0};
  Position position{0};
};

// An append the pipeline accepted, with its versions and positions assigned (by the
// pipeline, or by a shared backend's write_batch).
struct StagedAppend {
  AppendRequest request;
  StreamVersion first_version{0};  // of request.events[0]
  Position first_position{0};      // of request.events[0]
  std::int64_t recorded_at_ms = 0;
  AppendCallback done;
  // Set by a shared backend's write_batch for an append it answered without writing:
  // a conflict, a duplicate, or the original result of a retried append.
  std::optional<Result<AppendResult>> answer;
  // Shared backends: accepted behind this process's appends to its stream that were not
  // numbered yet, expecting the version they leave: it was decided on their state, so it
  // may be written only if they are (ChainGuard).
  bool chained = false;
  // Shared backends: on_staged was called when it was accepted (its version was known).
  bool told_staged = false;
  // Shared backends: the mark of the state it leaves (AppendResult::pending_mark).
  std::uint64_t mark = 0;

  AppendResult result() const {
    auto n = static_cast<std::int64_t>(request.events.size());
    return AppendResult{first_version + n - 1, first_position + n - 1};
  }
};

// How an append relates to events already stored, given where each of its event ids
// is stored (stored[i] for request.events[i], nullopt: nowhere). nullopt if none is
// stored; the original result if the append is a retry of a stored one (the same ids at
// the same place); otherwise duplicate_event.
std::optional<Result<AppendResult>> match_stored(const AppendRequest& req,
                                                 const std::vector<std::optional<StoredEventRef>>& stored);

// The version_conflict answer for an append to a stream that is at `current`.
Error version_conflict(const StreamId& stream_id, StreamVersion current, const ExpectedVersion& expected);

// A shared backend's write_batch asks it, append by append in batch order, whether a
// chained append (StagedAppend::chained) may be checked against the database at all. It
// may not when an earlier append of the batch to its stream was not written (it was
// decided on the state that one would have left; the database's version may still match
// by chance, another process having appended as many events), nor, if the batches before
// this one may not all have committed (`earlier_batches_stand` false: the head's last
// writer is not the one this process expected), when its stream has no earlier append in
// the batch (what it was decided on was in such a batch). Refused, it is answered
// version_conflict naming `current`, and its caller decides again.
class ChainGuard {
 public:
  explicit ChainGuard(bool earlier_batches_stand) : earlier_batches_stand_(earlier_batches_stand) {}
  // Whether `a` may be checked and written.
  bool admits(const StagedAppend& a) const;
  // After `a` was decided: written, or answered (a.answer set).
  void decided(const StagedAppend& a);

 private:
  bool earlier_batches_stand_;
  // Streams with an append of the batch not written (rare), and, only while earlier
  // batches may not stand, streams with one written: nothing is copied per append on the
  // usual path.
  std::unordered_set<StreamId> unwritten_, written_;
};

// What every storage adapter gives the pipeline.
class AppendBackend {
 public:
  virtual ~AppendBackend() = default;
  // Writes every append of the batch, and its idempotency record, in one transaction.
  // Called from the writer thread only.
  // Exclusive backends: the batch is validated and numbered; it need not be durable
  // yet, and readers must not see it until the pipeline's last_committed() covers it.
  // Shared backends: under a lock that orders batches across processes, checks each
  // append (expected version, stored event ids, idempotency key) against the storage
  // and the appends before it in the batch, sets `answer` on those it rejects or
  // recognises as retries, assigns first_version/first_position to the others, calls
  // their render_response and writes them; sync() tells whether the batch committed.
  virtual Result<void> write_batch(std::vector<StagedAppend>& batch) = 0;
  // Makes the oldest `batches` written batches not yet synced durable (a backend may
  // make more durable at once). Called from the sync thread, while the writer thread may
  // be writing the next batch.
  virtual Result<void> sync(std::size_t batches) = 0;
  // Called with each synced batch once its appends are answered, in position order,
  // before waiters on last_committed() are woken; under the pipeline's lock, so it must
  // be quick. Appends with `answer` set wrote nothing. The backend may move the events'
  // payloads out of the batch.
  virtual void on_durable(std::vector<StagedAppend>& batch) { (void)batch; }
  // Called from the writer thread before it takes the next batch. A backend that can
  // have only so many batches in flight blocks here until it can write one, so that the
  // batch taken afterwards holds every append that arrived meanwhile (taken first, it
  // would hold only what came during the last write, and wait with the rest outside).
  virtual void await_writable() {}
};

// A storage only this process writes. The read methods see committed data only and are
// called with the pipeline's lock held, never concurrently with each other.
class ExclusiveAppendBackend : public AppendBackend {
 public:
  virtual Result<StreamVersion> committed_version(const StreamId& stream_id) = 0;
  virtual Result<Position> committed_last_position() = 0;
  virtual Result<std::optional<StoredEventRef>> find_event(const std::string& event_id) = 0;
  virtual Result<bool> idempotency_key_exists(const std::string& key) = 0;
  // After a failed write_batch or sync: makes the storage hold exactly the positions up
  // to `durable` (the last one answered as committed; batches past it may have committed,
  // and are removed), durably and in a state later batches can be trusted to build on;
  // forgets whatever it keeps in memory of what is past `durable`; and writes, so that
  // success shows it can write again. Called from the writer thread while no write_batch
  // or sync runs. An error: nothing is promised, and it is called again later.
  virtual Result<void> recover(Position durable) = 0;
};

struct AppendPipelineOptions {
  // false: one transaction and one sync per append (the baseline group commit beats).
  bool group_commit = true;
  // Most appends written in one transaction.
  std::size_t max_batch = 8192;
  // Exclusive backends: streams whose versions are kept in memory. Past this many, the least
  // recently appended half of those with nothing in flight is dropped (core/evict.h), each
  // re-read from the backend when next appended to (an index lookup under the pipeline's
  // lock). Memory: ~150 bytes a stream (its id, its entry, the hash node), so 11-22 MB
  // held. Every order adds two streams (order-, saga-): an order appended to again
  // within 37,500 orders is here; 100,000 streams appended to round robin all stay.
  std::size_t stream_cache_limit = 150000;
};

class AppendPipeline {
 public:
  using Clock = std::function<std::int64_t()>;  // unix epoch milliseconds

  // Validates in memory; see the top of this file.
  AppendPipeline(ExclusiveAppendBackend& backend, AppendPipelineOptions options, Clock clock);
  // Leaves validation to write_batch.
  AppendPipeline(AppendBackend& shared_backend, AppendPipelineOptions options, Clock clock);
  ~AppendPipeline();  // stop()
  AppendPipeline(const AppendPipeline&) = delete;
  AppendPipeline& operator=(const AppendPipeline&) = delete;

  // Reads the last committed position (exclusive backends) and starts the writer thread.
  Result<void> start() EXCLUDES(mu_);
  // Finishes every accepted append, then stops the writer. Later appends answer unavailable.
  void stop() EXCLUDES(mu_);

  // See EventStore::append_async.
  void append(AppendRequest request, AppendCallback done) EXCLUDES(mu_);

  // The highest committed position (with a shared backend: written by this process).
  Position last_committed() const EXCLUDES(mu_);
  // Exclusive backends: why appends are refused while the pipeline recovers from a failed
  // batch; nullopt while they are accepted.
  std::optional<Error> write_failure() const EXCLUDES(mu_);
  // Appends accepted and waiting for the writer to take them (admission control's gauge).
  std::size_t queued() const EXCLUDES(mu_);
  // Blocks until last_committed() > after, the timeout passes or the pipeline stops.
  bool wait_for_commit(Position after, std::chrono::milliseconds timeout) EXCLUDES(mu_);
  // Blocks until no append carrying idempotency key `key` is in flight here (it committed
  // or failed, and a committed one's record is readable). Not from the store's threads.
  void await_key(const std::string& key) EXCLUDES(mu_);

 private:
  // Exclusive backends: every stream appended to lately. Shared backends: streams with
  // appends in flight here, and the version those will leave if they succeed (unknown
  // after an `any` append to a stream with nothing before it in flight).
  struct StreamEntry {
    StreamVersion version = kNoStream;  // including appends in flight
    std::uint32_t in_flight = 0;
    bool version_known = true;
    // Shared backends: appends in flight that write_batch has not numbered yet, and
    // appends that conflict with them, parked until they are (see park()).
    std::uint32_t unnumbered = 0;
    std::uint64_t mark = 0;  // of the latest append staged here, which leaves `version` (last_mark_)
    std::vector<std::pair<AppendRequest, AppendCallback>> parked;
  };
  // An accepted append's place, for recognising a retry while it is still in flight.
  struct InFlight {
    StreamId stream_id;
    std::vector<std::string> event_ids;
    std::vector<AppendCallback> followers;  // retries waiting for the same answer
  };
  using Answer = std::pair<AppendCallback, Result<AppendResult>>;

  Result<StreamVersion> current_version(const AppendRequest& req) REQUIRES(mu_);
  bool attach_retry(const AppendRequest& req, AppendCallback& done) REQUIRES(mu_);
  std::optional<Result<AppendResult>> in_flight_duplicate(const AppendRequest& req) const REQUIRES(mu_);
  std::optional<Result<AppendResult>> check_stored(const AppendRequest& req) REQUIRES(mu_);
  void stage(AppendRequest req, AppendCallback done, std::optional<StreamVersion> current) REQUIRES(mu_);
  void track_in_flight_version(const AppendRequest& req, std::uint64_t mark) REQUIRES(mu_);
  static bool refutes(const StreamEntry& entry, const ExpectedVersion& expected);
  void numbered(const std::vector<StagedAppend>& batch, bool written, std::vector<Answer>& answers) REQUIRES(mu_);
  // Shared backends: answers version_conflict to the chained appends still waiting in the
  // open batch on `streams` (an append they were decided behind was not written).
  void refuse_chained(const std::unordered_map<StreamId, StreamVersion>& streams, std::vector<Answer>& answers)
      REQUIRES(mu_);
  void evict_streams() REQUIRES(mu_);

  void fail_from(Position first, const Error& error, std::vector<Answer>& answers) REQUIRES(mu_);

  // The writer and sync threads' bodies; the backend is called without mu_ held (its
  // on_durable excepted).
  void writer_loop() EXCLUDES(mu_);
  void recover() EXCLUDES(mu_);
  void sync_loop() EXCLUDES(mu_);
  Result<void> timed_sync(std::size_t batches) EXCLUDES(mu_);  // backend_.sync, timed for /metrics
  void finish(std::vector<std::vector<StagedAppend>>& batches, const Result<void>& synced) EXCLUDES(mu_);
  void settle(StagedAppend& a, const Result<AppendResult>& outcome, std::vector<Answer>& answers) REQUIRES(mu_);
  // Checks the bookkeeping's counters against what they count (cheap: sizes only).
  void check_counts() const REQUIRES(mu_);

  AppendBackend& backend_;
  ExclusiveAppendBackend* const exclusive_;  // null: a shared backend
  const AppendPipelineOptions options_;
  const Clock clock_;

  mutable Mutex mu_;
  CondVar writer_cv_;     // open batch non-empty, or stopping
  CondVar committed_cv_;  // last_committed_ grew, or stopping
  CondVar sync_cv_;       // a batch was written, or the writer is done
  std::deque<StagedAppend> open_ GUARDED_BY(mu_);  // accepted, waiting for the writer
  std::vector<std::vector<StagedAppend>> unsynced_ GUARDED_BY(mu_);  // written, waiting for the sync
  bool syncing_ GUARDED_BY(mu_) = false;  // the sync thread holds batches taken from unsynced_
  bool writer_done_ GUARDED_BY(mu_) = false;
  std::unordered_map<StreamId, StreamEntry> streams_ GUARDED_BY(mu_);
  std::unordered_map<std::string, InFlight> in_flight_ GUARDED_BY(mu_);  // by first event id
  std::unordered_set<std::string> in_flight_ids_ GUARDED_BY(mu_);       // every event id of in_flight_
  // Idempotency keys in flight, with appends that reused one: answered
  // idempotency_key_reused once the first commits, so their record can be read.
  std::unordered_map<std::string, std::vector<AppendCallback>> in_flight_keys_ GUARDED_BY(mu_);
  Position next_position_ GUARDED_BY(mu_){1};
  // Raised by every append staged: StagedAppend::mark (shared backends), and a stream's
  // last use, which evict_streams() keeps the latest of.
  std::uint64_t last_mark_ GUARDED_BY(mu_) = 0;
  Position last_committed_ GUARDED_BY(mu_){0};
  // Exclusive backends, after a failed batch until recover() succeeded: the answer to
  // appends, and the first position of the failed batch (batches before it stand).
  std::optional<Error> failed_ GUARDED_BY(mu_);
  Position failed_from_ GUARDED_BY(mu_){0};
  bool failure_told_ GUARDED_BY(mu_) = false;  // reported, and not yet told recovered by a durable batch
  bool stopping_ GUARDED_BY(mu_) = false;
  bool started_ GUARDED_BY(mu_) = false;
  // Started by start(), joined by stop(): only the thread that owns the pipeline touches them.
  std::thread writer_;
  std::thread syncer_;
};

}  // namespace orderflow::es
