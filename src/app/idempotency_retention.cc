#include "app/idempotency_retention.h"

#include <pthread.h>

#include <string>

#include "core/failures.h"
#include "core/time.h"

namespace orderflow::app {

IdempotencyRetention::IdempotencyRetention(es::IdempotencyRecords& records, IdempotencyRetentionOptions options)
    : records_(records), options_(std::move(options)) {}

IdempotencyRetention::~IdempotencyRetention() { stop(); }

void IdempotencyRetention::start() {
  if (thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "of-idem-expiry");
    loop();
  });
}

void IdempotencyRetention::stop() {
  if (!thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<std::uint64_t> IdempotencyRetention::sweep() {
  const auto now = options_.now_ms ? options_.now_ms() : now_unix_ms();
  const auto before = now - std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention).count();
  std::uint64_t total = 0;
  for (;;) {
    OF_ASSIGN_OR_RETURN(const auto n, records_.expire_idempotency(before, options_.chunk));
    total += n;
    expired_.add(n);
    if (n < options_.chunk) return total;
    MutexLock lk(mu_);
    if (cv_.wait_for(mu_, options_.pause, [&]() REQUIRES(mu_) { return stopping_; })) return total;
  }
}

void IdempotencyRetention::loop() {
  for (;;) {
    if (auto swept = sweep(); !swept) {
      report_failure("idempotency", "expiry", swept.error().message, "tried again at the next sweep");
    } else {
      recovered("idempotency", "expiry");
    }
    MutexLock lk(mu_);
    if (cv_.wait_for(mu_, options_.interval, [&]() REQUIRES(mu_) { return stopping_; })) return;
  }
}

}  // namespace orderflow::app
