#!/usr/bin/env bash
# Writes .diffusion-ref/ (gitignored): the reference files bench/diffusion_peer.py loads, taken
# at HEAD from the `fetch` tool's mirrors (or checkouts) of NVlabs/Fast-dLLM, ML-GSAI/LLaDA and
# kuleshov-group/bd3lms, so they can be carried to the GPU machine, which cannot reach GitHub.
#   bash bench/diffusion-peer-pack.sh [FAST_DLLM] [LLADA] [BD3LMS]
set -euo pipefail
fast=${1:-/work/.mirror/NVlabs+Fast-dLLM/repo}
llada=${2:-/work/.mirror/ML-GSAI+LLaDA/repo}
bd3lms=${3:-/work/.mirror/kuleshov-group+bd3lms/repo}
show() { # repo path
  if [ -f "$1/$2" ]; then cat "$1/$2"; else git --git-dir="$1" show "HEAD:$2"; fi
}
out=.diffusion-ref
[ -e "$out" ] && { echo "$out exists: remove it first" >&2; exit 1; }
mkdir -p "$out/llada/model" "$out/bd3lms"
for f in llada/generate.py llada/model/configuration_llada.py llada/model/modeling_llada.py; do
  show "$fast" "$f" >"$out/$f"
done
show "$llada" generate.py >"$out/generate.py"
for f in diffusion.py noise_schedule.py; do
  show "$bd3lms" "$f" >"$out/bd3lms/$f"
done
{
  echo "NVlabs/Fast-dLLM $(git --git-dir="$fast" rev-parse HEAD 2>/dev/null || echo checkout)"
  echo "ML-GSAI/LLaDA $(git --git-dir="$llada" rev-parse HEAD 2>/dev/null || echo checkout)"
  echo "kuleshov-group/bd3lms $(git --git-dir="$bd3lms" rev-parse HEAD 2>/dev/null || echo checkout)"
} >"$out/SOURCES"
du -sh "$out"
