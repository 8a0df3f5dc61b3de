#include "api/metrics.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "api/api.h"
#include "app/admission.h"
#include "app/bus_projector/bus_projector.h"
#include "app/command_handler.h"
#include "app/projections/read_side.h"
#include "app/saga/saga_admin.h"
#include "app/saga/saga_runner.h"
#include "core/build_info.h"
#include "core/failures.h"
#include "core/time.h"
#include "es/append_metrics.h"

namespace orderflow::api {

namespace {

constexpr auto kLagBoundsSeconds = [] {
  std::array<double, es::kLagBucketsMs.size()> b{};
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = es::kLagBucketsMs[i] / 1000;
  return b;
}();

// A projection's orderflow_projection_lag_seconds series (its buckets are not cumulative).
void add_lag_histogram(std::string& out, const es::ProjectionLag& l) {
  HistogramSnapshot h{kLagBoundsSeconds, std::vector<std::uint64_t>(l.buckets.size()), l.count, l.sum_ms / 1000};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < l.buckets.size(); ++i) h.cumulative[i] = running += l.buckets[i];
  append_histogram(out, "orderflow_projection_lag_seconds", fmt::format("projection=\"{}\"", l.name), h);
}

// The process, from /proc (Linux).
struct ProcessStats {
  double cpu_seconds = 0;
  std::uint64_t resident_bytes = 0;
  std::uint64_t open_fds = 0, max_fds = 0;
  double start_time_seconds = 0;  // unix epoch
};

ProcessStats process_stats() {
  ProcessStats p;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::uint64_t pages_total = 0, pages_resident = 0;
  if (std::ifstream statm("/proc/self/statm"); statm >> pages_total >> pages_resident)
    p.resident_bytes = pages_resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec))
    ++p.open_fds;
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = rl.rlim_cur;
  // The start in clock ticks after boot (/proc/self/stat); /proc/stat's btime: the boot.
  const auto self = read_proc_stat("/proc/self/stat");
  const double start_ticks = self ? static_cast<double>(self->started) : 0;
  std::ifstream boot("/proc/stat");
  for (std::string key; boot >> key;)
    if (key == "btime") {
      double btime = 0;
      boot >> btime;
      p.start_time_seconds = btime + start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  return p;
}

// A label value as the text format writes it: backslash, double quote and newline escaped
// (a thread's name is whatever the code that started it chose).
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string_view("\\n") : std::string_view(&c, 1);
  }
  return out;
}

}  // namespace

void Metrics::observe(const http::Observation& o) {
  requests_.at({o.route, o.method, o.status}).add();
  durations_.at({o.route, o.method}).observe(std::chrono::duration<double>(o.elapsed).count());
}

std::string Metrics::render(ApiContext& ctx) {
  // A bus-fed process (--roles projector --bus, no relay) never starts the log-tailing
  // runner: its projection families are the bus-fed projector's (below).
  es::ProjectionRunner* runner = ctx.read && !ctx.bus_projector ? &ctx.read->runner() : nullptr;
  std::string out;
  auto add = [&out]<class... Args>(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
  };
  auto route_name = [](std::string_view route) { return route.empty() ? std::string_view("none") : route; };
  const auto now_ms = now_unix_ms();
  const auto last = ctx.events.last_position();

  add("# HELP orderflow_http_requests_total HTTP requests answered, by route pattern, method and status.\n"
      "# TYPE orderflow_http_requests_total counter\n");
  for (const auto& [key, n] : sorted_entries(requests_)) {
    const auto& [route, method, status] = key;
    add("orderflow_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n", route_name(route),
        http::method_name(method), status, n->value());
  }
  add("# HELP orderflow_http_request_duration_seconds Time from a request's end to its answer being ready, by "
      "route pattern and method.\n"
      "# TYPE orderflow_http_request_duration_seconds histogram\n");
  for (const auto& [key, h] : sorted_entries(durations_)) {
    const auto& [route, method] = key;
    append_histogram(out, "orderflow_http_request_duration_seconds",
                  fmt::format("route=\"{}\",method=\"{}\"", route_name(route), http::method_name(method)),
                  h->snapshot());
  }
  add("# HELP orderflow_idempotent_replays_total Requests answered again from the answer stored for their "
      "Idempotency-Key.\n"
      "# TYPE orderflow_idempotent_replays_total counter\norderflow_idempotent_replays_total {}\n",
      idempotent_replays_.value());
  add("# HELP orderflow_http_rate_limited_total Requests refused 429 rate_limited, by what their caller was known "
      "by: its token or its client address.\n"
      "# TYPE orderflow_http_rate_limited_total counter\n"
      "orderflow_http_rate_limited_total{{caller=\"token\"}} {}\norderflow_http_rate_limited_total{{caller=\"address\"}} {}\n",
      rate_limited_by_token_.value(), rate_limited_by_address_.value());
  add("# HELP orderflow_personal_data_erasures_total Customers' personal data erased (DELETE "
      "/api/v1/customers/{{id}}/personal-data), by outcome: erased (a key destroyed now) or already_erased.\n"
      "# TYPE orderflow_personal_data_erasures_total counter\n"
      "orderflow_personal_data_erasures_total{{outcome=\"erased\"}} {}\n"
      "orderflow_personal_data_erasures_total{{outcome=\"already_erased\"}} {}\n",
      app::erasure_counts().erased.value(), app::erasure_counts().already_erased.value());
  if (ctx.admission) {
    add("# HELP orderflow_admission_refused_total Writes refused with 503 overloaded, by the bound passed.\n"
        "# TYPE orderflow_admission_refused_total counter\n");
    for (auto reason : app::kAdmissionReasons)
      add("orderflow_admission_refused_total{{reason=\"{}\"}} {}\n", app::to_string(reason),
          ctx.admission->refused(reason));
  }

  add("# HELP orderflow_commands_total Commands handled, by type and outcome (ok, repeat: a retry of a stored "
      "append, or the error code).\n"
      "# TYPE orderflow_commands_total counter\n");
  for (const auto& [key, n] : sorted_entries(app::command_counts())) {
    const auto& [type, outcome] = key;
    add("orderflow_commands_total{{type=\"{}\",outcome=\"{}\"}} {}\n", type, outcome, n->value());
  }
  auto& appends = es::append_metrics();
  add("# HELP orderflow_appends_total Appends answered by the event store, by outcome (written; repeat: an "
      "idempotent retry answered with the original result; version_conflict, duplicate_event, unavailable, ...).\n"
      "# TYPE orderflow_appends_total counter\n");
  for (const auto& [outcome, n] : sorted_entries(appends.appends))
    add("orderflow_appends_total{{outcome=\"{}\"}} {}\n", outcome, n->value());
  add("# HELP orderflow_append_batch_size Appends written in one transaction (group commit).\n"
      "# TYPE orderflow_append_batch_size histogram\n");
  append_histogram(out, "orderflow_append_batch_size", "", appends.batch_appends.snapshot());
  add("# HELP orderflow_store_write_duration_seconds Time to write one batch of appends (its transaction).\n"
      "# TYPE orderflow_store_write_duration_seconds histogram\n");
  append_histogram(out, "orderflow_store_write_duration_seconds", "", appends.write_seconds.snapshot());
  add("# HELP orderflow_store_sync_duration_seconds Time to make written batches durable (fsync or commit).\n"
      "# TYPE orderflow_store_sync_duration_seconds histogram\n");
  append_histogram(out, "orderflow_store_sync_duration_seconds", "", appends.sync_seconds.snapshot());
  if (last)
    add("# HELP orderflow_store_last_position The highest position readers can see.\n"
        "# TYPE orderflow_store_last_position gauge\norderflow_store_last_position {}\n",
        last->value());
  for (const auto& section : sections_) section(out);

  if (struct statvfs fs{}; !data_dir_.empty() && statvfs(data_dir_.c_str(), &fs) == 0)
    add("# HELP orderflow_data_disk_free_bytes Space this process may still use on the data directory's file "
        "system.\n"
        "# TYPE orderflow_data_disk_free_bytes gauge\norderflow_data_disk_free_bytes {}\n"
        "# HELP orderflow_data_disk_size_bytes Size of the data directory's file system.\n"
        "# TYPE orderflow_data_disk_size_bytes gauge\norderflow_data_disk_size_bytes {}\n",
        static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize, static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize);
  add("# HELP orderflow_ready 1 while /readyz would answer 200.\n"
      "# TYPE orderflow_ready gauge\norderflow_ready {}\n",
      last && !not_ready(ctx) ? 1 : 0);

  add("# HELP orderflow_background_failures_total Failures off the request path (snapshot saves, checkpoints, "
      "projection batches, the WAL checkpointer, ...), by component and what failed.\n"
      "# TYPE orderflow_background_failures_total counter\n");
  const auto failures = failure_counts();
  for (const auto& f : failures)
    add("orderflow_background_failures_total{{component=\"{}\",failure=\"{}\"}} {}\n", f.component, f.what, f.count);
  add("# HELP orderflow_background_failing 1 while a background failure kind has not worked again since it failed.\n"
      "# TYPE orderflow_background_failing gauge\n");
  for (const auto& f : failures)
    add("orderflow_background_failing{{component=\"{}\",failure=\"{}\"}} {}\n", f.component, f.what,
        f.failing ? 1 : 0);

  if (auto relay = relay_view(ctx)) {
    add("# HELP orderflow_relay_running 1 while this process relays the log to the bus (holds the relay lease).\n"
        "# TYPE orderflow_relay_running gauge\norderflow_relay_running {}\n",
        relay->state == "publishing" || relay->state == "retrying" ? 1 : 0);
    add("# HELP orderflow_relay_up 1 while the relay's last publish succeeded (0: retrying, standing by or stopped).\n"
        "# TYPE orderflow_relay_up gauge\norderflow_relay_up {}\n",
        relay->state == "publishing" ? 1 : 0);
    add("# HELP orderflow_relay_position The last position the bus acknowledged.\n"
        "# TYPE orderflow_relay_position gauge\norderflow_relay_position {}\n",
        relay->position.value());
    add("# HELP orderflow_relay_lag Events of the log not yet acknowledged by the bus.\n"
        "# TYPE orderflow_relay_lag gauge\norderflow_relay_lag {}\n",
        relay->lag);
    add("# HELP orderflow_relay_lag_age_seconds Age of the oldest event not yet acknowledged by the bus (0: caught "
        "up).\n"
        "# TYPE orderflow_relay_lag_age_seconds gauge\norderflow_relay_lag_age_seconds {}\n",
        relay->lag_seconds);
    add("# HELP orderflow_relay_published_total Events the bus acknowledged from this process.\n"
        "# TYPE orderflow_relay_published_total counter\norderflow_relay_published_total {}\n",
        relay->published);
  }
  if (ctx.bus_projector) {
    const auto b = ctx.bus_projector->status();
    const auto& consumer = ctx.bus_projector->options().consumer;
    add("# HELP orderflow_bus_consumer_up 1 while the bus-fed projector consumes (0: connecting, retrying or "
        "stopped).\n"
        "# TYPE orderflow_bus_consumer_up gauge\norderflow_bus_consumer_up{{consumer=\"{}\"}} {}\n",
        consumer, b.state == "consuming" ? 1 : 0);
    if (b.backlog)
      add("# HELP orderflow_bus_consumer_lag Messages the bus-fed projector's consumer has not acknowledged, as the "
          "bus counts them (JetStream: pending + ack pending; Kafka: high watermark - committed offset, summed).\n"
          "# TYPE orderflow_bus_consumer_lag gauge\norderflow_bus_consumer_lag{{consumer=\"{}\"}} {}\n",
          consumer, *b.backlog);
    add("# HELP orderflow_bus_consumer_applied_lag_seconds From the append of the last event the bus-fed projector "
        "applied to its commit in the read models (0 before the first).\n"
        "# TYPE orderflow_bus_consumer_applied_lag_seconds gauge\n"
        "orderflow_bus_consumer_applied_lag_seconds{{consumer=\"{}\"}} {}\n",
        consumer, b.last_lag_ms / 1000.0);
    add("# HELP orderflow_bus_consumer_applied_total Messages the bus-fed projector applied (or skipped as repeats) "
        "and acknowledged.\n"
        "# TYPE orderflow_bus_consumer_applied_total counter\norderflow_bus_consumer_applied_total{{consumer=\"{}\"}} "
        "{}\n",
        consumer, b.applied);
    add("# HELP orderflow_bus_consumer_dead_letters_total Messages the bus-fed projector sent to the dead letters.\n"
        "# TYPE orderflow_bus_consumer_dead_letters_total counter\n"
        "orderflow_bus_consumer_dead_letters_total{{consumer=\"{}\"}} {}\n",
        consumer, b.dead_lettered);
    add("# HELP orderflow_bus_consumer_store_events_total Events the bus-fed projector read from the event store for "
        "messages the bus dropped unread (its retention or limits).\n"
        "# TYPE orderflow_bus_consumer_store_events_total counter\n"
        "orderflow_bus_consumer_store_events_total{{consumer=\"{}\"}} {}\n",
        consumer, b.from_store);
    add("# HELP orderflow_bus_consumer_held_streams Streams held behind a dead letter until it is retried.\n"
        "# TYPE orderflow_bus_consumer_held_streams gauge\norderflow_bus_consumer_held_streams{{consumer=\"{}\"}} {}\n",
        consumer, b.held);
  }
  if (auto saga = saga_running_.load(); saga >= 0)
    add("# HELP orderflow_saga_running 1 while this process runs the fulfilment saga (holds the saga lease).\n"
        "# TYPE orderflow_saga_running gauge\norderflow_saga_running {}\n",
        saga);
  if (saga_) {
    add("# HELP orderflow_sagas Sagas this process holds in memory, by state.\n"
        "# TYPE orderflow_sagas gauge\n");
    using app::saga::SagaState;
    auto counts = saga_->count_by_state();
    for (auto state : {SagaState::running, SagaState::compensating, SagaState::completed, SagaState::compensated,
                       SagaState::failed})
      add("orderflow_sagas{{state=\"{}\"}} {}\n", app::saga::to_string(state), counts[state]);
    if (auto next = saga_->next_position(); next && last) {
      add("# HELP orderflow_saga_position The position the saga reads next.\n"
          "# TYPE orderflow_saga_position gauge\norderflow_saga_position {}\n",
          next->value());
      add("# HELP orderflow_saga_lag Events of the log the saga has not read yet.\n"
          "# TYPE orderflow_saga_lag gauge\norderflow_saga_lag {}\n",
          *last + 1 - std::min(*next, *last + 1));
      add("# HELP orderflow_saga_lag_age_seconds Age of the oldest event the saga has not read (0: caught up).\n"
          "# TYPE orderflow_saga_lag_age_seconds gauge\norderflow_saga_lag_age_seconds {}\n",
          *next <= *last ? ctx.events.age_seconds(*next, now_ms) : 0.0);
    }
    add("# HELP orderflow_saga_step_duration_seconds Saga steps that ended, from the event that started one to "
        "the event that ended it, by step.\n"
        "# TYPE orderflow_saga_step_duration_seconds histogram\n");
    for (const auto& [step, h] : sorted_entries(saga_->step_durations()))
      append_histogram(out, "orderflow_saga_step_duration_seconds", fmt::format("step=\"{}\"", step), h->snapshot());
    add("# HELP orderflow_saga_deadlines_fired_total Step deadlines that passed with the step's work not done "
        "(each a retry, or giving up on the step).\n"
        "# TYPE orderflow_saga_deadlines_fired_total counter\norderflow_saga_deadlines_fired_total {}\n",
        saga_->deadlines_fired());
    if (saga_admin_)
      if (auto letters = saga_admin_->dead_letter_counts())
        add("# HELP orderflow_saga_dead_letters_total Dead letters recorded (a saga gave up on a forward step).\n"
            "# TYPE orderflow_saga_dead_letters_total counter\norderflow_saga_dead_letters_total {}\n"
            "# HELP orderflow_saga_dead_letters_retried_total Dead letters retried.\n"
            "# TYPE orderflow_saga_dead_letters_retried_total counter\norderflow_saga_dead_letters_retried_total {}\n",
            letters->recorded, letters->retried);
    if (auto b = saga_->bus_status()) {
      const auto& c = b->consumer;
      add("# HELP orderflow_saga_bus_up 1 while the saga fed from the bus consumes (0: catching up from the store, "
          "retrying, standby or stopped).\n"
          "# TYPE orderflow_saga_bus_up gauge\norderflow_saga_bus_up{{consumer=\"{}\"}} {}\n",
          c, b->state == "consuming" ? 1 : 0);
      add("# HELP orderflow_saga_bus_buffered Events the saga fed from the bus holds until the log's order reaches "
          "them.\n"
          "# TYPE orderflow_saga_bus_buffered gauge\norderflow_saga_bus_buffered{{consumer=\"{}\"}} {}\n",
          c, b->buffered);
      add("# HELP orderflow_saga_bus_gap_positions Positions from the next one the saga folds up to the first event "
          "held behind it (0: no gap).\n"
          "# TYPE orderflow_saga_bus_gap_positions gauge\norderflow_saga_bus_gap_positions{{consumer=\"{}\"}} {}\n",
          c, b->gap_until ? *b->gap_until - b->next : 0);
      add("# HELP orderflow_saga_bus_gap_seconds How long the saga fed from the bus has waited on its gap (0: no "
          "gap).\n"
          "# TYPE orderflow_saga_bus_gap_seconds gauge\norderflow_saga_bus_gap_seconds{{consumer=\"{}\"}} {}\n",
          c, static_cast<double>(b->gap_ms) / 1000.0);
      add("# HELP orderflow_saga_bus_folded_total Messages the saga fed from the bus folded and acknowledged.\n"
          "# TYPE orderflow_saga_bus_folded_total counter\norderflow_saga_bus_folded_total{{consumer=\"{}\"}} {}\n",
          c, b->folded);
      add("# HELP orderflow_saga_bus_repeats_total Messages acknowledged as repeats of events already folded.\n"
          "# TYPE orderflow_saga_bus_repeats_total counter\norderflow_saga_bus_repeats_total{{consumer=\"{}\"}} {}\n",
          c, b->repeats);
      add("# HELP orderflow_saga_bus_store_events_total Events the saga fed from the bus read from the store (its "
          "catch-up to the horizon, and gaps filled).\n"
          "# TYPE orderflow_saga_bus_store_events_total counter\n"
          "orderflow_saga_bus_store_events_total{{consumer=\"{}\"}} {}\n",
          c, b->from_store);
      add("# HELP orderflow_saga_bus_gaps_filled_total Gaps the saga fed from the bus filled from the store.\n"
          "# TYPE orderflow_saga_bus_gaps_filled_total counter\n"
          "orderflow_saga_bus_gaps_filled_total{{consumer=\"{}\"}} {}\n",
          c, b->gaps_filled);
      add("# HELP orderflow_saga_bus_dead_letters_total Messages the saga fed from the bus sent to the dead "
          "letters (undecodable).\n"
          "# TYPE orderflow_saga_bus_dead_letters_total counter\n"
          "orderflow_saga_bus_dead_letters_total{{consumer=\"{}\"}} {}\n",
          c, b->dead_lettered);
    }
  }

  if (runner) {
    auto status = runner->status();
    add("# HELP orderflow_projection_position The position each projection has applied.\n"
        "# TYPE orderflow_projection_position gauge\n");
    for (const auto& s : status) add("orderflow_projection_position{{projection=\"{}\"}} {}\n", s.name, s.position.value());
    add("# HELP orderflow_projection_lag Events the projection is behind the store.\n"
        "# TYPE orderflow_projection_lag gauge\n");
    for (const auto& s : status) add("orderflow_projection_lag{{projection=\"{}\"}} {}\n", s.name, s.lag);
    add("# HELP orderflow_projection_lag_age_seconds Age of the oldest event the projection has not applied "
        "(0: caught up).\n"
        "# TYPE orderflow_projection_lag_age_seconds gauge\n");
    for (const auto& s : status)
      add("orderflow_projection_lag_age_seconds{{projection=\"{}\"}} {}\n", s.name,
          s.lag > 0 ? ctx.events.age_seconds(s.position + 1, now_ms) : 0.0);
    add("# HELP orderflow_projection_lag_seconds From an append to its event being in the projection's live copy.\n"
        "# TYPE orderflow_projection_lag_seconds histogram\n");
    for (const auto& l : runner->lags()) add_lag_histogram(out, l);
    add("# HELP orderflow_projection_up 1 while the projection runs, rebuilds or follows another process's, 0 when "
        "failed or stopped.\n"
        "# TYPE orderflow_projection_up gauge\n");
    for (const auto& s : status)
      add("orderflow_projection_up{{projection=\"{}\"}} {}\n", s.name,
          s.state == es::ProjectionState::running || s.state == es::ProjectionState::rebuilding ||
                  s.state == es::ProjectionState::following
              ? 1
              : 0);
  }

  if (ctx.bus_projector) {
    // The read models it feeds, as /api/v1/admin/projections shows them: the highest position
    // applied and the events of the store past it (of other streams, events below it may be
    // on their way). Without the age of the oldest event not applied: the bus does not say
    // which that is.
    const auto b = ctx.bus_projector->status();
    const auto fed = ctx.bus_projector->projections();
    add("# HELP orderflow_projection_position The position each projection has applied.\n"
        "# TYPE orderflow_projection_position gauge\n");
    for (const auto& p : fed)
      add("orderflow_projection_position{{projection=\"{}\"}} {}\n", p.name, p.position.value());
    if (last) {
      add("# HELP orderflow_projection_lag Events the projection is behind the store.\n"
          "# TYPE orderflow_projection_lag gauge\n");
      for (const auto& p : fed)
        add("orderflow_projection_lag{{projection=\"{}\"}} {}\n", p.name,
            std::max<std::int64_t>(0, last->value() - std::max(p.position, b.position).value()));
    }
    add("# HELP orderflow_projection_lag_seconds From an append to its event being in the projection's live copy.\n"
        "# TYPE orderflow_projection_lag_seconds histogram\n");
    for (const auto& l : ctx.bus_projector->lags()) add_lag_histogram(out, l);
    add("# HELP orderflow_projection_up 1 while the projection runs, rebuilds or follows another process's, 0 when "
        "failed or stopped.\n"
        "# TYPE orderflow_projection_up gauge\n");
    for (const auto& p : fed)
      add("orderflow_projection_up{{projection=\"{}\"}} {}\n", p.name, b.state == "consuming" ? 1 : 0);
  }

  if (exporter_) {
    const auto c = exporter_->counts();
    add("# HELP orderflow_trace_spans_exported_total Spans the OTLP collector took.\n"
        "# TYPE orderflow_trace_spans_exported_total counter\norderflow_trace_spans_exported_total {}\n"
        "# HELP orderflow_trace_spans_dropped_total Spans not exported: the queue was full, or their batch failed.\n"
        "# TYPE orderflow_trace_spans_dropped_total counter\n"
        "orderflow_trace_spans_dropped_total{{reason=\"queue_full\"}} {}\n"
        "orderflow_trace_spans_dropped_total{{reason=\"export_failed\"}} {}\n"
        "# HELP orderflow_trace_export_failures_total Export requests the collector did not take.\n"
        "# TYPE orderflow_trace_export_failures_total counter\norderflow_trace_export_failures_total {}\n",
        c.exported, c.dropped_queue_full, c.dropped_export_failed, c.export_failures);
  }

  const auto p = process_stats();
  add("# HELP process_cpu_seconds_total User and system CPU time spent.\n"
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n"
      "# HELP process_resident_memory_bytes Resident memory size.\n"
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n"
      "# HELP process_open_fds Open file descriptors.\n"
      "# TYPE process_open_fds gauge\nprocess_open_fds {}\n"
      "# HELP process_max_fds The limit of open file descriptors.\n"
      "# TYPE process_max_fds gauge\nprocess_max_fds {}\n"
      "# HELP process_start_time_seconds Start of the process since the unix epoch.\n"
      "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {:.2f}\n",
      p.cpu_seconds, p.resident_bytes, p.open_fds, p.max_fds, p.start_time_seconds);
  add("# HELP orderflow_thread_cpu_seconds_total CPU time (user and system) of this process's threads, by thread "
      "name.\n# TYPE orderflow_thread_cpu_seconds_total counter\n");
  for (const auto& [name, seconds] : thread_cpu_.count())
    add("orderflow_thread_cpu_seconds_total{{thread=\"{}\"}} {:.2f}\n", label_value(name), seconds);
  add("# HELP orderflow_build_info The build: version, git describe, build type and compiler (always 1).\n"
      "# TYPE orderflow_build_info gauge\n"
      "orderflow_build_info{{version=\"{}\",git=\"{}\",build_type=\"{}\",compiler=\"{}\"}} 1\n",
      build_info::version, build_info::git_describe, build_info::build_type, __VERSION__);
  return out;
}

}  // namespace orderflow::api
