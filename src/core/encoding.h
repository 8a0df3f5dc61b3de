// Byte strings as text: base64 (RFC 4648, both alphabets) and lower-case hex.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace orderflow {

// base64url without padding (JWTs, sealed personal data).
std::string base64url_encode(std::string_view bytes);

// Base64 in either alphabet (`url`: '-' '_', else '+' '/'), padding optional. Refuses any
// other character, a length no encoder makes, and leftover bits that are not zero (so
// each text has one decoding and a text cannot be altered without changing its bytes).
std::optional<std::string> base64_decode(std::string_view text, bool url);

// Two lower-case hex digits per byte.
std::string hex_encode(std::string_view bytes);

}  // namespace orderflow
