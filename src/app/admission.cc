#include "app/admission.h"

namespace orderflow::app {

const char* to_string(AdmissionReason reason) {
  switch (reason) {
    case AdmissionReason::saga_lag: return "saga_lag";
    case AdmissionReason::projection_lag: return "projection_lag";
    case AdmissionReason::append_queue: return "append_queue";
  }
  return "unknown";
}

Admission::Admission(AdmissionLimits limits, AdmissionGauges gauges, Clock clock)
    : limits_(limits), gauges_(std::move(gauges)), clock_(std::move(clock)) {}

Admission::Verdict Admission::look() const {
  struct Bound {
    AdmissionReason reason;
    std::int64_t limit;
    const std::function<std::optional<std::int64_t>()>& gauge;
    const char* what;  // after the gauge's value
  };
  const Bound bounds[] = {
      {AdmissionReason::append_queue, limits_.append_queue, gauges_.append_queue, " appends wait for the store's writer"},
      {AdmissionReason::saga_lag, limits_.saga_lag, gauges_.saga_lag, " events of the log wait for the saga"},
      {AdmissionReason::saga_lag, limits_.saga_lag_ms, gauges_.saga_lag_ms,
       " ms is the age of the oldest event the saga has not read"},
      {AdmissionReason::projection_lag, limits_.projection_lag, gauges_.projection_lag,
       " events of the log wait for a projection"},
  };
  for (const auto& b : bounds) {
    if (b.limit <= 0 || !b.gauge) continue;
    auto value = b.gauge();
    if (value && *value > b.limit)
      return {b.reason, "overloaded: " + std::to_string(*value) + b.what + " (the bound is " +
                            std::to_string(b.limit) + "); try again later"};
  }
  return {};
}

Result<void> Admission::admit() {
  MutexLock lk(mu_);
  const auto now = clock_();
  if (now >= next_look_) {
    verdict_ = look();
    next_look_ = now + limits_.refresh;
  }
  if (!verdict_.reason) return {};
  refused_[static_cast<int>(*verdict_.reason)].add();
  return fail(Errc::overloaded, verdict_.message);
}

}  // namespace orderflow::app
