// The live feed (docs/api.md §7): GET /api/v1/events/stream as Server-Sent Events. Each client is
// tailed by a thread of its own (the store's reads block): it catches up from
// `from_position` (or one past `Last-Event-ID`), then follows the log live, in position
// order, missing nothing. A client that does not keep up is disconnected once its unsent
// bytes pass kMaxQueuedBytes (it resumes with Last-Event-ID); `: ping` comments every
// kPingEvery keep idle connections and proxies alive.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <list>
#include <thread>

#include "api/api.h"
#include "core/mutex.h"
#include "api/errors.h"
#include "api/query_params.h"
#include "app/personal_data.h"
#include "codec/event_json.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
using http::Method;
using http::Request;
using http::Response;

constexpr std::size_t kMaxQueuedBytes = 1 << 20;
constexpr std::size_t kBatch = 500;
constexpr auto kPingEvery = std::chrono::seconds(10);

// The feeds' threads; joined when the router (and so this) is destroyed, after the server
// has ended every stream.
class Feeds {
 public:
  ~Feeds() {
    MutexLock lk(mu_);
    for (auto& f : feeds_) f.thread.join();
  }

  void start(app::EventLog& events, app::PersonalData* personal, std::shared_ptr<http::StreamWriter> out,
             es::Position from, es::EventFilter filter) {
    MutexLock lk(mu_);
    feeds_.remove_if([](Feed& f) {
      if (!f.done) return false;
      f.thread.join();
      return true;
    });
    auto& f = feeds_.emplace_back();
    f.thread = std::thread([&events, personal, out = std::move(out), from, filter = std::move(filter), &done = f.done] {
      tail(events, personal, *out, from, filter);
      out->close();
      done = true;
    });
  }

 private:
  struct Feed {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  // A key store that cannot be read ends the feed (the client resumes with Last-Event-ID).
  static void tail(app::EventLog& events, app::PersonalData* personal, http::StreamWriter& out, es::Position from,
                   const es::EventFilter& filter) {
    auto last_write = std::chrono::steady_clock::now();
    std::string chunk;
    while (out.is_open()) {
      if (out.queued_bytes() > kMaxQueuedBytes) return;  // a slow consumer: it resumes with Last-Event-ID
      chunk.clear();
      bool unreadable = false;
      auto next = events.page(
          from, kBatch, filter,
          [&](const es::RecordedEvent& e) {
            std::string data;
            codec::append_event_json(data, e);
            if (personal && !personal->reveal(data)) {
              unreadable = true;  // nothing of this batch is sent: the client resumes before it
              return false;
            }
            chunk += http::sse_event(to_string(e.position), e.type, data);
            return true;
          },
          kBatch);
      if (!next || unreadable) return;
      from = *next;
      const auto now = std::chrono::steady_clock::now();
      if (chunk.empty() && now - last_write >= kPingEvery) chunk = ": ping\n\n";
      if (!chunk.empty()) {
        if (!out.write(std::move(chunk))) return;
        chunk = std::string();
        last_write = now;
      }
      events.wait_for_events(from - 1, std::chrono::seconds(1));
    }
  }

  Mutex mu_;
  std::list<Feed> feeds_ GUARDED_BY(mu_);
};

}  // namespace

void add_stream_routes(http::Router& router, ApiContext& ctx) {
  auto feeds = std::make_shared<Feeds>();
  router.add(Method::get, "/api/v1/events/stream", [&ctx, feeds](Request& req) -> asio::awaitable<Response> {
    auto from = int_param(req, "from_position", 1, 0, INT64_MAX);
    if (!from) co_return error_for(from.error());
    if (auto id = req.header("Last-Event-ID"); id && !id->empty()) {
      auto last = parse_int(*id, "Last-Event-ID", 0, INT64_MAX - 1);
      if (!last) co_return error_for(last.error());
      *from = *last + 1;
    }
    es::EventFilter filter;
    if (auto c = req.query_param("category"); c && !c->empty()) filter.categories.emplace_back(*c);
    if (auto s = req.query_param("stream_id"); s && !s->empty()) filter.stream_id = es::StreamId(*s);
    co_return http::sse_response([&events = ctx.events, personal = ctx.personal, feeds,
                                  from = es::Position{std::max<std::int64_t>(*from, 1)},
                                  filter = std::move(filter)](std::shared_ptr<http::StreamWriter> out) {
      feeds->start(events, personal, std::move(out), from, filter);
    });
  });
}

}  // namespace orderflow::api
