// Every dead letter an operator looks at and retries (docs/api.md §7): the fulfilment
// saga's (app/saga/saga_admin.h: recorded in the log) and, in a process fed from a bus, the
// bus consumers' (app/bus_projector/bus_dead_letters.h, recorded in the read-model
// database): a bus-fed projector's held streams, a bus-fed saga's undecodable messages. One application service, so every entrance lists and retries them the same
// way; an entrance parses its request into these types and maps the result, or the Error,
// to its wire (api/errors.h for HTTP).
//
// Thread safety: any thread; the services behind it do their own locking.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "app/bus_projector/bus_projector.h"
#include "app/saga/saga_admin.h"
#include "core/result.h"

namespace orderflow::app {

// One dead letter of either source.
using AnyDeadLetter = std::variant<saga::DeadLetter, bus_projector::BusDeadLetter>;
// What a retry did: the saga's is accepted (the saga acts once it reads the retry in the
// log), the bus's done (its stream re-driven and released before the answer).
using AnyRetry = std::variant<saga::DeadLetterRetryAccepted, bus_projector::Redriven>;

class DeadLetterAdmin {
 public:
  // `bus`: the bus consumers of this process (none: it is fed by no bus, and lists none of
  // the bus's). All must outlive this.
  DeadLetterAdmin(saga::SagaAdmin& saga, std::vector<bus_projector::BusDeadLetterSource*> bus)
      : saga_(saga), bus_(std::move(bus)) {}

  // The saga's and the bus's, oldest first (by when each was recorded; the saga's first,
  // then the consumers' in the order given, on a tie). Errors: any source's (a saga record
  // that does not decode is corrupt).
  Result<std::vector<AnyDeadLetter>> list();
  // Retries the dead letter `request.dead_letter_id` of whichever source has it.
  // invalid_argument: the id is not a UUID; not_found: none has it; the bus's: see
  // BusDeadLetterSource::redrive (invalid_state for one retried already). `done` may run
  // inline, on the store's writer thread or on the consumer's thread.
  void retry(const saga::RetryDeadLetter& request, std::function<void(Result<AnyRetry>)> done);

 private:
  saga::SagaAdmin& saga_;
  std::vector<bus_projector::BusDeadLetterSource*> bus_;
};

}  // namespace orderflow::app
