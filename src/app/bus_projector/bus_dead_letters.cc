#include "app/bus_projector/bus_dead_letters.h"

#include <algorithm>
#include <array>
#include <tuple>

#include "core/uuid.h"

namespace orderflow::app::bus_projector {

namespace {

// "orderflow bus dl" in ASCII: the name space of dead-letter ids.
constexpr std::array<unsigned char, 16> kNamespace = {0x6f, 0x72, 0x64, 0x65, 0x72, 0x66, 0x6c, 0x6f,
                                                      0x77, 0x20, 0x62, 0x75, 0x73, 0x20, 0x64, 0x6c};

// The columns both layouts share, first in every row.
constexpr const char* kColumns = "stream_id, version, event_id, reason, at_ms";
// A per-message layout's own, after those of a held or a retried row.
constexpr const char* kMessageColumns = ", position, subject";
constexpr const char* kRetriedColumns = ", dead_letter_id, retried_at_ms, retried_by";

std::string shared_columns(const es::SqlDialect& d) {
  return "stream_id " + d.text + " NOT NULL, version " + d.integer + " NOT NULL, event_id " + d.text +
         " NOT NULL, reason " + d.text + " NOT NULL, at_ms " + d.integer + " NOT NULL";
}
std::string message_columns(const es::SqlDialect& d) {
  return ", position " + d.integer + " NOT NULL, subject " + d.text + " NOT NULL";
}

std::string held_table(const BusDeadLetterLayout& l, const es::SqlDialect& d) {
  if (l.per_stream)
    return std::string("CREATE TABLE IF NOT EXISTS ") + l.held + " (stream_id " + d.text + " PRIMARY KEY, version " +
           d.integer + " NOT NULL, event_id " + d.text + " NOT NULL, reason " + d.text + " NOT NULL, at_ms " +
           d.integer + " NOT NULL)" + d.table_options;
  return std::string("CREATE TABLE IF NOT EXISTS ") + l.held + " (" + shared_columns(d) + ", dead_letter_id " + d.text +
         " PRIMARY KEY" + message_columns(d) + ")" + d.table_options;
}
std::string retried_table(const BusDeadLetterLayout& l, const es::SqlDialect& d) {
  return std::string("CREATE TABLE IF NOT EXISTS ") + l.retried + " (dead_letter_id " + d.text +
         " PRIMARY KEY, " + shared_columns(d) + ", retried_at_ms " + d.integer + " NOT NULL, retried_by " + d.text +
         " NOT NULL" + (l.per_stream ? "" : message_columns(d)) + ")" + d.table_options;
}

// The columns a held row is selected with: the shared ones, then (per message) the id,
// position and subject.
std::string held_select(const BusDeadLetterLayout& l) {
  return std::string("SELECT ") + kColumns + (l.per_stream ? "" : ", dead_letter_id") +
         (l.per_stream ? "" : kMessageColumns) + " FROM " + l.held;
}
// A retried row: the shared ones, the id, retried_at_ms, retried_by, then (per message)
// position and subject.
std::string retried_select(const BusDeadLetterLayout& l) {
  return std::string("SELECT ") + kColumns + kRetriedColumns + (l.per_stream ? "" : kMessageColumns) + " FROM " +
         l.retried;
}

void message_fields(BusDeadLetter& d, const es::Row& row, int at) {
  if (const auto p = row.int64(at); p > 0) d.position = es::Position{p};
  d.subject = std::string(row.text(at + 1));
}

BusDeadLetter shared_row(const es::Row& row) {
  BusDeadLetter d;
  d.stream_id = es::StreamId(row.text(0));
  d.version = es::StreamVersion{row.int64(1)};
  d.event_id = std::string(row.text(2));
  d.reason = std::string(row.text(3));
  d.at_ms = row.int64(4);
  return d;
}

BusDeadLetter held_row(const BusDeadLetterLayout& l, const es::Row& row) {
  BusDeadLetter d = shared_row(row);
  if (l.per_stream) {
    d.dead_letter_id = bus_dead_letter_id(d.stream_id, d.version, d.at_ms);
  } else {
    d.dead_letter_id = std::string(row.text(5));
    message_fields(d, row, 6);
  }
  return d;
}

BusDeadLetter retried_row(const BusDeadLetterLayout& l, const es::Row& row) {
  BusDeadLetter d = shared_row(row);
  d.dead_letter_id = std::string(row.text(5));
  d.retried_at_ms = row.int64(6);
  d.retried_by = std::string(row.text(7));
  if (!l.per_stream) message_fields(d, row, 8);
  return d;
}

}  // namespace

std::string bus_dead_letter_id(const es::StreamId& stream_id, es::StreamVersion version, std::int64_t at_ms) {
  return uuid_v8_hashed(at_ms, kNamespace, stream_id.str() + "\n" + to_string(version) + "\n" + std::to_string(at_ms));
}

Result<void> BusDeadLetterTables::create() {
  const std::string tables[] = {held_table(layout_, db_.dialect()), retried_table(layout_, db_.dialect())};
  return db_.create_tables(tables);
}

Result<std::set<es::StreamId>> BusDeadLetterTables::held_streams() {
  std::set<es::StreamId> out;
  OF_RETURN_IF_ERROR(db_.query(std::string("SELECT stream_id FROM ") + layout_.held, {},
                               [&](const es::Row& row) { out.emplace(row.text(0)); }));
  return out;
}

Result<void> BusDeadLetterTables::hold(const es::StreamId& stream_id, es::StreamVersion version,
                                       const std::string& event_id, const std::string& reason, std::int64_t at_ms) {
  const es::SqlValue params[] = {stream_id.view(), version.value(), event_id, reason, at_ms};
  const auto sql = std::string("INSERT INTO ") + layout_.held + " (" + kColumns + ") VALUES (" +
                   db_.dialect().params(1, 5) + ") ON CONFLICT (stream_id) DO NOTHING";
  return db_.transaction(layout_.claim, [&](es::WriteTransaction& tx) { return tx.run(sql, params); });
}

Result<std::string> BusDeadLetterTables::record(BusDeadLetter letter, std::string_view message) {
  // Nothing of this delivery (its time, its tag) goes into the id.
  std::string identity;
  if (!letter.event_id.empty())
    identity = "event\n" + letter.event_id;
  else if (!letter.stream_id.empty() && letter.version >= es::StreamVersion{0})
    identity = "stream\n" + letter.stream_id.str() + "\n" + to_string(letter.version);
  else
    identity = "message\n" + letter.subject + "\n" + std::string(message);
  letter.dead_letter_id = uuid_v5(kNamespace, identity);
  const es::SqlValue params[] = {letter.stream_id.view(), letter.version.value(), letter.event_id, letter.reason,
                                 letter.at_ms, letter.dead_letter_id, letter.position ? letter.position->value() : 0,
                                 letter.subject};
  const auto sql = std::string("INSERT INTO ") + layout_.held + " (" + kColumns + ", dead_letter_id" +
                   kMessageColumns + ") VALUES (" + db_.dialect().params(1, 8) +
                   ") ON CONFLICT (dead_letter_id) DO NOTHING";
  OF_RETURN_IF_ERROR(db_.transaction(layout_.claim, [&](es::WriteTransaction& tx) { return tx.run(sql, params); }));
  return letter.dead_letter_id;
}

Result<std::vector<BusDeadLetter>> BusDeadLetterTables::list() {
  std::vector<BusDeadLetter> out;
  OF_RETURN_IF_ERROR(
      db_.query(held_select(layout_), {}, [&](const es::Row& row) { out.push_back(held_row(layout_, row)); }));
  OF_RETURN_IF_ERROR(
      db_.query(retried_select(layout_), {}, [&](const es::Row& row) { out.push_back(retried_row(layout_, row)); }));
  std::stable_sort(out.begin(), out.end(), [](const BusDeadLetter& a, const BusDeadLetter& b) {
    return std::tie(a.at_ms, a.dead_letter_id) < std::tie(b.at_ms, b.dead_letter_id);
  });
  return out;
}

Result<std::optional<BusDeadLetter>> BusDeadLetterTables::find(const std::string& id) {
  std::optional<BusDeadLetter> found;
  const es::SqlValue params[] = {id};
  OF_RETURN_IF_ERROR(db_.query(retried_select(layout_) + " WHERE dead_letter_id = " + db_.dialect().param(1), params,
                               [&](const es::Row& row) { found = retried_row(layout_, row); }));
  if (found) return found;
  if (!layout_.per_stream) {
    OF_RETURN_IF_ERROR(db_.query(held_select(layout_) + " WHERE dead_letter_id = " + db_.dialect().param(1), params,
                                 [&](const es::Row& row) { found = held_row(layout_, row); }));
    return found;
  }
  // Held rows of a stream carry no id column: a held stream is one row, so they are few.
  OF_RETURN_IF_ERROR(db_.query(held_select(layout_), {}, [&](const es::Row& row) {
    if (auto d = held_row(layout_, row); d.dead_letter_id == id) found = std::move(d);
  }));
  return found;
}

Result<void> BusDeadLetterTables::release(const BusDeadLetter& letter, std::int64_t retried_at_ms,
                                          const std::string& actor) {
  const auto& d = db_.dialect();
  const es::SqlValue moved[] = {letter.stream_id.view(),
                                letter.version.value(),
                                letter.event_id,
                                letter.reason,
                                letter.at_ms,
                                letter.dead_letter_id,
                                retried_at_ms,
                                actor,
                                letter.position ? letter.position->value() : 0,
                                letter.subject};
  const auto columns = std::string(kColumns) + kRetriedColumns + (layout_.per_stream ? "" : kMessageColumns);
  const auto insert = std::string("INSERT INTO ") + layout_.retried + " (" + columns + ") VALUES (" +
                      d.params(1, layout_.per_stream ? 8 : 10) + ")";
  const es::SqlValue by_stream[] = {letter.stream_id.view(), letter.version.value()};
  const es::SqlValue by_id[] = {letter.dead_letter_id};
  return db_.transaction(layout_.claim, [&](es::WriteTransaction& tx) -> Result<void> {
    OF_RETURN_IF_ERROR(tx.run(insert, std::span(moved, layout_.per_stream ? 8 : 10)));
    if (layout_.per_stream)
      return tx.run(std::string("DELETE FROM ") + layout_.held + " WHERE stream_id = " + d.param(1) +
                        " AND version = " + d.param(2),
                    by_stream);
    return tx.run(std::string("DELETE FROM ") + layout_.held + " WHERE dead_letter_id = " + d.param(1), by_id);
  });
}

}  // namespace orderflow::app::bus_projector
