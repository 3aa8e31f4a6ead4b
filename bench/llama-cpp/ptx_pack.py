#!/usr/bin/env python3
"""Ship libggml-cuda.so's PTX through xz instead of zstd, and put it back on the GPU machine.

After fatbin_strip.py every CUDA fatbin in the library holds one zstd-compressed PTX entry
(sm_90). zstd squeezes each of the 143 modules on its own (~21 MB in all); xz over all of the
PTX text at once finds the repeats between template instances (~12 MB), which is what lets the
device call's carry (64 MiB, tracked files included) hold node, llama-bench and the GGUF writer.

  ptx_pack.py hollow LIB.so OUT.so PTXDIR   zero every PTX payload of LIB.so into OUT.so and
                                            write the PTX texts as PTXDIR/NNN.ptx, plus
                                            PTXDIR/sha256 (LIB.so's digest)
  ptx_pack.py fill HOLLOW.so PTXDIR OUT.so  recompress each PTX (zstd -19, the same zstd binary
                                            as at build time, so the same bytes) into its place;
                                            refuses a result whose digest differs from LIB.so's

Headers are left as they are, so `fill` needs only the payloads. ZSTD names the zstd binary.
"""
import hashlib, os, struct, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from fatbin import entries, fatbins

ZSTD = os.environ.get("ZSTD", "zstd")


def ptx_entries(data):
    """(payload offset, compressed size, decompressed size) of each fatbin's one PTX entry."""
    out = []
    for i, _ver, end in fatbins(data):
        found = []
        for p, kind, ehs, _esz in entries(data, i, end):
            if kind == 1:
                csize = struct.unpack_from("<I", data, p + 16)[0]
                dsize = struct.unpack_from("<Q", data, p + 56)[0]
                found.append((p + ehs, csize, dsize))
        if len(found) != 1:
            sys.exit(f"fatbin at {i}: {len(found)} PTX entries; run fatbin_strip.py first")
        out.append(found[0])
    return out


def hollow(lib, out, ptxdir):
    data = bytearray(open(lib, "rb").read())
    os.makedirs(ptxdir, exist_ok=True)
    entries = ptx_entries(data)
    for k, (at, csize, dsize) in enumerate(entries):
        comp = bytes(data[at:at + csize])
        ptx = subprocess.run([ZSTD, "-dc"], input=comp, capture_output=True, check=True).stdout
        assert len(ptx) == dsize, (k, len(ptx), dsize)
        open(os.path.join(ptxdir, f"{k:03d}.ptx"), "wb").write(ptx)
        data[at:at + csize] = bytes(csize)
    open(os.path.join(ptxdir, "sha256"), "w").write(hashlib.sha256(open(lib, "rb").read()).hexdigest() + "\n")
    open(out, "wb").write(data)
    print(f"{len(entries)} PTX payloads moved to {ptxdir} ({sum(e[2] for e in entries) / 1e6:.0f} MB of text)")


def fill(hol, ptxdir, out):
    data = bytearray(open(hol, "rb").read())
    entries = ptx_entries(data)

    def squeeze(k):
        f = os.path.join(ptxdir, f"{k:03d}.ptx")
        return subprocess.run([ZSTD, "-19", "--no-check", "-q", "-c", f], capture_output=True, check=True).stdout

    with ThreadPoolExecutor(os.cpu_count() or 4) as pool:
        comps = list(pool.map(squeeze, range(len(entries))))
    for k, ((at, csize, _), comp) in enumerate(zip(entries, comps)):
        if len(comp) != csize:
            sys.exit(f"module {k}: zstd gave {len(comp)} bytes, the header says {csize}: not the build's zstd?")
        data[at:at + csize] = comp
    want = open(os.path.join(ptxdir, "sha256")).read().split()[0]
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.exit(f"refilled library's sha256 {got} is not the built one's {want}")
    open(out, "wb").write(data)
    print(f"{len(entries)} PTX modules restored into {out} (sha256 matches the build)")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"hollow": hollow, "fill": fill}[mode](*args)
