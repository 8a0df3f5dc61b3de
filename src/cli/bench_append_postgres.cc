// bench append on PostgreSQL: every run in a scratch schema of its own, dropped after, so
// the benchmark never touches the database's real store.
#include <unistd.h>

#include <chrono>
#include <unordered_map>

#include "cli/bench.h"
#include "store/postgres/migrations.h"
#include "store/postgres/postgres_event_store.h"

namespace orderflow::cli {

namespace {

std::string scratch_schema(const std::string& run) {
  return "orderflow_bench_" + std::to_string(::getpid()) + "_" + run;
}

}  // namespace

Result<std::unique_ptr<es::EventStore>> open_postgres_scratch(const std::string& url, const std::string& run,
                                                              bool group_commit) {
  postgres::PostgresEventStoreOptions options;
  options.conninfo = url;
  options.schema = scratch_schema(run);
  options.pipeline.group_commit = group_commit;
  OF_ASSIGN_OR_RETURN(auto store, postgres::PostgresEventStore::open(options));
  return std::unique_ptr<es::EventStore>(std::move(store));
}

void drop_postgres_scratch(const std::string& url, const std::string& run) {
  if (auto c = postgres::Connection::open(url, ""))
    (void)c->exec("DROP SCHEMA IF EXISTS " + postgres::quote_identifier(scratch_schema(run)) + " CASCADE");
}

// The limit: the same rows, no event-store logic, one multi-row INSERT (the statement the
// store writes with) of 1000 rows per durable transaction.
Result<double> raw_postgres_rows_per_s(const std::string& url, const std::string& run, const BenchRequests& reqs) {
  OF_ASSIGN_OR_RETURN(auto conn, postgres::Connection::open(url, scratch_schema(run)));
  OF_RETURN_IF_ERROR(postgres::migrate(conn, scratch_schema(run)));
  std::unordered_map<es::StreamId, es::StreamVersion> versions;
  auto start = std::chrono::steady_clock::now();
  std::int64_t position = 0;
  for (std::int64_t i = 0; i < reqs.size(); i += 1000) {
    postgres::ArrayLiteral positions, ids, streams, stream_versions, types, schema_versions, data, metadata,
        recorded_at, hashes;
    for (std::int64_t j = i; j < std::min(reqs.size(), i + 1000); ++j) {
      const auto req = reqs.at(j);
      const auto& e = req.events[0];
      positions.add(++position);
      ids.add(e.event_id);
      streams.add(req.stream_id.view());
      stream_versions.add((++versions.try_emplace(req.stream_id, es::kNoStream).first->second).value());
      types.add(e.type);
      schema_versions.add(std::int64_t{e.schema_version});
      data.add(e.data);
      metadata.add(e.metadata);
      recorded_at.add(position);
      hashes.add(std::string(64, '0'));  // rows as wide as the store's, not a chain: only the insert is measured
    }
    const auto zero_hashes = hashes.done();
    OF_RETURN_IF_ERROR(conn.query(
        {postgres::kInsertEvents,
         {positions.done(), ids.done(), streams.done(), stream_versions.done(), types.done(), schema_versions.done(),
          data.done(), metadata.done(), recorded_at.done(), zero_hashes, zero_hashes}}));
  }
  return static_cast<double>(reqs.size()) /
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace orderflow::cli
