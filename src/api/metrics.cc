#include "api/metrics.h"

#include <fmt/format.h>

namespace orderflow::api {

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
    for (const auto& [route, h] : writes_) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += h.counts[i];
        add("orderflow_http_write_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route, kBuckets[i],
            cumulative);
      }
      add("orderflow_http_write_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, h.count);
      add("orderflow_http_write_duration_seconds_sum{{route=\"{}\"}} {}\n", route, h.sum);
      add("orderflow_http_write_duration_seconds_count{{route=\"{}\"}} {}\n", route, h.count);
    }
  }
  if (auto last = store.last_position())
    add("# HELP orderflow_store_last_position The highest position readers can see.\n"
        "# TYPE orderflow_store_last_position gauge\norderflow_store_last_position {}\n",
        *last);
  if (!runner) return out;
  auto status = runner->status();
  add("# HELP orderflow_projection_position The position each projection has applied.\n"
      "# TYPE orderflow_projection_position gauge\n");
  for (const auto& s : status) add("orderflow_projection_position{{projection=\"{}\"}} {}\n", s.name, s.position);
  add("# HELP orderflow_projection_lag Events the projection is behind the store.\n"
      "# TYPE orderflow_projection_lag gauge\n");
  for (const auto& s : status) add("orderflow_projection_lag{{projection=\"{}\"}} {}\n", s.name, s.lag);
  add("# HELP orderflow_projection_up 1 while the projection runs (or rebuilds), 0 when failed or stopped.\n"
      "# TYPE orderflow_projection_up gauge\n");
  for (const auto& s : status)
    add("orderflow_projection_up{{projection=\"{}\"}} {}\n", s.name,
        s.state == es::ProjectionState::running || s.state == es::ProjectionState::rebuilding ? 1 : 0);
  return out;
}

}  // namespace orderflow::api
