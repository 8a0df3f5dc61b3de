// The orderflow HTTP API (API.md §4, §6–§7) on the generic HTTP layer: parse, call
// app/, map errors. Nothing here knows SQL.
#pragma once

#include "api/http/router.h"
#include "app/command_handler.h"
#include "es/event_store.h"

namespace orderflow::api {

struct ApiContext {
  app::CommandHandler& commands;
  es::EventStore& store;
};

// Every route of the API. `ctx` must outlive the router.
http::Router make_router(ApiContext& ctx);

void add_command_routes(http::Router& router, ApiContext& ctx);
void add_query_routes(http::Router& router, ApiContext& ctx);
void add_event_routes(http::Router& router, ApiContext& ctx);

}  // namespace orderflow::api
