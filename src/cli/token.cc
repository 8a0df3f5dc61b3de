// orderflow token: mints a bearer token for `serve --auth-keys` (docs/api.md §1).
#include <fmt/core.h>

#include <charconv>
#include <cstdio>
#include <memory>

#include "api/token.h"
#include "cli/commands.h"
#include "core/time.h"
#include "domain/validation.h"

namespace orderflow::cli {

namespace {

struct TokenOptions {
  std::string role, sub, kid, auth_keys;
  std::string ttl = "1h";
};

// "90s", "15m", "1h", "30d" in seconds; 0 if malformed.
std::int64_t parse_ttl(std::string_view text) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n <= 0 || n > 3650 || end + 1 != text.data() + text.size()) return 0;
  switch (*end) {
    case 's': return n;
    case 'm': return n * 60;
    case 'h': return n * 3600;
    case 'd': return n * 86400;
    default: return 0;
  }
}

int usage(const std::string& message) {
  std::fprintf(stderr, "orderflow: %s\n", message.c_str());
  return 2;
}

int token(const TokenOptions& o) {
  api::Role role;
  if (o.role == "admin") role = api::Role::admin;
  else if (o.role == "operator") role = api::Role::operator_;
  else if (o.role == "customer") role = api::Role::customer;
  else return usage("--role must be admin, operator or customer, not " + o.role);
  if (role == api::Role::customer && !domain::is_valid_id(o.sub))
    return usage("a customer token needs --sub CUSTOMER_ID (1-64 of [A-Za-z0-9_.:-])");
  const auto ttl = parse_ttl(o.ttl);
  if (ttl == 0) return usage("--ttl must be a number of s, m, h or d (at most 3650), such as 1h, not " + o.ttl);
  auto keys = api::KeyRing::load(o.auth_keys);
  if (!keys) return usage("--auth-keys: " + keys.error().message);
  if (!keys->find(o.kid)) return usage("--kid " + o.kid + " is not in " + o.auth_keys);
  fmt::print("{}\n", api::mint_token({role, o.sub, now_unix_ms() / 1000 + ttl}, o.kid, *keys));
  return 0;
}

}  // namespace

void add_token(CLI::App& root, Settings& settings, Action& action) {
  auto o = std::make_shared<TokenOptions>();
  auto* cmd = root.add_subcommand("token", "Mint a bearer token for a server run with --auth-keys");
  settings.add(*cmd, "role", o->role, "admin, operator or customer", {.required = true});
  settings.add(*cmd, "sub", o->sub, "The subject: for a customer, its customer_id");
  settings.add(*cmd, "kid", o->kid, "The key id to sign with", {.required = true});
  settings.add(*cmd, "auth-keys", o->auth_keys, "File of kid=base64secret lines (the shared setting serve reads)",
               {.shared = true, .required = true});
  settings.add(*cmd, "ttl", o->ttl, "How long the token is valid: 90s, 15m, 1h, 30d");
  cmd->callback([o, &action] { action = [o] { return token(*o); }; });
}

}  // namespace orderflow::cli
