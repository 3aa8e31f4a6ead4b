#!/usr/bin/env bash
# llama.cpp's side of the benchmark, on the GPU machine, from the repository root, with
# .llama-cpp/ carried (bench/llama-cpp/build.sh makes it; its README gives the device command):
#   bash bench/llama-cpp/run.sh [OUT_JSON]          (default $OUT/llamacpp.json)
# 1. unpacks the Vulkan loader and GL dispatch libraries, Node and llama-bench, and refills the CUDA library's PTX;
# 2. JIT-compiles that PTX for the H200 in the background (prewarm.py, ~70 s on 16 cores);
# 3. writes the GGUF files from strata's e2e weights (write-gguf.ts, bundled:
#    randomWeights(spec, 0) at F32, F16, Q8_0, Q4_0) and checks them;
# 4. once the JIT is done, runs llama-bench pp512 and tg128 with flash attention on, all layers
#    on the GPU, for each file on CUDA, then on Vulkan; the result is rewritten after each run,
#    so a run cut short still returns what it measured.
# Env: LLAMA_CPP_PACK (the carried folder, default .llama-cpp; a copy holding only llb.tar.xz and
# write-gguf.mjs.xz fits one call beside .gpu, whose prelude gives Node and the debs: SKIP_DEBS=1),
# REPS (default 20), BUDGET seconds for the whole script (default 540), SPEC, SEED;
# SKIP_DEBS=1 leaves / alone (a machine that has the Vulkan loader); VK_ICD names another
# Vulkan driver's json (SwiftShader, to try the script on a CPU machine).
set -uo pipefail
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET:-540}))
root=$(pwd); pack="$root/${LLAMA_CPP_PACK:-.llama-cpp}"
out=${1:-${OUT:-/tmp/out}/llamacpp.json}
W=/tmp/strata-llamacpp; mkdir -p "$W" "$(dirname "$out")"
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" >&2; }
left() { echo $(( DEADLINE - $(date +%s) )); }
export PYTHONUNBUFFERED=1
[ -f "$pack/llb.tar.xz" ] || { echo "run.sh: $pack/llb.tar.xz is missing (carry .llama-cpp; bench/llama-cpp/build.sh makes it)" >&2; exit 2; }

el "unpacking"
[ -n "${SKIP_DEBS:-}" ] || { for f in "$pack"/debs/*.deb; do dpkg -x "$f" /; done; ldconfig; }
# A pack without Node (LLAMA_CPP_PACK=.llama-lite, beside .gpu) takes the node on PATH.
if [ -f "$pack/node.xz" ]; then xz -dc "$pack/node.xz" > "$W/node" && chmod +x "$W/node"
else ln -sf "$(command -v node)" "$W/node"; fi
xz -dc "$pack/write-gguf.mjs.xz" > "$W/write-gguf.mjs"
rm -rf "$W/llb"; xz -dc "$pack/llb.tar.xz" | tar -xf - -C "$W"
ZSTD="$W/llb/zstd" python3 bench/llama-cpp/ptx_pack.py fill "$W/llb/cu/libggml-cuda.so.hollow" \
  "$W/llb/ptx" "$W/llb/cu/libggml-cuda.so" >&2 || el "PTX REFILL FAILED: CUDA runs will fail"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader >&2
# llama.cpp's CUDA build wants CUDA 13's runtime and cuBLAS, which the machine has (PyTorch's).
CULIBS=$(find /usr/local /opt /usr/lib/x86_64-linux-gnu -maxdepth 9 \( -name 'libcudart.so.13' -o -name 'libcublas.so.13' -o -name 'libcublasLt.so.13' \) 2>/dev/null | xargs -r -n1 dirname | awk '!seen[$0]++' | paste -sd:)
ICD=${VK_ICD:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
[ -f "$ICD" ] || ICD=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
export VK_DRIVER_FILES=$ICD XDG_RUNTIME_DIR=/tmp CUDA_CACHE_PATH=/tmp/nvcache CUDA_CACHE_MAXSIZE=4294967296
el "CUDA 13 libraries: ${CULIBS:-none found}; Vulkan ICD: $ICD"

el "prewarm (background)"
( CUDA_MODULE_LOADING=EAGER LD_LIBRARY_PATH=$CULIBS timeout 300 python3 bench/llama-cpp/prewarm.py \
  "$W/llb/cu/libggml-cuda.so" 12 200 > "$W/prewarm.txt" 2>&1 ) &
PW=$!

el "writing GGUF files"
rm -rf "$W/gguf"
"$W/node" "$W/write-gguf.mjs" --spec "${SPEC:-specs/llama-3.2-1b.strata}" --seed "${SEED:-0}" \
  --out "$W/gguf" >&2 || el "GGUF WRITING FAILED"
ls -la "$W/gguf" >&2

RES="$W/results.jsonl"; : > "$RES"
collect() { REPS=${REPS:-20} python3 bench/llama-cpp/collect.py "$RES" "$W/gguf" "$out" "$W/prewarm.txt"; }
bench() { # backend type
  local d=$1 t=$2 dev=Vulkan0; [ $d = cuda ] && dev=CUDA0
  local f; f=$(ls "$W"/gguf/*-"$t".gguf 2>/dev/null | head -1)
  local to=$(( $(left) - 15 )); [ $to -gt 150 ] && to=150
  [ -n "$f" ] || { echo "{\"marker\":true,\"backend\":\"$d\",\"type\":\"$t\",\"error\":\"no GGUF file\"}" >> "$RES"; return; }
  [ $to -lt 20 ] && { echo "{\"marker\":true,\"backend\":\"$d\",\"type\":\"$t\",\"error\":\"no time left\"}" >> "$RES"; return; }
  el "llama-bench $d $t (timeout ${to}s)"
  echo "{\"marker\":true,\"backend\":\"$d\",\"type\":\"$t\"}" >> "$RES"
  local lib="$W/llb/cu"; [ $d = vulkan ] && lib="$W/llb/vk"
  ( cd "$lib" && LD_LIBRARY_PATH="$lib:$CULIBS" timeout $to ./llama-bench -m "$f" -p 512 -n 128 \
    -r "${REPS:-20}" -fa 1 -ngl 99 -dev $dev -o jsonl >> "$RES" 2> "$W/err-$d-$t.txt" )
  local rc=$?
  [ $rc = 0 ] || { el "rc=$rc"; tail -n 5 "$W/err-$d-$t.txt" >&2
    echo "{\"marker\":true,\"backend\":\"$d\",\"type\":\"$t\",\"error\":\"llama-bench exit $rc: $(grep -v '^load_backend' "$W/err-$d-$t.txt" | tail -n 2 | tr -d '"\\' | tr '\n' ' ' | cut -c1-200)\"}" >> "$RES"; }
  collect
}
# Timed runs start once the JIT compiles are done, so no run shares the CPU with them (decode
# at batch 1 is bound by the host's launch overhead).
while kill -0 $PW 2>/dev/null && [ $(left) -gt 240 ]; do sleep 2; done
tail -n 2 "$W/prewarm.txt" >&2
for t in Q4_0 Q8_0 F16 F32; do bench cuda $t; done
for t in Q4_0 Q8_0 F16 F32; do bench vulkan $t; done
collect
el "done"
