#include "app/saga/saga_runner.h"

#include <algorithm>
#include <limits>

#include "core/failures.h"
#include "core/named_thread.h"
#include "core/time.h"

namespace orderflow::app::saga {

namespace {
constexpr const char* kCheckpoint = "saga";
constexpr std::int64_t kCheckpointEveryMs = 1000;
// The shortest sleep before a deadline: deadlines fire in rounds at most this often (the
// deadlines of steps that ended are only dropped when they come, one per step under load).
constexpr std::int64_t kRoundMs = 20;
}  // namespace

SagaRunner::SagaRunner(CommandHandler& commands, es::CheckpointStore* checkpoints, SagaOptions options,
                       es::LeaderLease* lease, std::function<void(bool)> on_lead)
    : commands_(commands),
      checkpoints_(checkpoints),
      options_(options),
      lookup_(commands),
      lease_(lease),
      on_lead_(std::move(on_lead)) {}

SagaRunner::~SagaRunner() { stop(); }

Result<void> SagaRunner::start() {
  if (!lease_) return run();
  lease_thread_.start("of-saga-lease", [this] { lease_loop(); });
  return {};
}

void SagaRunner::stop() {
  if (!lease_) return halt();
  lease_thread_.stop();
}

// Runs the saga while the lease is held. A lease that cannot be confirmed (the database
// is unreachable) counts as lost: the standby that can reach the database takes over.
void SagaRunner::lease_loop() {
  auto lead = [&](bool on) {
    if (on_lead_) on_lead_(on);
  };
  for (;;) {
    auto held = lease_->hold();
    const bool holds = held && *held;
    if (holds && !worker_.joinable()) {
      if (auto started = run()) {
        recovered("saga", "start");
        lead(true);
      } else {
        report_failure("saga", "start", started.error().message, "tried again at the next lease check");
        subscription_.reset();  // the store failed us: try again at the next check
        drop_bus_feed();
      }
    } else if (!holds && worker_.joinable()) {
      halt();
      lead(false);
    }
    if (lease_thread_.pause(kLeaseCheck)) break;
  }
  if (worker_.joinable()) {
    halt();
    lead(false);
  }
  lease_->release();
}

Result<void> SagaRunner::run() {
  auto& store = commands_.store();
  es::Position from{1};
  if (checkpoints_) {
    OF_ASSIGN_OR_RETURN(auto saved, checkpoints_->load_checkpoint(kCheckpoint));
    from = std::max(saved, es::Position{1});
  }
  OF_ASSIGN_OR_RETURN(auto horizon, store.last_position());
  {
    MutexLock lk(mu_);
    core_ = std::make_unique<FulfilmentSaga>(options_, lookup_, from, horizon);
  }
  next_position_ = from;
  {
    MutexLock lk(answers_mu_);
    stopping_ = false;
  }
  auto handler = [this](std::span<const es::RecordedEvent> events, es::Position next) {
    return on_batch(events, next);
  };
  if (bus_) {
    // The store up to the horizon, then the bus in the log's order (bus_saga_feed.h).
    consumer_ = bus_->open_consumer();
    {
      MutexLock lk(feed_mu_);
      bus_feed_ = std::make_unique<BusSagaFeed>(store, *consumer_, bus_->options, saga_categories(), from, horizon,
                                                handler);
      bus_feed_->start();
    }
  } else {
    es::SubscriptionOptions o;
    o.name = kCheckpoint;
    o.from = from;
    o.filter.categories = saga_categories();
    // The subscription keeps no checkpoint of its own: where to resume is the saga's
    // checkpoint(), which lags behind sagas still running.
    subscription_ = std::make_unique<es::Subscription>(store, nullptr, o, handler);
    if (auto r = subscription_->start(); !r) return r;
  }
  worker_ = named_thread("of-saga-worker", [this] { worker_loop(); });
  return {};
}

void SagaRunner::halt() {
  if (!worker_.joinable()) return;
  // The worker first: it starts the subscription again when it finds it stopped, and
  // doing so while the subscription was being stopped undid the stop (a quiet SIGTERM
  // then waited for ever on the subscription's thread).
  {
    MutexLock lk(answers_mu_);
    stopping_ = true;
  }
  answers_cv_.notify_all();
  worker_.join();
  if (subscription_) subscription_->stop();
  {
    MutexLock lk(feed_mu_);
    if (bus_feed_) bus_feed_->stop();
  }
  {
    // Their callbacks point at this runner.
    MutexLock lk(answers_mu_);
    answers_cv_.wait(answers_mu_, [&]() REQUIRES(answers_mu_) { return in_flight_ == 0; });
    answers_.clear();  // a later run() starts from the checkpoint, with a new core
  }
  save_checkpoint();
  drop_bus_feed();
  next_position_ = es::Position{0};
  if (lease_) {  // another process runs the saga now: this view would only go stale
    MutexLock lk(mu_);
    core_.reset();
  }
}

Result<void> SagaRunner::on_batch(std::span<const es::RecordedEvent> events, es::Position next) {
  std::vector<SagaCommand> commands;
  std::vector<StepEnded> ended;
  Result<void> folded;
  std::optional<std::int64_t> deadline;
  {
    MutexLock lk(mu_);
    folded = core_->on_events(events, next, now_unix_ms());
    commands = core_->take_commands();
    ended = core_->take_ended_steps();
    deadline = core_->next_deadline();
  }
  {
    // A deadline before the worker's next wake (a saga started or retried, or the replay
    // caught up): it wakes for it.
    MutexLock lk(answers_mu_);
    if (deadline && *deadline < worker_wakes_ms_) {
      sooner_ = true;
      answers_cv_.notify_all();
    }
  }
  issue(std::move(commands));
  report(ended);
  if (!folded)
    report_failure("saga", "fold", "events from position " + to_string(events.empty() ? next : events.front().position) +
                                       ": " + folded.error().message,
                   bus_ ? "the bus feed hands them again after a back-off"
                        : "the subscription stops and restarts from there within 1 s");
  else
    recovered("saga", "fold");
  if (folded) next_position_ = next;
  return folded;
}

void SagaRunner::issue(std::vector<SagaCommand> commands) {
  {
    MutexLock lk(answers_mu_);
    in_flight_ += commands.size();
  }
  // The facts the commands decide on, in one look-up (if it fails, each reads its own).
  auto known = KnownEvents::look_up(commands_.store(), commands);
  const KnownEvents* facts = known ? &*known : nullptr;
  for (auto& c : commands)
    dispatch(commands_, std::move(c), facts, [this](Completion done) {  // may run on the store's writer thread
      // Notified under the lock: halt() returns once in_flight_ is 0, and the runner (this
      // condition variable with it) may be destroyed right after; a notify after the unlock
      // could touch it then.
      MutexLock lk(answers_mu_);
      answers_.push_back(std::move(done));
      --in_flight_;
      answers_cv_.notify_all();
    });
}

void SagaRunner::report(const std::vector<StepEnded>& steps) {
  for (const auto& e : steps) {
    // A label value must outlive the family: to_string's names are string literals.
    const std::string_view name = to_string(e.step.name);
    step_durations_.at(name).observe(static_cast<double>(e.step.at_ms - e.started_ms) / 1000);
    if (!tracing_enabled() || !e.span.sampled()) continue;
    Span span;
    span.context = e.span;
    span.parent_span_id = e.parent_span_id;
    span.name = "saga " + std::string(name);
    span.start_unix_ns = e.started_ms * 1'000'000;
    span.end_unix_ns = e.step.at_ms * 1'000'000;
    span.error = e.step.status == StepStatus::failed;
    if (span.error) span.status_message = e.step.last_error.empty() ? "the step failed" : e.step.last_error;
    span.attributes = {{"order_id", e.order_id},
                       {"saga.step", std::string(name)},
                       {"saga.step.status", std::string(to_string(e.step.status))},
                       {"saga.step.attempts", std::int64_t{e.step.attempts}}};
    record_span(std::move(span));
  }
}

void SagaRunner::worker_loop() {
  auto& store = commands_.store();
  std::int64_t next_checkpoint = now_unix_ms() + kCheckpointEveryMs;
  for (;;) {
    // Asleep until an answer comes, the next deadline (but not within kRoundMs of the last
    // round) or checkpoint is due, or on_batch brings a sooner deadline: an idle saga does
    // not wake (it woke every 20 ms).
    {
      MutexLock lk(answers_mu_);
      worker_wakes_ms_ = std::numeric_limits<std::int64_t>::max();  // any new deadline is sooner
    }
    std::optional<std::int64_t> deadline;
    {
      MutexLock lk(mu_);
      deadline = core_->next_deadline();
    }
    std::vector<Completion> answers;
    {
      MutexLock lk(answers_mu_);
      const auto now = now_unix_ms();
      worker_wakes_ms_ = std::min(next_checkpoint, std::max(deadline.value_or(next_checkpoint), now + kRoundMs));
      const auto wait = std::chrono::milliseconds(std::max<std::int64_t>(0, worker_wakes_ms_ - now));
      answers_cv_.wait_for(answers_mu_, wait,
                           [&]() REQUIRES(answers_mu_) { return stopping_ || !answers_.empty() || sooner_; });
      if (stopping_) return;
      sooner_ = false;
      answers.swap(answers_);
    }
    for (auto& a : answers)
      if (a.error)  // its event, if any, is at or below the last position now
        if (auto last = store.last_position()) a.known_by = *last;
    const auto now = now_unix_ms();
    std::vector<SagaCommand> commands;
    std::vector<StepEnded> ended;
    {
      MutexLock lk(mu_);
      for (const auto& a : answers) core_->on_completion(a, now);
      deadlines_fired_.add(core_->on_tick(now));
      commands = core_->take_commands();
      ended = core_->take_ended_steps();
    }
    issue(std::move(commands));
    report(ended);
    if (now >= next_checkpoint) {
      next_checkpoint = now + kCheckpointEveryMs;
      save_checkpoint();
      // A batch that failed (a lookup could not read the store) stopped the subscription
      // (the bus feed hands it again by itself).
      if (subscription_ && !subscription_->running()) {
        if (auto restarted = subscription_->start(); !restarted)
          report_failure("saga", "subscription restart", restarted.error().message, "tried again in 1 s");
        else
          recovered("saga", "subscription restart");
      }
    }
  }
}

void SagaRunner::save_checkpoint() {
  if (!checkpoints_) return;
  es::Position p;
  {
    MutexLock lk(mu_);
    p = core_->checkpoint();
  }
  // A lost checkpoint only means a longer replay.
  if (auto saved = checkpoints_->save_checkpoint(kCheckpoint, p); !saved)
    report_failure("saga", "checkpoint", "position " + to_string(p) + ": " + saved.error().message,
                   "a restart replays from the last saved checkpoint; saved again in 1 s");
  else
    recovered("saga", "checkpoint");
}

std::optional<SagaView> SagaRunner::view(const std::string& order_id) {
  MutexLock lk(mu_);
  return core_ ? core_->view(order_id) : std::nullopt;
}

std::vector<SagaView> SagaRunner::list(std::optional<SagaState> state, std::size_t limit) {
  MutexLock lk(mu_);
  return core_ ? core_->list(state, limit) : std::vector<SagaView>{};
}

std::size_t SagaRunner::active() {
  MutexLock lk(mu_);
  return core_ ? core_->active() : 0;
}

std::map<SagaState, std::size_t> SagaRunner::count_by_state() {
  MutexLock lk(mu_);
  return core_ ? core_->count_by_state() : std::map<SagaState, std::size_t>{};
}

void SagaRunner::drop_bus_feed() {
  {
    MutexLock lk(feed_mu_);
    bus_feed_.reset();
  }
  consumer_.reset();  // leaves the group: a standby's consumer takes its partitions
}

std::optional<BusSagaFeedStatus> SagaRunner::bus_status() {
  if (!bus_) return std::nullopt;
  {
    MutexLock lk(feed_mu_);
    if (bus_feed_) return bus_feed_->status();
  }
  BusSagaFeedStatus s;
  s.bus = bus_->options.bus;
  s.consumer = bus_->options.consumer;
  s.state = lease_ ? "standby" : "stopped";
  return s;
}

Result<std::vector<bus_projector::BusDeadLetter>> SagaRunner::dead_letters() {
  if (!bus_ || !bus_->options.dead_letter_db) return std::vector<bus_projector::BusDeadLetter>{};
  bus_projector::BusDeadLetterTables tables(*bus_->options.dead_letter_db, bus_projector::kSagaDeadLetters);
  if (!dead_letter_tables_) {
    OF_RETURN_IF_ERROR(tables.create());
    dead_letter_tables_ = true;
  }
  OF_ASSIGN_OR_RETURN(auto out, tables.list());
  for (auto& d : out) d.consumer = bus_->options.consumer;
  return out;
}

void SagaRunner::redrive(std::string id, std::string actor,
                         std::function<void(Result<bus_projector::Redriven>)> done) {
  {
    MutexLock lk(feed_mu_);
    if (bus_feed_) return bus_feed_->redrive(std::move(id), std::move(actor), std::move(done));
  }
  done(fail(Errc::unavailable, lease_ ? "this process does not run the saga (another holds the saga lease): retry "
                                        "the dead letter there"
                                      : "the bus-fed saga is not running"));
}

std::optional<es::Position> SagaRunner::next_position() {
  auto next = next_position_.load();
  return next != 0 ? std::optional(next) : std::nullopt;
}

}  // namespace orderflow::app::saga
