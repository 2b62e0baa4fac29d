#!/usr/bin/env bash
# Sets everything up and runs every test: the style gates, native (GPU kernels on lavapipe), then
# the wasm build in headless Chromium with WebGPU, and its kernels in Node on Dawn with
# shader-f16. CI runs exactly this (.ci/run), on a fresh clone within 90 minutes: each phase
# prints its time, the slowest tests are listed, and past TRIPWIRE_MINUTES the run fails, well
# inside CI's limit, so that a slow machine or a grown suite shows here before it costs a landing.
# 75 minutes, not 60: the builds of a cold run took 42 minutes here on a busy day (2026-12-07),
# and the tests need 25 more; a tripwire an ordinary run can reach fails landings instead of
# warning of them.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIPWIRE_MINUTES=${FUSION_TRIPWIRE_MINUTES:-75}
if [ -z "${FUSION_UNDER_TRIPWIRE:-}" ]; then
    # timeout runs the suite in a process group of its own and stops all of it at the limit.
    status=0
    FUSION_UNDER_TRIPWIRE=1 timeout --kill-after=30 "${TRIPWIRE_MINUTES}m" bash "$0" "$@" || status=$?
    if [ "$status" = 124 ]; then
        echo "tests/run.sh: FAILED: the suite ran past its ${TRIPWIRE_MINUTES}-minute tripwire (CI allows 90): make it faster, see the phase times above" >&2
    fi
    exit "$status"
fi

# A fresh clone builds once: incremental compilation would only add work and gigabytes of disk,
# which the browser tests need (Chromium's storage quota shrinks with the free disk).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
phases=()
phase() {
    phases+=("$(printf '%3dm%02ds  %s' $((SECONDS / 60)) $((SECONDS % 60)) "$1")")
    echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $1"
}
report() {
    phase "end"
    echo "phase start times:"
    printf '  %s\n' "${phases[@]}"
}
# One closing line for the whole run, from what each runner reported.
totals() {
    # (The soak's own process reports its one test again, with the others filtered out.)
    sed -n 's/^test result: .*\. \([0-9]*\) passed; \([0-9]*\) failed; .* 0 filtered out.*/\1 \2/p; s/^browser: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$@" \
        | awk '{ p += $1; f += $2 } END { printf "total: %d passed, %d failed\n", p, f }'
}
# A process and everything it started (the background wasm build, when the run stops early).
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
on_exit() {
    if [ -n "${wasm_build:-}" ]; then kill_tree "$wasm_build"; fi
    report
}
trap on_exit EXIT

phase "setup"
bash .ci/setup
source .ci/env.sh

phase "style: cargo fmt, prettier"
cargo fmt --all -- --check
tests/browser/node_modules/.bin/prettier --check --log-level warn web tests/browser tests/bench tests/cargo-messages.mjs

# The wasm build runs beside the native build and tests: each spends long stretches on one core
# (a chain of large crates that depend on each other, a test waiting on lavapipe), and together
# they keep both busy. Its output waits in a log until it is needed.
wasm_log="$CARGO_TARGET_DIR/wasm-build.log"
mkdir -p "$CARGO_TARGET_DIR"
( start=$SECONDS; bash web/build.sh && echo "wasm build: $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s" ) > "$wasm_log" 2>&1 &
wasm_build=$!

phase "native build (tests and the CLI), linted by clippy; the wasm build beside it"
# clippy-driver compiles the workspace's own crate in place of rustc (what `cargo clippy` does,
# with the arguments it passes): the lints cost no second build of the dependencies.
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver) \
    || { echo "tests/run.sh: clippy is required (rustup component add clippy)" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# The test binaries, listed by cargo; run directly (below) so that libtest reports each test's time.
bins=$(cargo test --workspace --locked --no-run --message-format=json \
    | node tests/cargo-messages.mjs)
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
[ "$(echo "$bins" | wc -w)" = 2 ] || { echo "tests/run.sh: expected the library's and tests/native's test binaries, got: $bins" >&2; exit 1; }

phase "native tests (wgpu on $(ls /usr/share/vulkan/icd.d/ 2>/dev/null | tr '\n' ' '))"
log="$CARGO_TARGET_DIR/native-tests.log"
: > "$log"
# Run from the package folder, as cargo test does. `--report-time` is a libtest option behind
# -Z unstable-options: RUSTC_BOOTSTRAP here reaches only the test binaries, no compiler.
for bin in $bins; do
    (cd crate && RUSTC_BOOTSTRAP=1 "$bin" -Z unstable-options --report-time) 2>&1 | tee -a "$log"
done
echo "slowest native tests (each test's own time; two run at once):"
sed -n 's/^test \(.*\) \.\.\. ok <\([0-9.]*\)s>$/\2 \1/p' "$log" | sort -rn | head -8 | awk '{ printf "  %7.1fs  %s\n", $1, $2 }'

phase "wasm build (waiting for it)"
wasm_status=0
wait "$wasm_build" || wasm_status=$?
wasm_build=
cat "$wasm_log"
[ "$wasm_status" = 0 ] || { echo "tests/run.sh: the wasm build failed ($wasm_status)" >&2; exit "$wasm_status"; }

phase "WebGPU tests (Chromium $(chromium --version 2>/dev/null | awk '{print $2}') on SwiftShader; Dawn on Mesa 25's lavapipe)"
(cd tests/browser && npm test) 2>&1 | tee "$CARGO_TARGET_DIR/browser-tests.log"
phase "all tests passed"
trap - EXIT
report
totals "$log" "$CARGO_TARGET_DIR/browser-tests.log"
