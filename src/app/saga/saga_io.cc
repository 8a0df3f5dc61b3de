#include "app/saga/saga_io.h"

#include <array>

#include <boost/json.hpp>

#include "app/aggregates.h"
#include "codec/domain_codec.h"
#include "domain/decider.h"

namespace orderflow::app::saga {

namespace {

// A command's span, under its step's: its traceparent goes into the command's event; with
// tracing on and the trace sampled it is recorded when the command is answered.
struct CommandSpan {
  std::optional<TraceParent> context;
  std::optional<Span> span;  // only when recorded

  CommandSpan(const SagaCommand& c, std::string_view name) {
    if (!c.step_span) return;
    context = child_span(c.step_span);
    if (!tracing_enabled() || !context->sampled()) return;
    span.emplace();
    span->context = *context;
    span->parent_span_id = c.step_span->parent_id;
    span->name = std::string(name);
    span->start_unix_ns = now_unix_ns();
    span->attributes = {{"order_id", c.order_id}, {"event_id", c.event_id}};
  }
  std::string traceparent() const { return context ? format_traceparent(*context) : std::string(); }
  void end(const std::optional<Error>& error) {
    if (!span) return;
    span->end_unix_ns = now_unix_ns();
    // duplicate_event: done before (a retry or a replay), as the saga takes it.
    span->error = error && error->code != Errc::duplicate_event;
    if (error) span->status_message = std::string(errc_name(error->code)) + ": " + error->message;
    record_span(std::move(*span));
  }
};

template <class A>
void run(CommandHandler& commands, const std::string& id, typename A::Command command, const SagaCommand& c,
         std::function<void(Completion)> done) {
  CommandMeta meta;
  meta.correlation_id = c.order_id;
  meta.causation_id = "saga-" + c.order_id;
  meta.command_id = c.event_id;  // derived, so stable across retries
  meta.actor = "saga";
  meta.event_id = [event_id = c.event_id](std::size_t) { return event_id; };  // one event per command
  CommandSpan span(c, command_name<A>(command));
  meta.traceparent = span.traceparent();
  commands.handle<A>(id, std::move(command), std::move(meta),
                     [order_id = c.order_id, event_id = c.event_id, span = std::move(span),
                      done = std::move(done)](Result<Handled<A>> r) mutable {
                       Completion out{order_id, event_id, std::nullopt, es::Position{0}};
                       if (r) out.known_by = r->result.position;
                       else out.error = r.error();
                       span.end(out.error);
                       done(std::move(out));
                     });
}

// The steps whose derived event ids an order's charge is stored under (find_charge), and
// its hold on a product (find_held, in the order it looks at them). Each id is a SHA-1:
// find_charge and find_held derive one only when they come to it.
constexpr std::array<std::string_view, 2> kChargeSteps = {"charge", "refund"};
constexpr std::array<std::string_view, 3> kHoldSteps = {"reserve:", "release:", "commit:"};

std::string hold_step(std::string_view step, const std::string& product_id) { return std::string(step) + product_id; }

// The derived event id of the order's `step`: as `known` derived it when it looked it up
// (a SHA-1 each, on the saga's thread: not twice), else derived now.
std::string step_id(const std::string& order_id, std::string_view step, const KnownEvents* known) {
  if (known)
    if (const auto* id = known->id_of(order_id, step)) return *id;
  return derived_event_id(order_id, step);
}

// The order whose charge a Charge or Refund decides on (nullptr: neither).
const std::string* charged_order(const AccountCommand& a) {
  if (const auto* charge = std::get_if<domain::account::Charge>(&a.command)) return &charge->order_id;
  if (const auto* refund = std::get_if<domain::account::Refund>(&a.command)) return &refund->order_id;
  return nullptr;
}

// The order whose hold a ReleaseStock or CommitStock decides on (nullptr: neither).
const std::string* holding_order(const ProductCommand& p) {
  if (const auto* release = std::get_if<domain::product::ReleaseStock>(&p.command)) return &release->order_id;
  if (const auto* commit = std::get_if<domain::product::CommitStock>(&p.command)) return &commit->order_id;
  return nullptr;
}

// The facts a Charge or Refund decides on, from `known` or the store.
Result<void> add_charge_facts(es::EventStore& store, AccountCommand& a, const KnownEvents* known) {
  const std::string* order_id = charged_order(a);
  if (!order_id) return {};
  return find_charge(store, a.account_id, *order_id, known)
      .transform([&](const std::optional<domain::account::OrderCharge>& found) {
        if (auto* charge = std::get_if<domain::account::Charge>(&a.command)) charge->earlier = found;
        else std::get<domain::account::Refund>(a.command).charge = found;
      });
}

// The fact a ReleaseStock or CommitStock decides on, from `known` or the store.
Result<void> add_held_facts(es::EventStore& store, ProductCommand& p, const KnownEvents* known) {
  const std::string* order_id = holding_order(p);
  if (!order_id) return {};
  return find_held(store, p.product_id, *order_id, known).transform([&](std::int64_t held) {
    if (auto* release = std::get_if<domain::product::ReleaseStock>(&p.command)) release->held = held;
    else std::get<domain::product::CommitStock>(p.command).held = held;
  });
}

// The event of aggregate A's stream `id` stored under `event_id`, if any: from `known`
// where it was looked up there, else from the store.
template <class A>
Result<std::optional<typename A::Event>> stored_event(es::EventStore& store, const std::string& id,
                                                      const std::string& event_id, const KnownEvents* known) {
  using Found = std::optional<typename A::Event>;
  std::optional<es::RecordedEvent> read;
  const std::optional<es::RecordedEvent>* stored = known ? known->find(event_id) : nullptr;
  if (!stored) {
    OF_ASSIGN_OR_RETURN(read, store.read_event(event_id));
    stored = &read;
  }
  if (!*stored || (*stored)->stream_id != stream_of<A>(id)) return Found();
  return codec::decode_event<typename A::Event>((*stored)->type, (*stored)->data).transform([](auto&& event) {
    return Found(std::forward<decltype(event)>(event));
  });
}

}  // namespace

Result<KnownEvents> KnownEvents::look_up(es::EventStore& store, std::span<const SagaCommand> commands) {
  std::unordered_map<std::string_view, int> commands_of;
  for (const auto& c : commands) ++commands_of[c.order_id];
  KnownEvents known;
  std::vector<std::string> ids;
  auto add = [&](const std::string& order_id, std::string_view step) {
    auto id = derived_event_id(order_id, step);
    known.ids_.emplace(order_id + "/" + std::string(step), id);
    ids.push_back(std::move(id));
  };
  for (const auto& c : commands) {
    if (commands_of[c.order_id] > 1) continue;
    std::visit(domain::overloaded{
                   [&](const AccountCommand& a) {
                     if (const auto* order_id = charged_order(a))
                       for (auto step : kChargeSteps) add(*order_id, step);
                   },
                   [&](const ProductCommand& p) {
                     if (const auto* order_id = holding_order(p))
                       for (auto step : kHoldSteps) add(*order_id, hold_step(step, p.product_id));
                   },
                   [](const auto&) {},
               },
               c.action);
    known.orders_.insert(c.order_id);
  }
  OF_ASSIGN_OR_RETURN(auto found, store.read_events(ids));
  for (auto& id : ids) known.events_.emplace(std::move(id), std::nullopt);
  for (auto& e : found) known.events_[e.event_id] = std::move(e);
  return known;
}

const std::string* KnownEvents::id_of(const std::string& order_id, std::string_view step) const {
  auto it = ids_.find(order_id + "/" + std::string(step));
  return it == ids_.end() ? nullptr : &it->second;
}

const std::optional<es::RecordedEvent>* KnownEvents::find(const std::string& event_id) const {
  auto it = events_.find(event_id);
  return it == events_.end() ? nullptr : &it->second;
}

Result<std::optional<domain::account::OrderCharge>> find_charge(es::EventStore& store, const std::string& account_id,
                                                                const std::string& order_id, const KnownEvents* known) {
  using domain::account::ChargeOutcome;
  using domain::account::OrderCharge;
  OF_ASSIGN_OR_RETURN(auto charged,
                      stored_event<Account>(store, account_id, step_id(order_id, kChargeSteps[0], known), known));
  std::optional<OrderCharge> out;
  if (charged)
    std::visit(domain::overloaded{
                   [&](const domain::account::AccountCharged& e) {
                     if (e.order_id == order_id) out = OrderCharge{e.amount_cents, ChargeOutcome::charged};
                   },
                   [&](const domain::account::ChargeDeclined& e) {
                     if (e.order_id == order_id) out = OrderCharge{e.amount_cents, ChargeOutcome::declined};
                   },
                   [](const auto&) {},
               },
               *charged);
  if (!out || out->outcome != ChargeOutcome::charged) return out;
  OF_ASSIGN_OR_RETURN(auto refunded,
                      stored_event<Account>(store, account_id, step_id(order_id, kChargeSteps[1], known), known));
  if (refunded)
    if (auto* r = std::get_if<domain::account::AccountRefunded>(&*refunded); r && r->order_id == order_id)
      out->outcome = ChargeOutcome::refunded;
  return out;
}

Result<std::int64_t> find_held(es::EventStore& store, const std::string& product_id, const std::string& order_id,
                               const KnownEvents* known) {
  using namespace domain::product;
  std::int64_t held = 0;
  for (auto step : kHoldSteps) {
    OF_ASSIGN_OR_RETURN(
        auto e, stored_event<Product>(store, product_id, step_id(order_id, hold_step(step, product_id), known), known));
    if (e)
      std::visit(domain::overloaded{
                     [&](const StockReserved& r) { held += r.order_id == order_id ? r.quantity : 0; },
                     [&](const StockReleased& r) { held -= r.order_id == order_id ? r.quantity : 0; },
                     [&](const StockCommitted& r) { held -= r.order_id == order_id ? r.quantity : 0; },
                     [](const auto&) {},
                 },
                 *e);
    if (held <= 0) return std::int64_t{0};  // nothing (left) reserved: no need to look further
  }
  return held;
}

void dispatch(CommandHandler& commands, SagaCommand c, const KnownEvents* known,
              std::function<void(Completion)> done) {
  if (known && !known->covers(c.order_id)) known = nullptr;
  std::visit(domain::overloaded{
                 [&](ProductCommand& p) {
                   if (auto facts = add_held_facts(commands.store(), p, known); !facts)
                     return done(Completion{c.order_id, c.event_id, facts.error(), es::Position{0}});
                   run<Product>(commands, p.product_id, std::move(p.command), c, std::move(done));
                 },
                 [&](AccountCommand& a) {
                   if (auto facts = add_charge_facts(commands.store(), a, known); !facts)
                     return done(Completion{c.order_id, c.event_id, facts.error(), es::Position{0}});
                   run<Account>(commands, a.account_id, std::move(a.command), c, std::move(done));
                 },
                 [&](OrderCommand& o) { run<Order>(commands, c.order_id, std::move(o.command), c, std::move(done)); },
                 [&](RecordEvent& r) {
                   auto type = std::visit([](const auto& e) { return domain::saga::event_type_name(e); }, r.record);
                   auto data = std::visit([](const auto& e) { return codec::encode_event(e); }, r.record);
                   es::AppendRequest req;
                   req.stream_id = r.stream_id;
                   boost::json::object meta{{"correlation_id", c.order_id},
                                            {"causation_id", "saga-" + c.order_id},
                                            {"command_id", c.event_id},
                                            {"actor", "saga"}};
                   CommandSpan span(c, type);
                   if (span.context) meta["traceparent"] = span.traceparent();
                   req.events.push_back({c.event_id, type, 1, std::move(data), boost::json::serialize(meta)});
                   commands.store().append_async(
                       std::move(req), [order_id = c.order_id, event_id = c.event_id, span = std::move(span),
                                        done = std::move(done)](Result<es::AppendResult> a) mutable {
                         Completion out{order_id, event_id, std::nullopt, es::Position{0}};
                         if (a) out.known_by = a->position;
                         else out.error = a.error();
                         span.end(out.error);
                         done(std::move(out));
                       });
                 },
             },
             c.action);
}

Result<domain::order::State> HandlerLookup::order(const std::string& order_id) {
  return commands_.load<Order>(order_id).transform([](auto&& loaded) { return std::move(loaded.state); });
}

Result<std::int64_t> HandlerLookup::held(const std::string& product_id, const std::string& order_id) {
  return find_held(commands_.store(), product_id, order_id);
}

Result<std::optional<domain::account::ChargeOutcome>> HandlerLookup::charge(const std::string& account_id,
                                                                            const std::string& order_id) {
  return find_charge(commands_.store(), account_id, order_id).transform([](const auto& charge) {
    return charge ? std::optional(charge->outcome) : std::nullopt;
  });
}

Result<std::optional<SagaState>> HandlerLookup::last_end(const std::string& order_id) {
  return last_saga_end(commands_.store(), order_id).transform([](const auto& ended) {
    return ended ? std::optional(ended->state) : std::nullopt;
  });
}

}  // namespace orderflow::app::saga
