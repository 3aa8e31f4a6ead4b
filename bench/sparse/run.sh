#!/usr/bin/env bash
# Issue 17's decode bench on the GPU machine: Llama-3.2-1B dims with each attention form of
# bench/sparse/llama-1b-attention.strata, decode tokens/s once the cache holds 32k and 128k
# tokens, beside the cost model's KV memory and roofline estimate (strata explore --measure).
#   device run, carry [".gpu"], timeout 600:  bash bench/sparse/run.sh [forms] [contexts]
# Writes $OUT/sparse-<context>/ (results.json, table.txt, ...) and $OUT/sparse-log.txt.
# Decode is timed from a jump to the context over zeroed caches (--fill zeros): H2O fills its
# cache a token at a time, so a real prefill of 32k did not finish in a 10-minute call on the
# H100 (2026-12-06); every form's decode step does the same work over zeros. Prefill is timed
# apart, at --max-t tokens. Measurements are cached per design, so a rerun after a cut resumes.
# A design the device cannot hold (MLA's expanded cache at 128k: past a 2 GiB binding) is a row
# that says so. Into RESULTS: keep each results.json as bench/results/<date>-<time>-<device>-
# sparse-<context>.json and give the paths to bench/report.ts (bench/sparse/table.ts).
set -uo pipefail
forms=${1:-dense,sinks,h2o,band,nsa,mla_latent,mla_expanded}
contexts=${2:-32768,131072}
[ -f .gpu/prelude.sh ] && source .gpu/prelude.sh
for c in ${contexts//,/ }; do
  tsx src/cli/main.ts explore bench/sparse/llama-1b-attention.strata --vary "form=$forms" \
    --context "$c" --capacity $((c + 64)) --max-t 2048 --steps 32 --measure --fill zeros --gpu-flags fast \
    -o "${OUT:-/tmp}/sparse-$c" --force 2>&1 | tee -a "${OUT:-/tmp}/sparse-log.txt" | tail -n 12
done
