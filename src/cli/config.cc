// orderflow config: prints the effective configuration, as a TOML file one could load, each
// value followed by where it came from and its environment variable. Without a command, every
// setting of every subcommand (from the environment, the file and the defaults); with one
// (`orderflow config serve --listen …`), that command line's settings, flags included.
#include <fmt/core.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/settings.h"

namespace orderflow::cli {

namespace {

std::string describe(const SettingSource& source) {
  switch (source.kind) {
    case SettingSource::default_value:
      return "default";
    case SettingSource::file:
      return "file " + source.where;
    case SettingSource::environment:
      return "environment";
    case SettingSource::flag:
      return "flag " + source.where;
  }
  return "";
}

void print(const Settings& settings, bool all) {
  fmt::print("# effective configuration (flag > environment > file > default); file: {}\n",
             settings.config_file().empty() ? "none" : settings.config_file());
  // Shared keys first, then one table per subcommand, in the order they were declared.
  std::vector<std::string> sections{""};
  for (const auto& s : settings.settings()) {
    auto dot = s.key.rfind('.');
    auto section = dot == std::string::npos ? "" : s.key.substr(0, dot);
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
  }
  for (const auto& section : sections) {
    std::vector<std::pair<std::string, const Setting*>> lines;
    for (const auto& s : settings.settings()) {
      if (!all && !s.command->parsed()) continue;
      auto dot = s.key.rfind('.');
      if ((dot == std::string::npos ? "" : s.key.substr(0, dot)) != section) continue;
      auto name = s.key.substr(dot == std::string::npos ? 0 : dot + 1);
      if (std::any_of(lines.begin(), lines.end(), [&](const auto& l) { return l.second->key == s.key; })) continue;
      // An unset optional is a comment: the file loads back with it still unset.
      auto value = Settings::shown_value(s);
      lines.emplace_back(value.empty() ? fmt::format("# {} unset", name) : fmt::format("{} = {}", name, value), &s);
    }
    if (lines.empty()) continue;
    if (!section.empty()) fmt::print("\n[{}]\n", section);
    std::size_t width = 0;
    for (const auto& l : lines) width = std::max(width, l.first.size());
    for (const auto& [line, s] : lines) fmt::print("{:<{}}  # {} ({})\n", line, width, describe(s->source), s->env);
  }
  for (const auto& name : settings.unknown_environment()) fmt::print("# ignored: {} names no setting\n", name);
}

}  // namespace

void add_config(CLI::App& root, Settings& settings, Action& action) {
  auto* cmd = root.add_subcommand(
      "config",
      "Print the effective configuration and where each value came from; with COMMAND [ARGS], that command "
      "line's (orderflow config serve --listen …)");
  settings.add_config_flag(*cmd);
  cmd->prefix_command();
  cmd->callback([cmd, &settings, &action] {
    action = [command_line = cmd->remaining(), &settings]() -> int {
      if (command_line.empty()) {
        if (auto r = settings.resolve(true); !r) return usage_failure(r.error().message);
        print(settings, true);
        return 0;
      }
      CLI::App app{"orderflow: an event-sourced order-processing system", "orderflow"};
      Settings own;
      Action ignored;
      add_subcommands(app, own, ignored);
      auto args = command_line;
      // config's own --config, unless the command line gives one.
      if (!settings.config_file().empty() && std::find(args.begin(), args.end(), "--config") == args.end())
        args.insert(args.end(), {"--config", settings.config_file()});
      if (auto stop = parse_command_line(app, own, args)) return *stop;
      print(own, false);
      return 0;
    };
  });
}

}  // namespace orderflow::cli
