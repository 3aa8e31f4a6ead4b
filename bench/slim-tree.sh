#!/usr/bin/env bash
# The device tool sends the whole working tree (tracked files included) within 64 MiB, and the
# test fixtures (17 MB) and the demo model's weights (18 MB) leave too little room for .gpu
# (45 MiB). No bench reads their weights, so before a device call move the .safetensors files
# out of the checkout, and back after it; the fixtures' configs stay (155 KB; bench/entropy-speed.ts
# reads DiffusionGemma's). Nothing is deleted: `aside` refuses to overwrite an earlier set-aside
# copy.
#   bash bench/slim-tree.sh aside    # before the device call(s)
#   bash bench/slim-tree.sh back     # after them (git status is clean again)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
store=${STRATA_ASIDE:-/tmp/strata-aside}
mapfile -t paths < <(git ls-files examples/demo-model/model.safetensors 'test/fixtures/*.safetensors')
case "${1:-}" in
  aside)
    [ -e "$store" ] && { echo "$store exists: run 'back' first (or set STRATA_ASIDE)" >&2; exit 1; }
    for p in "${paths[@]}"; do
      mkdir -p "$store/$(dirname "$p")"
      mv "$p" "$store/$p"
    done
    echo "moved to $store: ${#paths[@]} files" >&2
    # du fails on the moved files' names; the total of the rest is what travels.
    { git ls-files -z | xargs -0 du -cb 2>/dev/null || true; } | tail -1 |
      awk '{printf "tracked files left: %.1f MiB\n", $1/1048576}' >&2
    ;;
  back)
    [ -d "$store" ] || { echo "nothing set aside in $store" >&2; exit 1; }
    # What was set aside, whatever this checkout's index says now.
    mapfile -t paths < <(cd "$store" && find . -type f | sed 's|^\./||')
    for p in "${paths[@]}"; do
      [ -e "$p" ] && { echo "$p exists in the checkout: not overwriting it" >&2; exit 1; }
    done
    for p in "${paths[@]}"; do mkdir -p "$(dirname "$p")" && mv "$store/$p" "$p"; done
    rm -r "$store"
    git status --short -- "${paths[@]}" >&2
    echo "restored: ${#paths[@]} files" >&2
    ;;
  *) echo "usage: bash bench/slim-tree.sh aside|back" >&2; exit 2 ;;
esac
