// The one place errors become HTTP answers (docs/api.md §3).
#pragma once

#include "api/http/message.h"
#include "core/result.h"

namespace orderflow::api {

// Maps an application error to its status and code; the message goes out as it is.
http::Response error_for(const Error& error);

}  // namespace orderflow::api
