#!/usr/bin/env bash
# Sets everything up and runs every test: native (GPU kernels on lavapipe), then the wasm
# build in headless Chromium with WebGPU, and its kernels in Node on Dawn with shader-f16. CI
# runs exactly this (.ci/run), on a fresh clone within 90 minutes: each phase prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh clone builds once: incremental compilation would only add work and gigabytes of disk,
# which the browser tests need (Chromium's storage quota shrinks with the free disk).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
phase() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

phase "setup"
bash .ci/setup
source .ci/env.sh

phase "native tests (cargo test, wgpu on $(ls /usr/share/vulkan/icd.d/ 2>/dev/null | tr '\n' ' '))"
cargo test --workspace --locked

phase "wasm build"
bash web/build.sh

phase "WebGPU tests (Chromium $(chromium --version 2>/dev/null | awk '{print $2}') on SwiftShader; Dawn on Mesa 25's lavapipe)"
(cd tests/browser && npm test)
phase "all tests passed"
