// orderflow bench: each hot path's benchmark. Each prints a readable table and, last,
// one JSON line with at least bench, events_per_s (or requests_per_s), p50_us, p99_us.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/http_client.h"
#include "es/event_store.h"

namespace orderflow::cli {

struct AppendBenchOptions {
  int writers = 256;  // appends in flight at once
  int streams = 1000;
  std::int64_t events = 200000;
  int payload_bytes = 100;
  bool no_group_commit = false;
  std::string data = "./orderflow-bench";
  std::string store;  // empty: embedded SQLite in `data`; postgres://…: scratch schemas there
};
int bench_append(const AppendBenchOptions& options);

// The appends of one bench append run, made one at a time as they are needed, so memory
// does not grow with --events (a 10M run that made them all up front, and copied them for
// the store's run, reached 13 GB RSS). Append i writes one event, with a fresh
// time-ordered id, to stream `prefix-(i % streams)`.
class BenchRequests {
 public:
  BenchRequests(std::int64_t count, int streams, int payload_bytes, std::string prefix);
  std::int64_t size() const { return count_; }
  es::AppendRequest at(std::int64_t i) const;

 private:
  std::int64_t count_;
  int streams_;
  std::string prefix_, data_, metadata_;
};

// bench append's PostgreSQL runs (bench_append_postgres.cc), each named `run` and kept in
// a scratch schema of its own until drop_postgres_scratch.
Result<std::unique_ptr<es::EventStore>> open_postgres_scratch(const std::string& url, const std::string& run,
                                                              bool group_commit);
Result<double> raw_postgres_rows_per_s(const std::string& url, const std::string& run, const BenchRequests& reqs);
void drop_postgres_scratch(const std::string& url, const std::string& run);

struct ReadBenchOptions {
  std::string data = "./orderflow-bench";
  std::int64_t events = 1000000;  // filled in first if the store holds fewer
  int batch = 10000;
  std::string store;  // empty: embedded SQLite in `data`; postgres://…: a scratch schema there
};
int bench_read(const ReadBenchOptions& options);

// The CPU time (thread CPU, ns) one event like `sample` costs (es/event_hash.h): to hash
// into the chain (SHA-256: every append, open and verify pay it) and to checksum (XXH3:
// every append and every read pay it).
// The calling thread's CPU time so far, in ns: what a single-threaded loop costs, which
// other work on the machine disturbs far less than its wall-clock time.
double thread_cpu_ns();
// The same for the whole process (every thread's CPU time so far, in ns).
double process_cpu_ns();

struct RowCheckCost {
  double hash_ns = 0;
  double checksum_ns = 0;
};
RowCheckCost row_check_cost(const es::RecordedEvent& sample);

// Appends events in 100-event appends, 64 in flight, until the store holds `target`.
Result<void> fill_store(es::EventStore& store, std::int64_t target);

// Appends a mix that touches every projection (products, accounts, orders placed and
// confirmed, stock reserved, accounts charged), 64 appends in flight, until the store holds
// at least `target` events.
Result<void> fill_projection_mix(es::EventStore& store, std::int64_t target);
// CPU seconds this process has used (every thread): beside the wall clock, a figure that
// other work on this shared machine does not inflate.
double cpu_seconds();

struct ProjectionBenchOptions {
  std::string data = "./orderflow-bench";
  std::int64_t events = 1000000;  // filled in first if the store holds fewer
  std::size_t batch = 0;  // events per projection batch; 0: the runner's default
};
int bench_projection(const ProjectionBenchOptions& options);

struct HttpBenchOptions {
  std::string target = "http://127.0.0.1:8080";
  std::string scenario = "place-order";  // place-order, deposit, get-product, get-order, list-orders
  int connections = 64;
  double duration_s = 10;
  double warmup_s = 2;
  int io_threads = 1;
  double rate = 0;  // requests/s over all connections; 0: unlimited
  std::string token;  // a bearer token (an admin's: the seeding registers products) for a server with --auth-keys
  // Accounts are opened with an owner and orders placed with a shipping address: personal
  // data, sealed by the server (crypto-shredding), so its cost is measured.
  bool personal_data = false;
  // After write scenarios, the projections' lag is also read from this server (e.g. a
  // bus-fed projector process, `serve --roles projector,query --bus …`): empty, only the target's.
  std::string lag_from;
};
int bench_http(const HttpBenchOptions& options);

// The products and accounts the HTTP benchmarks order with, registered (accounts funded)
// through the API under names of their own run.
struct BenchCatalogue {
  static constexpr int kProducts = 200;
  static constexpr int kCustomers = 1000;
  std::string run;
  std::string product(std::uint64_t i) const;   // bench-<run>-p<i % kProducts>
  std::string customer(std::uint64_t i) const;  // bench-<run>-c<i % kCustomers>
};
// With `accounts` false, only the products.
Result<BenchCatalogue> seed_catalogue(const HttpTarget& target, bool accounts, bool personal_data = false);

struct SoakBenchOptions {
  std::string data = "./orderflow-soak";  // the data directory serve runs on
  std::int64_t events = 0;                // filled in first if its store holds fewer
  double minutes = 5;
  double rate = 1500;  // requests/s over all connections
  int connections = 64;
  std::string binary;  // the orderflow that runs serve; empty: this one
};
int bench_soak(const SoakBenchOptions& options);

struct RelayBenchOptions {
  std::string bus;  // nats://… or kafka://…: a running bus
  std::int64_t events = 100000;
  std::string data = "./orderflow-bench";  // the store relayed (bench-relay.db, made anew)
  std::string topic_prefix = "orderflow.events";
};
int bench_relay(const RelayBenchOptions& options);

struct ConsumeBenchOptions {
  std::string bus;  // nats://… or kafka://…: a running bus, fresh (its old messages would be consumed too)
  std::int64_t events = 100000;  // the log relayed, then built from the bus and from the log
  double rate = 5000;            // events a second appended in the live phase
  int seconds = 10;              // of the live phase
  std::string data = "./orderflow-bench";  // bench-consume*.db, made anew
};
int bench_consume(const ConsumeBenchOptions& options);

// For --scenario place-order-confirmed (bench_saga.cc): orders of customers named
// `customer_prefix`… that reached CONFIRMED per second in [from_ms, to_ms) and their
// place->confirmed latency, printed and added to `out`.
Result<void> measure_confirmations(const HttpTarget& target, const std::string& customer_prefix, std::int64_t from_ms,
                                   std::int64_t to_ms, boost::json::object& out);

}  // namespace orderflow::cli
