// UUIDs: time-ordered v7 for ids the server makes (order ids, event ids).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orderflow {

// A new RFC 9562 UUIDv7 in canonical lowercase text form: 48 bits of unix-epoch
// milliseconds, then random bits. Thread-safe.
std::string uuid_v7(std::int64_t unix_ms);
std::string uuid_v7();  // now

// A name-based RFC 9562 UUIDv5: SHA-1 of `name_space` then `name`. The same inputs
// always give the same id (derived event ids).
std::string uuid_v5(const std::array<unsigned char, 16>& name_space, std::string_view name);

// A name-based RFC 9562 UUIDv8: uuid_v5's hash with its first 48 bits replaced by
// unix_ms, so ids derived from the same moment sort (and sit in an index) together.
std::string uuid_v8_hashed(std::int64_t unix_ms, const std::array<unsigned char, 16>& name_space,
                           std::string_view name);

// The unix-epoch milliseconds of a canonical-text UUIDv7; nullopt for anything else.
std::optional<std::int64_t> uuid_v7_unix_ms(std::string_view uuid);

}  // namespace orderflow
