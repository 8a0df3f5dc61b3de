// The hash chain over the log: every stored event carries
//
//   hash = SHA-256(prev_hash || the event's fields)
//
// where prev_hash is the hash of the event one position lower (32 zero bytes before
// position 1). The fields are position, event_id, stream_id, version, type,
// schema_version, data, metadata and recorded_at, as stored, in one unambiguous encoding
// (integers big-endian, each text as its UTF-8 bytes after their count in 4 bytes), which
// PostgreSQL computes too (migration 2). Stores keep prev_hash beside the hash, so one
// row can be checked alone (its fields give its hash: bit rot, a
// changed field) and a sequential read checks the links too (a row's prev_hash is the
// hash of the row before it: a removed, inserted or rewritten event). A cryptographic
// hash makes the head hash a fingerprint of the whole log: whoever noted it can tell a
// log rewritten behind it, which no checksum could.
//
// Besides, a store may keep a per-row checksum (XXH3-64 over the same fields), which its
// reads check instead of the hash: SHA-256 cost a scan about half its speed, XXH3 a
// fraction of that. The split is on purpose:
//   - bit rot (a flipped byte anywhere in the row: data, metadata, ids, type or the
//     checksum itself) is refused by every read, naming the position;
//   - tampering (a row rewritten and its checksum recomputed, which anyone can do) passes
//     reads, and is caught by the chain: at open (the newest events) and by
//     `orderflow verify` (all of them), which recompute the chain and compare it with
//     every hash stored.
// A store need not keep every event's hashes: the SQLite store (format 5) keeps the
// checksum in each row and the chain's hash at every 64th position and at the head, in a
// table of their own (the hashes in every row were a third of a row's bytes and cost
// reads a third of their speed); a break is then named as a range of at most 64
// positions. PostgreSQL keeps both hashes in every row and no checksum: its reads, bound
// by libpq, check the hash itself at ~5% of their time (store/postgres/README.md).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "es/event.h"

namespace orderflow::es {

using EventHash = std::array<std::uint8_t, 32>;
// XXH3-64 of a row's fields (event_checksum); stores keep it as a signed 64-bit integer,
// same bits.
using EventChecksum = std::uint64_t;

// The prev_hash of position 1.
inline constexpr EventHash kNoEventHash{};

// An event's fields as stored.
struct HashedFields {
  Position position{0};
  std::string_view event_id;
  std::string_view stream_id;
  StreamVersion version{0};
  std::string_view type;
  std::int32_t schema_version = 1;
  std::string_view data;
  std::string_view metadata;
  std::int64_t recorded_at_ms = 0;
};

HashedFields hashed_fields(const RecordedEvent& e);
// A new event as the stores write it: empty data and metadata are stored as "{}".
HashedFields hashed_fields(const NewEvent& e, std::string_view stream_id, Position position, StreamVersion version,
                           std::int64_t recorded_at_ms);

// The hash of the event `e` following the event whose hash is `prev`. Thread-safe.
EventHash event_hash(const EventHash& prev, const HashedFields& e);

// The checksum of a row's fields. Not cryptographic: see above. Thread-safe.
EventChecksum event_checksum(const HashedFields& e);
// The checksum of a stored snapshot (es::Snapshot): its stream, version, schema version
// and state.
EventChecksum snapshot_checksum(std::string_view stream_id, StreamVersion version, std::int32_t schema_version,
                                std::string_view state);
// What SQLite's format 4 stored: a checksum of the fields and of the row's prev_hash and
// hash, made another way. Only that format's migration reads it.
EventChecksum format4_checksum(const HashedFields& e, const EventHash& prev, const EventHash& hash);

// A row's place in the chain as stored, for checking it (check_chain); each part is
// absent where the store keeps none for this row.
struct StoredHashes {
  std::optional<EventHash> prev_hash;
  std::optional<EventHash> hash;
  std::optional<EventChecksum> checksum;
};

// A hash from stored bytes; false if they are not 32 bytes long.
bool hash_from_bytes(std::string_view bytes, EventHash& out);
inline std::string_view hash_bytes(const EventHash& h) {
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}
std::string to_hex(const EventHash& h);
// A hash from 64 hex digits; false if it is not that.
bool hash_from_hex(std::string_view hex, EventHash& out);

// Errc::corrupt naming the event, when its stored hash is not the hash of its stored
// fields and prev_hash.
Result<void> check_event_hash(const RecordedEvent& e, const EventHash& prev, const EventHash& stored);

// Errc::corrupt naming the event, when its stored checksum is not the checksum of its
// stored fields.
Result<void> check_event_checksum(const RecordedEvent& e, EventChecksum stored);

// Errc::corrupt naming the event, when its prev_hash is not `before`, the hash of the event
// stored before it.
Result<void> check_chain_link(const RecordedEvent& e, const EventHash& prev, const EventHash& before);

// "position 7 (stream order-1 version 2)", for messages about a stored event.
std::string describe_stored(const RecordedEvent& e);

}  // namespace orderflow::es
