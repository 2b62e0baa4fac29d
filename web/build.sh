#!/usr/bin/env bash
# Builds the engine for wasm32 and generates its JS bindings into web/pkg/.
# Debian's rustc-web can build std for wasm32 (rustup's toolchain here cannot fetch it), so
# this build alone uses /usr/bin/cargo with -Zbuild-std; see shared/notes/toolchain.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/env.sh

export RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
# cdylib only here: native builds stay rlib and skip linking a shared library.
PATH="/usr/bin:$PATH" cargo rustc --quiet --timings --release --package fusion-vlm --lib \
    --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --crate-type cdylib
# Without the `name` section (function names for stack traces): it was 25 of the module's 51 MB
# (gzip: 5.5 MB → 4.3 MB), downloaded by every first visit and shipped in the npm package.
wasm-bindgen --target web --remove-name-section --out-dir web/pkg "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/fusion.wasm"
echo "wasm: $(du -h web/pkg/fusion_bg.wasm | cut -f1) web/pkg/fusion_bg.wasm"
