// Bearer tokens (docs/api.md §3): HS256 JSON Web Tokens (RFC 7519) signed with a key named
// by the header's `kid`, so keys rotate by adding a kid, moving minting to it, and dropping
// the old one once its tokens have expired.
//
//   auto keys = api::KeyRing::load("/etc/orderflow/auth-keys");   // kid=base64secret lines
//   auto token = api::mint_token({api::Role::customer, "c-17", now_s + 3600}, "k2", *keys);
//   auto claims = api::verify_token(token, *keys, now_s);          // Errc::invalid_argument if bad
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/mutex.h"
#include "core/result.h"

namespace orderflow::api {

// admin: everything. operator: every read, rebuilds, dead-letter retries, shipping status.
// customer: its own orders, account and transactions (`sub` = its customer_id).
enum class Role { admin, operator_, customer };

std::string_view role_name(Role role);  // "admin", "operator", "customer"

struct Claims {
  Role role = Role::customer;
  std::string sub;          // the customer_id for a customer; any name (or "") otherwise
  std::int64_t exp = 0;     // expiry, seconds since the Unix epoch
};

// HMAC secrets by key id. A file of `kid=base64secret` lines; blank lines and lines
// starting with '#' are skipped. A kid is 1-64 of [A-Za-z0-9_.-]; a secret decodes
// (standard base64, padding optional) to at least 32 bytes.
class KeyRing {
 public:
  static Result<KeyRing> parse(std::string_view text);  // invalid_argument naming the line
  static Result<KeyRing> load(const std::string& path);

  const std::string* find(std::string_view kid) const;  // the raw secret, or null

 private:
  std::map<std::string, std::string, std::less<>> keys_;
};

// A signed token for `claims`. REQUIRES: `kid` is in `keys`.
std::string mint_token(const Claims& claims, std::string_view kid, const KeyRing& keys);

// Checks the header (alg HS256 only: `none` and every other alg are refused, whatever
// the signature), the kid, the signature (compared in constant time), then `exp` (required,
// must be after `now_s`), `role` and `sub` (required for a customer). Fails with
// Errc::invalid_argument and a sentence that names what was wrong.
Result<Claims> verify_token(std::string_view token, const KeyRing& keys, std::int64_t now_s);

// verify_token that remembers the tokens it accepted: a client sends one token with every
// request, and checking it again (the HMAC, base64 and two JSON parses, ~8 µs) made an
// authenticated get-order a third slower. A remembered token is still refused once its
// `exp` has passed; one that failed is never remembered (each try is checked in full).
// Bounded: at most kCapacity tokens, all forgotten at once when it is full. The key ring
// never changes while the server runs (keys rotate by a restart), so what was verified
// stays verified. Thread-safe.
class TokenVerifier {
 public:
  static constexpr std::size_t kCapacity = 4096;
  explicit TokenVerifier(const KeyRing& keys) : keys_(keys) {}
  Result<Claims> verify(std::string_view token, std::int64_t now_s) EXCLUDES(mu_);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const KeyRing& keys_;
  Mutex mu_;
  std::unordered_map<std::string, Claims, Hash, std::equal_to<>> verified_ GUARDED_BY(mu_);
};

}  // namespace orderflow::api
