#include "api/metrics.h"

#include <fmt/format.h>

#include <span>

#include "core/failures.h"

namespace orderflow::api {

namespace {

// One series of a Prometheus histogram: `counts` per bucket (not cumulative) with upper
// bounds `bounds` (seconds), `count` of all observations (those above the last bound too).
void add_histogram(std::string& out, std::string_view metric, std::string_view label, std::string_view value,
                   std::span<const double> bounds, std::span<const std::uint64_t> counts, std::uint64_t count,
                   double sum_seconds) {
  auto it = std::back_inserter(out);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    fmt::format_to(it, "{}_bucket{{{}=\"{}\",le=\"{}\"}} {}\n", metric, label, value, bounds[i], cumulative);
  }
  fmt::format_to(it, "{}_bucket{{{}=\"{}\",le=\"+Inf\"}} {}\n", metric, label, value, count);
  fmt::format_to(it, "{}_sum{{{}=\"{}\"}} {}\n", metric, label, value, sum_seconds);
  fmt::format_to(it, "{}_count{{{}=\"{}\"}} {}\n", metric, label, value, count);
}

}  // namespace

void Metrics::observe(const http::Observation& o) {
  const bool write = o.method == http::Method::post || o.method == http::Method::put;
  const double seconds = std::chrono::duration<double>(o.elapsed).count();
  std::lock_guard lk(mu_);
  ++requests_[{o.route, o.method, o.status}];
  if (!write || o.route.empty()) return;
  auto& h = writes_[o.route];
  std::size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  if (i < kBuckets.size()) ++h.counts[i];
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::render(es::EventStore& store, es::ProjectionRunner* runner) {
  std::string out;
  auto add = [&out]<class... Args>(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
  };
  {
    std::lock_guard lk(mu_);
    add("# HELP orderflow_http_requests_total HTTP requests answered, by route pattern, method and status.\n"
        "# TYPE orderflow_http_requests_total counter\n");
    for (const auto& [key, n] : requests_) {
      const auto& [route, method, status] = key;
      add("orderflow_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
          route.empty() ? "none" : route, http::method_name(method), status, n);
    }
    add("# HELP orderflow_http_write_duration_seconds Time to answer a write (one append), by route.\n"
        "# TYPE orderflow_http_write_duration_seconds histogram\n");
    for (const auto& [route, h] : writes_)
      add_histogram(out, "orderflow_http_write_duration_seconds", "route", route, kBuckets, h.counts, h.count, h.sum);
  }
  if (auto last = store.last_position())
    add("# HELP orderflow_store_last_position The highest position readers can see.\n"
        "# TYPE orderflow_store_last_position gauge\norderflow_store_last_position {}\n",
        *last);
  add("# HELP orderflow_background_failures_total Failures off the request path (snapshot saves, checkpoints, "
      "projection batches, the WAL checkpointer, ...), by component and what failed.\n"
      "# TYPE orderflow_background_failures_total counter\n");
  for (const auto& f : failure_counts())
    add("orderflow_background_failures_total{{component=\"{}\",failure=\"{}\"}} {}\n", f.component, f.what, f.count);
  add("# HELP orderflow_background_failing 1 while a background failure kind has not worked again since it failed.\n"
      "# TYPE orderflow_background_failing gauge\n");
  for (const auto& f : failure_counts())
    add("orderflow_background_failing{{component=\"{}\",failure=\"{}\"}} {}\n", f.component, f.what,
        f.failing ? 1 : 0);
  if (auto saga = saga_running_.load(); saga >= 0)
    add("# HELP orderflow_saga_running 1 while this process runs the fulfilment saga (holds the saga lease).\n"
        "# TYPE orderflow_saga_running gauge\norderflow_saga_running {}\n",
        saga);
  if (!runner) return out;
  auto status = runner->status();
  add("# HELP orderflow_projection_position The position each projection has applied.\n"
      "# TYPE orderflow_projection_position gauge\n");
  for (const auto& s : status) add("orderflow_projection_position{{projection=\"{}\"}} {}\n", s.name, s.position);
  add("# HELP orderflow_projection_lag Events the projection is behind the store.\n"
      "# TYPE orderflow_projection_lag gauge\n");
  for (const auto& s : status) add("orderflow_projection_lag{{projection=\"{}\"}} {}\n", s.name, s.lag);
  add("# HELP orderflow_projection_lag_seconds From an append to its event being in the projection's live copy.\n"
      "# TYPE orderflow_projection_lag_seconds histogram\n");
  for (const auto& l : runner->lags()) {
    std::array<double, es::kLagBucketsMs.size()> bounds;
    for (std::size_t i = 0; i < bounds.size(); ++i) bounds[i] = es::kLagBucketsMs[i] / 1000;
    add_histogram(out, "orderflow_projection_lag_seconds", "projection", l.name, bounds, l.buckets, l.count,
                  l.sum_ms / 1000);
  }
  add("# HELP orderflow_projection_up 1 while the projection runs, rebuilds or follows another process's, 0 when "
      "failed or stopped.\n"
      "# TYPE orderflow_projection_up gauge\n");
  for (const auto& s : status)
    add("orderflow_projection_up{{projection=\"{}\"}} {}\n", s.name,
        s.state == es::ProjectionState::running || s.state == es::ProjectionState::rebuilding ||
                s.state == es::ProjectionState::following
            ? 1
            : 0);
  return out;
}

}  // namespace orderflow::api
