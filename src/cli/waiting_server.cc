#include "cli/waiting_server.h"

#include <fmt/core.h>

#include <boost/json.hpp>

#include "api/errors.h"
#include "core/log.h"

namespace orderflow::cli {

namespace asio = boost::asio;
namespace json = boost::json;

std::unique_ptr<WaitingServer> WaitingServer::start(http::ServerOptions options) {
  std::unique_ptr<WaitingServer> w(new WaitingServer);
  options.io_threads = 1;
  options.blocking_threads = 0;
  options.shutdown_timeout = std::chrono::milliseconds(1000);
  options.observe = nullptr;
  const bool tls = options.tls.has_value();
  auto server = http::HttpServer::listen(w->router(), options);
  if (!server) {
    log::warn("serve", "cannot answer /healthz while the store is not open", {{"error", server.error().message}});
    return nullptr;
  }
  w->server_.emplace(std::move(*server));
  w->server_->start();
  log::info("serve", "answering /healthz (200) and /readyz (503) until the store is open and the roles started",
            {{"url", fmt::format("{}://{}:{}", tls ? "https" : "http", options.host, w->port())}});
  return w;
}

WaitingServer::~WaitingServer() {
  if (!server_) return;
  server_->stop();
  server_->join();
}

void WaitingServer::waiting_for_store(const Error& error) {
  MutexLock lk(mu_);
  why_ = "PostgreSQL cannot be reached yet: serve waits for it";
  store_error_ = error.message;
}

void WaitingServer::store_opened() {
  MutexLock lk(mu_);
  why_ = "starting: the store is open, the roles are starting";
  store_error_.reset();
}

http::Router WaitingServer::router() {
  http::Router router;
  router.add(http::Method::get, "/healthz", [](http::Request&) -> asio::awaitable<http::Response> {
    co_return http::json_response(200, R"({"status":"ok"})");
  });
  router.add(http::Method::get, "/readyz", [this](http::Request&) -> asio::awaitable<http::Response> {
    MutexLock lk(mu_);
    json::object store{{"readable", !store_error_}, {"writable", !store_error_}};
    json::object details;
    if (store_error_) {
      store["error"] = *store_error_;
      details["reason"] = *store_error_;
    }
    details["checks"] = json::object{{"store", std::move(store)}};
    co_return api::error_for(make_error(Errc::unavailable, why_), std::move(details));
  });
  router.otherwise([this](http::Request&) -> asio::awaitable<http::Response> {
    MutexLock lk(mu_);
    co_return api::error_for(make_error(Errc::unavailable, why_ + ": retry later"));
  });
  return router;
}

}  // namespace orderflow::cli
