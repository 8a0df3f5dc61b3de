#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): install what is missing, build,
# check the lock annotations with clang's thread-safety analysis, run the whole test suite,
# then the unit and contract tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer (the bus tests too), and the concurrent core (store,
# pipeline, subscriptions, the application's threads: saga, relay, projections; HTTP
# server; the NATS bus tests, not Kafka's) under ThreadSanitizer. Everything runs beside a
# throwaway PostgreSQL server (scripts/pg-test-server.sh), for the PostgreSQL store's tests.
# Last, the libFuzzer targets (tests/fuzz) for 30 s each (scripts/fuzz.sh).
#   ORDERFLOW_SOAK=1   also run the long soak tests, and fuzz 600 s per target.
#   ORDERFLOW_NO_SANITIZE=1   skip the sanitizer build (quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
# Paths relative to the checkout, so ccache reuses objects across clones.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
scripts/install-deps.sh
if [ -z "${ORDERFLOW_TEST_PG:-}" ]; then exec scripts/pg-test-server.sh "$0" "$@"; fi
jobs=$(nproc)

echo "== build (release, -Werror)"
scripts/build.sh

# Clang's thread-safety analysis of the lock annotations (core/thread_annotations.h): every
# library's sources checked, not compiled (CMakeLists.txt, ORDERFLOW_THREAD_SAFETY), so it costs
# a parse of each file and no tests run; only the analysis's findings fail it. Not a unity
# build, unlike the others: parsing each library source alone, it fails on a missing #include
# that a unity batch would hide.
echo "== thread-safety analysis (clang-14 -Wthread-safety, build-tsa/)"
tsa_start=$SECONDS
CC=clang-14 CXX=clang++-14 cmake -S . -B build-tsa -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DORDERFLOW_THREAD_SAFETY=ON -DORDERFLOW_WERROR=OFF -DCMAKE_UNITY_BUILD=OFF >/dev/null
if ! cmake --build build-tsa --target orderflow_cli >build-tsa/analysis.log 2>&1; then
  { grep -E -B2 -A6 'error' build-tsa/analysis.log || tail -n 60 build-tsa/analysis.log; } | head -n 200 >&2 || true
  echo "thread-safety analysis failed: the whole log is in build-tsa/analysis.log" >&2
  exit 1
fi
echo "thread-safety analysis passed in $((SECONDS - tsa_start)) s"
echo "== tests"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

if [ -z "${ORDERFLOW_NO_SANITIZE:-}" ]; then
  echo "== build (ASan + UBSan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DORDERFLOW_SANITIZE=ON \
    -DCMAKE_UNITY_BUILD="${ORDERFLOW_UNITY:-ON}" >/dev/null
  cmake --build build-asan
  echo "== tests under ASan + UBSan"
  # The bus tests too, NATS's and Kafka's (~2 min each here); not e2e_kafka_projector_group,
  # which runs server processes (the release run has it).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ORDERFLOW_SIM_SEEDS=200 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900 -LE e2e -E '^e2e_'

  echo "== build (TSan: the concurrent core, the application's threads, the HTTP server and the NATS bus)"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORDERFLOW_TSAN=ON \
    -DCMAKE_UNITY_BUILD="${ORDERFLOW_UNITY:-ON}" >/dev/null
  cmake --build build-tsan --target core_tests es_tests store_sqlite_tests store_postgres_tests app_tests api_tests bus_tests
  echo "== tests under TSan"
  # Not Kafka's tests (their names say Kafka): librdkafka crashes under TSan.
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build-tsan --output-on-failure -j "$jobs" --timeout 900 \
    -L '^(core|es|store_sqlite|store_postgres|app|api|bus)$' -E '[Kk]afka'
fi

echo "== fuzzing (clang-14 libFuzzer, ASan + UBSan)"
scripts/fuzz.sh
