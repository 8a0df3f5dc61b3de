// UUIDs: time-ordered v7 for ids the server makes (order ids, event ids).
#pragma once

#include <cstdint>
#include <string>

namespace orderflow {

// A new RFC 9562 UUIDv7 in canonical lowercase text form: 48 bits of unix-epoch
// milliseconds, then random bits. Thread-safe.
std::string uuid_v7(std::int64_t unix_ms);
std::string uuid_v7();  // now

}  // namespace orderflow
