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

bool EventFilter::matches(const RecordedEvent& e) const {
  if (!stream_id.empty() && e.stream_id != stream_id) return false;
  if (!categories.empty() &&
      std::find(categories.begin(), categories.end(), e.stream_id.category()) == categories.end())
    return false;
  if (!types.empty() && std::find(types.begin(), types.end(), e.type) == types.end()) return false;
  return true;
}

}  // namespace orderflow::es
