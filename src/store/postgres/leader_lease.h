// es::LeaderLease on PostgreSQL: a session-level advisory lock held on a connection of
// its own. The lock lives as long as that session: a holder that dies (kill -9, lost
// connection, a database restart) frees it with its session, and a standby's next hold()
// takes it over. Keyed by the lease's name and the schema the tables live in, so
// deployments in different schemas of one database do not exclude each other.
#pragma once

#include <optional>
#include <string>

#include "es/leader_lease.h"
#include "store/postgres/pg.h"

namespace orderflow::postgres {

class PostgresLeaderLease final : public es::LeaderLease {
 public:
  // Connects lazily, on the first hold().
  PostgresLeaderLease(std::string conninfo, std::string schema, std::string name);
  ~PostgresLeaderLease() override;

  Result<bool> hold() override;
  void release() override;

 private:
  std::string conninfo_, schema_, name_;
  std::optional<Connection> conn_;
  bool held_ = false;
};

}  // namespace orderflow::postgres
