#include "cli/settings.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

// "bench.append" for `orderflow bench append`.
std::string command_path(const CLI::App& command) {
  std::string path;
  for (const CLI::App* c = &command; c->get_parent() != nullptr; c = c->get_parent())
    path = c->get_name() + (path.empty() ? "" : "." + path);
  return path;
}

std::string env_name(const std::string& key) {
  std::string env = "ORDERFLOW_";
  for (char c : key)
    env += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

const char* kind_name(SettingKind kind) {
  switch (kind) {
    case SettingKind::string:
      return "a string";
    case SettingKind::integer:
      return "an integer";
    case SettingKind::number:
      return "a number";
    case SettingKind::boolean:
      return "true or false";
  }
  return "";
}

// A value of the file, as the command line would give it.
struct FileValue {
  std::string text;
  std::string where;  // "FILE line N"
};

std::string where_in(const std::string& file, const toml::node& node) {
  return fmt::format("{} line {}", file, node.source().begin.line);
}

// The text of a scalar of `kind`; empty when the node is of another type.
std::optional<std::string> scalar_text(const toml::node& node, SettingKind kind) {
  switch (kind) {
    case SettingKind::string:
      if (auto v = node.value_exact<std::string>()) return *v;
      return std::nullopt;
    case SettingKind::integer:
      if (auto v = node.value_exact<std::int64_t>()) return std::to_string(*v);
      return std::nullopt;
    case SettingKind::number:
      if (auto v = node.value_exact<std::int64_t>()) return std::to_string(*v);
      if (auto v = node.value_exact<double>()) return fmt::format("{}", *v);
      return std::nullopt;
    case SettingKind::boolean:
      if (auto v = node.value_exact<bool>()) return std::string(*v ? "true" : "false");
      return std::nullopt;
  }
  return std::nullopt;
}

// A validator that `v`, read as a number, passes `test`; else "must be WHAT, not V".
CLI::Validator number_that(bool (*test)(double), const char* what) {
  return CLI::Validator(
      [test, what](std::string& v) -> std::string {
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !test(d)) return fmt::format("must be {}, not {}", what, v);
        return "";
      },
      "");
}

}  // namespace

CLI::Validator above_zero() {
  return number_that([](double d) { return d > 0; }, "a number above 0");
}

CLI::Validator zero_or_more() {
  return number_that([](double d) { return d >= 0; }, "a number of 0 or more");
}

std::string toml_string(const std::string& s) {
  const toml::value<std::string> value(s);
  std::ostringstream out;
  // Double quotes always (the default prints 'literal' strings where it can), unicode as is.
  out << toml::toml_formatter(value, toml::format_flags::allow_unicode_strings);
  return out.str();
}

void Settings::add_config_flag(CLI::App& command) {
  if (config_flags_.contains(&command)) return;
  command.add_option(
      "--config", config_flags_[&command],
      "Configuration file (TOML; default: $ORDERFLOW_CONFIG); flags and ORDERFLOW_* variables override it");
}

CLI::Option* Settings::declare(CLI::App& command, const std::string& name, CLI::Option* option, SettingKind kind,
                               SettingTraits traits, std::function<std::string()> value) {
  std::string key = name;
  std::replace(key.begin(), key.end(), '-', '_');
  if (!traits.shared) key = command_path(command) + "." + key;
  if (traits.required) option->description(option->get_description() + " (required)");
  add_config_flag(command);
  settings_.push_back({&command, option, key, env_name(key), kind, traits, std::move(value), {}});
  return option;
}

Result<void> Settings::resolve(bool all) {
  auto named = [this](std::string_view key) {
    return std::any_of(settings_.begin(), settings_.end(), [&](const Setting& s) { return s.key == key; });
  };

  unknown_environment_.clear();
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto name = entry.substr(0, entry.find('='));
    if (!name.starts_with("ORDERFLOW_") || name == "ORDERFLOW_CONFIG") continue;
    if (std::none_of(settings_.begin(), settings_.end(), [&](const Setting& s) { return s.env == name; }))
      unknown_environment_.emplace_back(name);
  }

  config_file_.clear();
  for (const auto& [command, file] : config_flags_)
    if (!file.empty() && (all || command->parsed())) config_file_ = file;
  if (const char* env = std::getenv("ORDERFLOW_CONFIG"); config_file_.empty() && env != nullptr) config_file_ = env;

  std::map<std::string, FileValue> file_values;
  if (!config_file_.empty()) {
    if (::access(config_file_.c_str(), R_OK) != 0)
      return fail(Errc::invalid_argument, fmt::format("{}: cannot be read: {}", config_file_, std::strerror(errno)));
    toml::table root;
    try {
      root = toml::parse_file(config_file_);
    } catch (const toml::parse_error& e) {
      return fail(Errc::invalid_argument,
                  fmt::format("{} line {}: {}", config_file_, e.source().begin.line, e.description()));
    }
    // Every key must name a setting, or a table of them ([serve], [bench.append]).
    std::function<Result<void>(const toml::table&, const std::string&)> walk =
        [&](const toml::table& table, const std::string& prefix) -> Result<void> {
      for (const auto& [k, node] : table) {
        const std::string key = prefix + std::string(k.str());
        const std::string where = where_in(config_file_, node);
        if (const auto* sub = node.as_table(); sub != nullptr && !named(key)) {
          const bool is_section = std::any_of(settings_.begin(), settings_.end(),
                                              [&](const Setting& s) { return s.key.starts_with(key + "."); });
          if (!is_section) return fail(Errc::invalid_argument, fmt::format("{}: unknown table [{}]", where, key));
          if (auto r = walk(*sub, key + "."); !r) return r;
          continue;
        }
        auto setting = std::find_if(settings_.begin(), settings_.end(), [&](const Setting& s) { return s.key == key; });
        if (setting == settings_.end())
          return fail(Errc::invalid_argument, fmt::format("{}: unknown key {}", where, key));
        auto text = scalar_text(node, setting->kind);
        if (!text)
          return fail(Errc::invalid_argument, fmt::format("{}: {} must be {}", where, key, kind_name(setting->kind)));
        file_values[key] = {*text, where};
      }
      return {};
    };
    if (auto r = walk(root, ""); !r) return r;
  }

  for (auto& s : settings_) {
    if (!all && !s.command->parsed()) continue;
    if (s.option->count() > 0) {
      s.source = {SettingSource::flag, s.option->get_name()};
      continue;
    }
    std::string text;
    if (const char* env = std::getenv(s.env.c_str()); env != nullptr) {
      s.source = {SettingSource::environment, s.env};
      text = env;
    } else if (auto f = file_values.find(s.key); f != file_values.end()) {
      s.source = {SettingSource::file, f->second.where};
      text = f->second.text;
    } else {
      s.source = {};
      if (s.traits.required && !all)
        return fail(Errc::invalid_argument, fmt::format("{} is required: give {}, {} or {} in the configuration file",
                                                        s.key, s.option->get_name(), s.env, s.key));
      continue;
    }
    try {
      s.option->add_result(text);
      s.option->run_callback();
    } catch (const CLI::Error& e) {
      std::string message = e.what();
      if (message.starts_with(s.option->get_name() + ": ")) message.erase(0, s.option->get_name().size() + 2);
      return fail(Errc::invalid_argument, fmt::format("{}: bad value for {}: {}", s.source.where, s.key, message));
    }
  }
  return {};
}

std::string Settings::shown_value(const Setting& s) {
  auto value = s.value();
  if (s.kind != SettingKind::string) return value;
  if (s.traits.secret && !value.empty()) return toml_string("***");
  return toml_string(is_postgres_url(value) ? redacted_store_url(value) : value);
}

}  // namespace orderflow::cli
