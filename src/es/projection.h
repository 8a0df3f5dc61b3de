// Projections: read models folded from the global log, each on its own Subscription.
//
// A read model's writes and its position commit in one transaction (ReadModel::apply), so
// a crash (kill -9) replays at most uncommitted work and never counts an event twice. (A
// range of the log without any of the projection's events advances the live copy's
// position in memory only: replaying it after a crash applies nothing.) A
// projection that fails on a batch (its database full, the store unreadable) stops there
// with the error visible ("failed", last_error) — no event is skipped — and is subscribed
// again from its stored position after a back-off (100 ms doubling to 2 s while it keeps
// failing), so it resumes by itself once the cause is gone.
// A rebuild fills a fresh copy from position 1 while the live copy keeps serving and
// advancing, then swaps the copies atomically once the fresh one has caught up with it.
//
// Copies several processes share (Projection::shared) are written by one process at a
// time, the one that claimed the projection; the others follow: they poll the live copy's
// stored position (for read-your-writes waits and status; quicker while a wait is pending)
// and try to claim it, so one of them takes over when the writer goes. A writer then records ranges without the
// projection's events too, so that followers see it reach them.
//
// Thread safety: every method of ProjectionRunner may be called from any thread at once.
// ReadModel and Projection are called by the runner, one batch of one copy at a time.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/latency.h"
#include "core/mutex.h"
#include "es/event_store.h"
#include "es/subscription.h"

namespace orderflow::es {

// One copy of a projection's read model.
class ReadModel {
 public:
  virtual ~ReadModel() = default;
  // The position through which this copy has applied the log (0: nothing yet).
  virtual Result<Position> position() = 0;
  // The highest position of an event it applied: position(), unless it applied events out
  // of the log's order (a copy fed from a message bus).
  virtual Result<Position> highest_applied() { return position(); }
  // Applies `events` (position order) and records `through` as this copy's position, in
  // one transaction: on error nothing of the batch is visible.
  virtual Result<void> apply(std::span<const RecordedEvent> events, Position through) = 0;
};

// A named projection and the storage of its copies.
class Projection {
 public:
  virtual ~Projection() = default;
  virtual const std::string& name() const = 0;
  // Which events it folds (the subscription's filter).
  virtual EventFilter filter() const = 0;
  // The copy queries read; created empty the first time.
  virtual Result<std::unique_ptr<ReadModel>> open_live() = 0;
  // A new empty copy that queries do not see. Leftovers of an unfinished rebuild are gone.
  virtual Result<std::unique_ptr<ReadModel>> create_copy() = 0;
  // Atomically makes `copy` (from create_copy) the one queries read and drops the old one.
  virtual Result<void> promote(ReadModel& copy) = 0;

  // Whether other processes share the copies (then at most one of them writes them).
  virtual bool shared() const { return false; }
  // Claims the right to write the copies: true if this process holds it, always unless
  // shared. Cheap while held; lost when the process ends or loses its writer's connection
  // (its next write answers unavailable), then another process may claim it.
  virtual Result<bool> claim() { return true; }
  // For a process that does not hold the projection: the live copy's stored position; its
  // queries read the copy live now (the writer may have swapped copies).
  virtual Result<Position> follow() { return Position{0}; }
};

// following: another process writes the shared copies; this one serves them.
enum class ProjectionState { running, rebuilding, following, failed, stopped };
const char* to_string(ProjectionState state);

struct ProjectionStatus {
  std::string name;
  Position position{0};  // applied by the live copy
  std::int64_t lag = 0;  // the store's last position - position (0: caught up)
  Position rebuilt{0};   // while rebuilding: applied by the new copy
  ProjectionState state = ProjectionState::stopped;
  std::optional<std::string> last_error;
};

// Bucket bounds (milliseconds) of the lag histogram, for /metrics.
inline constexpr std::array<double, 12> kLagBucketsMs{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000};

// How soon events become visible in a projection's live copy: for each event it applies,
// the time its batch committed minus the event's recorded_at (when the store accepted the
// append, in whole milliseconds, so a figure may read up to 1 ms high). Events a
// rebuilding copy applies are not counted: their lag is the rebuild's age.
struct ProjectionLag {
  std::string name;
  std::size_t window = 0;  // recent events the percentiles cover (0: none applied live yet)
  double p50_ms = 0;
  double p99_ms = 0;
  // Since start, every event applied live: per kLagBucketsMs bucket (not cumulative; the
  // ones above the last bound only in count), how many, and their sum.
  std::array<std::uint64_t, kLagBucketsMs.size()> buckets{};
  std::uint64_t count = 0;
  double sum_ms = 0;
};

struct ProjectionRunnerOptions {
  // Large batches make catching up cheaper (one commit, and one write of each touched
  // entity and index page, per batch); live batches hold only what is new anyway.
  std::size_t batch_size = 5000;
  std::chrono::milliseconds idle_wait{200};
  // Live batches are read at most this often (SubscriptionOptions::batch_interval): under
  // load each projection commits ~1/interval times a second instead of once per group
  // commit of the store, which cut the read-model database's writes (every commit rewrites
  // the pages it touched) by much more than the lag it adds.
  std::chrono::milliseconds batch_interval{10};
  // How often a shared projection this process does not write is looked at: its stored
  // position (every 5 ms while a read-your-writes wait is pending), and whether it can be
  // claimed.
  std::chrono::milliseconds follow_interval{50};
  // false: shared projections are only followed, never claimed (a process that serves
  // queries and leaves the folding to others). Other projections are always written.
  bool claim = true;
};

class ProjectionRunner {
 public:
  // The store and the projections must outlive the runner.
  ProjectionRunner(EventStore& store, std::vector<Projection*> projections, ProjectionRunnerOptions options = {});
  ~ProjectionRunner();
  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  // Opens each live copy and subscribes it from its position + 1 (a shared projection
  // another process holds is followed instead).
  Result<void> start();
  // Stops every subscription after the batch in hand; pending waits answer false. Idempotent.
  void stop();

  // Starts rebuilding `name` into a fresh copy (not_found if no such projection;
  // invalid_state if another process holds it). A rebuild already under way goes on; a
  // failed projection resumes on the fresh copy.
  Result<void> rebuild(const std::string& name);

  std::vector<ProjectionStatus> status();
  // Per projection, in the order of status(). The percentiles cover the last
  // kLagWindow events each applied live.
  std::vector<ProjectionLag> lags();
  static constexpr std::size_t kLagWindow = 65536;
  // The position `name` has applied (0 if unknown).
  Position position(const std::string& name) const;

  // Calls done(true) once `name` has applied `position` (at once if it has), done(false)
  // when `deadline` passes or the runner stops. `done` runs exactly once, on any thread,
  // possibly before when_applied returns; it must not block.
  void when_applied(const std::string& name, Position position, std::chrono::steady_clock::time_point deadline,
                    std::function<void(bool)> done);

 private:
  // Projections' failed copies are subscribed again after kFirstRetry, backing off to kLongestRetry.
  static constexpr std::chrono::milliseconds kFirstRetry{100};
  static constexpr std::chrono::milliseconds kLongestRetry{2000};
  struct Slot {
    Projection* projection;
    std::size_t index;
    std::atomic<Position> position{Position{0}};  // applied by the live copy; only grows

    // One batch at a time across the slot's copies; guards the members below.
    Mutex mu;
    std::unique_ptr<ReadModel> live GUARDED_BY(mu), building GUARDED_BY(mu);
    std::unique_ptr<Subscription> live_sub GUARDED_BY(mu), building_sub GUARDED_BY(mu);
    // A live copy replaced by a rebuild: its subscription ends at its next batch and is
    // joined outside `mu` (its thread may be waiting for `mu`).
    std::vector<std::unique_ptr<ReadModel>> retired GUARDED_BY(mu);
    std::vector<std::unique_ptr<Subscription>> retired_subs GUARDED_BY(mu);
    // Another process holds the (shared) projection: this one follows it.
    bool following GUARDED_BY(mu) = false;
    std::optional<Error> follow_error GUARDED_BY(mu);  // of the last look, while following
    // A copy whose subscription stopped on an error is subscribed again at retry_at,
    // backing off while it fails before applying anything (see retry()).
    std::chrono::steady_clock::time_point retry_at GUARDED_BY(mu){};
    std::chrono::milliseconds retry_backoff GUARDED_BY(mu) = kFirstRetry;
    Position retried_at GUARDED_BY(mu){0};  // slot.position when last retried
    std::optional<Error> restart_error GUARDED_BY(mu);  // of the last retry, if it failed

    // Guards the lag figures apart from `mu`, so reading them never waits for a batch.
    Mutex lag_mu;
    RecentLatencies recent_lag GUARDED_BY(lag_mu){kLagWindow};
    ProjectionLag lag_totals GUARDED_BY(lag_mu);
  };
  struct Waiter {
    std::size_t slot;
    Position position;
    std::function<void(bool)> done;
  };

  Result<void> subscribe(Slot& slot, std::unique_ptr<ReadModel> model, bool live) REQUIRES(slot.mu);
  Result<void> claim_or_follow(Slot& slot) REQUIRES(slot.mu);
  Result<void> replace_if_ahead(Slot& slot, std::unique_ptr<ReadModel>& live) REQUIRES(slot.mu);
  Result<void> follow(Slot& slot) REQUIRES(slot.mu);
  void watch(Slot& slot, bool claim) EXCLUDES(slot.mu);
  void retry(Slot& slot) EXCLUDES(slot.mu);
  void watch_loop() EXCLUDES(watch_mu_);
  Result<void> apply(Slot& slot, ReadModel* model, std::span<const RecordedEvent> events, Position through)
      EXCLUDES(slot.mu);
  void advanced(std::size_t slot, Position position) EXCLUDES(waiters_mu_);
  static void trace_applied(Slot& slot, std::span<const RecordedEvent> events, std::int64_t started_ns);
  static void record_lag(Slot& slot, std::span<const RecordedEvent> events) EXCLUDES(slot.lag_mu);
  void expire_loop() EXCLUDES(waiters_mu_);
  Slot* find(const std::string& name) const;

  EventStore& store_;
  ProjectionRunnerOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;

  // Read-your-writes waiters, by deadline; the expiry thread answers late ones.
  Mutex waiters_mu_;
  CondVar waiters_cv_;
  std::multimap<std::chrono::steady_clock::time_point, Waiter> waiters_ GUARDED_BY(waiters_mu_);
  bool stopping_ GUARDED_BY(waiters_mu_) = false;
  std::thread expiry_;

  // Retries failed copies; follows and claims shared projections.
  Mutex watch_mu_;
  CondVar watch_cv_;
  bool watch_stop_ GUARDED_BY(watch_mu_) = false;
  bool watch_waiter_ GUARDED_BY(watch_mu_) = false;  // a wait began
  std::thread watcher_;
};

}  // namespace orderflow::es
