"""strata's seeded random weights (src/import/random-init.ts, randomWeights) in numpy, for the
tensors of a Llama (attention and SwiGLU layers, whose mixers give no ranges of their own), so
PyTorch builds exactly the e2e suite's weights on the GPU machine without Node: each tensor from
its name and the seed alone, Mulberry32 in closed form (its state after i draws is seed + i·k),
uniform(lo, hi) computed in double and rounded to f32 as Float32Array stores it.
uniform_torch does the same in PyTorch on the GPU, for the 1B model's 1.2B values.
`python3 random_init.py HF_DIR [SEED]` checks every tensor of a checkpoint that
bench/ort/write-hf.ts wrote from strata's own init against both, bit for bit."""
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


def uniform_torch(n, seed, lo, hi, device, chunk=1 << 26):
    """uniform() computed by PyTorch on `device` (the GPU: numpy takes minutes for 1.2B values).
    uint32 arithmetic in int64: every product of two values below 2^32 keeps its low 32 bits
    exact under int64's wrap-around, and each step masks back to 32 bits."""
    import torch

    out = torch.empty(n, dtype=torch.float32, device=device)
    m = 0xFFFFFFFF
    for at in range(0, n, chunk):
        i = torch.arange(at + 1, min(n, at + chunk) + 1, dtype=torch.int64, device=device)
        t = (seed + i * 0x6D2B79F5) & m
        t = ((t ^ (t >> 15)) * (t | 1)) & m
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & m)) & m)) & m
        u = (t ^ (t >> 14)).double() / 4294967296.0
        out[at:at + len(i)] = (lo + u * (hi - lo)).float()
    return out


def _range(name, shape):
    """(lo, hi) of strata's init for a Llama's tensor `name`."""
    if name.endswith(".bias"):
        return -0.05, 0.05
    if len(shape) == 1:
        return 0.8, 1.2
    if name == "model.embed_tokens.weight":
        return -1.0, 1.0
    r = math.sqrt(3 / shape[1])
    return -r, r


def random_weight(name, shape, seed, device=None):
    """The tensor strata's randomWeights(model, seed) gives `name` (a Llama's tensors only): a
    numpy array, or with `device` a torch tensor made there."""
    n = math.prod(shape)
    lo, hi = _range(name, shape)
    if device is not None:
        return uniform_torch(n, hash_name(name, seed), lo, hi, device).reshape(shape)
    return uniform(n, hash_name(name, seed), lo, hi).reshape(shape)


if __name__ == "__main__":
    import sys
    from safetensors.numpy import load_file

    folder, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    tensors = load_file(f"{folder}/model.safetensors")
    for name, want in tensors.items():
        # Both ways: numpy, and PyTorch on the CPU (export_onnx.py's, there on the GPU).
        for way, got in [("numpy", lambda: random_weight(name, list(want.shape), seed)),
                         ("torch", lambda: random_weight(name, list(want.shape), seed, "cpu").numpy())]:
            got = got()
            if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
                bad = int(np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))[0])
                sys.exit(f"random_init ({way}): {name}[{bad}] is {got.ravel()[bad]!r}, "
                         f"strata's is {want.ravel()[bad]!r}")
    print(f"random_init: all {len(tensors)} tensors of {folder} equal strata's init bit for bit "
          "(numpy and torch)")
