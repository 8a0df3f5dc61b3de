#include "api/errors.h"

#include <boost/json.hpp>

namespace orderflow::api {

http::Response error_for(const Error& e) {
  auto answer = [&](int status, const char* code) { return http::error_response(status, code, e.message); };
  switch (e.code) {
    case Errc::invalid_json: return answer(400, "invalid_json");
    case Errc::invalid_argument: return answer(400, "invalid_request");
    case Errc::validation_failed: return answer(422, "validation_failed");
    case Errc::unknown_product: return answer(422, "unknown_product");
    case Errc::not_found: return answer(404, "not_found");
    case Errc::already_exists: return answer(409, "already_exists");
    case Errc::version_conflict: {
      boost::json::object details;
      if (e.current_version) details["current_version"] = e.current_version->value();
      return http::error_response(409, "version_conflict", e.message, details);
    }
    case Errc::invalid_state: return answer(409, "invalid_state");
    case Errc::insufficient_funds: return answer(409, "insufficient_funds");
    case Errc::idempotency_key_reused: return answer(409, "idempotency_key_reused");
    case Errc::duplicate_event: return answer(409, "already_exists");
    case Errc::unavailable:
    case Errc::overloaded: {
      auto r = answer(503, e.code == Errc::overloaded ? "overloaded" : "unavailable");
      r.set_header("Retry-After", "1");
      return r;
    }
    case Errc::corrupt:
    case Errc::internal: return answer(500, "internal");
  }
  return answer(500, "internal");
}

}  // namespace orderflow::api
