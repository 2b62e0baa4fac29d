#!/usr/bin/env bash
# The benchmark recipe of BENCHMARKS.md in two halves, so a short lease on the GPU machine goes
# to measuring rather than to typing:
#
#   bash tests/bench/gpu.sh prepare        # here: release binary in .bench/, Vulkan loader in .gl/
#   # there, with the `device` tool: run, carry [".bench", ".gl"], one model per call (≤ 10 min):
#   bash tests/bench/gpu.sh run 3b         # → $OUT/bench-3b.json, $OUT/bench-3b.log, $OUT/device.txt
#   bash tests/bench/gpu.sh run 8b
#   bash tests/bench/gpu.sh torch          # PyTorch bf16 eager decode of both shapes → $OUT/torch-*.json
#   # here, on what came back:
#   python3 tests/bench/summary.py /work/.device/…/bench-3b.json …/bench-8b.json …/torch-3b.json
set -euo pipefail
cd "$(dirname "$0")/../.."

exclude() { mkdir -p .git/info; grep -qxF "$1" .git/info/exclude 2>/dev/null || echo "$1" >> .git/info/exclude; }

case "${1:-}" in
prepare)
    source .ci/env.sh
    cargo build --release --locked --bin fusion
    exclude /.bench/
    mkdir -p .bench && cp "$CARGO_TARGET_DIR/release/fusion" .bench/ && strip .bench/fusion
    # The GPU machine is bare: no Vulkan loader (see the device tool's README).
    exclude /.gl/
    mkdir -p .gl /tmp/amd64/partial
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libvulkan1 >/dev/null)
    ls -l .bench .gl
    ;;
run)
    model="${2:?which model: 3b or 8b}"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    { nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv; git log -1 --format='commit %h %s' 2>/dev/null || true; } > "$OUT/device.txt"
    .bench/fusion bench --model "$model" --stock --tokens 128 --repeats 20 --copy-mib 1024 \
        --out "$OUT/bench-$model.json" 2>&1 | tee "$OUT/bench-$model.log"
    ;;
torch)
    export PYTHONUNBUFFERED=1
    # Prompts as long as our image prompt for each model (BENCHMARKS.md).
    python3 tests/bench/torch_decode.py --model FUSION-Phi3.5-3B --prompt 895 --tokens 128 --out "$OUT/torch-3b.json"
    python3 tests/bench/torch_decode.py --model FUSION-LLaMA3.1-8B --prompt 1227 --tokens 128 --out "$OUT/torch-8b.json"
    ;;
*)
    echo "usage: bash tests/bench/gpu.sh prepare | run 3b|8b | torch" >&2
    exit 2
    ;;
esac
