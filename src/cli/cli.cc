#include "cli/cli.h"

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/log.h"

namespace orderflow::cli {

int runtime_failure(const std::string& message) {
  log::error("orderflow", message);
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{"orderflow: an event-sourced order-processing system"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("orderflow {} ({}, {})", build_info::version, build_info::git_describe,
                                                build_info::build_type));
  Action action;
  add_serve(app, action);
  add_events(app, action);
  add_demo(app, action);
  add_bench(app, action);
  add_rebuild(app, action);
  add_verify(app, action);
  add_migrate(app, action);
  add_token(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  return action ? action() : 2;
}

}  // namespace orderflow::cli
