#!/usr/bin/env bash
# The benchmark recipe of BENCHMARKS.md in two halves, so a short lease on the GPU machine goes
# to measuring rather than to typing or building:
#
#   bash tests/bench/gpu.sh prepare        # here: release binary in .bench/, Vulkan loader in .gl/
#   # there, with the `device` tool: ONE call, carry [".bench", ".gl"], timeout_s 600:
#   bash tests/bench/gpu.sh all 480        # 3B, then 8B, then PyTorch, within 480 s → $OUT
#   # here, on what came back:
#   python3 tests/bench/summary.py <files_at>/bench-3b.json <files_at>/bench-8b.json <files_at>/torch-*.json
#
# A session's device time is 15 minutes, the machine's start included, so everything goes in one
# call, most wanted first, each step stopped when its share of the budget runs out. `fusion
# bench` rewrites its report after every phase, so a step stopped early still brings back what
# it measured (a model's `finished: false` says so); `run 3b|8b` and `torch` remain for a longer
# lease.
set -euo pipefail
cd "$(dirname "$0")/../.."

exclude() { mkdir -p .git/info; grep -qxF "$1" .git/info/exclude 2>/dev/null || echo "$1" >> .git/info/exclude; }

# The machine is bare: the Vulkan loader travels in .gl/ (see the device tool's README).
vulkan() {
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    { nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv; git log -1 --format='commit %h %s' 2>/dev/null || true; } > "$OUT/device.txt"
}

# `fusion bench` at the published shapes: the new kernels against their ceilings and against
# burn's kernels on the same shapes. The whole f32 model (`--f32-model`, measured 2026-11-23 and
# unchanged since: burn's code) is left out, minutes of a short lease.
bench() {
    .bench/fusion bench --model "$1" --stock --tokens 128 --repeats 20 --copy-mib 1024 \
        --out "$OUT/bench-$1.json" 2> >(tee "$OUT/bench-$1.log" >&2)
}

# PyTorch bf16 eager at each model's prompt length (our image prompt's, BENCHMARKS.md).
torch_decode() {
    case "$1" in
    3b) python3 tests/bench/torch_decode.py --model FUSION-Phi3.5-3B --prompt 895 --tokens 128 --out "$OUT/torch-3b.json" ;;
    8b) python3 tests/bench/torch_decode.py --model FUSION-LLaMA3.1-8B --prompt 1227 --tokens 128 --out "$OUT/torch-8b.json" ;;
    esac
}

case "${1:-}" in
prepare)
    source .ci/env.sh
    cargo build --release --locked --bin fusion
    exclude /.bench/
    mkdir -p .bench && cp "$CARGO_TARGET_DIR/release/fusion" .bench/ && strip .bench/fusion
    exclude /.gl/
    mkdir -p .gl /tmp/amd64/partial
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libvulkan1 >/dev/null)
    ls -l .bench .gl
    ;;
all)
    budget="${2:-480}"
    vulkan
    export PYTHONUNBUFFERED=1
    # Each step gets a share of what is left (the 8B loads and measures about twice as long as
    # the 3B); a step stopped at its limit keeps its report so far, and the next one goes on.
    step() {
        local share="$1"; shift
        local left=$((budget - SECONDS))
        local limit=$((left * share / 100))
        if [ "$limit" -lt 30 ]; then echo "gpu.sh: no time left for $*" >&2; return 0; fi
        echo "gpu.sh: [${SECONDS}s] $* (at most ${limit}s)" >&2
        timeout "$limit" bash -c '"$@"' step "$@" || echo "gpu.sh: $* ended with status $? (124: stopped at its limit)" >&2
    }
    export -f bench torch_decode
    step 35 bench 3b
    step 75 bench 8b
    step 50 torch_decode 3b
    step 100 torch_decode 8b
    echo "gpu.sh: done after ${SECONDS}s" >&2
    ;;
run)
    vulkan
    bench "${2:?which model: 3b or 8b}"
    ;;
torch)
    export PYTHONUNBUFFERED=1
    torch_decode 3b
    torch_decode 8b
    ;;
*)
    echo "usage: bash tests/bench/gpu.sh prepare | all [seconds] | run 3b|8b | torch" >&2
    exit 2
    ;;
esac
