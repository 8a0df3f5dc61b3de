#include "es/event.h"

#include <algorithm>

namespace orderflow::es {

std::string ExpectedVersion::describe() const {
  switch (kind_) {
    case Kind::any: return "any";
    case Kind::no_stream: return "no_stream";
    case Kind::stream_exists: return "stream_exists";
    case Kind::exact: return to_string(version_);
  }
  return "?";
}

bool EventFilter::has_category(std::string_view category) const {
  return categories.empty() || std::find(categories.begin(), categories.end(), category) != categories.end();
}

bool EventFilter::matches(const RecordedEvent& e) const {
  if (!stream_id.empty() && e.stream_id != stream_id) return false;
  if (!has_category(e.stream_id.category())) return false;
  if (!types.empty() && std::find(types.begin(), types.end(), e.type) == types.end()) return false;
  return true;
}

}  // namespace orderflow::es
