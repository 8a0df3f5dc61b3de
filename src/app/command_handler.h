// Command handling: load (snapshot + events) -> decide -> append with the version read.
// A version conflict is retried (reload, decide again) as ConflictRetryPolicy says: never
// when the client pinned a version with If-Match; nothing else is retried.
//
// Which thread runs what:
// - handle() runs the first attempt (load, decide, append_async) on the caller's thread;
//   so does every further attempt whose reason is known there: a stale cached state, an
//   answer that must rest on the durable state, a conflict the store answered inside
//   append_async.
// - The append's answer arrives on whichever thread the store answers it
//   (es/README.md, "Which thread runs what"), often the store's writer or sync thread.
//   There the handler only updates its cache, queues a snapshot and answers `done`: it
//   never reads the store or waits. A conflict to retry, and a command that waited for a
//   pending append to settle, go on on the handler's own retry threads (`of-cmd-retry`),
//   or its options' executor, which may block: they load, decide and append again.
// - `done` may thus run on the caller's thread (a rejection, often before handle()
//   returns), on the store's thread (a success, a failure) or on a retry thread: it must
//   not block.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/mutex.h"
#include "app/aggregate_cache.h"
#include "app/aggregates.h"
#include "app/personal_data.h"
#include "app/stream_fold.h"
#include "core/metric.h"
#include "es/event_store.h"

namespace boost::asio {
class thread_pool;
}

namespace orderflow::app {

struct CommandMeta {
  std::string correlation_id;  // empty: the command id
  std::string causation_id;    // empty: the command id
  std::string command_id;      // empty: a new UUIDv7
  std::string actor;
  std::string traceparent;     // W3C trace context, passed through when the client sent one
  std::int64_t now_ms = 0;     // 0: the wall clock
  // The caller made the id just now (a new UUIDv7): decide against the initial state
  // without reading the stream; a conflict (it existed after all) reads and retries.
  bool new_stream = false;
  // If set, the stream must be at exactly this version (If-Match); no automatic retry.
  std::optional<es::StreamVersion> if_match;
  // Stored with the events, its response rendered from the append's result.
  std::optional<es::IdempotencyRecord> idempotency;
  std::function<std::string(const es::AppendResult&)> render_response;
  // Event ids for the decided events by index; empty: new UUIDv7s. The saga derives
  // them from (order, step) so a redelivered step appends nothing new.
  std::function<std::string(std::size_t index)> event_id;
};

template <class A>
struct Handled {
  // After the command; null when the append was a retry of a stored one
  // (!result.written): what the stream holds then was decided by an earlier attempt.
  std::shared_ptr<const typename A::State> state;
  es::AppendResult result;      // version after, position of the last event
  std::vector<typename A::Event> events;  // what was appended (empty: nothing to do, or a retry)
};

template <class A>
using HandledCallback = std::function<void(Result<Handled<A>>)>;

// Commands handled in this process, by (type, outcome): "ok" (appended, or nothing to do),
// "repeat" (a retry of a stored append: nothing written) or the error's code. For /metrics.
using CommandCounts = Family<std::tuple<std::string_view, std::string_view>, Counter>;
CommandCounts& command_counts();

struct CommandHandlerOptions {
  // A command without If-Match retries a version conflict this many times; past that it
  // goes on only while the stream keeps moving (each conflict names a newer version: it
  // is waiting its turn behind other commands, not spinning) and it is younger than
  // conflict_retry_ms. Many commands on one hot stream thus all get through.
  int max_conflict_retries = 10;
  // Save a snapshot when a stream's version crosses a multiple of this (0: never).
  std::int64_t snapshot_every = 100;
  // Aggregates kept in memory per type (see AggregateCache). Memory budget: an order's
  // state is ~1 KB, so 8192 orders ~8 MB (20000 were ~20 MB); products and accounts are
  // fewer; a product's grows with the orders holding its stock (see its State).
  std::size_t cache_limit = 8192;
  // Other processes append to the same store (PostgreSQL): a cached state may be behind
  // it, so load() checks the stream's version in the store before answering from memory.
  // Commands of this process on one stream still decide on each other's pending state and
  // share the store's batches (es/append_pipeline.h, "chained"); another process's append
  // is found as a version conflict, and retried as above.
  bool shared_store = false;
  std::int64_t conflict_retry_ms = 30000;
  // Threads that run retries after a conflict and commands that waited for a pending
  // append (of-cmd-retry): they read the store, so never the store's own threads.
  int retry_threads = 2;
  // Runs that work instead of the handler's own threads (then none are started): at once
  // or later, on a thread that may block, never inside a store's callback on its own
  // thread. A deterministic simulation, whose store answers on the simulation's thread,
  // runs it there and then.
  std::function<void(std::function<void()>)> executor;
  // Seals the personal data of OpenAccount and PlaceOrder before they are decided, so the
  // events, states, snapshots and read models hold only the sealed form (personal_data.h).
  // Null: kept as given. Must outlive the handler.
  PersonalData* personal_data = nullptr;
};

// When a command decided again after a version conflict. The rules: a command whose client
// pinned the version (If-Match) is never retried; others are retried up to `max_retries`
// times; past that a command goes on while the stream keeps moving (each conflict names a
// newer version: it is waiting its turn behind other commands, not spinning) and it is
// younger than `window`. Not thread-safe: one per command, used by one thread at a time.
class ConflictRetryPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  ConflictRetryPolicy(int max_retries, std::chrono::milliseconds window, bool pinned,
                      Clock::time_point started = Clock::now())
      : max_retries_(max_retries), window_(window), pinned_(pinned), started_(started) {}

  // The append conflicted with the stream at `current` (as the store named it): try again?
  bool retry_conflict(std::optional<es::StreamVersion> current, Clock::time_point now = Clock::now());
  // An answer that writes nothing rests on a cached state the store may have moved past:
  // may the handler check the store and decide again? Counts as one retry.
  bool recheck_cached();

  // Retries so far (0: the first attempt).
  int retries() const { return retries_; }
  // The version the last conflict found the stream at: a cached state older than that is
  // of no use for the retry (another process appended).
  std::optional<es::StreamVersion> conflict_at() const { return conflict_at_; }

 private:
  const int max_retries_;
  const std::chrono::milliseconds window_;
  const bool pinned_;
  const Clock::time_point started_;
  int retries_ = 0;
  int stuck_ = 0;  // conflicts in a row at the same version
  std::optional<es::StreamVersion> conflict_at_;
};

class CommandHandler {
 public:
  // `snapshots` may be null. Both must outlive the handler.
  CommandHandler(es::EventStore& store, es::SnapshotStore* snapshots, CommandHandlerOptions options = {});
  ~CommandHandler();
  CommandHandler(const CommandHandler&) = delete;
  CommandHandler& operator=(const CommandHandler&) = delete;

  // The aggregate as the store holds it now (durable state only): from memory (on a
  // shared store, if the store holds no newer version), or from its snapshot, if
  // readable, and every event after it.
  template <class A>
  Result<Loaded<A>> load(const std::string& id);

  // The newest state this process knows, appends accepted but not yet durable included:
  // for facts that never go back (a product's existence and price), where waiting for
  // durability buys nothing and reading a hot stream costs a lot.
  template <class A>
  Result<Loaded<A>> load_latest(const std::string& id);

  // The aggregate as it was at `version` (inclusive), folded from the events alone.
  template <class A>
  Result<Loaded<A>> load_until(const std::string& id, es::StreamVersion version);

  // Runs one command. `done` is called exactly once, possibly before handle() returns
  // (a rejection), possibly on the store's thread (a success) or a retry thread (see the
  // top of this file): it must not block.
  template <class A>
  void handle(const std::string& id, typename A::Command command, CommandMeta meta, HandledCallback<A> done);

  es::EventStore& store() { return store_; }

  // Runs `work` on one of the handler's retry threads (or its options' executor), which
  // may block (a read, a wait on the store): for what an answer that arrived on the
  // store's thread must do next.
  void post(std::function<void()> work);

 private:
  template <class A>
  struct Attempt;
  template <class A>
  struct Basis;
  enum class Next { again, done };  // after one step: attempt again at once, or done here
  // Attempts until the command is answered or handed on (to the store, or to a waiter).
  template <class A>
  void run(const std::shared_ptr<Attempt<A>>& a);
  // One attempt: load -> decide -> append.
  template <class A>
  Next step(const std::shared_ptr<Attempt<A>>& a);
  template <class A>
  Result<Basis<A>> load_for(Attempt<A>& a);
  template <class A>
  Next append(const std::shared_ptr<Attempt<A>>& a, Basis<A> basis, std::vector<typename A::Event> events);
  // Runs the rest of a command on a retry thread (never inline).
  template <class A>
  void run_later(std::shared_ptr<Attempt<A>> a);
  template <class A>
  Result<Loaded<A>> read_store(const std::string& id);
  template <class A>
  AggregateCache<typename A::State>& cache();
  // An answer that writes nothing (a rejection, an If-Match mismatch, nothing to do) must
  // rest on a durable state: one decided on an append still pending waits for it. Runs
  // `then` once the stream's pending entry at `version` is settled (durable or failed) and
  // returns true; false if it is settled already (the caller attempts again at once).
  template <class A>
  bool when_settled(const es::StreamId& stream, es::StreamVersion version, std::function<void()> then);
  // An append to `stream` was answered: wakes what waits on its pending entries.
  void settled(const es::StreamId& stream);

  void queue_snapshot(es::Snapshot snapshot);
  void snapshot_loop();

  es::EventStore& store_;
  es::SnapshotStore* snapshots_;
  CommandHandlerOptions options_;
  AggregateCache<domain::product::State> products_;
  AggregateCache<domain::account::State> accounts_;
  AggregateCache<domain::order::State> orders_;

  Mutex settle_mu_;  // taken after a cache's own lock is released, never inside it
  std::unordered_multimap<es::StreamId, std::function<void()>> settle_waiters_ GUARDED_BY(settle_mu_);

  // Snapshots are written off the command path by one thread, latest per stream.
  Mutex snap_mu_;
  CondVar snap_cv_;
  std::map<es::StreamId, es::Snapshot> snap_queue_ GUARDED_BY(snap_mu_);
  bool stopping_ GUARDED_BY(snap_mu_) = false;
  std::thread snap_thread_;
  // Last: joined first, while everything its work touches is alive. None with options_.executor.
  std::unique_ptr<boost::asio::thread_pool> retry_pool_;
};

}  // namespace orderflow::app
