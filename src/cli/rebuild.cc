// orderflow rebuild NAME: rebuilds one projection's read model from position 1, the same way
// the running server does: into a fresh copy, swapped in once it has caught up. The embedded
// store: while no server holds it. PostgreSQL: while no other process writes the projection.
#include <fmt/core.h>

#include <thread>

#include "app/projections/read_side.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

struct RebuildOptions {
  std::string name;
  StoreSpec store;
};

int rebuild(const RebuildOptions& o) {
  auto store = open_store(o.store);
  if (!store) return runtime_failure(store.error().message);
  auto read_models = open_read_models(o.store);
  if (!read_models) return runtime_failure(read_models.error().message);
  auto read = app::projections::ReadSide::open(std::move(*read_models), store->events());
  auto& runner = read->runner();
  auto last = store->events().last_position();
  if (!last) return runtime_failure(last.error().message);
  const auto started = std::chrono::steady_clock::now();
  if (auto r = runner.start(); !r) return runtime_failure(r.error().message);
  if (auto r = runner.rebuild(o.name); !r) {
    if (r.error().code != Errc::not_found) return runtime_failure("cannot rebuild: " + r.error().message);
    std::fprintf(stderr, "orderflow: no projection %s (orders, products, accounts, sales)\n", o.name.c_str());
    return 2;
  }
  auto status = [&runner, &o] {
    for (auto& s : runner.status())
      if (s.name == o.name) return s;
    return es::ProjectionStatus{};
  };
  es::ProjectionStatus s;
  {
    Progress progress("rebuild " + o.name, static_cast<std::uint64_t>(last->value()), [&status] {
      auto now = status();
      return static_cast<std::uint64_t>(
          (now.state == es::ProjectionState::rebuilding ? now.rebuilt : now.position).value());
    });
    for (s = status(); s.state != es::ProjectionState::failed &&
                       !(s.state == es::ProjectionState::running && s.position >= *last);
         s = status())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (s.state == es::ProjectionState::failed)
    return runtime_failure("rebuild of " + o.name + " failed: " + s.last_error.value_or(""));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("rebuilt {} through position {} in {:.2f} s\n", o.name, s.position.value(), seconds);
  return 0;
}

}  // namespace

void add_rebuild(CLI::App& root, Settings& settings, Action& action) {
  auto o = std::make_shared<RebuildOptions>();
  auto* cmd = root.add_subcommand("rebuild",
                                  "Rebuild a projection from the event store (while no other process writes it)");
  cmd->add_option("projection", o->name, "orders, products, accounts or sales")->required();
  add_store_settings(settings, *cmd, o->store);
  cmd->callback([o, &action] { action = [o] { return rebuild(*o); }; });
}

}  // namespace orderflow::cli
