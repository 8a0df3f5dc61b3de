// Time as the API shows it: RFC 3339, UTC, millisecond precision.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orderflow {

std::int64_t now_unix_ms();

// "2026-11-24T19:53:15.123Z"
std::string format_rfc3339_ms(std::int64_t unix_ms);

// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"; nullopt if malformed.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

}  // namespace orderflow
