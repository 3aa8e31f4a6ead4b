#!/usr/bin/env bash
# The whole benchmark in one device call on the GPU machine (../shared/gpu/README.md):
#   device run, carry [".gpu", ".fla-job"]:  bash bench/device.sh [suites]
# Peers run first: they save the checkpoints that strata's hybrid and scan suites load, so both
# sides measure the same weights. Each side writes its JSON after every suite, so a run cut short
# still returns what it measured. Then, here: tsx bench/report.ts strata.json peers.json "<command>".
set -uo pipefail
source .gpu/prelude.sh
suites=${1:-matmul,attention,compile,e2e,hybrid,scan}
export PYTHONUNBUFFERED=1
# The linear suite's peer is fla (not installed there): a carried .fla-job/fla (see
# tools/golden/README.md for how to unpack it) goes on PYTHONPATH for bench/peers.py only.
[ -d .fla-job/fla ] && export PYTHONPATH="$PWD/.fla-job${PYTHONPATH:+:$PYTHONPATH}"
python3 bench/peers.py "$suites" "$OUT/peers.json" 2>&1 | tail -n 20
tsx bench/run.ts --suites "$suites" --gpu-flags fast --out "$OUT/strata.json"
