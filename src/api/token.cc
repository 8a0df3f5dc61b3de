#include "api/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cctype>
#include <boost/json.hpp>
#include <fstream>
#include <optional>
#include <sstream>

#include "api/json_body.h"
#include "core/check.h"
#include "core/encoding.h"
#include "domain/validation.h"

namespace orderflow::api {

namespace {

constexpr std::size_t kMinSecretBytes = 32;
constexpr std::size_t kMaxTokenBytes = 4096;

std::array<unsigned char, 32> hs256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> mac{};
  unsigned int len = 0;
  OF_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len) &&
               len == mac.size(),
           "HMAC-SHA256 failed");
  return mac;
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > 64) return false;
  for (char c : kid)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : {Role::admin, Role::operator_, Role::customer})
    if (role_name(r) == name) return r;
  return std::nullopt;
}

Unexpected bad(std::string message) { return fail(Errc::invalid_argument, std::move(message)); }

// A base64url segment holding a JSON object.
Result<boost::json::object> segment_object(std::string_view segment, std::string_view what) {
  auto text = base64_decode(segment, true);
  if (!text) return bad("the token's " + std::string(what) + " is not base64url");
  auto o = parse_object(*text);
  if (!o) return bad("the token's " + std::string(what) + " is not a JSON object");
  return std::move(*o);
}

const boost::json::string* string_claim(const boost::json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::admin: return "admin";
    case Role::operator_: return "operator";
    case Role::customer: return "customer";
  }
  return "customer";
}

Result<KeyRing> KeyRing::parse(std::string_view text) {
  KeyRing ring;
  std::size_t number = 0;
  for (std::size_t at = 0; at < text.size();) {
    auto end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto where = "line " + std::to_string(number) + ": ";
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return bad(where + "expected kid=base64secret");
    auto kid = line.substr(0, eq), text = line.substr(eq + 1);
    while (!kid.empty() && (kid.back() == ' ' || kid.back() == '\t')) kid.remove_suffix(1);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (!valid_kid(kid)) return bad(where + "a kid is 1-64 characters of [A-Za-z0-9_.-]");
    auto secret = base64_decode(text, false);
    if (!secret) return bad(where + "the secret of kid " + std::string(kid) + " is not base64");
    if (secret->size() < kMinSecretBytes)
      return bad(where + "the secret of kid " + std::string(kid) + " is shorter than 32 bytes");
    if (!ring.keys_.emplace(kid, std::move(*secret)).second) return bad(where + "kid " + std::string(kid) + " twice");
  }
  if (ring.keys_.empty()) return bad("no keys (expected kid=base64secret lines)");
  return ring;
}

Result<KeyRing> KeyRing::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return bad("cannot read the key file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  auto ring = parse(text.str());
  if (!ring) return bad(path + ": " + ring.error().message);
  return ring;
}

const std::string* KeyRing::find(std::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : &it->second;
}

std::string mint_token(const Claims& claims, std::string_view kid, const KeyRing& keys) {
  const std::string* key = keys.find(kid);
  OF_CHECK(key != nullptr, "mint_token with an unknown kid");
  boost::json::object header{{"alg", "HS256"}, {"typ", "JWT"}, {"kid", kid}};
  boost::json::object payload{{"role", role_name(claims.role)}, {"exp", claims.exp}};
  if (!claims.sub.empty()) payload["sub"] = claims.sub;
  std::string signed_part =
      base64url_encode(boost::json::serialize(header)) + "." + base64url_encode(boost::json::serialize(payload));
  const auto mac = hs256(*key, signed_part);
  return signed_part + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
}

Result<Claims> verify_token(std::string_view token, const KeyRing& keys, std::int64_t now_s) {
  if (token.size() > kMaxTokenBytes) return bad("the token is longer than 4096 bytes");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return bad("the token is not a JWT (header.payload.signature)");

  OF_ASSIGN_OR_RETURN(auto header, segment_object(token.substr(0, dot1), "header"));
  const auto* alg = string_claim(header, "alg");
  if (!alg || *alg != "HS256") return bad("the token's alg must be HS256");
  const auto* kid = string_claim(header, "kid");
  if (!kid) return bad("the token has no kid");
  const std::string* key = keys.find(*kid);
  if (!key) return bad("the token's kid is not a key of this server");

  auto signature = base64_decode(token.substr(dot2 + 1), true);
  const auto mac = hs256(*key, token.substr(0, dot2));
  if (!signature || signature->size() != mac.size() || CRYPTO_memcmp(signature->data(), mac.data(), mac.size()) != 0)
    return bad("the token's signature does not match");

  OF_ASSIGN_OR_RETURN(auto payload, segment_object(token.substr(dot1 + 1, dot2 - dot1 - 1), "payload"));
  const auto* exp = payload.if_contains("exp");
  if (!exp || !exp->is_int64()) return bad("the token has no exp (an integer expiry)");
  if (exp->as_int64() <= now_s) return bad("the token has expired");
  const auto* role_text = string_claim(payload, "role");
  const auto role = role_text ? parse_role(*role_text) : std::nullopt;
  if (!role) return bad("the token's role must be admin, operator or customer");
  Claims claims{*role, "", exp->as_int64()};
  if (const auto* sub = string_claim(payload, "sub")) claims.sub = std::string(*sub);
  if (claims.role == Role::customer && !domain::is_valid_id(claims.sub))
    return bad("a customer's token needs a sub that is a customer_id");
  return claims;
}

Result<Claims> TokenVerifier::verify(std::string_view token, std::int64_t now_s) {
  {
    MutexLock lk(mu_);
    if (auto it = verified_.find(token); it != verified_.end()) {
      if (it->second.exp <= now_s) return bad("the token has expired");
      return it->second;
    }
  }
  auto claims = verify_token(token, keys_, now_s);
  if (!claims) return claims;
  MutexLock lk(mu_);
  if (verified_.size() >= kCapacity) verified_.clear();
  verified_.emplace(std::string(token), *claims);
  return claims;
}

}  // namespace orderflow::api
