#!/usr/bin/env bash
# Builds llama.cpp's llama-bench on this CPU machine (x86-64, g++) into .llama-cpp/llb.tar.xz
# (git-ignored), which the device call carries; bench/llama-cpp/run.sh unpacks it there.
# Adapted from the project's shared kit (../shared/peers/llama-cpp/build.sh): the whole llama.cpp
# repository is too large to bring over, so this takes node-llama-cpp 3.21.1's prebuilt CUDA and
# Vulkan libraries plus the llama.cpp source it ships as a git bundle (commit 5b4ebc5), compiles
# llama-bench against them, and shrinks the CUDA library to sm_90 PTX that the H200's R580
# driver accepts (fatbin_strip.py says why). About 5–10 minutes on 2 cores.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
here="$root/bench/llama-cpp"
work=${LLB_WORK:-/tmp/strata-llb-$$}
rm -rf "$work"; mkdir -p "$work/nlc" "$work/lb" "$work/stage/llb/cu" "$work/stage/llb/vk"
cd "$work/nlc" && npm init -y >/dev/null && npm i -E --ignore-scripts --no-audit --no-fund node-llama-cpp@3.21.1 \
  @node-llama-cpp/linux-x64-cuda@3.21.1 @node-llama-cpp/linux-x64-vulkan@3.21.1 >/dev/null
P="$work/nlc/node_modules/@node-llama-cpp"
S="$work/llsrc"
git clone -q "$work/nlc/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$S"
cd "$work/lb"
g++ -std=c++17 -O2 -DNDEBUG -c -I$S/include -I$S/ggml/include -I$S/common -I$S/vendor \
  -I$S/tools/llama-bench $S/tools/llama-bench/llama-bench.cpp -o llama-bench.o
g++ -std=c++17 -O2 -c $S/tools/llama-bench/main.cpp -o main.o
for v in cuda:cu vulkan:vk; do
  b=${v%%:*}; d=${v##*:}; D="$P/linux-x64-$b/bins/linux-x64-$b"
  g++ -o "$work/stage/llb/$d/llama-bench" main.o llama-bench.o -L"$D" -l:libllama-common.so \
    -l:libllama.$b.v0.4.0.so -l:libggml.$b.v0.4.0.so -l:libggml-base.so -lpthread -Wl,-rpath,'$ORIGIN'
  cp -a "$D"/. "$work/stage/llb/$d/"
  rm -f "$work/stage/llb/$d/llama-addon.node"
done
# The H200 with the R580 driver (CUDA 13.0): keep only compute_90 PTX, relabel ISA 9.1 as 9.0.
python3 "$here/fatbin_strip.py" "$P/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so" \
  "$work/stage/llb/cu/libggml-cuda.so" 90 --ptx-version 9.0
cp "$work/nlc/node_modules/node-llama-cpp/package.json" "$work/stage/llb/node-llama-cpp.package.json"
# Libraries the two builds share are stored once (hard links survive tar).
cd "$work/stage/llb" && for f in vk/*; do
  b=$(basename "$f"); cmp -s "cu/$b" "$f" 2>/dev/null && ln -f "cu/$b" "$f"; done
mkdir -p "$root/.llama-cpp"
cd "$work/stage" && tar -cf - llb | xz -T2 -9 > "$root/.llama-cpp/llb.tar.xz"
du -h "$root/.llama-cpp/llb.tar.xz"
rm -rf "$work"
