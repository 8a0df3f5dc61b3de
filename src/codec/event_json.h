// One recorded event as docs/api.md §8 shows it: the HTTP listings, the live feed and the
// bus relay all send this same JSON.
#pragma once

#include <string>
#include <string_view>

#include "es/event.h"

namespace orderflow::codec {

// `e` as {event_id, stream_id, type, version, position, schema_version, data, metadata,
// recorded_at}, appended to `out`; data and metadata are stored JSON, copied as they are.
void append_event_json(std::string& out, const es::RecordedEvent& e);

// `s` as a JSON string literal, quoted and escaped. (Not named `quoted`: for a std::string
// argument, argument-dependent lookup would find std::quoted too, an exact match.)
std::string json_string(std::string_view s);

}  // namespace orderflow::codec
