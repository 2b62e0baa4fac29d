# Sourced by every build, test and demo script: one place for the toolchain environment.
# One target dir per checkout, its own target/. Never one shared by several checkouts: cargo
# records the files a build read outside the package (tests/, shaders/) by absolute path, so a
# second checkout's edits there would be checked against the first checkout's files, found
# up to date, and not built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}"
# lavapipe (Mesa's software Vulkan) wants a runtime dir; a private one silences its warning.
# One per user, not one per sourcing: nothing removes them, and every script sources this.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/fusion-xdg-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
export PATH="$HOME/.cargo/bin:$PATH"
# Mesa 25's lavapipe, unpacked by .ci/setup (never installed): Dawn's Vulkan driver for the
# shader-f16 kernel tests (tests/browser/dawn.mjs).
export FUSION_DAWN_ICD="${FUSION_DAWN_ICD:-$HOME/.cache/fusion-vlm/mesa-backports/lvp_icd.json}"
