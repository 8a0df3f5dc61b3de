// Runs the fulfilment saga in a server: a subscription feeds it the log, a worker thread
// feeds it command answers and the clock, and its commands go through the command
// handler. The core (FulfilmentSaga) is single-threaded; this class serialises every
// call into it under one lock, and never holds that lock while issuing commands (their
// answers may come inline) or inside the store's callbacks (which only queue).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "app/saga/fulfilment_saga.h"
#include "app/saga/saga_io.h"
#include "es/subscription.h"

namespace orderflow::app::saga {

class SagaRunner {
 public:
  // `checkpoints` may be null (always replay from the start). Both must outlive the runner.
  SagaRunner(CommandHandler& commands, es::CheckpointStore* checkpoints, SagaOptions options = {});
  ~SagaRunner();  // stop()
  SagaRunner(const SagaRunner&) = delete;
  SagaRunner& operator=(const SagaRunner&) = delete;

  // Loads the checkpoint and starts following the log from there.
  Result<void> start();
  // Stops following the log, waits for the answers of commands in flight (the store must
  // still be open) and saves the checkpoint. Idempotent.
  void stop();

  std::optional<SagaView> view(const std::string& order_id);
  std::vector<SagaView> list(std::optional<SagaState> state, std::size_t limit);
  std::size_t active();

 private:
  Result<void> on_batch(std::span<const es::RecordedEvent> events, es::Position next);
  void issue(std::vector<SagaCommand> commands);
  void worker_loop();
  void save_checkpoint();

  CommandHandler& commands_;
  es::CheckpointStore* checkpoints_;
  SagaOptions options_;
  HandlerLookup lookup_;

  std::mutex mu_;  // the core
  std::unique_ptr<FulfilmentSaga> core_;
  std::unique_ptr<es::Subscription> subscription_;

  std::mutex answers_mu_;
  std::condition_variable answers_cv_;  // an answer came, in_flight_ dropped, or stopping
  std::vector<Completion> answers_;
  std::size_t in_flight_ = 0;  // commands whose answer has not been queued yet
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace orderflow::app::saga
