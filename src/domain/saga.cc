#include "domain/saga.h"

#include <initializer_list>

namespace orderflow::domain::saga {
namespace {

template <class Enum>
std::optional<Enum> parse_enum(std::string_view s, std::initializer_list<Enum> all) {
  for (Enum value : all)
    if (s == to_string(value)) return value;
  return std::nullopt;
}

template <class Variant>
const char* type_name(const Variant& event) {
  return std::visit([](const auto& e) { return e.kType; }, event);
}

}  // namespace

const char* to_string(SagaState state) {
  switch (state) {
    case SagaState::running: return "RUNNING";
    case SagaState::compensating: return "COMPENSATING";
    case SagaState::completed: return "COMPLETED";
    case SagaState::compensated: return "COMPENSATED";
    case SagaState::failed: return "FAILED";
  }
  return "?";
}

std::optional<SagaState> parse_saga_state(std::string_view s) {
  return parse_enum(s, {SagaState::running, SagaState::compensating, SagaState::completed, SagaState::compensated,
                        SagaState::failed});
}

bool is_final(SagaState state) {
  switch (state) {
    case SagaState::running:
    case SagaState::compensating: return false;
    case SagaState::completed:
    case SagaState::compensated:
    case SagaState::failed: return true;
  }
  return false;
}

const char* to_string(SagaStep step) {
  switch (step) {
    case SagaStep::reserve: return "reserve";
    case SagaStep::charge: return "charge";
    case SagaStep::confirm: return "confirm";
    case SagaStep::compensate: return "compensate";
    case SagaStep::commit: return "commit";
  }
  return "?";
}

std::optional<SagaStep> parse_saga_step(std::string_view s) {
  return parse_enum(s,
                    {SagaStep::reserve, SagaStep::charge, SagaStep::confirm, SagaStep::compensate, SagaStep::commit});
}

bool is_forward(SagaStep step) {
  switch (step) {
    case SagaStep::reserve:
    case SagaStep::charge:
    case SagaStep::confirm: return true;
    case SagaStep::compensate:
    case SagaStep::commit: return false;
  }
  return false;
}

const char* to_string(StepStatus status) {
  switch (status) {
    case StepStatus::running: return "running";
    case StepStatus::completed: return "completed";
    case StepStatus::failed: return "failed";
    case StepStatus::cancelled: return "cancelled";
  }
  return "?";
}

std::optional<StepStatus> parse_step_status(std::string_view s) {
  return parse_enum(s, {StepStatus::running, StepStatus::completed, StepStatus::failed, StepStatus::cancelled});
}

const char* event_type_name(const Event& event) { return type_name(event); }
const char* event_type_name(const DeadLetterEvent& event) { return type_name(event); }

}  // namespace orderflow::domain::saga
