// Command handling: load (snapshot + events) -> decide -> append with the version read.
// A version conflict is retried (reload, decide again) a bounded number of times unless
// the client pinned a version with If-Match; nothing else is retried.
#pragma once

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
  // (The store numbers appends only when it writes them, so commands racing on one
  // stream go through one batch at a time and lean on the retries above.)
  bool shared_store = false;
  std::int64_t conflict_retry_ms = 30000;
  // Seals the personal data of OpenAccount and PlaceOrder before they are decided, so the
  // events, states, snapshots and read models hold only the sealed form (personal_data.h).
  // Null: kept as given. Must outlive the handler.
  PersonalData* personal_data = nullptr;
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
  // (a rejection), possibly on the store's writer thread (a success): it must not block.
  template <class A>
  void handle(const std::string& id, typename A::Command command, CommandMeta meta, HandledCallback<A> done);

  es::EventStore& store() { return store_; }

 private:
  template <class A>
  struct Attempt;
  template <class A>
  void attempt(std::shared_ptr<Attempt<A>> a);
  template <class A>
  Result<Loaded<A>> read_store(const std::string& id);
  template <class A>
  AggregateCache<typename A::State>& cache();
  // An answer that writes nothing (a rejection, an If-Match mismatch, nothing to do) must
  // rest on a durable state: one decided on an append still pending waits for it. Runs
  // `then` once the stream's pending entry at `version` is settled (durable or failed) and
  // returns true; false if it is settled already (the caller attempts again at once).
  template <class A>
  bool when_settled(const std::string& stream, es::StreamVersion version, std::function<void()> then);
  // An append to `stream` was answered: wakes what waits on its pending entries.
  void settled(const std::string& stream);

  void queue_snapshot(es::Snapshot snapshot);
  void snapshot_loop();

  es::EventStore& store_;
  es::SnapshotStore* snapshots_;
  CommandHandlerOptions options_;
  AggregateCache<domain::product::State> products_;
  AggregateCache<domain::account::State> accounts_;
  AggregateCache<domain::order::State> orders_;

  Mutex settle_mu_;  // taken after a cache's own lock is released, never inside it
  std::unordered_multimap<std::string, std::function<void()>> settle_waiters_ GUARDED_BY(settle_mu_);

  // Snapshots are written off the command path by one thread, latest per stream.
  Mutex snap_mu_;
  CondVar snap_cv_;
  std::map<std::string, es::Snapshot> snap_queue_ GUARDED_BY(snap_mu_);
  bool stopping_ GUARDED_BY(snap_mu_) = false;
  std::thread snap_thread_;
};

}  // namespace orderflow::app
