// The kernel's vocabulary: events to append, events as recorded, expected versions.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/strong_int.h"

namespace orderflow::es {

// Distinct types (core/strong_int.h), so that a version passed as a position, or the two
// swapped in AppendResult{...}, does not compile.
struct StreamVersionTag;
struct PositionTag;
// A stream's version: 0 for its first event. kNoStream means the stream has no events.
using StreamVersion = StrongInt<StreamVersionTag>;
// A global position: 1 for the first event ever appended, strictly increasing.
using Position = StrongInt<PositionTag>;

inline constexpr StreamVersion kNoStream{-1};

// A stream's id: "order-<uuid>", "product-<sku>", "saga-<order id>". Its category is
// everything before the first '-'. A type of its own, made from text explicitly, so that an
// event id, a type or a customer id where a stream id is expected (or the two swapped in a
// RecordedEvent or an AppendRequest) does not compile. Only a string literal converts by
// itself: it is written where it is used, as the stream id it is. Read with str() or view()
// where the text leaves (SQL binds, JSON, log lines). Compared with its own kind or with
// plain text (`id == "deadletters-saga"`): text has no kind to mix up.
class StreamId {
 public:
  StreamId() = default;
  explicit StreamId(std::string id) : id_(std::move(id)) {}
  explicit StreamId(std::string_view id) : id_(id) {}
  template <std::size_t N>
  StreamId(const char (&literal)[N]) : id_(literal) {}  // NOLINT(google-explicit-constructor)

  // Replaces the text, keeping the storage: readers that decode row after row into one
  // RecordedEvent allocate once.
  void assign(std::string_view id) { id_.assign(id); }

  const std::string& str() const { return id_; }
  std::string_view view() const { return id_; }
  bool empty() const { return id_.empty(); }
  // "order" for "order-123".
  std::string_view category() const;

  friend bool operator==(const StreamId&, const StreamId&) = default;
  friend auto operator<=>(const StreamId&, const StreamId&) = default;
  friend bool operator==(const StreamId& a, std::string_view b) { return a.id_ == b; }
  friend auto operator<=>(const StreamId& a, std::string_view b) { return std::string_view(a.id_) <=> b; }
  template <std::size_t N>
  friend bool operator==(const StreamId& a, const char (&b)[N]) { return a.id_ == std::string_view(b); }

 private:
  std::string id_;
};

// An event as a client hands it to append(). event_id is a client-chosen UUID: it makes
// a retried append idempotent.
struct NewEvent {
  std::string event_id;
  std::string type;
  std::int32_t schema_version = 1;
  std::string data;      // JSON object text
  std::string metadata;  // JSON object text (correlation_id, causation_id, command_id, actor, ...)
};

struct RecordedEvent {
  std::string event_id;
  StreamId stream_id;
  std::string type;
  StreamVersion version{0};
  Position position{0};
  std::int32_t schema_version = 1;
  std::string data;
  std::string metadata;
  std::int64_t recorded_at_ms = 0;  // unix epoch milliseconds
};

// The category of "order-123" is "order": everything before the first '-'.
inline std::string_view category_of(std::string_view stream_id) {
  auto dash = stream_id.find('-');
  return dash == std::string_view::npos ? stream_id : stream_id.substr(0, dash);
}
inline std::string_view StreamId::category() const { return category_of(id_); }

class ExpectedVersion {
 public:
  enum class Kind { any, no_stream, stream_exists, exact };

  static ExpectedVersion any() { return ExpectedVersion(Kind::any, StreamVersion{0}); }
  static ExpectedVersion no_stream() { return ExpectedVersion(Kind::no_stream, kNoStream); }
  static ExpectedVersion stream_exists() { return ExpectedVersion(Kind::stream_exists, StreamVersion{0}); }
  static ExpectedVersion exact(StreamVersion v) { return ExpectedVersion(Kind::exact, v); }

  Kind kind() const { return kind_; }
  StreamVersion version() const { return version_; }
  // Does a stream currently at `current` (kNoStream if absent) satisfy this expectation?
  bool matches(StreamVersion current) const {
    switch (kind_) {
      case Kind::any: return true;
      case Kind::no_stream: return current == kNoStream;
      case Kind::stream_exists: return current != kNoStream;
      case Kind::exact: return current == version_;
    }
    return false;
  }
  std::string describe() const;

 private:
  ExpectedVersion(Kind k, StreamVersion v) : kind_(k), version_(v) {}
  Kind kind_;
  StreamVersion version_;
};

// A command's idempotency record, stored in the same transaction as the events it produced.
struct IdempotencyRecord {
  std::string key;
  std::string request_fingerprint;  // method + path + canonical body; a different one is a reuse
  int status = 0;
  std::string response;             // the first answer's body, returned byte for byte
  std::int64_t created_at_ms = 0;
};

struct AppendResult {
  StreamVersion version = kNoStream;  // the stream's version after the append
  Position position{0};               // the global position of the last event appended
  // false: the append was a retry of one already stored (the same event ids at the same
  // place), answered with the original version and position; nothing was written now,
  // so what the caller decided this time is not what the stream holds.
  bool written = true;
  // Told by on_staged on a shared store: marks the state this append leaves among this
  // process's appends in flight (0 otherwise). A caller that decides on that state passes
  // it back as AppendRequest::decided_on_pending.
  std::uint64_t pending_mark = 0;
};

struct AppendRequest {
  StreamId stream_id;
  ExpectedVersion expected = ExpectedVersion::any();
  std::vector<NewEvent> events;  // at least one
  std::optional<IdempotencyRecord> idempotency;
  // Makes idempotency->response once the append's version and position are known
  // (before it is written), so the stored answer is the one the client gets. Optional.
  std::function<std::string(const AppendResult&)> render_response;
  // Called once the append is accepted into the store's open batch (validated, not yet
  // durable), with the result it will have when it lands, before any later append to
  // the stream is validated. Runs under the store's lock: it must be quick and must not
  // call the store. Optional. On a shared store (PostgreSQL) an append expecting an exact
  // version (or no stream) is told as it is accepted, before the database has checked it,
  // with its version and position 0 (the database numbers positions); any other append
  // once the database has numbered it. An append decided on that state and appended right
  // behind it is then refused unless this one is written (es/append_pipeline.h).
  std::function<void(const AppendResult&)> on_staged;
  // The caller decided on a state on_staged told it, of appends still in flight: that
  // state's AppendResult::pending_mark (0: it decided on a committed state). A shared
  // store accepts it only right behind the append that left that very state (memory
  // knows the stream at exactly `expected`, by that append): otherwise one of them was
  // refused (that state never existed, though the database may be at its version by
  // another process's append, and memory at it by a later append of this process) or has
  // landed: it is answered version_conflict naming a newer version, so the caller reads
  // the store. A version alone does not tell: a guess refused and a later append of this
  // process can leave the same version with other states.
  std::uint64_t decided_on_pending = 0;
  // The caller made every event id just now from fresh randomness (never sent before),
  // so none can be stored yet: the store skips looking them up. Never set it for ids
  // that came from a client or are derived, which is what idempotent re-append is for.
  bool fresh_event_ids = false;
  // Likewise for the stream: the caller made its id just now (a new UUIDv7), so it has no
  // events and the store skips looking up its version.
  bool fresh_stream_id = false;
};

enum class Direction { forward, backward };

// Filter for the global log. Empty lists match everything.
struct EventFilter {
  std::vector<std::string> categories;
  std::vector<std::string> types;
  StreamId stream_id;  // empty: any stream

  bool empty() const { return categories.empty() && types.empty() && stream_id.empty(); }
  bool matches(const RecordedEvent& e) const;
  // Whether events of streams of `category` may pass: it is one of `categories`, or none is given.
  bool has_category(std::string_view category) const;
};

// The text, as for a std::string (log lines, test failures).
template <class Char, class Traits>
std::basic_ostream<Char, Traits>& operator<<(std::basic_ostream<Char, Traits>& os, const StreamId& id) {
  return os << id.str();
}

}  // namespace orderflow::es

template <>
struct std::hash<orderflow::es::StreamId> {
  std::size_t operator()(const orderflow::es::StreamId& id) const noexcept { return std::hash<std::string_view>{}(id.view()); }
};
