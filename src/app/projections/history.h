// Time travel: an order as it was at a moment, folded from the event store itself.
#pragma once

#include <optional>
#include <string>

#include "app/projections/entities.h"
#include "es/event_store.h"

namespace orderflow::app::projections {

// The order's document after every event recorded at or before `at_ms`; nullopt if the
// order did not exist yet.
Result<std::optional<Document>> order_at_time(es::EventStore& store, const std::string& order_id, std::int64_t at_ms);

}  // namespace orderflow::app::projections
