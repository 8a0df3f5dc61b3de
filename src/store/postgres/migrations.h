// The PostgreSQL schema, as numbered migrations recorded in schema_migrations.
#pragma once

#include <string>

#include "core/result.h"
#include "store/postgres/pg.h"

namespace orderflow::postgres {

// Brings `schema` (empty: the connection's current schema) up to the newest migration.
// Safe to run from several processes at once: they queue on an advisory lock and each
// migration commits with its schema_migrations row. Fails if the database was migrated
// by a newer orderflow.
Result<void> migrate(Connection& conn, const std::string& schema);

}  // namespace orderflow::postgres
