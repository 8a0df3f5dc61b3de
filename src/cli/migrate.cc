// orderflow migrate: creates or upgrades the store's schema and exits. Opening any store
// does this too; running it first lets an operator upgrade before starting servers.
#include <fmt/core.h>

#include <memory>

#include "cli/commands.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

int migrate(const StoreSpec& spec) {
  auto store = open_store(spec);
  if (!store) return runtime_failure(store.error().message);
  store->close();
  fmt::print("orderflow: the schema of the {} is up to date\n", store->describe(spec));
  return 0;
}

}  // namespace

void add_migrate(CLI::App& root, Action& action) {
  auto spec = std::make_shared<StoreSpec>();
  auto* cmd = root.add_subcommand("migrate", "Create or upgrade the store's schema (safe to run concurrently)");
  cmd->add_option("--data", spec->data_dir, "Data directory of the embedded store")->capture_default_str();
  cmd->add_option("--store", spec->url, "Store URL, e.g. postgres://USER@HOST:PORT/DB (default: embedded SQLite)");
  cmd->callback([spec, &action] { action = [spec] { return migrate(*spec); }; });
}

}  // namespace orderflow::cli
