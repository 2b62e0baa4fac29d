#!/usr/bin/env bash
# Sets everything up and runs every test: native (GPU kernels on lavapipe), then the wasm
# build in headless Chromium with WebGPU, and its kernels in Node on Dawn with shader-f16. CI
# runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
source .ci/env.sh

echo "== native tests (cargo test, wgpu on $(ls /usr/share/vulkan/icd.d/ 2>/dev/null | tr '\n' ' '))"
cargo test --workspace --locked

echo "== wasm build"
bash web/build.sh

echo "== WebGPU tests (Chromium $(chromium --version 2>/dev/null | awk '{print $2}') on SwiftShader; Dawn on Mesa 25's lavapipe)"
(cd tests/browser && npm test)
