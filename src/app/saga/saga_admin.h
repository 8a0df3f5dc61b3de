// The saga's admin operations (docs/api.md §7): its sagas, its dead letters and their
// retry, as one application service that every entrance calls the same way (HTTP today,
// gRPC and the bus later). An entrance parses its request into these types and maps the
// result, or the Error, to its wire (api/errors.h for HTTP).
//
// Thread safety: any thread; the runner and the store do their own locking.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/saga/fulfilment_saga.h"
#include "app/saga/saga_records.h"
#include "core/result.h"
#include "es/event_store.h"

namespace orderflow::app::saga {

class SagaRunner;

struct ListSagas {
  std::optional<SagaState> state;  // none: every state
  std::size_t limit = 20;
};

struct RetryDeadLetter {
  std::string dead_letter_id;
  std::string actor;  // who asks: the event's metadata.actor
};
struct DeadLetterRetryAccepted {
  std::string dead_letter_id;
  std::string order_id;
  es::Position position{0};  // of the DeadLetterRetried: the saga acts once it has read it
};

class SagaAdmin {
 public:
  // `runner` may be null: this process runs no saga (sagas are then read from their
  // streams). Both must outlive this.
  SagaAdmin(es::EventStore& store, SagaRunner* runner) : store_(store), runner_(runner) {}

  // The sagas this process runs, newest first (none without a runner).
  std::vector<SagaView> list(const ListSagas& request);
  // The order's saga: as the running saga holds it, else its last SagaEnded record.
  // not_found: neither; corrupt: that record does not decode (saga_records.h).
  Result<SagaView> find(const std::string& order_id);
  // Every dead letter, oldest first; corrupt if one of the stream's records does not decode.
  Result<std::vector<DeadLetter>> dead_letters();
  // How many dead letters were recorded and retried (for /metrics).
  Result<DeadLetterCounts> dead_letter_counts() { return count_dead_letters(store_); }
  // Records a DeadLetterRetried: the saga drives the order again with fresh attempts when
  // it reads it. not_found: no such dead letter. `done` may run inline or on the store's
  // writer thread.
  void retry(const RetryDeadLetter& request, std::function<void(Result<DeadLetterRetryAccepted>)> done);

 private:
  es::EventStore& store_;
  SagaRunner* runner_;
};

}  // namespace orderflow::app::saga
