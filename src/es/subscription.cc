#include "es/subscription.h"

#include <vector>

namespace orderflow::es {

Subscription::Subscription(EventStore& store, CheckpointStore* checkpoints,
                           SubscriptionOptions options, BatchHandler handler)
    : store_(store), checkpoints_(checkpoints), options_(std::move(options)), handler_(std::move(handler)) {}

Subscription::~Subscription() { stop(); }

std::optional<Error> Subscription::last_error() const {
  std::lock_guard lk(mu_);
  return last_error_;
}

Result<void> Subscription::start() {
  stop();
  Position from = options_.from;
  if (checkpoints_) {
    auto saved = checkpoints_->load_checkpoint(options_.name);
    if (!saved) return fail(saved.error());
    if (*saved > 0) from = *saved + 1;
  }
  position_ = from;
  {
    std::lock_guard lk(mu_);
    last_error_.reset();
  }
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
  return {};
}

void Subscription::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

void Subscription::run() {
  std::vector<RecordedEvent> batch;
  auto backoff = std::chrono::milliseconds(10);
  auto fail_with = [&](Error e) {
    std::lock_guard lk(mu_);
    last_error_ = std::move(e);
  };
  while (!stop_) {
    batch.clear();
    auto next = store_.scan_all(position_, options_.batch_size, options_.filter,
                                [&](const RecordedEvent& e) { batch.push_back(e); });
    if (!next) {
      // The store is unavailable or failing: keep the error visible and retry.
      fail_with(next.error());
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    backoff = std::chrono::milliseconds(10);
    if (*next == position_) {
      store_.wait_for_events(position_ - 1, options_.idle_wait);
      continue;
    }
    if (auto handled = handler_(batch, *next); !handled) {
      fail_with(handled.error());
      break;
    }
    if (checkpoints_) {
      if (auto saved = checkpoints_->save_checkpoint(options_.name, *next - 1); !saved) {
        fail_with(saved.error());
        break;
      }
    }
    position_ = *next;
    std::lock_guard lk(mu_);
    last_error_.reset();
  }
  running_ = false;
}

}  // namespace orderflow::es
