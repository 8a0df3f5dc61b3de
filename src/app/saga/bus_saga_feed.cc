#include "app/saga/bus_saga_feed.h"

#include <algorithm>

#include "app/bus_projector/bus_projector.h"
#include "app/relay/relay.h"
#include "core/failures.h"
#include "core/named_thread.h"
#include "core/time.h"

namespace orderflow::app::saga {

namespace {

// The value of header `name`, if the message has it.
const std::string* header(const es::BusDelivery& d, std::string_view name) {
  for (const auto& [n, v] : d.headers)
    if (n == name) return &v;
  return nullptr;
}

std::optional<es::Position> parse_position(const std::string& text) {
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return es::Position{std::stoll(text)};
}

}  // namespace

bool ReorderBuffer::add(es::RecordedEvent e, std::optional<es::Position> previous, std::uint64_t tag) {
  if (e.position < next_) return false;
  auto [it, fresh] = held_.try_emplace(e.position);
  if (fresh) {
    it->second.event = std::move(e);
    it->second.previous = previous;
  } else if (!it->second.previous) {
    it->second.previous = previous;  // a copy that names its previous event tells more
  }
  it->second.tags.push_back(tag);
  return true;
}

ReorderBuffer::Ready ReorderBuffer::ready(std::size_t max) const {
  Ready out;
  out.next = next_;
  for (auto it = held_.begin(); it != held_.end() && out.events.size() < max; ++it) {
    if (!follows(it->second, out.next)) break;
    out.events.push_back(it->second.event);
    out.next = it->first + 1;
  }
  return out;
}

std::vector<std::uint64_t> ReorderBuffer::release(es::Position next) {
  std::vector<std::uint64_t> tags;
  if (next <= next_) return tags;
  next_ = next;
  auto end = held_.lower_bound(next);
  for (auto it = held_.begin(); it != end; ++it)
    tags.insert(tags.end(), it->second.tags.begin(), it->second.tags.end());
  held_.erase(held_.begin(), end);
  return tags;
}

std::optional<es::Position> ReorderBuffer::gap() const {
  if (held_.empty() || follows(held_.begin()->second, next_)) return std::nullopt;
  return held_.begin()->first;
}

BusSagaFeed::BusSagaFeed(es::EventStore& store, es::BusConsumer& bus, BusSagaFeedOptions options,
                         std::vector<std::string> categories, es::Position from, es::Position horizon,
                         es::BatchHandler handler)
    : store_(store),
      bus_(bus),
      options_(std::move(options)),
      categories_(std::move(categories)),
      horizon_(horizon),
      handler_(std::move(handler)),
      buffer_(from) {
  if (options_.dead_letter_db) tables_.emplace(*options_.dead_letter_db, bus_projector::kSagaDeadLetters);
  filter_.categories = categories_;
  status_.bus = options_.bus;
  status_.consumer = options_.consumer;
  status_.state = "stopped";
  status_.next = from;
}

BusSagaFeed::~BusSagaFeed() { stop(); }

void BusSagaFeed::start() {
  if (thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = false;
    status_.state = "catching up";
  }
  redrives_.open();
  thread_ = named_thread("of-saga-bus", [this] { loop(); });
}

void BusSagaFeed::stop() {
  if (!thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // The next process to run the saga records its dead letters (this one may live on, as a
  // standby, with its connections).
  if (tables_)
    if (auto released = options_.dead_letter_db->release(bus_projector::kSagaDeadLetters.claim); !released)
      report_failure("saga", "bus dead letters", released.error().message, "released with its connection");
  {
    MutexLock lk(mu_);
    status_.state = "stopped";
  }
  redrives_.close("the bus-fed saga stopped before retrying the dead letter");
}

void BusSagaFeed::redrive(std::string id, std::string actor,
                          std::function<void(Result<bus_projector::Redriven>)> done) {
  if (!redrives_.push({std::move(id), std::move(actor), std::move(done)}, "the bus-fed saga is not running")) return;
  MutexLock lk(mu_);
  cv_.notify_all();
}

Result<bus_projector::Redriven> BusSagaFeed::redrive_now(const bus_projector::RedriveQueue::Request& request) {
  if (!tables_) return fail(Errc::unavailable, "this saga records no bus dead letters");
  OF_ASSIGN_OR_RETURN(auto found, tables_->find(request.id));
  if (!found) return fail(Errc::not_found, "no dead letter " + request.id);
  const auto& letter = *found;
  if (letter.retried_at_ms)
    return fail(Errc::invalid_state,
                "dead letter " + request.id + " was retried at " + format_rfc3339_ms(*letter.retried_at_ms));
  OF_RETURN_IF_ERROR(claim_tables());
  bus_projector::Redriven out{.dead_letter_id = request.id, .consumer = options_.consumer, .stream_id = letter.stream_id};
  if (letter.version >= es::StreamVersion{0}) out.version = letter.version;
  // Through its event; a message that named no position may have been any event the store
  // had: through the store's last.
  es::Position until{0};
  if (letter.position) {
    until = *letter.position;
    // The event as the store has it (its headers may have been what could not be read).
    auto scanned = store_.scan_all(until, 1, {}, [&](const es::RecordedEvent& e) {
      if (e.position != until) return;
      out.stream_id = e.stream_id;
      out.version = e.version;
    });
    if (!scanned) return fail(scanned.error());
  } else {
    OF_ASSIGN_OR_RETURN(until, store_.last_position());
  }
  std::uint64_t before = 0;
  {
    MutexLock lk(mu_);
    before = status_.from_store;
  }
  if (until >= buffer_.next()) {
    std::vector<std::uint64_t> acks;
    auto folded = fill(until, acks);
    if (folded) folded = fold_ready(acks);
    auto acked = acks.empty() ? Result<void>{} : bus_.ack(acks);  // repeats of events folded: never needed again
    publish_progress();
    OF_RETURN_IF_ERROR(folded);
    OF_RETURN_IF_ERROR(acked);
    if (buffer_.next() <= until)
      return fail(Errc::unavailable, "position " + to_string(until) +
                                         " is not readable in the event store from this process yet: retry later");
  }
  {
    MutexLock lk(mu_);
    out.events = status_.from_store - before;
  }
  out.position = until;
  out.retried_at_ms = now_unix_ms();
  OF_RETURN_IF_ERROR(tables_->release(letter, out.retried_at_ms, request.actor));
  return out;
}

Result<void> BusSagaFeed::claim_tables() {
  // Claimed each time (no round trip while held): a connection lost since is claimed again.
  OF_ASSIGN_OR_RETURN(auto claimed, options_.dead_letter_db->claim(bus_projector::kSagaDeadLetters.claim));
  if (!claimed) return fail(Errc::unavailable, "another process records the bus-fed saga's dead letters");
  if (!tables_ready_) {
    OF_RETURN_IF_ERROR(tables_->create());
    tables_ready_ = true;
  }
  return {};
}

Result<void> BusSagaFeed::record_dead_letter(const es::BusDelivery& d, const std::string& reason,
                                             const Result<es::RecordedEvent>& decoded) {
  if (!tables_) return {};
  OF_RETURN_IF_ERROR(claim_tables());
  bus_projector::BusDeadLetter letter;
  letter.reason = reason;
  letter.subject = d.topic;
  letter.at_ms = now_unix_ms();
  if (decoded) {
    letter.stream_id = decoded->stream_id;
    letter.version = decoded->version;
    letter.event_id = decoded->event_id;
    letter.position = decoded->position;
  } else {  // what its headers say, as far as they can be read
    letter.version = es::kNoStream;
    if (const auto* v = header(d, "orderflow-stream-id")) letter.stream_id = es::StreamId(*v);
    if (const auto* v = header(d, "orderflow-event-id")) letter.event_id = *v;
    if (const auto* v = header(d, "orderflow-version"))
      if (auto n = parse_position(*v)) letter.version = es::StreamVersion{n->value()};
    if (const auto* v = header(d, "orderflow-position"))
      if (auto p = parse_position(*v); p && *p > 0) letter.position = *p;
  }
  auto recorded = tables_->record(std::move(letter), d.id);
  if (!recorded) return fail(recorded.error());
  return {};
}

BusSagaFeedStatus BusSagaFeed::status() const {
  MutexLock lk(mu_);
  return status_;
}

void BusSagaFeed::set_state(const char* state, std::optional<std::string> error) {
  MutexLock lk(mu_);
  status_.state = state;
  status_.last_error = std::move(error);
}

void BusSagaFeed::publish_progress() {
  const auto gap = buffer_.gap();
  const auto since = gap ? gap_since_ : std::nullopt;
  MutexLock lk(mu_);
  status_.next = buffer_.next();
  status_.buffered = buffer_.size();
  status_.gap_until = gap;
  status_.gap_ms =
      gap && since
          ? std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - *since).count()
          : 0;
}

bool BusSagaFeed::wanted(const es::RecordedEvent& e) const {
  return std::find(categories_.begin(), categories_.end(), e.stream_id.category()) != categories_.end();
}

Result<void> BusSagaFeed::hand(std::vector<es::RecordedEvent> events, es::Position next) {
  std::erase_if(events, [&](const es::RecordedEvent& e) { return !wanted(e); });
  return handler_(events, next);
}

void BusSagaFeed::loop() {
  auto backoff = kFirstBackoff;
  bool caught_up = false;
  for (;;) {
    if (caught_up) redrives_.run([&](const auto& r) { return redrive_now(r); });
    Result<void> done = caught_up ? consume() : catch_up();
    if (done && !caught_up) {
      caught_up = true;
      recovered("saga", "bus catch-up");
      continue;
    }
    auto wait = std::chrono::milliseconds(0);
    if (done) {
      backoff = kFirstBackoff;
      recovered("saga", "bus");
    } else {
      set_state("retrying", done.error().message);
      report_failure("saga", caught_up ? "bus" : "bus catch-up", done.error().message,
                     "tried again after a back-off (up to 5 s)");
      wait = backoff;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    publish_progress();
    MutexLock lk(mu_);
    if (cv_.wait_for(mu_, wait, [&]() REQUIRES(mu_) { return stopping_ || (caught_up && redrives_.waiting()); }) &&
        stopping_)
      break;
  }
}

// The store from the checkpoint to the horizon: what a predecessor may have folded and
// acknowledged without its checkpoint moving past it.
Result<void> BusSagaFeed::catch_up() {
  while (buffer_.next() <= horizon_) {
    {
      MutexLock lk(mu_);
      if (stopping_) return {};
    }
    std::vector<es::RecordedEvent> events;
    OF_ASSIGN_OR_RETURN(auto next, store_.scan_all(buffer_.next(), options_.store_page, filter_,
                                                   [&](const es::RecordedEvent& e) { events.push_back(e); }));
    if (next <= buffer_.next()) break;  // nothing visible yet (the horizon was read before)
    const auto n = events.size();
    OF_RETURN_IF_ERROR(handler_(events, next));
    (void)buffer_.release(next);  // nothing held yet
    {
      MutexLock lk(mu_);
      status_.from_store += n;
    }
    publish_progress();
  }
  set_state("consuming", std::nullopt);
  return {};
}

Result<void> BusSagaFeed::fold_ready(std::vector<std::uint64_t>& acks) {
  for (;;) {
    auto ready = buffer_.ready(options_.batch_size);
    if (ready.events.empty()) return {};
    OF_RETURN_IF_ERROR(hand(std::move(ready.events), ready.next));
    auto tags = buffer_.release(ready.next);
    {
      MutexLock lk(mu_);
      status_.folded += tags.size();
    }
    acks.insert(acks.end(), tags.begin(), tags.end());
  }
}

Result<void> BusSagaFeed::fill(es::Position until, std::vector<std::uint64_t>& acks) {
  // The store's events from next() through `until` (included: the first held when a gap is
  // filled, so a message without its previous position is released by the store's order
  // as well), a page at a time.
  const auto from = buffer_.next();
  while (buffer_.next() <= until) {
    std::vector<es::RecordedEvent> events;
    OF_ASSIGN_OR_RETURN(auto scanned,
                        store_.scan_all(buffer_.next(), options_.store_page, filter_, [&](const es::RecordedEvent& e) {
                          if (e.position <= until) events.push_back(e);
                        }));
    if (scanned <= buffer_.next()) break;  // not visible to this process yet: looked at again later
    const auto next = std::min(scanned, until + 1);
    const auto n = events.size();
    OF_RETURN_IF_ERROR(handler_(events, next));
    auto tags = buffer_.release(next);
    {
      MutexLock lk(mu_);
      status_.from_store += n;
      status_.repeats += tags.size();
    }
    acks.insert(acks.end(), tags.begin(), tags.end());
  }
  if (buffer_.next() == from) return {};
  MutexLock lk(mu_);
  ++status_.gaps_filled;
  return {};
}

// One fetch: decoded, held for its turn, folded in log order, acknowledged.
Result<void> BusSagaFeed::consume() {
  std::vector<std::uint64_t> acks;
  // What was acknowledged is never delivered again; the rest is, after a failure.
  auto acknowledge = [&]() -> Result<void> {
    if (acks.empty()) return {};
    auto r = bus_.ack(acks);
    acks.clear();
    return r;
  };
  // Held events first: a batch that failed last time is handed again, even with the bus away.
  auto folded = fold_ready(acks);
  if (!folded) {
    (void)acknowledge();
    return folded;
  }
  // Behind a full buffer nothing more is fetched: the gap is filled from the store below. A
  // bus that does not answer is retried after a back-off, and meanwhile bridged like a gap.
  Result<void> reached;
  if (buffer_.size() < options_.max_buffered) {
    auto fetched = bus_.fetch(options_.batch_size, options_.fetch_wait);
    if (!fetched) reached = fail(fetched.error());
    if (fetched) set_state("consuming", std::nullopt);
    std::uint64_t dead = 0, repeats = 0, out_of_order = 0;
    for (auto& d : fetched ? *fetched : std::vector<es::BusDelivery>{}) {
      auto e = bus_projector::decode(d, options_.topic_prefix);
      std::optional<es::Position> previous;
      std::string reason;
      if (!e) {
        reason = e.error().message;
      } else if (const auto* p = header(d, relay::kPreviousPositionHeader)) {
        previous = parse_position(*p);
        if (!previous || *previous >= e->position)
          reason = std::string("header ") + relay::kPreviousPositionHeader + " is not a position before " +
                   to_string(e->position) + ": " + *p;
      }
      if (!reason.empty()) {
        // Recorded first: a message dead-lettered on the bus is listed (a record that fails
        // leaves it to be delivered again).
        auto r = record_dead_letter(d, reason, e);
        if (r) r = bus_.dead_letter(d.tag, reason);
        if (!r) {  // delivered again: dead-lettered then
          folded = r;
          break;
        }
        ++dead;
        continue;
      }
      if (e->position < highest_delivered_) ++out_of_order;
      else highest_delivered_ = e->position;
      if (!buffer_.add(std::move(*e), previous, d.tag)) {
        acks.push_back(d.tag);
        ++repeats;
      }
    }
    {
      MutexLock lk(mu_);
      status_.dead_lettered += dead;
      status_.repeats += repeats;
      status_.out_of_order += out_of_order;
    }
    if (folded) folded = fold_ready(acks);
  }
  // A gap: when it opened (or moved on), and whether it has waited long enough. Without one
  // (nothing held), the bus bringing nothing while the store has more (a rebalance, a relay
  // behind) is a gap up to the store's last position: the saga's view of the log is never
  // much more than gap_wait behind it, which its step deadlines count on.
  const auto now = std::chrono::steady_clock::now();
  if (!gap_since_ || gap_at_ != buffer_.next()) {
    gap_since_ = now;
    gap_at_ = buffer_.next();
  }
  const bool waited = now - *gap_since_ >= options_.gap_wait;
  if (folded && (waited || buffer_.size() >= options_.max_buffered)) {
    std::optional<es::Position> until = buffer_.gap();
    if (!until) {
      if (auto last = store_.last_position(); !last) folded = fail(last.error());
      else if (*last >= buffer_.next()) until = *last;
    }
    if (folded && until) folded = fill(*until, acks);
    if (folded) folded = fold_ready(acks);
    gap_since_ = now;  // waits again from here, whether it moved on or not
  }
  auto acked = reached ? acknowledge() : Result<void>{};  // no acks to a bus that does not answer
  publish_progress();
  if (!folded) return folded;
  if (!reached) return reached;
  return acked;
}

}  // namespace orderflow::app::saga
