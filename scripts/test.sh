#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): install what is missing, build,
# run the whole test suite, then the unit and contract tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   ORDERFLOW_SOAK=1   also run the long soak/fuzz tests.
#   ORDERFLOW_NO_SANITIZE=1   skip the sanitizer build (quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== build (release, -Werror)"
scripts/build.sh
echo "== tests"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

if [ -z "${ORDERFLOW_NO_SANITIZE:-}" ]; then
  echo "== build (ASan + UBSan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DORDERFLOW_SANITIZE=ON >/dev/null
  cmake --build build-asan
  echo "== tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900 -LE e2e
fi
