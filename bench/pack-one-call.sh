#!/usr/bin/env bash
# Packs what one device call needs to run llama.cpp and strata's e2e/hybrid suites on the same
# machine (bench/llama-cpp/README.md, "Both in one call"): .gpu-lite/, .gpu's Node and debs with
# node_modules at xz -9 without the test and build tooling (lodash-es stays: chevrotain imports
# it), and .llama-lite/, .llama-cpp's llama-bench archive and GGUF writer without its own Node and
# debs. With `bash bench/slim-tree.sh aside` the carry is about 63 MiB of the tool's 64.
# Needs .gpu (../shared/gpu/pack.sh) and .llama-cpp (bench/llama-cpp/build.sh) and node_modules.
#   bash bench/pack-one-call.sh      then carry [".gpu-lite", ".llama-lite"]
# Both folders are written fresh; an existing one is refused rather than replaced.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for d in .gpu-lite .llama-lite; do
  [ -e "$d" ] && { echo "$d exists: remove it first" >&2; exit 1; }
done
[ -f .gpu/node.xz ] || { echo ".gpu is missing: run ../shared/gpu/pack.sh" >&2; exit 1; }
[ -f .llama-cpp/llb.tar.xz ] || { echo ".llama-cpp is missing: run bench/llama-cpp/build.sh" >&2; exit 1; }
grep -qx '/.gpu-lite/' .git/info/exclude 2>/dev/null || printf '/.gpu-lite/\n/.llama-lite/\n' >> .git/info/exclude
mkdir .gpu-lite .llama-lite
cp .gpu/*.deb .gpu/node.xz .gpu/node.version .gpu/prelude.sh .gpu-lite/
skip=(@typescript typescript prettier playwright-core .cache @rolldown @vitest fast-check lightningcss
  lightningcss-linux-x64-gnu vite vitest vega vega-lite 'webgpu/dist/darwin-*' 'webgpu/dist/win32-*'
  webgpu/dist/linux-arm64)
tar -cf - "${skip[@]/#/--exclude=node_modules/}" node_modules | xz -T0 -9 > .gpu-lite/node_modules.tar.xz
cp .llama-cpp/llb.tar.xz .llama-cpp/write-gguf.mjs.xz .llama-lite/
du -cb .gpu-lite .llama-lite | tail -1 | awk '{printf "%.1f MiB to carry, with the tracked files on top\n", $1/1048576}' >&2
