// Reading query parameters and the answers shared by the GET routes.
#pragma once

#include <cstdint>
#include <string_view>

#include "api/http/message.h"
#include "core/result.h"
#include "es/event.h"

namespace orderflow::api {

// `text` as an integer within [min, max], else invalid_argument naming `name` and the range.
Result<std::int64_t> parse_int(std::string_view text, std::string_view name, std::int64_t min, std::int64_t max);

// An integer query parameter within [min, max]; absent: `fallback`. Otherwise
// invalid_argument naming the parameter and its range.
Result<std::int64_t> int_param(const http::Request& req, std::string_view name, std::int64_t fallback,
                               std::int64_t min, std::int64_t max);

// `r` with ETag: "version".
http::Response with_etag(http::Response r, es::StreamVersion version);

}  // namespace orderflow::api
