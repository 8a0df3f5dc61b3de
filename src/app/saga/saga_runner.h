// Runs the fulfilment saga in a server: a subscription feeds it the log (or, with
// feed_from_bus(), a BusSagaFeed the relay's messages in the log's order), a worker thread
// feeds it command answers and the clock, and its commands go through the command
// handler. The core (FulfilmentSaga) is single-threaded; this class serialises every
// call into it under one lock, and never holds that lock while issuing commands (their
// answers may come inline) or inside the store's callbacks (which only queue).
//
// With a leader lease (several processes on one PostgreSQL store), the saga runs only
// while this process holds the lease: a thread checks it every kLeaseCheck, starts the
// saga from its checkpoint when the lease is taken, and stops it when it is lost. A
// standby therefore takes over within about one check of the holder's death, resuming
// from the holder's last checkpoint exactly as a restart would.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "core/mutex.h"
#include "app/saga/bus_saga_feed.h"
#include "app/saga/fulfilment_saga.h"
#include "app/saga/saga_io.h"
#include "core/metric.h"
#include "core/stoppable_thread.h"
#include "es/leader_lease.h"
#include "es/subscription.h"

namespace orderflow::app::saga {

// A saga fed from the bus: how to open its consumer (once each time this process starts
// running the saga; closed when it stops, so a standby's group takes the partitions over)
// and the feed's options.
struct SagaBus {
  std::function<std::unique_ptr<es::BusConsumer>()> open_consumer;
  BusSagaFeedOptions options;
};

// Saga step durations, seconds: from the event that started a step to the one that ended
// it (10 ms to 2 min: a step waits on the store, the saga's lag and its retries).
inline constexpr std::array<double, 12> kStepSecondsBounds{0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                           1,    2.5,   5,    10,  30,   120};
using StepDurations = Family<std::string_view, Histogram<kStepSecondsBounds>>;

// Fed from the bus, it is also the source of the bus-fed saga's dead letters
// (app/dead_letters.h): listed from the read-model database by any process, retried by the
// one running the saga (BusSagaFeed::redrive).
class SagaRunner final : public bus_projector::BusDeadLetterSource {
 public:
  // How often a runner with a lease checks that it (still) holds it.
  static constexpr auto kLeaseCheck = std::chrono::milliseconds(500);

  // `checkpoints` may be null (always replay from the start). `lease` may be null (run
  // whenever started); `on_lead(true/false)` is told, from the lease thread, when this
  // process starts or stops running the saga. All must outlive the runner.
  SagaRunner(CommandHandler& commands, es::CheckpointStore* checkpoints, SagaOptions options = {},
             es::LeaderLease* lease = nullptr, std::function<void(bool)> on_lead = {});
  ~SagaRunner();  // stop()
  SagaRunner(const SagaRunner&) = delete;
  SagaRunner& operator=(const SagaRunner&) = delete;

  // The saga is fed from the bus instead of the log (bus_saga_feed.h). Before start().
  void feed_from_bus(SagaBus bus) { bus_ = std::move(bus); }

  // Loads the checkpoint and starts following the log from there; with a lease, starts
  // the thread that does so whenever this process holds it.
  Result<void> start();
  // Stops following the log, waits for the answers of commands in flight (the store must
  // still be open) and saves the checkpoint; releases the lease. Idempotent.
  void stop();

  std::optional<SagaView> view(const std::string& order_id);
  std::vector<SagaView> list(std::optional<SagaState> state, std::size_t limit);
  std::size_t active();
  // For /metrics: sagas by state (FulfilmentSaga::count_by_state), and the position the
  // saga reads next (nullopt while this process does not run it).
  std::map<SagaState, std::size_t> count_by_state();
  std::optional<es::Position> next_position();
  // Durations of the steps that ended (by step name) and deadlines fired, since this
  // process started.
  const StepDurations& step_durations() const { return step_durations_; }
  std::uint64_t deadlines_fired() const { return deadlines_fired_.value(); }
  // Fed from the bus: the feed's status (state "standby" while this process does not run
  // the saga); nullopt when the saga tails the log.
  std::optional<BusSagaFeedStatus> bus_status() EXCLUDES(feed_mu_);
  // Fed from the bus with a dead_letter_db: its dead letters, held and retried, oldest
  // first (none otherwise).
  Result<std::vector<bus_projector::BusDeadLetter>> dead_letters() override;
  // Retried by the feed (BusSagaFeed::redrive); unavailable while this process does not run
  // the saga (another holds the lease: retry it there).
  void redrive(std::string id, std::string actor, std::function<void(Result<bus_projector::Redriven>)> done)
      EXCLUDES(feed_mu_) override;

 private:
  Result<void> run();   // start() without a lease
  void halt();          // stop() without a lease
  void lease_loop();
  Result<void> on_batch(std::span<const es::RecordedEvent> events, es::Position next);
  void issue(std::vector<SagaCommand> commands);
  // Counts ended steps in step_durations_ and records their spans (core/trace.h).
  void report(const std::vector<StepEnded>& steps);
  void worker_loop();
  void save_checkpoint();
  void drop_bus_feed() EXCLUDES(feed_mu_);

  CommandHandler& commands_;
  es::CheckpointStore* checkpoints_;
  SagaOptions options_;
  HandlerLookup lookup_;

  Mutex mu_;  // the core
  std::unique_ptr<FulfilmentSaga> core_ GUARDED_BY(mu_);
  std::unique_ptr<es::Subscription> subscription_;  // the lease thread's (or start()'s)
  std::optional<SagaBus> bus_;
  std::unique_ptr<es::BusConsumer> consumer_;  // fed from the bus: of the feed below
  Mutex feed_mu_;  // the feed's lifetime, against bus_status()
  std::unique_ptr<BusSagaFeed> bus_feed_ GUARDED_BY(feed_mu_);
  std::atomic<bool> dead_letter_tables_{false};  // created (for dead_letters())
  std::atomic<es::Position> next_position_{es::Position{0}};  // 0: not running
  StepDurations step_durations_;
  Counter deadlines_fired_;

  Mutex answers_mu_;
  CondVar answers_cv_;  // an answer came, in_flight_ dropped, a deadline came sooner, or stopping
  std::vector<Completion> answers_ GUARDED_BY(answers_mu_);
  std::size_t in_flight_ GUARDED_BY(answers_mu_) = 0;  // commands whose answer has not been queued yet
  bool stopping_ GUARDED_BY(answers_mu_) = false;
  // When the worker wakes by itself next (unix ms; the largest value while it is looking
  // for its next deadline), and whether a deadline before it came meanwhile.
  std::int64_t worker_wakes_ms_ GUARDED_BY(answers_mu_) = 0;
  bool sooner_ GUARDED_BY(answers_mu_) = false;
  std::thread worker_;

  es::LeaderLease* lease_;
  std::function<void(bool)> on_lead_;
  StoppableThread lease_thread_;
};

}  // namespace orderflow::app::saga
