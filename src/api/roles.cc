// The routes a process serves by its --roles (docs/api.md §1).
#include <string>
#include <string_view>

#include "api/api.h"
#include "api/errors.h"

namespace orderflow::api {

namespace {

enum class RouteRole { any, command, query, admin };

RouteRole role_of(http::Method method, std::string_view pattern) {
  if (pattern.starts_with("/api/v1/admin/")) return RouteRole::admin;
  if (!pattern.starts_with("/api/v1/") || pattern == "/api/v1/openapi.json") return RouteRole::any;
  return method == http::Method::get || method == http::Method::head ? RouteRole::query : RouteRole::command;
}

}  // namespace

void serve_only(http::Router& router, ServedRoles roles) {
  router.add_guard([roles](http::Request& req, const http::Route& route) -> std::optional<http::Response> {
    auto refuse = [](std::string_view role, std::string_view what) {
      return error_for(make_error(Errc::not_served, "this process does not serve " + std::string(what) +
                                                        " (its --roles lack " + std::string(role) +
                                                        "): send it to a process that does"));
    };
    switch (role_of(req.method, route.pattern)) {
      case RouteRole::any: return std::nullopt;
      case RouteRole::command: return roles.command ? std::nullopt : std::optional(refuse("command", "commands"));
      case RouteRole::query: return roles.query ? std::nullopt : std::optional(refuse("query", "queries"));
      case RouteRole::admin: return roles.admin ? std::nullopt : std::optional(refuse("admin", "admin routes"));
    }
    return std::nullopt;
  });
}

}  // namespace orderflow::api
