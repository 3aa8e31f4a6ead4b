#!/usr/bin/env python3
"""NSA op fixture from fla's own naive reference, on the CPU (no Triton, no GPU).

fla's NSA layer runs only through Triton (fla/ops/nsa/parallel.py), so its model golden waits for
a GPU (make_fla_golden.py, "nsa"). Its naive reference, fla/ops/nsa/naive.py, is plain PyTorch
except for three imports, which this script stands in for:
- einops.repeat, used only as 'b t h d -> b t (h g) d' (each kv head repeated over its group);
- fla.ops.utils.pooling.mean_pooling (a Triton kernel): the mean of each block of `block_size`
  tokens, the partial last block over its own tokens, as the kernel computes it;
- flash_attn_func for the window branch: float32 causal attention over keys (t - w, t].
prepare_chunk_offsets is only used with cu_seqlens, which this script never passes.

It draws q, k, v and the three gates (after the sigmoid, as fla's layer passes them) from a fixed
seed, runs naive_nsa(..., return_block_indices=True) in float32, and writes
test/fixtures/ops/nsa_naive.safetensors: inputs, the output o and fla's block indices, with the
shapes and settings in the metadata. strata's test (test/model/nsa.test.ts) runs its op
composition on the same inputs, as a prefill and token by token.

    python3 tools/golden/make_nsa_naive_fixture.py --naive <path to fla/ops/nsa/naive.py> \\
        --fla-commit <sha> [--out test/fixtures/ops/nsa_naive.safetensors]
"""

import argparse
import importlib.util
import sys
import types

import torch
from safetensors.torch import save_file

SEED = 17
# fla's naive_nsa asserts a GQA group of at least 16 (a power of 2), its Triton kernels' tile.
CASE = dict(T=37, heads=32, kv_heads=2, head_dim=8, block_size=4, block_counts=3, window_size=5)


def repeat(x, pattern, g):
    if pattern != "b t h d -> b t (h g) d":
        raise RuntimeError(f"einops stand-in: unexpected pattern {pattern!r}")
    return x.repeat_interleave(g, dim=2)


def mean_pooling(x, chunk_size, cu_seqlens=None):
    if cu_seqlens is not None:
        raise RuntimeError("mean_pooling stand-in: no varlen")
    B, T, H, D = x.shape
    n = -(-T // chunk_size)
    pad = n * chunk_size - T
    xs = torch.cat([x, x.new_zeros(B, pad, H, D)], dim=1).view(B, n, chunk_size, H, D).sum(2)
    counts = torch.tensor([min(chunk_size, T - i * chunk_size) for i in range(n)], dtype=x.dtype)
    return xs / counts.view(1, n, 1, 1)


def flash_attn_func(q, k, v, causal=False, window_size=(-1, -1), **kw):
    B, Tq, H, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    k, v = (x.repeat_interleave(H // Hkv, dim=2) for x in (k, v))
    s = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * D ** -0.5
    qpos = torch.arange(Tq)[:, None] + (Tk - Tq)
    kpos = torch.arange(Tk)[None, :]
    allowed = torch.ones(Tq, Tk, dtype=torch.bool)
    if causal:
        allowed &= kpos <= qpos
    if window_size[0] >= 0:
        allowed &= kpos >= qpos - window_size[0]
    p = s.masked_fill(~allowed, float("-inf")).softmax(-1)
    return torch.einsum("bhqk,bkhd->bqhd", p, v.float()).to(q.dtype)


def load_naive(path):
    stubs = {
        "einops": types.SimpleNamespace(repeat=repeat),
        "fla": types.ModuleType("fla"),
        "fla.ops": types.ModuleType("fla.ops"),
        "fla.ops.utils": types.SimpleNamespace(prepare_chunk_offsets=None),
        "fla.ops.utils.pooling": types.SimpleNamespace(mean_pooling=mean_pooling),
    }
    sys.modules.update(stubs)
    spec = importlib.util.spec_from_file_location("fla_nsa_naive", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.flash_attn_func = flash_attn_func
    return mod


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--naive", required=True, help="fla/ops/nsa/naive.py of the fla commit")
    parser.add_argument("--fla-commit", required=True)
    parser.add_argument("--out", default="test/fixtures/ops/nsa_naive.safetensors")
    args = parser.parse_args()
    naive = load_naive(args.naive)

    c = CASE
    g = torch.Generator().manual_seed(SEED)
    T, H, Hkv, D = c["T"], c["heads"], c["kv_heads"], c["head_dim"]
    q = torch.randn(1, T, H, D, generator=g) * 3  # peaked scores, so importances spread apart
    k = torch.randn(1, T, Hkv, D, generator=g)
    v = torch.randn(1, T, Hkv, D, generator=g)
    gates = torch.sigmoid(torch.randn(1, T, H, 3, generator=g) * 2)
    with torch.no_grad():
        o, idx = naive.naive_nsa(
            q=q, k=k, v=v, g_cmp=gates[..., 0], g_slc=gates[..., 1], g_swa=gates[..., 2],
            block_counts=c["block_counts"], block_size=c["block_size"],
            window_size=c["window_size"], return_block_indices=True,
        )
    tensors = {
        "q": q[0].reshape(T, H * D).contiguous(),
        "k": k[0].reshape(T, Hkv * D).contiguous(),
        "v": v[0].reshape(T, Hkv * D).contiguous(),
        "gates": gates[0].reshape(T, H * 3).contiguous(),
        "o": o[0].reshape(T, H * D).float().contiguous(),
        "block_indices": idx[0].to(torch.int32).contiguous(),
    }
    meta = {k2: str(v2) for k2, v2 in c.items()}
    meta.update(
        source="fla/ops/nsa/naive.py naive_nsa, float32 on the CPU (this machine; no GPU), "
        "einops.repeat / mean_pooling / flash_attn_func stood in by plain PyTorch",
        fla_commit=args.fla_commit,
        torch=torch.__version__,
        seed=str(SEED),
        layout="q [T, heads*head_dim], k/v [T, kv_heads*head_dim], gates [T, heads*3] "
        "(sigmoid applied; per head cmp, slc, swa), o [T, heads*head_dim], "
        "block_indices [T, kv_heads, block_counts] (-1 pads)",
    )
    save_file(tensors, args.out, metadata=meta)
    print(f"wrote {args.out}: o max |x| {o.abs().max().item():.3f}")


if __name__ == "__main__":
    main()
