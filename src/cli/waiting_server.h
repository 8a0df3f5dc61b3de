// What `serve` answers on its port before it serves: while it waits for a PostgreSQL it
// cannot reach yet, and while its roles start after that. /healthz is 200 (the process is
// alive: a liveness probe leaves it be), /readyz 503 `unavailable` with the store's check
// and the reason, every other request 503 `unavailable` with Retry-After (docs/api.md §1).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "api/http/server.h"
#include "core/mutex.h"
#include "core/result.h"

namespace orderflow::cli {

class WaitingServer {
 public:
  // Listens where `options` says (TLS, allowed hosts and connection caps as the server
  // after it). nullptr, logged, if it cannot: `serve` then waits without answering.
  static std::unique_ptr<WaitingServer> start(http::ServerOptions options);
  // Stops and joins: the port is free again for the server that follows.
  ~WaitingServer();
  WaitingServer(const WaitingServer&) = delete;
  WaitingServer& operator=(const WaitingServer&) = delete;

  std::uint16_t port() const { return server_->port(); }
  // The store's last failed attempt: what /readyz tells.
  void waiting_for_store(const Error& error) EXCLUDES(mu_);
  // The store is open; the roles start.
  void store_opened() EXCLUDES(mu_);

 private:
  WaitingServer() = default;
  http::Router router();

  mutable Mutex mu_;
  std::string why_ GUARDED_BY(mu_);                         // the answer's message
  std::optional<std::string> store_error_ GUARDED_BY(mu_);  // the store's last error, if not open
  std::optional<http::HttpServer> server_;
};

}  // namespace orderflow::cli
