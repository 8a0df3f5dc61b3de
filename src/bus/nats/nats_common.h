// What the NATS publisher and consumer share: connecting (reconnecting without end) and
// the streams they create when missing.
#pragma once

#include <nats/nats.h>

#include <string>
#include <vector>

#include "core/result.h"

namespace orderflow::bus::nats {

// An unavailable error naming `what`, libnats' status and its last error.
Unexpected nats_error(const std::string& what, natsStatus s);

// Options for servers "HOST:PORT": reconnect every 250 ms without end, 2 s to connect.
// The caller destroys them.
Result<natsOptions*> connection_options(const std::vector<std::string>& servers);

// The stream `name` with the subjects `<subject>` (created with `replicas` if missing).
Result<void> ensure_stream(jsCtx* js, const std::string& name, const std::string& subjects, int replicas);

}  // namespace orderflow::bus::nats
