#include "app/projections/read_model_db.h"

#include <algorithm>
#include <optional>

namespace orderflow::app::projections {

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

  Result<es::Position> position() override {
    es::Position position = 0;
    const SqlValue params[] = {p_.name_, generation_};
    auto r = p_.db_.query("SELECT position FROM read_models WHERE projection = ?1 AND generation = ?2", params,
                          [&](const Row& row) { position = row.int64(0); });
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
      const SqlValue params[] = {through, p_.name_, generation_};
      return tx.run(save_, params);
    });
    if (r)
      applied_ = through;
    else
      writer_->rolled_back();
    return r;
  }

 private:
  TableProjection& p_;
  std::int64_t generation_;
  std::unique_ptr<CopyWriter> writer_;
  const std::string save_;
  std::optional<es::Position> applied_;  // committed position, once read
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
