// The orderflow HTTP API (docs/api.md §4, §6–§7) on the generic HTTP layer: parse, call
// app/, map errors. Nothing here knows SQL.
#pragma once

#include "api/http/router.h"
#include "app/command_handler.h"
#include "es/event_store.h"

namespace orderflow::app::projections {
class ReadSide;
}
namespace orderflow::app::saga {
class SagaRunner;
}

namespace orderflow::api {

class Metrics;

struct ApiContext {
  app::CommandHandler& commands;
  es::EventStore& store;
  // The read side (§6 queries, /admin/projections, the live feed, /readyz); without it (demo)
  // only commands and event listings are served.
  app::projections::ReadSide* read = nullptr;
  Metrics* metrics = nullptr;  // /metrics, when set
  // /readyz answers 200 once every projection has applied this (the store's last position at start-up).
  es::Position ready_position = 0;
};

// Why /readyz answers 503 (docs/api.md §7), once the store could be read: its message, and
// for a store that cannot write the reason; nullopt when ready.
struct NotReady {
  std::string message;
  std::optional<std::string> reason;
};
std::optional<NotReady> not_ready(ApiContext& ctx);

// Every route of the API. `ctx` must outlive the router.
http::Router make_router(ApiContext& ctx);

void add_command_routes(http::Router& router, ApiContext& ctx);
void add_query_routes(http::Router& router, ApiContext& ctx);  // needs ctx.read: §6, admin, /readyz, /metrics
void add_event_routes(http::Router& router, ApiContext& ctx);
void add_stream_routes(http::Router& router, ApiContext& ctx);  // the live feed (SSE)
// GET /api/v1/openapi.json (the OpenAPI document, docs/openapi.yaml), /docs (a Redoc page
// rendering it) and the page's script: compiled in, open to every caller (§3).
void add_docs_routes(http::Router& router);
// The OpenAPI document /api/v1/openapi.json serves.
std::string_view openapi_json();
// Sagas and dead letters (§7) and GET /api/v1/admin/invariants (§5); `saga` may be null
// (this process runs no saga: sagas are read from their streams).
void add_saga_routes(http::Router& router, ApiContext& ctx, app::saga::SagaRunner* saga);

// One event as docs/api.md §8 shows it, appended to `out`.
void append_event_json(std::string& out, const es::RecordedEvent& e);

}  // namespace orderflow::api
