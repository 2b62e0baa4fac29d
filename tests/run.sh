#!/usr/bin/env bash
# Sets everything up and runs every test: native (GPU kernels on lavapipe), then the wasm
# build in headless Chromium with WebGPU. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
source .ci/env.sh

echo "== native tests (cargo test, wgpu on $(ls /usr/share/vulkan/icd.d/ 2>/dev/null | tr '\n' ' '))"
cargo test --workspace --locked

echo "== wasm build"
bash web/build.sh

echo "== browser tests (Chromium $(chromium --version 2>/dev/null | awk '{print $2}'), WebGPU)"
(cd tests/browser && npm test)
