// The answers stored for Idempotency-Keys are kept for a retention period (docs/api.md §2;
// `serve --idempotency-retention-s`, 24 h by default), then deleted, so the table stops
// growing by one row per keyed request forever. A thread of its own deletes the expired
// records every `interval`, oldest first, in chunks of `chunk` rows, each its own short
// transaction, pausing between chunks so the store's writer is never held for long. On a
// store shared by several processes each of them may run one: a row one deletes, the
// others skip. A failure (the store down, a full disk) is reported (core/failures.h) and
// the sweep tried again at the next interval; nothing else waits on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "core/metric.h"
#include "core/stoppable_thread.h"
#include "es/event_store.h"

namespace orderflow::app {

struct IdempotencyRetentionOptions {
  std::chrono::seconds retention{std::chrono::hours(24)};
  std::chrono::milliseconds interval{std::chrono::minutes(1)};
  std::size_t chunk = 1000;
  std::chrono::milliseconds pause{20};  // between two full chunks
  std::function<std::int64_t()> now_ms;  // Unix ms; default: the system clock
};

class IdempotencyRetention {
 public:
  // `records` must outlive this object.
  IdempotencyRetention(es::IdempotencyRecords& records, IdempotencyRetentionOptions options);
  ~IdempotencyRetention();  // stop()
  IdempotencyRetention(const IdempotencyRetention&) = delete;
  IdempotencyRetention& operator=(const IdempotencyRetention&) = delete;

  // Starts the thread; its first sweep runs at once (a process started after a long stop
  // catches up), then every interval.
  void start();
  // Stops between two chunks. Idempotent.
  void stop();

  // Deletes every record older than the retention now, chunk by chunk: how many it
  // deleted. What the thread runs; callable without it.
  Result<std::uint64_t> sweep();

  // Records deleted since this object was made.
  std::uint64_t expired() const { return expired_.value(); }

 private:
  void loop();

  es::IdempotencyRecords& records_;
  const IdempotencyRetentionOptions options_;
  Counter expired_;
  StoppableThread thread_;
};

}  // namespace orderflow::app
