// Deterministic in-memory stores for simulations.
//
// SimEventStore: an EventStore (also the snapshot and checkpoint store) that keeps the
// EventStore contract (tests/es/event_store_contract.h runs it), answers inline, and
// whose seeded fault injector can refuse an append (nothing written) or lose its reply
// (written, but the caller is told it failed). Its data outlive the simulated processes
// that use it, as a database outlives its clients.
//
// SimConnection: one simulated process's view of a SimEventStore. Its appends can be held
// (in flight: the process has sent them, the store has not yet answered) and landed one
// at a time in any order the simulation picks, so appends of several processes really
// interleave, as on a shared PostgreSQL. When the process dies, each append in flight
// lands or not, and nobody hears of it. Its snapshot saves stay with it until the
// process stops (and are then published, or lost if it crashed), so what a load finds
// does not depend on when the handler's snapshot thread ran.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>

#include "es/append_pipeline.h"
#include "es/event_store.h"
#include "es/upcaster.h"

namespace orderflow::testing {

class SimEventStore final : public es::EventStore, public es::SnapshotStore, public es::CheckpointStore {
 public:
  explicit SimEventStore(std::mt19937_64& rng) : rng_(rng) {}

  std::int64_t now_ms = 1'750'000'000'000;  // recorded_at of what is appended
  double refuse_rate = 0;  // answer unavailable, write nothing
  double lose_rate = 0;    // write, then answer unavailable
  std::int64_t conflicts = 0;  // appends answered version_conflict so far

  // Applied on every read from now on (null: none), as if the store were reopened with them.
  void set_upcasters(const es::UpcasterRegistry* upcasters) {
    std::lock_guard lk(mu_);
    upcasters_ = upcasters;
  }

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    Result<es::AppendResult> r = fail(Errc::internal, "unset");
    {
      std::lock_guard lk(mu_);
      if (chance(refuse_rate)) {
        r = fail(Errc::unavailable, "injected: append refused");
      } else {
        r = write(req);
        if (r && chance(lose_rate)) r = fail(Errc::unavailable, "injected: reply lost");
      }
    }
    appended_.notify_all();
    done(std::move(r));
  }

  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& stream_id, es::StreamVersion from,
                                                     std::size_t max, es::Direction direction) override {
    std::lock_guard lk(mu_);
    std::vector<es::RecordedEvent> out;
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return out;
    const auto& positions = it->second;
    auto n = static_cast<es::StreamVersion>(positions.size());
    auto take = [&](es::StreamVersion v) -> Result<void> {
      auto e = log_[positions[static_cast<std::size_t>(v.value())]];
      if (upcasters_)
        if (auto r = upcasters_->upcast(e); !r) return r;
      out.push_back(std::move(e));
      return {};
    };
    if (direction == es::Direction::forward) {
      for (auto v = std::max(from, es::StreamVersion{0}); v < n && out.size() < max; ++v) OF_RETURN_IF_ERROR(take(v));
    } else {
      for (auto v = from < 0 || from >= n ? n - 1 : from; v >= 0 && out.size() < max; v -= 1)
        OF_RETURN_IF_ERROR(take(v));
    }
    return out;
  }

  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    std::lock_guard lk(mu_);
    auto it = ids_.find(event_id);
    if (it == ids_.end()) return std::optional<es::RecordedEvent>();
    auto e = log_[static_cast<std::size_t>(it->second.value() - 1)];
    if (upcasters_) OF_RETURN_IF_ERROR(upcasters_->upcast(e));
    return std::optional(std::move(e));
  }

  // `fn` runs without the lock held (copies: this store is for tests, not speed).
  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& filter,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    std::vector<es::RecordedEvent> batch;
    auto p = std::max(from, es::Position{1});
    {
      std::lock_guard lk(mu_);
      for (; p <= last() && batch.size() < max; ++p) {
        auto e = log_[static_cast<std::size_t>(p.value() - 1)];
        if (!filter.matches(e)) continue;
        if (upcasters_) OF_RETURN_IF_ERROR(upcasters_->upcast(e));
        batch.push_back(std::move(e));
      }
    }
    for (const auto& e : batch) fn(e);
    return p;
  }

  Result<es::Position> last_position() override {
    std::lock_guard lk(mu_);
    return last();
  }
  Result<es::StreamVersion> stream_version(const es::StreamId& stream_id) override {
    std::lock_guard lk(mu_);
    return version_of(stream_id);
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    std::lock_guard lk(mu_);
    auto it = keys_.find(key);
    return it == keys_.end() ? std::nullopt : std::optional(it->second);
  }
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override {
    std::unique_lock lk(mu_);
    return appended_.wait_for(lk, timeout, [&] { return last() > after; });
  }

  Result<void> save_snapshot(const es::Snapshot& snapshot) override {
    std::lock_guard lk(mu_);
    snapshots_[snapshot.stream_id] = snapshot;
    return {};
  }
  std::optional<es::Snapshot> load_snapshot(const es::StreamId& stream_id) override {
    std::lock_guard lk(mu_);
    auto it = snapshots_.find(stream_id);
    return it == snapshots_.end() ? std::nullopt : std::optional(it->second);
  }
  Result<void> for_each_snapshot(const std::function<void(const es::Snapshot&)>& fn) override {
    for (const auto& [stream, s] : snapshots()) fn(s);  // a copy: fn may call the store
    return {};
  }
  std::map<es::StreamId, es::Snapshot> snapshots() {
    std::lock_guard lk(mu_);
    return snapshots_;
  }

  Result<es::Position> load_checkpoint(const std::string& name) override {
    std::lock_guard lk(mu_);
    auto it = checkpoints_.find(name);
    return it == checkpoints_.end() ? es::Position{0} : it->second;
  }
  Result<void> save_checkpoint(const std::string& name, es::Position position) override {
    std::lock_guard lk(mu_);
    auto& saved = checkpoints_[name];
    saved = std::max(saved, position);  // never backwards (the contract)
    return {};
  }

 private:
  es::Position last() const { return static_cast<es::Position>(log_.size()); }
  es::StreamVersion version_of(const es::StreamId& stream_id) const {
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? es::kNoStream : static_cast<es::StreamVersion>(it->second.size()) - 1;
  }
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  static Result<void> check_shape(const es::AppendRequest& req) {
    if (req.stream_id.empty() || req.events.empty()) return fail(Errc::invalid_argument, "an append needs a stream and events");
    for (std::size_t i = 0; i < req.events.size(); ++i) {
      if (req.events[i].event_id.empty() || req.events[i].type.empty())
        return fail(Errc::invalid_argument, "every event needs an event_id and a type");
      for (std::size_t j = 0; j < i; ++j)
        if (req.events[i].event_id == req.events[j].event_id)
          return fail(Errc::invalid_argument, "event ids within one append must differ");
    }
    return {};
  }

  // In the order every store checks: shape, stored ids (a retry gets the original
  // answer), idempotency key, expected version.
  Result<es::AppendResult> write(es::AppendRequest& req) {
    OF_RETURN_IF_ERROR(check_shape(req));
    std::vector<std::optional<es::StoredEventRef>> stored;
    for (const auto& e : req.events) {
      auto it = ids_.find(e.event_id);
      if (it == ids_.end()) {
        stored.emplace_back();
      } else {
        const auto& at = log_[static_cast<std::size_t>(it->second.value() - 1)];
        stored.emplace_back(es::StoredEventRef{at.stream_id, at.version, at.position});
      }
    }
    if (auto known = es::match_stored(req, stored)) return std::move(*known);
    if (req.idempotency && keys_.contains(req.idempotency->key))
      return fail(Errc::idempotency_key_reused, "idempotency key was already used");
    auto current = version_of(req.stream_id);
    if (!req.expected.matches(current)) {
      ++conflicts;
      return fail(es::version_conflict(req.stream_id, current, req.expected));
    }

    const auto n = static_cast<std::int64_t>(req.events.size());
    const es::AppendResult result{current + n, last() + n};
    if (auto& key = req.idempotency) {
      if (req.render_response) key->response = req.render_response(result);
      if (key->created_at_ms == 0) key->created_at_ms = now_ms;
      keys_[key->key] = *key;
    }
    auto& positions = streams_[req.stream_id];
    for (auto& e : req.events) {
      es::RecordedEvent r{e.event_id, req.stream_id, std::move(e.type), static_cast<es::StreamVersion>(positions.size()),
                          last() + 1, e.schema_version, std::move(e.data), std::move(e.metadata), now_ms};
      ids_[r.event_id] = r.position;
      positions.push_back(log_.size());
      log_.push_back(std::move(r));
    }
    if (req.on_staged) req.on_staged(result);
    return result;
  }

  std::mt19937_64& rng_;
  std::mutex mu_;
  std::condition_variable appended_;
  const es::UpcasterRegistry* upcasters_ = nullptr;
  std::vector<es::RecordedEvent> log_;
  std::unordered_map<es::StreamId, std::vector<std::size_t>> streams_;  // indexes into log_
  std::unordered_map<std::string, es::Position> ids_;
  std::unordered_map<std::string, es::IdempotencyRecord> keys_;
  std::map<es::StreamId, es::Snapshot> snapshots_;
  std::map<std::string, es::Position> checkpoints_;
};

class SimConnection final : public es::EventStore, public es::SnapshotStore {
 public:
  SimConnection(SimEventStore& store, std::mt19937_64& rng) : store_(store), rng_(rng) {}

  // Hold appends until land() (else they go straight to the store).
  bool hold_appends = false;

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    if (!hold_appends) return store_.append_async(std::move(req), std::move(done));
    in_flight_.push_back({std::move(req), std::move(done)});
  }
  std::size_t in_flight() const { return in_flight_.size(); }
  // The store takes the i-th append in flight and answers it.
  void land(std::size_t i) {
    auto a = std::move(in_flight_[i]);
    in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
    store_.append_async(std::move(a.req), std::move(a.done));
  }

  // The process died (its handler is gone): what it had sent lands or not, unanswered;
  // the snapshots it had not yet written are lost.
  void crash() {
    auto flights = std::move(in_flight_);
    in_flight_.clear();
    for (auto& a : flights)
      if (rng_() % 2) {
        a.req.on_staged = nullptr;  // it points into the dead handler
        store_.append_async(std::move(a.req), [](Result<es::AppendResult>) {});
      }
    std::lock_guard lk(mu_);
    snapshots_.clear();
  }
  // The process stopped cleanly (its handler is gone, its snapshot thread drained).
  void publish_snapshots() {
    std::lock_guard lk(mu_);
    for (auto& [stream, s] : snapshots_) (void)store_.save_snapshot(s);
    snapshots_.clear();
  }

  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& stream_id, es::StreamVersion from,
                                                     std::size_t max, es::Direction direction) override {
    return store_.read_stream(stream_id, from, max, direction);
  }
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    return store_.read_event(event_id);
  }
  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& filter,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    return store_.scan_all(from, max, filter, fn);
  }
  Result<es::Position> last_position() override { return store_.last_position(); }
  Result<es::StreamVersion> stream_version(const es::StreamId& stream_id) override {
    return store_.stream_version(stream_id);
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    return store_.find_idempotency(key);
  }
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override {
    return store_.wait_for_events(after, timeout);
  }

  // Called from the handler's snapshot thread.
  Result<void> save_snapshot(const es::Snapshot& snapshot) override {
    std::lock_guard lk(mu_);
    snapshots_[snapshot.stream_id] = snapshot;
    return {};
  }
  Result<void> for_each_snapshot(const std::function<void(const es::Snapshot&)>& fn) override {
    return store_.for_each_snapshot(fn);
  }
  std::optional<es::Snapshot> load_snapshot(const es::StreamId& stream_id) override {
    return store_.load_snapshot(stream_id);
  }

 private:
  struct Flight {
    es::AppendRequest req;
    es::AppendCallback done;
  };
  SimEventStore& store_;
  std::mt19937_64& rng_;
  std::vector<Flight> in_flight_;
  std::mutex mu_;
  std::map<es::StreamId, es::Snapshot> snapshots_;
};

}  // namespace orderflow::testing
