#include "app/command_handler.h"

#include <pthread.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <chrono>

#include "core/failures.h"
#include "core/named_thread.h"
#include "domain/validation.h"
#include "core/time.h"
#include "core/uuid.h"

namespace orderflow::app {

namespace {

std::string metadata_json(const CommandMeta& m) {
  boost::json::object o;
  o["correlation_id"] = m.correlation_id;
  o["causation_id"] = m.causation_id;
  o["command_id"] = m.command_id;
  if (!m.actor.empty()) o["actor"] = m.actor;
  if (!m.traceparent.empty()) o["traceparent"] = m.traceparent;
  return boost::json::serialize(o);
}


// What a customer gives as personal data is sealed under its key before the command is
// decided: nothing after this point holds the plaintext (personal_data.h).
Result<void> seal_personal_data(PersonalData&, domain::product::Command&) { return {}; }

Result<void> seal_personal_data(PersonalData& personal, domain::account::Command& command) {
  auto* open = std::get_if<domain::account::OpenAccount>(&command);
  // An invalid id is refused by decide(): no key is made for it.
  if (!open || open->owner.empty() || domain::check_id("account_id", open->account_id)) return {};
  auto sealed = personal.seal(open->account_id, open->owner);
  if (!sealed) return sealed.error();
  open->owner = std::move(*sealed);
  return {};
}

Result<void> seal_personal_data(PersonalData& personal, domain::order::Command& command) {
  auto* place = std::get_if<domain::order::PlaceOrder>(&command);
  if (!place || !place->shipping_address || place->shipping_address->empty() ||
      domain::check_id("customer_id", place->customer_id))
    return {};
  auto sealed = personal.seal(place->customer_id, *place->shipping_address);
  if (!sealed) return sealed.error();
  place->shipping_address = std::move(*sealed);
  return {};
}

}  // namespace

CommandCounts& command_counts() {
  static CommandCounts* counts = new CommandCounts;  // never destroyed: handlers may outlive main
  return *counts;
}

CommandHandler::CommandHandler(es::EventStore& store, es::SnapshotStore* snapshots, CommandHandlerOptions options)
    : store_(store),
      snapshots_(snapshots),
      options_(options),
      products_(options.cache_limit),
      accounts_(options.cache_limit),
      orders_(options.cache_limit) {
  if (!options_.executor) {
    const auto threads = static_cast<std::size_t>(std::max(1, options_.retry_threads));
    retry_pool_ = std::make_unique<boost::asio::thread_pool>(threads);
  }
  if (snapshots_ && options_.snapshot_every > 0)
    snap_thread_ = named_thread("of-snapshots", [this] { snapshot_loop(); });
}

CommandHandler::~CommandHandler() {
  if (retry_pool_) retry_pool_->join();  // every command was answered: nothing is left to run
  {
    MutexLock lk(snap_mu_);
    stopping_ = true;
  }
  snap_cv_.notify_all();
  if (snap_thread_.joinable()) snap_thread_.join();
}

void CommandHandler::queue_snapshot(es::Snapshot snapshot) {
  {
    MutexLock lk(snap_mu_);
    snap_queue_.insert_or_assign(snapshot.stream_id, std::move(snapshot));
  }
  snap_cv_.notify_one();
}

void CommandHandler::snapshot_loop() {
  MutexLock lk(snap_mu_);
  for (;;) {
    snap_cv_.wait(snap_mu_, [&]() REQUIRES(snap_mu_) { return stopping_ || !snap_queue_.empty(); });
    if (snap_queue_.empty()) return;  // stopping with nothing left
    auto batch = std::move(snap_queue_);
    snap_queue_.clear();
    lk.unlock();
    // A failed snapshot costs only a longer load later; the events are the truth.
    for (auto& [stream, snap] : batch) {
      if (auto saved = snapshots_->save_snapshot(snap); !saved)
        report_failure("snapshots", "save",
                       stream.str() + " at version " + to_string(snap.version) + ": " + saved.error().message,
                       "the stream loads from its older snapshot and events until its next snapshot");
      else
        recovered("snapshots", "save");
    }
    lk.lock();
  }
}

template <class A>
AggregateCache<typename A::State>& CommandHandler::cache() {
  if constexpr (std::is_same_v<A, Product>) return products_;
  else if constexpr (std::is_same_v<A, Account>) return accounts_;
  else return orders_;
}

template <class A>
Result<Loaded<A>> CommandHandler::read_store(const std::string& id) {
  Loaded<A> loaded{A::decider.initial_state(), es::kNoStream};
  if (snapshots_) {
    // A snapshot is only a baseline, and one that can't be read is ignored.
    if (auto snap = snapshots_->load_snapshot(stream_of<A>(id));
        snap && snap->schema_version == codec::kStateSchemaVersion) {
      if (auto state = codec::decode_state<typename A::State>(snap->state)) {
        loaded.state = std::move(*state);
        loaded.version = snap->version;
      }
    }
  }
  auto folded = fold_stream<A>(store_, id, std::move(loaded), es::StreamVersion{-1});
  if (folded)
    cache<A>().put(stream_of<A>(id), std::make_shared<const typename A::State>(folded->state), folded->version,
                   true);
  return folded;
}

template <class A>
Result<Loaded<A>> CommandHandler::load(const std::string& id) {
  const auto stream = stream_of<A>(id);
  if (auto hit = cache<A>().get(stream, true)) {
    if (!options_.shared_store) return Loaded<A>{*hit->state, hit->version};
    OF_ASSIGN_OR_RETURN(auto current, store_.stream_version(stream));
    if (current == hit->version) return Loaded<A>{*hit->state, hit->version};
  }
  return read_store<A>(id);
}

template <class A>
Result<Loaded<A>> CommandHandler::load_latest(const std::string& id) {
  if (auto hit = cache<A>().get(stream_of<A>(id), false)) return Loaded<A>{*hit->state, hit->version};
  return read_store<A>(id);
}

template <class A>
Result<Loaded<A>> CommandHandler::load_until(const std::string& id, es::StreamVersion version) {
  return fold_stream<A>(store_, id, Loaded<A>{A::decider.initial_state(), es::kNoStream}, version);
}

bool ConflictRetryPolicy::retry_conflict(std::optional<es::StreamVersion> current, Clock::time_point now) {
  // (Eight threads on one stream under ASan lost ten in a row: hence the moving stream.)
  const bool moved = current != conflict_at_;
  stuck_ = moved ? 0 : stuck_ + 1;
  conflict_at_ = current;
  const bool young = stuck_ < max_retries_ && now - started_ < window_;
  return !pinned_ && (retries_++ < max_retries_ || young);
}

bool ConflictRetryPolicy::recheck_cached() { return retries_++ < max_retries_; }

template <class A>
struct CommandHandler::Attempt {
  std::string id;
  es::StreamId stream;
  typename A::Command command;
  CommandMeta meta;
  HandledCallback<A> done;
  ConflictRetryPolicy retry;
  // Decide on the store's durable state, past any pending append (see step()).
  bool durable = false;
};

// What an attempt decides on, and where it came from.
template <class A>
struct CommandHandler::Basis {
  Loaded<A> loaded;
  bool from_cache = false;  // a committed entry: stale if another process appended
  bool pending = false;     // an append not yet durable
  std::uint64_t mark = 0;   // if pending: its es::AppendResult::pending_mark
};

template <class A>
void CommandHandler::handle(const std::string& id, typename A::Command command, CommandMeta meta,
                            HandledCallback<A> done) {
  if (meta.command_id.empty()) meta.command_id = uuid_v7();
  if (meta.correlation_id.empty()) meta.correlation_id = meta.command_id;
  if (meta.causation_id.empty()) meta.causation_id = meta.command_id;
  if (meta.now_ms == 0) meta.now_ms = now_unix_ms();
  HandledCallback<A> counted = [type = command_name<A>(command), done = std::move(done)](Result<Handled<A>> r) {
    const std::string_view outcome = !r ? errc_name(r.error().code) : r->result.written ? "ok" : "repeat";
    command_counts().at({type, outcome}).add();
    done(std::move(r));
  };
  if (options_.personal_data)
    if (auto sealed = seal_personal_data(*options_.personal_data, command); !sealed) {
      counted(sealed.error());
      return;
    }
  ConflictRetryPolicy retry(options_.max_conflict_retries, std::chrono::milliseconds(options_.conflict_retry_ms),
                            meta.if_match.has_value());
  auto stream = stream_of<A>(id);
  run(std::make_shared<Attempt<A>>(
      Attempt<A>{id, std::move(stream), std::move(command), std::move(meta), std::move(counted), retry}));
}

template <class A>
void CommandHandler::run(const std::shared_ptr<Attempt<A>>& a) {
  while (step(a) == Next::again) {
  }
}

void CommandHandler::post(std::function<void()> work) {
  if (options_.executor) return options_.executor(std::move(work));
  boost::asio::post(*retry_pool_, [work = std::move(work)] {
    thread_local const bool named = (pthread_setname_np(pthread_self(), "of-cmd-retry"), true);
    (void)named;
    work();
  });
}

template <class A>
void CommandHandler::run_later(std::shared_ptr<Attempt<A>> a) {
  post([this, a = std::move(a)] { run(a); });
}

// The latest state this process knows, pending appends included (see AggregateCache).
template <class A>
Result<CommandHandler::Basis<A>> CommandHandler::load_for(Attempt<A>& a) {
  auto from_store = [&]() -> Result<Basis<A>> {
    OF_ASSIGN_OR_RETURN(auto loaded, read_store<A>(a.id));
    return Basis<A>{std::move(loaded)};
  };
  if (a.durable) return from_store();
  if (a.meta.new_stream && a.retry.retries() == 0)
    return Basis<A>{Loaded<A>{A::decider.initial_state(), es::kNoStream}};
  const auto conflict_at = a.retry.conflict_at();
  if (auto hit = cache<A>().get(a.stream, false); hit && (!conflict_at || hit->version >= *conflict_at))
    return Basis<A>{Loaded<A>{*hit->state, hit->version}, hit->committed, !hit->committed, hit->mark};
  return from_store();
}

template <class A>
CommandHandler::Next CommandHandler::step(const std::shared_ptr<Attempt<A>>& a) {
  auto answer = [&](Result<Handled<A>> r) {
    a->done(std::move(r));
    return Next::done;
  };
  auto basis = load_for(*a);
  if (!basis) return answer(fail(basis.error()));
  auto& loaded = basis->loaded;
  // An answer that rests on a cached state (a rejection, an If-Match mismatch) must rest
  // on the stream as it is: if the store moved on, forget the entry and start again.
  // ... and an answer that writes nothing must not rest on an append that may yet fail
  // (a client told "already cancelled" must find the cancel in the log). It is decided
  // again on the durable state: refused there too, it is answered (as if it came before
  // the pending append); accepted there, it waits for the pending append's outcome.
  auto stale = [&] {
    if (basis->pending) {
      a->durable = true;
      return true;
    }
    if (!basis->from_cache || !a->retry.recheck_cached()) return false;
    auto current = store_.stream_version(a->stream);
    if (!current || *current == loaded.version) return false;
    cache<A>().forget(a->stream, loaded.version);
    return true;
  };
  if (a->meta.if_match && *a->meta.if_match != loaded.version) {
    if (stale()) return Next::again;
    return answer(fail(Error{Errc::version_conflict,
                             "If-Match expects version " + to_string(*a->meta.if_match) +
                                 " but it is at version " + to_string(loaded.version),
                             loaded.version}));
  }
  auto decided = A::decider.decide(loaded.state, a->command);
  if (!decided) {
    if (stale()) return Next::again;
    return answer(fail(decided.error()));
  }
  if (decided->empty()) {
    if (stale()) return Next::again;
    auto last = store_.last_position();
    if (!last) return answer(fail(last.error()));
    return answer(
        Handled<A>{std::make_shared<const typename A::State>(std::move(loaded.state)), {loaded.version, *last}, {}});
  }
  if (a->durable) {
    // Accepted on the durable state: it waits for the pending append it skipped, then
    // decides again on what that append left.
    a->durable = false;
    if (auto hit = cache<A>().get(a->stream, false); hit && !hit->committed && hit->version > loaded.version)
      return when_settled<A>(a->stream, hit->version, [this, a] { run_later(a); }) ? Next::done : Next::again;
  }
  return append(a, std::move(*basis), std::move(*decided));
}

template <class A>
CommandHandler::Next CommandHandler::append(const std::shared_ptr<Attempt<A>>& a, Basis<A> basis,
                                            std::vector<typename A::Event> events) {
  const auto& stream = a->stream;
  es::AppendRequest req;
  req.stream_id = stream;
  req.expected = basis.loaded.version == es::kNoStream ? es::ExpectedVersion::no_stream()
                                                       : es::ExpectedVersion::exact(basis.loaded.version);
  auto metadata = metadata_json(a->meta);
  req.events.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    req.events.push_back({a->meta.event_id ? a->meta.event_id(i) : uuid_v7(a->meta.now_ms), A::type_name(e),
                          codec::kEventSchemaVersion, codec::encode_event(e), metadata});
  }
  req.decided_on_pending = basis.pending ? basis.mark : 0;
  req.idempotency = a->meta.idempotency;
  req.render_response = a->meta.render_response;
  req.fresh_event_ids = !a->meta.event_id;  // new UUIDv7s, made above
  req.fresh_stream_id = a->meta.new_stream && a->retry.retries() == 0;

  auto state = std::move(basis.loaded.state);
  for (const auto& e : events) state = A::decider.evolve(std::move(state), e);
  const auto before = basis.loaded.version;
  const auto after = before + static_cast<std::int64_t>(events.size());
  // Once the store accepts the append into its open batch, commands on this stream
  // decide on the state it will have and append right behind it. The store calls this
  // under its lock, so a command that conflicts with this append finds its state here.
  auto shared = std::make_shared<const typename A::State>(std::move(state));
  auto told = std::make_shared<std::atomic<bool>>(false);  // on_staged ran
  req.on_staged = [this, stream, shared, told](const es::AppendResult& r) {
    told->store(true);
    cache<A>().put(stream, shared, r.version, false, r.pending_mark);
  };
  // A conflict to retry goes on in this loop if the store answered it inside append_async
  // (an exclusive store, on the caller's thread), else on a retry thread: whichever of the
  // answer and append_async's return comes second knows which.
  enum : int { in_call, returned, retry };
  auto handoff = std::make_shared<std::atomic<int>>(in_call);
  store_.append_async(std::move(req), [this, a, before, after, shared, handoff, told,
                                       events = std::move(events)](Result<es::AppendResult> r) mutable {
    // Runs on the store's thread: no reads, no waits. Whatever the outcome, the cache says
    // it by now: commands waiting on this append go on, and only then is this one
    // answered. Nothing here touches the handler after the answer: once its last command
    // is answered, its owner may destroy it.
    const auto& stream = a->stream;
    auto answer = [&](Result<Handled<A>> result) {
      settled(stream);
      a->done(std::move(result));
    };
    if (!r) {
      if (r.error().code == Errc::version_conflict) {
        // What we decided on was stale. Forget it (and, if the store had staged this
        // append before refusing it, what was decided on it); the appender that won has
        // put its state in the cache.
        if (told->load()) cache<A>().forget_refused(stream, before, after);
        else cache<A>().forget(stream, before);
        if (a->retry.retry_conflict(r.error().current_version)) {
          settled(stream);
          if (handoff->exchange(retry) == returned) run_later(a);
          return;
        }
      } else {
        cache<A>().forget_pending(stream, after);  // what this append staged will not land
      }
      return answer(fail(r.error()));
    }
    if (!r->written) {
      // A retry of an append already stored (a derived event id seen again): the store
      // holds what was decided then, not what was decided now, so this state is nobody's.
      // Forget it (on_staged may have cached it) and neither cache nor snapshot it.
      cache<A>().forget(stream, r->version);
      if (told->load()) cache<A>().forget_pending(stream, after);
      return answer(Handled<A>{nullptr, *r, {}});
    }
    OF_CHECK(r->version == after, "an append that wrote must leave the version it was decided for");
    cache<A>().put(stream, shared, after, true);
    auto every = options_.snapshot_every;
    if (snapshots_ && every > 0 && after.value() / every != before.value() / every)
      queue_snapshot({stream, after, codec::kStateSchemaVersion, codec::encode_state(*shared)});
    answer(Handled<A>{shared, *r, std::move(events)});
  });
  if (handoff->exchange(returned) != retry) return Next::done;
  if (a->retry.retries() > 2) std::this_thread::yield();  // the caller's thread: let the winner on
  return Next::again;
}

template <class A>
bool CommandHandler::when_settled(const es::StreamId& stream, es::StreamVersion version, std::function<void()> then) {
  MutexLock lk(settle_mu_);
  auto hit = cache<A>().get(stream, false);
  if (!hit || hit->committed || hit->version != version) return false;
  settle_waiters_.emplace(stream, std::move(then));
  return true;
}

void CommandHandler::settled(const es::StreamId& stream) {
  std::vector<std::function<void()>> ready;
  {
    MutexLock lk(settle_mu_);
    auto [first, last] = settle_waiters_.equal_range(stream);
    for (auto it = first; it != last; ++it) ready.push_back(std::move(it->second));
    settle_waiters_.erase(first, last);
  }
  for (auto& then : ready) then();
}

#define ORDERFLOW_INSTANTIATE(A)                                                                         \
  template Result<Loaded<A>> CommandHandler::load<A>(const std::string&);                                \
  template Result<Loaded<A>> CommandHandler::load_latest<A>(const std::string&);                         \
  template Result<Loaded<A>> CommandHandler::load_until<A>(const std::string&, es::StreamVersion);       \
  template void CommandHandler::handle<A>(const std::string&, A::Command, CommandMeta, HandledCallback<A>);
ORDERFLOW_INSTANTIATE(Product)
ORDERFLOW_INSTANTIATE(Account)
ORDERFLOW_INSTANTIATE(Order)
#undef ORDERFLOW_INSTANTIATE

}  // namespace orderflow::app
