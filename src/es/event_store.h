// The event store: the single source of truth. Interfaces only; adapters in store/.
//
// Thread safety: every method of every interface here may be called from any thread
// at once.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "es/event.h"
#include "es/event_hash.h"

namespace orderflow::es {

using AppendCallback = std::function<void(Result<AppendResult>)>;

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends req.events atomically to req.stream_id if its current version satisfies
  // req.expected; otherwise answers Errc::version_conflict with the current version in
  // Error::current_version and writes nothing.
  //
  // Re-appending the same event ids at the same place (a retry after a lost reply)
  // answers the original AppendResult and writes nothing. Event ids already stored
  // elsewhere answer Errc::duplicate_event.
  //
  // Promise: `done` is called exactly once. A success is called only after the events
  // (and req.idempotency, if any) are durable. A rejection that needs no disk may be
  // answered inline, before append_async returns; a success is answered from another
  // thread. A failed write answers Errc::unavailable (outcome unknown: a retry with the
  // same event ids learns it); the store recovers by itself once it can write again,
  // answering unavailable meanwhile (see write_failure()).
  // REQUIRES: !req.events.empty(); every event has a non-empty event_id and type.
  virtual void append_async(AppendRequest req, AppendCallback done) = 0;

  // Blocking form of append_async.
  Result<AppendResult> append(AppendRequest req);

  // Up to `max` events of one stream starting at from_version, in the given direction
  // (backward: from_version down to 0; from_version < 0 means "from the end").
  // Upcasters have been applied. An absent stream reads as empty.
  virtual Result<std::vector<RecordedEvent>> read_stream(const StreamId& stream_id,
                                                         StreamVersion from_version,
                                                         std::size_t max,
                                                         Direction direction) = 0;

  // The event stored under `event_id`, if readers can see it (as read_stream would serve
  // it: checked, upcast); nullopt if there is none. Answered from the store's index of
  // event ids, so the application can look up a fact it keyed by a derived event id
  // (an order's charge: app/saga/saga_io.h) instead of keeping it in an aggregate's state.
  virtual Result<std::optional<RecordedEvent>> read_event(const std::string& event_id) = 0;

  // The events stored under any of `event_ids` (as read_event would answer each, in no
  // particular order; those with none are left out). A store reached over a network answers
  // them in one round trip; this one asks read_event for each.
  virtual Result<std::vector<RecordedEvent>> read_events(std::span<const std::string> event_ids);

  // Calls `fn` for each of up to `max` events of the global log with position >=
  // from_position that match `filter`, in position order; the event passed is valid
  // only during the call (no copies: the hot path of subscriptions and replays).
  // Never passes an event while one with a lower position may still become visible.
  // Returns the position to continue from: one past the last event examined, which
  // with a filter may be beyond the last event passed to fn.
  virtual Result<Position> scan_all(Position from_position, std::size_t max,
                                    const EventFilter& filter,
                                    const std::function<void(const RecordedEvent&)>& fn) = 0;

  // scan_all for a reader that follows the head of the log (es::Subscription, between
  // wait_for_events): the same order and never-skip promise, but it may answer only what
  // this process has read of the log so far, up to a poll interval behind what is durable
  // (store/postgres: one read of the log shared by every follower). A one-shot read, which
  // must see every acknowledged write, uses scan_all. By default scan_all.
  virtual Result<Position> scan_live(Position from_position, std::size_t max, const EventFilter& filter,
                                     const std::function<void(const RecordedEvent&)>& fn) {
    return scan_all(from_position, max, filter, fn);
  }

  // scan_all, collected.
  Result<std::vector<RecordedEvent>> read_all(Position from_position, std::size_t max,
                                              const EventFilter& filter = {});

  // The highest position readers can see (0 for an empty store).
  virtual Result<Position> last_position() = 0;

  // The current version of a stream, kNoStream if it has no events.
  virtual Result<StreamVersion> stream_version(const StreamId& stream_id) = 0;

  virtual Result<std::optional<IdempotencyRecord>> find_idempotency(const std::string& key) = 0;

  // find_idempotency, once every append carrying `key` that was in flight when it was
  // called has been answered: in this process, and for a store other processes write, any
  // holding the store's write lock. What a request with an Idempotency-Key that the
  // command refused must look up before it answers: an earlier request with its key
  // (the client's first try, or a try sent to a process that died) may be landing while
  // this one was decided, and its answer is the key's answer. A store that answers
  // every append before append_async returns needs nothing more than find_idempotency.
  virtual Result<std::optional<IdempotencyRecord>> find_idempotency_settled(const std::string& key) {
    return find_idempotency(key);
  }

  // Why appends are refused at once right now (the store cannot write and is recovering);
  // nullopt while they are accepted. /readyz reports it.
  virtual std::optional<Error> write_failure() { return std::nullopt; }

  // Appends accepted and waiting to be written (0 for a store that writes each at once).
  virtual std::size_t appends_queued() { return 0; }

  // Blocks until last_position() > after, the timeout passes, or the store closes.
  // Returns whether new events are visible. Live subscriptions sleep here.
  virtual bool wait_for_events(Position after, std::chrono::milliseconds timeout) = 0;
};

// The log as stored, with each event's hashes (es/event_hash.h), for checking the whole
// chain (`orderflow verify`). Reads of EventStore check what they serve themselves.
class StoredLog {
 public:
  virtual ~StoredLog() = default;
  using StoredFn = std::function<void(const RecordedEvent&, const StoredHashes&)>;
  // Calls `fn` for each of up to `max` stored events with position >= from_position, in
  // position order, as stored: not upcast, hashes and checksum not checked (a hash of the
  // wrong length is passed as kNoEventHash). Returns one past the last event passed (from_position if
  // none). An error names the position it could not read past.
  virtual Result<Position> scan_stored(Position from_position, std::size_t max, const StoredFn& fn) = 0;
};

// The version each stream that `filter` passes had at `through`: its last event at or below
// it (one scan of the log from its start; streams begun later are not there).
Result<std::unordered_map<StreamId, StreamVersion>> stream_versions_at(EventStore& store, const EventFilter& filter,
                                                                       Position through);

// Recomputes the chain from position 1 on and checks it against every hash stored, every
// checksum and every stored link: appends one line per break to `breaks`, naming the
// position (or, where the store keeps hashes at some rows only, the range between two
// of them); a read that cannot go on is the last line.
void check_chain(StoredLog& log, std::vector<std::string>& breaks);

struct Snapshot {
  StreamId stream_id;
  StreamVersion version = kNoStream;  // the state includes every event up to this version
  std::int32_t schema_version = 1;    // of the state's encoding
  std::string state;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  // Replaces the stream's snapshot. A snapshot is only a baseline: readers still read
  // the events after it.
  virtual Result<void> save_snapshot(const Snapshot& snapshot) = 0;
  // The latest snapshot, or nullopt if there is none or it cannot be read (never fatal).
  virtual std::optional<Snapshot> load_snapshot(const StreamId& stream_id) = 0;
  // Calls `fn` with every stored snapshot, by stream id (for `orderflow verify`, which
  // compares each with the fold of its stream's events).
  virtual Result<void> for_each_snapshot(const std::function<void(const Snapshot&)>& fn) = 0;
};

// The answers stored for Idempotency-Keys (docs/api.md §2) are kept for a retention
// period, then deleted (app/idempotency_retention.h).
class IdempotencyRecords {
 public:
  virtual ~IdempotencyRecords() = default;
  // Deletes at most `max` of the records stored before `before_ms` (Unix ms), the oldest
  // first, and answers how many it deleted. A request with a deleted record's key is new.
  virtual Result<std::size_t> expire_idempotency(std::int64_t before_ms, std::size_t max) = 0;
};

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  // The position up to which `name` has processed the log (0 if never saved).
  virtual Result<Position> load_checkpoint(const std::string& name) = 0;
  // A checkpoint never moves backwards: saving a position below the stored one leaves
  // it as it is (a process that lost its lease, or restarted from an older view, cannot
  // undo what a newer one recorded).
  virtual Result<void> save_checkpoint(const std::string& name, Position position) = 0;
};

}  // namespace orderflow::es
