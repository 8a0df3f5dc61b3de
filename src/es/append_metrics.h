// What the append pipeline counts for /metrics, process-wide (a process has one store).
#pragma once

#include <array>
#include <string_view>

#include "core/metric.h"
#include "core/result.h"
#include "es/event.h"

namespace orderflow::es {

// Seconds: from 50 µs (a batch in the page cache) to 1 s (a stalled disk).
inline constexpr std::array<double, 12> kStoreSecondsBounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                            0.005,   0.01,   0.025,   0.05,   0.25,  1.0};
inline constexpr std::array<double, 11> kBatchAppendsBounds{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 8192};

struct AppendMetrics {
  // Appends answered, by append_outcome().
  Family<std::string_view, Counter> appends;
  // Appends per batch written in one transaction.
  Histogram<kBatchAppendsBounds> batch_appends;
  // A batch's write (its transaction up to the commit) and its sync (fsync or commit).
  Histogram<kStoreSecondsBounds> write_seconds;
  Histogram<kStoreSecondsBounds> sync_seconds;
};

AppendMetrics& append_metrics();

// "written"; "repeat" for a retry answered with the original result (an idempotent
// repeat: nothing written); else the error's code ("version_conflict", "unavailable", ...).
std::string_view append_outcome(const Result<AppendResult>& r);

}  // namespace orderflow::es
