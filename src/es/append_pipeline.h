// The append pipeline: optimistic concurrency and group commit, independent of storage.
//
// Appends are validated as they arrive, under one lock, against the versions of every
// append already accepted (committed or still in flight): a conflict is answered at
// once with the stream's current version, so the caller's retry can join the batch
// that is still open. Accepted appends gather in the open batch; one writer thread
// takes the whole batch, writes it in one transaction with one sync, then answers
// every append in it. While it syncs, the next batch fills (leveldb's DBImpl::Write,
// made asynchronous).
//
// Fail-stop: after a failed batch write, every queued and later append fails.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "es/event_store.h"

namespace orderflow::es {

// Where a stored event is.
struct StoredEventRef {
  std::string stream_id;
  StreamVersion version = 0;
  Position position = 0;
};

// An append the pipeline accepted, with its versions and positions assigned.
struct StagedAppend {
  AppendRequest request;
  StreamVersion first_version = 0;  // of request.events[0]
  Position first_position = 0;      // of request.events[0]
  std::int64_t recorded_at_ms = 0;
  AppendCallback done;

  AppendResult result() const {
    auto n = static_cast<std::int64_t>(request.events.size());
    return AppendResult{first_version + n - 1, first_position + n - 1};
  }
};

// What a storage adapter gives the pipeline. The read methods see committed data only
// and are called with the pipeline's lock held, never concurrently with each other.
class AppendBackend {
 public:
  virtual ~AppendBackend() = default;
  virtual Result<StreamVersion> committed_version(const std::string& stream_id) = 0;
  virtual Result<Position> committed_last_position() = 0;
  virtual Result<std::optional<StoredEventRef>> find_event(const std::string& event_id) = 0;
  // Ids of the stream's events from `from` on, at most n.
  virtual Result<std::vector<std::string>> stream_event_ids(const std::string& stream_id,
                                                            StreamVersion from, std::size_t n) = 0;
  virtual Result<bool> idempotency_key_exists(const std::string& key) = 0;
  // Writes every append of the batch, and its idempotency record, in one transaction.
  // It need not be durable yet, and readers must not see it until the pipeline's
  // last_committed() covers it. Called from the writer thread only.
  virtual Result<void> write_batch(const std::vector<StagedAppend>& batch) = 0;
  // Makes every batch written so far durable. Called from the sync thread, while the
  // writer thread may be writing the next batch.
  virtual Result<void> sync() = 0;
  // Called with each batch once it is durable and answered, in position order, before
  // waiters on last_committed() are woken; under the pipeline's lock, so it must be quick.
  // The backend may move the events' payloads out of the batch.
  virtual void on_durable(std::vector<StagedAppend>& batch) { (void)batch; }
};

struct AppendPipelineOptions {
  // false: one transaction and one sync per append (the baseline group commit beats).
  bool group_commit = true;
  // Most appends written in one transaction.
  std::size_t max_batch = 8192;
  // Streams whose versions are kept in memory; streams with nothing in flight are
  // dropped past this and re-read from the backend when next appended to.
  std::size_t stream_cache_limit = 200000;
};

class AppendPipeline {
 public:
  using Clock = std::function<std::int64_t()>;  // unix epoch milliseconds

  AppendPipeline(AppendBackend& backend, AppendPipelineOptions options, Clock clock);
  ~AppendPipeline();  // stop()
  AppendPipeline(const AppendPipeline&) = delete;
  AppendPipeline& operator=(const AppendPipeline&) = delete;

  // Reads the last committed position and starts the writer thread.
  Result<void> start();
  // Finishes every accepted append, then stops the writer. Later appends answer unavailable.
  void stop();

  // See EventStore::append_async.
  void append(AppendRequest request, AppendCallback done);

  // The highest committed position.
  Position last_committed() const;
  // Blocks until last_committed() > after, the timeout passes or the pipeline stops.
  bool wait_for_commit(Position after, std::chrono::milliseconds timeout);

 private:
  struct StreamEntry {
    StreamVersion version = kNoStream;  // including appends in flight
    std::uint32_t in_flight = 0;
  };
  // An accepted append's place, for recognising a retry while it is still in flight.
  struct InFlight {
    std::string stream_id;
    std::vector<std::string> event_ids;
    AppendResult result;
    std::vector<AppendCallback> followers;  // retries waiting for the same answer
  };
  using Answer = std::pair<AppendCallback, Result<AppendResult>>;

  // All REQUIRE mu_ held.
  Result<StreamVersion> current_version(const AppendRequest& req);
  std::optional<Result<AppendResult>> check_duplicate(AppendRequest& req, AppendCallback& done,
                                                      bool& attached);
  void evict_streams();

  void writer_loop();
  void sync_loop();
  void finish(std::vector<std::vector<StagedAppend>>& batches, const Result<void>& synced);
  void settle(StagedAppend& a, const Result<AppendResult>& outcome, std::vector<Answer>& answers);

  AppendBackend& backend_;
  const AppendPipelineOptions options_;
  const Clock clock_;

  mutable std::mutex mu_;
  std::condition_variable writer_cv_;     // open batch non-empty, or stopping
  std::condition_variable committed_cv_;  // last_committed_ grew, or stopping
  std::condition_variable sync_cv_;       // a batch was written, or the writer is done
  std::deque<StagedAppend> open_;         // accepted, waiting for the writer
  std::vector<std::vector<StagedAppend>> unsynced_;  // written, waiting for the sync
  bool writer_done_ = false;
  std::unordered_map<std::string, StreamEntry> streams_;
  std::unordered_map<std::string, InFlight> in_flight_;   // by first event id
  std::unordered_map<std::string, std::string> in_flight_ids_;  // any event id -> first id
  // Idempotency keys in flight, with appends that reused one: answered
  // idempotency_key_reused once the first commits, so their record can be read.
  std::unordered_map<std::string, std::vector<AppendCallback>> in_flight_keys_;
  Position next_position_ = 1;
  Position last_committed_ = 0;
  std::optional<Error> failed_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread writer_;
  std::thread syncer_;
};

}  // namespace orderflow::es
