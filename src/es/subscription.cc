#include "es/subscription.h"

#include <future>
#include <vector>

#include "core/failures.h"
#include "core/named_thread.h"

namespace orderflow::es {

Subscription::Subscription(EventStore& store, CheckpointStore* checkpoints,
                           SubscriptionOptions options, BatchHandler handler)
    : store_(store), checkpoints_(checkpoints), options_(std::move(options)), handler_(std::move(handler)) {}

Subscription::~Subscription() { stop(); }

std::optional<Error> Subscription::last_error() const {
  MutexLock lk(mu_);
  return last_error_;
}

Result<void> Subscription::start() {
  stop();
  Position from = options_.from;
  if (checkpoints_) {
    OF_ASSIGN_OR_RETURN(auto saved, checkpoints_->load_checkpoint(options_.name));
    if (saved > 0) from = saved + 1;
  }
  position_ = from;
  {
    MutexLock lk(mu_);
    last_error_.reset();
  }
  stop_ = false;
  running_ = true;
  thread_ = named_thread("of-sub-" + options_.name, [this] {
    run();
  });
  return {};
}

void Subscription::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

namespace {

struct Fetched {
  Result<Position> next = Position{0};
  std::vector<RecordedEvent> events;
};

}  // namespace

void Subscription::run() {
  auto fetch = [this](Position from) {
    Fetched f;
    f.next = store_.scan_live(from, options_.batch_size, options_.filter,
                              [&](const RecordedEvent& e) { f.events.push_back(e); });
    return f;
  };
  // While the handler works on a full batch (catching up), the next one is read on another
  // thread, so catching up costs the larger of reading and handling, not their sum.
  std::future<Fetched> ahead;
  auto backoff = std::chrono::milliseconds(10);
  bool read_failed = false;
  bool handled_one = false;
  const std::string read_kind = options_.name + " read";
  auto fail_with = [&](Error e) {
    MutexLock lk(mu_);
    last_error_ = std::move(e);
  };
  auto stop_with = [&](Error e, const char* what) {
    report_failure("subscription", options_.name,
                   std::string(what) + " at position " + to_string(position_.load()) + ": " + e.message,
                   options_.after_failure);
    fail_with(std::move(e));
  };
  auto last_fetch = std::chrono::steady_clock::now() - options_.batch_interval;
  while (!stop_) {
    if (!ahead.valid() && options_.batch_interval.count() > 0) {
      // Caught up (no read-ahead): let what arrives within the interval join one batch.
      const auto due = last_fetch + options_.batch_interval;
      if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
      last_fetch = std::chrono::steady_clock::now();
    }
    Fetched batch = ahead.valid() ? ahead.get() : fetch(position_);
    if (!batch.next) {
      // The store is unavailable or failing: keep the error visible and retry.
      report_failure("subscription", read_kind,
                     "reading from position " + to_string(position_.load()) + ": " + batch.next.error().message,
                     "retried in " + std::to_string(backoff.count()) + " ms, backing off to 2 s");
      fail_with(batch.next.error());
      read_failed = true;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    if (read_failed) {  // the store is back: its error is history
      recovered("subscription", read_kind);
      MutexLock lk(mu_);
      last_error_.reset();
      read_failed = false;
    }
    backoff = std::chrono::milliseconds(10);
    const Position next = *batch.next;
    if (next == position_) {
      store_.wait_for_events(position_ - 1, options_.idle_wait);
      continue;
    }
    if (batch.events.size() >= options_.batch_size) ahead = std::async(std::launch::async, fetch, next);
    if (auto handled = handler_(batch.events, next); !handled) {
      stop_with(handled.error(), "handling a batch");
      break;
    }
    if (checkpoints_) {
      if (auto saved = checkpoints_->save_checkpoint(options_.name, next - 1); !saved) {
        stop_with(saved.error(), "saving its checkpoint");
        break;
      }
    }
    position_ = next;
    if (!handled_one) {  // a subscription started again after a failure works
      handled_one = true;
      recovered("subscription", options_.name, "at position " + to_string(next - 1));
    }
    MutexLock lk(mu_);
    last_error_.reset();
  }
  if (ahead.valid()) ahead.wait();
  running_ = false;
}

}  // namespace orderflow::es
