#include "app/bus_projector/bus_projector.h"

#include <algorithm>
#include <boost/json.hpp>
#include <iterator>
#include <map>
#include <unordered_set>

#include "app/aggregates.h"
#include "app/personal_data.h"
#include "app/projections/read_side.h"
#include "app/relay/relay.h"
#include "codec/domain_codec.h"
#include "core/log.h"
#include "core/named_thread.h"
#include "core/time.h"
#include "es/event_store.h"

namespace orderflow::app::bus_projector {

namespace {

constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
// Events of a held stream read again from the store at a time.
constexpr std::size_t kRedrivePage = 500;

// Whether `type` is an event of aggregate A (its data decodes, or fails only on its fields).
template <class A>
Result<void> known(const es::RecordedEvent& e) {
  auto decoded = codec::decode_event<typename A::Event>(e.type, e.data);
  if (!decoded) return fail(decoded.error().code, decoded.error().message);
  return {};
}

}  // namespace

Result<es::RecordedEvent> decode(const es::BusDelivery& d, const std::string& topic_prefix) {
  namespace json = boost::json;
  boost::system::error_code ec;
  auto v = json::parse(d.body, ec);
  if (ec || !v.is_object()) return fail(Errc::invalid_argument, "the body is not a JSON object");
  const auto& o = v.as_object();
  es::RecordedEvent e;
  auto text = [&](const char* field, std::string& out) {
    const auto* f = o.if_contains(field);
    if (!f || !f->is_string()) return false;
    out = std::string(f->as_string());
    return true;
  };
  auto integer = [&](const char* field, std::int64_t& out) {
    const auto* f = o.if_contains(field);
    if (!f || !f->is_int64()) return false;
    out = f->as_int64();
    return true;
  };
  std::int64_t version = 0, position = 0, schema_version = 0;
  std::string recorded_at, stream_id;
  if (!text("event_id", e.event_id) || !text("stream_id", stream_id) || !text("type", e.type) ||
      !integer("version", version) || !integer("position", position) ||
      !integer("schema_version", schema_version) || !text("recorded_at", recorded_at))
    return fail(Errc::invalid_argument,
                "the body lacks a field of an event (event_id, stream_id, type, version, position, schema_version, "
                "recorded_at)");
  const auto* data = o.if_contains("data");
  const auto* metadata = o.if_contains("metadata");
  if (!data || !data->is_object() || !metadata || !metadata->is_object())
    return fail(Errc::invalid_argument, "the body's data or metadata is not a JSON object");
  auto at = parse_rfc3339_ms(recorded_at);
  if (!at) return fail(Errc::invalid_argument, "recorded_at is not an RFC 3339 time: " + recorded_at);
  if (version < 0 || position < 1 || stream_id.empty())
    return fail(Errc::invalid_argument, "the body's version, position or stream_id is out of range");
  e.stream_id = es::StreamId(std::move(stream_id));
  e.version = es::StreamVersion{version};
  e.position = es::Position{position};
  e.schema_version = static_cast<std::int32_t>(schema_version);
  e.data = json::serialize(*data);
  e.metadata = json::serialize(*metadata);
  e.recorded_at_ms = *at;
  const auto expected = topic_prefix + "." + std::string(e.stream_id.category());
  if (d.topic != expected)
    return fail(Errc::invalid_argument, "an event of " + e.stream_id.str() + " on " + d.topic + ", not " + expected);
  for (const auto& [name, value] : d.headers)
    if ((name == "orderflow-stream-id" && value != e.stream_id) ||
        (name == "orderflow-version" && value != to_string(e.version)) ||
        (name == "orderflow-event-id" && value != e.event_id))
      return fail(Errc::invalid_argument, "header " + name + " disagrees with the body");
  const auto category = e.stream_id.category();
  Result<void> typed;
  if (category == Order::category)
    typed = known<Order>(e);
  else if (category == Product::category)
    typed = known<Product>(e);
  else if (category == Account::category)
    typed = known<Account>(e);
  if (!typed) return fail(Errc::invalid_argument, "event " + e.type + " of " + e.stream_id.str() + ": " + typed.error().message);
  return e;
}

BusProjector::BusProjector(projections::ReadSide& read, es::BusConsumer& bus, BusProjectorOptions options)
    : read_(read), bus_(bus), options_(std::move(options)), tables_(read.db()) {}

BusProjector::~BusProjector() { stop(); }

// Whether this process holds the right to write every read model it feeds and the
// dead-letter tables (always, on a database of its own). If not, it gives back those it
// took or held: another process needs them all (two processes each holding some would
// both stand by for ever).
Result<bool> BusProjector::claim_all() {
  std::vector<std::string> names;
  for (projections::TableProjection* p : std::initializer_list<projections::TableProjection*>{
           &read_.orders(), &read_.products(), &read_.accounts(), &read_.sales()})
    names.push_back(p->name());
  names.emplace_back(kDeadLetterTables);
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto claimed = read_.db().claim(names[i]);
    if (claimed && *claimed) continue;
    for (const auto& name : names) (void)read_.db().release(name);  // none it does not hold
    return claimed;
  }
  return true;
}

// Opens the live copies and the dead-letter tables, once every claim is held.
Result<void> BusProjector::open_copies() {
  decltype(copies_) copies;
  std::vector<es::Position> positions;
  std::vector<es::ProjectionLag> lags;
  for (projections::TableProjection* p : std::initializer_list<projections::TableProjection*>{
           &read_.orders(), &read_.products(), &read_.accounts(), &read_.sales()}) {
    OF_ASSIGN_OR_RETURN(auto live, p->open_live());
    // No events: makes its bus_versions, which reads look at before anything came.
    OF_RETURN_IF_ERROR(p->apply_delivered(*live, {}));
    OF_ASSIGN_OR_RETURN(auto position, p->prepare_for_bus(*live, options_.store));
    positions.push_back(position);
    lags.push_back({.name = p->name()});
    if (position > acked_position_.load()) acked_position_ = position;
    copies.emplace_back(p, std::move(live));
  }
  OF_RETURN_IF_ERROR(tables_.create());
  OF_ASSIGN_OR_RETURN(held_streams_, tables_.held_streams());
  held_ = held_streams_.size();
  recovered_through_.clear();
  MutexLock lk(mu_);
  copies_ = std::move(copies);
  positions_ = std::move(positions);
  lag_totals_ = std::move(lags);
  fed_ = true;
  return {};
}

Result<void> BusProjector::start() {
  if (thread_.joinable()) return {};
  OF_ASSIGN_OR_RETURN(const bool claimed, claim_all());
  if (claimed) OF_RETURN_IF_ERROR(open_copies());
  {
    MutexLock lk(mu_);
    stopping_ = false;
    running_ = true;
    state_ = claimed ? "connecting" : "standby";
  }
  redrives_.open();
  thread_ = named_thread("of-bus-proj", [this, claimed] {
    if (!claimed && !stand_by()) return;
    loop();
  });
  return {};
}

// Another process folds these read models from the bus: stands by, looking every
// kStandbyCheck, without a consumer of the bus (so it takes no partition of a group; one
// that lost its claims has left: es::BusConsumer::leave), until every claim is free (that
// process gone); then opens the copies. False: stopped first.
bool BusProjector::stand_by() {
  for (;;) {
    {
      MutexLock lk(mu_);
      if (cv_.wait_for(mu_, kStandbyCheck, [&]() REQUIRES(mu_) { return stopping_; })) return false;
    }
    auto claimed = claim_all();
    if (claimed && *claimed) {
      bool fed = false;
      {
        MutexLock lk(mu_);
        fed = fed_;
      }
      // A process that stood by after losing its claims has its copies open already.
      if (auto opened = fed ? resume_copies() : open_copies(); !opened) {
        set_state("standby", opened.error().message);
        continue;
      }
      log::info("bus-projector", "this process now folds the read models from the bus",
                {{"consumer", options_.consumer}});
      set_state("connecting", std::nullopt);
      return true;
    }
    set_state("standby", claimed ? std::nullopt : std::optional(claimed.error().message));
  }
}

// After this process took the claims again (a new connection to the read-model database,
// or after standing by): what memory holds of the copies is forgotten, since another
// process may have written them meanwhile (even fed them from the log: they are readied
// for the bus again), and their positions and the held streams are read again.
Result<void> BusProjector::resume_copies() {
  std::vector<es::Position> positions;
  for (auto& [projection, live] : copies_) {
    projection->forget(*live);
    OF_ASSIGN_OR_RETURN(auto position, projection->prepare_for_bus(*live, options_.store));
    positions.push_back(position);
    if (position > acked_position_.load()) acked_position_ = position;
  }
  OF_ASSIGN_OR_RETURN(held_streams_, tables_.held_streams());
  held_ = held_streams_.size();
  early_since_.clear();
  failures_.clear();
  recovered_through_.clear();
  MutexLock lk(mu_);
  for (std::size_t i = 0; i < positions.size(); ++i) positions_[i] = std::max(positions_[i], positions[i]);
  return {};
}

// The bus brought nothing: each read model's highest position is raised to the highest
// position acknowledged, if below it (a batch without its categories leaves it out). So,
// quiet, its position tells how far the bus has brought it, after a restart and to the
// processes that follow it too, where it stayed at its own last event: the log's last
// events may be of a category no read model folds (the saga's), which showed as lag while
// quiet and kept `orderflow verify` waiting for the position.
Result<void> BusProjector::raise_positions() {
  const auto acked = acked_position_.load();
  for (std::size_t i = 0; i < copies_.size(); ++i) {
    {
      MutexLock lk(mu_);
      if (positions_[i] >= acked) continue;
    }
    OF_RETURN_IF_ERROR(copies_[i].first->raise_delivered_position(*copies_[i].second, acked));
    MutexLock lk(mu_);
    positions_[i] = std::max(positions_[i], acked);
  }
  return {};
}

// After a failure of the read models: if it is `unavailable` (the connection lost, and the
// claims with it; the database down or full), the claims are taken again: on a new
// connection, or, if another process holds one now, this one stands by (loop(),
// `lost_claims_`). Answers `error`. Its callers have had what they fetched delivered again,
// with no attempt counted against the events: it is not their fault (counted, they were
// dead-lettered after a few, their streams held).
Result<void> BusProjector::reclaim_if_unavailable(const Error& error) {
  if (error.code != Errc::unavailable) return fail(error);
  OF_ASSIGN_OR_RETURN(const bool claimed, claim_all());
  if (claimed) OF_RETURN_IF_ERROR(resume_copies());
  lost_claims_ = !claimed;
  return fail(error);
}

void BusProjector::stop() {
  if (!thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  {
    MutexLock lk(mu_);
    state_ = "stopped";
    running_ = false;
  }
  redrives_.close("the bus-fed projector is stopping");
  answer_readers(true);
}

std::vector<es::ProjectionLag> BusProjector::lags() const {
  const auto s = status();
  MutexLock lk(mu_);
  auto out = lag_totals_;
  for (auto& l : out) {
    l.window = s.lag_window;
    l.p50_ms = s.lag_p50_ms;
    l.p99_ms = s.lag_p99_ms;
  }
  return out;
}

std::vector<BusProjection> BusProjector::projections() const {
  MutexLock lk(mu_);
  std::vector<BusProjection> out;
  for (std::size_t i = 0; i < positions_.size() && i < copies_.size(); ++i)
    out.push_back({copies_[i].first->name(), positions_[i]});
  return out;
}

// The version of `stream`'s last event at or below `position` (kNoStream: none), read
// backward from its end.
Result<es::StreamVersion> BusProjector::version_at(const es::StreamId& stream, es::Position position) {
  constexpr std::size_t kPage = 100;
  for (es::StreamVersion from{-1};;) {
    OF_ASSIGN_OR_RETURN(auto page, options_.store->read_stream(stream, from, kPage, es::Direction::backward));
    for (const auto& e : page)
      if (e.position <= position) return e.version;
    if (page.size() < kPage || page.back().version <= es::StreamVersion{0}) return es::kNoStream;
    from = page.back().version - 1;
  }
}

Result<ReadStand> BusProjector::stand(const ReadWaiter& w) {
  ReadStand s;
  {
    MutexLock lk(mu_);
    s.position = positions_[w.copy];
  }
  if (w.stream) {
    auto& [projection, live] = copies_[w.copy];
    OF_ASSIGN_OR_RETURN(s.applied_version, projection->delivered_version(*live, *w.stream));
    s.version = w.version;
    s.applied = s.applied_version >= w.version;
  } else {
    s.applied = s.position >= w.position;
  }
  return s;
}

void BusProjector::when_readable(ReadTarget target, std::chrono::steady_clock::time_point deadline,
                                 std::function<void(Result<ReadStand>)> done) {
  ReadWaiter w{0, std::move(target.stream), es::kNoStream, es::Position{0}, deadline, std::move(done)};
  {
    MutexLock lk(mu_);
    if (!fed_)
      return w.done(fail(Errc::unavailable, "this process stands by: another folds the read models from the bus"));
    w.copy = copies_.size();  // set once fed_, never changed after
    for (std::size_t i = 0; i < copies_.size(); ++i)
      if (copies_[i].first->name() == target.projection) w.copy = i;
  }
  if (w.copy == copies_.size()) return w.done(fail(Errc::not_found, "no projection " + target.projection + " fed from the bus"));
  if (w.stream) {
    if (!options_.store)
      return w.done(fail(Errc::unavailable, "this projector has no event store to read " + w.stream->str() + " from"));
    auto version = target.min_position ? version_at(*w.stream, *target.min_position)
                                       : options_.store->stream_version(*w.stream);
    if (!version) return w.done(fail(version.error()));
    w.version = *version;
  } else if (target.min_position) {
    w.position = *target.min_position;
  }
  auto now = stand(w);
  if (!now || now->applied || std::chrono::steady_clock::now() >= deadline) return w.done(std::move(now));
  {
    MutexLock lk(mu_);
    if (running_ && !stopping_) {
      readers_.push_back(std::move(w));
      cv_.notify_all();  // its deadline may come before the loop's next look
      return;
    }
  }
  w.done(std::move(now));
}

void BusProjector::answer_readers(bool all) {
  std::vector<ReadWaiter> pending;
  {
    MutexLock lk(mu_);
    pending.swap(readers_);
  }
  if (pending.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  std::vector<ReadWaiter> left;
  for (auto& w : pending) {
    auto s = stand(w);
    if (!s || s->applied || all || now >= w.deadline)
      w.done(std::move(s));
    else
      left.push_back(std::move(w));
  }
  if (left.empty()) return;
  MutexLock lk(mu_);
  for (auto& w : left) readers_.push_back(std::move(w));
}

Result<std::vector<BusDeadLetter>> BusProjector::dead_letters() {
  OF_ASSIGN_OR_RETURN(auto out, tables_.list());
  for (auto& d : out) {
    d.consumer = options_.consumer;
    d.subject = options_.topic_prefix + "." + std::string(d.stream_id.category());
  }
  return out;
}

void BusProjector::redrive(std::string id, std::string actor, std::function<void(Result<Redriven>)> done) {
  {
    MutexLock lk(mu_);
    if (running_ && !stopping_ && !fed_) {
      lk.unlock();
      return done(fail(Errc::unavailable, "this process stands by: retry the dead letter where the read models are folded"));
    }
  }
  if (!redrives_.push({std::move(id), std::move(actor), std::move(done)}, "the bus-fed projector is not running"))
    return;
  MutexLock lk(mu_);
  cv_.notify_all();
}

Result<Redriven> BusProjector::redrive_now(const RedriveQueue::Request& request) {
  OF_ASSIGN_OR_RETURN(auto found, tables_.find(request.id));
  if (!found) return fail(Errc::not_found, "no dead letter " + request.id);
  const auto& letter = *found;
  if (letter.retried_at_ms)
    return fail(Errc::invalid_state, "dead letter " + request.id + " was retried at " +
                                         format_rfc3339_ms(*letter.retried_at_ms) + ": stream " + letter.stream_id.str() +
                                         " is no longer held");
  if (!options_.store)
    return fail(Errc::unavailable, "this projector has no event store to read " + letter.stream_id.str() + " from");
  Redriven out{.dead_letter_id = request.id, .consumer = options_.consumer, .stream_id = letter.stream_id};
  // The whole stream: an earlier event than the held one may be missing (a gap), and the
  // ones already applied are skipped by their version.
  for (es::StreamVersion from{0};;) {
    OF_ASSIGN_OR_RETURN(auto page,
                        options_.store->read_stream(letter.stream_id, from, kRedrivePage, es::Direction::forward));
    if (page.empty()) break;
    OF_ASSIGN_OR_RETURN(auto events, apply_stored(page));
    out.events += events.size();
    out.version = events.back().version;
    record_lag(events);
    if (page.size() < kRedrivePage) break;
    from = events.back().version + 1;
  }
  out.retried_at_ms = now_unix_ms();
  OF_RETURN_IF_ERROR(tables_.release(letter, out.retried_at_ms, request.actor));
  held_streams_.erase(letter.stream_id);
  held_ = held_streams_.size();
  std::erase_if(early_since_, [&](const auto& e) { return e.first.first == letter.stream_id; });
  std::erase_if(failures_, [&](const auto& f) { return f.first.first == letter.stream_id; });
  return out;
}

// Applies events read from the store (each stream's in version order) as the relay
// publishes them and decode() reads them back (personal data revealed), and answers them
// so. One that came early (its stream's previous version neither applied nor among them)
// is an error.
Result<std::vector<es::RecordedEvent>> BusProjector::apply_stored(std::span<const es::RecordedEvent> stored) {
  std::vector<es::RecordedEvent> events;
  events.reserve(stored.size());
  for (const auto& e : stored) {
    auto m = relay::message(e, options_.topic_prefix);
    if (options_.personal_data) OF_RETURN_IF_ERROR(options_.personal_data->reveal(m.body));
    OF_ASSIGN_OR_RETURN(auto published, decode(es::BusDelivery{m.topic, std::move(m.headers), std::move(m.body)},
                                               options_.topic_prefix));
    events.push_back(std::move(published));
  }
  OF_ASSIGN_OR_RETURN(auto early, apply(events));
  if (!early.empty())
    return fail(Errc::internal, "version " + to_string(events[early.front()].version) + " of " +
                                    events[early.front()].stream_id.str() +
                                    " read from the store could not be applied in order");
  return events;
}

// The events a topic whose messages the bus dropped held: its category's, or, for the bus's
// wildcard `PREFIX.>` (JetStream's one stream: a gap in it does not say whose messages it
// held), those of every category a read model folds. nullopt: no read model folds them (the
// saga's own streams).
std::optional<es::EventFilter> BusProjector::dropped_events(const std::string& topic) const {
  const auto prefix = options_.topic_prefix + ".";
  const auto category = topic.starts_with(prefix) ? topic.substr(prefix.size()) : std::string();
  if (category == ">") {
    es::EventFilter every;
    for (const auto& [projection, copy] : copies_) {
      const auto& folded = projection->filter().categories;
      if (folded.empty()) return es::EventFilter{};  // every category
      for (const auto& c : folded)
        if (std::find(every.categories.begin(), every.categories.end(), c) == every.categories.end())
          every.categories.push_back(c);
    }
    return every;
  }
  if (category.empty() || std::none_of(copies_.begin(), copies_.end(),
                                       [&](const auto& c) { return c.first->filter().has_category(category); }))
    return std::nullopt;
  return es::EventFilter{.categories = {category}};
}

// The events of the topics whose messages the bus dropped unread (es::BusConsumer::dropped),
// read from the store: every event of the topic's categories (dropped_events), in the log's
// order (so each stream's in order), applied as a delivery would be, those applied already
// skipped by their version and those of held streams left behind their dead letters. The
// read starts past the last position an earlier read of all those categories went through
// (recovered_through_): a bus that keeps dropping (a stream's limits smaller than a burst)
// costs each time the events since, not the whole log. A topic stays pending until it is
// done: after a failure, at the next fetch.
Result<void> BusProjector::recover_dropped() {
  while (!dropped_.empty()) {
    const auto topic = *dropped_.begin();
    const auto filter = dropped_events(topic);
    if (!filter) {
      dropped_.erase(dropped_.begin());
      continue;
    }
    if (!options_.store)
      return fail(Errc::unavailable,
                  "the bus dropped messages of " + topic +
                      " before they were read, and this projector has no event store to read them from");
    OF_ASSIGN_OR_RETURN(const auto last, options_.store->last_position());
    // scan_all passes no event while one below it may still become visible, so every event
    // of these categories below where the read ended was applied by it (or is held).
    const auto categories = filter->categories.empty() ? std::vector<std::string>{""} : filter->categories;
    const auto through = [&](const std::string& category) {
      auto at = [&](const std::string& key) {
        auto it = recovered_through_.find(key);
        return it == recovered_through_.end() ? es::Position{0} : it->second;
      };
      return std::max(at(category), at(""));
    };
    es::Position done = last;
    for (const auto& category : categories) done = std::min(done, through(category));
    const es::Position start{done.value() + 1};
    std::size_t recovered = 0;
    es::Position from = start;
    while (from <= last) {
      std::vector<es::RecordedEvent> stored;
      OF_ASSIGN_OR_RETURN(const auto next, options_.store->scan_all(from, kRedrivePage, *filter, [&](const auto& e) {
        if (!held_streams_.contains(e.stream_id)) stored.push_back(e);
      }));
      OF_ASSIGN_OR_RETURN(auto events, apply_stored(stored));
      recovered += events.size();
      if (next <= from) break;
      from = next;
    }
    log::warn("bus-projector", "read from the store the events of a topic whose messages the bus dropped unread",
              {{"topic", topic},
               {"events", std::to_string(recovered)},
               {"from", to_string(start)},
               {"through", to_string(last)}});
    from_store_ += recovered;
    const es::Position ended{from.value() - 1};
    for (const auto& category : categories) recovered_through_[category] = std::max(through(category), ended);
    dropped_.erase(topic);
  }
  return {};
}

void BusProjector::refresh_backlog() {
  const auto now = std::chrono::steady_clock::now();
  if (now - backlog_asked_ < options_.backlog_every) return;
  backlog_asked_ = now;
  auto backlog = bus_.backlog();
  backlog_ = backlog ? static_cast<std::int64_t>(*backlog) : -1;
}

BusProjectorStatus BusProjector::status() const {
  BusProjectorStatus s;
  s.bus = options_.bus;
  s.applied = applied_;
  s.from_store = from_store_;
  s.dead_lettered = dead_lettered_;
  s.held = held_;
  s.position = acked_position_.load();
  if (const std::int64_t b = backlog_; b >= 0) s.backlog = static_cast<std::uint64_t>(b);
  MutexLock lk(mu_);
  s.last_lag_ms = last_lag_ms_;
  s.state = state_;
  s.last_error = last_error_;
  s.lag_window = lag_.count();
  const auto p = lag_.percentiles_us(std::array{0.5, 0.99});
  s.lag_p50_ms = p[0] / 1000.0;
  s.lag_p99_ms = p[1] / 1000.0;
  return s;
}

void BusProjector::set_state(const char* state, std::optional<std::string> error) {
  MutexLock lk(mu_);
  state_ = state;
  last_error_ = std::move(error);
}

void BusProjector::loop() {
  auto backoff = kFirstBackoff;
  for (;;) {
    redrives_.run([&](const auto& r) { return redrive_now(r); });
    auto consumed = consume();
    if (lost_claims_) {
      lost_claims_ = false;
      log::warn("bus-projector", "another process now folds the read models from the bus: this one stands by",
                {{"consumer", options_.consumer}});
      set_state("standby", consumed ? std::nullopt : std::optional(consumed.error().message));
      bus_.leave();  // what it holds goes to the process that folds now
      if (!stand_by()) break;
      continue;
    }
    if (consumed)
      refresh_backlog();
    else
      backlog_ = -1;  // the bus did not answer: no count to show
    auto wait = std::chrono::milliseconds(0);
    if (consumed) {
      backoff = kFirstBackoff;
    } else {
      set_state("retrying", consumed.error().message);
      wait = backoff;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    // Until the back-off ends, pending reads are answered at their deadlines.
    const auto until = std::chrono::steady_clock::now() + wait;
    bool stop = false;
    for (;;) {
      answer_readers(false);
      MutexLock lk(mu_);
      if (stopping_) {
        stop = true;
        break;
      }
      if (std::chrono::steady_clock::now() >= until || redrives_.waiting()) break;
      auto next = until;
      for (const auto& r : readers_) next = std::min(next, r.deadline);
      const auto readers = readers_.size();
      (void)cv_.wait_until(mu_, next, [&]() REQUIRES(mu_) {
        return stopping_ || redrives_.waiting() || readers_.size() != readers;
      });
    }
    if (stop) break;
  }
}

// Applies `events` to every copy; answers the indexes of those that came early (an earlier
// event of their stream is not applied yet) in any copy.
Result<std::vector<std::size_t>> BusProjector::apply(std::span<const es::RecordedEvent> events) {
  // The read models apply the batch at once, each on a thread of its own and each in the
  // batch's order (so in order within every stream): each commits by itself (PostgreSQL: on
  // a connection of its own, so their commits overlap; SQLite's one writer takes them in turn).
  // A copy none of whose categories the batch has applies nothing of it: it is left out (an
  // empty batch, which makes the copies' bus versions, goes to every copy).
  std::vector<std::size_t> busy;
  for (std::size_t i = 0; i < copies_.size(); ++i) {
    const auto filter = copies_[i].first->filter();
    if (events.empty() ||
        std::any_of(events.begin(), events.end(), [&](const auto& e) { return filter.has_category(e.stream_id.category()); }))
      busy.push_back(i);
  }
  std::vector<std::optional<Result<std::vector<std::size_t>>>> results(busy.size());
  if (busy.size() < 2 || events.empty()) {
    for (std::size_t k = 0; k < busy.size(); ++k) results[k] = apply_copy(busy[k], events);
  } else {
    std::vector<std::thread> others;
    others.reserve(busy.size() - 1);
    for (std::size_t k = 1; k < busy.size(); ++k)
      others.push_back(named_thread("of-bus-copy", [&, k] { results[k] = apply_copy(busy[k], events); }));
    results[0] = apply_copy(busy[0], events);
    for (auto& t : others) t.join();
  }
  std::set<std::size_t> early;
  for (auto& r : results) {
    if (!*r) return fail(r->error());
    early.insert((*r)->begin(), (*r)->end());
  }
  return std::vector<std::size_t>(early.begin(), early.end());
}

// Applies `events` to copies_[i]: the indexes of those that came early there.
Result<std::vector<std::size_t>> BusProjector::apply_copy(std::size_t i, std::span<const es::RecordedEvent> events) {
  auto& [projection, live] = copies_[i];
  OF_ASSIGN_OR_RETURN(auto r, projection->apply_delivered(*live, events));
  // As apply_delivered raises the copy's position: the events of its categories applied.
  const auto filter = projection->filter();
  const auto committed_ms = now_unix_ms();
  es::Position through{0};
  es::ProjectionLag lag;  // of the events just committed to this copy
  for (std::size_t j = 0; j < events.size(); ++j)
    if (!std::binary_search(r.begin(), r.end(), j) && filter.has_category(events[j].stream_id.category())) {
      through = std::max(through, events[j].position);
      const auto ms = static_cast<double>(std::max<std::int64_t>(0, committed_ms - events[j].recorded_at_ms));
      std::size_t b = 0;
      while (b < es::kLagBucketsMs.size() && ms > es::kLagBucketsMs[b]) ++b;
      if (b < es::kLagBucketsMs.size()) ++lag.buckets[b];
      ++lag.count;
      lag.sum_ms += ms;
    }
  if (through > 0) {
    MutexLock lk(mu_);
    positions_[i] = std::max(positions_[i], through);
    auto& totals = lag_totals_[i];
    for (std::size_t b = 0; b < lag.buckets.size(); ++b) totals.buckets[b] += lag.buckets[b];
    totals.count += lag.count;
    totals.sum_ms += lag.sum_ms;
  }
  return r;
}

// Holds `e`'s stream behind it: recorded with its reason, so its later events are
// dead-lettered behind it, after a restart too.
Result<void> BusProjector::hold(const es::RecordedEvent& e, const std::string& reason) {
  if (held_streams_.contains(e.stream_id)) return {};
  OF_RETURN_IF_ERROR(tables_.hold(e.stream_id, e.version, e.event_id, reason, now_unix_ms()));
  held_streams_.insert(e.stream_id);
  held_ = held_streams_.size();
  return {};
}

void BusProjector::record_lag(std::span<const es::RecordedEvent> events) {
  const auto now = now_unix_ms();
  MutexLock lk(mu_);
  for (const auto& e : events) lag_.record(std::chrono::milliseconds(std::max<std::int64_t>(0, now - e.recorded_at_ms)));
  if (!events.empty())
    last_lag_ms_ = static_cast<double>(std::max<std::int64_t>(0, now - events.back().recorded_at_ms));
}

// One fetch: decoded, applied, acknowledged.
Result<void> BusProjector::consume() {
  OF_ASSIGN_OR_RETURN(auto fetched, bus_.fetch(options_.batch_size, options_.fetch_wait));
  // Before the batch is applied and acknowledged: once it is, the projector counts as caught up.
  for (auto& topic : bus_.dropped()) dropped_.insert(std::move(topic));
  if (auto recovered = recover_dropped(); !recovered) {
    for (const auto& d : fetched) (void)bus_.retry(d.tag, kRetryDelay);  // delivered again after the next try
    return reclaim_if_unavailable(recovered.error());
  }
  set_state("consuming", std::nullopt);
  if (fetched.empty()) {
    if (auto raised = raise_positions(); !raised) return reclaim_if_unavailable(raised.error());
    return {};
  }
  auto dead_letter = [&](const es::BusDelivery& d, const std::string& reason) -> Result<void> {
    if (auto r = bus_.dead_letter(d.tag, reason); !r) return r;
    ++dead_lettered_;
    return {};
  };
  // An event whose stream's previous version is not applied: delivered again until it is,
  // dead-lettered (its stream held) if it never comes. Of a stream's events waiting so, the
  // lowest version goes first: each is delivered again after its own delay, so a later one
  // may come back first, and dead-lettering it would name a version that came as missing
  // and put the stream's dead letters out of order (seen under TSan's slower timing).
  auto early_event = [&](const es::RecordedEvent& e, const es::BusDelivery& d) -> Result<void> {
    if (held_streams_.contains(e.stream_id)) return dead_letter(d, "behind an earlier dead letter of " + e.stream_id.str());
    const auto now = std::chrono::steady_clock::now();
    auto since = early_since_.try_emplace({e.stream_id, e.version}, now).first;
    const bool lower_waits = since != early_since_.begin() && std::prev(since)->first.first == e.stream_id;
    if (now - since->second < options_.early_timeout || lower_waits)
      return bus_.retry(d.tag, std::min(kEarlyRetry * d.attempt, kMaxEarlyRetry));
    const auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - since->second).count();
    early_since_.erase(since);
    const auto reason = "version " + to_string(e.version - 1) + " of " + e.stream_id.str() + " never came (waited " +
                        std::to_string(waited) + " s)";
    if (auto r = hold(e, reason); !r) return r;
    return dead_letter(d, reason);
  };
  std::vector<es::RecordedEvent> events;
  std::vector<const es::BusDelivery*> of_event;
  for (const auto& d : fetched) {
    auto e = decode(d, options_.topic_prefix);
    if (!e) {
      if (auto r = dead_letter(d, e.error().message); !r) return r;
      continue;
    }
    if (held_streams_.contains(e->stream_id)) {
      if (auto r = dead_letter(d, "behind an earlier dead letter of " + e->stream_id.str()); !r) return r;
      continue;
    }
    events.push_back(std::move(*e));
    of_event.push_back(&d);
  }
  std::vector<std::uint64_t> done;
  es::Position through{0};  // the highest position of the events acknowledged
  auto applied = apply(events);
  if (!applied && applied.error().code == Errc::unavailable) {
    for (const auto* d : of_event) OF_RETURN_IF_ERROR(bus_.retry(d->tag, kRetryDelay));
    return reclaim_if_unavailable(applied.error());
  }
  if (applied) {
    std::unordered_set<std::size_t> early(applied->begin(), applied->end());
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (!early.contains(i)) {
        done.push_back(of_event[i]->tag);
        through = std::max(through, events[i].position);
        if (!early_since_.empty()) early_since_.erase({events[i].stream_id, events[i].version});
      } else if (auto r = early_event(events[i], *of_event[i]); !r) {
        return r;
      }
    }
    record_lag(events);
  } else {
    // One event at a time: the one failing is tried again later (its stream's later events
    // with it), or dead-lettered once it has had its attempts.
    std::unordered_set<es::StreamId> waiting;
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      const auto& d = *of_event[i];
      if (held_streams_.contains(e.stream_id)) {
        if (auto r = dead_letter(d, "behind an earlier dead letter of " + e.stream_id.str()); !r) return r;
        continue;
      }
      if (waiting.contains(e.stream_id)) {
        if (auto r = bus_.retry(d.tag, kRetryDelay * d.attempt); !r) return r;
        continue;
      }
      auto one = apply(std::span(&e, 1));
      if (one && one->empty()) {
        done.push_back(d.tag);
        through = std::max(through, e.position);
        if (!early_since_.empty()) early_since_.erase({e.stream_id, e.version});
        if (!failures_.empty()) failures_.erase({e.stream_id, e.version});
        record_lag(std::span(&e, 1));
      } else if (one) {
        if (auto r = early_event(e, d); !r) return r;
        waiting.insert(e.stream_id);
      } else if (const int failed = ++failures_[{e.stream_id, e.version}]; failed >= options_.max_attempts) {
        failures_.erase({e.stream_id, e.version});
        const auto reason = "failed " + std::to_string(failed) + " times: " + one.error().message;
        if (auto r = hold(e, reason); !r) return r;
        if (auto r = dead_letter(d, reason); !r) return r;
      } else {
        if (auto r = bus_.retry(d.tag, kRetryDelay * failed); !r) return r;
        waiting.insert(e.stream_id);
        set_state("consuming", one.error().message);
      }
    }
  }
  if (auto r = bus_.ack(done); !r) return r;
  applied_ += done.size();
  if (through > acked_position_.load()) acked_position_ = through;  // this thread alone writes it
  return {};
}

}  // namespace orderflow::app::bus_projector
