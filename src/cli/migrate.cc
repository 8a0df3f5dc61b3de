// orderflow migrate: creates or upgrades the store's schema and exits. Opening any store
// does this too; running it first lets an operator upgrade before starting servers.
#include <fmt/core.h>

#include <atomic>
#include <memory>

#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

int migrate(StoreSpec spec) {
  // Drawn from the first chunk an older file's migration reports, gone once the store is open.
  std::atomic<es::Position> migrated{es::Position{0}};
  std::unique_ptr<Progress> progress;
  spec.migration_progress = [&](es::Position done, es::Position last) {
    migrated = done;
    if (!progress)
      progress = std::make_unique<Progress>("migrate", static_cast<std::uint64_t>(last.value()),
                                            [&migrated] { return static_cast<std::uint64_t>(migrated.load().value()); });
  };
  auto store = open_store(spec);
  progress.reset();
  if (!store) return runtime_failure(store.error().message);
  store->close();
  fmt::print("orderflow: the schema of the {} is up to date\n", store->describe(spec));
  return 0;
}

}  // namespace

void add_migrate(CLI::App& root, Settings& settings, Action& action) {
  auto spec = std::make_shared<StoreSpec>();
  auto* cmd = root.add_subcommand("migrate", "Create or upgrade the store's schema (safe to run concurrently)");
  add_store_settings(settings, *cmd, *spec);
  cmd->callback([spec, &action] { action = [spec] { return migrate(*spec); }; });
}

}  // namespace orderflow::cli
