// Reading request bodies: JSON objects with named, typed fields. Every failure is an
// Error whose message names the field (400 invalid_json / invalid_request).
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace orderflow::api {

// The body as a JSON object, or invalid_json / invalid_request ("body must be a JSON object").
Result<boost::json::object> parse_object(std::string_view body);

// Required fields: missing or of another type is invalid_request naming the field.
Result<std::string> string_field(const boost::json::object& o, std::string_view name);
Result<std::int64_t> int_field(const boost::json::object& o, std::string_view name);
// Optional fields: absent or null is nullopt; another type is invalid_request.
Result<std::optional<std::string>> optional_string_field(const boost::json::object& o, std::string_view name);

// The body re-serialised with object keys sorted: two bodies that parse equal compare
// equal (idempotency fingerprints).
std::string canonical_json(const boost::json::value& v);

}  // namespace orderflow::api
