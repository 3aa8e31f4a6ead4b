#!/usr/bin/env bash
# The ONNX Runtime peer end to end on a machine without a GPU (python3 with torch, transformers,
# numpy and safetensors; SwiftShader for WebGPU, as tools/setup.sh installs it), on a small
# Llama-3-shaped model (llama3 RoPE scaling, GQA, tied embeddings: SMALL_LLAMA3 of
# test/bench/ort.test.ts):
#   1. random_init.py's weights equal strata's randomWeights bit for bit (against a checkpoint
#      write-hf.ts writes from strata's own init);
#   2. run.sh as the device runs it (from .ort/, bench/ort/build.sh's pack), with SwiftShader as
#      the Vulkan driver and the export on the CPU: the f32 check must pass on WebGPU; f16 is
#      expected to fail there, since SwiftShader has no shader-f16;
#   3. the exported graphs on ONNX Runtime's CPU provider, f32 and f16: both checks must pass.
#   bash bench/ort/check-cpu.sh [WORK_DIR]
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
W=${1:-$(mktemp -d /tmp/strata-ort-check.XXXX)}
mkdir -p "$W"
[ -f .ort/libonnxruntime.so.1.xz ] || { echo "check-cpu.sh: no .ort/ (run bench/ort/build.sh)" >&2; exit 2; }
node -e "
  const src = require('fs').readFileSync('test/bench/ort.test.ts', 'utf8');
  process.stdout.write(/SMALL_LLAMA3 = \`([^\`]*)\`/.exec(src)[1]);" > "$W/small-llama3.strata"
npx tsx bench/ort/write-hf.ts --spec "$W/small-llama3.strata" --out "$W/hf"
python3 bench/ort/random_init.py "$W/hf" 0
npx tsx bench/ort/write-hf.ts --spec "$W/small-llama3.strata" --config-only --out "$W/cfg"
rm -f "$W/ort.json"
SKIP_DEBS=1 VK_ICD=$root/.cache/swiftshader/vk_swiftshader_icd.json EXPORT_DEVICE=cpu \
  HF_CONFIG="$W/cfg" ORT_WORK="$W/run" REPS=3 BENCH_ARGS="--prefill 64 --decode 16" \
  bash bench/ort/run.sh "$W/ort.json" 2>&1 | grep -v VerifyEachNode
for p in f32 f16; do
  python3 bench/ort/bench_ort.py --lib "$W/run/libonnxruntime.so.1" --model "$W/run/onnx-$p" \
    --precision $p --ep cpu --prefill 0 --decode 0 --out "$W/cpu.json"
done
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
bad = 0
for name, ep, want in [("ort.json", "webgpu", {"f32": True, "f16": False}), ("cpu.json", "cpu", {"f32": True, "f16": True})]:
    r = json.load(open(f"{w}/{name}"))["precisions"]
    for p, should in want.items():
        x = r.get(p, {})
        ok = x.get("correct") is True and "error" not in x
        c = x.get("check", {})
        print(f"{ep} {p}: {'correct' if ok else 'failed'} (worst {c.get('worstRelative', float('nan')):.2e} of the largest "
              f"logit, tolerance {c.get('tolerance')}){'' if ok else ': ' + x.get('error', '')[:160]}")
        bad += ok != should
sys.exit(1 if bad else 0)
PY
echo "check-cpu.sh: as expected ($W)"
