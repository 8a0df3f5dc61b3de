// Awaiting a callback-style back end from a handler coroutine.
//
//   Result<es::AppendResult> r = co_await http::await_callback<Result<es::AppendResult>>(
//       [&](auto done) { store.append_async(std::move(req), std::move(done)); });
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <utility>

#include "core/mutex.h"
#include "core/check.h"

namespace orderflow::http {

// Calls start(done) at once, then suspends until done(T) is called, from any thread,
// even inside start; the coroutine resumes on its own executor (the connection's io
// thread), never on the caller's. `done` is copyable, so it converts to std::function.
// REQUIRES: done is called exactly once, before the HttpServer is destroyed (a second
// call is a crash; a callback dropped uncalled destroys the handler's coroutine on the
// dropping thread).
template <class T, class Start>
boost::asio::awaitable<T> await_callback(Start start) {
  namespace asio = boost::asio;
  return asio::async_initiate<const asio::use_awaitable_t<>, void(T)>(
      [](auto handler, Start start) {
        using Handler = decltype(handler);
        struct State {
          Mutex mu;
          std::optional<Handler> handler GUARDED_BY(mu);
        };
        auto state = std::make_shared<State>();
        {
          MutexLock lock(state->mu);  // nothing else uses it yet: for the analysis
          state->handler.emplace(std::move(handler));
        }
        start([state](T value) {
          std::optional<Handler> taken;
          {
            MutexLock lock(state->mu);
            OF_CHECK(state->handler.has_value(), "await_callback: done called twice");
            taken.emplace(std::move(*state->handler));
            state->handler.reset();
          }
          auto ex = asio::get_associated_executor(*taken);
          asio::post(ex, [h = std::move(*taken), v = std::move(value)]() mutable {
            std::move(h)(std::move(v));
          });
        });
      },
      asio::use_awaitable, std::move(start));
}

}  // namespace orderflow::http
