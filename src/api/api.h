// The orderflow HTTP API (docs/api.md §4, §6–§7) on the generic HTTP layer: parse, call
// app/, map errors. Nothing here knows SQL.
#pragma once

#include "api/http/router.h"
#include "app/admission.h"
#include "app/command_handler.h"
#include "app/event_log.h"

namespace orderflow::app::projections {
class ReadSide;
}
namespace orderflow::app::saga {
class SagaRunner;
}
namespace orderflow::app::relay {
class Relay;
}
namespace orderflow::app {
class PersonalData;
class InvariantChecks;
class DeadLetterAdmin;
}
namespace orderflow::app::saga {
class SagaAdmin;
}
namespace orderflow::app::bus_projector {
class BusProjector;
}

namespace orderflow::api {

class Metrics;

struct ApiContext {
  app::CommandHandler& commands;
  // The log itself (event listings, the live feed, /readyz's store check): handlers read the
  // store only through it.
  app::EventLog& events;
  // The read side (§6 queries, /admin/projections, the live feed, /readyz); without it (demo)
  // only commands and event listings are served.
  app::projections::ReadSide* read = nullptr;
  Metrics* metrics = nullptr;  // /metrics, when set
  // /readyz answers 200 once every projection has applied this (the store's last position at start-up).
  es::Position ready_position{0};
  // Refuses clients' writes while the work behind them is too far behind (none: never).
  app::Admission* admission = nullptr;
  // The bus relay (--bus), shown by /api/v1/admin/relay, /readyz and /metrics; null: none.
  app::relay::Relay* relay = nullptr;
  // The projector fed from the bus (serve --roles projector --bus, without relay), shown by
  // /readyz: it is ready while it consumes; null: projections tail the log (ctx.read's runner).
  app::bus_projector::BusProjector* bus_projector = nullptr;
  // The saga runner when it is fed from the bus (serve --roles saga --bus, without relay),
  // shown by /readyz: ready while it consumes (or stands by); null: none, or it tails the log.
  app::saga::SagaRunner* saga_bus = nullptr;
  // Reveals sealed personal data in what reads answer (app/personal_data.h) and erases it
  // (DELETE /api/v1/customers/{id}/personal-data); null: answers are sent as stored and the
  // route answers 404.
  app::PersonalData* personal = nullptr;
};

// `r` with the sealed personal data in its body revealed (plaintext or "[erased]"); a key
// store that cannot be read turns it into that error's answer. Any answer but a 2xx is
// returned as it is.
http::Response revealed(ApiContext& ctx, http::Response r);

// The relay as /api/v1/admin/relay shows it: state, bus, the last position the bus
// acknowledged, and the lag behind the store in events and in seconds (the age of the
// oldest event not yet published; 0 when caught up). nullopt without a relay.
struct RelayView {
  std::string bus;
  std::string state;
  es::Position position{0};
  std::int64_t lag = 0;
  double lag_seconds = 0;
  std::uint64_t published = 0;
  std::optional<std::string> last_error;
};
std::optional<RelayView> relay_view(ApiContext& ctx);

// Why /readyz answers 503 (docs/api.md §7), once the store could be read: its message, and
// for a store that cannot write the reason; nullopt when ready.
struct NotReady {
  std::string message;
  std::optional<std::string> reason;
};
std::optional<NotReady> not_ready(ApiContext& ctx);

// Every route of the API. `ctx` must outlive the router.
http::Router make_router(ApiContext& ctx);

// The routes a process serves by its --roles (docs/api.md §1): `command`, the writes;
// `query`, the reads of read models and of the log and the live feed; `admin`, everything
// under /api/v1/admin/. Health, readiness, /metrics and the API's documents are served by
// every process.
struct ServedRoles {
  bool command = true;
  bool query = true;
  bool admin = true;
};
// Installs a guard answering a route of a role this process lacks with 421
// `misdirected_request`, naming the role, before anything else is checked.
void serve_only(http::Router& router, ServedRoles roles);

void add_command_routes(http::Router& router, ApiContext& ctx);
void add_query_routes(http::Router& router, ApiContext& ctx);  // needs ctx.read: §6, admin, /readyz, /metrics
void add_event_routes(http::Router& router, ApiContext& ctx);
void add_stream_routes(http::Router& router, ApiContext& ctx);  // the live feed (SSE)
void add_relay_routes(http::Router& router, ApiContext& ctx);   // GET /api/v1/admin/relay (404 without ctx.relay)
// DELETE /api/v1/customers/{id}/personal-data (404 without ctx.personal).
void add_personal_data_routes(http::Router& router, ApiContext& ctx);
// GET /api/v1/openapi.json (the OpenAPI document, docs/openapi.yaml), /docs (a Redoc page
// rendering it) and the page's script: compiled in, open to every caller (§3).
void add_docs_routes(http::Router& router);
// The OpenAPI document /api/v1/openapi.json serves.
std::string_view openapi_json();
// Sagas, dead letters (the saga's and a bus-fed projector's) (§7) and GET
// /api/v1/admin/invariants (§5). The services must outlive the router.
void add_saga_routes(http::Router& router, app::saga::SagaAdmin& sagas, app::DeadLetterAdmin& dead_letters,
                     app::InvariantChecks& invariants);

}  // namespace orderflow::api
