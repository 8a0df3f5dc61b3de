// Upcasters turn an old schema_version of an event type into the current one on read.
// Stored events are never rewritten.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.h"
#include "es/event.h"

namespace orderflow::es {

class UpcasterRegistry {
 public:
  // Turns the data of schema `from` into the data of schema `from + 1`.
  using Step = std::function<Result<std::string>(std::string_view data)>;

  // Registers the step from schema `from` to `from + 1` of `type`.
  // REQUIRES: not called concurrently with upcast().
  void add(std::string type, std::int32_t from, Step step);

  // Applies every registered step from e.schema_version on. A failing step answers
  // Errc::corrupt naming the event.
  Result<void> upcast(RecordedEvent& e) const;

  bool empty() const { return steps_.empty(); }

 private:
  std::map<std::pair<std::string, std::int32_t>, Step, std::less<>> steps_;
};

}  // namespace orderflow::es
