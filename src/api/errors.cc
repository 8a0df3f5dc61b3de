#include "api/errors.h"

#include <boost/json.hpp>

namespace orderflow::api {

http::Response error_for(const Error& e, boost::json::object details) {
  auto answer = [&](int status, const char* code) {
    return http::error_response(status, code, e.message, details);
  };
  auto retry_later = [&](int status, const char* code) {
    auto r = answer(status, code);
    r.set_header("Retry-After", std::to_string(e.retry_after_s.value_or(1)));
    return r;
  };
  switch (e.code) {
    case Errc::invalid_json: return answer(400, "invalid_json");
    case Errc::invalid_argument: return answer(400, "invalid_request");
    case Errc::validation_failed: return answer(422, "validation_failed");
    case Errc::unknown_product: return answer(422, "unknown_product");
    case Errc::not_found: return answer(404, "not_found");
    case Errc::already_exists: return answer(409, "already_exists");
    case Errc::version_conflict: {
      if (e.current_version) details["current_version"] = e.current_version->value();
      return http::error_response(409, "version_conflict", e.message, details);
    }
    case Errc::invalid_state: return answer(409, "invalid_state");
    case Errc::insufficient_funds: return answer(409, "insufficient_funds");
    case Errc::idempotency_key_reused: return answer(409, "idempotency_key_reused");
    case Errc::duplicate_event: return answer(409, "already_exists");
    case Errc::unavailable: return retry_later(503, "unavailable");
    case Errc::overloaded: return retry_later(503, "overloaded");
    case Errc::projection_lagging: return retry_later(503, "projection_lagging");
    case Errc::rate_limited: return retry_later(429, "rate_limited");
    // RFC 9110 §15.5.20: this server will not answer for that URI; another process will.
    case Errc::not_served: return answer(421, "misdirected_request");
    case Errc::corrupt:
    case Errc::internal: return answer(500, "internal");
  }
  return answer(500, "internal");
}

}  // namespace orderflow::api
