// The ReadModelDb contract suite (es/read_model_db.h): one set of cases, run unchanged
// against every adapter. An adapter's test file instantiates it with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, ReadModelDbContract,
//                            testing::Values(ReadModelDbContractParam{"sqlite", make_harness}));
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "es/read_model_db.h"

namespace orderflow::testing {

// One backend's read-model database over fresh, private data.
class ReadModelDbHarness {
 public:
  virtual ~ReadModelDbHarness() = default;
  virtual es::ReadModelDb& db() = 0;
};

struct ReadModelDbContractParam {
  std::string name;
  // Why the backend cannot run here (the cases skip), or empty.
  std::function<std::string()> unavailable;
  std::function<std::unique_ptr<ReadModelDbHarness>()> make;
};

inline std::string PrintToString(const ReadModelDbContractParam& p) { return p.name; }

class ReadModelDbContract : public ::testing::TestWithParam<ReadModelDbContractParam> {
 protected:
  void SetUp() override {
    if (auto why = GetParam().unavailable(); !why.empty()) GTEST_SKIP() << why;
    harness_ = GetParam().make();
  }
  es::ReadModelDb& db() { return harness_->db(); }
  std::unique_ptr<ReadModelDbHarness> harness_;
};

}  // namespace orderflow::testing
