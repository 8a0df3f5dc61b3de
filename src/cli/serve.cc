// orderflow serve: the HTTP API on the chosen store, until SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <fmt/core.h>

#include <csignal>
#include <memory>
#include <optional>
#include <utility>

#include "api/access.h"
#include "api/api.h"
#include "api/http/server.h"
#include "api/metrics.h"
#include "app/bus_projector/bus_projector.h"
#include "app/dead_letters.h"
#include "app/command_handler.h"
#include "app/event_log.h"
#include "app/idempotency_retention.h"
#include "app/invariants.h"
#include "app/projections/read_side.h"
#include "app/relay/relay.h"
#include "app/saga/saga_admin.h"
#include "app/saga/saga_runner.h"
#include "cli/bus_factory.h"
#include "cli/commands.h"
#include "cli/store_factory.h"
#include "cli/waiting_server.h"
#include "core/log.h"
#include "core/otlp_exporter.h"
#include "core/time.h"

namespace orderflow::cli {

namespace {

constexpr std::string_view kRoles[] = {"command", "query", "admin", "projector", "saga", "relay"};

// Is `role` among the comma-separated `roles` (empty: every role)?
bool has_role(const std::string& roles, std::string_view role) {
  return roles.empty() || ("," + roles + ",").find("," + std::string(role) + ",") != std::string::npos;
}

// Only this machine can connect: localhost, 127.0.0.0/8, ::1.
bool is_loopback(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// --allowed-hosts as Host names compare: IPv6 addresses in brackets.
std::vector<std::string> allowed_hosts(const std::string& list, const std::string& listen_host) {
  std::vector<std::string> out;
  auto add = [&](std::string name) {
    if (name.empty()) return;
    if (name.find(':') != std::string::npos && name.front() != '[') name = "[" + name + "]";
    out.push_back(std::move(name));
  };
  if (list.empty()) {
    for (const char* name : {"localhost", "127.0.0.1", "::1"}) add(name);
    add(listen_host);
  }
  for (std::size_t from = 0; from < list.size();) {
    auto to = std::min(list.find(',', from), list.size());
    add(list.substr(from, to - from));
    from = to + 1;
  }
  return out;
}

// "HOST:PORT" as host and port; nothing if it is not one.
std::optional<std::pair<std::string, std::uint16_t>> split_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  int port = -1;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (port < 0 || port > 65535) return std::nullopt;
  return std::pair{listen.substr(0, colon), static_cast<std::uint16_t>(port)};
}

// The checks of --listen, --roles and the log options, made when the value is given (by a
// flag, a variable or the file), so that the error names where it came from.
CLI::Validator listen_address() {
  return CLI::Validator([](std::string& v) { return split_listen(v) ? "" : "must be HOST:PORT, not " + v; },
                        "HOST:PORT");
}

CLI::Validator role_list() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        for (std::size_t from = 0; !v.empty() && from <= v.size();) {
          auto to = std::min(v.find(',', from), v.size());
          if (std::find(std::begin(kRoles), std::end(kRoles), v.substr(from, to - from)) == std::end(kRoles))
            return "takes command, query, admin, projector, saga and relay, not " + v;
          from = to + 1;
        }
        return "";
      },
      "LIST");
}

CLI::Validator log_level() {
  return CLI::Validator(
      [](std::string& v) { return log::parse_level(v) ? "" : "takes debug, info, warn, error or off, not " + v; },
      "LEVEL");
}

CLI::Validator log_format() {
  return CLI::Validator([](std::string& v) { return log::parse_format(v) ? "" : "takes text or json, not " + v; },
                        "FORMAT");
}

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  StoreSpec store;
  BusSpec bus;
  std::string roles;
  std::string auth_keys;  // a KeyRing file; empty: authentication is off
  bool insecure = false;  // serve a non-loopback address without authentication
  std::string allowed_hosts;  // comma-separated; empty: localhost, 127.0.0.1, [::1] and the listen host
  int io_threads = 2;
  std::optional<int> blocking_threads;
  std::string log_level = "info", log_format = "text";
  bool access_log = false;
  std::string otlp_endpoint;  // empty: spans are not exported
  double trace_sample_ratio = 1;
  std::size_t max_connections = http::ServerOptions{}.max_connections;
  std::size_t max_connections_per_ip = http::ServerOptions{}.max_connections_per_ip;
  // Requests a second per caller (its token, else its address); unset: kDefaultRateLimit, or
  // off on a loopback address. 0: off.
  std::optional<double> rate_limit;
  double rate_burst = 0;  // 0: twice the rate (at least 1)
  std::string tls_cert, tls_key;  // PEM files; both or neither (plain HTTP)
  app::AdmissionLimits admission;
  std::int64_t idempotency_retention_s = 24 * 3600;  // 0: the records are kept for ever
};

// Enough for any one client an operator means to serve, low enough that one client cannot
// take the whole server (bench http place-order serves ~25k/s on two cores).
constexpr double kDefaultRateLimit = 1000;

// 100 years (--idempotency-retention-s): for longer, 0 keeps them for ever; past it, milliseconds could overflow.
constexpr std::int64_t kMaxRetentionS = std::int64_t{100} * 365 * 24 * 3600;

// One line per answered request, at info level (--access-log).
void log_access(const http::Observation& o) {
  log::info("http", "request",
            {{"method", http::method_name(o.method)},
             {"route", o.route.empty() ? std::string_view("none") : o.route},
             {"status", o.status},
             {"duration_ms", std::chrono::duration<double, std::milli>(o.elapsed).count()},
             {"bytes", o.bytes},
             {"trace_id", o.trace_id}});
}

int serve(const ServeOptions& o) {
  log::configure({.level = *log::parse_level(o.log_level), .format = *log::parse_format(o.log_format)});
  const auto [host, port] = *split_listen(o.listen);
  if (o.auth_keys.empty() && !o.insecure && !is_loopback(host)) {
    log::error("orderflow", "refusing to serve " + host +
                                " without authentication: give --auth-keys FILE, or --insecure to serve it open to "
                                "anyone who can reach it");
    return 2;
  }
  std::optional<api::KeyRing> keys;
  if (!o.auth_keys.empty()) {
    auto loaded = api::KeyRing::load(o.auth_keys);
    if (!loaded) {
      log::error("orderflow", "--auth-keys: " + loaded.error().message);
      return 2;
    }
    keys = std::move(*loaded);
  }
  const double rate = o.rate_limit.value_or(is_loopback(host) ? 0 : kDefaultRateLimit);
  // A read of PostgreSQL can wait on others (a lock, the network, a busy server); one of
  // SQLite's never does (WAL), and there the hop to another thread costs more than it saves
  // (GET /api/v1/orders at 16 connections: 27k-38k/s on the io threads, 16k-17k/s with 4
  // blocking threads).
  const int blocking_threads = o.blocking_threads.value_or(o.store.url.empty() ? 0 : 4);
  const double burst = o.rate_burst > 0 ? o.rate_burst : std::max(1.0, 2 * rate);
  if (rate > 0 && burst < 1) return usage_failure("--rate-burst must be at least 1 (a caller's first request)");
  std::optional<http::TlsFiles> tls;
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty()) return usage_failure("--tls-cert and --tls-key go together");
    tls = http::TlsFiles{o.tls_cert, o.tls_key};
    if (auto usable = http::check_tls(*tls); !usable) return usage_failure("TLS: " + usable.error().message);
  }
  if (!o.otlp_endpoint.empty() && !o.otlp_endpoint.starts_with("http://") && !o.otlp_endpoint.starts_with("https://"))
    return usage_failure("--otlp-endpoint must be http://HOST:PORT or https://HOST:PORT, not " + o.otlp_endpoint);
  if (!(o.trace_sample_ratio >= 0 && o.trace_sample_ratio <= 1))
    return usage_failure("--trace-sample-ratio takes a number from 0 to 1");
  std::optional<BusUrl> bus_url;
  if (!o.bus.url.empty()) {
    auto parsed = parse_bus_url(o.bus.url);
    if (!parsed) return usage_failure(parsed.error().message);
    // Without the relay, the bus feeds this process's projections and saga instead of the log.
    if (!has_role(o.roles, "relay") && !has_role(o.roles, "projector") && !has_role(o.roles, "saga"))
      return usage_failure("--bus needs the relay, the projector or the saga role");
    if (!has_role(o.roles, "relay") && o.bus.consumer == o.bus.saga_consumer && has_role(o.roles, "projector") &&
        has_role(o.roles, "saga"))
      return usage_failure("--bus-consumer and --bus-saga-consumer must differ: each reads every message");
    bus_url = std::move(*parsed);
  }

  std::string roles;
  for (auto role : kRoles)
    if (has_role(o.roles, role)) roles.append(roles.empty() ? "" : ",").append(role);
  log::info("serve", "starting",
            {{"listen", o.listen},
             {"store", o.store.url.empty() ? "embedded" : redacted_store_url(o.store.url)},
             {"data", o.store.data_dir},
             {"roles", roles},
             {"bus", o.bus.url.empty() ? "none" : o.bus.url},
             {"io_threads", o.io_threads},
             {"blocking_threads", blocking_threads},
             {"group_commit", o.store.pipeline.group_commit},
             {"max_batch", o.store.pipeline.max_batch},
             {"log_level", o.log_level},
             {"log_format", o.log_format},
             {"access_log", o.access_log},
             {"rate_limit", rate},
             {"rate_burst", rate > 0 ? burst : 0},
             {"tls_cert", o.tls_cert},
             {"max_saga_lag", o.admission.saga_lag},
             {"max_saga_lag_ms", o.admission.saga_lag_ms},
             {"max_projection_lag", o.admission.projection_lag},
             {"max_append_queue", o.admission.append_queue},

             {"otlp_endpoint", o.otlp_endpoint.empty() ? "none" : o.otlp_endpoint},
             {"trace_sample_ratio", fmt::format("{}", o.trace_sample_ratio)}});
  // Spans of requests, saga steps and projections go to the collector; new traces are
  // sampled with the ratio, a caller's traceparent decides for its trace.
  std::optional<OtlpExporter> exporter;
  if (!o.otlp_endpoint.empty()) exporter.emplace(OtlpOptions{.endpoint = o.otlp_endpoint, .service_version = ORDERFLOW_VERSION});
  configure_tracing(o.trace_sample_ratio, exporter ? &*exporter : nullptr);
  // A port another process holds ends this one before it opens the store: on a shared store
  // it would otherwise take the saga's, the relay's or the projections' lease on its way out.
  if (auto bindable = http::check_listen(host, port); !bindable) return runtime_failure(bindable.error().message);
  http::ServerOptions options;
  options.host = host;
  options.port = port;
  options.io_threads = o.io_threads;
  options.blocking_threads = blocking_threads;
  options.max_connections = o.max_connections;
  options.max_connections_per_ip = o.max_connections_per_ip;
  options.tls = tls;
  // Without authentication, only requests for this server's own names: a page a browser
  // loaded from elsewhere cannot reach it by rebinding a name to its address.
  if (!keys) options.allowed_hosts = allowed_hosts(o.allowed_hosts, host);
  // While it waits for a PostgreSQL not reachable yet, and until the server below takes the
  // port, /healthz answers 200 and everything else 503 (docs/api.md §1).
  std::unique_ptr<WaitingServer> waiting;
  auto waited = open_store_waiting(o.store, [&](const Error& error) {
    if (!waiting && (waiting = WaitingServer::start(options)) && options.port == 0) options.port = waiting->port();
    if (waiting) waiting->waiting_for_store(error);
  });
  if (waited.stopped) return 0;
  auto& store = waited.store;
  if (!store) return runtime_failure(store.error().message);
  if (waiting) waiting->store_opened();
  // Personal data is sealed under per-customer keys kept in the store (crypto-shredding).
  app::PersonalData personal(store->customer_keys(), store->events(), store->personal_data_options());
  app::CommandHandlerOptions command_options;
  command_options.shared_store = store->postgres != nullptr;  // other processes may append
  command_options.personal_data = &personal;
  app::CommandHandler commands(store->events(), &store->snapshots(), command_options);
  // --roles projector --bus (no relay): the projections are fed from the bus, not the log;
  // --roles saga --bus (no relay): so is the saga.
  const bool bus_fed = bus_url && !has_role(o.roles, "relay") && has_role(o.roles, "projector");
  const bool saga_bus_fed = bus_url && !has_role(o.roles, "relay") && has_role(o.roles, "saga");
  // Projections start with the server; /readyz waits for them to reach today's last position.
  // Fed from a bus, they (and the dead letters) are acknowledged to it after each commit,
  // so every commit is durable first.
  auto read_models = open_read_models(o.store, bus_fed || saga_bus_fed);
  if (!read_models) return runtime_failure(read_models.error().message);
  // Without the projector role, read models others write (PostgreSQL) are only followed.
  auto read = app::projections::ReadSide::open(std::move(*read_models), store->events(),
                                               {.claim = has_role(o.roles, "projector")});
  auto ready_position = store->events().last_position();
  if (!ready_position) return runtime_failure(ready_position.error().message);
  // What the relay reveals before it publishes, and a bus-fed projector's retry of a dead
  // letter before it applies the events it reads again from the store: null, nothing.
  app::PersonalData* const bus_personal = o.bus.personal_data == "sealed" ? nullptr : &personal;
  std::unique_ptr<es::BusConsumer> bus_consumer;
  std::optional<app::bus_projector::BusProjector> bus_projector;
  if (bus_fed) {
    bus_consumer = open_bus_consumer(*bus_url, o.bus);
    // A dead letter's retry reads its stream again from the store, revealed as the relay
    // publishes it.
    bus_projector.emplace(*read, *bus_consumer,
                          app::bus_projector::BusProjectorOptions{.bus = o.bus.url,
                                                                  .topic_prefix = o.bus.topic_prefix,
                                                                  .consumer = o.bus.consumer,
                                                                  .store = &store->events(),
                                                                  .personal_data = bus_personal});
    if (auto started = bus_projector->start(); !started) return runtime_failure(started.error().message);
  } else if (auto started = read->runner().start(); !started) {
    return runtime_failure(started.error().message);
  }
  api::Metrics metrics;
  if (exporter) metrics.set_exporter(&*exporter);
  if (store->sqlite) {
    metrics.set_data_dir(o.store.data_dir);
    metrics.add_section([files = std::vector<std::pair<std::string, std::string>>{
                             {"events", events_db_path(o.store)}, {"readmodels", read_models_db_path(o.store)}}](
                            std::string& out) { sqlite::render_metrics(out, files); });
  } else {
    metrics.add_section(&postgres::render_pool_metrics);
  }
  // The answers stored for Idempotency-Keys are deleted past their retention (docs/api.md
  // §2), by the processes that store them; within min(retention, 1 min) of expiring.
  std::optional<app::IdempotencyRetention> idempotency_retention;
  if (has_role(o.roles, "command") && o.idempotency_retention_s > 0) {
    const std::chrono::seconds retention(o.idempotency_retention_s);
    idempotency_retention.emplace(
        store->idempotency_records(),
        app::IdempotencyRetentionOptions{
            .retention = retention,
            .interval = std::min<std::chrono::milliseconds>(retention, std::chrono::minutes(1))});
    idempotency_retention->start();
    metrics.add_section([&expiry = *idempotency_retention](std::string& out) {
      out += fmt::format(
          "# HELP orderflow_idempotency_expired_total Answers stored for Idempotency-Keys deleted past their "
          "retention by this process.\n# TYPE orderflow_idempotency_expired_total counter\n"
          "orderflow_idempotency_expired_total {}\n",
          expiry.expired());
    });
  }
  app::EventLog event_log(store->events());
  api::ApiContext ctx{commands, event_log, read.get(), &metrics, *ready_position};
  ctx.personal = &personal;
  if (bus_projector) ctx.bus_projector = &*bus_projector;
  // The fulfilment saga (docs/api.md §5) resumes from its checkpoint. On a shared store it runs
  // in one process at a time: the holder of the saga lease (the others stand by).
  std::optional<app::saga::SagaRunner> saga;
  auto saga_lease = store->leader_lease("saga");
  if (has_role(o.roles, "saga")) {
    metrics.set_saga_running(saga_lease == nullptr);  // with a lease: once it is taken
    auto on_lead = [&metrics](bool leading) {
      metrics.set_saga_running(leading);
      log::info("saga", leading ? "this process holds the saga lease and runs the saga"
                                : "the saga lease is lost, standing by");
    };
    saga.emplace(commands, &store->checkpoints(), app::saga::SagaOptions{}, saga_lease.get(), on_lead);
    if (saga_bus_fed) {
      // Its own durable consumer / group: it reads every message the relay publishes.
      auto spec = o.bus;
      spec.consumer = o.bus.saga_consumer;
      saga->feed_from_bus({.open_consumer = [url = *bus_url, spec] { return open_bus_consumer(url, spec); },
                           .options = {.bus = o.bus.url,
                                       .topic_prefix = o.bus.topic_prefix,
                                       .consumer = o.bus.saga_consumer,
                                       // Listed by /api/v1/admin/dead-letters, retried from the store.
                                       .dead_letter_db = &read->db()}});
      ctx.saga_bus = &*saga;
    }
    if (auto started = saga->start(); !started) return runtime_failure(started.error().message);
  }
  // The saga's admin operations: of the saga running here, else read from its streams.
  app::saga::SagaAdmin saga_admin(store->events(), saga ? &*saga : nullptr);
  if (saga) metrics.set_saga(&*saga, &saga_admin);
  std::vector<app::bus_projector::BusDeadLetterSource*> bus_dead_letters;
  if (bus_projector) bus_dead_letters.push_back(&*bus_projector);
  if (saga && saga_bus_fed) bus_dead_letters.push_back(&*saga);
  app::DeadLetterAdmin dead_letters(saga_admin, bus_dead_letters);
  app::InvariantChecks invariants(store->events());
  // Clients' writes wait for nothing: past a bound they are refused (503 overloaded).
  auto& events = store->events();
  auto log_lag = [&events](std::optional<es::Position> next) -> std::optional<std::int64_t> {
    auto last = events.last_position();
    if (!next || !last) return std::nullopt;
    return std::max<std::int64_t>(0, *last + 1 - *next);
  };
  app::Admission admission(
      o.admission,
      {.saga_lag = [&] { return saga ? log_lag(saga->next_position()) : std::nullopt; },
       .saga_lag_ms = [&]() -> std::optional<std::int64_t> {
         auto next = saga ? saga->next_position() : std::nullopt;
         if (!next) return std::nullopt;
         return static_cast<std::int64_t>(event_log.age_seconds(*next, now_unix_ms()) * 1000);
       },
       .projection_lag =
           [&]() -> std::optional<std::int64_t> {
             if (!has_role(o.roles, "projector") || bus_fed) return std::nullopt;  // others fold them
             std::int64_t lag = 0;
             for (const auto& p : read->runner().status()) lag = std::max<std::int64_t>(lag, p.lag);
             return lag;
           },
       .append_queue = [&events]() -> std::optional<std::int64_t> {
         return static_cast<std::int64_t>(events.appends_queued());
       }});
  ctx.admission = &admission;
  // The bus relay (--bus): the log published to the bus, from its checkpoint; on a shared
  // store by the holder of the relay lease only.
  std::unique_ptr<es::BusPublisher> bus;
  std::optional<app::relay::Relay> relay;
  auto relay_lease = store->leader_lease("relay");
  if (bus_url && has_role(o.roles, "relay")) {
    bus = open_bus(*bus_url, o.bus);
    auto on_lead = [](bool leading) {
      log::info("relay", leading ? "this process holds the relay lease and relays the log to the bus"
                                 : "the relay lease is lost, standing by");
    };
    relay.emplace(store->events(), store->checkpoints(), *bus,
                  app::relay::RelayOptions{.bus = o.bus.url, .topic_prefix = o.bus.topic_prefix,
                                           .personal_data = bus_personal},
                  relay_lease.get(),
                  on_lead);
    relay->start();
    ctx.relay = &*relay;
  }

  if (o.access_log) {
    options.observe = [&metrics](const http::Observation& ob) {
      metrics.observe(ob);
      log_access(ob);
    };
  } else {
    options.observe = [&metrics](const http::Observation& ob) { metrics.observe(ob); };
  }
  auto router = api::make_router(ctx);
  api::add_saga_routes(router, saga_admin, dead_letters, invariants);
  // First of the guards: a route of a role this process lacks is answered 421 at once.
  api::serve_only(router, {.command = has_role(o.roles, "command"),
                           .query = has_role(o.roles, "query"),
                           .admin = has_role(o.roles, "admin")});
  std::optional<http::RateLimiter> limiter;
  std::optional<api::RateLimits> limits;
  if (rate > 0) {
    auto& made = limiter.emplace(http::RateLimiter::Options{.limit = {rate, burst}});
    limits.emplace(api::RateLimits{made, &metrics});
  }
  if (keys) {
    api::require_tokens(router, ctx, *keys, limits);
  } else if (limits) {
    api::limit_rates_by_address(router, *limits);
  }
  waiting.reset();  // the port is free again
  auto server = http::HttpServer::listen(std::move(router), options);
  if (!server) return runtime_failure(server.error().message);
  server->stop_on_signals({SIGINT, SIGTERM});
  if (tls) server->reload_tls_on_signals({SIGHUP});
  const auto url = fmt::format("{}://{}:{}", tls ? "https" : "http", options.host, server->port());
  log::info("serve", "serving", {{"url", url}, {"store", store->describe(o.store)}});
  // The line scripts wait for (docs/api.md §1).
  fmt::print("orderflow: serving {} ({})\n", url, store->describe(o.store));
  std::fflush(stdout);
  server->run();
  log::info("serve", "stopping: every request is answered");
  if (saga) saga->stop();  // answers of its commands in flight come before the store closes
  if (relay) relay->stop();
  if (bus_projector) bus_projector->stop();
  if (idempotency_retention) idempotency_retention->stop();
  // Pending read-your-writes waits are answered before the server goes; projections stop
  // before the store closes.
  read->runner().stop();
  for (const auto& p : read->runner().status())
    log::info("projections", "stopped", {{"projection", p.name}, {"position", p.position.value()}});
  configure_tracing(o.trace_sample_ratio, nullptr);
  if (exporter) {
    exporter.reset();  // sends what is queued
    log::info("tracing", "stopped: queued spans sent");
  }
  // Every in-flight request has been answered; finish accepted appends and close.
  auto last = store->events().last_position();
  store->close();
  log::info("serve", "stopped: accepted appends are written and the store is closed",
            {{"last_position", last ? last->value() : 0}});
  fmt::print("orderflow: stopped\n");
  return 0;
}

}  // namespace

void add_serve(CLI::App& root, Settings& settings, Action& action) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = root.add_subcommand("serve", "Serve the HTTP API");
  settings.add(*cmd, "listen", o->listen, "HOST:PORT to listen on (port 0: any free port)")->check(listen_address());
  add_store_settings(settings, *cmd, o->store);
  settings.add(*cmd, "bus", o->bus.url,
               "Relay the log to this bus: nats://HOST:PORT[,...] or kafka://HOST:PORT[,...]; without the relay "
               "role, the projector and saga roles are fed from it instead of the log");
  settings.add(*cmd, "bus-consumer", o->bus.consumer,
               "The JetStream durable consumer / Kafka consumer group a bus-fed projector reads with");
  settings.add(*cmd, "bus-saga-consumer", o->bus.saga_consumer,
               "The JetStream durable consumer / Kafka consumer group a bus-fed saga reads with (its own: it "
               "reads every message, in the log's order)");
  settings.add(*cmd, "bus-topic-prefix", o->bus.topic_prefix, "Subjects/topics are PREFIX.CATEGORY");
  settings.add(*cmd, "bus-personal-data", o->bus.personal_data,
               "What the bus carries of personal data: revealed (plaintext) or sealed (as stored, so an erasure "
               "reaches it); the same for every process on the bus")
      ->check(CLI::IsMember({"revealed", "sealed"}));
  settings.add(*cmd, "bus-replicas", o->bus.replicas, "Replicas of the JetStream stream the relay creates")
      ->check(CLI::Range(1, 5));
  settings
      .add(*cmd, "bus-session-timeout", o->bus.session_timeout_s,
           "Kafka consumer groups: seconds a member that stopped heartbeating (a killed process) keeps its "
           "partitions before the others get them (6 to 1800, a broker's default bounds)")
      ->check(CLI::Range(6, 1800));
  settings.add(*cmd, "roles", o->roles, "command,query,admin,projector,saga,relay (default: all)")->check(role_list());
  settings.add(*cmd, "io-threads", o->io_threads, "HTTP io threads")->check(above_zero());
  settings.add(*cmd, "blocking-threads", o->blocking_threads,
               "Threads answering listings (reads of many rows), so a slow read holds none of the io threads; 0: "
               "the io threads answer them (default: 4 on PostgreSQL, 0 on the embedded store)")
      ->check(CLI::Range(0, 256));
  settings.add(*cmd, "log-level", o->log_level, "debug, info, warn, error or off")->check(log_level());
  settings.add(*cmd, "log-format", o->log_format, "text or json (one JSON object per line)")->check(log_format());
  settings.add(*cmd, "access-log", o->access_log, "Log every answered request (method, route, status, duration, bytes)");
  settings.add(*cmd, "otlp-endpoint", o->otlp_endpoint,
               "Export spans over OTLP/HTTP (JSON) to this collector: http://HOST:PORT (POSTs to /v1/traces)");
  settings.add(*cmd, "trace-sample-ratio", o->trace_sample_ratio,
               "Share of new traces sampled (0 to 1); a request's traceparent decides for its own trace");
  settings.add(*cmd, "max-connections", o->max_connections, "Connections open at once; more get only /healthz and /readyz")
      ->check(above_zero());
  settings.add(*cmd, "max-connections-per-ip", o->max_connections_per_ip, "Connections open at once from one address")
      ->check(above_zero());
  settings.add(*cmd, "rate-limit", o->rate_limit,
               "Requests a second per caller (its token, else its address), over it 429; 0: off (default: off "
               "on a loopback address, 1000 elsewhere)")
      ->check(zero_or_more());
  settings.add(*cmd, "rate-burst", o->rate_burst, "Requests a caller may send at once (0: twice --rate-limit)")
      ->check(zero_or_more());
  settings.add(*cmd, "tls-cert", o->tls_cert,
               "PEM certificate chain: serve HTTPS (with --tls-key); SIGHUP reads both files again");
  settings.add(*cmd, "tls-key", o->tls_key, "PEM private key of --tls-cert");
  settings.add(*cmd, "auth-keys", o->auth_keys, "File of kid=base64secret lines: require bearer tokens signed with them",
               {.shared = true});
  settings.add(*cmd, "insecure", o->insecure, "Serve a non-loopback address without --auth-keys");
  settings.add(*cmd, "max-saga-lag", o->admission.saga_lag,
               "Refuse clients' writes (503 overloaded) while the saga is this many events behind (0: never)")
      ->check(zero_or_more());
  settings.add(*cmd, "max-saga-lag-ms", o->admission.saga_lag_ms,
               "Refuse clients' writes while the oldest event the saga has not read is this many milliseconds old "
               "(0: never)")
      ->check(zero_or_more());
  settings.add(*cmd, "max-projection-lag", o->admission.projection_lag,
               "Refuse clients' writes while a projection is this many events behind (0: never)")
      ->check(zero_or_more());
  settings.add(*cmd, "max-append-queue", o->admission.append_queue,
               "Refuse clients' writes while this many appends wait for the store's writer (0: never)")
      ->check(zero_or_more());
  settings.add(*cmd, "idempotency-retention-s", o->idempotency_retention_s,
               "Delete the answer stored for an Idempotency-Key this many seconds after it was stored (a repeat "
               "after that is a new request); 0: keep them for ever")
      ->check(CLI::Range(std::int64_t{0}, kMaxRetentionS));
  settings.add(*cmd, "allowed-hosts", o->allowed_hosts,
               "Without --auth-keys: the Host names served, comma-separated (default: localhost, 127.0.0.1, "
               "[::1] and the --listen host)");
  cmd->callback([o, &action] { action = [o] { return serve(*o); }; });
}

}  // namespace orderflow::cli
