#!/usr/bin/env bash
# The whole benchmark on the GPU machine (../shared/gpu/README.md), in three device calls, since
# one carry holds 64 MiB with the tracked files, and no two of .gpu (45 MiB), .llama-cpp
# (44 MiB: its own Node, llama-bench, the CUDA PTX) and .ort (13 MiB: onnxruntime-node's ONNX
# Runtime library) fit together. The tracked files were 39 MiB on 2026-12-05 (18 MB of it
# examples/demo-model's weights, 17 MB test/fixtures), which leaves room for .ort alone, unless
# `bash bench/slim-tree.sh aside` first moves those out of the checkout (5 MiB left; no bench
# reads them; `bash bench/slim-tree.sh back` afterwards):
#   1. device run, carry [".gpu", ".fla-job"], timeout 600:  bash bench/device.sh [suites]
#      (strata and its PyTorch peers; default suites below; writes $OUT/strata.json, peers.json)
#      `bash bench/device.sh sparse`: block-sparse attention at ~25% density against dense,
#      4k–32k (bench/sparse-cases.ts; strata only)
#   2. device run, carry [".llama-cpp"], timeout 600:        bash bench/device.sh llamacpp
#      (llama.cpp on the e2e suite's weights as GGUF, CUDA and Vulkan; ~5–6 min; writes
#      $OUT/llamacpp.json and llamacpp-log.txt; bench/llama-cpp/README.md has the details)
#   3. device run, carry [".ort"], timeout 600:              bash bench/device.sh ort
#      (ONNX Runtime's WebGPU execution provider: onnxruntime-node 1.31.1's library, with its own
#      Dawn, driven from python3; on the e2e suite's weights exported by PyTorch to ONNX, f32 and
#      f16: a logits check against PyTorch, prefill 512 and tg128, median of 5; ~4–6 min; writes
#      $OUT/ort.json and ort-log.txt; bench/ort/README.md has the details)
# Batched decode (B = 1, 4, 16, 64; bench/batch.ts): bash bench/device.sh hybrid,batch (hybrid
# first saves the Jamba checkpoint the batch suite also runs; batch alone skips it).
# Diffusion (issue 16): bash bench/diffusion-peer-pack.sh here, then a device run with carry
# [".gpu", ".diffusion-ref"], timeout 600: bash bench/device.sh diffusion (~6-7 min on an H100).
# It runs the PyTorch peer (LLaDA's and Fast-dLLM's samplers, then bd3lms's on the same weights
# made block-causal: bench/diffusion_peer.py), then strata's LLaDA samplers
# (bench/diffusion-speed.ts) and block diffusion (bench/block-diffusion-speed.ts), all on a
# LLaDA-8B-shaped model of 4 layers; writes $OUT/diffusion-peer.json, diffusion-strata.json and
# block-diffusion.json, which bench/report.ts takes after the others.
# Make .gpu with ../shared/gpu/pack.sh, .llama-cpp with bench/llama-cpp/build.sh and .ort with
# bench/ort/build.sh first. To keep .gpu small, leave out only test tooling, never vega (explore
# and its --measure plot with it; a pack without it failed on 2026-12-05):
#   PACK_EXCLUDE="node_modules/@rolldown node_modules/@vitest node_modules/fast-check
#     node_modules/lightningcss node_modules/lightningcss-linux-x64-gnu node_modules/vite
#     node_modules/vitest" bash ../shared/gpu/pack.sh      (38 MiB on 2026-12-05)
# One call for llama.cpp and the e2e/hybrid suites on the same machine: bench/pack-one-call.sh
# (bench/llama-cpp/README.md, "Both in one call").
# Peers run first: they save the checkpoints that strata's hybrid and scan suites load, so both
# sides measure the same weights (llama.cpp's GGUF files are written from the same seeded
# weights as strata's e2e suite). Each side writes its JSON after every suite, so a run cut
# short still returns what it measured. Then, here:
#   tsx bench/report.ts strata.json peers.json "<commands>" llamacpp.json ort.json
set -uo pipefail
suites=${1:-matmul,attention,compile,e2e,hybrid,scan}
# take NAME: true when NAME is among the suites, and takes it off the list; the script ends once
# nothing is left (the suites that run without .gpu come first).
take() {
  [[ ",$suites," == *,$1,* ]] || return 1
  suites=$(echo ",$suites," | sed "s/,$1,/,/; s/^,//; s/,\$//")
}
done_if_empty() { [ -n "$suites" ] || exit 0; }
# llama.cpp brings its own Node and libraries (.llama-cpp), so it runs without .gpu.
if take llamacpp; then
  bash bench/llama-cpp/run.sh "$OUT/llamacpp.json" 2>&1 | tee "$OUT/llamacpp-log.txt" | tail -n 40
  done_if_empty
fi
# ONNX Runtime brings its own library (.ort) and runs from python3, without .gpu.
if take ort; then
  bash bench/ort/run.sh "$OUT/ort.json" 2>&1 | tee "$OUT/ort-log.txt" | tail -n 40
  done_if_empty
fi
source .gpu/prelude.sh
export PYTHONUNBUFFERED=1
# The linear suite's peer is fla (not installed there): a carried .fla-job/fla (see
# tools/golden/README.md for how to unpack it) goes on PYTHONPATH for bench/peers.py only.
[ -d .fla-job/fla ] && export PYTHONPATH="$PWD/.fla-job${PYTHONPATH:+:$PYTHONPATH}"
if take diffusion; then
  [ -d .diffusion-ref ] || { echo "device.sh diffusion: carry .diffusion-ref (bash bench/diffusion-peer-pack.sh makes it)" >&2; exit 2; }
  python3 bench/diffusion_peer.py --ref .diffusion-ref --out "$OUT/diffusion-peer.json" 2>&1 | tail -n 12
  tsx bench/diffusion-speed.ts 4 --gpu-flags fast --out "$OUT/diffusion-strata.json" 2>&1 | tail -n 12
  tsx bench/block-diffusion-speed.ts 4 --no-llada --gpu-flags fast --out "$OUT/block-diffusion.json" 2>&1 | tail -n 12
  done_if_empty
fi
python3 bench/peers.py "$suites" "$OUT/peers.json" 2>&1 | tail -n 20
tsx bench/run.ts --suites "$suites" --gpu-flags fast --out "$OUT/strata.json"
