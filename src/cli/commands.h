// Subcommands of the orderflow binary. Each add_* registers one subcommand (with its
// --help) on the root app and declares its options as settings (cli/settings.h); when the
// command line selects it, it sets `action`, which main runs and whose return value is the
// exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli/settings.h"

namespace orderflow::cli {

using Action = std::function<int()>;

void add_serve(CLI::App& root, Settings& settings, Action& action);
void add_events(CLI::App& root, Settings& settings, Action& action);
void add_bench(CLI::App& root, Settings& settings, Action& action);
void add_demo(CLI::App& root, Settings& settings, Action& action);
void add_rebuild(CLI::App& root, Settings& settings, Action& action);
void add_verify(CLI::App& root, Settings& settings, Action& action);
void add_migrate(CLI::App& root, Settings& settings, Action& action);
void add_token(CLI::App& root, Settings& settings, Action& action);
void add_config(CLI::App& root, Settings& settings, Action& action);

// Every subcommand above, on `root`.
void add_subcommands(CLI::App& root, Settings& settings, Action& action);

// Parses `args` (the command line without the program's name) and resolves the settings of
// the subcommand it selects; an exit code when it must stop there (--help: 0, bad usage: 2).
std::optional<int> parse_command_line(CLI::App& root, Settings& settings, std::vector<std::string> args);

// Log the message as an error of component "orderflow" (core/log.h) and return the exit code
// for runtime failures (1), or for bad usage (2).
int runtime_failure(const std::string& message);
int usage_failure(const std::string& message);

}  // namespace orderflow::cli
