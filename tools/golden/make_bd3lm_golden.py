#!/usr/bin/env python3
"""Golden fixtures for strata's BD3-LM importer (`bd3lm`, remote code).

The reference is kuleshov-group/bd3lms: models/hf/{configuration,modeling}_bd3lm.py (the classes
the Hub checkpoints kuleshov-group/bd3lm-owt-block_size{4,8,16} load) and diffusion.py (the
Lightning module whose _semi_ar_sampler / _ddpm_caching_update sample them). This script loads
them from a checkout or bare mirror of that repository with importlib; none of their code is
copied into strata. diffusion.py imports training modules (lightning, hydra, dataloader,
metrics, utils) that sampling never calls: empty stand-ins take their names, and the sampler's
methods run on a bare Diffusion object given only the attributes they read (config.sampling,
mask_index, block_size, backbone, noise, ...).

Per fixture a tiny random BD3LM (float32, CPU, one thread; every parameter random, the adaLN
and output layers included, which the reference initialises to zero), saved as config.json +
model.safetensors under the reference's names, and golden.safetensors:

    prompt_ids      I32 [P]       the prompt of the one-step canvas
    canvas_logits   F32 [P+G, V]  BD3LM.forward(sample_mode=True) over the prompt and G mask ids
                                  (raw logits, block-causal mask, before _subs_parameterization)
    gen_prompt      I32 [1]       [BOS]: _semi_ar_sampler starts every sample from BOS alone
    decode_tokens   I32 [N-1]     _semi_ar_sampler's sample after BOS, first_hitting, kv_cache off
    decode_tokens.ddpm1  I32 [N-1]  the same with first_hitting off and algo.T = 1 (each block in
                                  one step: s = 0, so every mask is committed at once)

The reference samples at temperature 1 only (_sample_categorical: probs / Exp(1) noise, argmax).
strata's temperature 0 is its argmax, so _sample_categorical is replaced by argmax (the only
change to the sampler's arithmetic); torch.rand is then never called. The first-hitting sampler
also picks which masked position to commit with torch.randint(0, masked): that draw is
replaced by strata's (src/ops/block-diffusion.ts: index ⌊u·masked⌋ among the block's masked
positions, u = noiseUniform(seed, step, block start, 0xfffffffe), ported below), so the sample
is deterministic and both sides choose the same positions; everything else (which rows the
forward sees, the mask, the copy of committed tokens, the block loop and its stop) is the
reference's own code. `min_top2_gap` in the metadata is the smallest gap between the best and
second-best logit over every committed row (f32 differences between strata and torch are ~1e-6,
far below it, so both argmaxes agree).

Usage: python3 tools/golden/make_bd3lm_golden.py --bd3lms PATH [--out test/fixtures/diffusion]
"""

import argparse
import json
import os
import sys
import tempfile
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import SEED, install, randomize, versions  # noqa: E402
from make_diffusion_golden import commit_of, load_module, load_package, read_source  # noqa: E402

VOCAB = 64
MASK = VOCAB - 1
BOS = 1
PROMPT = [BOS, 17, 40, 3, 22, 9]
GEN = 10
BLOCK = 4
STRIDES = 4
NOISE_SEED = 7
WHY_CPU = ("generated on the CPU with torch 2.13 / transformers 5.18 because the GPU machine "
           "was unavailable")

TINY = dict(block_size=BLOCK, vocab_size=VOCAB, model_length=64, cross_attn=True, adaln=True,
            attn_backend="sdpa", causal=False, hidden_dim=64, cond_dim=32, n_blocks=2,
            n_heads=4, dropout=0.0, time_conditioning=False, var_min=True)
FIXTURES = {
    # The released checkpoints' settings (adaLN with time_conditioning off, cross_attn, sdpa).
    "bd3lm": TINY,
    # Without adaLN: plain LayerNorms without bias, no gates.
    "bd3lm_no_adaln": dict(TINY, adaln=False, block_size=2),
}


# strata's noise (src/ops/sampling.ts pcgHash, src/ops/diffusion.ts noiseUniform).
def pcg_hash(v):
    s = (v * 747796405 + 2891336453) & 0xFFFFFFFF
    w = ((((s >> ((s >> 28) + 4)) ^ s) & 0xFFFFFFFF) * 277803737) & 0xFFFFFFFF
    return ((w >> 22) ^ w) & 0xFFFFFFFF


def noise_uniform(seed, step, position, stream):
    h = pcg_hash(seed & 0xFFFFFFFF)
    h = pcg_hash(h ^ step)
    h = pcg_hash(h ^ position)
    return ((pcg_hash(h ^ stream) >> 8) + 0.5) / 16777216


CHOICE_STREAM = 0xFFFFFFFE


def stub(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    sys.modules[name] = m
    return m


def load_sampler(repo, work):
    """diffusion.py and noise_schedule.py, with empty stand-ins for diffusion.py's training-only
    imports (names only, never called when sampling)."""
    hydra = stub("hydra")
    hydra.utils = stub("hydra.utils")
    stub("lightning", LightningModule=torch.nn.Module)
    for name in ("dataloader", "metrics", "models", "utils"):
        stub(name)
    stub("noise_schedule")
    noise = load_module("bd3lm_noise_schedule", read_source(repo, "noise_schedule.py"), work)
    sys.modules["noise_schedule"] = noise
    diffusion = load_module("bd3lm_diffusion", read_source(repo, "diffusion.py"), work)
    return noise, diffusion


def load_reference(repo, work):
    ref = load_package("bd3lm_ref", repo, "models/hf", ["configuration_bd3lm", "modeling_bd3lm"], work)
    return (ref, *load_sampler(repo, work))


class Backbone(torch.nn.Module):
    """BD3LM as diffusion.py's hf_dit backbone: called (x, sigma, store_kv, sample_mode), logits."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, x, sigma, store_kv=False, sample_mode=False):
        return self.inner(input_ids=x, timesteps=sigma, sample_mode=sample_mode,
                          store_kv=store_kv, return_dict=False)


def bare_diffusion(diffusion, noise, backbone, *, block, first_hitting, mask, vocab, length,
                   kv_cache=False, nucleus_p=1.0, cross_attn=True, bos=None,
                   device=torch.device("cpu"), dtype=torch.float32):
    """A bare Diffusion with what _semi_ar_sampler and its callees read (also bench/diffusion_peer.py's
    block-diffusion rows, with kv_cache on and a nucleus)."""
    d = diffusion.Diffusion.__new__(diffusion.Diffusion)
    torch.nn.Module.__init__(d)
    d.config = types.SimpleNamespace(
        sampling=types.SimpleNamespace(first_hitting=first_hitting, kv_cache=kv_cache,
                                       nucleus_p=nucleus_p, var_length=False),
        algo=types.SimpleNamespace(name="bd3lm"),
        model=types.SimpleNamespace(length=length),
        loader=types.SimpleNamespace(eval_batch_size=1))
    d.backbone = backbone
    d.noise = noise.LogLinearNoise()
    d.mask_index = mask
    d.vocab_size = vocab
    d.block_size = block
    d.cross_attn = cross_attn
    d.parameterization = "subs"
    d.time_conditioning = False
    d.neg_infinity = -1000000.0
    d.tokenizer = types.SimpleNamespace(bos_token_id=bos)
    # LightningModule properties the sampler reads.
    type(d).device = property(lambda self: torch.device(device))
    type(d).dtype = property(lambda self: dtype)
    return d


def sampler(diffusion, noise, model, block, first_hitting):
    return bare_diffusion(diffusion, noise, Backbone(model), block=block,
                          first_hitting=first_hitting, mask=MASK, vocab=VOCAB, bos=BOS,
                          length=model.config.model_length)


def run_sampler(diffusion, noise, model, block, first_hitting, steps):
    """_semi_ar_sampler at temperature 0 (see the header); returns the sample and the top-2 gap."""
    d = sampler(diffusion, noise, model, block, first_hitting)
    gaps = []
    state = {"step": 0, "from": 0}
    orig_update = diffusion.Diffusion._ddpm_caching_update

    def argmax(probs):
        top = probs.topk(2, dim=-1).values
        # The gap in logits: log p1 − log p2 (softmax is a shift of the logits).
        gaps.append(float((top[..., 0].log() - top[..., 1].log()).min()))
        return probs.argmax(dim=-1)

    real_torch = diffusion.torch

    class Torch(types.ModuleType):
        def __getattr__(self, k):
            return getattr(real_torch, k)

        @staticmethod
        def randint(low, high, size):
            # strata's choice among the block's masked positions (ascending, as nonzero() lists them).
            u = noise_uniform(NOISE_SEED, state["step"], state["from"], CHOICE_STREAM)
            return real_torch.tensor([min(int(high) - 1, int(u * int(high)))] * size[0])

    def update(self, x, t, dt, p_x0=None):
        state["from"] = x.shape[1] - block
        try:
            return orig_update(self, x, t, dt, p_x0)
        finally:
            state["step"] += 1

    diffusion._sample_categorical = argmax
    diffusion.torch = Torch("torch")
    try:
        d._ddpm_caching_update = types.MethodType(update, d)
        x, _ = d._semi_ar_sampler(n_samples=1, num_steps=steps, num_strides=STRIDES,
                                  seqlen=STRIDES * block)
    finally:
        diffusion.torch = real_torch
    return x[0], min(gaps)


def make_one(name, settings, args, ref, noise, diffusion, v):
    config = ref["configuration_bd3lm"].BD3LMConfig(**settings)
    torch.manual_seed(SEED)
    model = ref["modeling_bd3lm"].BD3LM(config).to(torch.float32).eval()
    randomize(model)
    with torch.no_grad():
        # adaLN and the output layer start at zero in the reference. randomize gives matrices
        # the fan-in scale and biases 0.1 noise; the modulation's chunks (scale, shift, gate)
        # are kept moderate, so that no chunk drowns the rest (a sample of one repeated token
        # would test little), yet far from zero and from one.
        for n, p in model.named_parameters():
            if "adaLN_modulation" in n:
                p.mul_(0.5)
        canvas = torch.tensor([PROMPT + [MASK] * GEN])
        logits = model(input_ids=canvas, timesteps=torch.zeros(1), sample_mode=True,
                       return_dict=False).float()  # [1, P+G, V]: BD3LM returns bare logits
        block = settings["block_size"]
        fh, gap_fh = run_sampler(diffusion, noise, model, block, True, block)
        dd, gap_dd = run_sampler(diffusion, noise, model, block, False, 1)
    if min(gap_fh, gap_dd) < 1e-3:
        raise RuntimeError(f"{name}: top-2 logit gap {min(gap_fh, gap_dd):.3e}: pick another seed")
    from safetensors.torch import save_file

    tmp = os.path.join(args.out, f".{name}.tmp")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    config.save_pretrained(tmp)
    state = {k: t.detach().to(torch.float32).contiguous() for k, t in model.state_dict().items()}
    save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    # Self-check: the saved folder alone (config.json + model.safetensors) gives the same logits.
    from safetensors.torch import load_file

    again = ref["modeling_bd3lm"].BD3LM(ref["configuration_bd3lm"].BD3LMConfig.from_pretrained(tmp))
    again.load_state_dict(load_file(os.path.join(tmp, "model.safetensors")))
    with torch.no_grad():
        reload_diff = float((again.eval()(input_ids=canvas, timesteps=torch.zeros(1), sample_mode=True,
                                          return_dict=False).float() - logits).abs().max())
    if reload_diff != 0:
        raise RuntimeError(f"{name}: the saved checkpoint gives other logits ({reload_diff:.3e})")
    meta = {
        "type": "bd3lm",
        "seed": SEED,
        **v,
        "reference": f"kuleshov-group/bd3lms@{commit_of(args.bd3lms)} models/hf, diffusion.py",
        "sampler": "diffusion.py Diffusion._semi_ar_sampler (kv_cache off, nucleus_p 1)",
        "sampler_settings": {
            "block_size": block, "num_strides": STRIDES, "first_hitting": {"T": block},
            "ddpm1": {"T": 1}, "temperature": 0, "noise_seed": NOISE_SEED, "mask_id": MASK,
            "bos": BOS},
        "note": "temperature 0 = _sample_categorical replaced by argmax; first-hitting positions "
                "from strata's noiseUniform (see tools/golden/make_bd3lm_golden.py)",
        "min_top2_gap": f"{min(gap_fh, gap_dd):.3e}",
        "generated_on": WHY_CPU,
    }
    save_file({
        "prompt_ids": torch.tensor(PROMPT, dtype=torch.int32),
        "canvas_logits": logits[0].contiguous(),
        "gen_prompt": torch.tensor([BOS], dtype=torch.int32),
        "decode_tokens": fh[1:].to(torch.int32).contiguous(),
        "decode_tokens.ddpm1": dd[1:].to(torch.int32).contiguous(),
    }, os.path.join(tmp, "golden.safetensors"), metadata={"golden": json.dumps(meta, sort_keys=True)})
    size = install(tmp, os.path.join(args.out, name))
    print(f"{name}: {len(state)} tensors, {size} bytes; first_hitting {fh[1:].tolist()}; "
          f"ddpm1 {dd[1:].tolist()}; top-2 gap {min(gap_fh, gap_dd):.3e}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bd3lms", required=True, help="checkout or bare mirror of kuleshov-group/bd3lms")
    p.add_argument("--out", default="test/fixtures/diffusion")
    args = p.parse_args()
    torch.set_num_threads(1)
    v = versions()
    with tempfile.TemporaryDirectory() as work:
        ref, noise, diffusion = load_reference(args.bd3lms, work)
        for name, settings in FIXTURES.items():
            make_one(name, settings, args, ref, noise, diffusion, v)


if __name__ == "__main__":
    main()
