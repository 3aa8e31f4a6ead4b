#!/usr/bin/env bash
# The demo model's training text: the King James Version of the Bible from Debian's
# bible-kjv-text package (the text's copyright expired long ago; the package's own copyright
# file says so, and its retrieval code is "unrestricted use"), read out with the bible-kjv
# package's `bible` program. Any Debian or Ubuntu machine with apt can rebuild it; nothing of
# the corpus is committed.
#   bash tools/demo-model/corpus.sh OUT.txt
# Writes one chapter per line ("Genesis 1: In the beginning God created ..."), verse numbers
# and line wrapping removed: ~4.2 MB, ~1,189 lines.
set -euo pipefail
out=${1:?usage: corpus.sh OUT.txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download bible-kjv bible-kjv-text >/dev/null 2>&1) || {
  echo "corpus.sh: apt-get download bible-kjv bible-kjv-text failed (needs Debian/Ubuntu apt sources)" >&2
  exit 1
}
for d in "$work"/*.deb; do dpkg -x "$d" "$work/x"; done
"$work/x/usr/bin/bible" -p "$work/x/usr/lib" -l1000 "gen1:1-rev22:21" > "$work/raw.txt"
# The dump is "Book N" headings, then "  V text" verse lines. One chapter per output line.
python3 - "$work/raw.txt" "$out" <<'PY'
import re, sys
chapters, cur = [], None
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if not line.strip():
        continue
    m = re.match(r"^\s+\d+ (.*)$", line)
    if m and cur is not None:
        cur[1].append(m.group(1).strip())
    elif not line.startswith(" "):
        cur = (line.strip(), [])
        chapters.append(cur)
    else:
        raise SystemExit(f"corpus.sh: unexpected line {line!r}")
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for head, verses in chapters:
        f.write(f"{head}: {' '.join(verses)}\n")
print(f"{len(chapters)} chapters, {sum(len(v) for _, v in chapters)} verses")
PY
wc -c "$out"
