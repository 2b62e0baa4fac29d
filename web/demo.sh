#!/usr/bin/env bash
# Sets everything up, builds the wasm engine and serves the demo page on localhost with the
# default model: a tiny random-weight FUSION checkpoint (no model hub is reachable here),
# generated and converted to int4 shards by the native CLI. Its answers are noise; pass
# ?model=URL to the page for a real converted model (`fusion convert`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
source .ci/env.sh
bash web/build.sh
models=models/generated
if [ ! -f "$models/tiny/manifest.json" ]; then
    cargo build --quiet --locked --bin fusion
    "$CARGO_TARGET_DIR/debug/fusion" tiny "$models/tiny-src"
    "$CARGO_TARGET_DIR/debug/fusion" convert "$models/tiny-src" "$models/tiny"
fi
exec node web/serve.mjs --port "${PORT:-8080}" --models "$models"
