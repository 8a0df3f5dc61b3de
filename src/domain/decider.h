// The Decider (Jérémie Chassaing; fmodel's decider.rs): an aggregate as three pure
// functions. decide() turns a command into events or a rejection; evolve() folds an
// event into the state; initial_state() is the state of a stream with no events.
// Neither decide() nor evolve() does I/O or reads a clock: time comes in with commands.
#pragma once

#include <utility>
#include <vector>

#include "core/result.h"

namespace orderflow::domain {

// std::visit(overloaded{[](const A&) {...}, [](const B&) {...}}, v): a visit that stops
// compiling when a variant gains an alternative nobody handles.
template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;  // clang 14 lacks C++20 aggregate deduction

template <class Command, class State, class Event>
struct Decider {
  State (*initial_state)();
  Result<std::vector<Event>> (*decide)(const State&, const Command&);
  State (*evolve)(State, const Event&);
};

// The state after `events`, starting from `state`.
template <class Command, class State, class Event>
State fold(const Decider<Command, State, Event>& decider, State state, const std::vector<Event>& events) {
  for (const Event& e : events) state = decider.evolve(std::move(state), e);
  return state;
}

}  // namespace orderflow::domain
