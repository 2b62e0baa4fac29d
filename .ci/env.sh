# Sourced by every build, test and demo script: one place for the toolchain environment.
# One target dir per machine, outside the clone, so CI and later runs reuse the burn build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fusion-vlm/target}"
# lavapipe (Mesa's software Vulkan) wants a runtime dir; a private one silences its warning.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/fusion-xdg.XXXXXX)}"
export PATH="$HOME/.cargo/bin:$PATH"
