// A subscription: catch-up from a position, then live; at-least-once, in position
// order, never skipping. Runs on its own thread and hands events to its handler in
// batches. With a CheckpointStore it saves its position after each handled batch and
// resumes from there (handlers that keep their own checkpoint, in the same transaction
// as their writes, pass none and start from their own position).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "core/mutex.h"
#include "es/event_store.h"

namespace orderflow::es {

struct SubscriptionOptions {
  std::string name;        // the checkpoint's name
  Position from{1};       // where to start when there is no checkpoint
  EventFilter filter;
  std::size_t batch_size = 1000;
  // Longest sleep between looks at the log when caught up (the store wakes it sooner).
  std::chrono::milliseconds idle_wait{500};
  // Once caught up, a batch is read at most this often: what arrives meanwhile is handled
  // together. A handler whose every batch costs a commit then commits at most 1/interval
  // times a second, whatever the rate of small group commits in the store, at the price of
  // up to this much more lag. 0: every batch as soon as it can be read.
  std::chrono::milliseconds batch_interval{0};
  // What happens after the handler failed, for the failure's line on stderr.
  std::string after_failure = "it stops there until it is started again";
};

// Handles a batch in position order. `next` is the position to continue from. An error
// stops the subscription with the error visible in last_error(); start() resumes it.
//
// Failures are told through core/failures.h (component "subscription", what: the name,
// or the name and " read"): a failed read (retried in place with back-off), a failed
// handler or checkpoint save (it stops), and the first batch handled after either.
using BatchHandler = std::function<Result<void>(std::span<const RecordedEvent> events, Position next)>;

class Subscription {
 public:
  // `checkpoints` may be null. Both references must outlive the subscription.
  Subscription(EventStore& store, CheckpointStore* checkpoints, SubscriptionOptions options,
               BatchHandler handler);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Loads the checkpoint (if any) and starts the thread.
  Result<void> start();
  // Stops after the batch in hand. Idempotent.
  void stop();

  Position position() const { return position_.load(); }
  bool running() const { return running_.load(); }
  std::optional<Error> last_error() const EXCLUDES(mu_);

 private:
  void run();

  EventStore& store_;
  CheckpointStore* checkpoints_;
  SubscriptionOptions options_;
  BatchHandler handler_;

  std::atomic<Position> position_{Position{1}};
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  mutable Mutex mu_;
  std::optional<Error> last_error_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace orderflow::es
