// orderflow bench read: the whole log through the event store's scan, against a raw
// SQLite scan of the same table touching the same columns, in the same run. With
// --store postgres://…, the PostgreSQL store's scan in a scratch schema (no raw scan).
#include <fmt/core.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "cli/bench.h"
#include "cli/progress.h"
#include "core/latency.h"
#include "core/uuid.h"
#include "cli/store_factory.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Result<void> fill_store(es::EventStore& store, std::int64_t target) {
  OF_ASSIGN_OR_RETURN(auto have, store.last_position());
  std::int64_t missing = target - have.value();
  if (missing <= 0) return {};
  fmt::print("filling the store with {} events...\n", missing);
  Progress progress("filling the store", static_cast<std::uint64_t>(target), [&store] {
    auto last = store.last_position();
    return static_cast<std::uint64_t>(last ? last->value() : 0);
  });
  std::string data = R"({"order_id":"0190b3f0-0000-7000-8000-000000000000","quantity":3,"unit_price_cents":1299})";
  std::string metadata = R"({"correlation_id":"bench","actor":"bench"})";
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<bool> failed{false};
  const std::string prefix = "fill" + uuid_v7().substr(0, 8);
  for (std::int64_t i = 0; i < missing; i += 100) {
    while (in_flight.load() >= 64) std::this_thread::sleep_for(std::chrono::microseconds(200));
    es::AppendRequest req{es::StreamId(prefix + "-" + std::to_string(i / 100)), es::ExpectedVersion::no_stream(), {}, {}};
    for (std::int64_t j = i; j < std::min(missing, i + 100); ++j)
      req.events.push_back({uuid_v7(), "BenchEvent", 1, data, metadata});
    ++in_flight;
    store.append_async(std::move(req), [&](Result<es::AppendResult> r) {
      if (!r) failed = true;
      --in_flight;
    });
  }
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (failed) return fail(Errc::internal, "filling the store failed");
  return {};
}

namespace {

struct ScanRate {
  double per_s = 0;
  double cpu_ns = 0;  // the scanning thread's CPU time per row
};

ScanRate rate(std::int64_t rows, Clock::time_point start, double cpu_start) {
  const auto seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto n = static_cast<double>(std::max<std::int64_t>(rows, 1));
  return {static_cast<double>(rows) / seconds, (thread_cpu_ns() - cpu_start) / n};
}

Result<ScanRate> raw_scan(const std::string& path, std::int64_t& rows) {
  OF_ASSIGN_OR_RETURN(auto db, sqlite::Database::open(path, true));
  OF_ASSIGN_OR_RETURN(
      auto s,
      db.prepare("SELECT position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at "
                 "FROM events ORDER BY position"));
  std::size_t bytes = 0;
  rows = 0;
  auto start = Clock::now();
  const double cpu_start = thread_cpu_ns();
  for (;;) {
    OF_ASSIGN_OR_RETURN(auto row, s.step());
    if (!row) break;
    bytes += static_cast<std::size_t>(s.int64(0) + s.int64(3) + s.int64(5) + s.int64(8));
    for (int c : {1, 2, 4, 6, 7}) bytes += s.text(c).size();
    ++rows;
  }
  if (bytes == 0) fmt::print("");  // keeps the loop from being optimised away
  return rate(rows, start, cpu_start);
}

}  // namespace

int bench_read(const ReadBenchOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.data, ec);
  if (ec) return runtime_failure("cannot create " + o.data + ": " + ec.message());
  const bool postgres = is_postgres_url(o.store);
  // Dropped after the store is closed (declared before it).
  struct Drop {
    const ReadBenchOptions& o;
    bool postgres;
    ~Drop() {
      if (postgres) drop_postgres_scratch(o.store, "read");
    }
  } drop{o, postgres};
  std::unique_ptr<es::EventStore> opened;
  sqlite::SqliteEventStoreOptions options;
  options.path = (std::filesystem::path(o.data) / "bench-read.db").string();
  if (postgres) {
    auto s = open_postgres_scratch(o.store, "read", true);
    if (!s) return runtime_failure(s.error().message);
    opened = std::move(*s);
  } else {
    auto s = sqlite::SqliteEventStore::open(options);
    if (!s) return runtime_failure(s.error().message);
    opened = std::move(*s);
  }
  auto& store = *opened;
  if (auto r = fill_store(store, o.events); !r) return runtime_failure(r.error().message);

  std::int64_t raw_rows = 0;
  auto raw = postgres ? Result<ScanRate>(ScanRate{}) : raw_scan(options.path, raw_rows);
  if (!raw) return runtime_failure(raw.error().message);

  LatencySamples batches;
  std::int64_t events = 0;
  std::size_t bytes = 0;
  es::Position from{1};
  auto start = Clock::now();
  const double cpu_start = thread_cpu_ns();
  for (;;) {
    auto t0 = Clock::now();
    std::int64_t n = 0;
    auto next = store.scan_all(from, static_cast<std::size_t>(o.batch), {}, [&](const es::RecordedEvent& e) {
      bytes += e.data.size() + e.metadata.size();
      ++n;
    });
    if (!next) return runtime_failure(next.error().message);
    if (n == 0) break;
    batches.record(Clock::now() - t0);
    events += n;
    from = *next;
  }
  const auto scan = rate(events, start, cpu_start);
  const double per_s = scan.per_s;
  if (bytes == 0) fmt::print("");

  // Every event scanned is checked: on SQLite against its checksum (its hash only at open
  // and by verify), on PostgreSQL against its hash. Its share of the scan's time.
  auto sample = store.read_all(es::Position{1}, 1);
  if (!sample || sample->empty()) return runtime_failure("the store is empty");
  const auto cost = row_check_cost(sample->front());
  const double check_ns = postgres ? cost.hash_ns : cost.checksum_ns;
  const double check_share = check_ns * 1e-9 * per_s;

  auto p50 = batches.percentile_us(0.5), p99 = batches.percentile_us(0.99);
  fmt::print("bench read: {} events, {} per read\n", events, o.batch);
  fmt::print("  {:<24} {:>12.0f} events/s   per read: p50 {} us, p99 {} us; {:.0f} ns CPU/event\n", "event store scan",
             per_s, p50, p99, scan.cpu_ns);
  if (!postgres)
    fmt::print("  {:<24} {:>12.0f} rows/s     ({:.2f}x of it reached); {:.0f} ns CPU/row\n", "raw SQLite scan",
               raw->per_s, per_s / raw->per_s, raw->cpu_ns);
  fmt::print("  {:<24} {:>12.0f} ns/event   ({:.1f}% of the scan's time)\n",
             postgres ? "row checks (SHA-256)" : "row checks (XXH3)", check_ns, 100 * check_share);
  if (!postgres) fmt::print("  {:<24} {:>12.0f} ns/event   (open and verify only)\n", "hash chain (SHA-256)", cost.hash_ns);
  fmt::print(
      R"({{"bench":"read","store":"{}","events":{},"batch":{},"events_per_s":{:.0f},"p50_us":{},"p99_us":{},"cpu_ns_per_event":{:.0f},"raw_rows_per_s":{:.0f},"raw_cpu_ns_per_row":{:.0f},"ratio_to_raw":{:.3f},"check_ns_per_event":{:.0f},"check_share":{:.3f},"hash_ns_per_event":{:.0f}}})"
      "\n",
      postgres ? "postgres" : "sqlite", events, o.batch, per_s, p50, p99, scan.cpu_ns, raw->per_s, raw->cpu_ns,
      postgres ? 0.0 : per_s / raw->per_s, check_ns,
      check_share, cost.hash_ns);
  return 0;
}

}  // namespace orderflow::cli
