// The error the Kafka adapters answer with: the bus is unavailable, what was being done, and
// librdkafka's reason.
#pragma once

#include <string>

#include "core/result.h"

namespace orderflow::bus::kafka {

inline Unexpected kafka_error(const std::string& what, const std::string& detail) {
  return fail(Errc::unavailable, "Kafka: " + what + ": " + detail);
}

}  // namespace orderflow::bus::kafka
