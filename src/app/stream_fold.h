// Folding an aggregate's stream from the event store: the command handler's loads and the
// entity projections' re-fold of a state they no longer hold in memory.
#pragma once

#include <string>

#include "app/aggregates.h"
#include "es/event_store.h"

namespace orderflow::app {

template <class A>
struct Loaded {
  typename A::State state;
  es::StreamVersion version = es::kNoStream;
};

// Evolves `loaded` by the stream's events after loaded.version, through `until`
// (inclusive; -1: to the end). An event that cannot be decoded is Errc::corrupt.
template <class A>
Result<Loaded<A>> fold_stream(es::EventStore& store, const std::string& id, Loaded<A> loaded,
                              es::StreamVersion until) {
  constexpr std::size_t kPage = 1000;
  const auto stream = stream_of<A>(id);
  for (;;) {
    const auto from = loaded.version + 1;
    if (until >= 0 && from > until) return loaded;
    OF_ASSIGN_OR_RETURN(auto page, store.read_stream(stream, from, kPage, es::Direction::forward));
    for (const auto& e : page) {
      if (until >= 0 && e.version > until) return loaded;
      auto decoded = codec::decode_event<typename A::Event>(e.type, e.data);
      if (!decoded)
        return fail(Errc::corrupt, stream.str() + " version " + to_string(e.version) + ": " + decoded.error().message);
      loaded.state = A::decider.evolve(std::move(loaded.state), *decoded);
      loaded.version = e.version;
    }
    if (page.size() < kPage) return loaded;
  }
}

}  // namespace orderflow::app
