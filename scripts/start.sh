#!/usr/bin/env bash
# The README's first command: install what is missing, build, and start the server on
# the embedded store (--listen 127.0.0.1:8080, --data ./orderflow-data). Extra
# arguments go to `orderflow serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/orderflow serve "$@"
