#!/usr/bin/env bash
# Sets everything up, builds the wasm engine and serves the demo page on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
bash web/build.sh
exec node web/serve.mjs --port "${PORT:-8080}"
