// A first /metrics (Prometheus text format 0.0.4, written by hand: no client library is
// packaged): requests by route, method and status, a latency histogram of writes (each
// one append), the projections' positions and lag, and whether this process runs the
// fulfilment saga.
//
// Thread safety: observe() and render() may be called from any thread at once.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "api/http/server.h"
#include "es/projection.h"

namespace orderflow::api {

class Metrics {
 public:
  // For ServerOptions::observe. `o.route` must outlive this object (the router's patterns).
  void observe(const http::Observation& o);
  // Whether this process runs the saga now (on a shared store only the lease holder
  // does); orderflow_saga_running is shown once this has been called.
  void set_saga_running(bool running) { saga_running_ = running ? 1 : 0; }
  // The exposition text; `runner` may be null.
  std::string render(es::EventStore& store, es::ProjectionRunner* runner);

 private:
  static constexpr std::array<double, 11> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0};
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};  // per bucket, not cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };

  std::mutex mu_;
  std::map<std::tuple<std::string_view, http::Method, int>, std::uint64_t> requests_;
  std::map<std::string_view, Histogram> writes_;  // by route
  std::atomic<int> saga_running_{-1};  // -1: no saga role
};

}  // namespace orderflow::api
