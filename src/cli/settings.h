// Settings: every option of every subcommand, declared once. A setting named `io-threads`
// on `serve` is the flag --io-threads, the key `serve.io_threads` of the configuration file
// (`[serve]` table, `io_threads = 4`) and the environment variable ORDERFLOW_SERVE_IO_THREADS;
// a shared setting (the store's `data`, `store`, `auth-keys`) has a top-level key and applies to
// every subcommand that declares it. One precedence rule: flag > environment > file > default.
#pragma once

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/result.h"

namespace orderflow::cli {

struct SettingTraits {
  bool shared = false;    // a top-level key, the same for every subcommand declaring it
  bool secret = false;    // printed as "***" by `orderflow config`
  bool required = false;  // from any source; checked once every source is applied
};

// What a value in the file must be.
enum class SettingKind { string, integer, number, boolean };

// Where a setting's effective value came from.
struct SettingSource {
  enum Kind { default_value, file, environment, flag } kind = default_value;
  std::string where;  // "orderflow.toml line 3", "ORDERFLOW_SERVE_LISTEN", "--listen"; empty for a default
};

struct Setting {
  CLI::App* command;
  CLI::Option* option;
  std::string key;  // "serve.io_threads", or "data" for a shared one
  std::string env;  // "ORDERFLOW_SERVE_IO_THREADS"
  SettingKind kind;
  SettingTraits traits;
  std::function<std::string()> value;  // the target's current value, as the command line would give it
  SettingSource source;
};

class Settings {
 public:
  // Declares --NAME on `command` (bool targets: a flag) writing to `target`, whose value at
  // declaration is the default; an optional number left unset means "the command decides"
  // (--rate-limit: off on loopback). `target` must outlive the parse and `orderflow config`.
  template <class T>
  CLI::Option* add(CLI::App& command, const std::string& name, T& target, const std::string& help,
                   SettingTraits traits = {});

  // After the command line is parsed: applies to each setting of the parsed subcommands (with
  // `all`, to every setting) that no flag set its environment variable, or else its key in the
  // file that --config (or ORDERFLOW_CONFIG) names, and checks required ones. The file may only
  // hold keys some subcommand declares, with values of their kind. An error names the key and
  // the source (file line, variable, flag); nothing has run yet.
  Result<void> resolve(bool all = false);

  // Gives `command` a --config FILE flag (every subcommand with settings has one).
  void add_config_flag(CLI::App& command);

  const std::vector<Setting>& settings() const { return settings_; }
  // The file applied by resolve(); empty when none.
  const std::string& config_file() const { return config_file_; }
  // ORDERFLOW_* variables of the environment that name no setting (resolve() fills it).
  const std::vector<std::string>& unknown_environment() const { return unknown_environment_; }

  // The effective value of `s` as TOML, secrets and store passwords hidden; empty for an
  // unset optional number.
  static std::string shown_value(const Setting& s);

 private:
  CLI::Option* declare(CLI::App& command, const std::string& name, CLI::Option* option, SettingKind kind,
                       SettingTraits traits, std::function<std::string()> value);

  std::vector<Setting> settings_;
  std::map<const CLI::App*, std::string> config_flags_;  // each subcommand's --config
  std::string config_file_;
  std::vector<std::string> unknown_environment_;
};

// Checks for numeric settings (CLI11's own print the range up to 1.8e308): "must be above 0, not 0".
CLI::Validator above_zero();
CLI::Validator zero_or_more();

// A string as TOML writes it: quoted and escaped.
std::string toml_string(const std::string& s);

template <class T>
inline constexpr bool is_optional_v = false;
template <class T>
inline constexpr bool is_optional_v<std::optional<T>> = true;

template <class T>
CLI::Option* Settings::add(CLI::App& command, const std::string& name, T& target, const std::string& help,
                           SettingTraits traits) {
  const std::string flag = "--" + name;
  if constexpr (std::is_same_v<T, bool>) {
    return declare(command, name, command.add_flag(flag, target, help), SettingKind::boolean, traits,
                   [&target] { return std::string(target ? "true" : "false"); });
  } else if constexpr (std::is_integral_v<T>) {
    return declare(command, name, command.add_option(flag, target, help)->capture_default_str(), SettingKind::integer,
                   traits, [&target] { return std::to_string(target); });
  } else if constexpr (std::is_floating_point_v<T>) {
    return declare(command, name, command.add_option(flag, target, help)->capture_default_str(), SettingKind::number,
                   traits, [&target] { return fmt::format("{}", target); });
  } else if constexpr (is_optional_v<T>) {
    using Value = typename T::value_type;
    static_assert(std::is_arithmetic_v<Value> && !std::is_same_v<Value, bool>, "an optional setting is a number");
    return declare(command, name, command.add_option(flag, target, help),
                   std::is_integral_v<Value> ? SettingKind::integer : SettingKind::number, traits,
                   [&target] { return target ? fmt::format("{}", *target) : std::string(); });
  } else {
    static_assert(std::is_same_v<T, std::string>, "a setting is a string, an integer, a number or a bool");
    auto* option = command.add_option(flag, target, help);
    if (!target.empty()) option->capture_default_str();
    return declare(command, name, option, SettingKind::string, traits, [&target] { return target; });
  }
}

}  // namespace orderflow::cli
