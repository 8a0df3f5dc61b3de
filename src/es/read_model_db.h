// The read-model database, the storage port of read models: SQL statements in
// transactions and queries, whatever database runs them. Adapters: SQLite (a file of one
// process, store/sqlite/sqlite_read_model_db.h) and PostgreSQL (shared by many processes,
// store/postgres/postgres_read_model_db.h). app/projections keeps its tables in it.
//
// SQL is passed to the database as written: its user spells parameters, column types and
// table options as the database's SqlDialect says, and writes the rest in the SQL both
// accept (INSERT … ON CONFLICT, CASE, coalesce, LIMIT). Nothing rewrites the text, so a
// string literal in it means what it says.
//
// Thread safety: every method of ReadModelDb may be called from any thread at once;
// one projection's transactions must not overlap (the runner applies one batch at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/result.h"

namespace orderflow::es {

// How a database spells the few things the read models' SQL needs that the two do not
// share. Text compares bytewise on both (SQLite's order; PostgreSQL's COLLATE "C"), so
// ids and cursors sort alike.
struct SqlDialect {
  char parameter_mark;        // '?' (SQLite, ?N) or '$' (PostgreSQL, $N)
  std::string integer;        // a 64-bit integer column
  std::string text;           // a text column, compared bytewise
  std::string table_options;  // after a CREATE TABLE's closing parenthesis

  // The n-th parameter of a statement, from 1: "?3" or "$3".
  std::string param(int n) const { return parameter_mark + std::to_string(n); }
  // Parameters first to last, comma separated: "?1, ?2, ?3".
  std::string params(int first, int last) const {
    std::string out;
    for (int n = first; n <= last; ++n) out += (n > first ? ", " : "") + param(n);
    return out;
  }
};

// A statement's parameter; a text is only read during the call it is passed to.
using SqlValue = std::variant<std::int64_t, std::string_view>;

// One row of a query's answer.
class Row {
 public:
  // NULL reads as 0 and "".
  virtual std::int64_t int64(int col) const = 0;
  virtual std::string_view text(int col) const = 0;

 protected:
  ~Row() = default;
};
using OnRow = std::function<void(const Row&)>;

// A write transaction of one projection.
class WriteTransaction {
 public:
  // A statement that answers no rows. SQLite runs it at once; PostgreSQL sends it with the
  // next query or the commit, so a batch is one round trip, and its error may surface only
  // there.
  virtual Result<void> run(const std::string& sql, std::span<const SqlValue> params = {}) = 0;
  // A query, answered at once (on PostgreSQL together with the statements before it).
  virtual Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) = 0;

 protected:
  ~WriteTransaction() = default;
};

class ReadModelDb {
 public:
  virtual ~ReadModelDb() = default;

  // How this database spells parameters, column types and table options.
  virtual const SqlDialect& dialect() const = 0;
  // Whether other processes read and write the same database. Then one process at a time
  // writes a given projection (claim) and the others serve queries from what it wrote.
  virtual bool shared() const = 0;
  // Runs `statements` (CREATE … IF NOT EXISTS) in one transaction, never beside another
  // process doing the same (PostgreSQL may refuse one of two concurrent CREATEs of a table).
  virtual Result<void> create_tables(std::span<const std::string> statements) = 0;
  // Claims the right to write projection `name`: true if this process holds it (always,
  // on a database of its own). Held until the process ends or its writer's connection is
  // lost; then another process may take it. Cheap while held.
  virtual Result<bool> claim(const std::string& name) = 0;
  // Gives up the claim on `name`, if this process holds it: another process may claim it at
  // once, and this one writes `name` again only once it has claimed it anew. Nothing on a
  // database of its own. Idempotent.
  virtual Result<void> release(const std::string& name) = 0;
  // Runs fn in one transaction of projection `name`, rolled back if fn or the commit fails.
  // unavailable if this process does not hold `name` (any more).
  virtual Result<void> transaction(const std::string& name,
                                   const std::function<Result<void>(WriteTransaction&)>& fn) = 0;
  // A query on a reader connection, each statement prepared once per connection.
  virtual Result<void> query(const std::string& sql, std::span<const SqlValue> params, const OnRow& on_row) = 0;
};

}  // namespace orderflow::es
