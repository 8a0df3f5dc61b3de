// orderflow events STREAM: prints a stream's events, oldest first, one JSON per line.
#include <fmt/core.h>

#include <memory>

#include "cli/commands.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

struct EventsOptions {
  std::string stream;
  StoreSpec store;
};

int print_events(const EventsOptions& o) {
  auto store = open_store(o.store);
  if (!store) return runtime_failure(store.error().message);
  // Personal data is shown as reads show it: plaintext, or "[erased]".
  app::PersonalData personal(store->customer_keys(), store->events(), store->personal_data_options());
  es::StreamVersion from{0};
  for (;;) {
    auto events = store->events().read_stream(es::StreamId(o.stream), from, 1000, es::Direction::forward);
    if (!events) return runtime_failure(events.error().message);
    if (from == 0 && events->empty()) return runtime_failure("stream " + o.stream + " has no events");
    for (auto e : *events) {
      if (auto shown = personal.reveal(e.data); !shown) return runtime_failure(shown.error().message);
      fmt::print(R"({{"position":{},"version":{},"type":"{}","event_id":"{}","data":{},"metadata":{}}})" "\n",
                 e.position.value(), e.version.value(), e.type, e.event_id, e.data, e.metadata);
    }
    if (events->size() < 1000) return 0;
    from = events->back().version + 1;
  }
}

}  // namespace

void add_events(CLI::App& root, Settings& settings, Action& action) {
  auto o = std::make_shared<EventsOptions>();
  auto* cmd = root.add_subcommand("events", "Print a stream's events, oldest first, one JSON object per line");
  cmd->add_option("STREAM", o->stream, "Stream id, e.g. order-<uuid>")->required();
  add_store_settings(settings, *cmd, o->store);
  cmd->callback([o, &action] { action = [o] { return print_events(*o); }; });
}

}  // namespace orderflow::cli
