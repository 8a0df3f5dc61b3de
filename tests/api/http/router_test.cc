#include "api/http/router.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>


namespace orderflow::http {
namespace {

Handler tagged(std::string tag) {
  return [tag](Request&) -> boost::asio::awaitable<Response> { co_return json_response(200, tag); };
}

const Route* route_of(const Router::Match& m) { return m.outcome == Router::Outcome::found ? m.route : nullptr; }

TEST(Router, MatchesLiteralsAndNamedParameters) {
  Router r;
  r.add(Method::get, "/api/v1/orders/{id}", tagged("get"));
  r.add(Method::post, "/api/v1/orders/{id}/cancel", tagged("cancel"));
  r.add(Method::get, "/api/v1/admin/streams/{stream_id}/events", tagged("events"));

  Params p;
  auto m = r.match(Method::post, "/api/v1/orders/0190-abc/cancel", p);
  ASSERT_TRUE(route_of(m));
  EXPECT_EQ(p.find("id"), "0190-abc");

  p.clear();
  m = r.match(Method::get, "/api/v1/admin/streams/order-%20x%2Fy/events", p);
  ASSERT_TRUE(route_of(m));
  EXPECT_EQ(p.find("stream_id"), "order- x/y");  // decoded, and %2F stays inside the segment
  EXPECT_EQ(p.size(), 1u);
}

TEST(Router, UnknownPathIsNotFoundAndWrongMethodListsAllowed) {
  Router r;
  r.add(Method::get, "/api/v1/orders/{id}", tagged("get"));
  r.add(Method::delete_, "/api/v1/orders/{id}", tagged("delete"));
  Params p;
  EXPECT_EQ(r.match(Method::get, "/api/v1/orders", p).outcome, Router::Outcome::not_found);
  EXPECT_EQ(r.match(Method::get, "/api/v1/orders/", p).outcome, Router::Outcome::not_found);
  EXPECT_EQ(r.match(Method::get, "/api/v1/orders/1/x", p).outcome, Router::Outcome::not_found);
  EXPECT_EQ(r.match(Method::get, "relative", p).outcome, Router::Outcome::not_found);
  const auto m = r.match(Method::put, "/api/v1/orders/1", p);
  EXPECT_EQ(m.outcome, Router::Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, DELETE");
}

TEST(Router, OtherwiseAnswersWhatNoRouteMatches) {
  Router r;
  r.add(Method::get, "/healthz", tagged("health"));
  r.otherwise(tagged("otherwise"));
  Params p;
  const auto health = r.match(Method::get, "/healthz", p);
  ASSERT_TRUE(route_of(health));
  EXPECT_EQ(health.route->pattern, "/healthz");
  for (const auto& [method, path] : {std::pair{Method::post, "/healthz"}, std::pair{Method::get, "/api/v1/orders/1"},
                                     std::pair{Method::delete_, "/"}, std::pair{Method::get, "relative"}}) {
    const auto m = r.match(method, path, p);
    ASSERT_TRUE(route_of(m)) << path;
    EXPECT_EQ(m.route->pattern, "") << path;
    EXPECT_TRUE(m.route->options.any_content_type);
  }
  EXPECT_EQ(p.size(), 0u);
}

TEST(Router, RoutesListsTheTableSorted) {
  using Table = std::vector<std::pair<Method, std::string>>;
  const Table added{{Method::post, "/api/v1/orders/{id}/cancel"},
                    {Method::get, "/api/v1/orders/{id}"},
                    {Method::delete_, "/api/v1/orders/{id}"},
                    {Method::get, "/healthz"}};
  Router r;
  for (const auto& [method, pattern] : added) r.add(method, pattern, tagged(pattern));
  EXPECT_EQ(r.routes(), (Table{added[1], added[3], added[0], added[2]}));  // by method, then pattern
}

TEST(Router, LiteralWinsOverParameterWhateverTheOrder) {
  Router r;
  r.add(Method::get, "/a/{x}/c", tagged("param"));
  r.add(Method::get, "/a/b/c", tagged("literal"));
  r.add(Method::post, "/a/only-post", tagged("post"));
  r.add(Method::get, "/a/{x}", tagged("get-param"));
  Params p;
  auto m = r.match(Method::get, "/a/b/c", p);
  ASSERT_TRUE(route_of(m));
  EXPECT_TRUE(route_of(m)->param_names.empty());
  // The literal has no GET, so the parameter route serves it instead of a 405.
  m = r.match(Method::get, "/a/only-post", p);
  ASSERT_TRUE(route_of(m));
  EXPECT_EQ(p.find("x"), "only-post");
  // Backtracks from the literal branch "b" to the parameter branch.
  p.clear();
  m = r.match(Method::get, "/a/b/zzz", p);
  EXPECT_EQ(m.outcome, Router::Outcome::not_found);
}

TEST(Router, MalformedEscapeInParameterDoesNotMatch) {
  Router r;
  r.add(Method::get, "/x/{id}", tagged("x"));
  Params p;
  EXPECT_EQ(r.match(Method::get, "/x/%zz", p).outcome, Router::Outcome::not_found);
  EXPECT_EQ(p.size(), 0u);
}

TEST(Query, DecodesPairsPlusAndEscapes) {
  Params q;
  ASSERT_TRUE(parse_query("limit=20&customer_id=c%3A1&name=a+b&flag&&empty=", q));
  EXPECT_EQ(q.find("limit"), "20");
  EXPECT_EQ(q.find("customer_id"), "c:1");
  EXPECT_EQ(q.find("name"), "a b");
  EXPECT_EQ(q.find("flag"), "");
  EXPECT_EQ(q.find("empty"), "");
  EXPECT_FALSE(q.find("missing"));
  EXPECT_FALSE(parse_query("a=%G1", q));
  // A view inside a larger buffer ends where the view ends.
  const std::string target = "status=NEW+X HTTP/1.1";
  Params t;
  ASSERT_TRUE(parse_query(std::string_view(target).substr(0, 12), t));
  EXPECT_EQ(t.find("status"), "NEW X");
}

TEST(Messages, ErrorBodyHasCodeMessageAndDetails) {
  boost::json::object details;
  details["field"] = "items";
  const Response r = error_response(422, "validation_failed", "items must have 1-100 lines", details);
  EXPECT_EQ(r.status, 422);
  const auto body = boost::json::parse(r.body);
  EXPECT_EQ(body.at("error").at("code"), "validation_failed");
  EXPECT_EQ(body.at("error").at("message"), "items must have 1-100 lines");
  EXPECT_EQ(body.at("error").at("details").at("field"), "items");
  EXPECT_EQ(boost::json::parse(error_response(404, "not_found", "x").body).at("error").at("details"),
            boost::json::object{});
}

TEST(Messages, SseEventFraming) {
  EXPECT_EQ(sse_event("7", "OrderPlaced", "{\"a\":1}"), "id: 7\nevent: OrderPlaced\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(sse_event("", "", "a\nb"), "data: a\ndata: b\n\n");
}

TEST(Messages, HeaderLookupIgnoresCase) {
  Headers h;
  h.add("Content-Type", "application/json");
  EXPECT_EQ(h.find("content-type"), "application/json");
  EXPECT_FALSE(h.find("content-length"));
}

}  // namespace
}  // namespace orderflow::http
