#!/usr/bin/env bash
# Installs, with apt, whatever orderflow needs to build, test and run on Debian 12 that
# is missing. Safe to run again: it installs nothing when everything is there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libpq-dev postgresql libsimdjson-dev libcli11-dev libfmt-dev libspdlog-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev libxxhash-dev
  curl python3 gdb openssl
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: the libFuzzer targets of tests/fuzz
  prometheus  # tests/e2e/test_prometheus.py: a real Prometheus scraping serve, and promtool
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi
