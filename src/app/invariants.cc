#include "app/invariants.h"

#include <fmt/core.h>

#include <map>

#include "codec/domain_codec.h"
#include "core/named_thread.h"
#include "domain/decider.h"

namespace orderflow::app {

namespace {

using domain::overloaded;
namespace product = domain::product;
namespace account = domain::account;
namespace order = domain::order;

struct Ledger {  // an account's balance as the sum of its movements
  std::int64_t deposits = 0, withdrawals = 0, charges = 0, refunds = 0;
};
struct Money {  // what an order paid
  int charges = 0, declines = 0;
  std::int64_t net = 0;
};

struct Fold {
  std::map<es::StreamId, product::State> products;
  std::map<es::StreamId, account::State> accounts;
  std::map<es::StreamId, Ledger> ledgers;
  std::map<std::string, order::State> orders;
  std::map<std::string, Money> money;  // by order id
  std::map<std::string, std::map<std::string, std::int64_t>> held;  // order -> product -> units (non-zero only)
  std::vector<std::string> violations;

  void hold(const std::string& order_id, const std::string& product_id, std::int64_t units) {
    auto& h = held[order_id];
    if ((h[product_id] += units) == 0) h.erase(product_id);
    if (h.empty()) held.erase(order_id);
  }

  void add(const es::RecordedEvent& e) {
    auto category = e.stream_id.category();
    auto fail = [&](const Error& err) { violations.push_back(e.stream_id.str() + " version " + to_string(e.version) + ": " + err.message); };
    if (category == "product") {
      auto ev = codec::decode_event<product::Event>(e.type, e.data);
      if (!ev) return fail(ev.error());
      auto& s = products[e.stream_id];
      s = product::evolve(std::move(s), *ev);
      const std::string& product_id = s.product_id;
      std::visit(overloaded{
                     [&](const product::StockReserved& r) { hold(r.order_id, product_id, r.quantity); },
                     [&](const product::StockReleased& r) { hold(r.order_id, product_id, -r.quantity); },
                     [&](const product::StockCommitted& c) { hold(c.order_id, product_id, -c.quantity); },
                     [](const auto&) {},
                 },
                 *ev);
    } else if (category == "account") {
      auto ev = codec::decode_event<account::Event>(e.type, e.data);
      if (!ev) return fail(ev.error());
      auto& s = accounts[e.stream_id];
      s = account::evolve(std::move(s), *ev);
      auto& l = ledgers[e.stream_id];
      std::visit(overloaded{
                     [](const account::AccountOpened&) {},
                     [&](const account::FundsDeposited& d) { l.deposits += d.amount_cents; },
                     [&](const account::FundsWithdrawn& w) { l.withdrawals += w.amount_cents; },
                     [&](const account::AccountCharged& c) {
                       l.charges += c.amount_cents;
                       ++money[c.order_id].charges;
                       money[c.order_id].net += c.amount_cents;
                     },
                     [&](const account::ChargeDeclined& d) { ++money[d.order_id].declines; },
                     [&](const account::AccountRefunded& r) {
                       l.refunds += r.amount_cents;
                       money[r.order_id].net -= r.amount_cents;
                     },
                 },
                 *ev);
    } else if (category == "order") {
      auto ev = codec::decode_event<order::Event>(e.type, e.data);
      if (!ev) return fail(ev.error());
      auto& s = orders[std::string(e.stream_id.str().substr(6))];
      s = order::evolve(std::move(s), *ev);
    }
  }

  void check() {
    for (const auto& [order_id, holds] : held)
      for (const auto& [product_id, units] : holds)
        if (units < 0)
          violations.push_back(fmt::format("order {}: released or committed {} more units of {} than it reserved",
                                           order_id, -units, product_id));
    for (const auto& [stream, p] : products) {
      if (p.reserved < 0 || p.reserved > p.on_hand)
        violations.push_back(fmt::format("{}: reserved {} is outside 0..on_hand {}", stream.str(), p.reserved, p.on_hand));
    }
    for (const auto& [stream, a] : accounts) {
      const auto& l = ledgers[stream];
      auto expected = l.deposits - l.withdrawals - l.charges + l.refunds;
      if (a.balance_cents < 0) violations.push_back(fmt::format("{}: balance {} is negative", stream.str(), a.balance_cents));
      if (a.balance_cents != expected)
        violations.push_back(fmt::format("{}: balance {} is not deposits - withdrawals - charges + refunds = {}", stream.str(),
                                         a.balance_cents, expected));
    }
    for (const auto& [id, o] : orders) {
      const auto& m = money[id];
      const auto status = o.status;
      const char* name = order::to_string(status);
      if (m.charges > 1) violations.push_back(fmt::format("order {}: charged {} times", id, m.charges));
      bool paid = status == order::OrderStatus::confirmed || status == order::OrderStatus::shipped ||
                  status == order::OrderStatus::delivered;
      if (status == order::OrderStatus::pending) violations.push_back(fmt::format("order {}: still PENDING", id));
      if (paid && m.net != o.total_cents)
        violations.push_back(fmt::format("order {}: {} but net charged {} of total {}", id, name, m.net, o.total_cents));
      if (status == order::OrderStatus::cancelled && m.net != 0)
        violations.push_back(fmt::format("order {}: CANCELLED but net charged {}", id, m.net));
      if (status == order::OrderStatus::cancelled) {
        // What its payment_status must say: REFUNDED after a charge, DECLINED after a
        // decline, else PENDING (or DECLINED: a charge to a missing account leaves no event).
        using order::PaymentStatus;
        const auto ps = o.payment_status;
        bool right = m.charges > 0    ? ps == PaymentStatus::refunded
                     : m.declines > 0 ? ps == PaymentStatus::declined
                                      : ps == PaymentStatus::pending || ps == PaymentStatus::declined;
        if (!right)
          violations.push_back(fmt::format("order {}: CANCELLED with payment_status {} after {} charge(s) and {} decline(s)",
                                           id, order::to_string(ps), m.charges, m.declines));
      }
      std::map<std::string, std::int64_t> lines;
      if (status == order::OrderStatus::confirmed)
        for (const auto& l : o.items) lines[l.product_id] += l.quantity;
      auto h = held.find(id);
      auto holds = h == held.end() ? std::map<std::string, std::int64_t>{} : h->second;
      if (status != order::OrderStatus::pending && holds != lines)
        violations.push_back(fmt::format("order {}: {} but holds stock of {} products (expected {})", id, name,
                                         holds.size(), lines.size()));
    }
  }
};

}  // namespace

Result<std::vector<std::string>> check_invariants(es::EventStore& store) {
  Fold fold;
  es::EventFilter filter;
  filter.categories = {"product", "account", "order"};
  es::Position from{1};
  for (;;) {
    OF_ASSIGN_OR_RETURN(auto last, store.last_position());
    if (from > last) break;
    OF_ASSIGN_OR_RETURN(auto next,
                        store.scan_all(from, 10000, filter, [&](const es::RecordedEvent& e) { fold.add(e); }));
    from = next;
  }
  fold.check();
  return std::move(fold.violations);
}

InvariantChecks::~InvariantChecks() {
  std::thread thread;
  {
    MutexLock lk(mu_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void InvariantChecks::check(InvariantsCallback done) {
  {
    MutexLock lk(mu_);
    waiting_.push_back(std::move(done));
    if (!thread_.joinable()) thread_ = named_thread("of-invariants", [this] { run(); });
  }
  cv_.notify_one();
}

void InvariantChecks::run() {
  MutexLock lk(mu_);
  for (;;) {
    cv_.wait(mu_, [&]() REQUIRES(mu_) { return stopping_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping with nobody waiting
    auto callers = std::move(waiting_);
    waiting_.clear();
    lk.unlock();
    const auto violations = check_invariants(store_);
    for (auto& done : callers) done(violations);
    lk.lock();
  }
}

}  // namespace orderflow::app
