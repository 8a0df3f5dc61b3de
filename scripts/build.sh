#!/usr/bin/env bash
# Configures and builds orderflow into build/ (release, warnings are errors).
set -euo pipefail
cd "$(dirname "$0")/.."
# Paths relative to the checkout, so ccache reuses objects across clones.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
