#!/usr/bin/env bash
# Builds, on this CPU machine, what the ONNX Runtime device call needs into .ort/ (git-ignored),
# which that call carries (bench/ort/README.md gives the command):
#   libonnxruntime.so.1.xz  onnxruntime-node's Linux x64 ONNX Runtime (CPU and WebGPU execution
#                           providers, Dawn linked in); bench_ort.py drives it through its C API
#   hf/config.json          the e2e spec's HF config (strata's exporter), for export_onnx.py,
#                           which builds the weights there (--random-seed, random_init.py)
#   debs/                   the Vulkan loader and GL dispatch packages (the machine lacks them;
#                           NVIDIA's Vulkan driver needs the latter)
# No Node: with it (22 MB) the pack would not fit the device tool's 64 MiB beside the tracked
# files (38 MiB on 2026-12-05). onnxruntime-node stays out of the package's dependencies (CI
# install time): it is installed into $ORT_CACHE (default /tmp/strata-ort-cache) with
# --ignore-scripts, which skips its postinstall (a download of CUDA/TensorRT providers).
#   bash bench/ort/build.sh [SPEC]      (default specs/llama-3.2-1b.strata; about a minute)
set -euo pipefail
ORT_VERSION=1.31.1
root=$(git rev-parse --show-toplevel)
pack="$root/.ort"
cache=${ORT_CACHE:-/tmp/strata-ort-cache}
M="$cache/npm/node_modules"
spec=${1:-specs/llama-3.2-1b.strata}

if [ ! -f "$M/onnxruntime-node/package.json" ] ||
  [ "$(node -p "require('$M/onnxruntime-node/package.json').version")" != "$ORT_VERSION" ]; then
  rm -rf "$cache/npm"; mkdir -p "$cache/npm"
  (cd "$cache/npm" && npm init -y >/dev/null && npm i -E --ignore-scripts --no-audit --no-fund \
    "onnxruntime-node@$ORT_VERSION" >/dev/null)
fi
lib="$M/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
# What the bench cannot run without: the WebGPU provider in this build.
(cd "$M" && node -e "
  const o = require('onnxruntime-node');
  const b = o.listSupportedBackends().filter((x) => x.bundled).map((x) => x.name);
  if (!b.includes('webgpu')) { console.error('onnxruntime-node bundles no webgpu EP: ' + b); process.exit(1); }
  console.error('onnxruntime-node ' + o.env.versions.node + ' bundles: ' + b.join(', '));")

rm -rf "$pack"; mkdir -p "$pack"
xz -T2 -9e -c "$lib" > "$pack/libonnxruntime.so.1.xz"
echo "$ORT_VERSION" > "$pack/onnxruntime.version"
(cd "$root" && npx tsx bench/ort/write-hf.ts --spec "$spec" --config-only --out "$pack/hf")
echo "$spec" > "$pack/hf/spec"

stage=$(mktemp -d /tmp/strata-ort-apt.XXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/partial"
o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$stage"
apt-get $o update >/dev/null 2>&1
mkdir -p "$pack/debs"
(cd "$pack/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
du -b "$pack"/* >&2
tracked=$(cd "$root" && git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
total=$(( $(du -cb "$pack" | tail -1 | cut -f1) + tracked ))
echo "carry .ort ($(du -cb "$pack" | tail -1 | cut -f1) bytes) + tracked files ($tracked bytes): $((total / 1048576)) MiB of the device tool's 64 MiB" >&2
