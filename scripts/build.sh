#!/usr/bin/env bash
# Configures and builds orderflow into build/ (release, warnings are errors).
set -euo pipefail
cd "$(dirname "$0")/.."
# Paths relative to the checkout, so ccache reuses objects across clones.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
# A unity build (CMAKE_UNITY_BUILD: each module's sources compiled a few at a time as one):
# a cold build takes about half the time. ORDERFLOW_UNITY=OFF: one object per source, the
# quicker rebuild while editing one file.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD="${ORDERFLOW_UNITY:-ON}" >/dev/null
cmake --build build
