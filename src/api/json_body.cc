#include "api/json_body.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "codec/event_json.h"

namespace orderflow::api {

namespace {

// Does `v` hold a number too large for a double (parsed as infinity)? Written back it is no
// JSON number at all (found by fuzzing: tests/fuzz/README.md).
bool has_infinity(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::double_: return !std::isfinite(v.get_double());
    case boost::json::kind::object:
      return std::any_of(v.get_object().begin(), v.get_object().end(),
                         [](const auto& kv) { return has_infinity(kv.value()); });
    case boost::json::kind::array:
      return std::any_of(v.get_array().begin(), v.get_array().end(), [](const auto& e) { return has_infinity(e); });
    default: return false;
  }
}

}  // namespace

Result<boost::json::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec) return fail(Errc::invalid_json, "body is not valid JSON: " + ec.message());
  if (has_infinity(v)) return fail(Errc::invalid_json, "body is not valid JSON: a number is out of range");
  if (!v.is_object()) return fail(Errc::invalid_argument, "body must be a JSON object");
  return std::move(v.as_object());
}

namespace {
Unexpected wrong(std::string_view name, const char* kind) {
  return fail(Errc::invalid_argument, std::string(name) + " must be " + kind);
}
}  // namespace

Result<std::string> string_field(const boost::json::object& o, std::string_view name) {
  auto* v = o.if_contains(name);
  if (!v) return fail(Errc::invalid_argument, std::string(name) + " is required");
  if (!v->is_string()) return wrong(name, "a string");
  return std::string(v->as_string());
}

Result<std::int64_t> int_field(const boost::json::object& o, std::string_view name) {
  auto* v = o.if_contains(name);
  if (!v) return fail(Errc::invalid_argument, std::string(name) + " is required");
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return wrong(name, "an integer within 64-bit range");
  if (v->is_double()) {
    // In range before the cast: casting a double past int64 is undefined (found by fuzzing).
    const double d = v->as_double();
    if (d > -9e15 && d < 9e15 && d == std::trunc(d)) return static_cast<std::int64_t>(d);
  }
  return wrong(name, "an integer");
}

Result<std::optional<std::string>> optional_string_field(const boost::json::object& o, std::string_view name) {
  auto* v = o.if_contains(name);
  if (!v || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return wrong(name, "a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

std::string canonical_json(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      std::vector<const boost::json::key_value_pair*> fields;
      for (const auto& kv : v.as_object()) fields.push_back(&kv);
      std::sort(fields.begin(), fields.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
      std::string out = "{";
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out += ',';
        out += codec::json_string(fields[i]->key());
        out += ':';
        out += canonical_json(fields[i]->value());
      }
      return out + "}";
    }
    case boost::json::kind::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v.as_array()) {
        if (!first) out += ',';
        first = false;
        out += canonical_json(e);
      }
      return out + "]";
    }
    default:
      return boost::json::serialize(v);
  }
}

}  // namespace orderflow::api
