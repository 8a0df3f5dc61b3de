// Opens the store a command line asks for: the embedded SQLite store in --data DIR by
// default (PostgreSQL joins here with its issue).
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

struct StoreSpec {
  std::string data_dir = "./orderflow-data";
  std::string url;  // --store; empty: embedded
  es::AppendPipelineOptions pipeline;
};

// The store and the kernel interfaces it implements.
struct OpenStore {
  std::unique_ptr<sqlite::SqliteEventStore> sqlite;
  es::EventStore& events() { return *sqlite; }
  es::SnapshotStore& snapshots() { return *sqlite; }
  es::CheckpointStore& checkpoints() { return *sqlite; }
};

Result<OpenStore> open_store(const StoreSpec& spec);

// The embedded read-model database: <data>/readmodels.db.
std::string read_model_path(const StoreSpec& spec);

}  // namespace orderflow::cli
