#include "app/projections/history.h"

#include "app/aggregates.h"
#include "app/projections/documents.h"

namespace orderflow::app::projections {

Result<std::optional<Document>> order_at_time(es::EventStore& store, const std::string& order_id, std::int64_t at_ms) {
  auto state = Order::decider.initial_state();
  es::StreamVersion version = es::kNoStream;
  constexpr std::size_t kPage = 500;
  for (bool past = false; !past;) {
    OF_ASSIGN_OR_RETURN(auto events,
                        store.read_stream(stream_of<Order>(order_id), version + 1, kPage, es::Direction::forward));
    for (const auto& e : events) {
      if (e.recorded_at_ms > at_ms) {
        past = true;
        break;
      }
      OF_ASSIGN_OR_RETURN(auto event, codec::decode_event<Order::Event>(e.type, e.data));
      state = Order::decider.evolve(std::move(state), event);
      version = e.version;
    }
    past = past || events.size() < kPage;
  }
  if (version == es::kNoStream) return std::optional<Document>();
  return std::optional(Document{order_document(state, version), version});
}

}  // namespace orderflow::app::projections
