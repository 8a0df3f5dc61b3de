// orderflow bench append: durable appends with N in flight, against the same rows
// inserted raw (1000 per transaction) on the same disk (or PostgreSQL server) in the same run, and against
// one transaction per append (--no-group-commit) as the baseline group commit beats.
#include <fmt/core.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "cli/bench.h"
#include "core/mutex.h"
#include "cli/progress.h"
#include "core/latency.h"
#include "core/uuid.h"
#include "es/append_metrics.h"
#include "cli/store_factory.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

BenchRequests::BenchRequests(std::int64_t count, int streams, int payload_bytes, std::string prefix)
    : count_(count),
      streams_(streams),
      prefix_(std::move(prefix)),
      data_("{\"p\":\"" + std::string(static_cast<std::size_t>(payload_bytes), 'x') + "\"}"),
      metadata_(R"({"correlation_id":"bench","actor":"bench"})") {}

es::AppendRequest BenchRequests::at(std::int64_t i) const {
  es::AppendRequest r;
  r.stream_id = es::StreamId(prefix_ + "-" + std::to_string(i % streams_));
  r.expected = es::ExpectedVersion::any();
  r.events.push_back({uuid_v7(), "BenchEvent", 1, data_, metadata_});
  r.fresh_event_ids = true;  // made just now, as the server marks the ids it makes
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;

// Each million appends acknowledged, as the store fills (a run of at least two million):
// whether an append's cost grows with the log.
constexpr std::int64_t kSegment = 1000000;
struct Segment {
  std::int64_t through = 0;  // appends acknowledged at its end
  double seconds = 0;
  double cpu_ns = 0;  // the process's CPU time over it: what other work on the machine does not inflate
  std::optional<sqlite::SqliteEventStore::AppendLookups> lookups;  // the store's file reads to check appends
  LatencySamples latency;
  double per_s() const { return seconds > 0 ? static_cast<double>(kSegment) / seconds : 0; }
  double cpu_ns_per_event() const { return cpu_ns / static_cast<double>(kSegment); }
};

// The pipeline's batches over a run (es/append_metrics.h): how many, and the mean time of a
// batch's write (up to its COMMIT) and of its sync (the COMMIT's answer, or fsync).
struct BatchStats {
  std::uint64_t batches = 0;
  double appends = 0, write_seconds = 0, sync_seconds = 0;
  static BatchStats now() {
    auto& m = es::append_metrics();
    const auto appended = m.batch_appends.snapshot(), written = m.write_seconds.snapshot(),
               synced = m.sync_seconds.snapshot();
    return {appended.count, appended.sum, written.sum, synced.sum};
  }
  BatchStats since(const BatchStats& before) const {
    return {batches - before.batches, appends - before.appends, write_seconds - before.write_seconds,
            sync_seconds - before.sync_seconds};
  }
  double per_batch(double total) const { return batches ? total / static_cast<double>(batches) : 0; }
};

struct RunStats {
  BatchStats batches;
  double seconds = 0;
  double cpu_ns = 0;  // the process's CPU time over the run (the store's threads and the clients')
  std::int64_t appends = 0;
  std::int64_t conflicts = 0;
  LatencySamples latency;
  std::vector<Segment> segments;
  double per_s() const { return seconds > 0 ? static_cast<double>(appends) / seconds : 0; }
};

// How many file reads the store's append checks took so far (SQLite only).
using LookupCounter = std::function<sqlite::SqliteEventStore::AppendLookups()>;

// Keeps `in_flight` appends outstanding until every request is acknowledged. With one
// stream each slot appends with the exact version it last saw and retries on conflict
// with the version the conflict reports. Each request is made when it is first sent, in
// the timed loop (as the raw inserts make theirs).
Result<RunStats> run_appends(es::EventStore& store, const BenchRequests& reqs, int in_flight, bool exact,
                             const LookupCounter& lookups) {
  struct Slot {
    es::AppendRequest request;  // kept for a retry (exact versions only)
    es::StreamVersion expected = es::kNoStream;
    Clock::time_point started;
    bool retry = false;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(in_flight));
  Mutex mu;
  CondVar cv;
  std::vector<std::size_t> ready;
  std::optional<Error> failure;
  RunStats stats;
  const auto total = static_cast<std::size_t>(reqs.size());
  stats.latency.reserve(total);
  std::size_t next = 0, done = 0;
  Progress progress("bench append", total, [&] {
    MutexLock lk(mu);
    return static_cast<std::uint64_t>(done);
  });

  for (std::size_t s = 0; s < slots.size(); ++s) ready.push_back(s);
  const bool segmented = reqs.size() >= 2 * kSegment;
  Segment segment;
  const auto batches_before = BatchStats::now();
  auto start = Clock::now();
  auto segment_start = start;
  const double cpu_start = process_cpu_ns();
  double segment_cpu_start = cpu_start;
  std::optional<sqlite::SqliteEventStore::AppendLookups> segment_lookups_start;
  if (lookups) segment_lookups_start = lookups();
  std::vector<std::size_t> batch;
  while (done < total) {
    {
      MutexLock lk(mu);
      cv.wait(mu, [&]() REQUIRES(mu) { return !ready.empty() || failure; });
      if (failure) return fail(*failure);
      batch.swap(ready);
    }
    for (auto s : batch) {
      auto& slot = slots[s];
      if (!slot.retry) {
        if (next == total) continue;
        slot.request = reqs.at(static_cast<std::int64_t>(next++));
        slot.started = Clock::now();
      }
      slot.retry = false;
      auto req = exact ? slot.request : std::move(slot.request);
      if (exact)
        req.expected = slot.expected == es::kNoStream ? es::ExpectedVersion::no_stream()
                                                      : es::ExpectedVersion::exact(slot.expected);
      store.append_async(std::move(req), [&, s](Result<es::AppendResult> r) {
        auto& sl = slots[s];
        MutexLock lk(mu);
        if (r) {
          const auto now = Clock::now();
          stats.latency.record(now - sl.started);
          sl.expected = r->version;
          ++done;
          if (segmented) {
            segment.latency.record(now - sl.started);
            if (static_cast<std::int64_t>(done) % kSegment == 0) {
              segment.through = static_cast<std::int64_t>(done);
              segment.seconds = std::chrono::duration<double>(now - segment_start).count();
              const double cpu_now = process_cpu_ns();
              segment.cpu_ns = cpu_now - segment_cpu_start;
              if (lookups) {
                const auto now_lookups = lookups();
                segment.lookups = {now_lookups.event_ids - segment_lookups_start->event_ids,
                                   now_lookups.versions - segment_lookups_start->versions};
                segment_lookups_start = now_lookups;
              }
              stats.segments.push_back(std::move(segment));
              segment = Segment{};
              segment_start = now;
              segment_cpu_start = cpu_now;
            }
          }
        } else if (r.error().code == Errc::version_conflict && exact) {
          sl.expected = r.error().current_version.value_or(es::kNoStream);
          sl.retry = true;
          ++stats.conflicts;
        } else {
          failure = r.error();
        }
        ready.push_back(s);
        cv.notify_one();
      });
    }
    batch.clear();
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.cpu_ns = process_cpu_ns() - cpu_start;
  stats.appends = static_cast<std::int64_t>(done);
  stats.batches = BatchStats::now().since(batches_before);
  return stats;
}

std::string scratch_file(const AppendBenchOptions& o, const std::string& run) {
  return (std::filesystem::path(o.data) / fmt::format("bench-{}-{}.db", run, ::getpid())).string();
}

void remove_scratch(const AppendBenchOptions& o, const std::string& run) {
  if (is_postgres_url(o.store)) return drop_postgres_scratch(o.store, run);
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(scratch_file(o, run) + suffix);
}

// A fresh store for one run, removed after it.
Result<RunStats> run_store(const AppendBenchOptions& o, const std::string& run, const BenchRequests& reqs, bool exact,
                           bool group_commit) {
  std::unique_ptr<es::EventStore> store;
  LookupCounter lookups;
  if (is_postgres_url(o.store)) {
    OF_ASSIGN_OR_RETURN(auto opened, open_postgres_scratch(o.store, run, group_commit));
    store = std::move(opened);
  } else {
    sqlite::SqliteEventStoreOptions options;
    options.path = scratch_file(o, run);
    options.pipeline.group_commit = group_commit;
    OF_ASSIGN_OR_RETURN(auto opened, sqlite::SqliteEventStore::open(options));
    lookups = [sqlite_store = opened.get()] { return sqlite_store->append_lookups(); };
    store = std::move(opened);
  }
  auto stats = run_appends(*store, reqs, o.writers, exact, lookups);
  store.reset();
  remove_scratch(o, run);
  return stats;
}

// The limit: the same rows inserted with no event-store logic, 1000 per transaction,
// into an events table indexed as an event store needs it: by event id and by
// (stream, version). `stream_index` false: without the second index (the store keeps
// it apart and fills it behind the events; printed to show what that is worth).
Result<double> raw_sqlite_rows_per_s(const std::string& path, const BenchRequests& reqs, bool stream_index) {
  OF_ASSIGN_OR_RETURN(auto db, sqlite::Database::open(path));
  OF_RETURN_IF_ERROR(
      db.exec(std::string("CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
                          "stream_id TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, "
                          "schema_version INTEGER NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, "
                          "recorded_at INTEGER NOT NULL") +
              (stream_index ? ", UNIQUE (stream_id, version)) STRICT" : ") STRICT")));
  OF_ASSIGN_OR_RETURN(auto insert, db.prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
  std::unordered_map<es::StreamId, es::StreamVersion> versions;
  auto start = Clock::now();
  std::int64_t position = 0;
  for (std::int64_t i = 0; i < reqs.size(); i += 1000) {
    OF_RETURN_IF_ERROR(db.exec("BEGIN"));
    for (std::int64_t j = i; j < std::min(reqs.size(), i + 1000); ++j) {
      const auto req = reqs.at(j);
      const auto& e = req.events[0];
      ++position;
      OF_RETURN_IF_ERROR(insert.bind(1, position)
                             .bind(2, e.event_id)
                             .bind(3, req.stream_id.view())
                             .bind(4, (++versions.try_emplace(req.stream_id, es::kNoStream).first->second).value())
                             .bind(5, e.type)
                             .bind(6, e.schema_version)
                             .bind(7, e.data)
                             .bind(8, e.metadata)
                             .bind(9, position)
                             .run());
    }
    OF_RETURN_IF_ERROR(db.exec("COMMIT"));
  }
  return static_cast<double>(reqs.size()) / std::chrono::duration<double>(Clock::now() - start).count();
}

Result<double> raw_rows_per_s(const AppendBenchOptions& o, const BenchRequests& reqs, bool stream_index = true) {
  auto raw = is_postgres_url(o.store) ? raw_postgres_rows_per_s(o.store, "raw", reqs)
                                      : raw_sqlite_rows_per_s(scratch_file(o, "raw"), reqs, stream_index);
  remove_scratch(o, "raw");
  return raw;
}

}  // namespace

int bench_append(const AppendBenchOptions& o) {
  if (o.writers < 1 || o.streams < 1 || o.events < 1 || o.payload_bytes < 0)
    return runtime_failure("--writers, --streams and --events must be at least 1");
  std::error_code ec;
  std::filesystem::create_directories(o.data, ec);
  if (ec) return runtime_failure("cannot create " + o.data + ": " + ec.message());
  const bool exact = o.streams == 1;
  const std::string prefix = "bench" + uuid_v7().substr(0, 8);

  const BenchRequests reqs(o.events, o.streams, o.payload_bytes, prefix);
  auto raw = raw_rows_per_s(o, reqs);
  if (!raw) return runtime_failure(raw.error().message);
  std::optional<double> raw_unindexed;
  if (!is_postgres_url(o.store)) {
    auto r = raw_rows_per_s(o, reqs, false);
    if (!r) return runtime_failure(r.error().message);
    raw_unindexed = *r;
  }

  auto main_run = run_store(o, "append", reqs, exact, !o.no_group_commit);
  if (!main_run) return runtime_failure(main_run.error().message);
  auto& m = *main_run;

  // The baseline in the same run: one transaction and one sync per append, on enough
  // appends for a stable rate (it is ~100x slower, so fewer of them).
  std::optional<RunStats> baseline;
  if (!o.no_group_commit) {
    auto n = std::clamp<std::int64_t>(o.events / 50, 500, 4000);
    auto b = run_store(o, "baseline", BenchRequests(n, o.streams, o.payload_bytes, prefix + "b"), exact, false);
    if (!b) return runtime_failure(b.error().message);
    baseline = std::move(*b);
  }

  auto p50 = m.latency.percentile_us(0.50), p99 = m.latency.percentile_us(0.99);
  fmt::print("bench append: {} appends of 1 event ({} B payload), {} in flight, {} stream(s), {}\n",
             o.events, o.payload_bytes, o.writers, o.streams,
             o.no_group_commit ? "one transaction per append" : "group commit");
  const double cpu_per_event = m.cpu_ns / static_cast<double>(std::max<std::int64_t>(m.appends, 1));
  fmt::print("  {:<34} {:>12.0f} events/s   p50 {:>6} us   p99 {:>6} us   {:.0f} ns CPU/event\n", "event store",
             m.per_s(), p50, p99, cpu_per_event);
  const char* store_name = is_postgres_url(o.store) ? "postgres" : "sqlite";
  fmt::print("  {:<34} {:>12.0f} rows/s     ({:.2f}x of it reached)\n",
             is_postgres_url(o.store) ? "raw PostgreSQL INSERT, 1000/txn" : "raw SQLite insert, 1000/txn", *raw,
             m.per_s() / *raw);
  if (raw_unindexed)
    fmt::print("  {:<34} {:>12.0f} rows/s     ({:.2f}x of it reached)\n", "same, no (stream, version) index",
               *raw_unindexed, m.per_s() / *raw_unindexed);
  if (baseline)
    fmt::print("  {:<34} {:>12.0f} events/s   (group commit is {:.1f}x faster)\n",
               "no group commit (1 txn per append)", baseline->per_s(), m.per_s() / baseline->per_s());
  if (exact) fmt::print("  conflicts answered and retried: {}\n", m.conflicts);
  const auto& b = m.batches;
  fmt::print("  {:<34} {:>12} batches    {:.1f} appends each, write {:.0f} us, sync {:.0f} us (means)\n",
             "batches (transactions)", b.batches, b.per_batch(b.appends), 1e6 * b.per_batch(b.write_seconds),
             1e6 * b.per_batch(b.sync_seconds));
  std::string per_million;
  for (auto& seg : m.segments) {
    const auto p99_seg = seg.latency.percentile_us(0.99);
    std::string looked_up, looked_up_json;
    if (seg.lookups) {
      looked_up = fmt::format("   lookups: {} event ids, {} versions", seg.lookups->event_ids, seg.lookups->versions);
      looked_up_json = fmt::format(R"(,"event_id_lookups":{},"version_lookups":{})", seg.lookups->event_ids,
                                   seg.lookups->versions);
    }
    fmt::print("  {:<34} {:>12.0f} events/s   p99 {:>6} us   {:.0f} ns CPU/event{}\n",
               fmt::format("events {}M-{}M", (seg.through - kSegment) / kSegment, seg.through / kSegment), seg.per_s(),
               p99_seg, seg.cpu_ns_per_event(), looked_up);
    per_million += fmt::format(R"({}{{"through":{},"events_per_s":{:.0f},"p99_us":{},"cpu_ns_per_event":{:.0f}{}}})",
                               per_million.empty() ? "" : ",", seg.through, seg.per_s(), p99_seg, seg.cpu_ns_per_event(),
                               looked_up_json);
  }
  // The writer hashes every event into the chain and checksums it: its CPU per event, and
  // the share of one core that is at this rate.
  const auto sample = reqs.at(0);
  const auto& e = sample.events.front();
  const auto cost = row_check_cost(
      es::RecordedEvent{e.event_id, sample.stream_id, e.type, es::StreamVersion{0}, es::Position{1}, e.schema_version, e.data, e.metadata, 0});
  fmt::print("  {:<34} {:>12.0f} ns/event   ({:.1f}% of one core at this rate)\n", "hash chain (SHA-256)", cost.hash_ns,
             100 * cost.hash_ns * 1e-9 * m.per_s());
  const bool checksums = !is_postgres_url(o.store);  // PostgreSQL's rows carry none
  if (checksums)
    fmt::print("  {:<34} {:>12.0f} ns/event   ({:.1f}% of one core at this rate)\n", "row checksum (XXH3)",
               cost.checksum_ns, 100 * cost.checksum_ns * 1e-9 * m.per_s());

  std::string json = fmt::format(
      R"({{"bench":"append","store":"{}","writers":{},"streams":{},"events":{},"payload_bytes":{},)"
      R"("group_commit":{},"events_per_s":{:.0f},"p50_us":{},"p99_us":{},"cpu_ns_per_event":{:.0f},"raw_rows_per_s":{:.0f},"ratio_to_raw":{:.3f})",
      store_name, o.writers, o.streams, o.events, o.payload_bytes, !o.no_group_commit, m.per_s(), p50, p99,
      cpu_per_event, *raw,
      m.per_s() / *raw);
  if (raw_unindexed)
    json += fmt::format(R"(,"raw_unindexed_rows_per_s":{:.0f},"ratio_to_raw_unindexed":{:.3f})", *raw_unindexed,
                        m.per_s() / *raw_unindexed);
  if (baseline)
    json += fmt::format(R"(,"no_group_commit_events_per_s":{:.0f},"group_commit_speedup":{:.1f})",
                        baseline->per_s(), m.per_s() / baseline->per_s());
  if (exact) json += fmt::format(R"(,"conflicts":{})", m.conflicts);
  json += fmt::format(R"(,"batches":{},"appends_per_batch":{:.1f},"batch_write_us":{:.0f},"batch_sync_us":{:.0f})",
                      b.batches, b.per_batch(b.appends), 1e6 * b.per_batch(b.write_seconds),
                      1e6 * b.per_batch(b.sync_seconds));
  if (!m.segments.empty()) json += R"(,"per_million":[)" + per_million + "]";
  json += fmt::format(R"(,"hash_ns_per_event":{:.0f})", cost.hash_ns);
  if (checksums) json += fmt::format(R"(,"check_ns_per_event":{:.0f})", cost.checksum_ns);
  fmt::print("{}}}\n", json);
  return 0;
}

}  // namespace orderflow::cli
