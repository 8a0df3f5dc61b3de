#include "store/postgres/migrations.h"

#include <array>

namespace orderflow::postgres {

namespace {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Append-only: a released migration is never edited, a change is a new one.
constexpr std::array kMigrations = {
    Migration{1, "event store", R"sql(
-- stream_id sorts bytewise (COLLATE "C") so a category is a range of the
-- (stream_id, version) index: "order" is ['order-', 'order.').
CREATE TABLE events (
  position       bigint  PRIMARY KEY,
  event_id       text    NOT NULL UNIQUE,
  stream_id      text    COLLATE "C" NOT NULL,
  version        bigint  NOT NULL,
  type           text    NOT NULL,
  schema_version integer NOT NULL,
  data           text    NOT NULL,
  metadata       text    NOT NULL,
  recorded_at    bigint  NOT NULL,
  UNIQUE (stream_id, version)
);
-- The highest committed position. Every append batch locks this row first and holds
-- it until its commit, so batches from all processes commit one after another in
-- position order (see postgres_event_store.cc).
CREATE TABLE log_head (
  id       boolean PRIMARY KEY DEFAULT true CHECK (id),
  position bigint  NOT NULL
);
INSERT INTO log_head (position) VALUES (0);
CREATE TABLE snapshots (
  stream_id      text    PRIMARY KEY,
  version        bigint  NOT NULL,
  schema_version integer NOT NULL,
  state          text    NOT NULL
);
CREATE TABLE checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL
);
CREATE TABLE idempotency (
  key         text    PRIMARY KEY,
  fingerprint text    NOT NULL,
  status      integer NOT NULL,
  response    text    NOT NULL,
  created_at  bigint  NOT NULL
);
)sql"},
    Migration{2, "hash chain", R"sql(
-- Every event carries prev_hash and hash, the head row the hash of the last event
-- (es/event_hash.h). The chain over the events stored before, computed here with the
-- same encoding: integers big-endian (int4send, int8send), each text as its UTF-8 bytes
-- after their count in 4 bytes.
ALTER TABLE events ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;
ALTER TABLE log_head ADD COLUMN hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex');
DO $$
DECLARE
  h bytea := decode(repeat('00', 32), 'hex');
  e record;
BEGIN
  FOR e IN SELECT * FROM events ORDER BY position LOOP
    UPDATE events SET prev_hash = h, hash = sha256(h || int8send(e.position)
        || int4send(octet_length(convert_to(e.event_id, 'UTF8'))) || convert_to(e.event_id, 'UTF8')
        || int4send(octet_length(convert_to(e.stream_id, 'UTF8'))) || convert_to(e.stream_id, 'UTF8')
        || int8send(e.version)
        || int4send(octet_length(convert_to(e.type, 'UTF8'))) || convert_to(e.type, 'UTF8')
        || int4send(e.schema_version)
        || int4send(octet_length(convert_to(e.data, 'UTF8'))) || convert_to(e.data, 'UTF8')
        || int4send(octet_length(convert_to(e.metadata, 'UTF8'))) || convert_to(e.metadata, 'UTF8')
        || int8send(e.recorded_at))
      WHERE position = e.position RETURNING hash INTO h;
  END LOOP;
  UPDATE log_head SET hash = h;
END $$;
ALTER TABLE events ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
)sql"},
    Migration{3, "snapshot checksum", R"sql(
-- Every snapshot carries es::snapshot_checksum of its stream id, version, schema version
-- and state; one that fails it is not used. Snapshots before have none: they are dropped
-- (each is only a shortcut to what its stream's events give) and made again.
DELETE FROM snapshots;
ALTER TABLE snapshots ADD COLUMN checksum bigint NOT NULL;
)sql"},
    Migration{4, "customer keys", R"sql(
-- Per-customer keys of the personal data sealed in events (es/customer_keys.h): erasure
-- sets key to NULL (crypto-shredding); the events are never rewritten.
CREATE TABLE customer_keys (
  customer_id text   PRIMARY KEY,
  key         bytea,            -- 32 bytes (AES-256); NULL once erased
  created_at  bigint NOT NULL,
  erased_at   bigint            -- the last erasure; NULL: never erased
);
)sql"},
    Migration{5, "idempotency expiry", R"sql(
-- Records past their retention are deleted oldest first (expire_idempotency).
CREATE INDEX idempotency_created_at ON idempotency (created_at);
)sql"},
};

Result<void> apply_missing(Connection& conn, const std::string& schema) {
  if (!schema.empty())
    if (auto r = conn.exec("CREATE SCHEMA IF NOT EXISTS " + quote_identifier(schema)); !r) return r;
  if (auto r = conn.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now())");
      !r)
    return r;
  auto current = conn.query({"SELECT coalesce(max(version), 0) FROM schema_migrations", {}});
  if (!current) return current.error();
  auto applied = current->int64(0, 0);
  if (applied > kMigrations.back().version)
    return fail(Errc::unavailable, "the database schema is at migration " + std::to_string(applied) +
                                       ", newer than this orderflow knows (" +
                                       std::to_string(kMigrations.back().version) + ")");
  for (const auto& m : kMigrations) {
    if (m.version <= applied) continue;
    auto r = conn.exec(std::string("BEGIN; ") + m.sql + "; INSERT INTO schema_migrations (version, name) VALUES (" +
                       std::to_string(m.version) + ", '" + m.name + "'); COMMIT;");
    if (!r) {
      (void)conn.exec("ROLLBACK");
      return fail(r.error().code, "migration " + std::to_string(m.version) + " failed: " + r.error().message);
    }
  }
  return {};
}

}  // namespace

Result<void> migrate(Connection& conn, const std::string& schema) {
  Query lock{"SELECT pg_advisory_lock(hashtext('orderflow.migrate.' || $1))", {schema}};
  if (auto r = conn.query(lock); !r) return r.error();
  auto migrated = apply_missing(conn, schema);
  // A lost connection released the lock with its session.
  Query unlock{"SELECT pg_advisory_unlock(hashtext('orderflow.migrate.' || $1))", {schema}};
  if (auto r = conn.query(unlock); !r && migrated) return r.error();
  return migrated;
}

}  // namespace orderflow::postgres
