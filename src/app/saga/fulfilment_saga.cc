#include "app/saga/fulfilment_saga.h"

#include "core/uuid.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cmath>

#include "codec/domain_codec.h"
#include "core/failures.h"
#include "domain/decider.h"

namespace orderflow::app::saga {

namespace {

namespace json = boost::json;
using domain::overloaded;
namespace product = domain::product;
namespace account = domain::account;
namespace order = domain::order;
namespace ds = domain::saga;

std::string id_after_dash(const es::StreamId& id) {
  const std::string& stream_id = id.str();
  auto dash = stream_id.find('-');
  return dash == std::string::npos ? std::string() : stream_id.substr(dash + 1);
}

std::optional<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

std::string string_of(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// The order a dead letter is about; an unreadable one is reported and belongs to none.
std::string order_of_dead_letter(const es::RecordedEvent& e) {
  auto letter = decode_dead_letter(e);
  if (letter) return std::visit([](const auto& r) { return r.order_id; }, *letter);
  report_failure("saga", "read saga record", letter.error().message, "the saga goes on without it");
  return {};
}

}  // namespace

std::string derived_event_id(std::string_view order_id, std::string_view step) {
  // RFC 9562 §5.5 with a namespace of our own: SHA-1(namespace || name), version 5.
  static constexpr std::array<unsigned char, 16> kNamespace = {0x6f, 0x72, 0x64, 0x65, 0x72, 0x66, 0x6c, 0x6f,
                                                               0x77, 0x2d, 0x73, 0x61, 0x67, 0x61, 0x2d, 0x31};
  // Orders made by the server have v7 ids: their saga's ids then carry the order's time,
  // so they land beside it in the store's event-id index instead of on a random page.
  auto name = std::string(order_id) + "/" + std::string(step);
  if (auto ms = uuid_v7_unix_ms(order_id)) return uuid_v8_hashed(*ms, kNamespace, name);
  return uuid_v5(kNamespace, name);
}

std::vector<std::string> saga_categories() { return {"order", "product", "account", "saga", "deadletters"}; }

const std::string& FulfilmentSaga::id_of(const Saga& s, const std::string& step) {
  auto it = s.ids.find(step);
  if (it == s.ids.end()) it = s.ids.emplace(step, derived_event_id(s.order_id, step)).first;
  return it->second;
}

const std::string& FulfilmentSaga::retry_id(const Saga& s) {
  // A retry of bookkeeping alone (no step) has always been keyed with an empty step.
  return id_of(s, "retry:" + std::string(s.step ? to_string(*s.step) : "") + ":" + std::to_string(s.attempt) + ":" +
                      to_string(s.activation));
}

void FulfilmentSaga::report_unreadable(const Saga& s, const Error& error) {
  report_failure("saga", "read saga record", error.message, "the saga of order " + s.order_id + " goes on without it");
}

FulfilmentSaga::FulfilmentSaga(SagaOptions options, Lookup& lookup, es::Position from, es::Position horizon)
    : options_(options), lookup_(lookup), horizon_(horizon), seen_(std::max(from, es::Position{1})) {}

FulfilmentSaga::Saga* FulfilmentSaga::find(const std::string& order_id) {
  auto it = sagas_.find(order_id);
  return it == sagas_.end() ? nullptr : &it->second;
}

std::int64_t FulfilmentSaga::timeout(int attempt) const {
  double t = static_cast<double>(options_.step_timeout_ms) * std::pow(options_.backoff, attempt - 1);
  return static_cast<std::int64_t>(std::min(t, static_cast<double>(std::max(options_.max_backoff_ms,
                                                                            options_.step_timeout_ms))));
}

namespace {

// Lines grouped by product, in order of first appearance.
template <class Lines, class Line>
void group_lines(const Lines& items, std::vector<Line>& out) {
  for (const auto& item : items) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Line& l) { return l.product_id == item.product_id; });
    if (it == out.end()) out.push_back(Line{item.product_id, item.quantity});
    else it->quantity += item.quantity;
  }
}

}  // namespace

Result<FulfilmentSaga::Saga*> FulfilmentSaga::reactivate(const std::string& order_id, es::Position at) {
  OF_ASSIGN_OR_RETURN(auto o, lookup_.order(order_id));
  if (!o.exists) return static_cast<Saga*>(nullptr);
  Saga s;
  s.order_id = order_id;
  s.customer_id = o.customer_id;
  s.total_cents = o.total_cents;
  s.activation = at;
  s.confirmed = o.status != order::OrderStatus::pending;
  s.cancelled = o.status == order::OrderStatus::cancelled;
  s.shipped = o.status == order::OrderStatus::shipped || o.status == order::OrderStatus::delivered;
  s.reason = o.cancellation_reason.value_or("");
  s.cancel_payment = o.payment_status;
  group_lines(o.items, s.lines);
  for (auto& line : s.lines) {
    OF_ASSIGN_OR_RETURN(auto held, lookup_.held(line.product_id, order_id));
    if (held > 0) {
      line.quantity = held;
      line.hold = Hold::reserved;
    } else {
      line.hold = s.shipped ? Hold::committed : s.confirmed ? Hold::released : Hold::none;
    }
  }
  OF_ASSIGN_OR_RETURN(auto charge, lookup_.charge(s.customer_id, order_id));
  if (charge) {
    switch (*charge) {
      case account::ChargeOutcome::charged: s.pay = Pay::charged; break;
      case account::ChargeOutcome::declined: s.pay = Pay::declined; break;
      case account::ChargeOutcome::refunded: s.pay = Pay::refunded; break;
    }
  }
  auto ended = lookup_.last_end(order_id);
  if (!ended && ended.error().code != Errc::corrupt) return fail(ended.error());
  if (!ended) report_unreadable(s, ended.error());  // as if it had none: at worst it is written again
  s.ended = ended ? *ended : std::nullopt;
  s.dead_lettered = s.ended == SagaState::failed;
  return &sagas_.emplace(order_id, std::move(s)).first->second;
}

Result<void> FulfilmentSaga::on_events(std::span<const es::RecordedEvent> events, es::Position next,
                                       std::int64_t now_ms) {
  const bool was_caught_up = caught_up();
  for (const auto& e : events) {
    if (e.position < seen_) continue;  // a redelivery: already folded
    auto category = e.stream_id.category();
    std::string order_id;
    if (category == "order" || category == "saga") {
      order_id = id_after_dash(e.stream_id);
    } else if (category == "deadletters") {
      order_id = order_of_dead_letter(e);
    } else if (auto data = parse_object(e.data)) {  // a product's or account's event about an order
      order_id = string_of(*data, "order_id");
    }
    if (!order_id.empty()) {
      Saga* s = find(order_id);
      if (!s && e.type == order::OrderPlaced::kType) {
        OF_ASSIGN_OR_RETURN(auto placed, codec::decode_event<order::Event>(e.type, e.data));
        const auto& p = std::get<order::OrderPlaced>(placed);
        Saga fresh;
        fresh.order_id = order_id;
        fresh.customer_id = p.customer_id;
        fresh.total_cents = p.total_cents;
        fresh.activation = e.position;
        group_lines(p.items, fresh.lines);
        s = &sagas_.emplace(order_id, std::move(fresh)).first->second;
      } else if (!s && (e.type == order::OrderShipped::kType || e.type == order::OrderCancelled::kType ||
                        e.type == std::string_view(ds::DeadLetterRetried::kType))) {
        OF_ASSIGN_OR_RETURN(auto r, reactivate(order_id, e.position));
        s = r;
      }
      if (s) {
        apply(*s, e);
        refresh(*s, e.recorded_at_ms, &e);
        dirty_.insert(order_id);
      }
    }
    seen_ = e.position + 1;
  }
  seen_ = std::max(seen_, next);
  if (caught_up() && !was_caught_up)  // the replay is done: every saga decides (or finishes) now
    for (auto& [id, s] : sagas_) dirty_.insert(id);
  for (auto it = waiting_.begin(); it != waiting_.end() && it->first < seen_; it = waiting_.erase(it))
    dirty_.insert(it->second);
  auto dirty = std::move(dirty_);
  dirty_.clear();
  for (const auto& id : dirty)
    if (Saga* s = find(id)) reconcile(*s, now_ms);
  return {};
}

void FulfilmentSaga::apply(Saga& s, const es::RecordedEvent& e) {
  auto raise_hold = [&](const std::string& product_id, const char* kind, Hold to) {
    for (auto& line : s.lines)
      if (line.product_id == product_id && e.event_id == id_of(s, kind + (":" + product_id))) {
        bool up = line.hold == Hold::none || (line.hold == Hold::reserved && to != Hold::reserved);
        if (up) line.hold = to;
      }
  };
  auto category = e.stream_id.category();
  if (category == "order") {
    auto decoded = codec::decode_event<order::Event>(e.type, e.data);
    if (!decoded) {  // the order's own commands would fail the same way
      report_failure("saga", "read order event",
                     e.type + " at position " + to_string(e.position) + ": " + decoded.error().message,
                     "the saga of order " + s.order_id + " goes on without it");
      return;
    }
    std::visit(overloaded{
                   [](const order::OrderPlaced&) {},
                   [&](const order::OrderConfirmed&) { s.confirmed = true; },
                   [&](const order::OrderCancelled& c) {
                     s.cancelled = true;
                     s.reason = c.reason;
                     s.cancel_payment = c.payment_status;
                   },
                   [&](const order::OrderPaymentSettled& p) { s.cancel_payment = p.payment_status; },
                   [&](const order::OrderShipped&) { s.shipped = true; },
                   [](const order::OrderDelivered&) {},
               },
               *decoded);
  } else if (category == "product") {
    auto product_id = id_after_dash(e.stream_id);
    if (e.type == product::StockReserved::kType) raise_hold(product_id, "reserve", Hold::reserved);
    else if (e.type == product::StockReservationFailed::kType) raise_hold(product_id, "reserve", Hold::failed);
    else if (e.type == product::StockReleased::kType) raise_hold(product_id, "release", Hold::released);
    else if (e.type == product::StockCommitted::kType) raise_hold(product_id, "commit", Hold::committed);
  } else if (category == "account") {
    bool charge = e.event_id == id_of(s, "charge");
    if (charge && s.pay == Pay::none && e.type == account::AccountCharged::kType) s.pay = Pay::charged;
    else if (charge && s.pay == Pay::none && e.type == account::ChargeDeclined::kType) s.pay = Pay::declined;
    else if (e.type == account::AccountRefunded::kType && e.event_id == id_of(s, "refund"))
      s.pay = Pay::refunded;
  } else if (category == "saga") {
    auto record = decode_saga_record(e);
    if (!record) return report_unreadable(s, record.error());
    std::visit(overloaded{
                   [&](const ds::SagaStepRetried& r) {
                     if (r.step == s.step && r.attempt > s.attempt) {
                       s.attempt = s.recorded_attempt = r.attempt;
                       s.deadline_ms = r.deadline_ms;
                       deadlines_.emplace(s.deadline_ms, s.order_id);
                     }
                   },
                   [&](const ds::SagaEnded& r) {
                     s.ended = r.state;
                     s.dead_lettered = s.dead_lettered || r.state == SagaState::failed;
                   },
               },
               *record);
  } else if (category == "deadletters") {
    auto record = decode_dead_letter(e);
    if (!record) return report_unreadable(s, record.error());
    std::visit(overloaded{
                   [&](const ds::DeadLetterRecorded&) { s.dead_lettered = true; },
                   [&](const ds::DeadLetterRetried&) {
                     // An operator asks to drive it again: fresh attempts for whatever is left.
                     s.dead_letter_retried = true;
                     s.attempt = s.recorded_attempt = 1;
                     s.issued.clear();
                     s.deadline_ms = e.recorded_at_ms + timeout(1);
                     deadlines_.emplace(s.deadline_ms, s.order_id);
                   },
               },
               *record);
  }
}

std::optional<order::PaymentStatus> FulfilmentSaga::unsettled_payment(const Saga& s) {
  if (!s.cancelled || s.cancel_payment != order::PaymentStatus::pending) return std::nullopt;
  if (s.pay == Pay::refunded) return order::PaymentStatus::refunded;
  if (s.pay == Pay::declined || s.account_missing) return order::PaymentStatus::declined;
  return std::nullopt;
}

std::optional<SagaStep> FulfilmentSaga::current_step(const Saga& s) const {
  auto any = [&](Hold h) { return std::any_of(s.lines.begin(), s.lines.end(), [&](const Line& l) { return l.hold == h; }); };
  if (s.cancelled || s.aborting) {
    if (!s.cancelled || any(Hold::reserved) || s.pay == Pay::charged || unsettled_payment(s))
      return SagaStep::compensate;
    return std::nullopt;
  }
  if (!s.confirmed) {
    if (any(Hold::none)) return SagaStep::reserve;
    return s.pay == Pay::none ? SagaStep::charge : SagaStep::confirm;
  }
  if (s.shipped && any(Hold::reserved)) return SagaStep::commit;
  return std::nullopt;
}

void FulfilmentSaga::end_step(Saga& s, StepStatus status, std::int64_t at_ms) {
  auto& step = s.steps.back();
  step.status = status;
  step.at_ms = at_ms;
  if (s.traced) ended_.push_back({s.order_id, step, s.step_started_ms, s.span, s.span_parent});
  s.traced = false;
}

void FulfilmentSaga::refresh(Saga& s, std::int64_t at_ms, const es::RecordedEvent* cause) {
  if (s.aborting && !s.cancelled && s.shipped) {
    // Its own late confirm landed and the order shipped before its cancel could: there is
    // nothing to compensate any more, only stock to commit.
    s.aborting = s.timed_out = false;
    s.reason.clear();
  }
  if (!s.cancelled && !s.aborting && !s.confirmed) {
    auto failed = std::find_if(s.lines.begin(), s.lines.end(), [](const Line& l) { return l.hold == Hold::failed; });
    if (failed != s.lines.end()) {
      s.aborting = true;
      s.reason = "out_of_stock:" + failed->product_id;
    } else if (s.pay == Pay::declined || s.account_missing) {
      s.aborting = true;
      s.reason = "payment_declined";
    }
  }
  auto step = current_step(s);
  if (step == s.step && s.attempt > 0) return;
  if (!s.steps.empty() && s.steps.back().status == StepStatus::running) {
    const bool forward = is_forward(s.steps.back().name);
    end_step(s,
             forward && s.aborting    ? StepStatus::failed
             : forward && s.cancelled ? StepStatus::cancelled
                                      : StepStatus::completed,
             at_ms);
  }
  if (step) {
    s.steps.push_back(StepView{*step, StepStatus::running, 1, "", at_ms});
    // Its span continues the trace of what caused it: the event's span, else the last step's.
    auto parent = cause ? traceparent_in_metadata(cause->metadata) : std::nullopt;
    if (!parent && !s.span.trace_id.empty()) parent = s.span;
    s.span = child_span(parent);
    s.span_parent = parent ? parent->parent_id : std::string();
    s.step_started_ms = at_ms;
    s.traced = caught_up();
  }
  s.step = step;
  s.attempt = s.recorded_attempt = 1;
  s.issued.clear();
  s.last_error.clear();
  s.deadline_ms = at_ms + timeout(1);
  deadlines_.emplace(s.deadline_ms, s.order_id);
}

SagaState FulfilmentSaga::state_of(const Saga& s) const {
  if (!s.cancelled && !s.aborting) return !s.step && s.confirmed ? SagaState::completed : SagaState::running;
  if (s.step || !s.cancelled) return SagaState::compensating;
  return s.dead_lettered && !s.dead_letter_retried ? SagaState::failed : SagaState::compensated;
}

std::vector<SagaCommand> FulfilmentSaga::wanted(const Saga& s, std::int64_t now_ms) const {
  std::vector<SagaCommand> out;
  auto id = [&](const std::string& step) { return id_of(s, step); };
  auto held = [&](auto fn) {
    for (const auto& line : s.lines)
      if (line.hold == Hold::reserved) fn(line);
  };
  if (s.step) {
    switch (*s.step) {
      case SagaStep::reserve:
        for (const auto& line : s.lines)
          if (line.hold == Hold::none)
            out.push_back({s.order_id, id("reserve:" + line.product_id),
                           ProductCommand{line.product_id, product::ReserveStock{s.order_id, line.quantity}}});
        break;
      case SagaStep::charge:
        out.push_back(
            {s.order_id, id("charge"), AccountCommand{s.customer_id, account::Charge{s.order_id, s.total_cents}}});
        break;
      case SagaStep::confirm:
        out.push_back({s.order_id, id("confirm"), OrderCommand{order::ConfirmOrder{now_ms}}});
        break;
      case SagaStep::compensate:
        if (!s.cancelled) {
          auto paid = s.pay == Pay::charged                          ? order::PaymentStatus::refunded
                      : s.pay == Pay::declined || s.account_missing ? order::PaymentStatus::declined
                                                                     : order::PaymentStatus::pending;
          // The cancel is the durable decision to compensate: nothing is undone before it is
          // seen, or a restart (which forgets an abort decided in memory) could resume the
          // forward path with stock already released.
          out.push_back({s.order_id, id("cancel"), OrderCommand{order::CancelOrder{s.reason, paid, now_ms}}});
        } else {
          held([&](const Line& line) {
            out.push_back({s.order_id, id("release:" + line.product_id),
                           ProductCommand{line.product_id, product::ReleaseStock{s.order_id, line.quantity}}});
          });
          if (s.pay == Pay::charged)
            out.push_back(
                {s.order_id, id("refund"), AccountCommand{s.customer_id, account::Refund{s.order_id, s.total_cents}}});
          if (auto settled = unsettled_payment(s))
            out.push_back({s.order_id, id("settle"), OrderCommand{order::SettlePayment{*settled, now_ms}}});
        }
        break;
      case SagaStep::commit:
        held([&](const Line& line) {
          out.push_back({s.order_id, id("commit:" + line.product_id),
                         ProductCommand{line.product_id, product::CommitStock{s.order_id, line.quantity}}});
        });
        break;
    }
  }
  // Bookkeeping, after the step's own commands.
  if (s.attempt > s.recorded_attempt)
    out.push_back({s.order_id, retry_id(s),
                   RecordEvent{saga_stream(s.order_id),
                               ds::SagaStepRetried{s.order_id, s.step, s.attempt, s.deadline_ms, s.last_error}}});
  if (s.timed_out && !s.dead_lettered) {
    const StepView* f = nullptr;  // the step that ran out of attempts (retry() failed it)
    for (const auto& v : s.steps)
      if (v.status == StepStatus::failed) f = &v;
    OF_CHECK(f != nullptr, "a saga gave up on a step that it did not fail");
    out.push_back({s.order_id, id("dead-letter"),
                   RecordEvent{kDeadLetterStream, ds::DeadLetterRecorded{id("dead-letter"), s.order_id, f->name,
                                                                         f->attempts, f->last_error, now_ms}}});
  }
  if (!s.step && out.empty()) {
    auto state = state_of(s);
    if (is_final(state) && s.ended != state)
      out.push_back({s.order_id, id(std::string("end:") + to_string(state)),
                     RecordEvent{saga_stream(s.order_id), ds::SagaEnded{s.order_id, state, s.reason, s.steps}}});
  }
  return out;
}

void FulfilmentSaga::reconcile(Saga& s, std::int64_t now_ms) {
  // Replaying: what the saga would decide now may have been decided (or overtaken by a
  // cancel) further on in the log. Every saga is reconciled once the replay is done.
  if (!caught_up()) return;
  // What this attempt issued must be answered and seen before deciding anything new.
  if (!s.issued.empty() && !settled(s)) {
    if (s.in_flight.empty()) waiting_.emplace(s.wait_until, s.order_id);
    return;
  }
  auto want = wanted(s, now_ms);
  if (want.empty()) {
    if (settled(s) && caught_up()) return finish(s);
    if (s.in_flight.empty()) waiting_.emplace(s.wait_until, s.order_id);
    return;
  }
  for (auto& c : want) {
    if (!s.issued.insert(c.event_id).second) continue;  // issued this attempt: wait for it or the deadline
    ++s.in_flight[c.event_id];
    if (!s.span.trace_id.empty()) c.step_span = s.span;
    out_.push_back(std::move(c));
  }
}

void FulfilmentSaga::on_completion(const Completion& c, std::int64_t now_ms) {
  Saga* s = find(c.order_id);
  if (!s) return;
  if (auto it = s->in_flight.find(c.event_id); it != s->in_flight.end() && --it->second == 0) s->in_flight.erase(it);
  s->wait_until = std::max(s->wait_until, c.known_by);
  // Bookkeeping needs no event to be seen: written (now or before) is enough.
  if (!c.error || c.error->code == Errc::duplicate_event) {
    if (c.event_id == id_of(*s, "dead-letter")) s->dead_lettered = true;
    auto state = state_of(*s);  // an older end's answer must not undo a newer one
    if (c.event_id == id_of(*s, std::string("end:") + to_string(state))) s->ended = state;
    if (s->attempt > s->recorded_attempt && c.event_id == retry_id(*s)) s->recorded_attempt = s->attempt;
  } else if (c.error->code == Errc::not_found && c.event_id == id_of(*s, "charge")) {
    s->account_missing = true;  // a decline that leaves no event
    refresh(*s, now_ms);
  } else if (c.error->code == Errc::version_conflict) {
    // Other writers kept moving the stream past every retry the command handler made: a
    // reason to decide again on the newer state, not a failed attempt. Issued again at once
    // (reconcile below), once this answer's position is seen.
    s->issued.erase(c.event_id);
    s->last_error = std::string(errc_name(c.error->code)) + ": " + c.error->message;
    if (!s->steps.empty()) s->steps.back().last_error = s->last_error;
  } else {
    s->last_error = std::string(errc_name(c.error->code)) + ": " + c.error->message;
    if (!s->steps.empty()) s->steps.back().last_error = s->last_error;
  }
  reconcile(*s, now_ms);
}

void FulfilmentSaga::retry(Saga& s, std::int64_t now_ms) {
  if (s.step && is_forward(*s.step) && s.attempt >= options_.max_attempts) {
    // Give up: compensate, cancel with reason timeout, leave a dead letter.
    if (s.steps.back().last_error.empty()) s.steps.back().last_error = "deadline passed";
    end_step(s, StepStatus::failed, now_ms);
    s.aborting = s.timed_out = true;
    s.reason = "timeout";
    refresh(s, now_ms);
    return;
  }
  ++s.attempt;
  if (s.last_error.empty()) s.last_error = "deadline passed";
  if (!s.steps.empty()) {
    s.steps.back().attempts = s.attempt;
    s.steps.back().last_error = s.last_error;
  }
  s.issued.clear();
  s.deadline_ms = now_ms + timeout(s.attempt);
  deadlines_.emplace(s.deadline_ms, s.order_id);
}

std::size_t FulfilmentSaga::on_tick(std::int64_t now_ms) {
  std::size_t fired = 0;
  if (!caught_up()) return fired;  // a stale view would count attempts that were not failures
  while (!deadlines_.empty() && deadlines_.begin()->first <= now_ms) {
    auto [at, id] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    Saga* s = find(id);
    if (!s || s->deadline_ms != at) continue;  // stale entry
    if (wanted(*s, now_ms).empty()) {  // only waiting to see what was done: look again later
      s->deadline_ms = now_ms + timeout(s->attempt);
      deadlines_.emplace(s->deadline_ms, id);
      continue;
    }
    ++fired;
    retry(*s, now_ms);
    reconcile(*s, now_ms);
  }
  return fired;
}

std::optional<std::int64_t> FulfilmentSaga::next_deadline() const {
  if (!caught_up() || deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

std::vector<SagaCommand> FulfilmentSaga::take_commands() { return std::exchange(out_, {}); }

std::vector<StepEnded> FulfilmentSaga::take_ended_steps() { return std::exchange(ended_, {}); }

void FulfilmentSaga::finish(Saga& s) {
  auto v = view_of(s);
  v.deadline_ms = 0;
  remember(std::move(v));
  sagas_.erase(s.order_id);
}

void FulfilmentSaga::remember(SagaView v) {
  finished_.push_back(std::move(v));
  while (finished_.size() > options_.keep_finished) finished_.pop_front();
}

SagaView FulfilmentSaga::view_of(const Saga& s) const {
  // A final saga still in memory (its last records not yet seen) has no deadline left.
  auto state = state_of(s);
  return SagaView{s.order_id, state, s.reason, s.steps, is_final(state) ? 0 : s.deadline_ms};
}

es::Position FulfilmentSaga::checkpoint() const {
  es::Position p = std::max(seen_, es::Position{1});
  for (const auto& [id, s] : sagas_) p = std::min(p, s.activation);
  return p;
}

std::optional<SagaView> FulfilmentSaga::view(const std::string& order_id) const {
  if (auto it = sagas_.find(order_id); it != sagas_.end()) return view_of(it->second);
  for (auto it = finished_.rbegin(); it != finished_.rend(); ++it)
    if (it->order_id == order_id) return *it;
  return std::nullopt;
}

std::map<SagaState, std::size_t> FulfilmentSaga::count_by_state() const {
  std::map<SagaState, std::size_t> out;
  for (const auto& [id, s] : sagas_) ++out[state_of(s)];
  return out;
}

std::vector<SagaView> FulfilmentSaga::list(std::optional<SagaState> state, std::size_t limit) const {
  std::vector<const Saga*> active;
  for (const auto& [id, s] : sagas_) active.push_back(&s);
  std::sort(active.begin(), active.end(), [](const Saga* a, const Saga* b) { return a->activation > b->activation; });
  std::vector<SagaView> out;
  for (const Saga* s : active) {
    if (out.size() >= limit) return out;
    if (!state || state_of(*s) == *state) out.push_back(view_of(*s));
  }
  for (auto it = finished_.rbegin(); it != finished_.rend() && out.size() < limit; ++it)
    if (!state || it->state == *state) out.push_back(*it);
  return out;
}

}  // namespace orderflow::app::saga
