// Field rules shared by the aggregates (docs/api.md §2, §3). Each check answers the
// validation_failed Error to hand back, or nothing when the value is fine; its message
// names the field and goes to API clients as-is.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/result.h"

namespace orderflow::domain {

// customer_id, product_id, account_id: 1–64 characters of [A-Za-z0-9_.:-].
bool is_valid_id(std::string_view id);

// The 8-4-4-4-12 hex-digit shape of a UUID, digits in either case. Version and variant
// bits are not checked: a client may supply any UUID.
bool is_uuid(std::string_view s);

std::optional<Error> check_id(std::string_view field, std::string_view id);
std::optional<Error> check_uuid(std::string_view field, std::string_view id);
std::optional<Error> check_not_empty(std::string_view field, std::string_view value);
std::optional<Error> check_at_least(std::string_view field, std::int64_t value, std::int64_t min);

}  // namespace orderflow::domain
