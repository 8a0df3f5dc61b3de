#include "store/postgres/pg.h"

#include <algorithm>
#include <charconv>

namespace orderflow::postgres {

namespace {

// SQLSTATE classes that mean "the server is not there for us right now".
bool transient(std::string_view sqlstate) {
  for (std::string_view cls : {"08", "53", "57", "58"})
    if (sqlstate.substr(0, 2) == cls) return true;
  return sqlstate == "40001" || sqlstate == "40P01";
}

std::string one_line(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n' || c == '\t') c = ' ';
  return s;
}

Error connection_error(PGconn* conn, std::string_view what) {
  return Error{Errc::unavailable, std::string(what) + ": " + one_line(conn ? PQerrorMessage(conn) : "out of memory")};
}

// A result's error, or nothing if it succeeded.
std::optional<Error> result_error(PGconn* conn, const PGresult* r, std::string_view what) {
  auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return std::nullopt;
  if (!r || PQstatus(conn) != CONNECTION_OK) return connection_error(conn, what);
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  auto code = transient(state ? state : "") ? Errc::unavailable : Errc::internal;
  return Error{code, std::string(what) + ": " + one_line(PQresultErrorMessage(r))};
}

// Pointers to the parameters' text, which libpq needs NUL-terminated.
std::vector<const char*> param_values(const Query& q) {
  std::vector<const char*> values;
  values.reserve(q.params.size());
  for (const auto& p : q.params) values.push_back(p.c_str());
  return values;
}

}  // namespace

std::int64_t PgResult::int64(int row, int col) const {
  auto t = text(row, col);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  OF_CHECK(ec == std::errc() && end == t.data() + t.size(), "not an integer column");
  return v;
}

std::string quote_identifier(std::string_view name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void ArrayLiteral::add(std::string_view value) {
  text_ += text_.size() > 1 ? ",\"" : "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayLiteral::add(std::int64_t value) {
  if (text_.size() > 1) text_ += ',';
  text_ += std::to_string(value);
}

Result<Connection> Connection::open(const std::string& conninfo, const std::string& schema) {
  // Later keywords override earlier ones: the URL may name the application;
  // connect_timeout bounds a reconnect.
  const char* keywords[] = {"application_name", "dbname", "connect_timeout", nullptr};
  const char* values[] = {"orderflow", conninfo.c_str(), "5", nullptr};
  Connection c;
  c.conn_.reset(PQconnectdbParams(keywords, values, 1));
  if (!c.healthy()) return connection_error(c.conn_.get(), "cannot connect to PostgreSQL");
  // Read committed: each statement of an append batch must see every batch committed
  // before it took the log head's lock (a server default of repeatable read would not).
  std::string session =
      "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = '10s'; "
      "SET default_transaction_isolation = 'read committed'; SET client_min_messages = warning;";
  if (!schema.empty()) session += " SET search_path = " + quote_identifier(schema) + ";";
  if (auto r = c.exec(session); !r) return r.error();
  return c;
}

bool Connection::reachable_later(const Error& open_error) {
  if (open_error.code != Errc::unavailable) return false;
  for (std::string_view passing :
       {"Connection refused", "failed: No such file or directory" /* no socket yet */, "timeout expired",
        "Connection timed out", "No route to host", "Network is unreachable", "Connection reset by peer",
        "server closed the connection unexpectedly", "could not translate host name", "is starting up",
        "is shutting down", "is in recovery mode", "not yet accepting connections", "too many clients already",
        "connection slots are reserved"})
    if (open_error.message.find(passing) != std::string::npos) return true;
  return false;
}

Result<void> Connection::exec(const std::string& sql) {
  if (!healthy()) return fail(Errc::unavailable, "the connection to PostgreSQL is lost");
  PgResult r(PQexec(conn_.get(), sql.c_str()));
  if (auto e = result_error(conn_.get(), r.get(), "PostgreSQL")) return fail(std::move(*e));
  return {};
}

Result<PgResult> Connection::query(const Query& q) {
  if (!healthy()) return fail(Errc::unavailable, "the connection to PostgreSQL is lost");
  const auto n = static_cast<int>(q.params.size());
  const char* name = nullptr;  // none: the unnamed statement (Query::planned_each_time)
  if (!q.planned_each_time) {
    auto [it, fresh] = prepared_.try_emplace(q.sql, statement_name());
    if (fresh) {
      PgResult prepared(PQprepare(conn_.get(), it->second.c_str(), q.sql, n, nullptr));
      if (auto e = result_error(conn_.get(), prepared.get(), "PostgreSQL")) {
        prepared_.erase(it);
        return fail(std::move(*e));
      }
    }
    name = it->second.c_str();
  }
  auto values = param_values(q);
  PgResult r(name ? PQexecPrepared(conn_.get(), name, n, values.data(), nullptr, nullptr, 0)
                  : PQexecParams(conn_.get(), q.sql, n, nullptr, values.data(), nullptr, nullptr, 0));
  if (auto e = result_error(conn_.get(), r.get(), "PostgreSQL")) return fail(std::move(*e));
  return r;
}

std::string Connection::statement_name() { return "of" + std::to_string(statements_++); }

Result<std::vector<PgResult>> Connection::pipeline(const std::vector<Query>& queries) {
  if (auto sent = send(queries); !sent) return sent.error();
  return receive();
}

void Connection::drop() {
  conn_.reset();
  prepared_.clear();
  open_ = false;
}

Result<void> Connection::send(const std::vector<Query>& queries, std::size_t flush_after, bool end) {
  if (!healthy()) return fail(Errc::unavailable, "the connection to PostgreSQL is lost");
  PGconn* conn = conn_.get();
  auto broken = [&](std::string_view what) {
    auto e = connection_error(conn, what);
    drop();
    return fail(std::move(e));
  };
  if (!open_) {
    if (!PQenterPipelineMode(conn)) return broken("cannot enter pipeline mode");
    sent_.clear();
    received_ = 0;
  }
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const auto& q = queries[i];
    auto n = static_cast<int>(q.params.size());
    auto values = param_values(q);
    if (q.planned_each_time) {
      sent_.push_back(false);
      if (!PQsendQueryParams(conn, q.sql, n, nullptr, values.data(), nullptr, nullptr, 0))
        return broken("cannot send to PostgreSQL");
    } else {
      auto [it, fresh] = prepared_.try_emplace(q.sql, statement_name());
      const auto& name = it->second;
      if (fresh && !PQsendPrepare(conn, name.c_str(), q.sql, n, nullptr)) return broken("cannot send to PostgreSQL");
      sent_.push_back(fresh);
      if (!PQsendQueryPrepared(conn, name.c_str(), n, values.data(), nullptr, nullptr, 0))
        return broken("cannot send to PostgreSQL");
    }
    if (i + 1 == flush_after && !PQsendFlushRequest(conn)) return broken("cannot send to PostgreSQL");
  }
  open_ = !end;
  if (end ? !PQpipelineSync(conn) : PQflush(conn) != 0) return broken("cannot send to PostgreSQL");
  return {};
}

Result<std::vector<PgResult>> Connection::receive(std::size_t count) {
  if (!conn_) return fail(Errc::unavailable, "the connection to PostgreSQL is lost");
  PGconn* conn = conn_.get();
  std::vector<PgResult> results;
  results.reserve(std::min(count, sent_.size() - received_));
  std::optional<Error> first_error;
  // Reads one statement's result; each statement's results end with NULL.
  auto next = [&]() -> bool {
    PGresult* r = PQgetResult(conn);
    if (!r) return false;
    results.emplace_back(r);
    if (!first_error && PQresultStatus(r) != PGRES_PIPELINE_ABORTED) first_error = result_error(conn, r, "PostgreSQL");
    while (PGresult* extra = PQgetResult(conn)) PQclear(extra);
    return true;
  };
  for (; received_ < sent_.size() && results.size() < count; ++received_) {
    bool prepared_first = sent_[received_];
    bool got = !prepared_first || next();
    if (got && prepared_first) results.pop_back();  // the PREPARE's: only its error matters
    if (!got || !next()) {
      if (!first_error) first_error = connection_error(conn, "PostgreSQL went away");
      break;
    }
  }
  if ((received_ < sent_.size() && results.size() == count) || open_) {  // the rest later
    if (!first_error) return results;
    drop();
    return fail(std::move(*first_error));
  }
  PgResult sync(PQgetResult(conn));
  bool in_step = sync.get() && PQresultStatus(sync.get()) == PGRES_PIPELINE_SYNC && PQexitPipelineMode(conn);
  if (!in_step && !first_error) first_error = connection_error(conn, "PostgreSQL pipeline out of step");
  if (first_error) {
    drop();
    return fail(std::move(*first_error));
  }
  return results;
}

}  // namespace orderflow::postgres
