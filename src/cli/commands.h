// Subcommands of the orderflow binary. Each add_* registers one subcommand (with its
// --help) on the root app; when the command line selects it, it sets `action`, which
// main runs and whose return value is the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace orderflow::cli {

using Action = std::function<int()>;

void add_serve(CLI::App& root, Action& action);
void add_events(CLI::App& root, Action& action);
void add_bench(CLI::App& root, Action& action);
void add_demo(CLI::App& root, Action& action);
void add_rebuild(CLI::App& root, Action& action);
void add_verify(CLI::App& root, Action& action);
void add_migrate(CLI::App& root, Action& action);
void add_token(CLI::App& root, Action& action);

// Logs the message as an error of component "orderflow" (core/log.h); returns the exit code for runtime failures (1).
int runtime_failure(const std::string& message);

}  // namespace orderflow::cli
