// The simulation's store keeps the same EventStore contract as the real ones, so what the
// saga simulation finds (or does not) holds for them too.
#include "app/saga/sim_event_store.h"

#include "es/event_store_contract.h"

namespace orderflow::testing {
namespace {

class SimHarness : public StoreHarness {
 public:
  es::EventStore& store() override { return store_; }
  es::SnapshotStore& snapshots() override { return store_; }
  es::CheckpointStore& checkpoints() override { return store_; }
  // The data live in memory: reopening only changes how they are read.
  void reopen(const es::UpcasterRegistry* upcasters) override { store_.set_upcasters(upcasters); }
  // Events live as objects, not bytes: nothing to corrupt, no chain to check.
  bool has_medium() const override { return false; }
  es::StoredLog& log() override { return no_log_; }
  Result<void> tamper(es::Position, const std::string&, const std::string&) override {
    return fail(Errc::internal, "the simulation's store keeps no stored bytes");
  }
  Result<void> tamper_snapshot(const std::string&, const std::string&, const std::string&) override {
    return fail(Errc::internal, "the simulation's store keeps no stored bytes");
  }

 private:
  struct NoLog final : es::StoredLog {
    Result<es::Position> scan_stored(es::Position from, std::size_t, const StoredFn&) override { return from; }
  } no_log_;
  std::mt19937_64 rng_{1};
  SimEventStore store_{rng_};
};

INSTANTIATE_TEST_SUITE_P(Sim, EventStoreContract,
                         ::testing::Values(EventStoreContractParam{"sim", [] { return std::make_unique<SimHarness>(); }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace orderflow::testing
