#!/usr/bin/env bash
# Installs, with apt, whatever orderflow needs to build, test and run on Debian 12 that
# is missing. Safe to run again: it installs nothing when everything is there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libpq-dev postgresql libsimdjson-dev libcli11-dev libtomlplusplus-dev libfmt-dev libspdlog-dev libssl-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev libxxhash-dev
  curl python3 gdb openssl
  clang-14 libclang-rt-14-dev  # scripts/fuzz.sh: the libFuzzer targets of tests/fuzz
  python3-yaml  # docs/openapi.yaml -> JSON at build time (scripts/yaml_to_json.py)
  python3-jsonschema  # tests: the OpenAPI examples and every e2e answer against their schemas
  chromium  # tests/e2e/test_docs.py: the docs page rendered headless
  prometheus  # tests/e2e/test_prometheus.py: a real Prometheus scraping serve, and promtool
  libnats-dev librdkafka-dev  # the bus relay's clients (src/bus/)
  nats-server  # tests/bus: a real JetStream server the tests start
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

# npm (Debian's, unless a node.js with its own npm is there): the build fetches Redoc with it, and
# tests/docs lints docs/openapi.yaml with the @redocly/cli its package-lock.json pins.
if ! command -v npm >/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq npm
fi
docs_tests="$(dirname "$0")/../tests/docs"
if [ ! -x "$docs_tests/node_modules/.bin/redocly" ] || [ "$docs_tests/package-lock.json" -nt "$docs_tests/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$docs_tests" --no-audit --no-fund --loglevel=error
fi
