#!/usr/bin/env bash
# The study of examples/explore/README.md: three linear mixers × four linear:full ratios on the
# ~1B base, f16 weights and KV cache, the Pareto plot at 128k context. No GPU needed (the cost
# model at --target nominal); about 5 s. Rewrites examples/explore/study/ (--force).
set -euo pipefail
cd "$(dirname "$0")/../.."
node bin/strata.js explore examples/explore/hybrid-linear-1b.strata \
  --vary linear=mamba2,gated_deltanet,gla --vary ratio=1,3,7,15 \
  --precision f16 --kv f16 --context 131072 -o examples/explore/study --force
