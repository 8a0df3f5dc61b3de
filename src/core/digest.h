// SHA-1 and SHA-256 of short inputs, on the hot path (derived event ids, the event hash
// chain, idempotency fingerprints).
#pragma once

#include <array>
#include <initializer_list>
#include <string_view>

namespace orderflow {

// The digest of `parts` one after the other. Each thread keeps one OpenSSL context per
// algorithm, fetched once: OpenSSL 3's one-shot SHA1()/SHA256() fetch the algorithm and
// allocate a context on every call, which costs more than hashing a short input.
std::array<unsigned char, 20> sha1(std::initializer_list<std::string_view> parts);
std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> parts);

}  // namespace orderflow
