// A thin RAII layer over libpq. PostgreSQL errors become Errc here and nowhere else: a
// lost connection, a server shutting down or out of resources is `unavailable` (retry
// later); anything else is `internal` (our SQL or schema is wrong).
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace orderflow::postgres {

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}

  int rows() const { return PQntuples(r_.get()); }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col), static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
  }
  std::int64_t int64(int row, int col) const;
  const PGresult* get() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

// One statement with its parameters, all in text format.
struct Query {
  const char* sql;
  std::vector<std::string> params;
  // Sent unprepared (the unnamed statement): parsed and planned for its parameters at each
  // call, for a statement whose best plan depends on how big its tables are now. Otherwise
  // prepared once per connection, and planned once where PostgreSQL's generic plan serves.
  bool planned_each_time = false;
};

class Connection {
 public:
  // Connects and sets our session: search_path (when `schema` is not empty),
  // synchronous_commit=on (a commit is durable before it is acknowledged), read
  // committed, and a bound on idle transactions, so a stuck client cannot hold the
  // log's lock for long.
  static Result<Connection> open(const std::string& conninfo, const std::string& schema);
  // Whether a failed open() may succeed later with nothing changed by anyone: the server
  // down or not listening yet, starting up, shutting down, in recovery, out of connection
  // slots, or not reachable over the network. Not: a login the server refuses (password,
  // pg_hba.conf, no such role or database), a malformed URL, TLS set up wrong. libpq gives a
  // failed connection no SQLSTATE, so its message tells.
  static bool reachable_later(const Error& open_error);

  bool healthy() const { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }
  // Runs SQL without parameters (several statements are allowed).
  Result<void> exec(const std::string& sql);
  // One statement, prepared the first time this connection runs its SQL text, as
  // pipeline() does: parsed once, and planned once where PostgreSQL's generic plan serves
  // (its plan_cache_mode), not on every call; unless Query::planned_each_time.
  Result<PgResult> query(const Query& q);
  // Sends every query in one round trip (libpq pipeline mode) and answers their
  // results in order, or the first error. Statements after a failed one are skipped
  // by the server. Each distinct SQL text is prepared once per connection (the hot
  // path's statements are constant, so planning is not paid per batch). After an error
  // the connection is dropped (the next use reconnects): what it prepared is unknown.
  Result<std::vector<PgResult>> pipeline(const std::vector<Query>& queries);
  // pipeline() in two halves, so a thread can do other work before it reads the
  // results: send() queues the queries, receive() reads their results. With
  // `flush_after` n > 0 the server sends the first n results as soon as it has them
  // rather than with the rest; receive(n) reads only those, a later receive() the rest.
  // With `end` false the pipeline stays open (the server runs what it has meanwhile):
  // the next send() adds to it, and receive() reads the results of both as one.
  Result<void> send(const std::vector<Query>& queries, std::size_t flush_after = 0, bool end = true);
  Result<std::vector<PgResult>> receive(std::size_t count = SIZE_MAX);

 private:
  void drop();
  std::string statement_name();

  std::unique_ptr<PGconn, void (*)(PGconn*)> conn_{nullptr, &PQfinish};
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
  std::uint64_t statements_ = 0;  // names given out on this connection
  std::vector<bool> sent_;  // per query of the last send(): was it preceded by its PREPARE?
  std::size_t received_ = 0;  // how many of them receive() has read
  bool open_ = false;         // the last send() did not end its pipeline
};

// A double-quoted SQL identifier.
std::string quote_identifier(std::string_view name);

// The text of a PostgreSQL array, built element by element: one column of a multi-row
// statement (INSERT … SELECT * FROM unnest($1::bigint[], $2::text[], …)).
class ArrayLiteral {
 public:
  void add(std::string_view value);
  void add(std::int64_t value);
  std::string done() { return std::move(text_) + "}"; }

 private:
  std::string text_ = "{";
};

}  // namespace orderflow::postgres
