"""The CUDA fatbin container as it sits inside a shared library (libggml-cuda.so), for the three
scripts that walk it (fatbin_strip.py, ptx_pack.py, prewarm.py).

A fatbin is MAGIC, u16 version, u16 header size (16), u64 size of the entries that follow. Each
entry is u16 kind (1 = PTX, 2 = ELF), u16, u32 entry header size, u64 payload size, with more
fields inside the entry header (the arch at +28; for compressed PTX the compressed size at +16
and the text size at +56). Four bytes equal to MAGIC that are not followed by a 16-byte header
are not a fatbin (the search goes on after them).
"""
import struct

MAGIC = struct.pack("<I", 0xBA55ED50)
HEADER = 16


def fatbins(data):
    """(offset, version, end) of each fatbin in data, in file order."""
    out, pos = [], 0
    while True:
        i = data.find(MAGIC, pos)
        if i < 0:
            return out
        ver, hsz, fsz = struct.unpack_from("<HHQ", data, i + 4)
        if hsz != HEADER:
            pos = i + 4
            continue
        out.append((i, ver, i + hsz + fsz))
        pos = i + hsz + fsz


def entries(data, start, end):
    """(offset, kind, entry header size, payload size) of each entry of the fatbin at start..end."""
    out, p = [], start + HEADER
    while p < end:
        kind, _u, ehs, esz = struct.unpack_from("<HHIQ", data, p)
        out.append((p, kind, ehs, esz))
        p += ehs + esz
    assert p == end, (start, p, end)
    return out
