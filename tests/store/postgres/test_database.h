// The PostgreSQL server the tests use: ORDERFLOW_TEST_PG (set by scripts/pg-test-server.sh,
// which scripts/test.sh runs the suite under). Without it the PostgreSQL tests skip.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "store/postgres/pg.h"

namespace orderflow::testing {

inline const char* test_server() { return std::getenv("ORDERFLOW_TEST_PG"); }

// A private schema on the test server, dropped with everything in it at scope exit, so
// every test starts from an empty store.
class TestSchema {
 public:
  TestSchema() {
    std::mt19937_64 rng{std::random_device{}()};
    name_ = "test_" + std::to_string(rng());
  }
  ~TestSchema() {
    if (!test_server()) return;
    if (auto c = postgres::Connection::open(test_server(), ""))
      (void)c->exec("DROP SCHEMA IF EXISTS " + postgres::quote_identifier(name_) + " CASCADE");
  }
  TestSchema(const TestSchema&) = delete;
  TestSchema& operator=(const TestSchema&) = delete;

  const std::string& name() const { return name_; }
  // A connection of our own into the schema (as another process would have).
  postgres::Connection connect() const {
    auto c = postgres::Connection::open(test_server(), name_);
    if (!c) throw std::runtime_error(c.error().message);
    return std::move(*c);
  }

 private:
  std::string name_;
};

}  // namespace orderflow::testing
