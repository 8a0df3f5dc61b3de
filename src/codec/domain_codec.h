// The one place domain types meet JSON: event data as stored (the aggregates' events and
// the saga's records), and aggregate state as snapshotted. Field names are the structs'
// member names (snake_case, as docs/api.md §8).
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"
#include "domain/account.h"
#include "domain/order.h"
#include "domain/product.h"
#include "domain/saga.h"

namespace orderflow::codec {

// The schema_version events are written with, and snapshots' state encoding version
// (2: an account's state no longer holds its charges by order; 3: a product's state no
// longer holds its reservations by order; snapshots of another version are not used).
inline constexpr std::int32_t kEventSchemaVersion = 1;
inline constexpr std::int32_t kStateSchemaVersion = 3;

// The `data` JSON of an event; its type string is event_type_name(e).
std::string encode_event(const domain::product::Event& e);
std::string encode_event(const domain::account::Event& e);
std::string encode_event(const domain::order::Event& e);
// The saga's bookkeeping records (domain/saga.h), stored as they always were.
std::string encode_event(const domain::saga::Event& e);
std::string encode_event(const domain::saga::DeadLetterEvent& e);

// Decodes a stored event's data by its type. Errc::corrupt names the type on failure.
template <class Event>
Result<Event> decode_event(std::string_view type, std::string_view data);

std::string encode_state(const domain::product::State& s);
std::string encode_state(const domain::account::State& s);
std::string encode_state(const domain::order::State& s);

template <class State>
Result<State> decode_state(std::string_view json);

}  // namespace orderflow::codec
