#include "store/sqlite/sqlite_event_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "es/event_store_contract.h"
#include "support/temp_dir.h"

namespace orderflow::testing {
namespace {

Result<std::unique_ptr<sqlite::SqliteEventStore>> try_open(const std::string& path,
                                                           const es::UpcasterRegistry* upcasters = nullptr,
                                                           std::size_t stream_index_backlog = 32768) {
  sqlite::SqliteEventStoreOptions options;
  options.path = path;
  options.upcasters = upcasters;
  options.stream_index_backlog = {stream_index_backlog, stream_index_backlog, {}};
  options.verify_at_open = kVerifiedAtOpen;
  return sqlite::SqliteEventStore::open(options);
}

std::unique_ptr<sqlite::SqliteEventStore> open_store(const std::string& path,
                                                     const es::UpcasterRegistry* upcasters = nullptr,
                                                     std::size_t stream_index_backlog = 32768) {
  auto store = try_open(path, upcasters, stream_index_backlog);
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The file's format (PRAGMA user_version), the store closed; -1 if it cannot be read.
std::int64_t file_format(const std::string& path) {
  auto db = sqlite::Database::open(path);
  if (!db) return -1;
  auto format = db->prepare("PRAGMA user_version");
  if (!format) return -1;
  auto row = format->step();
  if (!row || !*row) return -1;
  return format->int64(0);
}

// Replaces every occurrence of `original` in the file (the store closed: its WAL is
// copied back and gone). Answers how many there were.
int replace_in_file(const std::string& path, const std::string& original, const std::string& replacement) {
  auto bytes = read_file(path);
  int found = 0;
  for (auto at = bytes.find(original); at != std::string::npos; at = bytes.find(original, at + 1), ++found)
    bytes.replace(at, original.size(), replacement);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return found;
}

void run_sql(const std::string& path, const std::string& sql, const std::string& blob = {}) {
  auto db = sqlite::Database::open(path);
  ASSERT_TRUE(db);
  auto update = db->prepare(sql);
  ASSERT_TRUE(update) << update.error().message;
  if (!blob.empty()) update->bind_blob(1, blob);
  ASSERT_TRUE(update->run());
}

// `stream_index_backlog`: the default keeps every stream's index entries of a test in
// memory; 0 moves them to the file with every batch, so reads combine both.
class SqliteHarness : public StoreHarness {
 public:
  explicit SqliteHarness(std::size_t stream_index_backlog)
      : backlog_(stream_index_backlog), store_(open_store(dir_.file("events.db"), nullptr, backlog_)) {}
  es::EventStore& store() override { return *store_; }
  es::SnapshotStore& snapshots() override { return *store_; }
  es::CheckpointStore& checkpoints() override { return *store_; }
  es::StoredLog& log() override { return *store_; }
  es::IdempotencyRecords* idempotency_records() override { return store_.get(); }
  void reopen(const es::UpcasterRegistry* upcasters) override {
    store_.reset();
    store_ = open_store(dir_.file("events.db"), upcasters, backlog_);
  }
  // The bytes are looked for in the whole file: the contract's are unique.
  Result<void> tamper(es::Position, const std::string& original, const std::string& replacement) override {
    return replace_in_closed_file(original, replacement);
  }
  Result<void> tamper_snapshot(const std::string&, const std::string& original, const std::string& replacement) override {
    return replace_in_closed_file(original, replacement);
  }

 private:
  Result<void> replace_in_closed_file(const std::string& original, const std::string& replacement) {
    store_.reset();
    if (std::filesystem::exists(dir_.file("events.db-wal")))
      return fail(Errc::internal, "the WAL is still there after closing the store");
    if (replace_in_file(dir_.file("events.db"), original, replacement) == 0)
      return fail(Errc::internal, original + " is not in the file");
    OF_ASSIGN_OR_RETURN(auto opened, try_open(dir_.file("events.db"), nullptr, backlog_));
    store_ = std::move(opened);
    return {};
  }

  TempDir dir_;
  std::size_t backlog_;
  std::unique_ptr<sqlite::SqliteEventStore> store_;
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, EventStoreContract,
    ::testing::Values(EventStoreContractParam{"sqlite", [] { return std::make_unique<SqliteHarness>(32768); }},
                      EventStoreContractParam{"sqlite_index_moved_every_batch",
                                              [] { return std::make_unique<SqliteHarness>(0); }}),
    [](const auto& info) { return info.param.name; });

TEST(SqliteEventStore, OpeningAFileThatIsNotAStoreFailsClearly) {
  TempDir dir;
  std::ofstream(dir.file("junk.db")) << std::string(8192, 'x');
  sqlite::SqliteEventStoreOptions options;
  options.path = dir.file("junk.db");
  auto store = sqlite::SqliteEventStore::open(options);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::corrupt);
  EXPECT_NE(store.error().message.find("junk.db"), std::string::npos);
}

TEST(SqliteEventStore, ASecondOpenOfTheSameFileIsRefused) {
  TempDir dir;
  auto store = open_store(dir.file("events.db"));
  sqlite::SqliteEventStoreOptions options;
  options.path = dir.file("events.db");
  auto second = sqlite::SqliteEventStore::open(options);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::unavailable);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos);
  store.reset();
  EXPECT_TRUE(sqlite::SqliteEventStore::open(options));
}

TEST(SqliteEventStore, AnUnreadableSnapshotIsIgnored) {
  TempDir dir;
  auto store = open_store(dir.file("events.db"));
  ASSERT_TRUE(store->save_snapshot({"order-1", es::StreamVersion{3}, 1, "{}"}));
  ASSERT_TRUE(store->load_snapshot("order-1").has_value());
  auto db = sqlite::Database::open(dir.file("events.db"));
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("DROP TABLE snapshots"));
  EXPECT_FALSE(store->load_snapshot("order-1").has_value());
}

// Format 5's snapshots had no checksum: the migration to 6 drops them (a snapshot is only
// a shortcut) and leaves the log as it was.
TEST(SqliteEventStore, AFileOfTheFifthFormatLosesItsSnapshotsAndKeepsItsEvents) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto store = open_store(path, nullptr, 0);
    ASSERT_TRUE(store->append(make_append("order-a", es::ExpectedVersion::no_stream(), 3)));
    ASSERT_TRUE(store->save_snapshot({"order-a", es::StreamVersion{2}, 1, R"({"lines":1})"}));
  }
  run_sql(path, "ALTER TABLE snapshots DROP COLUMN checksum");
  run_sql(path, "PRAGMA user_version = 5");
  {
    auto store = open_store(path, nullptr, 0);
    EXPECT_FALSE(store->load_snapshot("order-a").has_value()) << "a snapshot without a checksum was kept";
    auto read = store->read_stream("order-a", es::StreamVersion{0}, 10, es::Direction::forward);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->size(), 3u);
    ASSERT_TRUE(store->save_snapshot({"order-a", es::StreamVersion{2}, 1, R"({"lines":1})"}));
    EXPECT_TRUE(store->load_snapshot("order-a").has_value());
  }
  EXPECT_EQ(file_format(path), 7);
}

// The stream index leads a read to a position; an entry that was changed to name another
// event's position is a corrupt read, never that event served as the stream's.
TEST(SqliteEventStore, AStreamIndexEntryNamingAnotherEventIsACorruptRead) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto store = open_store(path, nullptr, 0);
    ASSERT_TRUE(store->append(make_append("order-a", es::ExpectedVersion::no_stream(), 2)));
    ASSERT_TRUE(store->append(make_append("order-b", es::ExpectedVersion::no_stream(), 2)));
  }
  run_sql(path, "UPDATE stream_index SET position = 3 WHERE stream_id = 'order-a' AND version = 1");
  auto store = open_store(path, nullptr, 0);
  auto read = store->read_stream("order-a", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_FALSE(read) << "order-b's event was served as order-a's";
  EXPECT_EQ(read.error().code, Errc::corrupt);
  EXPECT_NE(read.error().message.find("entry for stream order-a version 1 names position 3 (stream order-b version 0)"),
            std::string::npos)
      << read.error().message;
  EXPECT_FALSE(store->read_stream("order-a", es::StreamVersion{-1}, 10, es::Direction::backward));
  EXPECT_TRUE(store->read_stream("order-b", es::StreamVersion{0}, 10, es::Direction::forward));
}

// A child process appends under load and reports each acknowledged append on a pipe;
// it is killed with SIGKILL once it has reported a drawn number of them (on an event,
// not a timer, so a slow machine cannot make a round acknowledge nothing). After
// reopening, every acknowledged append must be there, no stream may have a gap, and
// positions must be contiguous. A killed process keeps its page cache, so this covers
// the flock's release and WAL recovery, not durability: sqlite_event_store_faults_test.cc
// cuts the power.
TEST(SqliteEventStore, AcknowledgedAppendsSurviveSigkill) {
  TempDir dir;
  const auto path = dir.file("events.db");
  constexpr int kStreams = 32;
  std::map<int, es::StreamVersion> acked;  // stream -> highest acknowledged version
  std::mt19937 rng(12345);

  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      // The stream index is moved to the file with every batch, or kept in memory a while:
      // either way a reopen rebuilds what the kill lost of it.
      auto store = open_store(path, nullptr, round % 2 ? 64 : 0);
      std::vector<std::thread> writers;
      for (int s = 0; s < kStreams; ++s) {
        writers.emplace_back([&, s] {
          auto stream = es::StreamId("crash-" + std::to_string(s));
          auto version = *store->stream_version(stream);
          for (;;) {
            auto r = store->append(make_append(stream, es::ExpectedVersion::exact(version), 1 + s % 3));
            if (!r) ::_exit(3);
            version = r->version;
            auto line = std::to_string(s) + " " + to_string(version) + "\n";
            if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(4);
          }
        });
      }
      for (auto& w : writers) w.join();
      ::_exit(0);
    }
    ::close(fds[1]);
    const auto kill_after = 1 + rng() % 2000;
    std::string reported;
    char buf[65536];
    auto read_some = [&] {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) reported.append(buf, static_cast<std::size_t>(n));
      return n > 0;
    };
    while (static_cast<std::size_t>(std::count(reported.begin(), reported.end(), '\n')) < kill_after && read_some()) {
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer died by itself with status " << status;
    while (read_some()) {
    }
    ::close(fds[0]);
    std::istringstream lines(reported);
    int acks = 0;
    for (int s; lines >> s;) {
      std::int64_t v = 0;
      lines >> v;
      acked[s] = std::max(acked.count(s) ? acked[s] : es::kNoStream, es::StreamVersion{v});
      ++acks;
    }
    EXPECT_GE(acks, static_cast<int>(kill_after)) << "round " << round;

    auto store = open_store(path);
    for (int s = 0; s < kStreams; ++s) {
      auto stream = es::StreamId("crash-" + std::to_string(s));
      auto events = *store->read_stream(stream, es::StreamVersion{0}, 1'000'000, es::Direction::forward);
      for (std::size_t v = 0; v < events.size(); ++v)
        ASSERT_EQ(events[v].version, static_cast<es::StreamVersion>(v)) << stream << " has a gap";
      if (acked.count(s)) {
        ASSERT_GE(static_cast<es::StreamVersion>(events.size()) - 1, acked[s])
            << stream << " lost an acknowledged append in round " << round;
      }
    }
    auto last = *store->last_position();
    es::Position expected{1};
    auto scanned = store->scan_all(es::Position{1}, 10'000'000, {}, [&](const es::RecordedEvent& e) {
      EXPECT_EQ(e.position, expected);
      ++expected;
    });
    ASSERT_TRUE(scanned);
    EXPECT_EQ(expected - 1, last);
  }
}

// A file written before the stream index left the events table (format 1) is brought to
// the current format at open, its streams readable and appendable as before.
TEST(SqliteEventStore, AFileOfTheFirstFormatIsMigratedAtOpen) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto db = sqlite::Database::open(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->exec(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL, "
        "metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL, UNIQUE (stream_id, version)) STRICT;"
        "CREATE TABLE snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, schema_version INTEGER NOT NULL, "
        "state TEXT NOT NULL) STRICT;"
        "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) STRICT;"
        "INSERT INTO checkpoints VALUES ('saga', 2);"
        "INSERT INTO events VALUES (1, 'e1', 'order-1', 0, 'OrderPlaced', 1, '{}', '{}', 10),"
        " (2, 'e2', 'order-2', 0, 'OrderPlaced', 1, '{}', '{}', 11),"
        " (3, 'e3', 'order-1', 1, 'OrderConfirmed', 1, '{\"a\":1}', '{}', 12);"));
  }
  auto store = open_store(path);
  auto events = store->read_stream("order-1", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].event_id, "e3");
  EXPECT_EQ((*events)[1].data, "{\"a\":1}");
  EXPECT_EQ((*events)[1].position, 3);
  EXPECT_EQ(*store->stream_version("order-2"), 0);
  EXPECT_EQ(*store->load_checkpoint("saga"), 2);
  auto appended = store->append(make_append("order-1", es::ExpectedVersion::exact(es::StreamVersion{1}), 1));
  ASSERT_TRUE(appended);
  EXPECT_EQ(appended->version, 2);
  EXPECT_EQ(appended->position, 4);
  EXPECT_FALSE(store->append(make_append("order-1", es::ExpectedVersion::exact(es::StreamVersion{1}), 1)));
  store.reset();
  EXPECT_EQ(file_format(path), 7);
}

// A file of the second format (no hashes) holding `count` events of streams order-0..order-6.
void write_second_format_file(const std::string& path, int count) {
  auto db = sqlite::Database::open(path);
  ASSERT_TRUE(db);
  std::string rows;
  for (int i = 1; i <= count; ++i)
    rows += std::string(i > 1 ? "," : "") + "(" + std::to_string(i) + ", 'e" + std::to_string(i) + "', 'order-" +
            std::to_string(i % 7) + "', " + std::to_string((i - 1) / 7) + ", 'OrderPlaced', 1, '{\"i\":" +
            std::to_string(i) + "}', '{}', " + std::to_string(1000 + i) + ")";
  ASSERT_TRUE(db->exec(
      "CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL, "
      "version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL, "
      "metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL) STRICT;"
      "CREATE TABLE stream_index (stream_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL, "
      "PRIMARY KEY (stream_id, version)) WITHOUT ROWID, STRICT;"
      "CREATE TABLE stream_index_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL) STRICT;"
      "INSERT INTO stream_index_state VALUES (1, 0);"
      "CREATE TABLE snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, schema_version INTEGER NOT NULL, "
      "state TEXT NOT NULL) STRICT;"
      "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) STRICT;"
      "CREATE TABLE idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, "
      "response TEXT NOT NULL, created_at INTEGER NOT NULL, position INTEGER NOT NULL) STRICT;"
      "INSERT INTO events VALUES " + rows + "; PRAGMA user_version = 2;"));
}

// A file written before events carried hashes (format 2) gets the chain computed at open:
// every event checks, reads serve them, and appends go on from the chain's head.
TEST(SqliteEventStore, AFileOfTheSecondFormatIsMigratedAtOpen) {
  TempDir dir;
  const auto path = dir.file("events.db");
  ASSERT_NO_FATAL_FAILURE(write_second_format_file(path, 300));
  auto store = open_store(path);
  auto events = store->read_stream("order-3", es::StreamVersion{0}, 100, es::Direction::forward);
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_EQ(events->size(), 43u);
  std::vector<std::string> breaks;
  es::check_chain(*store, breaks);
  EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
  auto appended = store->append(make_append("order-3", es::ExpectedVersion::exact(es::StreamVersion{42}), 2));
  ASSERT_TRUE(appended) << appended.error().message;
  EXPECT_EQ(appended->position, 302);
  store.reset();
  store = open_store(path);
  es::check_chain(*store, breaks);
  EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
  EXPECT_EQ(store->read_all(es::Position{1}, 1000)->size(), 302u);
}

// The migration says how far it has come after each chunk of 8192 rows (orderflow migrate
// draws it).
TEST(SqliteEventStore, TheMigrationOfAnOlderFileReportsItsProgress) {
  TempDir dir;
  const auto path = dir.file("events.db");
  ASSERT_NO_FATAL_FAILURE(write_second_format_file(path, 10000));
  std::vector<std::pair<std::int64_t, std::int64_t>> reported;
  sqlite::SqliteEventStoreOptions options;
  options.path = path;
  options.migration_progress = [&](es::Position migrated, es::Position last) {
    reported.emplace_back(migrated.value(), last.value());
  };
  auto store = sqlite::SqliteEventStore::open(options);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ(reported, (std::vector<std::pair<std::int64_t, std::int64_t>>{{8192, 10000}, {10000, 10000}}));
}

// ---- the per-row checksum (es/event_hash.h): reads check it, the chain catches tampering ----

struct StoredRow {
  es::RecordedEvent event;
  es::StoredHashes hashes;
};

StoredRow stored_row(sqlite::SqliteEventStore& store, es::Position position) {
  StoredRow row;
  EXPECT_TRUE(store.scan_stored(position, 1, [&](const es::RecordedEvent& e, const es::StoredHashes& h) {
    row = {e, h};
  }));
  return row;
}

// 3 events, at position 4 one of stream marked-1, then more than the store checks at open,
// so position 4 is checked only when read (the chain's hash is kept at 64, 128 and the
// head, 132). Closes the store; answers position 4 as stored.
StoredRow write_marked_log(const std::string& path) {
  auto store = open_store(path);
  EXPECT_TRUE(store->append(make_append("before-1", es::ExpectedVersion::no_stream(), 3)));
  auto marked = make_append("marked-1", es::ExpectedVersion::no_stream());
  marked.events[0].data = R"({"amount":12345})";
  EXPECT_TRUE(store->append(marked));
  EXPECT_TRUE(store->append(make_append("after-1", es::ExpectedVersion::no_stream(), 2 * kVerifiedAtOpen)));
  return stored_row(*store, es::Position{4});
}

void update_row_4(const std::string& path, const std::string& set) {
  run_sql(path, "UPDATE events SET " + set + " WHERE position = 4");
}

std::vector<std::string> chain_breaks(es::StoredLog& log) {
  std::vector<std::string> breaks;
  es::check_chain(log, breaks);
  return breaks;
}

// Bit rot in the checksum itself is refused by reads too, naming the position, and
// verify's chain check names it.
TEST(SqliteEventStore, AFlippedBitInTheChecksumIsRefusedOnReadNamingItsPosition) {
  TempDir dir;
  const auto path = dir.file("events.db");
  write_marked_log(path);
  update_row_4(path, "checksum = (checksum | 64) - (checksum & 64)");  // one bit flipped
  auto store = open_store(path);
  auto stream = store->read_stream("marked-1", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_FALSE(stream) << "a row with a flipped checksum was served";
  EXPECT_EQ(stream.error().code, Errc::corrupt);
  EXPECT_NE(stream.error().message.find("position 4 (stream marked-1 version 0)"), std::string::npos)
      << stream.error().message;
  std::vector<es::Position> passed;
  auto scan = store->scan_all(es::Position{1}, 1000, {}, [&](const es::RecordedEvent& e) { passed.push_back(e.position); });
  ASSERT_FALSE(scan);
  EXPECT_NE(scan.error().message.find("position 4 "), std::string::npos) << scan.error().message;
  EXPECT_EQ(passed, (std::vector{es::Position{1}, es::Position{2}, es::Position{3}}));
  EXPECT_TRUE(store->read_all(es::Position{5}, 1000));
  auto breaks = chain_breaks(*store);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 4 "), std::string::npos) << breaks[0];
}

// Tampering, which the checksum cannot tell (anyone can recompute it), is what the chain
// is for: reads serve the rewritten row, the chain check that verify runs names the
// range it is in.
TEST(SqliteEventStore, ARowRewrittenWithItsChecksumRecomputedPassesReadsButNotTheChain) {
  TempDir dir;
  const auto path = dir.file("events.db");
  auto row = write_marked_log(path);
  row.event.data = R"({"amount":99999})";
  const auto checksum = es::event_checksum(es::hashed_fields(row.event));
  update_row_4(path, "data = '" + row.event.data + "', checksum = " + std::to_string(static_cast<std::int64_t>(checksum)));
  auto store = open_store(path);
  auto stream = store->read_stream("marked-1", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_TRUE(stream) << stream.error().message;
  EXPECT_EQ(stream->at(0).data, R"({"amount":99999})");
  ASSERT_TRUE(store->read_all(es::Position{1}, 1000));
  auto breaks = chain_breaks(*store);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("between positions 1 and 64"), std::string::npos) << breaks[0];
}

// A flipped byte in a stored hash of the chain breaks it there.
TEST(SqliteEventStore, AFlippedByteInAHashOfTheChainIsNamedByTheChainCheck) {
  TempDir dir;
  const auto path = dir.file("events.db");
  write_marked_log(path);
  {
    auto store = open_store(path);
    auto at_64 = stored_row(*store, es::Position{64});
    ASSERT_TRUE(at_64.hashes.hash);
    EXPECT_FALSE(stored_row(*store, es::Position{63}).hashes.hash);
    auto flipped = *at_64.hashes.hash;
    flipped[17] ^= 0x04;
    store.reset();
    run_sql(path, "UPDATE chain SET hash = ?1 WHERE position = 64", std::string(es::hash_bytes(flipped)));
  }
  auto store = open_store(path);
  ASSERT_TRUE(store->read_all(es::Position{1}, 1000));
  // The hash at 64 breaks the chain there; the events up to 128 are checked against the
  // hash as stored, as a rewritten event before 64 would have left it.
  auto breaks = chain_breaks(*store);
  ASSERT_EQ(breaks.size(), 2u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("between positions 1 and 64"), std::string::npos) << breaks[0];
  EXPECT_NE(breaks[1].find("between positions 65 and 128"), std::string::npos) << breaks[1];
}

// The head of the chain names the last event: events removed from the end, or added
// behind the store's back, are refused at open.
TEST(SqliteEventStore, EventsRemovedFromTheEndAreRefusedAtOpen) {
  TempDir dir;
  const auto path = dir.file("events.db");
  write_marked_log(path);
  run_sql(path, "DELETE FROM events WHERE position > 130");
  auto store = try_open(path, nullptr, 32768);
  ASSERT_FALSE(store) << "a log cut short was opened";
  EXPECT_EQ(store.error().code, Errc::corrupt);
  EXPECT_NE(store.error().message.find("ends at position 130 but its chain's head is at position 132"),
            std::string::npos)
      << store.error().message;
}

// The marked log as a file of an older format (3: both hashes in every row; 4: and a
// checksum covering them), as that format's code wrote it. Then runs `sql` on it.
void write_old_format_marked_log(const std::string& path, int format, const std::string& sql = {}) {
  write_marked_log(path);
  auto db = sqlite::Database::open(path);
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->exec("DROP TABLE chain; DROP TABLE chain_head;"
                       "ALTER TABLE events ADD COLUMN prev_hash BLOB NOT NULL DEFAULT x'';"
                       "ALTER TABLE events ADD COLUMN hash BLOB NOT NULL DEFAULT x'';"));
  auto rows = db->prepare("SELECT position, event_id, stream_id, version, type, schema_version, data, metadata, "
                          "recorded_at FROM events ORDER BY position");
  ASSERT_TRUE(rows);
  std::vector<es::RecordedEvent> events;
  while (*rows->step())
    events.push_back(es::RecordedEvent{std::string(rows->text(1)), es::StreamId(rows->text(2)),
                                       std::string(rows->text(4)), es::StreamVersion{rows->int64(3)},
                                       es::Position{rows->int64(0)},
                                       static_cast<std::int32_t>(rows->int64(5)), std::string(rows->text(6)),
                                       std::string(rows->text(7)), rows->int64(8)});
  rows->reset();
  auto update = db->prepare("UPDATE events SET prev_hash = ?1, hash = ?2, checksum = ?3 WHERE position = ?4");
  ASSERT_TRUE(update);
  es::EventHash head = es::kNoEventHash;
  for (const auto& e : events) {
    const auto fields = es::hashed_fields(e);
    const auto prev = head;
    head = es::event_hash(prev, fields);
    ASSERT_TRUE(update->bind_blob(1, es::hash_bytes(prev))
                    .bind_blob(2, es::hash_bytes(head))
                    .bind(3, static_cast<std::int64_t>(es::format4_checksum(fields, prev, head)))
                    .bind(4, e.position.value())
                    .run());
  }
  ASSERT_TRUE(db->exec((format == 3 ? "ALTER TABLE events DROP COLUMN checksum;" : "") +
                       std::string("PRAGMA user_version = ") + std::to_string(format) + ";" + sql));
}

// A file of format 3 or 4 gets every row's checksum of format 5 at open, and its hashes
// move to the chain tables.
TEST(SqliteEventStore, FilesOfTheThirdAndFourthFormatsAreMigratedAtOpen) {
  for (int format : {3, 4}) {
    SCOPED_TRACE(format);
    TempDir dir;
    const auto path = dir.file("events.db");
    write_old_format_marked_log(path, format);
    {
      auto store = open_store(path);
      auto breaks = chain_breaks(*store);
      EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
      std::size_t checked = 0, hashes = 0;
      ASSERT_TRUE(store->scan_stored(es::Position{1}, 1000, [&](const es::RecordedEvent& e, const es::StoredHashes& h) {
        ASSERT_TRUE(h.checksum);
        EXPECT_EQ(*h.checksum, es::event_checksum(es::hashed_fields(e))) << e.position;
        hashes += h.hash.has_value();
        ++checked;
      }));
      EXPECT_EQ(checked, 4 + 2 * kVerifiedAtOpen);
      EXPECT_EQ(hashes, 3u);  // 64, 128 and the head
      EXPECT_EQ(store->read_all(es::Position{1}, 1000)->size(), checked);
      auto appended = store->append(make_append("marked-1", es::ExpectedVersion::exact(es::StreamVersion{0})));
      ASSERT_TRUE(appended) << appended.error().message;
    }
    auto store = open_store(path);
    auto breaks = chain_breaks(*store);
    EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
    store.reset();
    EXPECT_EQ(file_format(path), 7);
    auto db = sqlite::Database::open(path);
    ASSERT_TRUE(db);
    EXPECT_FALSE(db->prepare("SELECT hash FROM events")) << "the rows still hold their hashes";
  }
}

// A row that its format's reads refused (its hash did not check; in format 4 its checksum
// neither) is still refused: the migration does not launder it.
TEST(SqliteEventStore, AnOldFormatRowThatDidNotCheckIsStillRefusedAfterTheMigration) {
  for (int format : {3, 4}) {
    SCOPED_TRACE(format);
    TempDir dir;
    const auto path = dir.file("events.db");
    write_old_format_marked_log(path, format, "UPDATE events SET data = '{\"amount\":12346}' WHERE position = 4;");
    auto store = open_store(path);
    auto stream = store->read_stream("marked-1", es::StreamVersion{0}, 10, es::Direction::forward);
    ASSERT_FALSE(stream) << "the migration laundered a corrupt row";
    EXPECT_NE(stream.error().message.find("position 4 (stream marked-1 version 0)"), std::string::npos)
        << stream.error().message;
    EXPECT_TRUE(store->read_stream("before-1", es::StreamVersion{0}, 10, es::Direction::forward));
    auto breaks = chain_breaks(*store);
    ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
    EXPECT_NE(breaks[0].find("position 4 "), std::string::npos) << breaks[0];
  }
}

// A page SQLite itself cannot read (here: a b-tree page whose type byte is not one) is a
// corrupt read naming what it was reading, never a row served.
TEST(SqliteEventStore, APageSqliteCannotReadIsACorruptReadNamingIt) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto store = open_store(path);
    auto marked = make_append("marked-1", es::ExpectedVersion::no_stream());
    marked.events[0].data = R"({"find":"page-marker-4711"})";
    ASSERT_TRUE(store->append(make_append("before-1", es::ExpectedVersion::no_stream(), 3)));
    ASSERT_TRUE(store->append(marked));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(store->append(make_append("after-1", es::ExpectedVersion::any(), 100)));
  }
  auto bytes = read_file(path);
  const auto at = bytes.find("page-marker-4711");
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find("page-marker-4711", at + 1), std::string::npos);
  const std::size_t page_size = 4096;
  ASSERT_GT(at / page_size, 0u);
  bytes[at - at % page_size] = '\x42';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;

  auto store = open_store(path);
  auto read = store->read_stream("marked-1", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, Errc::corrupt) << read.error().message;
  EXPECT_NE(read.error().message.find("reading stream marked-1"), std::string::npos) << read.error().message;
  auto scan = store->read_all(es::Position{1}, 1000);
  ASSERT_FALSE(scan);
  EXPECT_EQ(scan.error().code, Errc::corrupt) << scan.error().message;
  EXPECT_NE(scan.error().message.find("reading the log from position"), std::string::npos) << scan.error().message;
}

// A projection started on a long log of other categories (a first start on 10M events of
// `bench append`) does not read them: its scan starts where its category begins. The
// proof: a page in the middle of the skipped stretch is unreadable, and the scan never
// meets it.
TEST(SqliteEventStore, ACategoryScanSkipsTheLogBeforeItsCategoryBegins) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto store = open_store(path, nullptr, 0);
    for (int i = 0; i < 40; ++i)
      ASSERT_TRUE(store->append(make_append(es::StreamId("fill-" + std::to_string(i)), es::ExpectedVersion::no_stream(), 1000)));
    auto marked = make_append("fill-marked", es::ExpectedVersion::no_stream());
    marked.events[0].data = R"({"find":"page-marker-4712"})";
    ASSERT_TRUE(store->append(marked));
    for (int i = 40; i < 80; ++i)
      ASSERT_TRUE(store->append(make_append(es::StreamId("fill-" + std::to_string(i)), es::ExpectedVersion::no_stream(), 1000)));
    ASSERT_TRUE(store->append(make_append("order-1", es::ExpectedVersion::no_stream(), 3)));
  }
  auto bytes = read_file(path);
  const auto at = bytes.find("page-marker-4712");
  ASSERT_NE(at, std::string::npos);
  const std::size_t page_size = 4096;
  bytes[at - at % page_size] = '\x42';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;

  auto store = open_store(path);
  es::EventFilter orders;
  orders.categories = {"order"};
  auto scan = store->read_all(es::Position{1}, 1000, orders);
  ASSERT_TRUE(scan) << scan.error().message;
  ASSERT_EQ(scan->size(), 3u);
  EXPECT_EQ(scan->front().stream_id, "order-1");
  EXPECT_EQ(scan->front().position, 80'002);
  // The page is unreadable indeed: a scan of every category meets it.
  auto all = store->read_all(es::Position{1}, 100'000);
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, Errc::corrupt) << all.error().message;
}

// append_lookups() counts the file reads that checking appends took (bench append shows
// them per million appends): an id the filter cannot clear is looked up in the event-id
// index, and a stream's version that neither the pipeline nor the backlog holds (after a
// reopen, which moves the backlog to the file) is read from stream_index.
TEST(SqliteEventStore, AppendLookupsCountTheFileReadsThatCheckingAppendsTook) {
  TempDir dir;
  const auto path = dir.file("events.db");
  std::string stored_id;
  {
    auto store = open_store(path);
    auto req = make_append("order-1", es::ExpectedVersion::no_stream(), 1);
    stored_id = req.events.front().event_id;
    ASSERT_TRUE(store->append(std::move(req)));
  }
  auto store = open_store(path);
  const auto before = store->append_lookups();
  ASSERT_TRUE(store->append(make_append("order-1", es::ExpectedVersion::exact(es::StreamVersion{0}), 1)));
  const auto appended = store->append_lookups();
  EXPECT_EQ(appended.versions, before.versions + 1);
  auto retry = make_append("order-1", es::ExpectedVersion::any(), 1);
  retry.events.front().event_id = stored_id;
  EXPECT_TRUE(store->append(std::move(retry)));  // a retry of the stored append: answered as it was
  EXPECT_EQ(store->append_lookups().event_ids, appended.event_ids + 1);
}

// The version of a stream never written is answered by the stream filter without a read
// (a saga's record opens saga-<order id>, one per order), once the filter holds every
// stream of the file; a stream written before the reopen, which the pipeline does not
// hold, is still read and numbered on from what is stored.
TEST(SqliteEventStore, AStreamNeverWrittenNeedsNoVersionReadAndStoredStreamsKeepTheirVersions) {
  TempDir dir;
  const auto path = dir.file("events.db");
  constexpr int kStreams = 3000;
  {
    auto store = open_store(path);
    for (int i = 0; i < kStreams; ++i)
      ASSERT_TRUE(store->append(make_append(es::StreamId("order-" + std::to_string(i)), es::ExpectedVersion::no_stream(), 2)));
  }
  auto store = open_store(path);
  // Until the filter is loaded every unknown stream is read; then none that was never written.
  bool answered_from_memory = false;
  for (int k = 0; k < 500 && !answered_from_memory; ++k) {
    const auto before = store->append_lookups();
    ASSERT_TRUE(store->append(make_append(es::StreamId("saga-" + std::to_string(k)), es::ExpectedVersion::no_stream())));
    answered_from_memory = store->append_lookups().versions == before.versions;
    if (!answered_from_memory) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(answered_from_memory) << "the stream filter never answered";
  const auto before = store->append_lookups();
  for (int i = 0; i < kStreams; ++i) {
    auto r = store->append(make_append(es::StreamId("order-" + std::to_string(i)), es::ExpectedVersion::any()));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->version, 2) << "order-" << i;
  }
  EXPECT_GE(store->append_lookups().versions, before.versions + kStreams - kStreams / 50);  // a few in the backlog
  auto stale = store->append(make_append("order-7", es::ExpectedVersion::no_stream()));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::version_conflict);
}

// read_event answers an id the event-id filter has never seen without reading the file:
// every acknowledged event must still be found by its id at once, appends running beside.
TEST(SqliteEventStore, EveryAcknowledgedEventIsFoundByItsIdAtOnce) {
  TempDir dir;
  auto store = open_store(dir.file("events.db"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the (empty) file's ids loaded
  std::atomic<int> missing{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; i < 300; ++i) {
        auto req = make_append(es::StreamId("order-" + std::to_string(w) + "-" + std::to_string(i)),
                              es::ExpectedVersion::no_stream(), 1);
        const auto id = req.events.front().event_id;
        if (!store->append(std::move(req))) continue;
        auto found = store->read_event(id);
        if (!found || !*found || (*found)->event_id != id) ++missing;
      }
    });
  for (auto& t : writers) t.join();
  EXPECT_EQ(missing, 0);
  auto never = store->read_event("00000000-0000-4000-8000-000000000000");
  ASSERT_TRUE(never);
  EXPECT_FALSE(*never);
}

TEST(SqliteEventStore, AFileOfANewerFormatIsRefused) {
  TempDir dir;
  {
    auto db = sqlite::Database::open(dir.file("events.db"));
    ASSERT_TRUE(db && db->exec("CREATE TABLE events (x); PRAGMA user_version = 99;"));
  }
  sqlite::SqliteEventStoreOptions options;
  options.path = dir.file("events.db");
  auto store = sqlite::SqliteEventStore::open(options);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::corrupt);
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

// Read-only (verify on a full or read-only disk, or on a backup) the store serves the file as
// it is, the stream-index entries it lacks included (those of a store stopped before it moved
// them there), and writes nothing: neither those entries nor an append, nor a WAL beside it.
const es::StreamId kReadOnlyStreams[] = {"order-a", "order-b", "order-c"};

TEST(SqliteEventStore, AReadOnlyOpenServesTheFileAsItIsAndWritesNothing) {
  TempDir dir;
  const auto path = dir.file("events.db");
  {
    auto store = open_store(path, nullptr, 0);
    for (const auto& stream : kReadOnlyStreams)
      ASSERT_TRUE(store->append(make_append(stream, es::ExpectedVersion::no_stream(), 2)));
  }
  // As a store stopped before it moved its newest entries: the table ends at position 2.
  run_sql(path, "DELETE FROM stream_index WHERE position > 2");
  run_sql(path, "UPDATE stream_index_state SET indexed_through = 2");
  const auto before = read_file(path);

  sqlite::SqliteEventStoreOptions options;
  options.path = path;
  options.read_only = true;
  auto store = sqlite::SqliteEventStore::open(options);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->last_position().value_or(es::Position{0}), es::Position{6});
  for (const auto& stream : kReadOnlyStreams) {
    for (const auto direction : {es::Direction::forward, es::Direction::backward}) {
      auto read =
          (*store)->read_stream(stream, es::StreamVersion{direction == es::Direction::forward ? 0 : -1}, 10, direction);
      ASSERT_TRUE(read) << read.error().message;
      EXPECT_EQ(read->size(), 2u) << stream;
    }
    auto version = (*store)->stream_version(stream);
    ASSERT_TRUE(version);
    EXPECT_EQ(*version, es::StreamVersion{1}) << stream;
  }
  auto appended = (*store)->append(make_append("order-d", es::ExpectedVersion::no_stream(), 1));
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, Errc::unavailable);
  EXPECT_NE(appended.error().message.find("read-only"), std::string::npos) << appended.error().message;
  store->reset();
  EXPECT_EQ(read_file(path), before) << "a read-only open wrote to the file";
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(path + "-shm"));
}

// What a read-only open cannot do, it refuses in a sentence: a file of an older format
// (only `orderflow migrate` would read it), one that is no event store.
TEST(SqliteEventStore, AReadOnlyOpenRefusesAFileItWouldHaveToChange) {
  TempDir dir;
  sqlite::SqliteEventStoreOptions options;
  options.path = dir.file("events.db");
  options.read_only = true;
  {
    auto db = sqlite::Database::open(options.path);
    ASSERT_TRUE(db && db->exec("CREATE TABLE events (x); PRAGMA user_version = 5;"));
  }
  auto old = sqlite::SqliteEventStore::open(options);
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message.find("orderflow migrate"), std::string::npos) << old.error().message;
  EXPECT_EQ(file_format(options.path), 5);
  options.path = dir.file("other.db");
  {
    auto db = sqlite::Database::open(options.path);
    ASSERT_TRUE(db && db->exec("CREATE TABLE t (x)"));
  }
  auto other = sqlite::SqliteEventStore::open(options);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("holds no event log"), std::string::npos) << other.error().message;
}

}  // namespace
}  // namespace orderflow::testing
