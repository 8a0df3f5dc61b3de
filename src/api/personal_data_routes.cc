// Personal data (docs/api.md §7): DELETE /api/v1/customers/{id}/personal-data erases a
// customer's (crypto-shredding, app/personal_data.h); revealed() shows it in answers.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include "api/api.h"
#include "api/errors.h"
#include "app/personal_data.h"
#include "core/time.h"

namespace orderflow::api {

using http::Method;

http::Response revealed(ApiContext& ctx, http::Response r) {
  if (!ctx.personal || r.status < 200 || r.status > 299) return r;
  if (auto shown = ctx.personal->reveal(r.body); !shown) return error_for(shown.error());
  return r;
}

void add_personal_data_routes(http::Router& router, ApiContext& ctx) {
  // Answers 200 with the erasure, the same for every repeat (erased_at is the first's).
  router.add(Method::delete_, "/api/v1/customers/{id}/personal-data",
             [&ctx](http::Request& req) -> boost::asio::awaitable<http::Response> {
               const std::string id(req.param("id"));
               if (!ctx.personal)
                 co_return error_for(make_error(Errc::not_found, "this process keeps no personal data sealed"));
               auto erased = ctx.personal->erase(id);
               if (!erased) co_return error_for(erased.error());
               co_return http::json_response(
                   200, boost::json::object{{"customer_id", erased->customer_id},
                                            {"erased_at", format_rfc3339_ms(erased->erased_at_ms)}});
             });
}

}  // namespace orderflow::api
