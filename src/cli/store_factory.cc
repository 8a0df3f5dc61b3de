#include "cli/store_factory.h"

#include <boost/url.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "core/log.h"
#include "store/postgres/postgres_read_model_db.h"
#include "store/sqlite/sqlite_read_model_db.h"

namespace orderflow::cli {

std::string events_db_path(const StoreSpec& spec) {
  return (std::filesystem::path(spec.data_dir) / "events.db").string();
}

std::string read_models_db_path(const StoreSpec& spec) {
  return (std::filesystem::path(spec.data_dir) / "readmodels.db").string();
}

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

std::string redacted_store_url(const std::string& url) {
  auto parsed = boost::urls::parse_uri_reference(url);
  if (!parsed) return "(not a URL)";
  boost::urls::url u(*parsed);
  if (u.has_password()) u.set_password("***");
  auto params = u.params();
  for (auto it = params.find("password"); it != params.end(); it = params.find(std::next(it), "password"))
    it = params.replace(it, {"password", "***"});
  return std::string(u.buffer());
}

void add_store_settings(Settings& settings, CLI::App& command, StoreSpec& spec) {
  settings.add(command, "data", spec.data_dir, "Data directory of the embedded store", {.shared = true});
  settings.add(command, "store", spec.url, "Store URL, e.g. postgres://USER@HOST:PORT/DB (default: embedded SQLite in --data)",
               {.shared = true});
}

es::EventStore& OpenStore::events() {
  if (sqlite) return *sqlite;
  return *postgres;
}

es::SnapshotStore& OpenStore::snapshots() {
  if (sqlite) return *sqlite;
  return *postgres;
}

es::CheckpointStore& OpenStore::checkpoints() {
  if (sqlite) return *sqlite;
  return *postgres;
}

es::StoredLog& OpenStore::stored_log() {
  if (sqlite) return *sqlite;
  return *postgres;
}

es::CustomerKeyStore& OpenStore::customer_keys() {
  if (sqlite) return *sqlite;
  return *postgres;
}

es::IdempotencyRecords& OpenStore::idempotency_records() {
  if (sqlite) return *sqlite;
  return *postgres;
}

app::PersonalDataOptions OpenStore::personal_data_options() const {
  app::PersonalDataOptions o;
  if (postgres) o.cache_ttl = std::chrono::milliseconds(1000);
  return o;
}

std::unique_ptr<es::LeaderLease> OpenStore::leader_lease(const std::string& name) const {
  return postgres ? postgres->leader_lease(name) : nullptr;
}

void OpenStore::close() {
  if (sqlite) sqlite->close();
  if (postgres) postgres->close();
}

std::string OpenStore::describe(const StoreSpec& spec) const {
  return sqlite ? "embedded store in " + spec.data_dir : "PostgreSQL store";
}

Result<OpenStore> open_store(const StoreSpec& spec) {
  if (is_postgres_url(spec.url)) {
    if (spec.read_only) return fail(Errc::invalid_argument, "a PostgreSQL store is not opened read-only");
    postgres::PostgresEventStoreOptions options;
    options.conninfo = spec.url;
    options.pipeline = spec.pipeline;
    OF_ASSIGN_OR_RETURN(auto store, postgres::PostgresEventStore::open(options));
    return OpenStore{nullptr, std::move(store)};
  }
  if (!spec.url.empty() && spec.url.rfind("sqlite:", 0) != 0)
    return fail(Errc::invalid_argument, "--store " + spec.url + " is not supported by this build");
  std::error_code ec;
  if (!spec.read_only) std::filesystem::create_directories(spec.data_dir, ec);
  if (ec) return fail(Errc::unavailable, "cannot create data directory " + spec.data_dir + ": " + ec.message());
  sqlite::SqliteEventStoreOptions options;
  options.path = events_db_path(spec);
  options.read_only = spec.read_only;
  options.pipeline = spec.pipeline;
  options.migration_progress = spec.migration_progress;
  OF_ASSIGN_OR_RETURN(auto store, sqlite::SqliteEventStore::open(options));
  return OpenStore{std::move(store), nullptr};
}

namespace {

std::atomic<bool> stop_waiting{false};
static_assert(std::atomic<bool>::is_always_lock_free);  // set in a signal handler

extern "C" void stop_waiting_for_store(int) { stop_waiting.store(true); }

// SIGINT and SIGTERM end the wait while it lasts: the server's own handling starts later.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction on_stop {};
    on_stop.sa_handler = &stop_waiting_for_store;
    sigemptyset(&on_stop.sa_mask);
    sigaction(SIGINT, &on_stop, &old_int_);
    sigaction(SIGTERM, &on_stop, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
};

}  // namespace

WaitedStore open_store_waiting(const StoreSpec& spec, const std::function<void(const Error&)>& waiting) {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  auto store = open_store(spec);
  if (store || !is_postgres_url(spec.url) || !postgres::Connection::reachable_later(store.error()))
    return {std::move(store)};
  stop_waiting.store(false);  // before the handlers: a signal from here on is seen
  const StopSignals signals;
  const auto since = Clock::now();
  auto next_log = since;
  auto pause = std::chrono::milliseconds(250);
  auto waited_s = [&] { return std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - since).count(); };
  while (!store && postgres::Connection::reachable_later(store.error())) {
    if (waiting) waiting(store.error());
    if (Clock::now() >= next_log) {
      log::warn("event store", "PostgreSQL cannot be reached yet: trying again until it answers",
                {{"error", store.error().message}, {"waited_s", std::to_string(waited_s())}});
      next_log = Clock::now() + 30s;
    }
    for (const auto until = Clock::now() + pause; Clock::now() < until;) {
      if (stop_waiting.load()) {
        log::info("event store", "stopped before PostgreSQL could be reached",
                  {{"waited_s", std::to_string(waited_s())}});
        return {fail(Errc::unavailable, store.error().message), true};
      }
      std::this_thread::sleep_for(50ms);
    }
    pause = std::min<std::chrono::milliseconds>(pause * 2, 5s);
    store = open_store(spec);
  }
  if (store) log::info("event store", "PostgreSQL reached", {{"waited_s", std::to_string(waited_s())}});
  return {std::move(store)};
}

Result<std::unique_ptr<es::ReadModelDb>> open_read_models(const StoreSpec& spec, bool durable_commits) {
  if (is_postgres_url(spec.url)) {
    OF_ASSIGN_OR_RETURN(auto db,
                        postgres::PostgresReadModelDb::open({.conninfo = spec.url, .durable_commits = durable_commits}));
    return std::unique_ptr<es::ReadModelDb>(std::move(db));
  }
  OF_ASSIGN_OR_RETURN(auto db, spec.read_only
                                   ? sqlite::SqliteReadModelDb::open_read_only(read_models_db_path(spec))
                                   : sqlite::SqliteReadModelDb::open(read_models_db_path(spec), durable_commits));
  return std::unique_ptr<es::ReadModelDb>(std::move(db));
}

}  // namespace orderflow::cli
