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

std::string held_table(const es::SqlDialect& d) {
  return "CREATE TABLE IF NOT EXISTS bus_dead_letters (stream_id " + d.text + " PRIMARY KEY, version " + d.integer +
         " NOT NULL, event_id " + d.text + " NOT NULL, reason " + d.text + " NOT NULL, at_ms " + d.integer +
         " NOT NULL)" + d.table_options;
}
std::string retried_table(const es::SqlDialect& d) {
  return "CREATE TABLE IF NOT EXISTS bus_dead_letters_retried (dead_letter_id " + d.text + " PRIMARY KEY, stream_id " +
         d.text + " NOT NULL, version " + d.integer + " NOT NULL, event_id " + d.text + " NOT NULL, reason " + d.text +
         " NOT NULL, at_ms " + d.integer + " NOT NULL, retried_at_ms " + d.integer + " NOT NULL, retried_by " + d.text +
         " NOT NULL)" + d.table_options;
}

constexpr const char* kColumns = "stream_id, version, event_id, reason, at_ms";

BusDeadLetter held_row(const es::Row& row) {
  BusDeadLetter d;
  d.stream_id = es::StreamId(row.text(0));
  d.version = es::StreamVersion{row.int64(1)};
  d.event_id = std::string(row.text(2));
  d.reason = std::string(row.text(3));
  d.at_ms = row.int64(4);
  d.dead_letter_id = bus_dead_letter_id(d.stream_id, d.version, d.at_ms);
  return d;
}

// A retried row: the held columns, then dead_letter_id, retried_at_ms, retried_by.
BusDeadLetter retried_row(const es::Row& row) {
  BusDeadLetter d = held_row(row);
  d.dead_letter_id = std::string(row.text(5));
  d.retried_at_ms = row.int64(6);
  d.retried_by = std::string(row.text(7));
  return d;
}

}  // namespace

std::string bus_dead_letter_id(const es::StreamId& stream_id, es::StreamVersion version, std::int64_t at_ms) {
  return uuid_v8_hashed(at_ms, kNamespace, stream_id.str() + "\n" + to_string(version) + "\n" + std::to_string(at_ms));
}

Result<void> BusDeadLetterTables::create() {
  return db_.transaction(kDeadLetterTables, [&](es::WriteTransaction& tx) -> Result<void> {
    OF_RETURN_IF_ERROR(tx.run(held_table(db_.dialect())));
    return tx.run(retried_table(db_.dialect()));
  });
}

Result<std::set<es::StreamId>> BusDeadLetterTables::held_streams() {
  std::set<es::StreamId> out;
  OF_RETURN_IF_ERROR(
      db_.query("SELECT stream_id FROM bus_dead_letters", {}, [&](const es::Row& row) { out.emplace(row.text(0)); }));
  return out;
}

Result<void> BusDeadLetterTables::hold(const es::StreamId& stream_id, es::StreamVersion version,
                                       const std::string& event_id, const std::string& reason, std::int64_t at_ms) {
  const es::SqlValue params[] = {stream_id.view(), version.value(), event_id, reason, at_ms};
  const auto sql = std::string("INSERT INTO bus_dead_letters (") + kColumns + ") VALUES (" +
                   db_.dialect().params(1, 5) + ") ON CONFLICT (stream_id) DO NOTHING";
  return db_.transaction(kDeadLetterTables, [&](es::WriteTransaction& tx) { return tx.run(sql, params); });
}

Result<std::vector<BusDeadLetter>> BusDeadLetterTables::list() {
  std::vector<BusDeadLetter> out;
  OF_RETURN_IF_ERROR(db_.query(std::string("SELECT ") + kColumns + " FROM bus_dead_letters", {},
                               [&](const es::Row& row) { out.push_back(held_row(row)); }));
  OF_RETURN_IF_ERROR(db_.query(
      std::string("SELECT ") + kColumns + ", dead_letter_id, retried_at_ms, retried_by FROM bus_dead_letters_retried",
      {}, [&](const es::Row& row) { out.push_back(retried_row(row)); }));
  std::stable_sort(out.begin(), out.end(), [](const BusDeadLetter& a, const BusDeadLetter& b) {
    return std::tie(a.at_ms, a.dead_letter_id) < std::tie(b.at_ms, b.dead_letter_id);
  });
  return out;
}

Result<std::optional<BusDeadLetter>> BusDeadLetterTables::find(const std::string& id) {
  std::optional<BusDeadLetter> found;
  const es::SqlValue params[] = {id};
  OF_RETURN_IF_ERROR(db_.query(std::string("SELECT ") + kColumns +
                                   ", dead_letter_id, retried_at_ms, retried_by FROM bus_dead_letters_retried "
                                   "WHERE dead_letter_id = " +
                                   db_.dialect().param(1),
                               params, [&](const es::Row& row) { found = retried_row(row); }));
  if (found) return found;
  // Held rows carry no id column: a held stream is one row, so they are few.
  OF_RETURN_IF_ERROR(
      db_.query(std::string("SELECT ") + kColumns + " FROM bus_dead_letters", {}, [&](const es::Row& row) {
        if (auto d = held_row(row); d.dead_letter_id == id) found = std::move(d);
      }));
  return found;
}

Result<void> BusDeadLetterTables::release(const BusDeadLetter& letter, std::int64_t retried_at_ms,
                                          const std::string& actor) {
  const auto& d = db_.dialect();
  const es::SqlValue moved[] = {letter.stream_id.view(), letter.version.value(), letter.event_id, letter.reason,
                                letter.at_ms,     letter.dead_letter_id,  retried_at_ms,   actor};
  const es::SqlValue held[] = {letter.stream_id.view(), letter.version.value()};
  return db_.transaction(kDeadLetterTables, [&](es::WriteTransaction& tx) -> Result<void> {
    OF_RETURN_IF_ERROR(tx.run(std::string("INSERT INTO bus_dead_letters_retried (") + kColumns +
                                  ", dead_letter_id, retried_at_ms, retried_by) VALUES (" + d.params(1, 8) + ")",
                              moved));
    return tx.run("DELETE FROM bus_dead_letters WHERE stream_id = " + d.param(1) + " AND version = " + d.param(2),
                  held);
  });
}

}  // namespace orderflow::app::bus_projector
