#include "app/projections/read_model_db.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

namespace orderflow::app::projections {

namespace {
const char* const kBusVersionsTable =
    "CREATE TABLE IF NOT EXISTS bus_versions (projection TEXT NOT NULL, generation INTEGER NOT NULL, "
    "stream_id TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (projection, generation, stream_id)) STRICT";
}  // namespace

const char* const kReadModelsTable =
    "CREATE TABLE IF NOT EXISTS read_models (projection TEXT NOT NULL, generation INTEGER NOT NULL, "
    "position INTEGER NOT NULL, live INTEGER NOT NULL, PRIMARY KEY (projection, generation)) STRICT";

std::string with_generation(std::string_view sql, std::int64_t generation) {
  const auto suffix = "_g" + std::to_string(generation);
  std::string out;
  out.reserve(sql.size() + 16);
  for (char c : sql) {
    if (c == '$')
      out += suffix;
    else
      out += c;
  }
  return out;
}

class TableProjection::Copy final : public es::ReadModel {
 public:
  Copy(TableProjection& p, std::int64_t generation, std::unique_ptr<CopyWriter> writer)
      : p_(p), generation_(generation), writer_(std::move(writer)),
        save_("UPDATE read_models SET position = ?1 WHERE projection = ?2 AND generation = ?3") {}

  std::int64_t generation() const { return generation_; }

  Result<std::vector<std::size_t>> apply_delivered(std::span<const es::RecordedEvent> events) {
    std::vector<std::size_t> early;
    std::vector<es::RecordedEvent> fresh;
    std::unordered_map<std::string, es::StreamVersion> reached;  // by this batch
    es::Position through{0};
    auto r = p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) -> Result<void> {
      if (!bus_table_) {
        if (auto r = tx.run(kBusVersionsTable); !r) return r;
        bus_table_ = true;
      }
      for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        if (!tracks(e)) continue;
        auto it = reached.find(e.stream_id);
        if (it == reached.end()) {
          auto stored = stored_version(tx, e.stream_id);
          if (!stored) return fail(stored.error());
          it = reached.emplace(e.stream_id, *stored).first;
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
      if (auto r = writer_->apply(tx, fresh); !r) return r;
      for (const auto& [stream, version] : reached) {
        if (versions_[stream] == version) continue;
        const SqlValue params[] = {p_.name_, generation_, stream, version.value()};
        if (auto r = tx.run("INSERT INTO bus_versions (projection, generation, stream_id, version) "
                            "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection, generation, stream_id) "
                            "DO UPDATE SET version = excluded.version",
                            params);
            !r)
          return r;
      }
      if (through == 0) return {};
      const SqlValue params[] = {through.value(), p_.name_, generation_};
      return tx.run("UPDATE read_models SET position = ?1 WHERE projection = ?2 AND generation = ?3 AND position < ?1",
                    params);
    });
    if (!r) {
      writer_->rolled_back();
      versions_.clear();
      return fail(r.error());
    }
    for (const auto& [stream, version] : reached) versions_[stream] = version;
    return early;
  }

  Result<es::Position> position() override {
    es::Position position{0};
    const SqlValue params[] = {p_.name_, generation_};
    auto r = p_.db_.query("SELECT position FROM read_models WHERE projection = ?1 AND generation = ?2", params,
                          [&](const Row& row) { position = es::Position{row.int64(0)}; });
    if (!r) return fail(r.error());
    return position;
  }

  // Events at or below the copy's position are dropped here: a writer only ever sees events
  // its copy has not applied (FoldWriter relies on it for streams' first events).
  Result<void> apply(std::span<const es::RecordedEvent> events, es::Position through) override {
    if (!applied_) {
      auto stored = position();
      if (!stored) return fail(stored.error());
      applied_ = *stored;
    }
    if (through <= *applied_) return {};
    auto fresh = std::find_if(events.begin(), events.end(), [&](const auto& e) { return e.position > *applied_; });
    events = events.subspan(static_cast<std::size_t>(fresh - events.begin()));
    auto r = p_.db_.transaction(p_.name_, [&](WriteTransaction& tx) -> Result<void> {
      if (auto r = writer_->apply(tx, events); !r) return r;
      const SqlValue params[] = {through.value(), p_.name_, generation_};
      return tx.run(save_, params);
    });
    if (r)
      applied_ = through;
    else
      writer_->rolled_back();
    return r;
  }

 private:
  // Whether the bus versions of `e`'s stream are kept: its category is the projection's.
  bool tracks(const es::RecordedEvent& e) const {
    const auto& categories = p_.filter_.categories;
    return categories.empty() ||
           std::find(categories.begin(), categories.end(), es::category_of(e.stream_id)) != categories.end();
  }

  // The committed version of `stream` in this copy's bus versions (kNoStream: none).
  Result<es::StreamVersion> stored_version(WriteTransaction& tx, const std::string& stream) {
    if (auto it = versions_.find(stream); it != versions_.end()) return it->second;
    es::StreamVersion version = es::kNoStream;
    const SqlValue params[] = {p_.name_, generation_, stream};
    if (auto r = tx.query("SELECT version FROM bus_versions WHERE projection = ?1 AND generation = ?2 AND stream_id = ?3",
                          params, [&](const Row& row) { version = es::StreamVersion{row.int64(0)}; });
        !r)
      return fail(r.error());
    versions_[stream] = version;
    return version;
  }

  TableProjection& p_;
  std::int64_t generation_;
  std::unique_ptr<CopyWriter> writer_;
  const std::string save_;
  std::optional<es::Position> applied_;  // committed position, once read
  bool bus_table_ = false;  // bus_versions exists
  // Committed bus versions of the streams looked at (cleared when a batch rolls back).
  std::unordered_map<std::string, es::StreamVersion> versions_;
};

TableProjection::TableProjection(ReadModelDb& db, std::string name, es::EventFilter filter,
                                 std::vector<std::string> schema, std::vector<std::string> tables)
    : db_(db), name_(std::move(name)), filter_(std::move(filter)), schema_(std::move(schema)),
      tables_(std::move(tables)) {}

// The tables of the copy of `generation`, or (indexes) its indexes.
Result<void> TableProjection::create_schema(WriteTransaction& tx, std::int64_t generation, bool indexes) {
  for (const auto& create : schema_)
    if (create.starts_with("CREATE INDEX") == indexes)
      if (auto r = tx.run(with_generation(create, generation)); !r) return r;
  return {};
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::make_copy(std::int64_t generation, bool indexed) {
  auto made = db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = create_schema(tx, generation, false); !r) return r;
    if (indexed) return create_schema(tx, generation, true);
    return {};
  });
  if (!made) return fail(made.error());
  return std::unique_ptr<es::ReadModel>(new Copy(*this, generation, writer(generation)));
}

Result<void> TableProjection::drop_unused(WriteTransaction& tx) {
  std::vector<std::int64_t> generations;
  const SqlValue name[] = {name_};
  if (auto r = tx.query("SELECT generation FROM read_models WHERE projection = ?1 AND live = 0", name,
                        [&](const Row& row) { generations.push_back(row.int64(0)); });
      !r)
    return r;
  for (auto g : generations) {
    for (const auto& table : tables_)
      if (auto r = tx.run("DROP TABLE IF EXISTS " + with_generation(table, g)); !r) return r;
    const SqlValue params[] = {name_, g};
    if (auto r = tx.run("DELETE FROM read_models WHERE projection = ?1 AND generation = ?2", params); !r) return r;
  }
  return {};
}

// A new copy's generation: one past every generation the projection ever had, registered
// with `live` as given.
static Result<std::int64_t> register_copy(WriteTransaction& tx, const std::string& name, bool live) {
  std::int64_t generation = 0;
  const SqlValue params[] = {name};
  if (auto r = tx.query("SELECT coalesce(max(generation), 0) + 1 FROM read_models WHERE projection = ?1", params,
                        [&](const Row& row) { generation = row.int64(0); });
      !r)
    return fail(r.error());
  const SqlValue insert[] = {name, generation, std::int64_t{live ? 1 : 0}};
  if (auto r = tx.run("INSERT INTO read_models (projection, generation, position, live) VALUES (?1, ?2, 0, ?3)",
                      insert);
      !r)
    return fail(r.error());
  return generation;
}

Result<es::Position> TableProjection::follow() {
  std::optional<std::pair<std::int64_t, es::Position>> live;
  const SqlValue params[] = {name_};
  auto r = db_.query("SELECT generation, position FROM read_models WHERE projection = ?1 AND live = 1", params,
                     [&](const Row& row) { live.emplace(row.int64(0), row.int64(1)); });
  if (!r) return fail(r.error());
  if (!live) return es::Position{0};
  live_ = live->first;
  return live->second;
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::open_live() {
  std::int64_t generation = 0;
  auto found = db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = drop_unused(tx); !r) return r;
    const SqlValue params[] = {name_};
    if (auto r = tx.query("SELECT generation FROM read_models WHERE projection = ?1 AND live = 1", params,
                          [&](const Row& row) { generation = row.int64(0); });
        !r)
      return r;
    if (generation) return {};
    auto g = register_copy(tx, name_, true);
    if (!g) return fail(g.error());
    generation = *g;
    return {};
  });
  if (!found) return fail(found.error());
  live_ = generation;
  return make_copy(generation, true);
}

Result<std::unique_ptr<es::ReadModel>> TableProjection::create_copy() {
  std::int64_t generation = 0;
  auto made = db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    if (auto r = drop_unused(tx); !r) return r;
    auto g = register_copy(tx, name_, false);
    if (!g) return fail(g.error());
    generation = *g;
    return {};
  });
  if (!made) return fail(made.error());
  return make_copy(generation, false);
}

Result<std::vector<std::size_t>> TableProjection::apply_delivered(es::ReadModel& live,
                                                                  std::span<const es::RecordedEvent> events) {
  return static_cast<Copy&>(live).apply_delivered(events);
}

Result<void> TableProjection::promote(es::ReadModel& copy) {
  const auto generation = static_cast<Copy&>(copy).generation();
  if (auto r = db_.transaction(name_, [&](WriteTransaction& tx) { return create_schema(tx, generation, true); }); !r)
    return r;
  // Queries in flight finish on the old copy first; later ones read the new one.
  std::unique_lock lk(swap_mu_);
  auto swapped = db_.transaction(name_, [&](WriteTransaction& tx) -> Result<void> {
    const SqlValue params[] = {generation, name_};
    if (auto r = tx.run("UPDATE read_models SET live = CASE WHEN generation = ?1 THEN 1 ELSE 0 END "
                        "WHERE projection = ?2",
                        params);
        !r)
      return r;
    return drop_unused(tx);
  });
  if (!swapped) return swapped;
  live_ = generation;
  return {};
}

}  // namespace orderflow::app::projections
