#include "store/postgres/leader_lease.h"

namespace orderflow::postgres {

namespace {
// The lock's key: the lease's name in the schema of this session's tables.
constexpr const char* kKey =
    "hashtextextended('orderflow.lease.' || coalesce(current_schema(), '') || '.' || $1, 0)";
}  // namespace

PostgresLeaderLease::PostgresLeaderLease(std::string conninfo, std::string schema, std::string name)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)), name_(std::move(name)) {}

PostgresLeaderLease::~PostgresLeaderLease() { release(); }

Result<bool> PostgresLeaderLease::hold() {
  if (held_) {
    // Still held while the session lives: a round trip proves it does. Lost is said
    // once (the caller stops the work) before a later call tries to take it again.
    if (conn_ && conn_->healthy() && conn_->exec("SELECT 1")) return true;
    held_ = false;
    conn_.reset();  // a session we cannot reach may still hold the lock until it ends
    return false;
  }
  if (!conn_ || !conn_->healthy()) {
    auto c = Connection::open(conninfo_, schema_);
    if (!c) return c.error();
    conn_ = std::move(*c);
  }
  static const std::string sql = std::string("SELECT pg_try_advisory_lock(") + kKey + ")";
  auto r = conn_->query({sql.c_str(), {name_}});
  if (!r) {
    conn_.reset();
    return r.error();
  }
  held_ = r->text(0, 0) == "t";
  return held_;
}

void PostgresLeaderLease::release() {
  if (held_ && conn_ && conn_->healthy()) {
    static const std::string sql = std::string("SELECT pg_advisory_unlock(") + kKey + ")";
    (void)conn_->query({sql.c_str(), {name_}});
  }
  held_ = false;
  conn_.reset();
}

}  // namespace orderflow::postgres
