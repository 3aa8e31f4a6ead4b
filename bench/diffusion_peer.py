#!/usr/bin/env python3
"""The PyTorch peer of bench/diffusion-speed.ts (issue 16's H200 bench): the reference samplers on
a LLaDA-8B-shaped model with random weights, cut to a few layers, in bfloat16 on CUDA.

The settings are diffusion-speed.ts's: a prompt of 64 ids, 128 tokens in blocks of 32 over 128
steps (one token per step: steps = gen length), low-confidence remasking, temperature 0.
  exact                      ML-GSAI/LLaDA generate.py generate()
  prefix cache               NVlabs/Fast-dLLM llada/generate.py generate_with_prefix_cache()
  dual cache                 generate_with_dual_cache()
  dual cache, threshold 0.9  generate_with_dual_cache(threshold=0.9)
and bench/block-diffusion-speed.ts's block diffusion (BD3-LM) rows, on the same weights with the
attention made block-causal over blocks of 16, temperature 1, nucleus 0.9:
  bd3lm first-hitting        kuleshov-group/bd3lms diffusion.py _ddpm_caching_update, first_hitting
  bd3lm ddpm, 4 steps        the same with first_hitting off and algo.T = 4
bd3lms samples its own DiT; here its sampler drives the LLaDA model through a backbone with
sampling.kv_cache on (BlockCache below): each forward runs the current block alone against the
committed blocks' K/V, and a finished block runs once more to store its K/V, as the reference's
store_kv does. The prompt's blocks are stored the same way first (bd3lms starts from BOS alone).
The block loop is _semi_ar_sampler's (bd3lm_generate below: it starts from the prompt instead of
BOS and has no stop checks, which apply past 256 tokens).
Each is timed as the median of --runs whole generations (after one warm-up), with min and max,
and its forwards counted; tokens/s = gen length / median time.

The model and samplers come from the public reference files, loaded by path with importlib as
tools/golden/make_diffusion_golden.py does (none of that code is in strata). The GPU machine cannot
reach GitHub, so they travel as a carried folder: make it here with

    bash bench/diffusion-peer-pack.sh      # writes .diffusion-ref/ (~200 KB) from the mirrors

(bd3lms's diffusion.py and noise_schedule.py go in .diffusion-ref/bd3lms), then on the GPU
machine (device run, carry [".gpu", ".diffusion-ref"]):

    source .gpu/prelude.sh
    python3 bench/diffusion_peer.py --ref .diffusion-ref --out $OUT/diffusion-peer.json
    tsx bench/diffusion-speed.ts 4 --gpu-flags fast --out $OUT/diffusion-strata.json

`--tiny` runs a 2-layer d_model-64 model on the CPU (float32) to check the script itself.
"""

import argparse
import json
import types
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "golden"))
from make_diffusion_golden import compat_shims, load_module, load_package, read_source  # noqa: E402
from make_bd3lm_golden import bare_diffusion, load_sampler  # noqa: E402

# GSAI-ML/LLaDA-8B-Instruct's config.json, with n_layers from --layers.
LLADA_8B = dict(
    d_model=4096, n_heads=32, n_kv_heads=32, mlp_hidden_size=12288, vocab_size=126464,
    embedding_size=126464, block_type="llama", layer_norm_type="rms", rms_norm_eps=1e-5,
    rope=True, rope_theta=500000.0, activation_type="silu", weight_tying=False,
    include_bias=False, include_qkv_bias=False, bias_for_layer_norm=False,
    mask_token_id=126336, eos_token_id=126081, pad_token_id=126081, max_sequence_length=4096,
    attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0, init_fn="normal")
TINY = dict(LLADA_8B, d_model=64, n_heads=4, n_kv_heads=4, mlp_hidden_size=96, vocab_size=512,
            embedding_size=512, mask_token_id=500, eos_token_id=1, pad_token_id=1)
PROMPT = 64
SAMPLER = dict(steps=128, gen_length=128, block_length=32, temperature=0.0,
               remasking="low_confidence")
# bench/block-diffusion-speed.ts's settings (--block 16), which are bd3lms's sampling defaults.
BLOCK_SAMPLER = dict(block=16, temperature=1.0, nucleus_p=0.9, ddpm_steps=4)


class Counter(torch.nn.Module):
    """Counts the model's forwards (the samplers call model(...) once per step)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.forwards = 0

    @property
    def device(self):
        return self.inner.device

    def forward(self, *a, **k):
        self.forwards += 1
        return self.inner(*a, **k)


class BlockCache(torch.nn.Module):
    """The LLaDA model as bd3lms's backbone with sampling.kv_cache on. Fast-dLLM's modeling_llada
    takes past_key_values and attends bidirectionally over them and the new rows (no mask), which
    for a block after the cached ones is the block-causal mask. store_kv keeps the block's K/V."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.cache = None

    def forward(self, x, sigma, store_kv=False, sample_mode=False):
        # diffusion.py's forward wraps the backbone in autocast to float32, which would run this
        # bf16 model's matmuls in f32; it runs in bf16 as the LLaDA rows' model does.
        with torch.autocast("cuda", enabled=False):
            out = self.model(x, past_key_values=self.cache, use_cache=store_kv)
        if store_kv:
            self.cache = out.past_key_values
        return out.logits


def bd3lm_generate(d, prompt, gen_length, steps, first_hitting):
    """_semi_ar_sampler's block loop (diffusion.py) from a prompt: each block of masks is denoised
    by the reference's _ddpm_caching_update, which with kv_cache forwards the block alone and,
    once it holds no mask, stores its K/V."""
    block, mask = d.block_size, d.mask_index
    if prompt.shape[1] % block or gen_length % block:
        raise ValueError(f"prompt {prompt.shape[1]} and gen length {gen_length} must be "
                         f"multiples of the block {block}")
    d.backbone.cache = None
    for start in range(0, prompt.shape[1], block):
        d.backbone(prompt[:, start:start + block], None, store_kv=True)
    x_accum = prompt.clone()
    ones = torch.ones((1, 1), dtype=torch.float32, device=prompt.device)
    for _ in range(gen_length // block):
        x_accum = torch.cat((x_accum, d._sample_prior(1, block)), dim=1)
        dt = 1 / steps
        p_x0_cache = None
        timesteps = torch.linspace(1, 0, steps, device=prompt.device)
        t = 1
        for i in range(steps):
            if mask not in x_accum:
                break
            if first_hitting:
                u = np.random.rand()
                t *= u ** (1 / (x_accum[:, -block:] == mask).sum(-1).item())
            else:
                t = timesteps[i]
            p_x0_cache, x_next = d._ddpm_caching_update(x=x_accum, t=t * ones, dt=dt,
                                                        p_x0=p_x0_cache)
            x_accum = x_next
    return x_accum


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True,
                    help="folder (or checkouts) holding Fast-dLLM's llada/ and LLaDA's generate.py")
    ap.add_argument("--llada", help="ML-GSAI/LLaDA checkout or mirror (default: --ref)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--bd3lms", help="kuleshov-group/bd3lms checkout or mirror, or a folder with its "
                    "diffusion.py and noise_schedule.py (default: --ref/bd3lms)")
    ap.add_argument("--settings", default="exact,prefix,dual,dual-0.9,bd3lm,bd3lm-ddpm",
                    help="which samplers to time, comma-separated, in this order (a call too "
                         "short for all can time some apart)")
    args = ap.parse_args()
    started = time.perf_counter()
    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    settings = dict(TINY if args.tiny else LLADA_8B, n_layers=2 if args.tiny else args.layers)

    compat_shims()
    work = tempfile.mkdtemp()
    # Fast-dLLM's generate.py imports `model.modeling_llada`: the package must be named `model`.
    ref = load_package("model", args.ref, "llada/model", ["configuration_llada", "modeling_llada"],
                       work)
    fast = load_module("fast_generate", read_source(args.ref, "llada/generate.py"), work)
    exact = load_module("llada_generate", read_source(args.llada or args.ref, "generate.py"), work)

    config = ref["configuration_llada"].LLaDAConfig(**settings, init_device=device)
    # transformers 5's PretrainedConfig no longer keeps use_cache from LLaDAConfig's kwargs; the
    # cached samplers pass use_cache=True themselves.
    config.use_cache = False
    torch.manual_seed(0)
    with torch.device(device):
        model = ref["modeling_llada"].LLaDAModelLM(config, init_params=True)
    # The model must be moved explicitly: built under torch.device("cuda") with init_device cuda,
    # LLaDAModelLM still came out on the CPU (and the samplers follow model.device), so runs
    # before 2026-12-06 13:30 timed the peer on the host's CPU.
    model = model.to(device=device, dtype=dtype).eval()
    where = {p.device.type for p in model.parameters()}
    if where != {torch.device(device).type}:
        raise RuntimeError(f"the model's parameters are on {sorted(where)}, not {device}")
    counted = Counter(model)
    mask = settings["mask_token_id"]
    prompt = torch.tensor([[(i * 7919) % mask for i in range(PROMPT)]], device=device)
    runs = [
        ("exact", "exact",
         lambda: exact.generate(counted, prompt, mask_id=mask, cfg_scale=0.0, **SAMPLER)),
        ("prefix", "prefix cache",
         lambda: fast.generate_with_prefix_cache(counted, prompt, mask_id=mask, **SAMPLER)),
        ("dual", "dual cache",
         lambda: fast.generate_with_dual_cache(counted, prompt, mask_id=mask, **SAMPLER)),
        ("dual-0.9", "dual cache, threshold 0.9",
         lambda: fast.generate_with_dual_cache(counted, prompt, mask_id=mask, threshold=0.9,
                                               **SAMPLER)),
    ]
    wanted = args.settings.split(",")
    B = BLOCK_SAMPLER["block"]
    if "bd3lm" in wanted or "bd3lm-ddpm" in wanted:
        noise, bd3lms = load_sampler(args.bd3lms or os.path.join(args.ref, "bd3lms"), work)

        def block_sampler(first_hitting):
            return bare_diffusion(bd3lms, noise, BlockCache(counted), block=B,
                                  first_hitting=first_hitting, mask=mask,
                                  vocab=settings["vocab_size"], length=PROMPT + SAMPLER["gen_length"],
                                  kv_cache=True, nucleus_p=BLOCK_SAMPLER["nucleus_p"],
                                  cross_attn=False, device=device, dtype=dtype)

        fh, ddpm = block_sampler(True), block_sampler(False)

        def block_run(d, steps, first_hitting):
            np.random.seed(1)
            torch.manual_seed(1)
            return bd3lm_generate(d, prompt, SAMPLER["gen_length"], steps, first_hitting)

        runs += [
            ("bd3lm", f"bd3lm first-hitting (blocks of {B})", lambda: block_run(fh, B, True)),
            ("bd3lm-ddpm", f"bd3lm ddpm, {BLOCK_SAMPLER['ddpm_steps']} steps a block",
             lambda: block_run(ddpm, BLOCK_SAMPLER["ddpm_steps"], False)),
        ]
    unknown = [w for w in wanted if w not in {key for key, _, _ in runs}]
    if unknown:
        ap.error(f"--settings: unknown {', '.join(unknown)}; allowed: "
                 + ", ".join(key for key, _, _ in runs))
    # In the order asked for, so a call short of time can put what it needs first.
    runs = [next(run for run in runs if run[0] == w) for w in wanted]
    print(f"model ready ({settings['n_layers']} layers, {dtype}, on {device}) after "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    rows = []

    def write():
        # After every setting, so a run cut short by the device call's limit keeps its rows.
        if not args.out:
            return
        result = dict(
            peer="PyTorch reference samplers (ML-GSAI/LLaDA generate.py, NVlabs/Fast-dLLM"
                 + (", kuleshov-group/bd3lms)" if any(r[0].startswith("bd3lm") for r in runs)
                    else ")"),
            model=f"LLaDA-8B shape, {settings['n_layers']} layers, random weights, {dtype}",
            device=torch.cuda.get_device_name() if cuda else "cpu",
            torch=torch.__version__, prompt=PROMPT, sampler=SAMPLER,
            block_sampler=BLOCK_SAMPLER, rows=rows)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    for _, label, fn in runs:
        with torch.no_grad():
            fn()  # warm-up
            times = []
            for _ in range(1 if args.tiny else args.runs):
                counted.forwards = 0
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        row = dict(setting=label, seconds_median=med, seconds_min=min(times),
                   seconds_max=max(times), runs=len(times), forwards=counted.forwards,
                   tokens_per_s=SAMPLER["gen_length"] / med)
        rows.append(row)
        print(f"{label:28s} {row['tokens_per_s']:8.1f} tok/s  {med * 1000:9.1f} ms "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})  "
              f"{counted.forwards} forwards", flush=True)
        write()


if __name__ == "__main__":
    main()
