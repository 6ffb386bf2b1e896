#!/usr/bin/env bash
# The GPU checks of docs/models.md, as one prepared script for a host with a CUDA device:
#   1. the model parity tests (transformers fixtures, 1e-4) on libtorch at $DEVICE;
#   2. a few training steps of a Qwen3-0.6B-shaped model (bench/arch/qwen3-0.6b.json, random
#      weights, the byte-level BPE + ChatML fixture tokenizer) for both roles on $DEVICE:
#      warm start + steps through `mgrpo bench train`, printing step time and rollout tokens/s.
# Usage: bench/gpu_check.sh [DEVICE] [ARCH_JSON] [STEPS]   (default cuda:0, the 0.6B shape, 3)
# On a CPU-only machine `bench/gpu_check.sh cpu models/tests/fixtures/hf/qwen3/config.json 1`
# runs the same path small (what CI-less sessions use to check the script itself).
set -euo pipefail
DEVICE=${1:-cuda:0}
ARCH=${2:-bench/arch/qwen3-0.6b.json}
STEPS=${3:-3}
OUT=${OUT:-/tmp/mgrpo-gpu-check}
mkdir -p "$OUT"
eval "$(bench/tch-env.sh)"
echo "== 1. parity tests on tch/$DEVICE"
MGRPO_TEST_BACKEND=tch MGRPO_TEST_DEVICE="$DEVICE" cargo test --release -p mgrpo-models --features tch 2>&1 | tail -5
echo "== 2. $ARCH for both roles on tch/$DEVICE, $STEPS steps"
cargo build --release --features tch --bin mgrpo
M=target/release/mgrpo
rm -rf "$OUT/model" "$OUT/run"
$M hf init --config examples/tiny.toml --arch "$ARCH" --tokenizer models/tests/fixtures/hf/tokenizer --out "$OUT/model"
python3 - "$OUT" "$DEVICE" <<'PY'
import sys
out, device = sys.argv[1], sys.argv[2]
s = open("examples/tiny.toml").read()
for role in ("main", "sub"):
    old = f'[models.{role}]\npreset = "tiny"'
    assert old in s, old
    s = s.replace(old, f'[models.{role}]\nhf = "{out}/model"\nbackend = "tch"\ndevice = "{device}"', 1)
open(f"{out}/gpu.toml", "w").write(s)
PY
$M bench train --config "$OUT/gpu.toml" --steps "$STEPS" --run "$OUT/run" | tee "$OUT/bench-train.txt"
python3 - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    print(f"step {r['step']}: {r['step_time_s']:.2f} s (rollout {r['rollout_time_s']:.2f} s, "
          f"{r['tokens_per_s']:.0f} tok/s; main update {r.get('main_update_time_s', 0):.2f} s, "
          f"sub update {r.get('sub_update_time_s', 0):.2f} s)")
PY
