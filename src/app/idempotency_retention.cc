#include "app/idempotency_retention.h"

#include "core/failures.h"
#include "core/time.h"

namespace orderflow::app {

IdempotencyRetention::IdempotencyRetention(es::IdempotencyRecords& records, IdempotencyRetentionOptions options)
    : records_(records), options_(std::move(options)) {}

IdempotencyRetention::~IdempotencyRetention() { stop(); }

void IdempotencyRetention::start() {
  thread_.start("of-idem-expiry", [this] { loop(); });
}

void IdempotencyRetention::stop() { thread_.stop(); }

Result<std::uint64_t> IdempotencyRetention::sweep() {
  const auto now = options_.now_ms ? options_.now_ms() : now_unix_ms();
  const auto before = now - std::chrono::duration_cast<std::chrono::milliseconds>(options_.retention).count();
  std::uint64_t total = 0;
  for (;;) {
    OF_ASSIGN_OR_RETURN(const auto n, records_.expire_idempotency(before, options_.chunk));
    total += n;
    expired_.add(n);
    if (n < options_.chunk || thread_.pause(options_.pause)) return total;
  }
}

void IdempotencyRetention::loop() {
  do {
    if (auto swept = sweep(); !swept) {
      report_failure("idempotency", "expiry", swept.error().message, "tried again at the next sweep");
    } else {
      recovered("idempotency", "expiry");
    }
  } while (!thread_.pause(options_.interval));
}

}  // namespace orderflow::app
