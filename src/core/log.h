// The one logging facility (spdlog underneath): every line has a time (UTC), a level, the
// component that speaks, a message and optional fields (stream, position, order_id, ...).
//
//   log::info("serve", "serving", {{"listen", "127.0.0.1:8080"}, {"store", "sqlite"}});
//
// Two formats (--log-format):
// - text: `2026-12-04T10:23:20.123Z info serve: serving listen=127.0.0.1:8080 store=sqlite`
//   (a value with a space, quote, `=` or control character is written as a JSON string);
// - json: one JSON object per line,
//   `{"time":"2026-12-04T10:23:20.123Z","level":"info","component":"serve","message":"serving",
//    "listen":"127.0.0.1:8080","store":"sqlite"}`; integer fields are JSON numbers.
// Lines below the configured level (--log-level) cost one atomic load: nothing is formatted.
// Lines go to stderr, or to the sink configure() was given (tests).
//
// Thread safety: write() and its shortcuts may be called from any thread at once;
// configure() once at start-up, before other threads log.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace spdlog::sinks {
class sink;
}

namespace orderflow::log {

enum class Level { debug, info, warn, error, off };
enum class Format { text, json };

// "debug", "info", "warn", "error", "off"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);
std::optional<Format> parse_format(std::string_view name);

// One field of a line: a key and a string or integer value.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)), number(true) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), number(true) {}
  Field(std::string_view k, double v);

  std::string_view key;
  std::string value;
  bool number = false;  // written bare in JSON (an integer, a decimal or a boolean)
};
using Fields = std::initializer_list<Field>;

struct Options {
  Level level = Level::info;
  Format format = Format::text;
};
// Sets the level and format; `sink` replaces stderr (nullptr: stderr).
void configure(const Options& options, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message, Fields fields = {});

inline void debug(std::string_view component, std::string_view message, Fields fields = {}) {
  if (enabled(Level::debug)) write(Level::debug, component, message, fields);
}
inline void info(std::string_view component, std::string_view message, Fields fields = {}) {
  write(Level::info, component, message, fields);
}
inline void warn(std::string_view component, std::string_view message, Fields fields = {}) {
  write(Level::warn, component, message, fields);
}
inline void error(std::string_view component, std::string_view message, Fields fields = {}) {
  write(Level::error, component, message, fields);
}

}  // namespace orderflow::log
