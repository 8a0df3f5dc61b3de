#include "codec/event_json.h"

#include <boost/json.hpp>

#include "core/time.h"

namespace orderflow::codec {

std::string json_string(std::string_view s) {
  return boost::json::serialize(boost::json::string_view(s.data(), s.size()));
}

void append_event_json(std::string& out, const es::RecordedEvent& e) {
  out += "{\"event_id\":" + json_string(e.event_id) + ",\"stream_id\":" + json_string(e.stream_id.str()) +
         ",\"type\":" + json_string(e.type) + ",\"version\":" + to_string(e.version) +
         ",\"position\":" + to_string(e.position) + ",\"schema_version\":" + std::to_string(e.schema_version) +
         ",\"data\":" + e.data + ",\"metadata\":" + e.metadata + ",\"recorded_at\":\"" +
         format_rfc3339_ms(e.recorded_at_ms) + "\"}";
}

}  // namespace orderflow::codec
