// Admission control (docs/api.md §3, `503 overloaded`): a client's write is refused at once,
// with Retry-After, while the work it would add cannot be done in time — the saga or a
// projection too far behind the log, or too many appends waiting for the store's writer —
// instead of queueing without limit (accepted orders whose confirmation falls seconds
// behind). Reads are never refused, nor the saga's own commands: they are what drains
// the lag.
//
// The gauges are read at most every `refresh` (they take locks and may read the store),
// so a verdict is up to that old; between reads admit() costs one lock.
//
// Thread safety: every member function may be called from any thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/mutex.h"
#include "core/metric.h"
#include "core/result.h"

namespace orderflow::app {

// Bounds; 0: none.
struct AdmissionLimits {
  std::int64_t saga_lag = 5000;         // events of the log the saga has not read
  // Age (ms) of the oldest event the saga has not read. Off by default: a saga taking over
  // on PostgreSQL (a lease expiring) or a store outage ages it by seconds, and the event
  // bound already stops unbounded queueing; a latency target sets it (docs/operations.md).
  std::int64_t saga_lag_ms = 0;
  std::int64_t projection_lag = 20000;  // events the furthest-behind projection has not applied
  std::int64_t append_queue = 10000;    // appends accepted and not yet taken by the writer
  std::chrono::milliseconds refresh{50};
  // A refusal is answered after this pause (see api/command_routes.cc).
  std::chrono::milliseconds refusal_pause{50};
};

// Where the gauges come from; an empty function, or one answering nullopt, is not checked
// (a process without the saga, say).
struct AdmissionGauges {
  std::function<std::optional<std::int64_t>()> saga_lag;
  std::function<std::optional<std::int64_t>()> saga_lag_ms;
  std::function<std::optional<std::int64_t>()> projection_lag;
  std::function<std::optional<std::int64_t>()> append_queue;
};

// What admit() refused, by the bound passed (saga_lag: in events or in milliseconds).
enum class AdmissionReason { saga_lag, projection_lag, append_queue };
inline constexpr AdmissionReason kAdmissionReasons[] = {AdmissionReason::saga_lag, AdmissionReason::projection_lag,
                                                       AdmissionReason::append_queue};
const char* to_string(AdmissionReason reason);

class Admission {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  Admission(AdmissionLimits limits, AdmissionGauges gauges, Clock clock = &std::chrono::steady_clock::now);

  // Ok, or Errc::overloaded naming the bound passed, its value and its limit.
  Result<void> admit();

  // Writes refused so far, for /metrics.
  std::uint64_t refused(AdmissionReason reason) const { return refused_[static_cast<int>(reason)].value(); }
  const AdmissionLimits& limits() const { return limits_; }

 private:
  struct Verdict {
    std::optional<AdmissionReason> reason;
    std::string message;
  };
  Verdict look() const;

  const AdmissionLimits limits_;
  const AdmissionGauges gauges_;
  const Clock clock_;
  Mutex mu_;
  std::chrono::steady_clock::time_point next_look_ GUARDED_BY(mu_){};
  Verdict verdict_ GUARDED_BY(mu_);
  Counter refused_[3];
};

}  // namespace orderflow::app
