#include "api/http/server.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "api/http/await.h"
#include "api/http/raw_client.h"

namespace orderflow::http {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::RawClient;

// Completes after `d` on the handler's own executor.
asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// Echoes what the handler saw: params, query and a header.
asio::awaitable<Response> echo(Request& req) {
  boost::json::object o;
  o["method"] = std::string(req.method_name);
  o["path"] = std::string(req.path);
  boost::json::object params, query;
  for (std::size_t i = 0; i < req.path_params.size(); ++i)
    params[req.path_params[i].first] = req.path_params[i].second;
  for (std::size_t i = 0; i < req.query.size(); ++i) query[req.query[i].first] = req.query[i].second;
  o["params"] = params;
  o["query"] = query;
  o["x_test"] = std::string(req.header("x-test").value_or(""));
  o["body"] = req.body;
  Response res = json_response(200, o);
  res.set_header("X-Echo", "1");
  co_return res;
}

std::string get(std::string_view target, std::string_view extra = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}

std::string post(std::string_view target, std::string_view content_type, std::string_view body) {
  std::string s = "POST " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n";
  if (!content_type.empty()) s += "Content-Type: " + std::string(content_type) + "\r\n";
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  return s;
}

boost::json::value json_of(const testing::RawResponse& r) { return boost::json::parse(r.body); }

std::string str(const boost::json::value& v) { return std::string(v.as_string()); }

std::string error_code_of(const testing::RawResponse& r) {
  return std::string(json_of(r).at("error").at("code").as_string());
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add(Method::get, "/api/v1/orders/{id}", echo);
    router_.add(Method::post, "/api/v1/orders/{id}/cancel", echo);
    router_.add(Method::post, "/raw", echo, {.any_content_type = true});
    router_.add(Method::get, "/slow", [this](Request& req) -> asio::awaitable<Response> {
      ++slow_started_;
      const auto ms = std::stoi(std::string(req.query_param("ms").value_or("300")));
      co_await sleep_for(std::chrono::milliseconds(ms));
      co_return json_response(200, R"({"slept":true})");
    });
    router_.add(Method::get, "/throw", [](Request&) -> asio::awaitable<Response> {
      throw std::runtime_error("boom");
      co_return Response{};
    });
  }

  void start(ServerOptions options = {}) {
    auto s = HttpServer::listen(std::move(router_), std::move(options));
    ASSERT_TRUE(s) << s.error().message;
    server_.emplace(std::move(*s));
    server_->start();
  }

  std::uint16_t port() const { return server_->port(); }

  Router router_;
  std::optional<HttpServer> server_;
  std::atomic<int> slow_started_{0};
  std::atomic<pthread_t> io_thread_{};
};

TEST_F(ServerTest, RoutesWithParamsQueryAndHeaders) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/api/v1/orders/ab%20c?limit=5&status=NEW+X", "X-Test: yes\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->header("x-echo"), "1");
  const auto j = json_of(*r);
  EXPECT_EQ(j.at("params").at("id"), "ab c");
  EXPECT_EQ(j.at("query").at("limit"), "5");
  EXPECT_EQ(j.at("query").at("status"), "NEW X");
  EXPECT_EQ(j.at("x_test"), "yes");

  ASSERT_TRUE(c.send(post("/api/v1/orders/o1/cancel", "application/json; charset=utf-8", R"({"reason":"x"})")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json_of(*r).at("body"), R"({"reason":"x"})");
}

TEST_F(ServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/nope")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(error_code_of(*r), "not_found");

  ASSERT_TRUE(c.send("DELETE /api/v1/orders/1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(error_code_of(*r), "method_not_allowed");
  EXPECT_EQ(r->header("allow"), "GET");
  EXPECT_TRUE(json_of(*r).at("error").at("details").is_object());
}

TEST_F(ServerTest, OversizedBodyIs413WithoutReadingIt) {
  start({.body_limit = 1 << 20});
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /api/v1/orders/1/cancel HTTP/1.1\r\nHost: t\r\n"
                     "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"));
  auto r = c.read_response(2s);  // answered although not one body byte was sent
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(error_code_of(*r), "payload_too_large");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer(3s));
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitIs413) {
  start({.body_limit = 1000});
  RawClient c(port());
  std::string req = "POST /raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += "200\r\n" + std::string(512, 'x') + "\r\n";
  ASSERT_TRUE(c.send(req));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST_F(ServerTest, NonJsonBodyIs415UnlessTheRouteOptsOut) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", "text/plain", "hello")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_EQ(error_code_of(*r), "unsupported_media_type");

  ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", "", "{}")));  // no Content-Type at all
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);

  // A write without a body is JSON too (CSRF: a page can send a form anywhere, JSON not).
  for (const char* type : {"", "application/x-www-form-urlencoded", "text/plain"}) {
    ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", type, "")));
    r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 415) << type;
  }
  ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", "application/json", "")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // A +json type is another document (a patch), not the JSON object a route reads.
  ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", "application/json-patch+json", "{}")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);

  ASSERT_TRUE(c.send(post("/api/v1/orders/1/cancel", "Application/JSON; charset=utf-8", "{}")));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  ASSERT_TRUE(c.send(post("/raw", "text/plain", "hello")));  // still on the same connection
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json_of(*r).at("body"), "hello");
}

TEST_F(ServerTest, MalformedRequestIs400AndClose) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /x HTTP/1.1\r\nBad Header Line\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_code_of(*r), "invalid_request");
  EXPECT_TRUE(c.closed_by_peer(3s));
}

// RFC 9112 §6.1, §6.3: a body whose length two parsers could read differently is refused
// and the connection closed, so no second request rides in it (request smuggling).
TEST_F(ServerTest, AmbiguousBodyFramingIs400AndClose) {
  start();
  const std::string smuggled = "POST /raw HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
  const std::vector<std::string> heads = {
      "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: identity\r\n",
      "Transfer-Encoding: chunked, gzip\r\n",
      "Transfer-Encoding: xchunked\r\n",
      "Transfer-Encoding: gzip, chunked\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
      "Transfer-Encoding: chunked\r\nContent-Length: " + std::to_string(smuggled.size() + 5) + "\r\n",
  };
  for (const auto& head : heads) {
    RawClient c(port());
    ASSERT_TRUE(c.send("POST /raw HTTP/1.1\r\nHost: t\r\n" + head + "\r\n0\r\n\r\n" + smuggled));
    auto r = c.read_response();
    ASSERT_TRUE(r) << head;
    EXPECT_EQ(r->status, 400) << head;
    EXPECT_EQ(error_code_of(*r), "invalid_request") << head;
    EXPECT_TRUE(c.closed_by_peer(3s)) << head << ": the bytes after it were kept as a request";
  }
  // chunked alone is read.
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json_of(*r).at("body"), "hello");
}

TEST_F(ServerTest, AnswersAreNeitherSniffedNorCached) {
  start();
  RawClient c(port());
  for (const char* target : {"/api/v1/orders/7", "/nowhere"}) {
    ASSERT_TRUE(c.send("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->header("X-Content-Type-Options"), "nosniff") << target;
    EXPECT_EQ(r->header("Cache-Control"), "no-store") << target;
  }
}

TEST_F(ServerTest, HandlerExceptionIs500) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/throw")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(error_code_of(*r), "internal");
}

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  RawClient c(port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.send(get("/api/v1/orders/" + std::to_string(i))));
    auto r = c.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(str(json_of(*r).at("params").at("id")), std::to_string(i));
    EXPECT_EQ(r->header("connection"), "");
  }
  ASSERT_TRUE(c.send(get("/api/v1/orders/last", "Connection: close\r\n")));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer(3s));
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient c(port());
  // The first is slow, the others fast: answers must still come in request order.
  ASSERT_TRUE(c.send(get("/slow?ms=100") + get("/api/v1/orders/2") + get("/nope") + get("/api/v1/orders/4")));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  auto r3 = c.read_response();
  auto r4 = c.read_response();
  ASSERT_TRUE(r1 && r2 && r3 && r4);
  EXPECT_EQ(json_of(*r1).at("slept"), true);
  EXPECT_EQ(json_of(*r2).at("params").at("id"), "2");
  EXPECT_EQ(r3->status, 404);
  EXPECT_EQ(json_of(*r4).at("params").at("id"), "4");
}

TEST_F(ServerTest, SlowClientDoesNotBlockOthers) {
  start({.io_threads = 1});  // one io thread: a blocked thread would show
  RawClient slow(port());
  ASSERT_TRUE(slow.send("GET /api/v1/orders/1 HTTP/1.1\r\nHost: t\r\nX-Te"));
  RawClient other(port());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(other.send(get("/api/v1/orders/2")));
  auto r = other.read_response(2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_TRUE(slow.send("st: late\r\n\r\n"));  // the slow one still gets its answer
  r = slow.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(json_of(*r).at("x_test"), "late");
}

// A handler that holds its thread (a read of many rows from a slow database) on a blocking
// route holds a blocking thread, not the io thread: with one io thread, others are answered.
TEST_F(ServerTest, ABlockingRouteHoldsABlockingThreadNotTheIoThread) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> held{0};
  std::atomic<bool> on_io_thread{false};
  router_.add(Method::get, "/held", [&](Request&) -> asio::awaitable<Response> {
    on_io_thread = pthread_equal(pthread_self(), io_thread_);
    ++held;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
    co_return json_response(200, R"({"held":true})");
  }, {.blocking = true});
  router_.add(Method::get, "/held-throws", [](Request&) -> asio::awaitable<Response> {
    throw std::runtime_error("boom");
    co_return Response{};
  }, {.blocking = true});
  router_.add(Method::get, "/io-thread", [this](Request&) -> asio::awaitable<Response> {
    io_thread_ = pthread_self();
    co_return json_response(200, "{}");
  });
  auto let_go = [&] {
    {
      std::lock_guard lock(mu);
      release = true;
    }
    cv.notify_all();
  };
  struct LetGoAtEnd {  // however the test ends, or the server's join would wait on the held handlers
    std::function<void()> let_go;
    ~LetGoAtEnd() { let_go(); }
  } let_go_at_end{let_go};
  start({.io_threads = 1, .blocking_threads = 2});
  RawClient probe(port());
  ASSERT_TRUE(probe.send(get("/io-thread")));
  ASSERT_TRUE(probe.read_response());
  RawClient a(port()), b(port());
  ASSERT_TRUE(a.send(get("/held")));
  ASSERT_TRUE(b.send(get("/held")));
  for (int i = 0; i < 500 && held < 2; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(held, 2);  // both at once: two blocking threads
  EXPECT_FALSE(on_io_thread);
  RawClient other(port());
  ASSERT_TRUE(other.send(get("/api/v1/orders/2")));
  auto r = other.read_response(2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  let_go();
  for (RawClient* c : {&a, &b}) {
    auto held_answer = c->read_response();
    ASSERT_TRUE(held_answer);
    EXPECT_EQ(json_of(*held_answer).at("held"), true);
  }
  RawClient thrower(port());  // what escapes a handler there is a 500, as on an io thread
  ASSERT_TRUE(thrower.send(get("/held-throws")));
  r = thrower.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
}

TEST_F(ServerTest, HeaderAndIdleTimeoutsCloseConnections) {
  start({.idle_timeout = 300ms, .header_timeout = 200ms});
  RawClient half(port());
  ASSERT_TRUE(half.send("GET /api/v1/orders/1 HTTP/1.1\r\n"));
  RawClient idle(port());
  ASSERT_TRUE(idle.send(get("/api/v1/orders/1")));
  ASSERT_TRUE(idle.read_response());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(half.closed_by_peer(2s));
  EXPECT_TRUE(idle.closed_by_peer(2s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

// A connection that never sends a byte is not a keep-alive client between requests: it
// gets the header timeout, not the idle one (20,000 of them held every descriptor).
TEST_F(ServerTest, ASilentNewConnectionIsClosedAtTheHeaderTimeout) {
  start({.idle_timeout = 5s, .header_timeout = 200ms});
  RawClient silent(port());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.closed_by_peer(4s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

// A message quoting what the client sent stays valid JSON and short.
TEST_F(ServerTest, ErrorMessagesQuoteClientBytesAsShortValidUtf8) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(std::string(10000, 'X') + " /api/v1/orders/1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_LE(r->body.size(), 1024u) << "the method was echoed whole";
  EXPECT_NO_THROW(json_of(*r));
  EXPECT_EQ(printable_message("caf\xc3\xa9 \xff\xfe ok"), "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd ok");
  EXPECT_EQ(printable_message("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  EXPECT_LE(printable_message(std::string(5000, 'a')).size(), 512u);
}

TEST_F(ServerTest, ExpectContinueGetsContinueBeforeTheBody) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /raw HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(json_of(*r).at("body"), "hello");
}

TEST_F(ServerTest, HeadSendsNoBody) {
  router_.add(Method::head, "/h", [](Request&) -> asio::awaitable<Response> {
    co_return json_response(200, "{\"x\":1}");
  });
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  const std::string got =
      c.read_until([](const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; }, 2s);
  EXPECT_NE(got.find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_EQ(c.read_some(200ms), got);  // nothing after the head
}

TEST_F(ServerTest, ManyConcurrentConnections) {
  constexpr int kClients = 2000;
  // Both ends live in this process: 2 descriptors per connection, over the usual soft 1024.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 2 * kClients + 100) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 2 * kClients + 100);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < 2 * kClients + 100) GTEST_SKIP() << "needs " << 2 * kClients + 100 << " descriptors";
  start({.max_connections_per_ip = kClients});
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(clients.back()->connected()) << i;
  }
  for (int i = 0; i < kClients; ++i) ASSERT_TRUE(clients[i]->send(get("/api/v1/orders/" + std::to_string(i))));
  for (int i = 0; i < kClients; ++i) {
    auto r = clients[i]->read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(str(json_of(*r).at("params").at("id")), std::to_string(i));
  }
}

// DNS rebinding: a page from attacker.example that points the name at 127.0.0.1 sends
// Host: attacker.example.
TEST_F(ServerTest, AHostOutsideTheAllowedHostsIs421) {
  start({.allowed_hosts = {"localhost", "[::1]"}});
  RawClient c(port());
  for (std::string_view host : {"attacker.example", "localhost.attacker.example:80", "127.0.0.1"}) {
    ASSERT_TRUE(c.send("GET /api/v1/orders/1 HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r) << host;
    EXPECT_EQ(r->status, 421) << host;
    EXPECT_EQ(error_code_of(*r), "misdirected_request");
  }
  for (std::string_view host : {"localhost", "LocalHost:8080", "[::1]:1"}) {
    ASSERT_TRUE(c.send("GET /api/v1/orders/1 HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r) << host;
    EXPECT_EQ(r->status, 200) << host;
  }
  ASSERT_TRUE(c.send("GET /api/v1/orders/1 HTTP/1.0\r\n\r\n"));  // no Host at all
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 421);
}

// 300 idle connections from one address (over the 256 per address) leave /healthz answering.
TEST_F(ServerTest, OverTheConnectionCapsHealthChecksAreStillAnswered) {
  router_.add(Method::get, "/healthz", [](Request&) -> asio::awaitable<Response> {
    co_return json_response(200, R"({"status":"ok"})");
  });
  start();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 300; ++i) {
    idle.push_back(std::make_unique<RawClient>(port()));
    ASSERT_TRUE(idle.back()->connected()) << i;
  }
  // Connections are taken in order: once the first of these is served, the 300 are counted.
  for (int i = 0; i < 3; ++i) {
    RawClient health(port());
    ASSERT_TRUE(health.send(get("/healthz")));
    auto r = health.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("Connection"), "close");
  }
  RawClient other(port());
  ASSERT_TRUE(other.send(get("/api/v1/orders/1")));
  auto refused = other.read_response();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->header("Retry-After"), "1");
  EXPECT_TRUE(other.closed_by_peer(2s));
  // The first 256 are served as ever.
  ASSERT_TRUE(idle.front()->send(get("/api/v1/orders/7")));
  auto served = idle.front()->read_response();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);

  // Their places come back when they close.
  idle.clear();
  bool regular = false;
  for (int attempt = 0; attempt < 100 && !regular; ++attempt) {
    RawClient c(port());
    ASSERT_TRUE(c.send(get("/api/v1/orders/1")));
    auto r = c.read_response();
    regular = r && r->status == 200;
    if (!regular) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(regular);
}

TEST_F(ServerTest, WithTheReserveFullTooANewConnectionIsClosed) {
  start({.max_connections = 2, .reserve_connections = 1});
  RawClient a(port()), b(port());
  ASSERT_TRUE(a.send(get("/api/v1/orders/1")));  // a and b are regular
  ASSERT_TRUE(a.read_response());
  RawClient reserve(port());  // holds the reserve, silent
  RawClient refused(port());
  EXPECT_TRUE(refused.closed_by_peer(1s));
  EXPECT_EQ(refused.read_some(10ms), "");
  EXPECT_TRUE(reserve.closed_by_peer(4s));  // the reserve's short head timeout
  ASSERT_TRUE(b.send(get("/api/v1/orders/2")));
  auto r = b.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Clients that never read a large answer: the bytes held for them are bounded over all
// connections, and each is cut off at the write timeout.
TEST_F(ServerTest, LargeAnswersToClientsThatDoNotReadAreBoundedAndCutOff) {
  // Four times what loopback takes from a client that never reads (a 4 MiB send buffer, a
  // receive window that grows only as the client reads), and two of them pass the max.
  const std::string big = "\"" + std::string(16 << 20, 'x') + "\"";
  router_.add(Method::get, "/big", [&big](Request&) -> asio::awaitable<Response> { co_return json_response(200, big); });
  // The write timeout leaves room for copying the body for the second request on a slow
  // (sanitized, loaded) machine before the stuck client is cut off.
  start({.write_timeout = 4s, .max_output_bytes = 20 << 20});
  RawClient stuck(port());
  ASSERT_TRUE(stuck.send(get("/big")));  // and never reads
  std::this_thread::sleep_for(200ms);
  RawClient second(port());
  ASSERT_TRUE(second.send(get("/big")));
  auto refused = second.read_response(10s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->header("Retry-After"), "1");
  RawClient small(port());
  ASSERT_TRUE(small.send(get("/api/v1/orders/1")));
  auto r = small.read_response(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // Past the write timeout the stuck client is gone and its bytes are free again: the same
  // answer is sent, not refused. (Only heads are read: the whole body within the write
  // timeout is more than a loaded machine does.)
  std::string head;
  for (const auto until = std::chrono::steady_clock::now() + 20s;
       !head.starts_with("HTTP/1.1 200") && std::chrono::steady_clock::now() < until;) {
    RawClient reader(port());
    ASSERT_TRUE(reader.send(get("/big")));
    head = reader.read_until([](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, 10s);
    if (!head.starts_with("HTTP/1.1 200")) std::this_thread::sleep_for(250ms);
  }
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head.substr(0, 200);
}

TEST_F(ServerTest, AwaitsCallbackBackendAndResumesOnTheIoThread) {
  std::mutex mu;
  std::vector<std::thread> backend;  // a back end answering from its own threads
  router_.add(Method::get, "/backend/{mode}", [&](Request& req) -> asio::awaitable<Response> {
    const auto io_thread = std::this_thread::get_id();
    const bool inline_answer = req.param("mode") == "inline";
    auto start_call = [&](std::function<void(Result<int>)> done) {
      if (inline_answer) return done(Result<int>(7));  // answered before returning, like a rejection
      std::lock_guard lock(mu);
      backend.emplace_back([done] {
        std::this_thread::sleep_for(20ms);
        done(Result<int>(42));
      });
    };
    Result<int> r = co_await await_callback<Result<int>>(start_call);
    boost::json::object o;
    o["value"] = *r;
    o["same_thread"] = std::this_thread::get_id() == io_thread;
    co_return json_response(200, o);
  });
  start();
  RawClient c(port());
  for (const char* mode : {"thread", "inline"}) {
    ASSERT_TRUE(c.send(get(std::string("/backend/") + mode)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(json_of(*r).at("value"), std::string(mode) == "inline" ? 7 : 42);
    EXPECT_EQ(json_of(*r).at("same_thread"), true);
  }
  server_->stop();
  server_->join();
  for (auto& t : backend) t.join();
}

TEST_F(ServerTest, StopFinishesInFlightRequestClosesIdleAndJoins) {
  start({.shutdown_timeout = 5s});
  RawClient idle(port());
  ASSERT_TRUE(idle.send(get("/api/v1/orders/1")));
  ASSERT_TRUE(idle.read_response());
  RawClient busy(port());
  ASSERT_TRUE(busy.send(get("/slow?ms=400")));
  while (slow_started_ == 0) std::this_thread::sleep_for(1ms);

  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_TRUE(idle.closed_by_peer(1s));  // idle keep-alive connections go at once
  auto r = busy.read_response(3s);       // the in-flight request still gets its answer
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "close");
  server_->join();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  RawClient late(port());
  EXPECT_FALSE(late.connected());
}

TEST_F(ServerTest, StopGivesUpOnHandlersPastTheShutdownTimeout) {
  start({.shutdown_timeout = 200ms});
  RawClient busy(port());
  ASSERT_TRUE(busy.send(get("/slow?ms=10000")));
  while (slow_started_ == 0) std::this_thread::sleep_for(1ms);
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  server_->join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(busy.closed_by_peer(1s));
}

TEST_F(ServerTest, StopsOnSignal) {
  auto s = HttpServer::listen(std::move(router_), {});
  ASSERT_TRUE(s);
  s->stop_on_signals({SIGUSR2});
  auto done = std::async(std::launch::async, [&] { s->run(); });
  std::this_thread::sleep_for(50ms);
  ::raise(SIGUSR2);
  EXPECT_EQ(done.wait_for(3s), std::future_status::ready);
}

// An SSE feed: the handler hands the writer to "app code" (the test), which writes from
// its own thread.
class SseTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    router_.add(Method::get, "/events", [this](Request& req) -> asio::awaitable<Response> {
      const std::string last_id(req.header("last-event-id").value_or(""));
      co_return sse_response([this, last_id](std::shared_ptr<StreamWriter> w) {
        w->write(": resuming after " + last_id + "\n\n");
        w->on_close([this] { closed_.set_value(); });
        writer_.set_value(std::move(w));
      });
    });
  }
  std::promise<std::shared_ptr<StreamWriter>> writer_;
  std::promise<void> closed_;
};

TEST_F(SseTest, StreamsEventsUntilTheServerCloses) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/events", "Last-Event-ID: 41\r\n")));
  auto w = writer_.get_future().get();
  std::thread app([w] {
    for (int i = 42; i < 45; ++i) w->write(sse_event(std::to_string(i), "OrderPlaced", "{\"n\":" + std::to_string(i) + "}"));
    w->close();
    EXPECT_FALSE(w->write("dropped"));
  });
  app.join();
  auto r = c.read_response(3s);  // no length: the body runs to the close
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "text/event-stream");
  EXPECT_EQ(r->header("cache-control"), "no-cache");
  EXPECT_EQ(r->body,
            ": resuming after 41\n\n"
            "id: 42\nevent: OrderPlaced\ndata: {\"n\":42}\n\n"
            "id: 43\nevent: OrderPlaced\ndata: {\"n\":43}\n\n"
            "id: 44\nevent: OrderPlaced\ndata: {\"n\":44}\n\n");
  EXPECT_EQ(closed_.get_future().wait_for(2s), std::future_status::ready);
  EXPECT_FALSE(w->is_open());
}

TEST_F(SseTest, ClientLeavingEndsTheStream) {
  start();
  auto c = std::make_unique<RawClient>(port());
  ASSERT_TRUE(c->send(get("/events")));
  auto w = writer_.get_future().get();
  ASSERT_TRUE(w->write(sse_event("1", "x", "{}")));
  c->read_until([](const std::string& s) { return s.find("id: 1") != std::string::npos; }, 2s);
  c.reset();
  EXPECT_EQ(closed_.get_future().wait_for(2s), std::future_status::ready);
  EXPECT_FALSE(w->is_open());
  EXPECT_FALSE(w->write("late"));
}

TEST_F(SseTest, SlowConsumerShowsUpInQueuedBytes) {
  start({.write_timeout = 1s});
  RawClient c(port());  // never reads
  ASSERT_TRUE(c.send(get("/events")));
  auto w = writer_.get_future().get();
  const std::string chunk = sse_event("", "", std::string(64 * 1024, 'x'));
  // The socket buffers fill up, then the queue grows: app code disconnects at a bound.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (w->queued_bytes() < 4u << 20 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(w->write(chunk));
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(w->queued_bytes(), 4u << 20);
  w->close();
  server_->stop();  // the write timeout ends the stuck stream
  server_->join();
  EXPECT_EQ(closed_.get_future().wait_for(0s), std::future_status::ready);
}

TEST_F(SseTest, StopEndsStreams) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send(get("/events")));
  auto w = writer_.get_future().get();
  server_->stop();
  server_->join();
  EXPECT_EQ(closed_.get_future().wait_for(0s), std::future_status::ready);
  EXPECT_TRUE(c.closed_by_peer(1s));
}

}  // namespace
}  // namespace orderflow::http
