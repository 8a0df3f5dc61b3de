#include "es/projection.h"

#include <atomic>

#include "core/failures.h"
#include "core/named_thread.h"
#include "core/trace.h"

namespace orderflow::es {

const char* to_string(ProjectionState state) {
  switch (state) {
    case ProjectionState::running: return "running";
    case ProjectionState::rebuilding: return "rebuilding";
    case ProjectionState::following: return "following";
    case ProjectionState::failed: return "failed";
    case ProjectionState::stopped: return "stopped";
  }
  return "stopped";
}

ProjectionRunner::ProjectionRunner(EventStore& store, std::vector<Projection*> projections,
                                   ProjectionRunnerOptions options)
    : store_(store), options_(options) {
  for (auto* p : projections) {
    auto slot = std::make_unique<Slot>();
    slot->projection = p;
    slot->index = slots_.size();
    slots_.push_back(std::move(slot));
  }
  expiry_ = named_thread("of-proj-expiry", [this] { expire_loop(); });
}

ProjectionRunner::~ProjectionRunner() {
  stop();
  {
    MutexLock lk(waiters_mu_);
    stopping_ = true;
  }
  waiters_cv_.notify_all();
  expiry_.join();
}

Result<void> ProjectionRunner::start() {
  for (auto& slot : slots_) {
    MutexLock lk(slot->mu);
    if (auto r = claim_or_follow(*slot); !r) return r;
  }
  if (!watcher_.joinable()) watcher_ = named_thread("of-proj-watch", [this] { watch_loop(); });
  return {};
}

// Holding slot.mu.
Result<void> ProjectionRunner::claim_or_follow(Slot& slot) {
  OF_ASSIGN_OR_RETURN(auto claimed,
                      options_.claim || !slot.projection->shared() ? slot.projection->claim() : Result<bool>(false));
  if (!claimed) return follow(slot);
  OF_ASSIGN_OR_RETURN(auto live, slot.projection->open_live());
  if (auto r = replace_if_ahead(slot, live); !r) return r;
  // Following until the subscription runs: if it cannot start (the database went away
  // again), the watcher tries once more at its next look instead of leaving it stopped.
  if (auto r = subscribe(slot, std::move(live), true); !r) return r;
  slot.following = false;
  return {};
}

// Holding slot.mu. A live copy past the end of the log was built from another log (a
// backup of the events restored beside newer read models, another data directory):
// nothing in it can be trusted, and followed on it would skip the log's next events. It
// is replaced, before anything reads it, by an empty copy built again from the log. (The
// store acknowledges an event only once it is durable, and a read model applies only
// acknowledged events, so no crash leaves a read model ahead of its own log.)
Result<void> ProjectionRunner::replace_if_ahead(Slot& slot, std::unique_ptr<ReadModel>& live) {
  OF_ASSIGN_OR_RETURN(auto at, live->highest_applied());
  OF_ASSIGN_OR_RETURN(auto last, store_.last_position());
  if (at <= last) return {};
  const auto& name = slot.projection->name();
  report_failure("projections", name,
                 "its read model is at position " + to_string(at) + " but the log ends at " + to_string(last) +
                     ": it was built from another log (a restored backup?)",
                 "replaced by an empty copy built again from the log");
  OF_ASSIGN_OR_RETURN(auto fresh, slot.projection->create_copy());
  if (auto r = slot.projection->promote(*fresh); !r) return r;
  live = std::move(fresh);
  recovered("projections", name, "rebuilding from position 1");
  return {};
}

// Holding slot.mu: takes the live copy's stored position.
Result<void> ProjectionRunner::follow(Slot& slot) {
  slot.following = true;
  OF_ASSIGN_OR_RETURN(auto stored, slot.projection->follow());
  if (stored > slot.position) {
    slot.position = stored;
    advanced(slot.index, stored);
  }
  return {};
}

// While a read-your-writes wait is pending, followed positions are looked at this often.
constexpr std::chrono::milliseconds kWaitedFollowInterval{5};

void ProjectionRunner::watch_loop() {
  using Clock = std::chrono::steady_clock;
  auto next_claim = Clock::now() + options_.follow_interval;
  for (;;) {
    const bool claim = Clock::now() >= next_claim;
    if (claim) next_claim = Clock::now() + options_.follow_interval;
    bool shared = false;
    for (auto& slot : slots_) {
      if (slot->projection->shared()) {
        shared = true;
        watch(*slot, claim);
      }
      retry(*slot);
    }
    bool waited = false;
    if (shared) {
      MutexLock lk(waiters_mu_);
      waited = !waiters_.empty();
    }
    MutexLock lk(watch_mu_);
    watch_cv_.wait_for(watch_mu_, waited ? kWaitedFollowInterval : options_.follow_interval,
                       [this]() REQUIRES(watch_mu_) { return watch_stop_ || watch_waiter_; });
    if (watch_stop_) return;
    watch_waiter_ = false;
  }
}

// Holding slot.mu: is this a writer of a shared projection whose subscription stopped
// unavailable? Its connection, and the claim with it, was lost: it is to follow.
static bool lost_claim(const Projection& projection, const Subscription* live_sub) {
  if (!projection.shared() || !live_sub || live_sub->running()) return false;
  const auto error = live_sub->last_error();
  return error && error->code == Errc::unavailable;
}

// A follower looks at the stored position and, every follow_interval (`claim`), tries to
// claim the projection. A writer that lost its claim follows again until it claims the
// projection anew.
void ProjectionRunner::watch(Slot& slot, bool claim) {
  // Destroyed in reverse: the subscriptions (joined outside `mu`) before their models.
  std::vector<std::unique_ptr<ReadModel>> models;
  std::vector<std::unique_ptr<Subscription>> subs;
  MutexLock lk(slot.mu);
  if (!slot.following) {
    if (!lost_claim(*slot.projection, slot.live_sub.get())) return;
    for (auto* sub : {&slot.live_sub, &slot.building_sub})
      if (*sub) subs.push_back(std::move(*sub));
    for (auto& sub : slot.retired_subs) subs.push_back(std::move(sub));
    slot.retired_subs.clear();
    for (auto* model : {&slot.live, &slot.building})
      if (*model) models.push_back(std::move(*model));
    for (auto& model : slot.retired) models.push_back(std::move(model));
    slot.retired.clear();
    slot.following = true;
  }
  auto r = claim ? claim_or_follow(slot) : follow(slot);
  slot.follow_error = r ? std::nullopt : std::optional<Error>(r.error());
}

// A copy (not followed) whose subscription stopped on an error (the read-model database
// full, a batch the store could not read) is subscribed again from its stored position:
// kFirstRetry after it stopped, twice as long each time it stops again before the
// projection moved on, up to kLongestRetry. Its status shows it failed meanwhile, with
// the error.
void ProjectionRunner::retry(Slot& slot) {
  std::vector<std::unique_ptr<Subscription>> stopped;  // joined outside `mu`, after it
  MutexLock lk(slot.mu);
  if (slot.following) return;
  const auto now = std::chrono::steady_clock::now();
  for (const bool live : {true, false}) {
    auto& sub = live ? slot.live_sub : slot.building_sub;
    auto& model = live ? slot.live : slot.building;
    // A copy without a subscription is one whose last restart failed.
    if (!model || (sub && (sub->running() || !sub->last_error()))) continue;
    if (slot.retry_at == std::chrono::steady_clock::time_point{}) {
      if (slot.position > slot.retried_at) slot.retry_backoff = kFirstRetry;  // it had worked since
      slot.retry_at = now + slot.retry_backoff;
      continue;
    }
    if (now < slot.retry_at) continue;
    slot.retry_at = {};
    slot.retried_at = slot.position;
    slot.retry_backoff = std::min(slot.retry_backoff * 2, kLongestRetry);
    if (sub) stopped.push_back(std::move(sub));
    auto r = subscribe(slot, std::move(model), live);
    slot.restart_error = r ? std::nullopt : std::optional<Error>(r.error());
    if (!r) {
      sub.reset();  // started again at the next try
      report_failure("projections", slot.projection->name(), "restarting after a failure: " + r.error().message,
                     "tried again in " + std::to_string(slot.retry_backoff.count()) + " ms");
    } else {
      recovered("projections", slot.projection->name(), "subscribed again");
    }
  }
}

// Holding slot.mu. The model is kept in the slot even if subscribing fails, so retry()
// can try again.
Result<void> ProjectionRunner::subscribe(Slot& slot, std::unique_ptr<ReadModel> model, bool live) {
  auto* m = model.get();
  (live ? slot.live : slot.building) = std::move(model);
  OF_ASSIGN_OR_RETURN(auto from, m->position());
  SubscriptionOptions o;
  o.name = slot.projection->name();
  o.from = from + 1;
  o.filter = slot.projection->filter();
  o.batch_size = options_.batch_size;
  o.idle_wait = options_.idle_wait;
  o.batch_interval = options_.batch_interval;
  o.after_failure = "the projection is subscribed again from its read model's position, after 100 ms and backing "
                    "off to 2 s while it fails";
  auto sub = std::make_unique<Subscription>(
      store_, nullptr, std::move(o),
      [this, &slot, m](std::span<const RecordedEvent> events, Position next) { return apply(slot, m, events, next - 1); });
  // The live position only grows: a live copy subscribed again may have advanced past its
  // stored position in memory (ranges without its events).
  if (live && from > slot.position) {
    slot.position = from;
    advanced(slot.index, from);
  }
  auto& kept = live ? slot.live_sub : slot.building_sub;
  kept = std::move(sub);
  return kept->start();
}

Result<void> ProjectionRunner::apply(Slot& slot, ReadModel* model, std::span<const RecordedEvent> events,
                                     Position through) {
  MutexLock lk(slot.mu);
  const bool live = model == slot.live.get();
  if (!live && model != slot.building.get()) return fail(Errc::unavailable, "replaced by a rebuilt copy");
  if (live && events.empty() && !slot.projection->shared()) {
    // The range held none of this projection's events: it advances in memory only, and
    // spares the read-model database a write per commit of the store. The stored
    // position stays behind; after a restart the range is scanned again, still empty.
    // (Shared copies record it: followers know only the stored position.)
    slot.position = through;
    advanced(slot.index, through);
    return {};
  }
  const auto started_ns = live && tracing_enabled() ? now_unix_ns() : 0;
  if (auto r = model->apply(events, through); !r) return r;
  if (live) record_lag(slot, events);
  if (started_ns) trace_applied(slot, events, started_ns);
  if (!live) {
    // Swap only once the fresh copy is at least where the live one is, so a query never
    // sees the read model go back in time.
    if (through < slot.position) return {};
    if (auto r = slot.projection->promote(*model); !r) return r;
    slot.retired.push_back(std::move(slot.live));
    if (slot.live_sub) slot.retired_subs.push_back(std::move(slot.live_sub));
    slot.live = std::move(slot.building);
    slot.live_sub = std::move(slot.building_sub);
  }
  slot.position = through;
  advanced(slot.index, through);
  return {};
}

void ProjectionRunner::stop() {
  {
    MutexLock lk(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  for (auto& slot : slots_) {
    std::vector<std::unique_ptr<Subscription>> subs;
    {
      MutexLock lk(slot->mu);
      for (auto* s : {&slot->live_sub, &slot->building_sub})
        if (*s) subs.push_back(std::move(*s));
      for (auto& s : slot->retired_subs) subs.push_back(std::move(s));
      slot->retired_subs.clear();
    }
    subs.clear();  // joins, outside `mu`
  }
  std::multimap<std::chrono::steady_clock::time_point, Waiter> pending;
  {
    MutexLock lk(waiters_mu_);
    pending.swap(waiters_);
  }
  for (auto& [_, w] : pending) w.done(false);
}

Result<void> ProjectionRunner::rebuild(const std::string& name) {
  auto* slot = find(name);
  if (!slot) return fail(Errc::not_found, "no projection " + name);
  std::vector<std::unique_ptr<Subscription>> finished;
  Result<void> started;
  {
    MutexLock lk(slot->mu);
    finished.swap(slot->retired_subs);
    if (slot->following) {
      started = fail(Errc::invalid_state, "projection " + name +
                                              " is written by another orderflow process on this database: rebuild it "
                                              "there, or once that process has stopped");
    } else if (!slot->building) {
      auto copy = slot->projection->create_copy();
      started = copy ? subscribe(*slot, std::move(*copy), false) : Result<void>(copy.error());
    }
  }
  return started;
}

// A span per event, under the event's (a span event would need its parent still open: the
// request or saga step that appended it has ended, and been exported, by now). The batch's
// events share its start and end: they were applied in one transaction.
void ProjectionRunner::trace_applied(Slot& slot, std::span<const RecordedEvent> events, std::int64_t started_ns) {
  const auto ended_ns = now_unix_ns();
  for (const auto& e : events) {
    auto parent = traceparent_in_metadata(e.metadata);
    if (!parent || !parent->sampled()) continue;
    Span span;
    span.context = child_span(parent);
    span.parent_span_id = parent->parent_id;
    span.name = "project " + slot.projection->name();
    span.start_unix_ns = started_ns;
    span.end_unix_ns = ended_ns;
    span.attributes = {{"projection", slot.projection->name()},
                       {"event.type", e.type},
                       {"event.stream_id", e.stream_id.str()},
                       {"event.position", e.position.value()}};
    record_span(std::move(span));
  }
}

void ProjectionRunner::record_lag(Slot& slot, std::span<const RecordedEvent> events) {
  using namespace std::chrono;
  const auto committed_us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  MutexLock lk(slot.lag_mu);
  auto& totals = slot.lag_totals;
  for (const auto& e : events) {
    const auto us = std::max<std::int64_t>(0, committed_us - e.recorded_at_ms * 1000);
    slot.recent_lag.record(microseconds(us));
    const double ms = static_cast<double>(us) / 1000;
    std::size_t i = 0;
    while (i < kLagBucketsMs.size() && ms > kLagBucketsMs[i]) ++i;
    if (i < kLagBucketsMs.size()) ++totals.buckets[i];
    ++totals.count;
    totals.sum_ms += ms;
  }
}

std::vector<ProjectionLag> ProjectionRunner::lags() {
  std::vector<ProjectionLag> out;
  for (auto& slot : slots_) {
    MutexLock lk(slot->lag_mu);
    ProjectionLag lag = slot->lag_totals;
    const RecentLatencies recent = slot->recent_lag;  // sorted below, outside the lock
    lk.unlock();
    lag.name = slot->projection->name();
    lag.window = recent.count();
    const auto [p50, p99] = recent.percentiles_us(std::array{0.5, 0.99});
    lag.p50_ms = p50 / 1000.0;
    lag.p99_ms = p99 / 1000.0;
    out.push_back(std::move(lag));
  }
  return out;
}

std::vector<ProjectionStatus> ProjectionRunner::status() {
  auto last = store_.last_position();
  std::vector<ProjectionStatus> out;
  for (auto& slot : slots_) {
    ProjectionStatus s;
    s.name = slot->projection->name();
    s.position = slot->position;
    s.lag = last ? std::max<std::int64_t>(0, *last - s.position) : 0;
    MutexLock lk(slot->mu);
    std::optional<Error> error;
    if (slot->building_sub) {
      error = slot->building_sub->last_error();
      s.rebuilt = slot->building_sub->position() - 1;
    }
    if (!error && slot->live_sub) error = slot->live_sub->last_error();
    if (!error) error = slot->restart_error;
    if (error) s.last_error = error->message;
    if (slot->following || lost_claim(*slot->projection, slot->live_sub.get())) {
      s.state = ProjectionState::following;  // a lost claim: until the next look
      if (slot->follow_error) s.last_error = slot->follow_error->message;
    } else if (slot->building_sub)
      s.state = slot->building_sub->running() ? ProjectionState::rebuilding : ProjectionState::failed;
    else if (slot->live_sub && slot->live_sub->running())
      s.state = ProjectionState::running;
    else
      s.state = error ? ProjectionState::failed : ProjectionState::stopped;
    out.push_back(std::move(s));
  }
  return out;
}

Position ProjectionRunner::position(const std::string& name) const {
  auto* slot = find(name);
  return slot ? slot->position.load() : Position{0};
}

ProjectionRunner::Slot* ProjectionRunner::find(const std::string& name) const {
  for (auto& slot : slots_)
    if (slot->projection->name() == name) return slot.get();
  return nullptr;
}

void ProjectionRunner::when_applied(const std::string& name, Position position,
                                    std::chrono::steady_clock::time_point deadline, std::function<void(bool)> done) {
  auto* slot = find(name);
  if (!slot) return done(false);
  if (slot->position >= position) return done(true);
  // Taken by the waiters when it waits; otherwise answered below.
  std::optional<std::function<void(bool)>> answer_now(std::move(done));
  {
    MutexLock lk(waiters_mu_);
    // advanced() stores the position before it takes this lock: no wake-up is lost.
    if (slot->position < position && !stopping_) {
      const bool earliest = waiters_.empty() || deadline < waiters_.begin()->first;
      waiters_.emplace(deadline, Waiter{slot->index, position, std::move(*answer_now)});
      answer_now.reset();
      if (earliest) waiters_cv_.notify_one();
    }
  }
  // Answered outside the lock, as every other answer is: `done` may ask again.
  if (answer_now) return (*answer_now)(slot->position >= position);
  // A follower looks at the stored position at once, and often while it is waited for.
  {
    MutexLock lk(watch_mu_);
    watch_waiter_ = true;
  }
  watch_cv_.notify_one();
}

void ProjectionRunner::advanced(std::size_t slot, Position position) {
  std::vector<std::function<void(bool)>> ready;
  {
    MutexLock lk(waiters_mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.slot == slot && it->second.position <= position) {
        ready.push_back(std::move(it->second.done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& done : ready) done(true);
}

void ProjectionRunner::expire_loop() {
  MutexLock lk(waiters_mu_);
  while (!stopping_) {
    if (waiters_.empty()) {
      waiters_cv_.wait(waiters_mu_);
      continue;
    }
    auto first = waiters_.begin()->first;
    if (std::chrono::steady_clock::now() < first) {
      waiters_cv_.wait_until(waiters_mu_, first);
      continue;
    }
    auto done = std::move(waiters_.begin()->second.done);
    waiters_.erase(waiters_.begin());
    lk.unlock();
    done(false);
    lk.lock();
  }
}

}  // namespace orderflow::es
