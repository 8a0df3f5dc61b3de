// The one reader of the saga's records: what it folds, and that a record that does not
// decode is corrupt naming its position, never skipped.
#include "app/saga/saga_records.h"

#include <gtest/gtest.h>

#include <random>

#include "app/saga/sim_event_store.h"
#include "codec/domain_codec.h"

namespace orderflow::app::saga {
namespace {

namespace ds = domain::saga;

class SagaRecordsTest : public ::testing::Test {
 protected:
  // Appends `data` as stored bytes, so a test can store what no encoder would write.
  es::Position append_raw(const es::StreamId& stream, const std::string& type, const std::string& data) {
    es::AppendRequest req;
    req.stream_id = stream;
    req.events.push_back({"e" + std::to_string(++events_), type, 1, data, "{}"});
    auto r = store_.append(std::move(req));
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->position : es::Position{0};
  }
  template <class Event>
  es::Position append(const es::StreamId& stream, const Event& e) {
    return append_raw(stream, ds::event_type_name(e), codec::encode_event(e));
  }

  int events_ = 0;
  std::mt19937_64 rng_{1};
  orderflow::testing::SimEventStore store_{rng_};
};

TEST_F(SagaRecordsTest, DeadLettersAreFoldedOldestFirstWithTheirRetry) {
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "x", 5});
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d2", "o2", ds::SagaStep::reserve, 3, "", 6});
  store_.now_ms += 1000;
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRetried{"d1", "o1"});
  auto letters = dead_letters(store_);
  ASSERT_TRUE(letters) << letters.error().message;
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].recorded, (ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "x", 5}));
  EXPECT_EQ((*letters)[0].retried_at_ms, store_.now_ms);
  EXPECT_EQ((*letters)[1].recorded.dead_letter_id, "d2");
  EXPECT_EQ((*letters)[1].retried_at_ms, std::nullopt);
  auto counts = count_dead_letters(store_);
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->recorded, 2u);
  EXPECT_EQ(counts->retried, 1u);
}

class CorruptDeadLetterTest : public SagaRecordsTest, public ::testing::WithParamInterface<const char*> {};

// Not JSON, a field missing, an unknown step: the listing fails at that record.
INSTANTIATE_TEST_SUITE_P(
    SagaRecords, CorruptDeadLetterTest,
    ::testing::Values(
        "{not json", R"({"dead_letter_id":"d2","order_id":"o2"})",
        R"({"dead_letter_id":"d2","order_id":"o2","step":"ship","attempts":3,"last_error":"","at_ms":1})"));

TEST_P(CorruptDeadLetterTest, IsCorruptNamingItsPositionNeverSkipped) {
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "x", 5});
  auto at = append_raw(kDeadLetterStream, "DeadLetterRecorded", GetParam());
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRetried{"d1", "o1"});
  auto letters = dead_letters(store_);
  ASSERT_FALSE(letters);
  EXPECT_EQ(letters.error().code, Errc::corrupt);
  EXPECT_NE(letters.error().message.find("position " + to_string(at)), std::string::npos)
      << letters.error().message;
}

TEST_F(SagaRecordsTest, AnUnknownTypeInTheDeadLetterStreamIsCorrupt) {
  append_raw(kDeadLetterStream, "DeadLetterForgotten", R"({"dead_letter_id":"d1","order_id":"o1"})");
  auto letters = dead_letters(store_);
  ASSERT_FALSE(letters);
  EXPECT_EQ(letters.error().code, Errc::corrupt);
}

TEST_F(SagaRecordsTest, TheLastSagaEndIsTheNewest) {
  EXPECT_EQ(*last_saga_end(store_, "o1"), std::nullopt);
  append<ds::Event>(saga_stream("o1"), ds::SagaEnded{"o1", ds::SagaState::failed, "timeout", {}});
  append<ds::Event>(saga_stream("o1"), ds::SagaStepRetried{"o1", ds::SagaStep::compensate, 2, 9, ""});
  append<ds::Event>(saga_stream("o1"),
                    ds::SagaEnded{"o1",
                                  ds::SagaState::compensated,
                                  "timeout",
                                  {{ds::SagaStep::compensate, ds::StepStatus::completed, 2, "", 10}}});
  append<ds::Event>(saga_stream("o1"), ds::SagaStepRetried{"o1", std::nullopt, 2, 11, ""});
  auto ended = last_saga_end(store_, "o1");
  ASSERT_TRUE(ended) << ended.error().message;
  ASSERT_TRUE(*ended);
  EXPECT_EQ((*ended)->state, ds::SagaState::compensated);
  EXPECT_EQ((*ended)->steps.size(), 1u);
}

TEST_F(SagaRecordsTest, ACorruptSagaRecordIsCorruptNamingItsPosition) {
  append<ds::Event>(saga_stream("o1"), ds::SagaEnded{"o1", ds::SagaState::completed, "", {}});
  auto at = append_raw(saga_stream("o1"), "SagaEnded", R"({"order_id":"o1","state":"DONE","reason":"","steps":[]})");
  auto ended = last_saga_end(store_, "o1");
  ASSERT_FALSE(ended);
  EXPECT_EQ(ended.error().code, Errc::corrupt);
  EXPECT_NE(ended.error().message.find("position " + to_string(at)), std::string::npos) << ended.error().message;
}

}  // namespace
}  // namespace orderflow::app::saga
