#!/usr/bin/env python3
"""BF16 golden fixtures for strata's HuggingFace tests (issue 12; see tools/golden/README.md).

The tiny models of make_golden.py (same configs, seed and weight randomisation), with every
weight rounded to bfloat16 and saved as BF16 safetensors, as real checkpoints are. Two
references per type, over the same 24-token prompt and 8 greedy decode steps:

  (b) transformers in float32 on the bf16-rounded weights (CPU, one thread, eager): exact
      compute on exactly the weights strata reads. Stored under make_golden.py's names
      (prefill_logits, decode_tokens, decode_logits), so strata's f32 golden check applies as is.
  (a) transformers in bfloat16 (the checkpoint loaded with dtype=torch.bfloat16, eager, on
      --device): what a user running the checkpoint in bf16 gets. Its greedy tokens may leave
      (b)'s at a near-tie, so it has its own stream: bf16_prefill_logits, bf16_decode_tokens,
      bf16_decode_logits (bf16 values, stored as f32). bf16_decode_logits_f32 is (b) fed
      bf16_decode_tokens (one cache-less forward), so that (a) and exact compute can be compared
      row by row on both streams.

The metadata entry `golden` records, besides make_golden.py's keys, the distance of (a) from
(b) (per-row max |Δ| and max |Δ| / max |logit of (a)|, prefill and decode, and the share of the
32 rows whose top-1 agrees, a tie in (a) counting as agreement for any of its tied tokens), the
device, and that the fixture was generated there. test/golden/hf-bf16-golden.test.ts derives its
bf16 tolerances from these numbers.

    python3 tools/golden/make_bf16_golden.py [--out test/fixtures/hf-bf16] [--device cpu|cuda] [types...]

Default types: llama qwen3 jamba mamba2 qwen3_next (issue 12); any type of make_golden.py works.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import (  # noqa: E402  (the folder above must be on the path first)
    DECODE_STEPS, PROMPT, SEED, TINY, VOCAB, build_config, check, golden_meta, greedy_decode,
    install, make_each, randomize, save_checkpoint, versions,
)

TYPES = ["llama", "qwen3", "jamba", "mamba2", "qwen3_next"]
SIZE_LIMIT_PER_TYPE = 512 * 1024


def forward(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids),
                     use_cache=False).logits[0].float().cpu()


def distance(got, ref):
    """Per-row worst |got − ref| and worst |got − ref| / max |ref| (ref: the run strata is
    compared with, as test/helpers/golden.ts rowErrors does)."""
    diff = (got - ref).abs().max(dim=-1).values
    scale = ref.abs().max(dim=-1).values
    return diff.max().item(), (diff / scale).max().item()


def top1_agreement(got, ref):
    """Rows where got's argmax is one of ref's maxima (bf16 logits tie often: 8 bits)."""
    pick = got.argmax(dim=-1, keepdim=True)
    return (ref.gather(-1, pick).squeeze(-1) == ref.max(dim=-1).values).float().mean().item()


def make(model_type, out_root, v, device):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    config = build_config(model_type)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.to(dtype=torch.float32).eval()
    randomize(model)  # the f32 fixture's weights, then rounded to nearest-even bf16
    model = model.to(dtype=torch.bfloat16)
    for p in model.parameters():
        p.data = p.data.contiguous()

    tmp = os.path.join(out_root, f".{model_type}.tmp")
    n_tensors = save_checkpoint(model, tmp, dtype="BF16")
    weights = {k: p.detach().clone() for k, p in model.state_dict().items()}
    del model

    ids = torch.tensor([PROMPT], dtype=torch.long)

    # (b) exact compute on the bf16 weights: loaded as float32 (the widening is exact).
    exact = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="eager",
                                                 dtype=torch.float32).to(torch.float32).eval()
    for k, p in exact.state_dict().items():
        if k in weights and not torch.equal(p, weights[k].float()):
            raise RuntimeError(f"{k} loaded as float32 is not the bf16 weight widened")
    prefill = forward(exact, ids)
    with torch.no_grad():
        tokens, decode_logits, last = greedy_decode(exact, ids)
    full = forward(exact, torch.cat([ids, tokens.view(1, -1)], dim=1))
    scale = prefill.abs().max().item()
    diffs = {
        "f32: generate prefill vs forward": (last - prefill[-1]).abs().max().item(),
        "f32: cached decode vs full recompute": (decode_logits - full[len(PROMPT):]).abs().max().item(),
    }
    check(diffs, scale)

    # (a) the checkpoint run in bf16, as a user runs it.
    half = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="eager",
                                                dtype=torch.bfloat16).to(device).eval()
    if any(p.dtype != torch.bfloat16 for p in half.parameters()):
        raise RuntimeError("the bf16 model has parameters that are not bf16")
    dids = ids.to(device)
    bf16_prefill = forward(half, dids)
    with torch.no_grad():
        bf16_tokens, bf16_decode, bf16_last = greedy_decode(half, dids)
    bf16_tokens, bf16_decode, bf16_last = bf16_tokens.cpu(), bf16_decode.cpu(), bf16_last.cpu()
    bf16_ids = torch.cat([ids, bf16_tokens.view(1, -1)], dim=1)
    bf16_full = forward(half, bf16_ids.to(device))
    # bf16 against itself: cached and cache-less paths round differently; recorded, not checked.
    bf16_self = {
        "generate prefill vs forward": (bf16_last - bf16_prefill[-1]).abs().max().item(),
        "cached decode vs full recompute": (bf16_decode - bf16_full[len(PROMPT):]).abs().max().item(),
    }
    # Exact compute fed the bf16 run's tokens: (a) vs (b) row by row on (a)'s stream.
    exact_on_bf16 = forward(exact, bf16_ids)[len(PROMPT):]

    pre_abs, pre_rel = distance(prefill, bf16_prefill)
    dec_abs, dec_rel = distance(exact_on_bf16, bf16_decode)
    measured = {
        "prefill_abs": pre_abs, "prefill_rel": pre_rel, "decode_abs": dec_abs, "decode_rel": dec_rel,
        "top1_agreement": top1_agreement(torch.cat([prefill, exact_on_bf16]),
                                         torch.cat([bf16_prefill, bf16_decode])),
        "rows": len(PROMPT) + DECODE_STEPS,
        "max_abs_logit": bf16_prefill.abs().max().item(),
        "tokens_diverge_at": next((i for i in range(DECODE_STEPS)
                                   if bf16_tokens[i] != tokens[i]), None),
        "bf16_self_check": bf16_self,
    }

    meta = golden_meta(
        model_type, v,
        weights="BF16: make_golden.py's float32 weights rounded to nearest-even bfloat16",
        reference="prefill_logits/decode_*: transformers float32 (CPU, one thread, eager) on the "
                  "bf16 weights; bf16_*: transformers bfloat16 (eager) on " + device,
        bf16_decode_logits_f32="float32 compute fed bf16_decode_tokens (cache-less forward)",
        device=device,
        generated="on " + ("this CPU machine, not the H200: the GPU machine was unavailable; "
                           "rerun with --device cuda there" if device == "cpu" else device),
        bf16_vs_f32=json.dumps(measured, sort_keys=True),
    )
    write(tmp, meta, {
        "prompt_ids": torch.tensor(PROMPT, dtype=torch.int32),
        "prefill_logits": prefill,
        "decode_tokens": tokens.to(torch.int32),
        "decode_logits": decode_logits,
        "bf16_prefill_logits": bf16_prefill,
        "bf16_decode_tokens": bf16_tokens.to(torch.int32),
        "bf16_decode_logits": bf16_decode,
        "bf16_decode_logits_f32": exact_on_bf16,
    })
    size = install(tmp, os.path.join(out_root, model_type))
    if size > SIZE_LIMIT_PER_TYPE:
        raise RuntimeError(f"{size / 1024:.0f} KiB, over the {SIZE_LIMIT_PER_TYPE // 1024} KiB budget")
    print(f"  {n_tensors} tensors, {size / 1024:.0f} KiB, max |logit| {scale:.3f}")
    print(f"  f32 tokens  {tokens.tolist()}\n  bf16 tokens {bf16_tokens.tolist()}")
    for what, d in diffs.items():
        print(f"  max diff {what}: {d:.3e}")
    for what, d in bf16_self.items():
        print(f"  max diff bf16: {what}: {d:.3e}")
    print(f"  bf16 vs f32: prefill abs {pre_abs:.3e} rel {pre_rel:.3e}, decode abs {dec_abs:.3e} "
          f"rel {dec_rel:.3e}, top-1 {measured['top1_agreement']:.4f} of {measured['rows']} rows")


def write(folder, meta, tensors):
    from safetensors.torch import save_file
    save_file({k: t.contiguous() for k, t in tensors.items()}, os.path.join(folder, "golden.safetensors"),
              metadata={"golden": json.dumps(meta, sort_keys=True)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="test/fixtures/hf-bf16", help="output folder (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="device of the bf16 run (default: %(default)s)")
    parser.add_argument("types", nargs="*", help=f"model types (default: {' '.join(TYPES)})")
    args = parser.parse_args()
    unknown = [t for t in args.types if t not in TINY]
    if unknown:
        parser.error(f"unknown types {unknown}; known: {' '.join(TINY)}")
    types = args.types or TYPES

    # One CPU thread: reductions always run in the same order. On CUDA, no TF32 anywhere.
    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    v = versions()
    if args.device.startswith("cuda"):
        v["cuda"] = torch.version.cuda
        v["gpu"] = torch.cuda.get_device_name(args.device)
        # Left at PyTorch's default, as a user runs it; recorded because it changes bf16 GEMMs.
        v["allow_bf16_reduced_precision_reduction"] = \
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    os.makedirs(args.out, exist_ok=True)
    failed = make_each(types, lambda t: make(t, args.out, v, args.device), args.out)
    print(f"done: {len(types) - len(failed)} ok" + (f", failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
