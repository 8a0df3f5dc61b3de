// The one place errors become HTTP answers (docs/api.md §3).
#pragma once

#include <boost/json/object.hpp>

#include "api/http/message.h"
#include "core/result.h"

namespace orderflow::api {

// Maps an application error to its status and code; the message goes out as it is, with
// `details` (an object) when given. The only place an error gets its Retry-After.
http::Response error_for(const Error& error, boost::json::object details = {});

}  // namespace orderflow::api
