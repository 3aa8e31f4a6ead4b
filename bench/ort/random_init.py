"""strata's seeded random weights (src/import/random-init.ts, randomWeights) in numpy, for the
tensors of a Llama (attention and SwiGLU layers, whose mixers give no ranges of their own), so
PyTorch builds exactly the e2e suite's weights on the GPU machine without Node: each tensor from
its name and the seed alone, Mulberry32 in closed form (its state after i draws is seed + i·k),
uniform(lo, hi) computed in double and rounded to f32 as Float32Array stores it.
`python3 random_init.py HF_DIR [SEED]` checks every tensor of a checkpoint that
bench/ort/write-hf.ts wrote from strata's own init against these, bit for bit."""
import math

import numpy as np

M32 = 0xFFFFFFFF


def hash_name(name, seed):
    h = (2166136261 ^ seed) & M32
    for ch in name:
        h = ((h ^ ord(ch)) * 16777619) & M32
    return h


def uniform(n, seed, lo, hi, chunk=1 << 24):
    """n values of strata's uniform(n, seed, lo, hi) (Mulberry32), as float32."""
    out = np.empty(n, np.float32)
    step = np.uint32(0x6D2B79F5)
    with np.errstate(over="ignore"):
        for at in range(0, n, chunk):
            i = np.arange(at + 1, min(n, at + chunk) + 1, dtype=np.uint64)
            t = ((np.uint64(seed) + i * np.uint64(step)) & np.uint64(M32)).astype(np.uint32)
            t = (t ^ (t >> np.uint32(15))) * (t | np.uint32(1))
            t = t ^ (t + (t ^ (t >> np.uint32(7))) * (t | np.uint32(61)))
            u = (t ^ (t >> np.uint32(14))).astype(np.float64) / 4294967296.0
            out[at:at + len(i)] = lo + u * (hi - lo)
    return out


def random_weight(name, shape, seed):
    """The tensor strata's randomWeights(model, seed) gives `name` (a Llama's tensors only)."""
    n = math.prod(shape)
    s = hash_name(name, seed)
    if name.endswith(".bias"):
        x = uniform(n, s, -0.05, 0.05)
    elif len(shape) == 1:
        x = uniform(n, s, 0.8, 1.2)
    elif name == "model.embed_tokens.weight":
        x = uniform(n, s, -1.0, 1.0)
    else:
        r = math.sqrt(3 / shape[1])
        x = uniform(n, s, -r, r)
    return x.reshape(shape)


if __name__ == "__main__":
    import sys
    from safetensors.numpy import load_file

    folder, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    tensors = load_file(f"{folder}/model.safetensors")
    for name, want in tensors.items():
        got = random_weight(name, list(want.shape), seed)
        if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            bad = int(np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))[0])
            sys.exit(f"random_init: {name}[{bad}] is {got.ravel()[bad]!r}, strata's is {want.ravel()[bad]!r}")
    print(f"random_init: all {len(tensors)} tensors of {folder} equal strata's init bit for bit")
