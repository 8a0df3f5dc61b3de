// The fulfilment saga's vocabulary (docs/api.md §5) and its bookkeeping records (§8): the
// steps, the states, and the events the saga writes to its own streams, saga-<order_id>
// (Event) and deadletters-saga (DeadLetterEvent). Plain structs, like the aggregates'
// events: the saga itself, which decides when to write them, is app/saga.
//
// Promise: the spellings here are the stored and served ones ("reserve", "RUNNING",
// "failed"); the derived event ids of the saga's commands are made from them, so they never
// change.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace orderflow::domain::saga {

enum class SagaState { running, compensating, completed, compensated, failed };
const char* to_string(SagaState state);  // "RUNNING", "COMPENSATING", ...
std::optional<SagaState> parse_saga_state(std::string_view s);
bool is_final(SagaState state);  // completed, compensated or failed

// reserve -> charge -> confirm are the forward steps; compensate undoes them (and cancels
// the order); commit takes the stock of a shipped order.
enum class SagaStep { reserve, charge, confirm, compensate, commit };
const char* to_string(SagaStep step);  // "reserve", ...
std::optional<SagaStep> parse_saga_step(std::string_view s);
// A forward step is given up on after its attempts; the others are retried without limit.
bool is_forward(SagaStep step);

// failed: the step led to compensation; cancelled: the client cancelled while it ran.
enum class StepStatus { running, completed, failed, cancelled };
const char* to_string(StepStatus status);  // "running", ...
std::optional<StepStatus> parse_step_status(std::string_view s);

// One step of a saga as it ran: `at_ms` is when it started, or when it ended once it has.
struct StepRecord {
  SagaStep name = SagaStep::reserve;
  StepStatus status = StepStatus::running;
  int attempts = 0;
  std::string last_error;
  std::int64_t at_ms = 0;
  bool operator==(const StepRecord&) const = default;
};

// ---- saga-<order_id>. Fields in the order they have always been written.

// A step's attempt after the first, with its deadline. `step` is nullopt (stored as "")
// when the saga retried only its own bookkeeping, with no step left to run.
struct SagaStepRetried {
  static constexpr const char* kType = "SagaStepRetried";
  std::string order_id;
  std::optional<SagaStep> step;
  int attempt = 0;
  std::int64_t deadline_ms = 0;
  std::string error;
  bool operator==(const SagaStepRetried&) const = default;
};

// The saga reached a final state.
struct SagaEnded {
  static constexpr const char* kType = "SagaEnded";
  std::string order_id;
  SagaState state = SagaState::completed;
  std::string reason;
  std::vector<StepRecord> steps;
  bool operator==(const SagaEnded&) const = default;
};

using Event = std::variant<SagaStepRetried, SagaEnded>;

// ---- deadletters-saga

// The saga gave up on a forward step (`step`, after `attempts`) and compensated.
struct DeadLetterRecorded {
  static constexpr const char* kType = "DeadLetterRecorded";
  std::string dead_letter_id;
  std::string order_id;
  SagaStep step = SagaStep::reserve;
  int attempts = 0;
  std::string last_error;
  std::int64_t at_ms = 0;
  bool operator==(const DeadLetterRecorded&) const = default;
};

// An operator asked the saga to drive the order again (POST …/dead-letters/{id}/retry).
struct DeadLetterRetried {
  static constexpr const char* kType = "DeadLetterRetried";
  std::string dead_letter_id;
  std::string order_id;
  bool operator==(const DeadLetterRetried&) const = default;
};

using DeadLetterEvent = std::variant<DeadLetterRecorded, DeadLetterRetried>;

const char* event_type_name(const Event& event);
const char* event_type_name(const DeadLetterEvent& event);

}  // namespace orderflow::domain::saga
