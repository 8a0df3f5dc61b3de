// Opens the store a command line asks for: the embedded SQLite store in --data DIR by
// default, PostgreSQL with --store postgres://… (or postgresql://…).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "app/personal_data.h"
#include "cli/settings.h"
#include "core/result.h"
#include "es/read_model_db.h"
#include "store/postgres/postgres_event_store.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

struct StoreSpec {
  std::string data_dir = "./orderflow-data";
  std::string url;  // --store; empty: embedded
  es::AppendPipelineOptions pipeline;
  // The embedded store: told how far an older file's migration has come (SqliteEventStoreOptions).
  std::function<void(es::Position migrated, es::Position last)> migration_progress;
  // The embedded store and its read models opened read-only (SqliteEventStoreOptions::read_only):
  // nothing written, in the data directory or beside it. Not for PostgreSQL.
  bool read_only = false;
};

// Declares --data and --store on `command`: the shared settings `data` and `store`, the same
// for every subcommand that opens the store.
void add_store_settings(Settings& settings, CLI::App& command, StoreSpec& spec);

// The embedded store's SQLite databases in --data.
std::string events_db_path(const StoreSpec& spec);
std::string read_models_db_path(const StoreSpec& spec);

// Does this --store name a PostgreSQL database?
bool is_postgres_url(const std::string& url);

// The store and the kernel interfaces it implements: exactly one of the two is set.
struct OpenStore {
  std::unique_ptr<sqlite::SqliteEventStore> sqlite;
  std::unique_ptr<postgres::PostgresEventStore> postgres;

  es::EventStore& events();
  es::SnapshotStore& snapshots();
  es::CheckpointStore& checkpoints();
  es::StoredLog& stored_log();
  es::CustomerKeyStore& customer_keys();
  es::IdempotencyRecords& idempotency_records();
  // The personal data's key cache for this store: on PostgreSQL, where other processes may
  // erase a key, a cached key is trusted for 1 s (an erasure there shows here within it).
  app::PersonalDataOptions personal_data_options() const;
  // A lease for work only one process may do at a time (the saga); null where one
  // process holds the whole store anyway (the embedded store).
  std::unique_ptr<es::LeaderLease> leader_lease(const std::string& name) const;
  // Finishes accepted appends and stops the writer.
  void close();
  // For start-up messages: "embedded store in DIR" or "PostgreSQL store".
  std::string describe(const StoreSpec& spec) const;
};

// `url` with its password replaced by "***" (postgres://user:***@host/db, password=***), for logs.
std::string redacted_store_url(const std::string& url);

// Opens the store; a PostgreSQL store's schema is migrated first.
Result<OpenStore> open_store(const StoreSpec& spec);

// open_store for `serve`: a PostgreSQL server that cannot be reached yet (a deployment may
// start orderflow before its database) is tried again, 0.25 s after the first try and then
// up to every 5 s, logging why every 30 s, until it answers or SIGINT/SIGTERM comes
// (`stopped`, nothing opened). Any other failure is returned at once. `waiting`, if set, is
// told of each failed attempt that will be tried again, before the pause.
struct WaitedStore {
  Result<OpenStore> store;
  bool stopped = false;
};
WaitedStore open_store_waiting(const StoreSpec& spec, const std::function<void(const Error&)>& waiting = {});

// The read-model database beside the store: <data>/readmodels.db with the embedded store,
// the store's own database (shared by every process on it) with PostgreSQL.
// `durable_commits`: every commit durable before it returns (the read models of a process
// fed from a bus, which acknowledges what it committed); else a crash of the database's
// machine may lose the last batches, which are applied again from the log.
Result<std::unique_ptr<es::ReadModelDb>> open_read_models(const StoreSpec& spec, bool durable_commits = false);

}  // namespace orderflow::cli
