// Background failures: what fails off the request path (a snapshot save, a checkpoint, a
// projection's batch, the WAL checkpointer, ...) has no caller to answer, so it is told
// here. Each failure kind is one (component, what) pair:
// - the first occurrence logs one error line (core/log.h): what failed, where, the error,
//   and what happens next ("snapshots: save failed: product-mug: disk full; the stream
//   loads from its events until the next snapshot failure=save count=1 suppressed=0");
// - repeats within kQuietFor are counted, not logged; the next line logged for the kind
//   says how many were suppressed (`suppressed`) and how many there were (`count`);
// - recovered() logs one info line when a kind that failed works again;
// - every occurrence counts in failure_counts(), which /metrics shows as
//   orderflow_background_failures_total{component,failure}.
//
// Thread safety: every function may be called from any thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orderflow {

inline constexpr auto kQuietFor = std::chrono::seconds(60);

// `detail` names the instance and the error; `next` says what happens now.
void report_failure(std::string_view component, std::string_view what, std::string_view detail,
                    std::string_view next);
// The kind works again; prints one line if it had failed since it last recovered.
void recovered(std::string_view component, std::string_view what, std::string_view detail = {});

struct FailureCount {
  std::string component;
  std::string what;
  std::uint64_t count = 0;
  bool failing = false;  // failed since it last recovered
};
std::vector<FailureCount> failure_counts();

}  // namespace orderflow
