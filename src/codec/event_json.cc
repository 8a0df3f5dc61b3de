#include "codec/event_json.h"

#include <boost/json.hpp>

#include "core/time.h"

namespace orderflow::codec {

namespace {

std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::string_view(s.data(), s.size())); }

}  // namespace

void append_event_json(std::string& out, const es::RecordedEvent& e) {
  out += "{\"event_id\":" + quoted(e.event_id) + ",\"stream_id\":" + quoted(e.stream_id.str()) +
         ",\"type\":" + quoted(e.type) + ",\"version\":" + to_string(e.version) +
         ",\"position\":" + to_string(e.position) + ",\"schema_version\":" + std::to_string(e.schema_version) +
         ",\"data\":" + e.data + ",\"metadata\":" + e.metadata + ",\"recorded_at\":\"" +
         format_rfc3339_ms(e.recorded_at_ms) + "\"}";
}

}  // namespace orderflow::codec
