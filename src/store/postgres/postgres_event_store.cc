#include "store/postgres/postgres_event_store.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <limits>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/encoding.h"
#include "core/evict.h"
#include "core/failures.h"
#include "core/named_thread.h"
#include "core/time.h"
#include "es/event_hash.h"
#include "store/postgres/leader_lease.h"
#include "store/postgres/migrations.h"

namespace orderflow::postgres {

namespace {

constexpr const char* kEventColumns =
    "position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at, "
    "encode(prev_hash, 'hex') AS prev_hash_hex, encode(hash, 'hex') AS hash_hex";

// How often the log's follower looks for other processes' appends.
constexpr std::chrono::milliseconds kPollInterval{50};
// The follower reads at most this often: under load a read brings the commits of several
// batches, and live readers fetch at most every 10 ms anyway (es::ProjectionOptions).
constexpr std::chrono::milliseconds kFollowSpacing{5};
// How long the follower waits before reading again after a failed read.
constexpr std::chrono::milliseconds kFollowRetry{200};
// The most events the follower reads at once.
constexpr std::size_t kFollowBatch = 2000;


void load_event(const PgResult& r, int row, int col, es::RecordedEvent& e) {
  e.position = es::Position{r.int64(row, col)};
  e.event_id.assign(r.text(row, col + 1));
  e.stream_id = es::StreamId(r.text(row, col + 2));
  e.version = es::StreamVersion{r.int64(row, col + 3)};
  e.type.assign(r.text(row, col + 4));
  e.schema_version = static_cast<std::int32_t>(r.int64(row, col + 5));
  e.data.assign(r.text(row, col + 6));
  e.metadata.assign(r.text(row, col + 7));
  e.recorded_at_ms = r.int64(row, col + 8);
}

// Every row keeps both of its hashes (es/event_hash.h).
struct RowHashes {
  es::EventHash prev_hash{};
  es::EventHash hash{};
};

// The two columns after the event's; a malformed one reads as kNoEventHash (and fails its check).
RowHashes load_hashes(const PgResult& r, int row, int col) {
  RowHashes h;
  if (!es::hash_from_hex(r.text(row, col + 9), h.prev_hash)) h.prev_hash = es::kNoEventHash;
  if (!es::hash_from_hex(r.text(row, col + 10), h.hash)) h.hash = es::kNoEventHash;
  return h;
}

// Loads the row into `e` and checks that its fields give its stored hash; returns its hashes.
Result<RowHashes> load_checked(const PgResult& r, int row, int col, es::RecordedEvent& e) {
  load_event(r, row, col, e);
  auto h = load_hashes(r, row, col);
  if (auto c = es::check_event_hash(e, h.prev_hash, h.hash); !c) return c.error();
  return h;
}

// The filter's conditions on `events`, with their parameters numbered after `params`.
// A category is tested on the id's prefix ("order" is the ids starting "order-"), which no
// index serves, so that a scan follows the position index from where it starts. Written
// as a range on stream_id, the planner intersected it with the (stream_id, version) index
// and sorted the whole category on every read: a subscription's poll of the log's tail
// cost 5.7 ms at 81k events, growing with the log (0.04 ms now).
std::string filter_conditions(const es::EventFilter& f, std::vector<std::string>& params) {
  std::string sql;
  auto next = [&](std::string value) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size());
  };
  if (!f.stream_id.empty()) sql += " AND stream_id = " + next(f.stream_id.str());
  if (!f.categories.empty()) {
    sql += " AND (";
    for (std::size_t i = 0; i < f.categories.size(); ++i) {
      auto prefix = f.categories[i] + "-";
      const auto length = std::to_string(prefix.size());
      sql += (i ? " OR left(stream_id, " : "left(stream_id, ") + length + ") = " + next(std::move(prefix));
    }
    sql += ")";
  }
  if (!f.types.empty()) {
    sql += " AND type IN (";
    for (std::size_t i = 0; i < f.types.size(); ++i) sql += (i ? ", " : "") + next(f.types[i]);
    sql += ")";
  }
  return sql;
}

}  // namespace

// Hashes as hex ($10, $11).
const char* const kInsertEvents =
    "INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at, "
    "prev_hash, hash) SELECT p, i, s, v, t, sv, d, m, r, decode(ph, 'hex'), decode(h, 'hex') "
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::integer[], "
    "$7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[]) AS u(p, i, s, v, t, sv, d, m, r, ph, h)";

// A pooled connection, returned to the pool when it goes out of scope if it is still
// healthy (a connection lost with the server is dropped, and the next lease reconnects).
class PostgresEventStore::Lease {
 public:
  Lease(PostgresEventStore& store, Connection c) : store_(&store), c_(std::move(c)) {}
  Lease(Lease&& other) noexcept : store_(other.store_), c_(std::move(other.c_)) { other.c_.reset(); }
  ~Lease() {
    if (!c_) return;  // moved from
    --pool_metrics().leased;
    if (!c_->healthy()) return;
    MutexLock lk(store_->pool_mu_);
    if (store_->pool_.size() < store_->options_.idle_connections) {
      store_->pool_.push_back(std::move(*c_));
      ++pool_metrics().idle;
    }
  }
  Connection* operator->() { return &*c_; }

 private:
  PostgresEventStore* store_;
  std::optional<Connection> c_;
};

PostgresEventStore::PostgresEventStore(PostgresEventStoreOptions options)
    : options_(std::move(options)),
      pipeline_(static_cast<es::AppendBackend&>(*this), options_.pipeline, &now_unix_ms),
      tail_(options_.tail) {}

PoolMetrics& pool_metrics() {
  static PoolMetrics m;
  return m;
}

void render_pool_metrics(std::string& out) {
  auto it = std::back_inserter(out);
  if (auto& pool = pool_metrics(); pool.opened.value() > 0)
    fmt::format_to(
        it,
        "# HELP orderflow_postgres_connections Read connections to PostgreSQL, by state (idle: in the pool; "
        "leased: running a statement).\n"
        "# TYPE orderflow_postgres_connections gauge\n"
        "orderflow_postgres_connections{{state=\"idle\"}} {}\norderflow_postgres_connections{{state=\"leased\"}} {}\n"
        "# HELP orderflow_postgres_connections_opened_total Read connections opened (the pool was empty, or one was "
        "lost).\n"
        "# TYPE orderflow_postgres_connections_opened_total counter\norderflow_postgres_connections_opened_total {}\n",
        pool.idle.load(), pool.leased.load(), pool.opened.value());
}

PostgresEventStore::~PostgresEventStore() {
  close();
  MutexLock lk(pool_mu_);
  pool_metrics().idle -= static_cast<std::int64_t>(pool_.size());
}

Result<std::unique_ptr<PostgresEventStore>> PostgresEventStore::open(PostgresEventStoreOptions options) {
  std::unique_ptr<PostgresEventStore> store(new PostgresEventStore(std::move(options)));
  auto conn = Connection::open(store->options_.conninfo, store->options_.schema);
  if (!conn) return conn.error();
  if (auto r = migrate(*conn, store->options_.schema); !r) return r.error();
  {
    MutexLock lk(store->pool_mu_);  // nothing else uses it yet: for the analysis
    store->pool_.push_back(std::move(*conn));
  }
  pool_metrics().opened.add();
  ++pool_metrics().idle;
  if (auto r = store->verify_head(); !r)
    return fail(r.error().code, "the PostgreSQL store is not usable (" + r.error().message + ")");
  if (auto r = store->pipeline_.start(); !r) return r.error();
  return store;
}

void PostgresEventStore::close() {
  closing_ = true;
  pipeline_.stop();
  std::optional<std::thread> follower;
  {
    MutexLock lk(follow_mu_);
    follower.swap(follower_);
  }
  followed_cv_.notify_all();
  if (follower) follower->join();
}

std::unique_ptr<es::LeaderLease> PostgresEventStore::leader_lease(std::string name) const {
  return std::make_unique<PostgresLeaderLease>(options_.conninfo, options_.schema, std::move(name));
}

Result<PostgresEventStore::Lease> PostgresEventStore::lease() {
  {
    MutexLock lk(pool_mu_);
    if (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      --pool_metrics().idle;
      ++pool_metrics().leased;
      return Lease(*this, std::move(c));
    }
  }
  auto c = Connection::open(options_.conninfo, options_.schema);
  if (!c) return c.error();
  pool_metrics().opened.add();
  ++pool_metrics().leased;
  return Lease(*this, std::move(*c));
}

// Every statement run here may safely run twice (reads and upserts): one that failed
// because its pooled connection had died while idle (a server restart) runs again on a
// new connection.
Result<PgResult> PostgresEventStore::query(const Query& q) {
  for (int attempt = 0;; ++attempt) {
    auto conn = lease();
    if (!conn) return conn.error();
    auto r = (*conn)->query(q);
    if (r || attempt > 0 || (*conn)->healthy()) return r;
  }
}

void PostgresEventStore::append_async(es::AppendRequest req, es::AppendCallback done) {
  pipeline_.append(std::move(req), std::move(done));
}

// Checks the newest options_.verify_at_open events (each one's hash, the links between
// them) and that the last one's hash is the head row's.
Result<void> PostgresEventStore::verify_head() {
  const auto newest = std::to_string(std::max<std::size_t>(options_.verify_at_open, 1));
  auto rows = query({(std::string("SELECT encode(h.hash, 'hex'), e.* FROM log_head h LEFT JOIN LATERAL (SELECT ") +
                      kEventColumns + " FROM events WHERE position > h.position - $1 ORDER BY position) e ON true")
                         .c_str(),
                     {newest}});
  if (!rows) return rows.error();
  es::EventHash before{}, head{};
  if (!es::hash_from_hex(rows->text(0, 0), head)) return fail(Errc::corrupt, "the head row's hash is malformed");
  es::RecordedEvent e;
  for (int i = 0; i < rows->rows() && !rows->is_null(i, 1); ++i) {
    auto hashes = load_checked(*rows, i, 1, e);
    if (!hashes) return hashes.error();
    if (i > 0)
      if (auto r = es::check_chain_link(e, hashes->prev_hash, before); !r) return r;
    before = hashes->hash;
  }
  if (rows->rows() > 0 && !rows->is_null(0, 1) && before != head)
    return fail(Errc::corrupt, "the log's head hash is not the hash of its last event, position " +
                                   to_string(e.position));
  return {};
}

Result<std::vector<es::RecordedEvent>> PostgresEventStore::events_of(const PgResult& rows) {
  std::vector<es::RecordedEvent> events(static_cast<std::size_t>(rows.rows()));
  for (int i = 0; i < rows.rows(); ++i) {
    auto& e = events[static_cast<std::size_t>(i)];
    if (auto h = load_checked(rows, i, 0, e); !h) return h.error();
    if (options_.upcasters)
      if (auto u = options_.upcasters->upcast(e); !u) return u.error();
  }
  return events;
}

Result<std::vector<es::RecordedEvent>> PostgresEventStore::read_stream(const es::StreamId& stream_id,
                                                                       es::StreamVersion from_version,
                                                                       std::size_t max, es::Direction direction) {
  bool forward = direction == es::Direction::forward;
  if (!forward && from_version < 0) from_version = std::numeric_limits<es::StreamVersion>::max();
  std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE stream_id = $1 AND version " +
                    (forward ? ">= $2 ORDER BY version" : "<= $2 ORDER BY version DESC") + " LIMIT $3";
  auto rows = query({sql.c_str(), {stream_id.str(), to_string(from_version), std::to_string(max)}});
  if (!rows) return rows.error();
  return events_of(*rows);
}

Result<std::optional<es::RecordedEvent>> PostgresEventStore::read_event(const std::string& event_id) {
  const std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE event_id = $1";
  auto rows = query({sql.c_str(), {event_id}});
  if (!rows) return rows.error();
  auto events = events_of(*rows);
  if (!events) return events.error();
  if (events->empty()) return std::optional<es::RecordedEvent>();
  return std::optional(std::move(events->front()));
}

Result<std::vector<es::RecordedEvent>> PostgresEventStore::read_events(std::span<const std::string> event_ids) {
  if (event_ids.empty()) return std::vector<es::RecordedEvent>();
  ArrayLiteral ids;
  for (const auto& id : event_ids) ids.add(id);
  const std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE event_id = ANY($1::text[])";
  auto rows = query({sql.c_str(), {ids.done()}});
  if (!rows) return rows.error();
  return events_of(*rows);
}

// One statement, so one snapshot: the events from `from_position` on and the log's head
// as of the same moment, which says how far a scan that found fewer than `max` events
// has examined the log.
//
// A filter that is not one stream's reads the log in windows of positions: the planner,
// which cannot know how many events a category or type filter passes, would otherwise
// take every match from `from_position` to the head and sort them, however few are
// wanted (a reader far behind paid for the whole rest of the log on every read). Each
// window is read whole (its snapshot holds every event up to its head, since positions
// become visible in order), and the next one read while fewer than `max` events passed.
Result<es::Position> PostgresEventStore::scan_all(es::Position from_position, std::size_t max,
                                                  const es::EventFilter& filter,
                                                  const std::function<void(const es::RecordedEvent&)>& fn) {
  const bool windowed = filter.stream_id.empty() && !filter.empty();
  const std::int64_t window = std::max<std::int64_t>(4096, 4 * static_cast<std::int64_t>(max));
  std::size_t count = 0;
  es::Position next = from_position;
  // Each event is checked against its own hash, and against the one before it when that
  // was read too.
  es::EventHash previous{};
  es::Position after_previous{0};  // one past the event `previous` is the hash of
  for (es::Position from = from_position;;) {
    std::vector<std::string> params{to_string(from), std::to_string(max - count)};
    if (windowed) params.push_back(to_string(from + window));
    auto conditions = std::string(windowed ? " AND position < $3" : "") + filter_conditions(filter, params);
    std::string sql = std::string("SELECT h.position, e.* FROM log_head h LEFT JOIN LATERAL (SELECT ") +
                      kEventColumns + " FROM events WHERE position >= $1" + conditions +
                      " ORDER BY position LIMIT $2) e ON true";
    OF_ASSIGN_OR_RETURN(auto rows, query({sql.c_str(), std::move(params)}));
    es::RecordedEvent e;
    for (int i = 0; i < rows.rows() && !rows.is_null(i, 1); ++i, ++count) {
      OF_ASSIGN_OR_RETURN(auto hashes, load_checked(rows, i, 1, e));
      if (count > 0 && e.position == after_previous)
        OF_RETURN_IF_ERROR(es::check_chain_link(e, hashes.prev_hash, previous));
      previous = hashes.hash;
      after_previous = e.position + 1;
      if (options_.upcasters) OF_RETURN_IF_ERROR(options_.upcasters->upcast(e));
      fn(e);
      next = e.position + 1;
    }
    if (count >= max) return next;
    const es::Position head{rows.int64(0, 0)};
    if (!windowed || from + window > head) return std::max(next, head + 1);
    from = from + window;
    next = std::max(next, from);
  }
}

Result<es::Position> PostgresEventStore::scan_live(es::Position from_position, std::size_t max,
                                                   const es::EventFilter& filter,
                                                   const std::function<void(const es::RecordedEvent&)>& fn) {
  if (auto next = tail_.scan(from_position, max, filter, fn)) return *next;
  return scan_all(from_position, max, filter, fn);
}

Result<es::Position> PostgresEventStore::scan_stored(es::Position from_position, std::size_t max,
                                                     const StoredFn& fn) {
  auto rows = query({(std::string("SELECT ") + kEventColumns +
                      " FROM events WHERE position >= $1 ORDER BY position LIMIT $2")
                         .c_str(),
                     {to_string(from_position), std::to_string(max)}});
  if (!rows)
    return fail(rows.error().code, "reading the log from position " + to_string(from_position) + " on: " +
                                       rows.error().message);
  es::RecordedEvent e;
  es::Position next = from_position;
  for (int i = 0; i < rows->rows(); ++i) {
    load_event(*rows, i, 0, e);
    const auto h = load_hashes(*rows, i, 0);
    fn(e, es::StoredHashes{h.prev_hash, h.hash, std::nullopt});
    next = e.position + 1;
  }
  return next;
}

Result<es::Position> PostgresEventStore::last_position() {
  auto rows = query({"SELECT position FROM log_head", {}});
  if (!rows) return rows.error();
  return es::Position{rows->int64(0, 0)};
}

Result<es::StreamVersion> PostgresEventStore::stream_version(const es::StreamId& stream_id) {
  auto rows = query({"SELECT coalesce(max(version), -1) FROM events WHERE stream_id = $1", {stream_id.str()}});
  if (!rows) return rows.error();
  return es::StreamVersion{rows->int64(0, 0)};
}

Result<std::optional<es::IdempotencyRecord>> PostgresEventStore::find_idempotency(const std::string& key) {
  auto rows = query({"SELECT fingerprint, status, response, created_at FROM idempotency WHERE key = $1", {key}});
  if (!rows) return rows.error();
  if (rows->rows() == 0) return std::optional<es::IdempotencyRecord>();
  return std::optional<es::IdempotencyRecord>(es::IdempotencyRecord{
      key, std::string(rows->text(0, 0)), static_cast<int>(rows->int64(0, 1)), std::string(rows->text(0, 2)),
      rows->int64(0, 3)});
}

// Appends of other processes that may carry the key: the one holding the log head's lock
// (its COMMIT may be on the way even if its process has died). Waiting for a share of
// that lock waits for it to end; the lookup after it, a statement of its own, sees what
// it committed. An append another process has not sent yet is not waited for.
Result<std::optional<es::IdempotencyRecord>> PostgresEventStore::find_idempotency_settled(const std::string& key) {
  pipeline_.await_key(key);
  if (auto fence = query({"SELECT 1 FROM log_head FOR SHARE", {}}); !fence) return fence.error();
  return find_idempotency(key);
}

bool PostgresEventStore::wait_for_events(es::Position after, std::chrono::milliseconds timeout) {
  MutexLock lk(follow_mu_);
  if (!follower_ && !closing_) follower_.emplace(named_thread("of-log-tail", [this] { follow_log(); }));
  followed_cv_.wait_for(follow_mu_, timeout,
                        [&]() REQUIRES(follow_mu_) { return followed_ > after + 1 || closing_; });
  return followed_ > after + 1;
}

// From the log's head as it is when following starts (a reader behind it reads the
// database), every event in position order, each read whole: the tail then holds every
// durable event from where it covers to `next`, the promise es::EventTail keeps.
void PostgresEventStore::follow_log() {
  auto pause = [this](std::chrono::milliseconds d) {
    MutexLock lk(follow_mu_);
    followed_cv_.wait_for(follow_mu_, d, [&] { return closing_.load(); });
  };
  es::Position next{0};
  auto last_read = std::chrono::steady_clock::now() - kFollowSpacing;
  while (!closing_) {
    if (next == 0) {
      auto last = last_position();
      if (!last) {
        pause(kFollowRetry);
        continue;
      }
      next = *last + 1;
    }
    std::this_thread::sleep_until(last_read + kFollowSpacing);
    last_read = std::chrono::steady_clock::now();
    std::vector<es::RecordedEvent> events;
    auto read = scan_all(next, kFollowBatch, {}, [&](const es::RecordedEvent& e) { events.push_back(e); });
    if (!read) {
      // Readers read the database, and meet the error there, until a read succeeds.
      tail_.clear();
      pause(kFollowRetry);
      continue;
    }
    const bool more = events.size() == kFollowBatch;
    tail_.cover_until(next);  // after a clear: covered again from here
    tail_.push(std::move(events));
    tail_.cover_until(*read);
    next = *read;
    {
      MutexLock lk(follow_mu_);
      followed_ = next;
    }
    followed_cv_.notify_all();
    if (!more) pipeline_.wait_for_commit(next - 1, kPollInterval);
  }
}

namespace {
std::int64_t checksum_of(const es::Snapshot& s) {
  return static_cast<std::int64_t>(es::snapshot_checksum(s.stream_id.str(), s.version, s.schema_version, s.state));
}
}  // namespace

Result<void> PostgresEventStore::save_snapshot(const es::Snapshot& snapshot) {
  auto r = query({"INSERT INTO snapshots (stream_id, version, schema_version, state, checksum) "
                  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
                  "schema_version = excluded.schema_version, state = excluded.state, checksum = excluded.checksum",
                  {snapshot.stream_id.str(), to_string(snapshot.version), std::to_string(snapshot.schema_version),
                   snapshot.state, std::to_string(checksum_of(snapshot))}});
  if (!r) return r.error();
  return {};
}

std::optional<es::Snapshot> PostgresEventStore::load_snapshot(const es::StreamId& stream_id) {
  auto rows =
      query({"SELECT version, schema_version, state, checksum FROM snapshots WHERE stream_id = $1", {stream_id.str()}});
  if (!rows || rows->rows() == 0) return std::nullopt;  // a snapshot is an optimisation: never fatal
  es::Snapshot snapshot{stream_id, es::StreamVersion{rows->int64(0, 0)}, static_cast<std::int32_t>(rows->int64(0, 1)),
                        std::string(rows->text(0, 2))};
  if (checksum_of(snapshot) != rows->int64(0, 3)) {
    report_failure("event store", "corrupt snapshot",
                   "the snapshot of " + stream_id.str() + " at version " + to_string(snapshot.version) +
                       " does not give its stored checksum",
                   "the stream is folded from its events instead; the next snapshot replaces it");
    return std::nullopt;
  }
  return snapshot;
}

Result<void> PostgresEventStore::for_each_snapshot(const std::function<void(const es::Snapshot&)>& fn) {
  for (std::string after;;) {  // a page at a time, by stream id
    auto rows = query({"SELECT stream_id, version, schema_version, state FROM snapshots WHERE stream_id > $1 "
                       "ORDER BY stream_id LIMIT 1000",
                       {after}});
    if (!rows) return rows.error();
    if (rows->rows() == 0) return {};
    for (int i = 0; i < rows->rows(); ++i)
      fn(es::Snapshot{es::StreamId(rows->text(i, 0)), es::StreamVersion{rows->int64(i, 1)}, static_cast<std::int32_t>(rows->int64(i, 2)),
                      std::string(rows->text(i, 3))});
    after = std::string(rows->text(rows->rows() - 1, 0));
  }
}

Result<es::Position> PostgresEventStore::load_checkpoint(const std::string& name) {
  auto rows = query({"SELECT position FROM checkpoints WHERE name = $1", {name}});
  if (!rows) return rows.error();
  return rows->rows() ? es::Position{rows->int64(0, 0)} : es::Position{0};
}

Result<void> PostgresEventStore::save_checkpoint(const std::string& name, es::Position position) {
  auto r = query({"INSERT INTO checkpoints (name, position) VALUES ($1, $2) "
                  "ON CONFLICT (name) DO UPDATE SET position = GREATEST(checkpoints.position, excluded.position)",
                  {name, to_string(position)}});
  if (!r) return r.error();
  return {};
}

// Rows another process is deleting are skipped, not waited for.
Result<std::size_t> PostgresEventStore::expire_idempotency(std::int64_t before_ms, std::size_t max) {
  auto r = query({"WITH gone AS (DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE "
                  "created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) "
                  "SELECT count(*) FROM gone",
                  {std::to_string(before_ms), std::to_string(max)}});
  if (!r) return r.error();
  return static_cast<std::size_t>(r->int64(0, 0));
}

// CustomerKeyStore. Keys travel as hex (every parameter is text); each statement is its own
// transaction, committed with synchronous_commit=on.

namespace {

std::string to_hex(std::string_view bytes) { return "\\x" + hex_encode(bytes); }

// A bytea column in text form ("\\x…").
Result<std::string> from_hex(std::string_view text) {
  if (text.size() < 2 || text.substr(0, 2) != "\\x" || text.size() % 2)
    return fail(Errc::corrupt, "a customer key is not hex bytea");
  std::string out;
  auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; };
  for (std::size_t i = 2; i < text.size(); i += 2)
    out += static_cast<char>(digit(text[i]) << 4 | digit(text[i + 1]));
  return out;
}

}  // namespace

Result<std::optional<es::CustomerKey>> PostgresEventStore::load_key(const std::string& customer_id) {
  auto rows = query({"SELECT key, coalesce(erased_at, 0) FROM customer_keys WHERE customer_id = $1", {customer_id}});
  if (!rows) return rows.error();
  if (!rows->rows()) return std::optional<es::CustomerKey>();
  es::CustomerKey k{"", rows->int64(0, 1)};
  if (!rows->is_null(0, 0)) {
    auto key = from_hex(rows->text(0, 0));
    if (!key) return key.error();
    k.key = std::move(*key);
  }
  return std::optional(std::move(k));
}

Result<std::string> PostgresEventStore::create_key(const std::string& customer_id, const std::string& candidate,
                                                   std::int64_t now_ms) {
  // Insert-or-get in one statement: of processes racing, the first insert wins and the
  // others' DO UPDATE (a no-op set, so the row is returned) gives them its key.
  auto rows = query({"INSERT INTO customer_keys (customer_id, key, created_at) VALUES ($1, $2::bytea, $3) "
                     "ON CONFLICT (customer_id) DO UPDATE SET key = coalesce(customer_keys.key, excluded.key), "
                     "created_at = CASE WHEN customer_keys.key IS NULL THEN excluded.created_at "
                     "ELSE customer_keys.created_at END RETURNING key",
                     {customer_id, to_hex(candidate), std::to_string(now_ms)}});
  if (!rows) return rows.error();
  if (rows->rows() != 1 || rows->is_null(0, 0))
    return fail(Errc::internal, "the key of customer " + customer_id + " was not stored");
  return from_hex(rows->text(0, 0));
}

Result<std::optional<es::KeyErasure>> PostgresEventStore::erase_key(const std::string& customer_id,
                                                                    std::int64_t now_ms, bool record_if_absent) {
  // The row is locked before it is read (FOR UPDATE), so of erasures racing in several
  // processes one finds the key and the others find it erased.
  auto rows = query({"UPDATE customer_keys c SET key = NULL, "
                     "erased_at = CASE WHEN o.had THEN $2 ELSE c.erased_at END FROM "
                     "(SELECT customer_id, key IS NOT NULL AS had FROM customer_keys WHERE customer_id = $1 FOR UPDATE) o "
                     "WHERE c.customer_id = o.customer_id RETURNING coalesce(c.erased_at, 0), o.had",
                     {customer_id, std::to_string(now_ms)}});
  if (!rows) return rows.error();
  if (rows->rows()) return std::optional(es::KeyErasure{rows->int64(0, 0), rows->text(0, 1) == "t"});
  if (!record_if_absent) return std::optional<es::KeyErasure>();
  // (xmax = 0: the row was inserted now, not found by a racing insert.)
  auto recorded = query({"INSERT INTO customer_keys (customer_id, key, created_at, erased_at) VALUES ($1, NULL, $2, $2) "
                         "ON CONFLICT (customer_id) DO UPDATE SET key = NULL, "
                         "erased_at = coalesce(customer_keys.erased_at, excluded.erased_at) "
                         "RETURNING erased_at, xmax = 0",
                         {customer_id, std::to_string(now_ms)}});
  if (!recorded) return recorded.error();
  return std::optional(es::KeyErasure{recorded->int64(0, 0), recorded->text(0, 1) == "t"});
}

// The next batch is taken only once the next lane's last batch has committed.
void PostgresEventStore::await_writable() {
  MutexLock lk(lanes_mu_);
  lanes_cv_.wait(lanes_mu_, [&]() REQUIRES(lanes_mu_) { return !lanes_[next_lane_].committing; });
}

// Append transactions take turns on two connections (lanes): while one lane's COMMIT is
// flushed, the next batch is already waiting for the log head's lock on the other, so
// the server starts it the moment that commit ends rather than a round trip later.
// write_batch returns once its batch holds the lock (check_batch relies on that).
Result<void> PostgresEventStore::write_batch(std::vector<es::StagedAppend>& batch) {
  Lane& lane = lanes_[next_lane_];
  next_lane_ = (next_lane_ + 1) % lanes_.size();
  {
    MutexLock lk(lanes_mu_);
    OF_CHECK(!lane.committing, "write_batch without await_writable");
  }
  auto connect = [&]() -> Result<void> {
    if (lane.conn && lane.conn->healthy()) return {};
    auto c = Connection::open(options_.conninfo, options_.schema);
    if (!c) return c.error();
    lane.conn = std::move(*c);
    return {};
  };
  if (versions_.size() > options_.pipeline.stream_cache_limit) {
    evict_least_recent(
        versions_, options_.pipeline.stream_cache_limit / 2, [](const KnownVersion&) { return true; },
        [](const KnownVersion& v) { return v.used; });
    // A stream of the batch in flight that memory forgot would be looked up before that
    // batch commits: this batch goes the careful way.
    ahead_ = false;
  }
  Result<void> sent;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (sent = connect(); !sent) break;
    sent = write_until_commit(*lane.conn, batch);
    // Nothing commits before the COMMIT is sent: a batch whose connection had died
    // while idle (a server restart) starts over on a new one.
    if (sent || lane.conn->healthy()) break;
  }
  if (sent) sent = lane.conn->send({{"COMMIT", {}}});
  if (!sent) {
    // A failed pipeline dropped the connection and its transaction; whatever this
    // batch saw and planned is void.
    head_tag_ = "0";
    ahead_ = false;
    write_failed(sent.error());
    return sent;
  }
  MutexLock lk(lanes_mu_);
  lane.committing = true;
  committing_.push_back(&lane);
  return {};
}

void PostgresEventStore::write_failed(const Error& e) {
  {
    MutexLock lk(write_failure_mu_);
    write_failure_ = e;
    write_failed_at_ = std::chrono::steady_clock::now();
  }
  report_failure("event store", "write", e.message,
                 "its appends answer 503 unavailable; every later append tries again");
}

void PostgresEventStore::write_committed() {
  {
    MutexLock lk(write_failure_mu_);
    if (!write_failure_) return;
    write_failure_.reset();
  }
  recovered("event store", "write", "appends commit again");
}

std::optional<Error> PostgresEventStore::write_failure() {
  MutexLock lk(write_failure_mu_);
  if (write_failure_ && std::chrono::steady_clock::now() - write_failed_at_ >= kWriteFailureShown) return std::nullopt;
  return write_failure_;
}

// Reads the outcome of the oldest `batches` COMMITs sent: their appends are durable if
// it succeeded.
Result<void> PostgresEventStore::sync(std::size_t batches) {
  Result<void> outcome;
  for (std::size_t i = 0; i < batches; ++i) {
    Lane* lane = nullptr;
    {
      MutexLock lk(lanes_mu_);
      OF_CHECK(!committing_.empty(), "sync of a batch that was never sent");
      lane = committing_.front();
    }
    auto committed = lane->conn->receive();
    if (!committed && outcome) outcome = committed.error();
    if (committed) write_committed();
    else write_failed(committed.error());
    {
      MutexLock lk(lanes_mu_);
      committing_.pop_front();
      lane->committing = false;
    }
    lanes_cv_.notify_all();
  }
  return outcome;
}

namespace {

constexpr const char* kFindEvents =
    "SELECT event_id, stream_id, version, position FROM events WHERE event_id = ANY($1::text[])";
constexpr const char* kFindKeys = "SELECT key FROM idempotency WHERE key = ANY($1::text[])";
// Takes the head row's lock; answers the head, its xmin (the transaction that last
// moved it) and this transaction's id.
// And the hash of the event at the head.
constexpr const char* kLockHead =
    "SELECT position, xmin::text, pg_current_xact_id()::text, encode(hash, 'hex') FROM log_head FOR UPDATE";
// The lookups again, under the lock, only when the head's last writer is not the one
// expected ($2): then what the first ones saw may be out of date.
constexpr const char* kFindEventsAgain =
    "SELECT event_id, stream_id, version, position FROM events WHERE event_id = ANY($1::text[]) "
    "AND NOT ((SELECT xmin FROM log_head) = $2::xid)";
constexpr const char* kFindKeysAgain =
    "SELECT key FROM idempotency WHERE key = ANY($1::text[]) AND NOT ((SELECT xmin FROM log_head) = $2::xid)";
// The versions of these streams, before the lock (write_until_commit).
constexpr const char* kVersionsOf =
    "SELECT s.id, coalesce((SELECT max(version) FROM events e WHERE e.stream_id = s.id), -1) "
    "FROM unnest($1::text[]) AS s(id)";
// The versions of the streams memory does not know ($2), or of every stream of the
// batch ($1) when the head's last writer is not the one expected ($3).
constexpr const char* kStreamVersions =
    "SELECT s.id, coalesce((SELECT max(version) FROM events e WHERE e.stream_id = s.id), -1) "
    "FROM (SELECT DISTINCT unnest(CASE WHEN (SELECT xmin FROM log_head) = $3::xid THEN $2::text[] "
    "ELSE $1::text[] END) AS id) s";

// The writes, for a batch decided before it held the lock: they write only if the
// head's last writer is the one expected (the last parameter). The head moves last, as
// it changes the xmin they test.
const char* const kInsertEventsIf =
    "INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data, metadata, recorded_at, "
    "prev_hash, hash) SELECT p, i, s, v, t, sv, d, m, r, decode(ph, 'hex'), decode(h, 'hex') "
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::integer[], "
    "$7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[]) AS u(p, i, s, v, t, sv, d, m, r, ph, h) "
    "WHERE (SELECT xmin FROM log_head) = $12::xid";
constexpr const char* kInsertKeys =
    "INSERT INTO idempotency (key, fingerprint, status, response, created_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::bigint[])";
constexpr const char* kInsertKeysIf =
    "INSERT INTO idempotency (key, fingerprint, status, response, created_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::bigint[]) "
    "WHERE (SELECT xmin FROM log_head) = $6::xid";
constexpr const char* kMoveHead = "UPDATE log_head SET position = $1, hash = decode($2, 'hex')";
constexpr const char* kMoveHeadIf = "UPDATE log_head SET position = $1, hash = decode($2, 'hex') WHERE xmin = $3::xid";

// A transaction id as xmin shows it: pg_current_xact_id() carries the epoch above it.
std::string xid32(std::string_view xid8) {
  std::uint64_t full = 0;
  auto [end, ec] = std::from_chars(xid8.data(), xid8.data() + xid8.size(), full);
  OF_CHECK(ec == std::errc() && end == xid8.data() + xid8.size(), "not a transaction id");
  return std::to_string(static_cast<std::uint32_t>(full));
}

}  // namespace

// The lock on the head row orders every batch of every process, so the less a batch
// does while it holds the lock, the more batches commit per second. A batch needs the
// versions of its streams, where its event ids are stored and which of its idempotency
// keys exist; holding the lock nothing else can append, so checks made then are exact.
// What is kept out of that time:
//
// - Event ids and idempotency keys are looked up before the lock is taken (ahead of it
//   in the same pipeline, or in a round trip of their own for write_ahead), but after
//   the previous batch took it (write_batch returns only then): the only writer that
//   may commit between the lookup and our lock is that batch, whose ids and keys the
//   pipeline kept apart from ours while both were in flight.
// - Stream versions come from memory (versions_) when this process wrote the log last:
//   the head row's xmin is then head_tag_, this process's previous batch, or the last
//   writer that batch saw if it wrote nothing. Any other writer, and a batch of ours
//   that rolled back, leaves another xmin (ids do not repeat within 2^32
//   transactions). A batch built on the other lane's uncommitted one relies on it only
//   if it commits: the lock orders the two, and the xmin check sees which happened.
//   A stream memory does not know (a saga's record opens saga-<order id>, one per
//   order) is read with the ids, before the lock, by the same argument: if the xmin
//   then matches, the only batch that can have committed since is this process's
//   previous one, whose streams memory knows (eviction, which could forget one, sends
//   the next batch the careful way).
// - So while the last batch found the xmin it expected (ahead_), the next one is
//   decided before it takes the lock, and its writes queue right behind the lock,
//   guarded by that xmin (write_ahead): holding the lock it only writes and commits.
//   Otherwise, or when the xmin is not the expected one after all, check_batch takes
//   the lock, reads what it needs (versions and lookups again only where memory is not
//   exact), then decides: one more round trip under the lock.
//
// Sends everything of the batch's transaction but its COMMIT, and returns once the
// batch holds the lock.
Result<void> PostgresEventStore::write_until_commit(Connection& conn, std::vector<es::StagedAppend>& batch) {
  auto found = to_look_up(batch);
  if (ahead_) {
    std::unordered_map<es::StreamId, es::StreamVersion> versions;
    const auto unknown = known_versions(batch, versions);
    if (auto r = look_up(conn, found, unknown, versions); !r) return r;
    auto ahead = write_ahead(conn, batch, found, versions);
    if (!ahead || *ahead) return ahead ? Result<void>() : Result<void>(ahead.error());
  }
  return check_batch(conn, batch, found);
}

std::string PostgresEventStore::known_versions(const std::vector<es::StagedAppend>& batch,
                                               std::unordered_map<es::StreamId, es::StreamVersion>& versions) const {
  ArrayLiteral unknown;
  std::unordered_set<std::string_view> asked;
  for (const auto& a : batch) {
    const auto& stream = a.request.stream_id;
    if (auto it = versions_.find(stream); it != versions_.end()) versions.emplace(stream, it->second.version);
    else if (a.request.fresh_stream_id) versions.emplace(stream, es::kNoStream);
    else if (asked.insert(stream.view()).second) unknown.add(stream.view());
  }
  return asked.empty() ? std::string() : unknown.done();
}

// The batch's event ids and idempotency keys, to look up.
PostgresEventStore::Found PostgresEventStore::to_look_up(const std::vector<es::StagedAppend>& batch) {
  Found found;
  ArrayLiteral event_ids, keys;
  for (const auto& a : batch) {
    if (!a.request.fresh_event_ids) {
      found.any_ids = true;
      for (const auto& e : a.request.events) event_ids.add(e.event_id);
    }
    if (a.request.idempotency) {
      found.any_keys = true;
      keys.add(a.request.idempotency->key);
    }
  }
  found.ids = event_ids.done();
  found.keys = keys.done();
  return found;
}

// Where the batch's event ids are stored, which of its idempotency keys exist, and the
// versions of the streams memory does not know, as of now (see above): a round trip of
// its own.
Result<void> PostgresEventStore::look_up(Connection& conn, Found& found, const std::string& unknown_streams,
                                         std::unordered_map<es::StreamId, es::StreamVersion>& versions) {
  std::vector<Query> reads;
  if (found.any_ids) reads.push_back({kFindEvents, {found.ids}});
  if (found.any_keys) reads.push_back({kFindKeys, {found.keys}});
  if (!unknown_streams.empty()) reads.push_back({kVersionsOf, {unknown_streams}});
  found.looked_up = true;
  if (reads.empty()) return {};
  auto read = conn.pipeline(reads);
  if (!read) return read.error();
  std::size_t at = 0;
  if (found.any_ids) found.load_stored((*read)[at++]);
  if (found.any_keys) found.load_keys((*read)[at++]);
  if (!unknown_streams.empty()) {
    const auto& fetched = (*read)[at];
    for (int i = 0; i < fetched.rows(); ++i)
      versions.emplace(es::StreamId(fetched.text(i, 0)), es::StreamVersion{fetched.int64(i, 1)});
  }
  return {};
}

void PostgresEventStore::Found::load_stored(const PgResult& r) {
  stored.clear();
  for (int i = 0; i < r.rows(); ++i)
    stored.emplace(r.text(i, 0), es::StoredEventRef{es::StreamId(r.text(i, 1)), es::StreamVersion{r.int64(i, 2)}, es::Position{r.int64(i, 3)}});
}

void PostgresEventStore::Found::load_keys(const PgResult& r) {
  used_keys.clear();
  for (int i = 0; i < r.rows(); ++i) used_keys.emplace(r.text(i, 0));
}

// Decides the batch from memory, as the head will be once this process's previous
// batch commits, and sends its writes behind the lock, guarded by the head's xmin.
// true: the xmin was the expected one, the writes stand; false: it was not (another
// writer came between), they wrote nothing and were rolled back, check_batch decides.
Result<bool> PostgresEventStore::write_ahead(Connection& conn, std::vector<es::StagedAppend>& batch,
                                             const Found& found,
                                             std::unordered_map<es::StreamId, es::StreamVersion>& versions) {
  es::Position head = head_position_;
  es::EventHash head_hash = head_hash_;
  auto used_keys = found.used_keys;
  std::vector<Query> tx{{"BEGIN", {}}, {kLockHead, {}}};
  for (auto& q : decide(batch, head, head_hash, versions, found.stored, used_keys, &head_tag_, true))
    tx.push_back(std::move(q));
  if (auto sent = conn.send(tx, 2, false); !sent) return sent.error();
  auto locked = conn.receive(2);
  if (!locked) return locked.error();
  const auto& lock = (*locked)[1];
  if (lock.text(0, 1) != head_tag_ || es::Position{lock.int64(0, 0)} != head_position_) {
    ahead_ = false;
    if (auto sent = conn.send({{"ROLLBACK", {}}}); !sent) return sent.error();
    if (auto rest = conn.receive(); !rest) return rest.error();
    return false;
  }
  for (auto& [stream, version] : versions) versions_[stream] = {version, ++version_uses_};
  if (head != head_position_) head_tag_ = xid32(lock.text(0, 2));
  head_position_ = head;
  head_hash_ = head_hash;
  return true;
}

// Takes the lock, reads what memory cannot tell exactly, decides and sends the writes.
Result<void> PostgresEventStore::check_batch(Connection& conn, std::vector<es::StagedAppend>& batch, Found& found) {
  ArrayLiteral streams, unknown_streams;
  for (const auto& a : batch) {
    streams.add(a.request.stream_id.view());
    if (!versions_.count(a.request.stream_id)) unknown_streams.add(a.request.stream_id.view());
  }
  // The lookups, if write_ahead has not made them, go before the lock.
  const bool look_now = !found.looked_up;
  std::vector<Query> reads{{"BEGIN", {}}};
  if (look_now && found.any_ids) reads.push_back({kFindEvents, {found.ids}});
  if (look_now && found.any_keys) reads.push_back({kFindKeys, {found.keys}});
  reads.push_back({kLockHead, {}});
  reads.push_back({kStreamVersions, {streams.done(), unknown_streams.done(), head_tag_}});
  if (found.any_ids) reads.push_back({kFindEventsAgain, {found.ids, head_tag_}});
  if (found.any_keys) reads.push_back({kFindKeysAgain, {found.keys, head_tag_}});
  auto read = conn.pipeline(reads);
  if (!read) return read.error();

  std::size_t at = 1;
  if (look_now && found.any_ids) found.load_stored((*read)[at++]);
  if (look_now && found.any_keys) found.load_keys((*read)[at++]);
  const auto& lock = (*read)[at++];
  const auto& fetched = (*read)[at++];
  const bool ours = lock.text(0, 1) == head_tag_;
  if (!ours) {
    // Someone else wrote: what memory knows may be stale, and the lookups ran again.
    versions_.clear();
    if (found.any_ids) found.load_stored((*read)[at]);
    if (found.any_keys) found.load_keys(read->back());
  }
  // The batch's streams as memory knows them, then as the database answered; decided on,
  // and written back to memory once.
  std::unordered_map<es::StreamId, es::StreamVersion> versions;
  for (const auto& a : batch)
    if (auto it = versions_.find(a.request.stream_id); it != versions_.end())
      versions.emplace(a.request.stream_id, it->second.version);
  for (int i = 0; i < fetched.rows(); ++i)
    versions[es::StreamId(fetched.text(i, 0))] = es::StreamVersion{fetched.int64(i, 1)};
  es::Position head{lock.int64(0, 0)};
  es::EventHash head_hash{};
  if (!es::hash_from_hex(lock.text(0, 3), head_hash)) return fail(Errc::corrupt, "the log head's hash is malformed");
  auto writes = decide(batch, head, head_hash, versions, found.stored, found.used_keys, nullptr, ours);
  for (auto& [stream, version] : versions) versions_[stream] = {version, ++version_uses_};
  // If this batch commits, the head's xmin is its transaction; if it writes nothing,
  // the xmin stays what it saw.
  head_tag_ = head != es::Position{lock.int64(0, 0)} ? xid32(lock.text(0, 2)) : std::string(lock.text(0, 1));
  head_position_ = head;
  head_hash_ = head_hash;
  ahead_ = ours;
  return conn.send(writes, 0, false);
}

// Checks each append against `versions` (of every stream of the batch), the stored
// event ids and the used keys, and the appends before it in the batch: sets `answer` on
// those it rejects or recognises as retries, numbers the others from `head` on,
// advancing `versions` and `head`. Answers the statements that write them, guarded by
// the head's xmin if `guard` is set. Each event's hashes chain on from `head_hash`, which
// advances with `head`. A chained append is refused as es::ChainGuard says;
// `earlier_batches_stand`: the head's last writer is the one this process expected.
std::vector<Query> PostgresEventStore::decide(std::vector<es::StagedAppend>& batch, es::Position& head,
                                              es::EventHash& head_hash,
                                              std::unordered_map<es::StreamId, es::StreamVersion>& versions,
                                              const std::unordered_map<std::string, es::StoredEventRef>& stored,
                                              std::unordered_set<std::string>& used_keys, const std::string* guard,
                                              bool earlier_batches_stand) {
  const es::Position first_head = head;
  ArrayLiteral positions, ids, stream_ids, stream_versions, types, schema_versions, data, metadata, recorded_at;
  ArrayLiteral prev_hashes, hashes;
  ArrayLiteral key, fingerprint, status, response, created_at;
  bool wrote_keys = false;
  es::ChainGuard chain(earlier_batches_stand);
  auto decide_one = [&](es::StagedAppend& a) {
    auto& req = a.request;
    a.answer.reset();  // from an attempt on a connection that was lost
    if (!chain.admits(a)) {
      a.answer = fail(es::version_conflict(req.stream_id, versions.at(req.stream_id), req.expected));
      return;
    }
    if (!req.fresh_event_ids) {
      std::vector<std::optional<es::StoredEventRef>> found;
      for (const auto& e : req.events) {
        auto it = stored.find(e.event_id);
        found.push_back(it == stored.end() ? std::nullopt : std::optional(it->second));
      }
      if ((a.answer = es::match_stored(req, found))) return;
    }
    if (req.idempotency && used_keys.count(req.idempotency->key)) {
      a.answer = fail(Errc::idempotency_key_reused, "idempotency key was already used");
      return;
    }
    auto& version = versions.at(req.stream_id);
    if (!req.expected.matches(version)) {
      a.answer = fail(es::version_conflict(req.stream_id, version, req.expected));
      return;
    }
    a.first_version = version + 1;
    a.first_position = head + 1;
    auto n = static_cast<std::int64_t>(req.events.size());
    version += n;
    head += n;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto& e = req.events[static_cast<std::size_t>(i)];
      const auto fields = es::hashed_fields(e, req.stream_id.view(), a.first_position + i, a.first_version + i,
                                            a.recorded_at_ms);
      prev_hashes.add(es::to_hex(head_hash));
      head_hash = es::event_hash(head_hash, fields);
      hashes.add(es::to_hex(head_hash));
      positions.add(fields.position.value());
      ids.add(fields.event_id);
      stream_ids.add(fields.stream_id);
      stream_versions.add(fields.version.value());
      types.add(fields.type);
      schema_versions.add(std::int64_t{fields.schema_version});
      data.add(fields.data);
      metadata.add(fields.metadata);
      recorded_at.add(fields.recorded_at_ms);
    }
    if (auto& k = req.idempotency) {
      if (req.render_response) k->response = req.render_response(a.result());
      used_keys.insert(k->key);
      wrote_keys = true;
      key.add(k->key);
      fingerprint.add(k->request_fingerprint);
      status.add(std::int64_t{k->status});
      response.add(k->response);
      created_at.add(k->created_at_ms ? k->created_at_ms : a.recorded_at_ms);
    }
  };
  for (auto& a : batch) {
    decide_one(a);
    chain.decided(a);
  }

  std::vector<Query> writes;
  if (head != first_head) {
    Query insert{guard ? kInsertEventsIf : kInsertEvents,
                 {positions.done(), ids.done(), stream_ids.done(), stream_versions.done(), types.done(),
                  schema_versions.done(), data.done(), metadata.done(), recorded_at.done(), prev_hashes.done(),
                  hashes.done()}};
    if (guard) insert.params.push_back(*guard);
    writes.push_back(std::move(insert));
  }
  if (wrote_keys) {
    Query insert{guard ? kInsertKeysIf : kInsertKeys,
                 {key.done(), fingerprint.done(), status.done(), response.done(), created_at.done()}};
    if (guard) insert.params.push_back(*guard);
    writes.push_back(std::move(insert));
  }
  if (head != first_head) {
    writes.push_back({guard ? kMoveHeadIf : kMoveHead, {to_string(head), es::to_hex(head_hash)}});
    if (guard) writes.back().params.push_back(*guard);
  }
  return writes;
}

}  // namespace orderflow::postgres
