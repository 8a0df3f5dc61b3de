#include "app/projections/read_model_db.h"

#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/log.h"

namespace orderflow::app::projections {

using es::OnRow;
using es::Row;
using es::SqlValue;
using es::WriteTransaction;

// The statements of every projection on the table of copies (read_models) and on the
// bus versions of its copies, in the database's dialect.
struct TableProjection::Sql {
  explicit Sql(const es::SqlDialect& d)
      : read_models_table("CREATE TABLE IF NOT EXISTS read_models (projection " + text(d) + ", generation " +
                          integer(d) + ", position " + integer(d) + ", live " + integer(d) +
                          ", PRIMARY KEY (projection, generation))" + d.table_options),
        bus_versions_table("CREATE TABLE IF NOT EXISTS bus_versions (projection " + text(d) + ", generation " +
                           integer(d) + ", stream_id " + text(d) + ", version " + integer(d) +
                           ", PRIMARY KEY (projection, generation, stream_id))" + d.table_options),
        save_position("UPDATE read_models SET position = " + d.param(1) + " WHERE projection = " + d.param(2) +
                      " AND generation = " + d.param(3)),
        raise_position(save_position + " AND position < " + d.param(1)),
        position("SELECT position FROM read_models WHERE projection = " + d.param(1) +
                 " AND generation = " + d.param(2)),
        live("SELECT generation, position FROM read_models WHERE projection = " + d.param(1) + " AND live = 1"),
        unused("SELECT generation FROM read_models WHERE projection = " + d.param(1) + " AND live = 0"),
        next_generation("SELECT coalesce(max(generation), 0) + 1 FROM read_models WHERE projection = " + d.param(1)),
        register_copy("INSERT INTO read_models (projection, generation, position, live) VALUES (" + d.param(1) + ", " +
                      d.param(2) + ", 0, " + d.param(3) + ")"),
        unregister_copy("DELETE FROM read_models WHERE projection = " + d.param(1) + " AND generation = " + d.param(2)),
        drop_bus_versions("DELETE FROM bus_versions WHERE projection = " + d.param(1) +
                          " AND generation = " + d.param(2)),
        drop_older_bus_versions("DELETE FROM bus_versions WHERE projection = " + d.param(1) +
                                " AND generation < (SELECT coalesce(min(generation), 9223372036854775807) FROM "
                                "read_models WHERE projection = " +
                                d.param(1) + ")"),
        swap("UPDATE read_models SET live = CASE WHEN generation = " + d.param(1) +
             " THEN 1 ELSE 0 END WHERE projection = " + d.param(2)),
        bus_version("SELECT version FROM bus_versions WHERE projection = " + d.param(1) +
                    " AND generation = " + d.param(2) + " AND stream_id = " + d.param(3)),
        any_bus_version("SELECT 1 FROM bus_versions WHERE projection = " + d.param(1) +
                        " AND generation = " + d.param(2) + " LIMIT 1") {
    for (const int n : kBusVersionsAtOnce) {
      std::string rows;
      for (int i = 0; i < n; ++i)
        rows += (i ? ", (" : "(") + d.param(1) + ", " + d.param(2) + ", " + d.param(3 + 2 * i) + ", " +
                d.param(4 + 2 * i) + ")";
      save_bus_versions.push_back("INSERT INTO bus_versions (projection, generation, stream_id, version) VALUES " +
                                  rows +
                                  " ON CONFLICT (projection, generation, stream_id) "
                                  "DO UPDATE SET version = excluded.version");
      bus_versions_of.push_back("SELECT stream_id, version FROM bus_versions WHERE projection = " + d.param(1) +
                                " AND generation = " + d.param(2) + " AND stream_id IN (" + d.params(3, 2 + n) + ")");
      std::string opened;
      for (int i = 0; i < n; ++i)
        opened += (i ? ", (" : "(") + d.param(1) + ", " + d.param(2) + ", " + d.param(3 + i) + ", 0)";
      claim_bus_versions.push_back("INSERT INTO bus_versions (projection, generation, stream_id, version) VALUES " +
                                   opened +
                                   " ON CONFLICT (projection, generation, stream_id) DO NOTHING RETURNING stream_id");
    }
  }

  // How many streams' versions one statement of bus_versions_of looks up: a few sizes, so
  // each connection prepares few statements (a shorter list is padded with its last stream).
  static constexpr std::array<int, 4> kBusVersionsAtOnce{1, 8, 64, 500};

  // A NOT NULL column of either type.
  static std::string text(const es::SqlDialect& d) { return d.text + " NOT NULL"; }
  static std::string integer(const es::SqlDialect& d) { return d.integer + " NOT NULL"; }

  const std::string read_models_table, bus_versions_table;
  // Parameters: position, projection, generation.
  const std::string save_position, raise_position;
  const std::string position;         // projection, generation
  const std::string live;             // projection
  const std::string unused;           // projection
  const std::string next_generation;  // projection
  const std::string register_copy;    // projection, generation, live
  const std::string unregister_copy;  // projection, generation
  const std::string drop_bus_versions;  // projection, generation
  // projection: the rows of copies older than every registered one (left by a dropped copy
  // before its rows were deleted with it)
  const std::string drop_older_bus_versions;
  const std::string swap;             // generation to make live, projection
  const std::string bus_version;      // projection, generation, stream
  const std::string any_bus_version;  // projection, generation: a row if the copy has any
  // Per kBusVersionsAtOnce: projection, generation, then that many streams; answers their
  // stream_id and version (none for a stream without one).
  std::vector<std::string> bus_versions_of;
  // Per kBusVersionsAtOnce: projection, generation, then that many (stream, version) pairs,
  // each saved (rows of distinct streams: one statement cannot update a row twice).
  std::vector<std::string> save_bus_versions;
  // Per kBusVersionsAtOnce: projection, generation, then that many streams, each given the
  // version 0 unless it has a version; answers the streams that had none.
  std::vector<std::string> claim_bus_versions;
};

std::string with_generation(std::string_view sql, std::int64_t generation) {
  const auto suffix = "_g" + std::to_string(generation);
  std::string out;
  out.reserve(sql.size() + 16);
  bool literal = false;  // inside '…' (a quote in one is written twice: it ends and starts one)
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] == '\'') literal = !literal;
    if (!literal && sql.substr(i).starts_with(kGeneration)) {
      out += suffix;
      i += kGeneration.size() - 1;
    } else {
      out += sql[i];
    }
  }
  return out;
}

BatchedRows::BatchedRows(std::function<std::string(int rows)> sql, int columns)
    : make_sql_(std::move(sql)), columns_(columns) {}

void BatchedRows::add(std::initializer_list<Value> row) {
  OF_CHECK(static_cast<int>(row.size()) == columns_, "BatchedRows::add: a row of the wrong width");
  values_.insert(values_.end(), row);
}

void BatchedRows::add(std::vector<Value> row) {
  OF_CHECK(static_cast<int>(row.size()) == columns_, "BatchedRows::add: a row of the wrong width");
  values_.insert(values_.end(), std::make_move_iterator(row.begin()), std::make_move_iterator(row.end()));
}

const std::string& BatchedRows::sql(int rows) {
  auto& sql = sql_[static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(rows)))];
  if (sql.empty()) sql = make_sql_(rows);
  return sql;
}

Result<void> BatchedRows::write(es::WriteTransaction& tx) {
  const auto values = std::exchange(values_, {});
  std::vector<SqlValue> params;
  for (std::size_t from = 0; from < values.size();) {
    const auto left = static_cast<unsigned>((values.size() - from) / static_cast<std::size_t>(columns_));
    const int rows = static_cast<int>(std::min(std::bit_floor(left), static_cast<unsigned>(kMostRows)));
    const auto to = from + static_cast<std::size_t>(rows * columns_);
    params.clear();
    for (auto i = from; i < to; ++i)
      params.push_back(std::visit([](const auto& v) { return SqlValue(v); }, values[i]));
    OF_RETURN_IF_ERROR(tx.run(sql(rows), params));
    from = to;
  }
  return {};
}

std::string values_rows(const es::SqlDialect& d, int rows, int columns) {
  std::string out;
  for (int r = 0; r < rows; ++r)
    out += (r ? ", (" : "(") + d.params(r * columns + 1, (r + 1) * columns) + ")";
  return out;
}

class TableProjection::Copy final : public es::ReadModel {
 public:
  // The stream id of the bus_versions row that marks a copy fed from the bus (no stream's id
  // is empty; its version is kNoStream).
  static constexpr std::string_view kBusFed = "";

  Copy(TableProjection& p, std::int64_t generation, std::unique_ptr<CopyWriter> writer)
      : p_(p), generation_(generation), writer_(std::move(writer)) {}

  std::int64_t generation() const { return generation_; }

  Result<std::vector<std::size_t>> apply_delivered(std::span<const es::RecordedEvent> events) {
    // A cache, not a record: past kMaxCachedVersions streams it is dropped whole and read
    // again a batch at a time (a bus-fed projector meets a new stream per order placed, so
    // kept whole it grew by every stream ever applied).
    if (versions_.size() > kMaxCachedVersions) versions_.clear();
    std::vector<std::size_t> early;
    std::unordered_map<es::StreamId, es::StreamVersion> reached;  // by this batch
    auto r = p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) -> Result<void> {
      OF_ASSIGN_OR_RETURN(const auto through, apply_by_stream(tx, events, early, reached));
      if (through == 0) return {};
      const SqlValue params[] = {through.value(), p_.name_, generation_};
      return tx.run(p_.sql_->raise_position, params);
    });
    if (!r) {
      writer_->rolled_back();
      versions_.clear();
      return fail(r.error());
    }
    for (const auto& [stream, version] : reached) versions_[stream] = version;
    return early;
  }

  // The committed version of `stream` in this copy's bus versions, read apart from the
  // batch in hand (any thread; the cache above is the writer's).
  Result<es::StreamVersion> delivered_version(const es::StreamId& stream) {
    es::StreamVersion version = es::kNoStream;
    const SqlValue params[] = {p_.name_, generation_, stream.view()};
    OF_RETURN_IF_ERROR(p_.db_.query(p_.sql_->bus_version, params,
                                    [&](const Row& row) { version = es::StreamVersion{row.int64(0)}; }));
    return version;
  }

  // Readies the copy to be fed from the bus; answers the highest position it applied. It
  // gets the row kBusFed, which marks it bus-fed before it applied anything of its own (its
  // position may be raised past events of its categories the bus has not brought: it must
  // not pass for a watermark). A copy the log fed (no bus versions, its position a
  // watermark) also gets, for each stream with an event at or below its position, the
  // version it reached there (read from `store`): the bus's messages of those streams then
  // apply past them, where they would have waited for versions the log had applied.
  Result<es::Position> prepare_for_bus(es::EventStore* store) {
    OF_ASSIGN_OR_RETURN(const auto feed, stored_feed());
    const auto stored = feed.position;
    if (feed.bus_fed) return stored;
    std::vector<std::pair<std::string_view, std::int64_t>> versions{{kBusFed, es::kNoStream.value()}};
    if (stored == 0) {
      OF_RETURN_IF_ERROR(
          p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) { return save_versions(tx, versions); }));
      return stored;
    }
    if (!store)
      return fail(Errc::unavailable, "read model " + p_.name_ + " was folded from the log through position " +
                                         to_string(stored) +
                                         "; feeding it from the bus needs the event store, to know where each "
                                         "of its streams stands");
    OF_ASSIGN_OR_RETURN(const auto reached, es::stream_versions_at(*store, p_.filter_, stored));
    for (const auto& [stream, version] : reached) versions.emplace_back(stream.view(), version.value());
    OF_RETURN_IF_ERROR(p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) { return save_versions(tx, versions); }));
    log::info("read-models", "a read model folded from the log is now fed from the bus",
              {{"projection", p_.name_}, {"position", to_string(stored)}, {"streams", std::to_string(reached.size())}});
    return stored;
  }

  // The position through which the copy has applied the log. A copy the bus fed (it has
  // bus versions) applied streams apart, as the bus brought them: its stored position is
  // the highest it applied, and events of other streams below it may be missing. It
  // answers 0, so the log is applied to it from the start, each stream past the version
  // the bus applied (apply below), until it passes that highest position: then its bus
  // versions are deleted and it is a copy the log feeds.
  Result<es::Position> position() override {
    OF_ASSIGN_OR_RETURN(const auto feed, stored_feed());
    return feed.bus_fed ? es::Position{0} : feed.position;
  }

  Result<es::Position> highest_applied() override { return stored_position(); }

  void forget() {
    writer_->rolled_back();
    versions_.clear();
    applied_.reset();
    bus_highest_.reset();
  }

  // The highest position applied: position() for a copy the log feeds.
  Result<es::Position> stored_position() {
    es::Position position{0};
    const SqlValue params[] = {p_.name_, generation_};
    OF_RETURN_IF_ERROR(
        p_.db_.query(p_.sql_->position, params, [&](const Row& row) { position = es::Position{row.int64(0)}; }));
    return position;
  }

  // Events at or below the copy's position are dropped here: a writer only ever sees events
  // its copy has not applied (FoldWriter relies on it for streams' first events).
  Result<void> apply(std::span<const es::RecordedEvent> events, es::Position through) override {
    if (!applied_) {
      OF_ASSIGN_OR_RETURN(const auto feed, stored_feed());
      applied_ = feed.bus_fed ? es::Position{0} : feed.position;
      if (feed.bus_fed) bus_highest_ = feed.position;
    }
    if (through <= *applied_) return {};
    auto fresh = std::find_if(events.begin(), events.end(), [&](const auto& e) { return e.position > *applied_; });
    events = events.subspan(static_cast<std::size_t>(fresh - events.begin()));
    if (bus_highest_) return apply_after_bus(events, through);
    auto r = p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) -> Result<void> {
      if (auto r = writer_->apply(tx, events); !r) return r;
      const SqlValue params[] = {through.value(), p_.name_, generation_};
      return tx.run(p_.sql_->save_position, params);
    });
    if (r)
      applied_ = through;
    else
      writer_->rolled_back();
    return r;
  }

 private:
  // apply() on a copy the bus fed (bus_highest_: the highest position it applied): the
  // log's events each past its stream's bus version, which they then advance. The batch
  // that reaches bus_highest_ deletes the bus versions and records its `through` as the
  // copy's position; before it the stored position stays, so a restart begins from the
  // log's start again (applying nothing twice).
  Result<void> apply_after_bus(std::span<const es::RecordedEvent> events, es::Position through) {
    if (versions_.size() > kMaxCachedVersions) versions_.clear();
    std::vector<std::size_t> early;
    std::unordered_map<es::StreamId, es::StreamVersion> reached;
    const bool done = through >= *bus_highest_;
    auto r = p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) -> Result<void> {
      OF_RETURN_IF_ERROR(apply_by_stream(tx, events, early, reached));
      if (!early.empty()) {
        const auto& e = events[early.front()];
        return fail(Errc::corrupt, "event " + to_string(e.version) + " of " + e.stream_id.str() + " at position " +
                                       to_string(e.position) + " follows a version of its stream that read model " +
                                       p_.name_ + " has not applied (it was fed from the bus)");
      }
      if (!done) return {};
      const SqlValue copy[] = {p_.name_, generation_};
      OF_RETURN_IF_ERROR(tx.run(p_.sql_->drop_bus_versions, copy));
      const SqlValue params[] = {through.value(), p_.name_, generation_};
      return tx.run(p_.sql_->save_position, params);
    });
    if (!r) {
      writer_->rolled_back();
      versions_.clear();
      return r;
    }
    applied_ = through;
    if (done) {
      bus_highest_.reset();
      versions_.clear();
      log::info("read-models",
                "a read model fed from the bus has applied the log through the highest position "
                "it applied from the bus: the log feeds it now",
                {{"projection", p_.name_}, {"position", to_string(through)}});
    } else {
      for (const auto& [stream, version] : reached) versions_[stream] = version;
    }
    return {};
  }

  // Inside `tx`: applies each of `events` (each stream's in version order, streams
  // interleaved) that is its stream's next version past its bus version, and saves the
  // versions the streams reached (in `reached` too). An event at or below its stream's
  // version is skipped; one past the next is not applied and its index goes to `early`.
  // Answers the highest position applied (0: none).
  Result<es::Position> apply_by_stream(WriteTransaction& tx, std::span<const es::RecordedEvent> events,
                                       std::vector<std::size_t>& early,
                                       std::unordered_map<es::StreamId, es::StreamVersion>& reached) {
    early.clear();
    reached.clear();
    std::vector<es::RecordedEvent> fresh;
    std::unordered_set<std::string_view> claimed;  // given version 0 by load_versions
    es::Position through{0};
    OF_RETURN_IF_ERROR(load_versions(tx, events, claimed));
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      if (!tracks(e)) continue;
      auto it = reached.find(e.stream_id);
      if (it == reached.end()) {
        OF_ASSIGN_OR_RETURN(auto stored, stored_version(tx, e.stream_id));
        it = reached.emplace(e.stream_id, stored).first;
      }
      if (e.version <= it->second) continue;  // applied before
      if (e.version > it->second + 1) {
        early.push_back(i);
        continue;
      }
      it->second = e.version;
      through = std::max(through, e.position);
      if (p_.filter_.matches(e)) fresh.push_back(e);
    }
    OF_RETURN_IF_ERROR(writer_->apply(tx, fresh));
    std::vector<std::pair<std::string_view, std::int64_t>> changed;
    for (const auto& [stream, version] : reached)
      if (claimed.contains(stream.view()) ? version != es::StreamVersion{0} : versions_[stream] != version)
        changed.emplace_back(stream.view(), version.value());
    OF_RETURN_IF_ERROR(save_versions(tx, changed));
    return through;
  }

  // The stored position, and whether the bus fed this copy (then that position is only the
  // highest it applied): it has bus versions (kBusFed at least, since prepare_for_bus; a
  // copy of an older build has the versions of the streams it applied).
  struct StoredFeed {
    es::Position position;
    bool bus_fed = false;
  };
  Result<StoredFeed> stored_feed() {
    StoredFeed feed;
    OF_ASSIGN_OR_RETURN(feed.position, stored_position());
    const SqlValue params[] = {p_.name_, generation_};
    OF_RETURN_IF_ERROR(p_.db_.query(p_.sql_->any_bus_version, params, [&](const Row&) { feed.bus_fed = true; }));
    return feed;
  }

  // Whether the bus versions of `e`'s stream are kept: its category is the projection's.
  bool tracks(const es::RecordedEvent& e) const { return p_.filter_.has_category(e.stream_id.category()); }

  // The committed versions of the streams of `events` not looked at yet, into versions_: a
  // few statements for a batch rather than one a stream (each a round trip on PostgreSQL,
  // where a batch of new orders made hundreds). A stream whose first event here is its
  // first (version 0; a new order's) is claimed instead of looked up: given version 0 in
  // bus_versions unless it has a version, so a new stream costs one insert and no lookup
  // (a claimed stream is in `claimed`, its cached version kNoStream: the batch applies its
  // first event, and its row is saved again only if the batch takes it past 0). One that
  // had a version (a redelivery) is looked up with the others.
  Result<void> load_versions(WriteTransaction& tx, std::span<const es::RecordedEvent> events,
                             std::unordered_set<std::string_view>& claimed) {
    std::vector<std::string_view> opening, missing;
    std::unordered_set<std::string_view> seen;
    for (const auto& e : events)
      if (tracks(e) && !versions_.contains(e.stream_id) && seen.insert(e.stream_id.view()).second)
        (e.version == es::StreamVersion{0} ? opening : missing).push_back(e.stream_id.view());
    OF_RETURN_IF_ERROR(in_chunks(opening, [&](std::size_t k, std::span<const SqlValue> params) {
      return tx.query(p_.sql_->claim_bus_versions[k], params, [&](const Row& row) {
        const auto it = seen.find(row.text(0));
        if (it == seen.end()) return;  // not asked for: cannot happen
        claimed.insert(*it);
        versions_[es::StreamId(std::string(*it))] = es::kNoStream;
      });
    }));
    for (const auto stream : opening)
      if (!claimed.contains(stream)) missing.push_back(stream);
    return in_chunks(missing, [&](std::size_t k, std::span<const SqlValue> params) {
      for (std::size_t i = 2; i < params.size(); ++i)
        versions_[es::StreamId(std::string(std::get<std::string_view>(params[i])))] = es::kNoStream;
      return tx.query(p_.sql_->bus_versions_of[k], params, [&](const Row& row) {
        versions_[es::StreamId(std::string(row.text(0)))] = es::StreamVersion{row.int64(1)};
      });
    });
  }

  // Runs `statement(k, params)` over `streams` in chunks of Sql::kBusVersionsAtOnce[k]
  // streams (params: projection, generation, the chunk's streams): as many of the largest
  // size as fit, then of the smaller ones; a last few streams go in one statement of the
  // second size, padded with the last stream. (Taking the smallest size that held all that
  // was left padded 65 streams to 500: on PostgreSQL most rows the claims wrote were padding.)
  Result<void> in_chunks(std::span<const std::string_view> streams,
                         const std::function<Result<void>(std::size_t, std::span<const SqlValue>)>& statement) {
    std::vector<SqlValue> params;
    for (std::size_t from = 0; from < streams.size();) {
      const auto [k, n] = next_chunk(streams.size() - from, true);
      params.assign({p_.name_, generation_});
      for (std::size_t i = 0; i < chunk_size(k); ++i) params.emplace_back(streams[from + std::min(i, n - 1)]);
      OF_RETURN_IF_ERROR(statement(k, params));
      from += n;
    }
    return {};
  }

  static std::size_t chunk_size(std::size_t k) { return static_cast<std::size_t>(Sql::kBusVersionsAtOnce[k]); }

  // The statement size for `left` items, and how many of them it takes: the largest size
  // that they fill; with `pad`, a few (fewer than the second size) all at once in that size.
  static std::pair<std::size_t, std::size_t> next_chunk(std::size_t left, bool pad) {
    std::size_t k = Sql::kBusVersionsAtOnce.size() - 1;
    while (k > 0 && chunk_size(k) > left) --k;
    if (pad && k == 0 && left > 1) k = 1;
    return {k, std::min(chunk_size(k), left)};
  }

  // Saves the versions `changed` reached (distinct streams) in a few statements: as many of
  // the largest size as fit, then of the smaller ones.
  Result<void> save_versions(WriteTransaction& tx, std::span<const std::pair<std::string_view, std::int64_t>> changed) {
    std::vector<SqlValue> params;
    for (std::size_t from = 0; from < changed.size();) {
      const auto [k, n] = next_chunk(changed.size() - from, false);
      params.assign({p_.name_, generation_});
      for (std::size_t i = 0; i < n; ++i) {
        params.emplace_back(changed[from + i].first);
        params.emplace_back(changed[from + i].second);
      }
      OF_RETURN_IF_ERROR(tx.run(p_.sql_->save_bus_versions[k], params));
      from += n;
    }
    return {};
  }

  // The committed version of `stream` in this copy's bus versions (kNoStream: none).
  Result<es::StreamVersion> stored_version(WriteTransaction& tx, const es::StreamId& stream) {
    if (auto it = versions_.find(stream); it != versions_.end()) return it->second;
    es::StreamVersion version = es::kNoStream;
    const SqlValue params[] = {p_.name_, generation_, stream.view()};
    OF_RETURN_IF_ERROR(
        tx.query(p_.sql_->bus_version, params, [&](const Row& row) { version = es::StreamVersion{row.int64(0)}; }));
    versions_[stream] = version;
    return version;
  }

  TableProjection& p_;
  std::int64_t generation_;
  std::unique_ptr<CopyWriter> writer_;
  std::optional<es::Position> applied_;  // committed position, once read
  // A copy the bus fed, while the log catches it up: the highest position the bus applied.
  std::optional<es::Position> bus_highest_;
  // Committed bus versions of the streams looked at (cleared when a batch rolls back, and
  // past kMaxCachedVersions streams).
  static constexpr std::size_t kMaxCachedVersions = 65536;
  std::unordered_map<es::StreamId, es::StreamVersion> versions_;
};

TableProjection::TableProjection(es::ReadModelDb& db, std::string name, es::EventFilter filter,
                                 std::vector<std::string> schema, std::vector<std::string> tables)
    : db_(db), name_(std::move(name)), filter_(std::move(filter)), schema_(std::move(schema)),
      tables_(std::move(tables)), sql_(std::make_unique<const Sql>(db.dialect())) {}

TableProjection::~TableProjection() = default;

Result<void> TableProjection::create_read_models() {
  if (read_models_created_) return {};
  // bus_versions with it: dropping a copy deletes the copy's rows there.
  const std::string tables[] = {sql_->read_models_table, sql_->bus_versions_table};
  if (auto r = db_.create_tables(tables); !r) return r;
  read_models_created_ = true;
  return {};
}

// The tables of the copy of `generation`, or (indexes) its indexes.
Result<void> TableProjection::create_schema(WriteTransaction& tx, std::int64_t generation, bool indexes) {
  for (const auto& create : schema_)
    if (create.starts_with("CREATE INDEX") == indexes)
      if (auto r = tx.run(with_generation(create, generation)); !r) return r;
  return {};
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::make_copy(std::int64_t generation, bool indexed) {
  OF_RETURN_IF_ERROR(db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = create_schema(tx, generation, false); !r) return r;
    if (indexed) return create_schema(tx, generation, true);
    return {};
  }));
  return std::unique_ptr<es::ReadModel>(new Copy(*this, generation, writer(generation)));
}

Result<void> TableProjection::drop_unused(WriteTransaction& tx) {
  std::vector<std::int64_t> generations;
  const SqlValue name[] = {name_};
  if (auto r = tx.query(sql_->unused, name, [&](const Row& row) { generations.push_back(row.int64(0)); });
      !r)
    return r;
  for (auto g : generations) {
    for (const auto& table : tables_)
      if (auto r = tx.run("DROP TABLE IF EXISTS " + with_generation(table, g)); !r) return r;
    const SqlValue params[] = {name_, g};
    if (auto r = tx.run(sql_->drop_bus_versions, params); !r) return r;
    if (auto r = tx.run(sql_->unregister_copy, params); !r) return r;
  }
  return tx.run(sql_->drop_older_bus_versions, name);
}

Result<std::int64_t> TableProjection::register_copy(WriteTransaction& tx, bool live) {
  std::int64_t generation = 0;
  const SqlValue params[] = {name_};
  OF_RETURN_IF_ERROR(tx.query(sql_->next_generation, params, [&](const Row& row) { generation = row.int64(0); }));
  // A generation number comes back once its copy is dropped: rows a dropped copy left in
  // bus_versions (before they were deleted with it) must not pass for the new copy's.
  const SqlValue copy[] = {name_, generation};
  OF_RETURN_IF_ERROR(tx.run(sql_->drop_bus_versions, copy));
  const SqlValue insert[] = {name_, generation, std::int64_t{live ? 1 : 0}};
  OF_RETURN_IF_ERROR(tx.run(sql_->register_copy, insert));
  return generation;
}

Result<es::Position> TableProjection::follow() {
  OF_RETURN_IF_ERROR(create_read_models());
  std::optional<std::pair<std::int64_t, es::Position>> live;
  const SqlValue params[] = {name_};
  OF_RETURN_IF_ERROR(db_.query(sql_->live, params, [&](const Row& row) { live.emplace(row.int64(0), row.int64(1)); }));
  if (!live) return es::Position{0};
  live_ = live->first;
  return live->second;
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::open_live() {
  OF_RETURN_IF_ERROR(create_read_models());
  std::int64_t generation = 0;
  OF_RETURN_IF_ERROR(db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = drop_unused(tx); !r) return r;
    const SqlValue params[] = {name_};
    if (auto r = tx.query(sql_->live, params, [&](const Row& row) { generation = row.int64(0); }); !r) return r;
    if (generation) return {};
    OF_ASSIGN_OR_RETURN(auto g, register_copy(tx, true));
    generation = g;
    return {};
  }));
  live_ = generation;
  return make_copy(generation, true);
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::create_copy() {
  OF_RETURN_IF_ERROR(create_read_models());
  std::int64_t generation = 0;
  OF_RETURN_IF_ERROR(db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = drop_unused(tx); !r) return r;
    OF_ASSIGN_OR_RETURN(auto g, register_copy(tx, false));
    generation = g;
    return {};
  }));
  return make_copy(generation, false);
}

Result<std::vector<std::size_t>> TableProjection::apply_delivered(es::ReadModel& live,
                                                                  std::span<const es::RecordedEvent> events) {
  return static_cast<Copy&>(live).apply_delivered(events);
}

Result<es::StreamVersion> TableProjection::delivered_version(es::ReadModel& live, const es::StreamId& stream) {
  return static_cast<Copy&>(live).delivered_version(stream);
}

Result<es::Position> TableProjection::prepare_for_bus(es::ReadModel& live, es::EventStore* store) {
  return static_cast<Copy&>(live).prepare_for_bus(store);
}

void TableProjection::forget(es::ReadModel& live) { static_cast<Copy&>(live).forget(); }

Result<void> TableProjection::raise_delivered_position(es::ReadModel& live, es::Position position) {
  return db_.transaction(name_, [&](WriteTransaction& tx) {
    const SqlValue params[] = {position.value(), name_, static_cast<Copy&>(live).generation()};
    return tx.run(sql_->raise_position, params);
  });
}

Result<void> TableProjection::promote(es::ReadModel& copy) {
  const auto generation = static_cast<Copy&>(copy).generation();
  if (auto r = db_.transaction(name_, [&](WriteTransaction& tx) { return create_schema(tx, generation, true); }); !r)
    return r;
  // Queries in flight finish on the old copy first; later ones read the new one.
  std::unique_lock lk(swap_mu_);
  auto swapped = db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    const SqlValue params[] = {generation, name_};
    if (auto r = tx.run(sql_->swap, params); !r) return r;
    return drop_unused(tx);
  });
  if (!swapped) return swapped;
  live_ = generation;
  return {};
}

}  // namespace orderflow::app::projections
