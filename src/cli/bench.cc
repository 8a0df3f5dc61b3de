#include "cli/bench.h"

#include <time.h>

#include <memory>

#include "es/event_hash.h"

namespace orderflow::cli {

double thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

double process_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

RowCheckCost row_check_cost(const es::RecordedEvent& sample) {
  constexpr int kRounds = 100000;
  const auto fields = es::hashed_fields(sample);
  es::EventHash h{};
  auto start = thread_cpu_ns();
  for (int i = 0; i < kRounds; ++i) h = es::event_hash(h, fields);
  RowCheckCost cost;
  cost.hash_ns = (thread_cpu_ns() - start) / kRounds;
  es::EventChecksum sum = 0;
  auto varied = fields;
  start = thread_cpu_ns();
  for (int i = 0; i < kRounds; ++i) {
    varied.version = static_cast<es::StreamVersion>(sum & 1);  // each round depends on the last
    sum = es::event_checksum(varied);
  }
  cost.checksum_ns = (thread_cpu_ns() - start) / kRounds;
  asm volatile("" : : "g"(&h), "g"(&sum), "g"(&varied) : "memory");  // the results are used, so the loops stay
  return cost;
}

void add_bench(CLI::App& root, Settings& settings, Action& action) {
  auto* bench = root.add_subcommand("bench", "Run a benchmark; prints a table, then one JSON line");
  bench->require_subcommand(1);

  auto append = std::make_shared<AppendBenchOptions>();
  auto* a = bench->add_subcommand("append", "Durable appends with N in flight (group commit)");
  settings.add(*a, "writers", append->writers, "Appends in flight at once");
  settings.add(*a, "streams", append->streams, "Streams appended to (1: exact versions, retry on conflict)");
  settings.add(*a, "events", append->events, "Appends of one event each");
  settings.add(*a, "payload-bytes", append->payload_bytes, "Bytes of event data");
  settings.add(*a, "no-group-commit", append->no_group_commit, "One transaction and sync per append");
  settings.add(*a, "data", append->data, "Scratch directory on the disk to measure");
  settings.add(*a, "store", append->store, "postgres://USER@HOST:PORT/DB to measure PostgreSQL (scratch schemas)");
  a->callback([append, &action] { action = [append] { return bench_append(*append); }; });

  auto read = std::make_shared<ReadBenchOptions>();
  auto* r = bench->add_subcommand("read", "Read the whole log");
  settings.add(*r, "data", read->data, "Directory of the store to read (bench-read.db)");
  settings.add(*r, "events", read->events, "Events to fill the store with first if it has fewer");
  settings.add(*r, "batch", read->batch, "Events per read");
  settings.add(*r, "store", read->store, "postgres://USER@HOST:PORT/DB to measure PostgreSQL (a scratch schema)");
  r->callback([read, &action] { action = [read] { return bench_read(*read); }; });

  auto projection = std::make_shared<ProjectionBenchOptions>();
  auto* pr = bench->add_subcommand("projection", "Build and rebuild the read models from a store of E events");
  settings.add(*pr, "data", projection->data, "Directory of the store (bench-projection.db)");
  settings.add(*pr, "events", projection->events, "Events to fill the store with first if it has fewer");
  settings.add(*pr, "batch", projection->batch, "Events per projection batch (0: the default)");
  pr->callback([projection, &action] { action = [projection] { return bench_projection(*projection); }; });

  auto http = std::make_shared<HttpBenchOptions>();
  auto* h = bench->add_subcommand("http", "HTTP load against a running server (own load generator)");
  settings.add(*h, "target", http->target, "Server base URL, http://HOST:PORT");
  settings.add(*h, "scenario", http->scenario,
               "place-order, place-order-confirmed, flash-sale (one product, one account; to CONFIRMED), deposit, deposit-one-account (one stream), "
               "get-product, get-order or list-orders");
  settings.add(*h, "connections", http->connections, "Keep-alive connections, one request in flight each");
  settings.add(*h, "duration", http->duration_s, "Seconds measured");
  settings.add(*h, "warmup", http->warmup_s, "Seconds of load before measuring");
  settings.add(*h, "io-threads", http->io_threads, "Load generator threads");
  settings.add(*h, "rate", http->rate, "Requests per second over all connections (0: as fast as they go)")
      ->check(zero_or_more());
  settings.add(*h, "token", http->token, "Bearer token sent with every request (an admin's, for --auth-keys servers)",
               {.secret = true});
  settings.add(*h, "personal-data", http->personal_data,
               "Accounts with an owner, orders with a shipping address (personal data the server seals)");
  settings.add(*h, "lag-from", http->lag_from,
               "After write scenarios, also the projections' lag as this server measured it (http://HOST:PORT, "
               "e.g. a bus-fed projector process)");
  h->callback([http, &action] { action = [http] { return bench_http(*http); }; });

  auto soak = std::make_shared<SoakBenchOptions>();
  auto* so = bench->add_subcommand("soak", "Start serve on a data directory, time it to /readyz, then a steady mixed load; RSS every 10 s");
  settings.add(*so, "data", soak->data, "Data directory serve runs on (kept)");
  settings.add(*so, "events", soak->events, "Events to fill its store with first if it has fewer");
  settings.add(*so, "minutes", soak->minutes, "Minutes of load");
  settings.add(*so, "rate", soak->rate, "Requests per second over all connections")->check(above_zero());
  settings.add(*so, "connections", soak->connections, "Keep-alive connections");
  settings.add(*so, "binary", soak->binary, "The orderflow binary to run serve with (default: this one)");
  so->callback([soak, &action] { action = [soak] { return bench_soak(*soak); }; });

  auto relay = std::make_shared<RelayBenchOptions>();
  auto* re = bench->add_subcommand("relay", "The log relayed to a bus, beside a raw publish of the same messages");
  settings.add(*re, "bus", relay->bus, "A running bus: nats://HOST:PORT or kafka://HOST:PORT", {.required = true});
  settings.add(*re, "events", relay->events, "Events in the store relayed");
  settings.add(*re, "data", relay->data, "Scratch directory (bench-relay.db, made anew)");
  settings.add(*re, "topic-prefix", relay->topic_prefix, "Subjects/topics are PREFIX.CATEGORY");
  re->callback([relay, &action] { action = [relay] { return bench_relay(*relay); }; });

  auto consume = std::make_shared<ConsumeBenchOptions>();
  auto* co = bench->add_subcommand(
      "consume", "Read models built from the bus by a bus-fed projector, beside the log-tailing runner; live lag");
  settings.add(*co, "bus", consume->bus, "A running, fresh bus: nats://HOST:PORT or kafka://HOST:PORT",
               {.required = true});
  settings.add(*co, "events", consume->events, "Events in the store relayed, then built from the bus and the log");
  settings.add(*co, "rate", consume->rate, "Events a second appended in the live phase")->check(above_zero());
  settings.add(*co, "seconds", consume->seconds, "Seconds of the live phase")->check(above_zero());
  settings.add(*co, "data", consume->data, "Scratch directory (bench-consume*.db, made anew)");
  co->callback([consume, &action] { action = [consume] { return bench_consume(*consume); }; });
}

}  // namespace orderflow::cli
