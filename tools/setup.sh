#!/usr/bin/env bash
# One-time set-up for a fresh clone on a bare machine: npm packages, and when no
# GPU Vulkan driver is present, the Vulkan loader plus SwiftShader (Google's CPU
# Vulkan driver, shipped in Debian's chromium-common) cached under .cache/.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules/webgpu ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "strata setup: npm install" >&2
  npm install --no-audit --no-fund >&2
fi

have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }
sudo_cmd() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! have_loader; then
  echo "strata setup: installing the Vulkan loader (libvulkan1)" >&2
  sudo_cmd apt-get update -qq >&2
  sudo_cmd apt-get install -y -qq --no-install-recommends libvulkan1 >&2
fi

icd=.cache/swiftshader/vk_swiftshader_icd.json
if [ ! -f "$icd" ]; then
  echo "strata setup: fetching SwiftShader from Debian's chromium-common" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download chromium-common >&2 2>/dev/null) || {
    sudo_cmd apt-get update -qq >&2
    (cd "$tmp" && apt-get download chromium-common >&2)
  }
  dpkg -x "$tmp"/chromium-common_*.deb "$tmp/x"
  mkdir -p .cache/swiftshader
  cp "$tmp/x/usr/lib/chromium/libvk_swiftshader.so" .cache/swiftshader/
  so=$(cd .cache/swiftshader && pwd)/libvk_swiftshader.so
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$so\"#" \
    "$tmp/x/usr/lib/chromium/vk_swiftshader_icd.json" > "$icd"
  rm -rf "$tmp"
fi

# Debian's chromium for the browser tests (test/web/, driven by playwright-core): headless
# Chromium exposes WebGPU on its own SwiftShader. Skipped when STRATA_NO_BROWSER=1 (then those
# tests are skipped, saying so) or when a Chromium is already there (STRATA_CHROMIUM).
if [ "${STRATA_NO_BROWSER:-}" != 1 ] && [ ! -x "${STRATA_CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "strata setup: installing Debian's chromium (browser tests)" >&2
  sudo_cmd apt-get update -qq >&2
  sudo_cmd apt-get install -y -qq --no-install-recommends chromium >&2
fi
