#include "es/upcaster.h"

namespace orderflow::es {

void UpcasterRegistry::add(std::string type, std::int32_t from, Step step) {
  steps_.insert_or_assign({std::move(type), from}, std::move(step));
}

Result<void> UpcasterRegistry::upcast(RecordedEvent& e) const {
  for (;;) {
    auto it = steps_.find(std::pair{e.type, e.schema_version});
    if (it == steps_.end()) return {};
    auto data = it->second(e.data);
    if (!data)
      return fail(Errc::corrupt, "event " + e.event_id + " (" + e.type + " schema " +
                                     std::to_string(e.schema_version) + ") cannot be upcast: " +
                                     data.error().message);
    e.data = std::move(*data);
    ++e.schema_version;
  }
}

}  // namespace orderflow::es
