#include "core/log.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <cstdio>

namespace orderflow::log {

namespace {

struct State {
  std::atomic<Level> level{Level::info};
  Format format = Format::text;
  std::shared_ptr<spdlog::logger> logger;
};

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::off;
}

// spdlog adds the time and the level; the payload (component, message, fields) is ours.
std::shared_ptr<spdlog::logger> make_logger(Format format, std::shared_ptr<spdlog::sinks::sink> sink) {
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("orderflow", std::move(sink));
  const char* pattern = format == Format::json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})"
                                               : "%Y-%m-%dT%H:%M:%S.%eZ %l %v";
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern, spdlog::pattern_time_type::utc));
  logger->set_level(spdlog::level::trace);  // filtered by State::level
  return logger;
}

// Never destroyed: a background thread may still log while the process exits.
State& state() {
  static State* s = [] {
    auto* s = new State;
    s->logger = make_logger(Format::text, nullptr);
    return s;
  }();
  return *s;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f) return true;
  return false;
}

std::string payload(Format format, std::string_view component, std::string_view message, Fields fields) {
  std::string out;
  if (format == Format::json) {
    out += "\"component\":";
    append_json_string(out, component);
    out += ",\"message\":";
    append_json_string(out, message);
    for (const auto& f : fields) {
      out += ',';
      append_json_string(out, f.key);
      out += ':';
      if (f.number) {
        out += f.value;
      } else {
        append_json_string(out, f.value);
      }
    }
    return out;  // the pattern closes the object
  }
  out.append(component).append(": ").append(message);
  for (const auto& f : fields) {
    out.append(" ").append(f.key).append("=");
    if (!f.number && needs_quotes(f.value)) {
      append_json_string(out, f.value);
    } else {
      out += f.value;
    }
  }
  return out;
}

}  // namespace

Field::Field(std::string_view k, double v) : key(k), number(true) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  value = buf;
}

std::optional<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn") return Level::warn;
  if (name == "error") return Level::error;
  if (name == "off") return Level::off;
  return std::nullopt;
}

std::optional<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  return std::nullopt;
}

void configure(const Options& options, std::shared_ptr<spdlog::sinks::sink> sink) {
  auto& s = state();
  s.level = options.level;
  s.format = options.format;
  s.logger = make_logger(options.format, std::move(sink));
}

bool enabled(Level level) { return level != Level::off && level >= state().level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view component, std::string_view message, Fields fields) {
  if (!enabled(level)) return;
  auto& s = state();
  const auto line = payload(s.format, component, message, fields);
  s.logger->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace orderflow::log
