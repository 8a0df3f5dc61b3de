// The saga's admin service, as every entrance calls it: a saga found from its record, the
// dead letters, and a retry that records what the saga acts on.
#include "app/saga/saga_admin.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <random>

#include "app/saga/sim_event_store.h"
#include "codec/domain_codec.h"

namespace orderflow::app::saga {
namespace {

namespace ds = domain::saga;

class SagaAdminTest : public ::testing::Test {
 protected:
  template <class Event>
  void append(const es::StreamId& stream, const Event& e) {
    es::AppendRequest req;
    req.stream_id = stream;
    req.events.push_back({"e" + std::to_string(++events_), ds::event_type_name(e), 1, codec::encode_event(e), "{}"});
    ASSERT_TRUE(store_.append(std::move(req)));
  }
  Result<DeadLetterRetryAccepted> retry(const std::string& id) {
    std::optional<Result<DeadLetterRetryAccepted>> out;
    admin_.retry({id, "admin:ops"}, [&](Result<DeadLetterRetryAccepted> r) { out.emplace(std::move(r)); });
    EXPECT_TRUE(out);  // the simulated store answers inline
    return std::move(*out);
  }

  int events_ = 0;
  std::mt19937_64 rng_{1};
  orderflow::testing::SimEventStore store_{rng_};
  SagaAdmin admin_{store_, nullptr};
};

TEST_F(SagaAdminTest, WithoutARunnerASagaIsFoundFromItsLastRecordAndNoneIsListed) {
  auto missing = admin_.find("o1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  ds::StepRecord step{ds::SagaStep::reserve, ds::StepStatus::failed, 3, "deadline passed", 7};
  append<ds::Event>(saga_stream("o1"), ds::SagaEnded{"o1", ds::SagaState::failed, "timeout", {step}});
  auto found = admin_.find("o1");
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(found->state, ds::SagaState::failed);
  EXPECT_EQ(found->reason, "timeout");
  EXPECT_EQ(found->steps, std::vector<StepView>{step});
  EXPECT_EQ(found->deadline_ms, 0);
  EXPECT_TRUE(admin_.list({}).empty());
}

TEST_F(SagaAdminTest, ARetryRecordsDeadLetterRetriedForTheOrderWithTheActor) {
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "", 5});
  auto accepted = retry("d1");
  ASSERT_TRUE(accepted) << accepted.error().message;
  EXPECT_EQ(accepted->dead_letter_id, "d1");
  EXPECT_EQ(accepted->order_id, "o1");
  auto stored = store_.read_stream(kDeadLetterStream, es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_EQ(stored->size(), 2u);
  const auto& e = stored->back();
  EXPECT_EQ(e.position, accepted->position);
  EXPECT_EQ(e.type, "DeadLetterRetried");
  EXPECT_EQ(e.data, R"({"dead_letter_id":"d1","order_id":"o1"})");  // as the route always wrote it
  EXPECT_EQ(boost::json::parse(e.metadata), boost::json::parse(R"({"correlation_id":"o1","actor":"admin:ops"})"));
  auto letters = admin_.dead_letters();
  ASSERT_TRUE(letters);
  EXPECT_EQ(letters->front().retried_at_ms, e.recorded_at_ms);
}

TEST_F(SagaAdminTest, ARetryOfAnUnknownDeadLetterIsNotFoundAndWritesNothing) {
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "", 5});
  auto accepted = retry("d2");
  ASSERT_FALSE(accepted);
  EXPECT_EQ(accepted.error().code, Errc::not_found);
  EXPECT_EQ(store_.read_stream(kDeadLetterStream, es::StreamVersion{0}, 10, es::Direction::forward)->size(), 1u);
}

TEST_F(SagaAdminTest, AStoreThatRefusesTheRetryAnswersItsError) {
  append<ds::DeadLetterEvent>(kDeadLetterStream, ds::DeadLetterRecorded{"d1", "o1", ds::SagaStep::charge, 3, "", 5});
  store_.refuse_rate = 1;
  auto accepted = retry("d1");
  ASSERT_FALSE(accepted);
  EXPECT_EQ(accepted.error().code, Errc::unavailable);
}

}  // namespace
}  // namespace orderflow::app::saga
