#include "cli/cli.h"

#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/log.h"

namespace orderflow::cli {

int runtime_failure(const std::string& message) {
  log::error("orderflow", message);
  return 1;
}

int usage_failure(const std::string& message) {
  log::error("orderflow", message);
  return 2;
}

void add_subcommands(CLI::App& root, Settings& settings, Action& action) {
  root.require_subcommand(1);
  root.set_version_flag("--version", fmt::format("orderflow {} ({}, {})", build_info::version, build_info::git_describe,
                                                 build_info::build_type));
  add_serve(root, settings, action);
  add_events(root, settings, action);
  add_demo(root, settings, action);
  add_bench(root, settings, action);
  add_rebuild(root, settings, action);
  add_verify(root, settings, action);
  add_migrate(root, settings, action);
  add_token(root, settings, action);
  add_config(root, settings, action);
}

std::optional<int> parse_command_line(CLI::App& root, Settings& settings, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    root.parse(args);
  } catch (const CLI::Success& e) {
    return root.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    root.exit(e);
    return 2;
  }
  if (auto r = settings.resolve(); !r) return usage_failure(r.error().message);
  return std::nullopt;
}

int run(int argc, char** argv) {
  CLI::App app{"orderflow: an event-sourced order-processing system", "orderflow"};
  Settings settings;
  Action action;
  add_subcommands(app, settings, action);
  if (auto stop = parse_command_line(app, settings, {argv + 1, argv + argc})) return *stop;
  return action ? action() : 2;
}

}  // namespace orderflow::cli
