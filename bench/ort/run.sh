#!/usr/bin/env bash
# ONNX Runtime WebGPU's side of the benchmark, on the GPU machine, from the repository root, with
# .ort/ carried (bench/ort/build.sh makes it; bench/ort/README.md gives the device command):
#   bash bench/ort/run.sh [OUT_JSON]          (default $OUT/ort.json)
# 1. unpacks the Vulkan loader and GL dispatch libraries, and onnxruntime-node's libonnxruntime;
# 2. export_onnx.py builds the e2e suite's weights (strata's randomWeights(spec, SEED), in numpy:
#    random_init.py) into HF's LlamaForCausalLM on the GPU and exports it to ONNX, f32 and f16,
#    with past/present KV, keeping PyTorch's logits of a fixed prompt and 3 decode steps;
# 3. for f32, then f16: bench_ort.py checks ONNX Runtime's WebGPU logits against PyTorch's, then
#    times prefill 512 and tg128 (median of REPS runs, min, max), rewriting OUT_JSON after each
#    phase, so a run cut short still returns what it measured; a failure lands there as `error`.
# Env: REPS (5), BUDGET seconds for the whole script (560), SEED (0), PRECISIONS (f32,f16),
# EXPORT_DEVICE (cuda); SKIP_DEBS=1 leaves / alone (a machine that has the Vulkan loader); VK_ICD
# names another Vulkan driver's json (SwiftShader, to try the script on a CPU machine); HF_CONFIG
# another folder with a config.json (default .ort/hf, the spec build.sh was given).
set -uo pipefail
PRECISIONS=${PRECISIONS:-f32,f16}
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET:-560}))
root=$(pwd); pack="$root/.ort"
out=${1:-${OUT:-/tmp/out}/ort.json}
W=${ORT_WORK:-/tmp/strata-ort}; mkdir -p "$W" "$(dirname "$out")"
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" >&2; }
left() { echo $(( DEADLINE - $(date +%s) )); }
export PYTHONUNBUFFERED=1
[ -f "$pack/libonnxruntime.so.1.xz" ] || { echo "run.sh: $pack/libonnxruntime.so.1.xz is missing (carry .ort; bench/ort/build.sh makes it)" >&2; exit 2; }
# A failure is written into OUT_JSON as that precision's `error` (kept beside what it measured),
# for bench/report.ts; fail_all does so for every precision and stops.
note() { # precision message
  python3 - "$out" "$1" "$2" <<'PY'
import json, os, sys
out, p, why = sys.argv[1:4]
d = json.load(open(out)) if os.path.exists(out) else {"peer": "onnxruntime-webgpu", "precisions": {}}
r = d["precisions"].setdefault(p, {"precision": p, "ep": "webgpu"})
r.setdefault("error", why)
json.dump(d, open(out, "w"), indent=1)
PY
}
fail_all() { for p in ${PRECISIONS//,/ }; do note "$p" "$1"; done; el "FAILED: $1"; exit 1; }

el "unpacking"
[ -n "${SKIP_DEBS:-}" ] || { for f in "$pack"/debs/*.deb; do dpkg -x "$f" /; done; ldconfig; }
LIB="$W/libonnxruntime.so.1"
xz -dc "$pack/libonnxruntime.so.1.xz" > "$LIB"
GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
ICD=${VK_ICD:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
[ -f "$ICD" ] || ICD=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD XDG_RUNTIME_DIR=/tmp
el "GPU: ${GPU:-none}; Vulkan ICD: ${ICD:-none}; spec $(cat "${HF_CONFIG:-$pack/hf}/spec" 2>/dev/null)"

el "building the weights and exporting to ONNX"
rm -rf "$W/onnx-f32" "$W/onnx-f16"
python3 bench/ort/export_onnx.py "${HF_CONFIG:-$pack/hf}" "$W" --random-seed "${SEED:-0}" \
  --dtypes "$PRECISIONS" --device "${EXPORT_DEVICE:-cuda}" 2>&1 | grep -v '^Loading weights' >&2
[ "${PIPESTATUS[0]}" = 0 ] || fail_all "export_onnx.py failed (see the log)"
python3 - "$out" "$GPU" <<'PY'
import json, os, sys, torch, transformers
out, gpu = sys.argv[1:3]
d = json.load(open(out)) if os.path.exists(out) else {"peer": "onnxruntime-webgpu", "precisions": {}}
d["export"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
d["device"] = gpu or "unknown"
json.dump(d, open(out, "w"), indent=1)
PY

for p in ${PRECISIONS//,/ }; do
  to=$(( $(left) - 5 ))
  [ -d "$W/onnx-$p" ] || { note "$p" "no ONNX model was exported"; continue; }
  [ $to -ge 30 ] || { note "$p" "no time left in the device call"; el "no time left for $p"; continue; }
  el "onnxruntime WebGPU, $p (timeout ${to}s)"
  timeout $to python3 bench/ort/bench_ort.py --lib "$LIB" --model "$W/onnx-$p" --precision $p \
    --reps "${REPS:-5}" --out "$out" ${BENCH_ARGS:-}
  rc=$?
  [ $rc = 124 ] && note "$p" "timed out after ${to}s (the device call's BUDGET)"
  [ $rc = 0 ] || el "bench_ort.py $p: exit $rc"
done
el "done"
