#!/usr/bin/env bash
# Builds, on this CPU machine (x86-64, g++), everything the llama.cpp device call needs into
# .llama-cpp/ (git-ignored), which that call carries (bench/device.sh gives the command):
#   llb.tar.xz      llama-bench for CUDA (cu/) and Vulkan (vk/) with their libraries, the CUDA
#                   library's PTX as text (ptx/; ptx_pack.py says why) and the zstd that refills it
#   node.xz         the Node binary (stripped) that runs the GGUF writer there
#   write-gguf.mjs.xz  bench/llama-cpp/write-gguf.ts bundled with its imports (no node_modules there)
#   debs/           the Vulkan loader and GL dispatch packages (the machine lacks them)
# Adapted from the project's shared kit (../shared/peers/llama-cpp/build.sh): the whole llama.cpp
# repository is too large to bring over, so this takes node-llama-cpp 3.21.1's prebuilt CUDA and
# Vulkan libraries plus the llama.cpp source it ships as a git bundle (commit 5b4ebc5), compiles
# llama-bench against them, and shrinks the CUDA library to sm_90 PTX that the H200's R580
# driver accepts (fatbin_strip.py says why). About 10 minutes on 2 cores; the npm install and
# compile are cached in $LLB_CACHE (default /tmp/strata-llb-cache) for a rebuild.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
here="$root/bench/llama-cpp"
pack="$root/.llama-cpp"
cache=${LLB_CACHE:-/tmp/strata-llb-cache}
# The GGUF writer is bundled from this checkout's sources (randomWeights, encodeWeight): after a
# merge that touches them, `build.sh --writer` rebuilds just the bundle (seconds).
bundle_writer() {
  local tmp; tmp=$(mktemp -d)
  (cd "$root" && npx esbuild bench/llama-cpp/write-gguf.ts --bundle --platform=node --format=esm \
    --target=node20 --minify --log-level=warning --outfile="$tmp/write-gguf.mjs" \
    "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);")
  mkdir -p "$pack"; xz -9e -c "$tmp/write-gguf.mjs" > "$pack/write-gguf.mjs.xz"; rm -rf "$tmp"
}
if [ "${1:-}" = --writer ]; then bundle_writer; exit 0; fi
P="$cache/nlc/node_modules/@node-llama-cpp"
if [ ! -x "$cache/lb/llama-bench-vulkan" ]; then
  rm -rf "$cache"; mkdir -p "$cache/nlc" "$cache/lb"
  (cd "$cache/nlc" && npm init -y >/dev/null && npm i -E --ignore-scripts --no-audit --no-fund \
    node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64-cuda@3.21.1 @node-llama-cpp/linux-x64-vulkan@3.21.1 >/dev/null)
  S="$cache/llsrc"
  git clone -q "$cache/nlc/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$S"
  cd "$cache/lb"
  g++ -std=c++17 -O2 -DNDEBUG -c -I$S/include -I$S/ggml/include -I$S/common -I$S/vendor \
    -I$S/tools/llama-bench $S/tools/llama-bench/llama-bench.cpp -o llama-bench.o
  g++ -std=c++17 -O2 -c $S/tools/llama-bench/main.cpp -o main.o
  for b in cuda vulkan; do
    D="$P/linux-x64-$b/bins/linux-x64-$b"
    g++ -o llama-bench-$b main.o llama-bench.o -L"$D" -l:libllama-common.so \
      -l:libllama.$b.v0.4.0.so -l:libggml.$b.v0.4.0.so -l:libggml-base.so -lpthread -Wl,-rpath,'$ORIGIN'
  done
fi

stage=$(mktemp -d /tmp/strata-llb-stage.XXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/llb/cu" "$stage/llb/vk"
for v in cuda:cu vulkan:vk; do
  b=${v%%:*}; d=${v##*:}
  cp -a "$P/linux-x64-$b/bins/linux-x64-$b"/. "$stage/llb/$d/"
  cp "$cache/lb/llama-bench-$b" "$stage/llb/$d/llama-bench"
  rm -f "$stage/llb/$d/llama-addon.node"
  # ggml loads the best CPU variant it finds; the GPU runs the model, the CPU only feeds token
  # ids, so the baseline and the AVX2 variants are enough (and save a megabyte of carry).
  find "$stage/llb/$d" -name 'libggml-cpu-*.so' ! -name 'libggml-cpu-x64.so' ! -name 'libggml-cpu-haswell.so' -delete
done
# The H200 with the R580 driver (CUDA 13.0): keep only compute_90 PTX, relabel ISA 9.1 as 9.0;
# then carry that PTX as text (ptx_pack.py), refilled on the device.
python3 "$here/fatbin_strip.py" "$P/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so" \
  "$stage/cuda.so" 90 --ptx-version 9.0
python3 "$here/ptx_pack.py" hollow "$stage/cuda.so" "$stage/llb/cu/libggml-cuda.so.hollow" "$stage/llb/ptx"
rm "$stage/llb/cu/libggml-cuda.so" "$stage/cuda.so"
cp "$(command -v zstd)" "$stage/llb/zstd"
cp "$cache/nlc/node_modules/node-llama-cpp/package.json" "$stage/llb/node-llama-cpp.package.json"
# Libraries the two builds share are stored once (hard links survive tar).
(cd "$stage/llb" && for f in vk/*; do
  b=$(basename "$f"); if cmp -s "cu/$b" "$f" 2>/dev/null; then ln -f "cu/$b" "$f"; fi; done)
mkdir -p "$pack"
# One xz stream (-T1: threads would cut it into blocks that cannot see each other): the PTX text
# together, and each CUDA-build library right beside its near-identical Vulkan-build twin, so
# the twin costs next to nothing (xz's dictionary is 64 MiB; the two big libraries go first).
(cd "$stage" && {
  find llb/ptx -type f | sort
  echo llb/cu/libggml-cuda.so.hollow; echo llb/vk/libggml-vulkan.so
  for f in llb/cu/*; do echo "$f"; echo "llb/vk/$(basename "$f" | sed 's/cuda/vulkan/')"; done
  ls -d llb/vk/* llb/zstd llb/node-llama-cpp.package.json
} | awk '!seen[$0]++' | while read -r f; do [ -e "$f" ] && echo "$f"; done > "$stage/files")
(cd "$stage" && tar --no-recursion -cf - -T files) | xz -T1 -9e > "$pack/llb.tar.xz"

node_bin=$(readlink -f "$(command -v node)")
strip -o "$stage/node" "$node_bin"
xz -T2 -9e -c "$stage/node" > "$pack/node.xz"
node --version > "$pack/node.version"
bundle_writer
rm -f "$pack/write-gguf.mjs"
lists="$stage/apt"; mkdir -p "$lists/partial"
o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
apt-get $o update >/dev/null
# NVIDIA's Vulkan driver (libGLX_nvidia) also needs the GL dispatch libraries: the same packages
# as ../shared/gpu/pack.sh brings.
rm -rf "$pack/debs" "$pack/libvulkan1.deb"; mkdir -p "$pack/debs"
(cd "$pack/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
du -b "$pack"/* >&2
tracked=$(cd "$root" && git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
total=$(( $(du -cb "$pack"/* | tail -1 | cut -f1) + tracked ))
echo "carry .llama-cpp + tracked files: $((total / 1048576)) MiB of the device tool's 64 MiB" >&2
