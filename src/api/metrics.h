// /metrics: the Prometheus text format 0.0.4, written by hand (no client library is
// packaged), every family with HELP and TYPE (docs/api.md lists them):
// - HTTP requests by route pattern, method and status, and their durations;
// - commands by type and outcome; appends by outcome (version conflicts, idempotent
//   repeats), batch sizes, write and sync durations (es/append_metrics.h);
// - idempotent replays (a request answered again from its Idempotency-Key);
// - the projections' and the saga's positions and lag, in events and in seconds (the age
//   of the oldest event not yet applied); sagas by state; step durations; deadlines
//   fired; dead letters;
// - the span exporter: spans exported, dropped, failed exports (core/otlp_exporter.h);
// - readiness (as /readyz); background failures (core/failures.h); the SQLite WAL files'
//   sizes and the data directory's disk space;
// - the process: resident memory, CPU, open file descriptors, start time, build.
// Counters the hot path updates are relaxed atomics (core/metric.h); what render() reads
// from the store and the runners is read at scrape time.
//
// Thread safety: observe(), the count_* calls and render() may be called from any
// thread at once; the set_* calls happen before the server starts (set_saga_running too,
// from any thread).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "api/http/server.h"
#include "core/metric.h"
#include "core/otlp_exporter.h"
#include "core/thread_cpu.h"

namespace orderflow::app::saga {
class SagaRunner;
class SagaAdmin;
}

namespace orderflow::api {

struct ApiContext;

// HTTP durations, seconds: 100 µs (a cached read) to 1 s.
inline constexpr std::array<double, 13> kHttpSecondsBounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                           0.025,  0.05,    0.1,    0.25,  0.5,    1.0};

class Metrics {
 public:
  // For ServerOptions::observe. `o.route` must outlive this object (the router's patterns).
  void observe(const http::Observation& o);
  void count_idempotent_replay() { idempotent_replays_.add(); }
  // A request refused 429 `rate_limited`: its caller known by its token, or by its address.
  void count_rate_limited(bool by_token) { (by_token ? rate_limited_by_token_ : rate_limited_by_address_).add(); }
  // Whether this process runs the saga now (on a shared store only the lease holder
  // does); orderflow_saga_running is shown once this has been called.
  void set_saga_running(bool running) { saga_running_ = running ? 1 : 0; }
  // Whether this process runs the saga now; nullopt without the saga role.
  std::optional<bool> saga_running() const {
    const int running = saga_running_;
    return running < 0 ? std::nullopt : std::optional<bool>(running == 1);
  }
  // The saga whose sagas, position and lag are shown (none: not shown), and where its dead
  // letters are counted.
  void set_saga(app::saga::SagaRunner* saga, app::saga::SagaAdmin* admin) {
    saga_ = saga;
    saga_admin_ = admin;
  }
  // The span exporter whose counts are shown (none: not shown).
  void set_exporter(const OtlpExporter* exporter) { exporter_ = exporter; }
  // The embedded store's data directory, whose file system's space is shown.
  void set_data_dir(std::string dir) { data_dir_ = std::move(dir); }
  // Families an adapter renders itself (a store's: SQLite's WAL files and checkpoints,
  // PostgreSQL's connection pool), appended to the page in the order added.
  using Section = std::function<void(std::string& out)>;
  void add_section(Section section) { sections_.push_back(std::move(section)); }
  // The exposition text, of ctx's store and read side and of what was set here.
  std::string render(ApiContext& ctx);

 private:
  Family<std::tuple<std::string_view, http::Method, int>, Counter> requests_;  // route, method, status
  Family<std::tuple<std::string_view, http::Method>, Histogram<kHttpSecondsBounds>> durations_;
  Counter idempotent_replays_;
  Counter rate_limited_by_token_, rate_limited_by_address_;
  std::atomic<int> saga_running_{-1};  // -1: no saga role
  app::saga::SagaRunner* saga_ = nullptr;
  app::saga::SagaAdmin* saga_admin_ = nullptr;
  const OtlpExporter* exporter_ = nullptr;
  std::string data_dir_;
  std::vector<Section> sections_;
  ThreadCpu thread_cpu_;
};

}  // namespace orderflow::api
