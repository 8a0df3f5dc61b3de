#include <cstdlib>

#include "core/log.h"
#include "core/result.h"

namespace orderflow {

namespace detail {
void check_failed(const char* expr, const char* msg, const char* file, int line) {
  log::error("orderflow", std::string("invariant broken: ") + msg,
             {{"file", file}, {"line", line}, {"expression", expr}});
  std::abort();
}
}  // namespace detail

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_json: return "invalid_json";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::validation_failed: return "validation_failed";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::version_conflict: return "version_conflict";
    case Errc::invalid_state: return "invalid_state";
    case Errc::insufficient_funds: return "insufficient_funds";
    case Errc::unknown_product: return "unknown_product";
    case Errc::idempotency_key_reused: return "idempotency_key_reused";
    case Errc::duplicate_event: return "duplicate_event";
    case Errc::unavailable: return "unavailable";
    case Errc::overloaded: return "overloaded";
    case Errc::projection_lagging: return "projection_lagging";
    case Errc::rate_limited: return "rate_limited";
    case Errc::not_served: return "not_served";
    case Errc::corrupt: return "corrupt";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

}  // namespace orderflow
