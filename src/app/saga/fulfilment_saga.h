// The fulfilment saga (docs/api.md §5): a process manager that drives every placed order
// through reserve -> charge -> confirm, commits stock when it ships, and compensates
// (release, refund, cancel) when anything fails or the order is cancelled.
//
// This is the single-threaded core: it folds events, answers to its own commands and a
// clock, and says which commands to issue next (take_commands). It does no I/O except
// through Lookup; SagaRunner drives it in the server, the simulation test drives it
// deterministically.
//
// What is promised:
// - Its state is a fold of the log: the domain events about an order (they are the
//   truth), plus its own bookkeeping in stream saga-<order_id> (SagaStepRetried: the
//   attempt count and deadline of a retried step; SagaEnded: the final state and steps)
//   and the dead letters in stream deadletters-saga (domain/saga.h; read through
//   saga_records.h: a record that does not decode is reported, never skipped silently).
//   Nothing lives only in memory that a restart cannot fold again from checkpoint() on.
// - It advances only on events it sees in the log. A command's answer only says when to
//   look (the answer's position), except for bookkeeping records and a charge rejected
//   because the account does not exist (a decline with no event).
// - Every command carries an event id derived from (order, step, product), so issuing it
//   again after a redelivery, a timeout or a restart can never reserve, release, commit,
//   charge or refund twice: the store answers the original append or duplicate_event.
// - Per order, lines of one product are reserved, released and committed together.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "app/saga/saga_records.h"
#include "core/result.h"
#include "core/trace.h"
#include "domain/account.h"
#include "domain/order.h"
#include "domain/product.h"
#include "domain/saga.h"
#include "es/event.h"

namespace orderflow::app::saga {

// Its vocabulary and records (domain/saga.h).
using domain::saga::is_final;
using domain::saga::parse_saga_state;
using domain::saga::SagaState;
using domain::saga::SagaStep;
using domain::saga::StepStatus;
using domain::saga::to_string;

// A name-based UUID of the order and the step's name (SHA-1; version 8 carrying the time
// of a v7 order id, else version 5): the same inputs always give the same event id.
// Stored facts are looked up by these ids (an order's charge: saga_io.h find_charge), so
// a change to the derivation would lose them for the orders already in a store.
std::string derived_event_id(std::string_view order_id, std::string_view step);

// The categories the saga subscribes to.
std::vector<std::string> saga_categories();

struct SagaOptions {
  std::int64_t step_timeout_ms = 5000;
  // Attempts of a forward step (reserve, charge, confirm) before the saga gives up:
  // compensates, cancels with reason "timeout" and records a dead letter. Compensation
  // and commit steps are retried without limit: giving up on them would leave stock held
  // or money taken.
  int max_attempts = 3;
  double backoff = 2.0;  // each retry's deadline is this many times longer, up to max_backoff_ms
  std::int64_t max_backoff_ms = 60000;
  // Final sagas kept in memory for the admin view (the newest). Memory budget: a view is
  // ~650 bytes (its steps), 2000 ~1.3 MB; older ones are in their saga-<order_id> streams.
  std::size_t keep_finished = 2000;
};

// A step as it ran: name, status, attempts, last_error, at_ms (when it started or ended).
using StepView = domain::saga::StepRecord;

struct SagaView {
  std::string order_id;
  SagaState state = SagaState::running;
  std::string reason;  // why it compensated, if it did
  std::vector<StepView> steps;
  std::int64_t deadline_ms = 0;  // 0: none (final)
};

// What the saga wants done. Each carries the id of its one event.
struct ProductCommand {
  std::string product_id;
  domain::product::Command command;
};
struct AccountCommand {
  std::string account_id;
  domain::account::Command command;
};
struct OrderCommand {
  domain::order::Command command;
};
struct RecordEvent {  // bookkeeping: appended as is, ExpectedVersion::any
  es::StreamId stream_id;
  std::variant<domain::saga::Event, domain::saga::DeadLetterEvent> record;
};
struct SagaCommand {
  std::string order_id;
  std::string event_id;
  std::variant<ProductCommand, AccountCommand, OrderCommand, RecordEvent> action;
  std::optional<TraceParent> step_span;  // the span of the step that issues it
};

// A step that ended: completed, failed (it led to compensation) or cancelled. Its span
// started when the event that caused the step was recorded, under that event's span
// (metadata.traceparent), else under the order's previous step; it ends when the event
// that ends the step is recorded (or when the saga gives up on it).
struct StepEnded {
  std::string order_id;
  StepView step;  // name, status, attempts, last_error; at_ms: when it ended
  std::int64_t started_ms = 0;
  TraceParent span;
  std::string parent_span_id;  // empty: the step started a trace
};

// A command's answer. known_by: a position by which its event, if any, is visible
// (the append's position; for a rejection, the store's last position when it came).
struct Completion {
  std::string order_id;
  std::string event_id;
  std::optional<Error> error;
  es::Position known_by{0};
};

// The durable state of the aggregates, for re-activating a saga that was final (and
// forgotten) when an order ships, is cancelled or has its dead letter retried.
class Lookup {
 public:
  virtual ~Lookup() = default;
  virtual Result<domain::order::State> order(const std::string& order_id) = 0;
  // Units of the product the order holds now.
  virtual Result<std::int64_t> held(const std::string& product_id, const std::string& order_id) = 0;
  // What became of the order's charge on the account, if it was asked for one.
  virtual Result<std::optional<domain::account::ChargeOutcome>> charge(const std::string& account_id,
                                                                       const std::string& order_id) = 0;
  // The last SagaEnded state recorded for the order, if any; Errc::corrupt if that record
  // does not decode (saga_records.h): the saga reports it and goes on as if there were none.
  virtual Result<std::optional<SagaState>> last_end(const std::string& order_id) = 0;
};

class FulfilmentSaga {
 public:
  // `from`: the position it resumes at (a checkpoint, or 1): every event below it is
  // either folded or belongs to a saga that is final. `horizon`: the store's last position
  // when this process started. Until the saga has folded that far it only folds: it issues
  // no command, fires no deadline and finishes no saga, since the log may still hold what
  // happened next (its own earlier steps, a client's cancel, a crashed predecessor's
  // commands). A replay from any position therefore decides nothing it did not decide
  // before.
  FulfilmentSaga(SagaOptions options, Lookup& lookup, es::Position from, es::Position horizon);

  // Folds a batch of the log (in position order; redelivered events are harmless).
  // `next` is the position after it. An error (a lookup failed) means: deliver again.
  Result<void> on_events(std::span<const es::RecordedEvent> events, es::Position next, std::int64_t now_ms);
  void on_completion(const Completion& completion, std::int64_t now_ms);
  // Fires every deadline <= now_ms. Returns how many fired with their step's work not
  // done (each a retry, or giving up on the step).
  std::size_t on_tick(std::int64_t now_ms);
  // When on_tick has something to fire next (it may find the deadline stale and fire
  // nothing); nullopt: nothing, or not caught up yet, when it fires nothing.
  std::optional<std::int64_t> next_deadline() const;

  // The commands decided since the last call.
  std::vector<SagaCommand> take_commands();
  // The steps that ended since the last call (only those that started after the replay).
  std::vector<StepEnded> take_ended_steps();

  // Where to resume after a restart: no saga that is not final started before it. Never
  // below `from`.
  es::Position checkpoint() const;
  // Sagas not final (in memory, all of them).
  std::size_t active() const { return sagas_.size(); }
  // Sagas in memory by state (those not final, and final ones not yet settled).
  std::map<SagaState, std::size_t> count_by_state() const;
  std::optional<SagaView> view(const std::string& order_id) const;
  // Newest first: every saga not final, then the newest final ones.
  std::vector<SagaView> list(std::optional<SagaState> state, std::size_t limit) const;

 private:
  enum class Hold { none, failed, reserved, released, committed };
  enum class Pay { none, declined, charged, refunded };
  struct Line {  // all lines of one product
    std::string product_id;
    std::int64_t quantity = 0;
    Hold hold = Hold::none;
  };
  struct Saga {
    std::string order_id, customer_id;
    std::int64_t total_cents = 0;
    std::vector<Line> lines;
    es::Position activation{0};  // the event that started (or re-started) it
    bool confirmed = false, cancelled = false, shipped = false, account_missing = false;
    Pay pay = Pay::none;
    // What the order's cancel (or a later OrderPaymentSettled) recorded of its payment.
    domain::order::PaymentStatus cancel_payment = domain::order::PaymentStatus::pending;
    std::string reason;             // why it compensates (its own abort or the cancel's reason)
    bool aborting = false;          // it decided to cancel the order itself
    bool timed_out = false;         // gave up on a forward step: a dead letter is due
    bool dead_lettered = false, dead_letter_retried = false;
    std::optional<SagaState> ended;  // the last SagaEnded recorded
    // The current step (none: nothing left to run), its attempt and deadline.
    std::optional<SagaStep> step;
    int attempt = 0, recorded_attempt = 0;
    std::int64_t deadline_ms = 0;
    std::string last_error;
    std::set<std::string> issued;               // this attempt's commands, by event id
    std::map<std::string, int> in_flight;       // unanswered commands, by event id
    es::Position wait_until{0};                // answers' positions not yet seen
    std::vector<StepView> steps;
    // The current step's span; traced: it started after the replay (and is reported).
    TraceParent span;
    std::string span_parent;
    std::int64_t step_started_ms = 0;
    bool traced = false;
    // derived_event_id(order_id, step) by step: the same few are compared with every
    // event of the order, and each costs a SHA-1.
    mutable std::unordered_map<std::string, std::string> ids;
  };
  static const std::string& id_of(const Saga& s, const std::string& step);

  Saga* find(const std::string& order_id);
  Result<Saga*> reactivate(const std::string& order_id, es::Position at);
  void apply(Saga& s, const es::RecordedEvent& e);
  // `cause`: the event that moved the saga (nullptr: an answer or a deadline did).
  void refresh(Saga& s, std::int64_t at_ms, const es::RecordedEvent* cause = nullptr);
  void end_step(Saga& s, StepStatus status, std::int64_t at_ms);
  std::optional<SagaStep> current_step(const Saga& s) const;
  // The derived event id of the current attempt's SagaStepRetried.
  static const std::string& retry_id(const Saga& s);
  // A record of its own that it did not manage to read: reported, and the saga goes on.
  static void report_unreadable(const Saga& s, const Error& error);
  // For a cancelled order whose cancel recorded payment PENDING while its charge was
  // being taken: what the order must still record (REFUNDED once the refund is seen,
  // DECLINED once the decline is).
  static std::optional<domain::order::PaymentStatus> unsettled_payment(const Saga& s);
  std::vector<SagaCommand> wanted(const Saga& s, std::int64_t now_ms) const;
  SagaState state_of(const Saga& s) const;
  bool caught_up() const { return seen_ > horizon_; }
  bool settled(const Saga& s) const { return s.in_flight.empty() && seen_ > s.wait_until; }
  void reconcile(Saga& s, std::int64_t now_ms);
  void retry(Saga& s, std::int64_t now_ms);
  std::int64_t timeout(int attempt) const;
  void finish(Saga& s);
  SagaView view_of(const Saga& s) const;
  void remember(SagaView v);

  SagaOptions options_;
  Lookup& lookup_;
  const es::Position horizon_;
  es::Position seen_;  // every event below this position has been folded (or is final)
  std::unordered_map<std::string, Saga> sagas_;       // not final, or not yet settled
  std::multimap<std::int64_t, std::string> deadlines_;  // lazily pruned
  std::multimap<es::Position, std::string> waiting_;    // sagas waiting to see a position
  std::set<std::string> dirty_;                         // to reconcile
  std::vector<SagaCommand> out_;
  std::vector<StepEnded> ended_;
  std::deque<SagaView> finished_;                       // newest at the back, at most keep_finished
};

}  // namespace orderflow::app::saga
