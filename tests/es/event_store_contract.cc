#include "es/event_store_contract.h"

#include <array>
#include <atomic>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "es/subscription.h"

namespace orderflow::testing {

using es::AppendRequest;
using es::Direction;
using es::ExpectedVersion;
using es::kNoStream;

std::string test_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s(36, '-');
  for (int i = 0; i < 36; ++i)
    if (i != 8 && i != 13 && i != 18 && i != 23) s[static_cast<std::size_t>(i)] = hex[rng() & 15];
  s[14] = '4';
  return s;
}

es::AppendRequest make_append(const es::StreamId& stream, es::ExpectedVersion expected, int n,
                              const std::string& type) {
  AppendRequest req{stream, expected, {}, std::nullopt};
  for (int i = 0; i < n; ++i)
    req.events.push_back({test_uuid(), type, 1, R"({"i":)" + std::to_string(i) + "}",
                          R"({"correlation_id":"c"})"});
  return req;
}

namespace {

// ---- append and expected versions ----

TEST_P(EventStoreContract, FirstAppendCreatesStreamAtVersionZeroAndPositionOne) {
  auto r = store().append(make_append("order-1", ExpectedVersion::no_stream()));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->version, 0);
  EXPECT_EQ(r->position, 1);
  EXPECT_EQ(*store().stream_version("order-1"), 0);
  EXPECT_EQ(*store().last_position(), 1);
}

TEST_P(EventStoreContract, MultiEventAppendGetsContiguousVersionsAndPositions) {
  ASSERT_TRUE(store().append(make_append("a-1", ExpectedVersion::any())));
  auto r = store().append(make_append("b-1", ExpectedVersion::no_stream(), 3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, 2);
  EXPECT_EQ(r->position, 4);
  auto events = *store().read_stream("b-1", es::StreamVersion{0}, 10, Direction::forward);
  ASSERT_EQ(events.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[static_cast<std::size_t>(i)].version, i);
    EXPECT_EQ(events[static_cast<std::size_t>(i)].position, 2 + i);
  }
}

TEST_P(EventStoreContract, ExactExpectedVersionMismatchIsTypedConflictAndWritesNothing) {
  ASSERT_TRUE(store().append(make_append("s-1", ExpectedVersion::no_stream(), 2)));
  auto r = store().append(make_append("s-1", ExpectedVersion::exact(es::StreamVersion{0}), 3));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::version_conflict);
  EXPECT_EQ(r.error().current_version, 1);
  EXPECT_EQ(*store().stream_version("s-1"), 1);
  EXPECT_EQ(*store().last_position(), 2);
  auto ok = store().append(make_append("s-1", ExpectedVersion::exact(es::StreamVersion{1})));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->version, 2);
}

TEST_P(EventStoreContract, NoStreamAndStreamExistsExpectations) {
  auto missing = store().append(make_append("s-2", ExpectedVersion::stream_exists()));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::version_conflict);
  EXPECT_EQ(missing.error().current_version, kNoStream);
  ASSERT_TRUE(store().append(make_append("s-2", ExpectedVersion::no_stream())));
  auto again = store().append(make_append("s-2", ExpectedVersion::no_stream()));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::version_conflict);
  EXPECT_TRUE(store().append(make_append("s-2", ExpectedVersion::stream_exists())));
  EXPECT_TRUE(store().append(make_append("s-2", ExpectedVersion::any())));
  EXPECT_EQ(*store().stream_version("s-2"), 2);
}

TEST_P(EventStoreContract, MalformedAppendsAreRejected) {
  AppendRequest empty{"s-3", ExpectedVersion::any(), {}, std::nullopt};
  auto r = store().append(empty);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  auto no_id = make_append("s-3", ExpectedVersion::any());
  no_id.events[0].event_id.clear();
  EXPECT_EQ(store().append(no_id).error().code, Errc::invalid_argument);
  auto twice = make_append("s-3", ExpectedVersion::any(), 2);
  twice.events[1].event_id = twice.events[0].event_id;
  EXPECT_EQ(store().append(twice).error().code, Errc::invalid_argument);
  EXPECT_EQ(*store().last_position(), 0);
}

// ---- idempotent re-append ----

TEST_P(EventStoreContract, ReappendingSameEventIdsAtSamePlaceReturnsOriginalResult) {
  auto req = make_append("s-4", ExpectedVersion::no_stream(), 2);
  auto first = store().append(req);
  ASSERT_TRUE(first);
  ASSERT_TRUE(store().append(make_append("other-1", ExpectedVersion::any())));
  // The retry after a lost reply: same ids, same (now stale) expectation.
  auto retry = store().append(req);
  ASSERT_TRUE(retry) << retry.error().message;
  EXPECT_EQ(retry->version, first->version);
  EXPECT_EQ(retry->position, first->position);
  auto with_any = req;
  with_any.expected = ExpectedVersion::any();
  auto retry_any = store().append(with_any);
  ASSERT_TRUE(retry_any);
  EXPECT_EQ(retry_any->position, first->position);
  EXPECT_EQ(*store().last_position(), 3);
  EXPECT_EQ(store().read_stream("s-4", es::StreamVersion{0}, 10, Direction::forward)->size(), 2u);
}

TEST_P(EventStoreContract, EventIdsStoredElsewhereAreDuplicates) {
  auto req = make_append("s-5", ExpectedVersion::any(), 2);
  ASSERT_TRUE(store().append(req));
  auto elsewhere = req;
  elsewhere.stream_id = "s-6";
  EXPECT_EQ(store().append(elsewhere).error().code, Errc::duplicate_event);
  auto overlapping = make_append("s-5", ExpectedVersion::any(), 2);
  overlapping.events[1].event_id = req.events[0].event_id;
  EXPECT_EQ(store().append(overlapping).error().code, Errc::duplicate_event);
  auto partial = req;
  partial.events.pop_back();
  partial.events.push_back(make_append("x", ExpectedVersion::any()).events[0]);
  EXPECT_EQ(store().append(partial).error().code, Errc::duplicate_event);
  EXPECT_EQ(*store().last_position(), 2);
}

TEST_P(EventStoreContract, ConcurrentRetriesOfOneAppendWriteItOnce) {
  auto req = make_append("s-7", ExpectedVersion::any(), 2);
  std::vector<std::thread> threads;
  std::vector<Result<es::AppendResult>> results(8, Result<es::AppendResult>(es::AppendResult{}));
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { results[static_cast<std::size_t>(i)] = store().append(req); });
  for (auto& t : threads) t.join();
  for (auto& r : results) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->version, 1);
    EXPECT_EQ(r->position, 2);
  }
  EXPECT_EQ(*store().last_position(), 2);
}

// ---- idempotency records ----

// A request refused while an earlier one with its key was landing answers as that one did:
// the settled lookup waits for appends in flight with the key.
TEST_P(EventStoreContract, SettledIdempotencyLookupSeesAnAppendStillInFlight) {
  // Many appends at once, so the last ones are still queued when their keys are looked up.
  constexpr int kAppends = 300;
  std::atomic<int> failed{0};
  std::vector<std::promise<void>> answered(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    auto req = make_append(es::StreamId("s-settled-" + std::to_string(i % 7)), ExpectedVersion::any());
    req.idempotency = es::IdempotencyRecord{"in-flight-" + std::to_string(i), "POST /x {}", 200, "{}", 0};
    store().append_async(std::move(req), [&, i](Result<es::AppendResult> r) {
      if (!r) ++failed;
      answered[i].set_value();
    });
  }
  int missed = 0;
  for (int i = kAppends - 1; i >= kAppends - 20; --i) {
    auto found = store().find_idempotency_settled("in-flight-" + std::to_string(i));
    ASSERT_TRUE(found) << found.error().message;
    if (!found->has_value()) ++missed;
  }
  for (auto& a : answered) a.get_future().wait();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(missed, 0) << "appends in flight with the key were not waited for";
  auto none = store().find_idempotency_settled("never-used");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_P(EventStoreContract, IdempotencyRecordIsStoredWithTheEvents) {
  auto req = make_append("s-8", ExpectedVersion::any());
  req.idempotency = es::IdempotencyRecord{"key-1", "POST /x {}", 201, R"({"ok":true})", 0};
  ASSERT_TRUE(store().append(req));
  auto found = store().find_idempotency("key-1");
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->request_fingerprint, "POST /x {}");
  EXPECT_EQ((*found)->status, 201);
  EXPECT_EQ((*found)->response, R"({"ok":true})");
  EXPECT_FALSE(store().find_idempotency("key-2")->has_value());

  auto rendered = make_append("s-8", ExpectedVersion::exact(es::StreamVersion{0}));
  rendered.idempotency = es::IdempotencyRecord{"key-3", "f", 200, "", 0};
  rendered.render_response = [](const es::AppendResult& r) {
    return "v" + to_string(r.version) + "p" + to_string(r.position);
  };
  ASSERT_TRUE(store().append(rendered));
  EXPECT_EQ((*store().find_idempotency("key-3"))->response, "v1p2");

  auto reuse = make_append("s-8", ExpectedVersion::any());
  reuse.idempotency = es::IdempotencyRecord{"key-1", "POST /y {}", 200, "{}", 0};
  auto r = store().append(reuse);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::idempotency_key_reused);
  EXPECT_EQ(*store().stream_version("s-8"), 1);
}

// Records past their retention are deleted oldest first, a chunk at a time; their keys are
// new again, and the younger ones stay; the events stay whatever happens to their records.
TEST_P(EventStoreContract, ExpiredIdempotencyRecordsAreDeletedOldestFirst) {
  auto* records = harness_->idempotency_records();
  if (!records) GTEST_SKIP() << "this store keeps its idempotency records for ever";
  for (int i = 1; i <= 5; ++i) {
    auto req = make_append("s-expiry", ExpectedVersion::any());
    req.idempotency = es::IdempotencyRecord{"key-" + std::to_string(i), "POST /x {}", 201, "{}", 1000 * i};
    ASSERT_TRUE(store().append(req));
  }
  auto kept = [&] {
    std::vector<int> out;
    for (int i = 1; i <= 5; ++i)
      if (auto found = store().find_idempotency("key-" + std::to_string(i)); found && found->has_value())
        out.push_back(i);
    return out;
  };
  auto expired = records->expire_idempotency(4000, 2);  // keys 1-3 are older than 4000
  ASSERT_TRUE(expired) << expired.error().message;
  EXPECT_EQ(*expired, 2u);
  EXPECT_EQ(kept(), (std::vector<int>{3, 4, 5})) << "the oldest go first";
  expired = records->expire_idempotency(4000, 2);
  ASSERT_TRUE(expired) << expired.error().message;
  EXPECT_EQ(*expired, 1u) << "a record created at the bound is kept";
  EXPECT_EQ(kept(), (std::vector<int>{4, 5}));
  EXPECT_EQ(*records->expire_idempotency(4000, 2), 0u);

  auto again = make_append("s-expiry", ExpectedVersion::any());
  again.idempotency = es::IdempotencyRecord{"key-1", "POST /y {}", 201, "{}", 9000};
  auto r = store().append(again);
  ASSERT_TRUE(r) << "an expired key is new: " << r.error().message;
  EXPECT_TRUE(r->written);
  EXPECT_EQ(*store().stream_version("s-expiry"), 5);
  harness_->reopen();
  EXPECT_EQ(kept(), (std::vector<int>{1, 4, 5}));
}

// ---- reads ----

TEST_P(EventStoreContract, ReadStreamForwardAndBackwardFromAVersion) {
  ASSERT_TRUE(store().append(make_append("r-1", ExpectedVersion::no_stream(), 5)));
  auto fwd = *store().read_stream("r-1", es::StreamVersion{2}, 2, Direction::forward);
  ASSERT_EQ(fwd.size(), 2u);
  EXPECT_EQ(fwd[0].version, 2);
  EXPECT_EQ(fwd[1].version, 3);
  auto back = *store().read_stream("r-1", es::StreamVersion{-1}, 3, Direction::backward);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].version, 4);
  EXPECT_EQ(back[2].version, 2);
  auto back_from = *store().read_stream("r-1", es::StreamVersion{1}, 10, Direction::backward);
  ASSERT_EQ(back_from.size(), 2u);
  EXPECT_EQ(back_from[0].version, 1);
  EXPECT_TRUE(store().read_stream("r-missing", es::StreamVersion{0}, 10, Direction::forward)->empty());
  EXPECT_EQ(*store().stream_version("r-missing"), kNoStream);
}

TEST_P(EventStoreContract, RecordedEventCarriesEverything) {
  auto req = make_append("order-9", ExpectedVersion::any());
  req.events[0].schema_version = 3;
  ASSERT_TRUE(store().append(req));
  auto e = store().read_stream("order-9", es::StreamVersion{0}, 1, Direction::forward)->at(0);
  EXPECT_EQ(e.event_id, req.events[0].event_id);
  EXPECT_EQ(e.stream_id, "order-9");
  EXPECT_EQ(e.type, "Tested");
  EXPECT_EQ(e.version, 0);
  EXPECT_EQ(e.position, 1);
  EXPECT_EQ(e.schema_version, 3);
  EXPECT_EQ(e.data, req.events[0].data);
  EXPECT_EQ(e.metadata, req.events[0].metadata);
  EXPECT_GT(e.recorded_at_ms, 1'700'000'000'000);
}

TEST_P(EventStoreContract, ReadEventFindsAStoredEventByItsIdAndNothingElse) {
  auto req = make_append("order-9", ExpectedVersion::any(), 3);
  req.events[1].schema_version = 3;
  ASSERT_TRUE(store().append(req));
  auto other = make_append("order-10", ExpectedVersion::any(), 2);
  ASSERT_TRUE(store().append(other));
  auto check = [&] {
    auto found = store().read_event(req.events[1].event_id);
    ASSERT_TRUE(found) << found.error().message;
    ASSERT_TRUE(found->has_value());
    const auto& e = **found;
    auto in_stream = store().read_stream("order-9", es::StreamVersion{1}, 1, Direction::forward)->at(0);
    EXPECT_EQ(e.event_id, req.events[1].event_id);
    EXPECT_EQ(e.stream_id, "order-9");
    EXPECT_EQ(e.version, 1);
    EXPECT_EQ(e.position, 2);
    EXPECT_EQ(e.schema_version, 3);
    EXPECT_EQ(e.type, in_stream.type);
    EXPECT_EQ(e.data, req.events[1].data);
    EXPECT_EQ(e.metadata, req.events[1].metadata);
    EXPECT_EQ(e.recorded_at_ms, in_stream.recorded_at_ms);
    auto absent = store().read_event(test_uuid());
    ASSERT_TRUE(absent) << absent.error().message;
    EXPECT_FALSE(absent->has_value());
    // Several at once: those stored, each as read_event answers it; the absent left out.
    const std::vector<std::string> ids{other.events[1].event_id, test_uuid(), req.events[1].event_id};
    auto several = store().read_events(ids);
    ASSERT_TRUE(several) << several.error().message;
    ASSERT_EQ(several->size(), 2u);
    std::map<std::string, es::RecordedEvent> by_id;
    for (const auto& found_one : *several) by_id.emplace(found_one.event_id, found_one);
    ASSERT_TRUE(by_id.contains(req.events[1].event_id));
    EXPECT_EQ(by_id.at(req.events[1].event_id).position, e.position);
    EXPECT_EQ(by_id.at(req.events[1].event_id).schema_version, 3);
    EXPECT_EQ(by_id.at(req.events[1].event_id).data, e.data);
    ASSERT_TRUE(by_id.contains(other.events[1].event_id));
    EXPECT_EQ(by_id.at(other.events[1].event_id).stream_id, "order-10");
    EXPECT_EQ(by_id.at(other.events[1].event_id).version, 1);
    auto none = store().read_events({});
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_TRUE(none->empty());
  };
  check();
  harness_->reopen();
  check();
}

TEST_P(EventStoreContract, ReadAllInPositionOrderWithFilters) {
  ASSERT_TRUE(store().append(make_append("order-1", ExpectedVersion::any(), 2, "OrderPlaced")));
  ASSERT_TRUE(store().append(make_append("product-1", ExpectedVersion::any(), 1, "StockAdded")));
  ASSERT_TRUE(store().append(make_append("orderx-1", ExpectedVersion::any(), 1, "OrderPlaced")));
  ASSERT_TRUE(store().append(make_append("order-2", ExpectedVersion::any(), 1, "OrderShipped")));

  auto all = *store().read_all(es::Position{1}, 100);
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].position, static_cast<es::Position>(i + 1));
  EXPECT_EQ(store().read_all(es::Position{4}, 100)->size(), 2u);
  EXPECT_EQ(store().read_all(es::Position{2}, 2)->size(), 2u);

  es::EventFilter orders{{"order"}, {}, ""};
  auto o = *store().read_all(es::Position{1}, 100, orders);
  ASSERT_EQ(o.size(), 3u);  // not "orderx-1"
  EXPECT_EQ(o[2].stream_id, "order-2");

  es::EventFilter placed{{}, {"OrderPlaced"}, ""};
  EXPECT_EQ(store().read_all(es::Position{1}, 100, placed)->size(), 3u);
  es::EventFilter both{{"order"}, {"OrderPlaced"}, ""};
  EXPECT_EQ(store().read_all(es::Position{1}, 100, both)->size(), 2u);
  es::EventFilter one{{}, {}, "product-1"};
  EXPECT_EQ(store().read_all(es::Position{1}, 100, one)->size(), 1u);

  // A filtered scan reports where to continue even when nothing matched.
  es::EventFilter none{{}, {"Nothing"}, ""};
  int seen = 0;
  auto next = store().scan_all(es::Position{1}, 100, none, [&](const es::RecordedEvent&) { ++seen; });
  ASSERT_TRUE(next);
  EXPECT_EQ(seen, 0);
  EXPECT_EQ(*next, 6);
  auto unfiltered_next = store().scan_all(es::Position{5}, 100, {}, [](const es::RecordedEvent&) {});
  EXPECT_EQ(*unfiltered_next, 6);
  EXPECT_EQ(*store().scan_all(es::Position{6}, 100, {}, [](const es::RecordedEvent&) {}), 6);
}

// Matches thousands of positions apart, one every 1,024 positions: a store may read a
// filtered log in windows (the PostgreSQL one does), and must still pass every match in
// order, say where to go on, and never take events far apart for neighbours in the hash
// chain (a match at a window's first position, after one in the window before, is not).
TEST_P(EventStoreContract, FilteredScansFindMatchesFarApart) {
  std::vector<es::Position> placed;
  for (int round = 0; round < 12; ++round) {
    auto order = store().append(make_append(es::StreamId("order-" + std::to_string(round)),
                                            ExpectedVersion::no_stream(), 1, "OrderPlaced"));
    ASSERT_TRUE(order) << order.error().message;
    placed.push_back(order->position);
    ASSERT_TRUE(store().append(make_append("product-filler", ExpectedVersion::any(), 1023, "StockAdded")));
  }
  auto last = store().append(make_append("order-last", ExpectedVersion::no_stream(), 1, "OrderPlaced"));
  ASSERT_TRUE(last);
  placed.push_back(last->position);
  const auto head = last->position;
  for (const es::EventFilter& filter : {es::EventFilter{{"order"}, {}, ""}, es::EventFilter{{}, {"OrderPlaced"}, ""},
                                         es::EventFilter{{"account", "order"}, {}, ""}}) {
    std::vector<es::Position> seen;
    auto next = store().scan_all(es::Position{1}, 100, filter, [&](const es::RecordedEvent& e) { seen.push_back(e.position); });
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(seen, placed);
    EXPECT_EQ(*next, head + 1);
    // Fewer wanted than there are: the scan stops right after the last one passed.
    seen.clear();
    next = store().scan_all(placed[0] + 1, 1, filter, [&](const es::RecordedEvent& e) { seen.push_back(e.position); });
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(seen, std::vector<es::Position>{placed[1]});
    EXPECT_EQ(*next, placed[1] + 1);
    auto paged = *store().read_all(es::Position{1}, 3, filter);
    ASSERT_EQ(paged.size(), 3u);
    EXPECT_EQ(paged[2].position, placed[2]);
  }
  // Nothing matches: the scan still reaches the head.
  auto nothing = store().scan_all(es::Position{1}, 10, es::EventFilter{{"saga"}, {}, ""}, [](const es::RecordedEvent&) {});
  ASSERT_TRUE(nothing);
  EXPECT_EQ(*nothing, head + 1);
}

// ---- snapshots, checkpoints, upcasters, reopen ----

TEST_P(EventStoreContract, SnapshotsAreSavedReplacedAndMissingOnesAreAbsent) {
  auto& snaps = harness_->snapshots();
  EXPECT_FALSE(snaps.load_snapshot("order-1").has_value());
  ASSERT_TRUE(snaps.save_snapshot({"order-1", es::StreamVersion{4}, 1, R"({"s":4})"}));
  ASSERT_TRUE(snaps.save_snapshot({"order-1", es::StreamVersion{9}, 2, R"({"s":9})"}));
  auto s = snaps.load_snapshot("order-1");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->version, 9);
  EXPECT_EQ(s->schema_version, 2);
  EXPECT_EQ(s->state, R"({"s":9})");
}

TEST_P(EventStoreContract, EverySnapshotIsListedOnceByStream) {
  auto& snaps = harness_->snapshots();
  ASSERT_TRUE(snaps.save_snapshot({"order-2", es::StreamVersion{4}, 1, R"({"s":4})"}));
  ASSERT_TRUE(snaps.save_snapshot({"order-1", es::StreamVersion{3}, 1, R"({"s":3})"}));
  ASSERT_TRUE(snaps.save_snapshot({"order-2", es::StreamVersion{7}, 1, R"({"s":7})"}));
  std::vector<es::Snapshot> seen;
  ASSERT_TRUE(snaps.for_each_snapshot([&](const es::Snapshot& s) { seen.push_back(s); }));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].stream_id, "order-1");
  EXPECT_EQ(seen[1].stream_id, "order-2");
  EXPECT_EQ(seen[1].version, 7);
  EXPECT_EQ(seen[1].state, R"({"s":7})");
}

// A snapshot is only a shortcut: one whose stored bytes changed is not used (the stream is
// then folded from its events), and the others still are.
TEST_P(EventStoreContract, ASnapshotWhoseStateChangedIsNotUsed) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  ASSERT_TRUE(harness_->snapshots().save_snapshot({"product-1", es::StreamVersion{3}, 1, R"({"reserved":1407123})"}));
  ASSERT_TRUE(harness_->snapshots().save_snapshot({"product-2", es::StreamVersion{3}, 1, R"({"reserved":2407123})"}));
  auto opened = harness_->tamper_snapshot("product-1", "1407123", "1417123");
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_FALSE(harness_->snapshots().load_snapshot("product-1").has_value()) << "a corrupt snapshot was used";
  auto intact = harness_->snapshots().load_snapshot("product-2");
  ASSERT_TRUE(intact.has_value());
  EXPECT_EQ(intact->state, R"({"reserved":2407123})");
  // The next snapshot replaces it.
  ASSERT_TRUE(harness_->snapshots().save_snapshot({"product-1", es::StreamVersion{5}, 1, R"({"reserved":9})"}));
  auto replaced = harness_->snapshots().load_snapshot("product-1");
  ASSERT_TRUE(replaced.has_value());
  EXPECT_EQ(replaced->version, 5);
}

TEST_P(EventStoreContract, CheckpointsStartAtZeroAndPersist) {
  auto& cps = harness_->checkpoints();
  EXPECT_EQ(*cps.load_checkpoint("p"), 0);
  ASSERT_TRUE(cps.save_checkpoint("p", es::Position{41}));
  ASSERT_TRUE(cps.save_checkpoint("p", es::Position{42}));
  harness_->reopen();
  EXPECT_EQ(*harness_->checkpoints().load_checkpoint("p"), 42);
}

TEST_P(EventStoreContract, CheckpointsNeverMoveBackwards) {
  auto& cps = harness_->checkpoints();
  ASSERT_TRUE(cps.save_checkpoint("saga", es::Position{966}));
  ASSERT_TRUE(cps.save_checkpoint("saga", es::Position{1}));  // an older view saving late changes nothing
  EXPECT_EQ(*cps.load_checkpoint("saga"), 966);
  harness_->reopen();
  EXPECT_EQ(*harness_->checkpoints().load_checkpoint("saga"), 966);
  ASSERT_TRUE(harness_->checkpoints().save_checkpoint("saga", es::Position{967}));
  EXPECT_EQ(*harness_->checkpoints().load_checkpoint("saga"), 967);
}

TEST_P(EventStoreContract, EverythingSurvivesReopen) {
  auto req = make_append("k-1", ExpectedVersion::no_stream(), 3);
  req.idempotency = es::IdempotencyRecord{"key-9", "f", 200, "{}", 0};
  ASSERT_TRUE(store().append(req));
  harness_->reopen();
  EXPECT_EQ(*store().stream_version("k-1"), 2);
  EXPECT_EQ(*store().last_position(), 3);
  EXPECT_TRUE(store().find_idempotency("key-9")->has_value());
  auto next = store().append(make_append("k-1", ExpectedVersion::exact(es::StreamVersion{2})));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->position, 4);
  auto retry = store().append(req);  // still idempotent after reopen
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->position, 3);
}

TEST_P(EventStoreContract, EveryStoredEventIdIsKnownAfterReopen) {
  // Ids stored before a reopen and ids stored after it, checked at once after the reopen
  // and again a little later (a store may learn its ids in the background).
  std::vector<es::AppendRequest> stored;
  for (int i = 0; i < 20; ++i) {
    stored.push_back(make_append(es::StreamId("r-" + std::to_string(i)), ExpectedVersion::any(), 50));
    ASSERT_TRUE(store().append(stored.back()));
  }
  harness_->reopen();
  stored.push_back(make_append("r-after", ExpectedVersion::any(), 50));
  ASSERT_TRUE(store().append(stored.back()));
  for (int round = 0; round < 2; ++round) {
    for (const auto& req : stored) {
      auto retry = store().append(req);  // the same ids at the same place: the original result
      ASSERT_TRUE(retry) << retry.error().message;
      for (std::size_t i = round; i < req.events.size(); i += 5) {  // a fifth of them per round
        auto elsewhere = make_append("r-elsewhere", ExpectedVersion::any());
        elsewhere.events[0].event_id = req.events[i].event_id;
        auto r = store().append(elsewhere);
        ASSERT_FALSE(r) << "stored id " << req.events[i].event_id << " was appended again";
        EXPECT_EQ(r.error().code, Errc::duplicate_event);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(*store().last_position(), 21 * 50);
}

TEST_P(EventStoreContract, UpcastersApplyOnReadWithoutRewriting) {
  auto req = make_append("u-1", ExpectedVersion::any(), 1, "Renamed");
  req.events[0].data = R"({"old":1})";
  ASSERT_TRUE(store().append(req));
  es::UpcasterRegistry upcasters;
  upcasters.add("Renamed", 1, [](std::string_view) -> Result<std::string> { return std::string(R"({"mid":1})"); });
  upcasters.add("Renamed", 2, [](std::string_view d) -> Result<std::string> {
    return std::string(d == R"({"mid":1})" ? R"({"new":1})" : "bad");
  });
  upcasters.add("Broken", 1, [](std::string_view) -> Result<std::string> {
    return fail(Errc::internal, "cannot upcast Broken");
  });
  harness_->reopen(&upcasters);
  auto e = store().read_stream("u-1", es::StreamVersion{0}, 1, Direction::forward)->at(0);
  EXPECT_EQ(e.schema_version, 3);
  EXPECT_EQ(e.data, R"({"new":1})");
  EXPECT_EQ(store().read_all(es::Position{1}, 1)->at(0).data, R"({"new":1})");
  EXPECT_EQ(store().read_event(req.events[0].event_id)->value().data, R"({"new":1})");
  EXPECT_EQ(store().read_events(std::vector{req.events[0].event_id})->at(0).data, R"({"new":1})");
  // Appended while open and read back at once (a store may serve it from memory).
  auto fresh = make_append("u-2", ExpectedVersion::any(), 1, "Renamed");
  fresh.events[0].data = R"({"old":2})";
  ASSERT_TRUE(store().append(fresh));
  auto read = store().read_all(es::Position{2}, 1);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->at(0).data, R"({"new":1})");
  EXPECT_EQ(read->at(0).schema_version, 3);
  // An event that cannot be upcast is an error to whoever reads it, never a raw event.
  ASSERT_TRUE(store().append(make_append("u-3", ExpectedVersion::any(), 1, "Broken")));
  ASSERT_TRUE(store().append(make_append("u-4", ExpectedVersion::any(), 1, "Fine")));
  EXPECT_FALSE(store().read_all(es::Position{3}, 10));
  auto after = store().read_all(es::Position{4}, 10);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), 1u);
  harness_->reopen(nullptr);
  EXPECT_EQ(store().read_stream("u-1", es::StreamVersion{0}, 1, Direction::forward)->at(0).data, R"({"old":1})");
}

// ---- the hash chain (es/event_hash.h) ----

// Three events, then at position 4 one whose data, metadata and type are unique bytes,
// then more than the store checks at open, so position 4 is checked only when read.
void append_around_a_marked_event(es::EventStore& store) {
  ASSERT_TRUE(store.append(make_append("before-1", ExpectedVersion::no_stream(), 3)));
  auto marked = make_append("marked-1", ExpectedVersion::no_stream(), 1, "MarkedType0");
  // Long enough not to turn up by chance in an event id's hex digits as well.
  marked.events[0].data = R"({"amount":12345678901})";
  marked.events[0].metadata = R"({"note":"meta-67890"})";
  ASSERT_TRUE(store.append(marked));
  static_assert(kVerifiedAtOpen < 100);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(store.append(make_append("after-1", ExpectedVersion::any(), 50)));
}

void expect_corrupt_at_4(const Error& e) {
  EXPECT_EQ(e.code, Errc::corrupt) << e.message;
  EXPECT_NE(e.message.find("position 4 (stream marked-1 version 0)"), std::string::npos) << e.message;
}

// Reads of the changed event answer corrupt naming it; the events around it read as before.
void expect_only_position_4_refused(StoreHarness& h) {
  auto stream = h.store().read_stream("marked-1", es::StreamVersion{0}, 10, Direction::forward);
  ASSERT_FALSE(stream) << "a changed event was served";
  expect_corrupt_at_4(stream.error());
  std::vector<es::Position> passed;
  auto scan = h.store().scan_all(es::Position{1}, 1000, {}, [&](const es::RecordedEvent& e) { passed.push_back(e.position); });
  ASSERT_FALSE(scan) << "a scan served a changed event";
  expect_corrupt_at_4(scan.error());
  EXPECT_EQ(passed, (std::vector{es::Position{1}, es::Position{2}, es::Position{3}}));
  std::string marked_id;
  ASSERT_TRUE(h.log().scan_stored(es::Position{4}, 1, [&](const es::RecordedEvent& e, const es::StoredHashes&) { marked_id = e.event_id; }));
  auto by_id = h.store().read_event(marked_id);
  ASSERT_FALSE(by_id) << "a changed event was served by its id";
  expect_corrupt_at_4(by_id.error());
  auto by_ids = h.store().read_events(std::vector{marked_id});
  ASSERT_FALSE(by_ids) << "a changed event was served by its id among others";
  expect_corrupt_at_4(by_ids.error());
  EXPECT_TRUE(h.store().read_stream("before-1", es::StreamVersion{0}, 10, Direction::forward));
  EXPECT_TRUE(h.store().read_stream("after-1", es::StreamVersion{0}, 1000, Direction::backward));
  EXPECT_TRUE(h.store().read_all(es::Position{5}, 1000));
  std::vector<std::string> breaks;
  es::check_chain(h.log(), breaks);
  ASSERT_EQ(breaks.size(), 1u) << ::testing::PrintToString(breaks);
  EXPECT_NE(breaks[0].find("position 4 "), std::string::npos) << breaks[0];
}

TEST_P(EventStoreContract, AnUntouchedLogChecksClean) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  append_around_a_marked_event(store());
  harness_->reopen();
  ASSERT_TRUE(store().append(make_append("after-1", ExpectedVersion::any(), 3)));
  std::vector<std::string> breaks;
  es::check_chain(harness_->log(), breaks);
  EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
  std::size_t scanned = 0;
  ASSERT_TRUE(store().scan_all(es::Position{1}, 10000, {}, [&](const es::RecordedEvent&) { ++scanned; }));
  EXPECT_EQ(scanned, 4 + 100 + 3u);
}

TEST_P(EventStoreContract, AnEventWhoseDataChangedIsRefusedNamingItsPosition) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  append_around_a_marked_event(store());
  auto opened = harness_->tamper(es::Position{4}, "12345678901", "12345678902");
  ASSERT_TRUE(opened) << opened.error().message;
  expect_only_position_4_refused(*harness_);
}

TEST_P(EventStoreContract, AnEventWhoseMetadataChangedIsRefusedNamingItsPosition) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  append_around_a_marked_event(store());
  auto opened = harness_->tamper(es::Position{4}, "meta-67890", "meta-67891");
  ASSERT_TRUE(opened) << opened.error().message;
  expect_only_position_4_refused(*harness_);
}

TEST_P(EventStoreContract, AnEventWhoseTypeChangedIsRefusedNamingItsPosition) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  append_around_a_marked_event(store());
  auto opened = harness_->tamper(es::Position{4}, "MarkedType0", "MarkedType1");
  ASSERT_TRUE(opened) << opened.error().message;
  expect_only_position_4_refused(*harness_);
}

// The newest events are checked before the store serves or appends anything.
TEST_P(EventStoreContract, AChangedNewestEventIsRefusedAtOpen) {
  if (!harness_->has_medium()) GTEST_SKIP() << "an in-memory store: no stored bytes to check";
  ASSERT_TRUE(store().append(make_append("before-1", ExpectedVersion::no_stream(), 3)));
  auto last = make_append("last-1", ExpectedVersion::no_stream());
  last.events[0].data = R"({"amount":555777})";
  ASSERT_TRUE(store().append(last));
  auto opened = harness_->tamper(es::Position{4}, "555777", "555778");
  ASSERT_FALSE(opened) << "a store with a corrupt newest event opened";
  EXPECT_EQ(opened.error().code, Errc::corrupt) << opened.error().message;
  EXPECT_NE(opened.error().message.find("position 4 (stream last-1 version 0)"), std::string::npos)
      << opened.error().message;
}

TEST_P(EventStoreContract, WaitForEventsWakesOnAppend) {
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)store().append(make_append("w-1", ExpectedVersion::any()));
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(store().wait_for_events(es::Position{0}, std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  writer.join();
  EXPECT_FALSE(store().wait_for_events(es::Position{1}, std::chrono::milliseconds(20)));
}

// ---- concurrency ----

TEST_P(EventStoreContract, OneStreamManyWritersExactlyOneWinnerPerVersion) {
  constexpr int kThreads = 16, kAttempts = 40;
  std::map<es::StreamVersion, int> winners;
  std::mutex mu;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      es::StreamVersion expected = kNoStream;
      for (int i = 0; i < kAttempts; ++i) {
        auto req = make_append("hot-1", expected == kNoStream ? ExpectedVersion::no_stream()
                                                              : ExpectedVersion::exact(expected));
        auto r = store().append(req);
        if (r) {
          std::lock_guard lk(mu);
          ++winners[r->version];
          expected = r->version;
        } else {
          ASSERT_EQ(r.error().code, Errc::version_conflict);
          ASSERT_TRUE(r.error().current_version.has_value());
          ++conflicts;
          expected = *r.error().current_version;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto events = *store().read_stream("hot-1", es::StreamVersion{0}, 100000, Direction::forward);
  ASSERT_EQ(events.size(), winners.size());
  for (std::size_t v = 0; v < events.size(); ++v) {
    EXPECT_EQ(events[v].version, static_cast<es::StreamVersion>(v));
    EXPECT_EQ(winners[static_cast<es::StreamVersion>(v)], 1) << "version " << v;
  }
  EXPECT_EQ(static_cast<int>(winners.size()) + conflicts.load(), kThreads * kAttempts);
}

TEST_P(EventStoreContract, SixtyFourWritersOnDistinctStreamsLoseNothing) {
  constexpr int kThreads = 64, kAppends = 30;
  std::vector<std::thread> threads;
  std::vector<std::vector<es::Position>> positions(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        auto r = store().append(make_append(es::StreamId("w-" + std::to_string(t)), ExpectedVersion::exact(es::StreamVersion{i - 1})));
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->version, i);
        positions[static_cast<std::size_t>(t)].push_back(r->position);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<es::Position> acknowledged;
  for (auto& p : positions) {
    EXPECT_TRUE(std::is_sorted(p.begin(), p.end()));
    acknowledged.insert(p.begin(), p.end());
  }
  ASSERT_EQ(acknowledged.size(), std::size_t{kThreads * kAppends});
  auto all = *store().read_all(es::Position{1}, 100000);
  ASSERT_EQ(all.size(), std::size_t{kThreads * kAppends});
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, static_cast<es::Position>(i + 1));
    EXPECT_TRUE(acknowledged.count(all[i].position));
  }
}

// Whatever a store keeps of a stream's index in memory or moves behind the writer's back,
// a read never misses an acknowledged append nor shows a gap.
TEST_P(EventStoreContract, StreamReadsSeeEveryAcknowledgedAppendWhileWritersRun) {
  constexpr int kStreams = 6, kAppends = 120;
  std::array<std::atomic<es::StreamVersion>, kStreams> acked;
  for (auto& a : acked) a = es::kNoStream;
  std::atomic<bool> writing{true};
  // The writers start once both readers run, so reads overlap writes even on a store whose
  // appends are done before a thread could start reading (the simulation's).
  std::atomic<int> readers_running{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s)
    threads.emplace_back([&, s] {
      while (readers_running.load() < 2) std::this_thread::yield();
      for (int i = 0; i < kAppends; ++i) {
        auto r = store().append(make_append(es::StreamId("rw-" + std::to_string(s)), ExpectedVersion::exact(es::StreamVersion{i - 1})));
        ASSERT_TRUE(r) << r.error().message;
        acked[static_cast<std::size_t>(s)] = r->version;
      }
    });
  std::atomic<int> checks{0};
  for (int reader = 0; reader < 2; ++reader)
    threads.emplace_back([&, reader] {
      ++readers_running;
      for (int round = 0; writing || round < 3; ++round) {
        const int s = (round + reader) % kStreams;
        const auto stream = es::StreamId("rw-" + std::to_string(s));
        const es::StreamVersion before = acked[static_cast<std::size_t>(s)];
        auto forward = store().read_stream(stream, es::StreamVersion{0}, 100000, es::Direction::forward);
        ASSERT_TRUE(forward);
        ASSERT_GE(static_cast<es::StreamVersion>(forward->size()) - 1, before) << stream;
        for (std::size_t v = 0; v < forward->size(); ++v) ASSERT_EQ((*forward)[v].version, static_cast<es::StreamVersion>(v));
        auto newest = store().read_stream(stream, es::StreamVersion{-1}, 3, es::Direction::backward);
        ASSERT_TRUE(newest);
        if (before >= 0) {
          ASSERT_FALSE(newest->empty());
          ASSERT_GE(newest->front().version, before);
          for (std::size_t i = 1; i < newest->size(); ++i) ASSERT_EQ((*newest)[i].version, (*newest)[i - 1].version - 1);
        }
        ASSERT_GE(*store().stream_version(stream), before);
        es::EventFilter only;
        only.stream_id = stream;
        es::StreamVersion expected{0};
        ASSERT_TRUE(store().scan_all(es::Position{1}, 100000, only, [&](const es::RecordedEvent& e) {
          EXPECT_EQ(e.version, expected++);
        }));
        ASSERT_GE(expected - 1, before);
        ++checks;
      }
    });
  for (int s = 0; s < kStreams; ++s) threads[static_cast<std::size_t>(s)].join();
  writing = false;
  for (std::size_t t = kStreams; t < threads.size(); ++t) threads[t].join();
  EXPECT_GE(checks.load(), 6);
}

// ---- subscriptions ----

TEST_P(EventStoreContract, SubscriberSeesEveryEventOnceInOrderWhileWritersRun) {
  constexpr int kWriters = 4, kAppends = 150;
  std::vector<es::Position> seen;
  std::mutex mu;
  es::Subscription sub(store(), nullptr, {"sub", es::Position{1}, {}, 64, std::chrono::milliseconds(50)},
                       [&](std::span<const es::RecordedEvent> batch, es::Position) -> Result<void> {
                         std::lock_guard lk(mu);
                         for (const auto& e : batch) seen.push_back(e.position);
                         return {};
                       });
  ASSERT_TRUE(sub.start());
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; i < kAppends; ++i)
        ASSERT_TRUE(store().append(make_append(es::StreamId("sub-" + std::to_string(w)), ExpectedVersion::any())));
    });
  for (auto& t : writers) t.join();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sub.position() <= kWriters * kAppends && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  sub.stop();
  std::lock_guard lk(mu);
  ASSERT_EQ(seen.size(), std::size_t{kWriters * kAppends});
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<es::Position>(i + 1));
}

TEST_P(EventStoreContract, SubscriberResumesFromItsCheckpointAfterRestart) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store().append(make_append("c-1", ExpectedVersion::any())));
  std::vector<es::Position> seen;
  std::mutex mu;
  auto handler = [&](std::span<const es::RecordedEvent> batch, es::Position) -> Result<void> {
    std::lock_guard lk(mu);
    for (const auto& e : batch) seen.push_back(e.position);
    return {};
  };
  auto wait_until = [&](es::Subscription& s, std::int64_t p) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (s.position() < p && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  {
    es::Subscription sub(store(), &harness_->checkpoints(), {"resumer", es::Position{1}, {}, 4}, handler);
    ASSERT_TRUE(sub.start());
    wait_until(sub, 11);
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store().append(make_append("c-1", ExpectedVersion::any())));
  harness_->reopen();
  es::Subscription sub(store(), &harness_->checkpoints(), {"resumer", es::Position{1}, {}, 4}, handler);
  ASSERT_TRUE(sub.start());
  wait_until(sub, 16);
  sub.stop();
  std::lock_guard lk(mu);
  ASSERT_EQ(seen.size(), 15u);  // the checkpoint follows each handled batch: nothing seen twice
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<es::Position>(i + 1));
}

TEST_P(EventStoreContract, FailingHandlerStopsWithVisibleErrorAndResumesAtTheFailedEvent) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store().append(make_append("f-1", ExpectedVersion::any())));
  std::atomic<bool> broken{true};
  std::vector<es::Position> seen;
  es::Subscription sub(store(), &harness_->checkpoints(), {"fragile", es::Position{1}, {}, 1},
                       [&](std::span<const es::RecordedEvent> batch, es::Position) -> Result<void> {
                         if (batch[0].position == 3 && broken) return fail(Errc::internal, "cannot apply 3");
                         seen.push_back(batch[0].position);
                         return {};
                       });
  ASSERT_TRUE(sub.start());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sub.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(sub.running());
  ASSERT_TRUE(sub.last_error().has_value());
  EXPECT_EQ(sub.last_error()->message, "cannot apply 3");
  EXPECT_EQ(sub.position(), 3);
  broken = false;
  ASSERT_TRUE(sub.start());
  while (sub.position() < 6 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  sub.stop();
  EXPECT_EQ(seen, (std::vector{es::Position{1}, es::Position{2}, es::Position{3}, es::Position{4}, es::Position{5}}));
}

}  // namespace
}  // namespace orderflow::testing
