#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-14 into build-fuzz/ and runs each for
# a bounded time, starting from its seed corpus (tests/fuzz/corpus/<name>/, read only; what
# the run finds goes to build-fuzz/corpus/<name>/). A crash, leak, sanitizer report or hang
# fails the script and leaves the input in build-fuzz/crashes/ (reproduce it with
# `build-fuzz/tests/fuzz/fuzz_<name> FILE`; then add it to the regression tests).
#   scripts/fuzz.sh [SECONDS_EACH] [NAME…]   default: 30 s each (ORDERFLOW_SOAK=1: 600 s), every target
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
seconds=${1:-$([ -n "${ORDERFLOW_SOAK:-}" ] && echo 600 || echo 30)}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(json_body query_params event_decode token http_request)
fi

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DORDERFLOW_FUZZ=ON -DORDERFLOW_WERROR=OFF -DCMAKE_UNITY_BUILD="${ORDERFLOW_UNITY:-ON}" >/dev/null
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}"

mkdir -p build-fuzz/crashes build-fuzz/logs
for t in "${targets[@]}"; do
  echo "== fuzz $t (${seconds} s)"
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/logs/$t.log"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t-" \
      "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz $t failed: the input is in build-fuzz/crashes/, the whole log in $log" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done
