#!/usr/bin/env python3
"""strata's e2e model → ONNX for ONNX Runtime, through HF LlamaForCausalLM: either built here from
HF_DIR/config.json with strata's seeded init (--random-seed S: random_init.py, on --device; what
the GPU machine does) or loaded from a checkpoint in HF_DIR (bench/ort/write-hf.ts writes one).
The past KV are inputs and the present KV outputs, so one graph serves prefill (past length 0)
and decode (one token after P cached ones):

  inputs   input_ids [1, T] int64, attention_mask [1, P+T] int64 (ones), position_ids [1, T] int64,
           past_key_values.{i}.key / .value [1, kv_heads, P, head_dim] (f32 or f16)
  outputs  logits [1, 1, vocab] (the last row only, as strata's e2e and HF's logits_to_keep=1),
           present.{i}.key / .value [1, kv_heads, P+T, head_dim]

Exported with torch.onnx.export's TorchScript tracer (dynamo=False), which writes files over 2 GB
as external data itself and needs the onnx package for one step only (see below); dynamo=True is
the fallback. The trace runs HF's eager attention at P=3, T=5, so the graph takes the general
path (an explicit causal mask from attention_mask and the positions, no shape-dependent
shortcut), which holds for every P ≥ 0 and T ≥ 1.

Also writes reference.json: PyTorch's own logits (the last row) of a fixed 16-token prompt and of
3 greedy decode steps after it, for bench/ort/bench_ort.py to check ONNX Runtime against.
Usage: export_onnx.py HF_DIR OUT [--dtypes f32,f16] [--device cpu|cuda] [--random-seed S]
writes OUT/onnx-f32/ and OUT/onnx-f16/ (model.onnx, its external weight files, reference.json);
the model is made once, in f32, and cast to f16 (round to nearest even, as strata's f16 weights)
for the second export."""
import argparse
import json
import os
import time
import sys
import warnings

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transformers.cache_utils import DynamicCache

p = argparse.ArgumentParser()
p.add_argument("hf_dir")
p.add_argument("out")
p.add_argument("--dtypes", default="f32,f16")
p.add_argument("--device", default="cpu")
p.add_argument("--random-seed", type=int,
               help="build the weights here as strata's randomWeights(model, SEED) (random_init.py); "
                    "HF_DIR then needs only config.json")
args = p.parse_args()
DTYPES = {"f32": torch.float32, "f16": torch.float16}
dev = torch.device(args.device)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

t0 = time.time()
if args.random_seed is None:
    model = transformers.LlamaForCausalLM.from_pretrained(
        args.hf_dir, dtype=torch.float32, attn_implementation="eager").to(dev).eval()
else:
    from random_init import random_weight
    config = transformers.AutoConfig.from_pretrained(args.hf_dir)
    config._attn_implementation = "eager"
    with torch.device(dev):
        model = transformers.LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        # Tied embeddings are one parameter under two names: named_parameters gives it once.
        for name, param in model.named_parameters():
            param.copy_(random_weight(name, list(param.shape), args.random_seed, dev))
cfg = model.config
L, KVH = cfg.num_hidden_layers, cfg.num_key_value_heads
HD = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
# RoPE's inverse frequencies stay f32 in every export, as HF keeps them when it loads a model in
# f16 (a plain .to(f16) would round them, and every angle with them).
INV_FREQ = model.model.rotary_emb.inv_freq.detach().clone()


class WithPast(torch.nn.Module):
    """The causal LM with its cache as flat tensors in and out (the tracer takes tensors only)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache(config=cfg)
        for i in range(L):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      past_key_values=cache, use_cache=True, logits_to_keep=1)
        pres = []
        for i in range(L):
            layer = out.past_key_values.layers[i]
            pres += [layer.keys, layer.values]
        return (out.logits, *pres)


try:
    import onnx  # noqa: F401
except ImportError:
    # The TorchScript exporter imports onnx only to copy onnxscript custom functions into the
    # model; this graph has none (no custom_opsets), so the bytes pass through unchanged.
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils
    onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes


def export(name):
    """Exports the model, cast to `name`, with its reference logits, to OUT/onnx-<name>/."""
    dtype = DTYPES[name]
    model.to(dtype)
    model.model.rotary_emb.inv_freq = INV_FREQ
    out_dir = os.path.join(args.out, f"onnx-{name}")
    t0 = time.time()

    def feeds(ids, past):
        """Inputs for tokens `ids` after a cache of `past` positions."""
        T = ids.shape[1]
        P = past[0].shape[2]
        return (ids, torch.ones(1, P + T, dtype=torch.int64, device=dev),
                torch.arange(P, P + T, device=dev).unsqueeze(0), *past)

    def empty_past(P=0):
        return [torch.zeros(1, KVH, P, HD, dtype=dtype, device=dev) for _ in range(2 * L)]

    wrapped = WithPast(model).eval()
    names_past = [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    names_pres = [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    dyn = {"input_ids": {1: "T"}, "attention_mask": {1: "PT"}, "position_ids": {1: "T"}}
    for n in names_past:
        dyn[n] = {2: "P"}
    for n in names_pres:
        dyn[n] = {2: "PT"}

    # Reference: torch's logits of the fixed prompt, then 3 greedy steps, on the same graph inputs.
    V = cfg.vocab_size
    prompt = (torch.arange(16, device=dev) * 7919 % V).unsqueeze(0)
    ref = {"prompt": prompt[0].tolist(), "dtype": name, "device": args.device, "layers": L,
           "kv_heads": KVH, "head_dim": HD, "torch": torch.__version__, "steps": []}
    with torch.no_grad():
        outs = wrapped(*feeds(prompt, empty_past()))
        ref["prefill_logits"] = outs[0][0, -1].float().cpu().tolist()
        past = list(outs[1:])
        for _ in range(3):
            tok = int(outs[0][0, -1].float().argmax())
            outs = wrapped(*feeds(torch.tensor([[tok]], device=dev), past))
            past = list(outs[1:])
            ref["steps"].append({"token": tok, "logits": outs[0][0, -1].float().cpu().tolist()})

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.onnx")
    sample = feeds(torch.randint(0, V, (1, 5), device=dev), [torch.randn(1, KVH, 3, HD, dtype=dtype, device=dev)
                                                               for _ in range(2 * L)])
    kw = dict(opset_version=17, input_names=["input_ids", "attention_mask", "position_ids", *names_past],
              output_names=["logits", *names_pres], dynamic_axes=dyn)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapped, sample, path, dynamo=False, do_constant_folding=True, **kw)
            ref["exporter"] = "torchscript"
        except Exception as e:  # noqa: BLE001
            # Not seen here; the GPU machine has onnx and onnxscript, which the dynamo exporter
            # needs (not tried on this path here, where they are missing).
            print(f"export_onnx: the TorchScript exporter failed ({type(e).__name__}: {e}); "
                  "trying dynamo=True", flush=True)
            for f in os.listdir(out_dir):
                os.remove(os.path.join(out_dir, f))
            torch.onnx.export(wrapped, sample, path, dynamo=True, external_data=True, **kw)
            ref["exporter"] = "dynamo"
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f)
    size = sum(os.path.getsize(os.path.join(out_dir, x)) for x in os.listdir(out_dir))
    print(f"export_onnx: {path} ({name}, {L} layers, {len(os.listdir(out_dir))} files, "
          f"{size / 1e9:.3f} GB) in {time.time() - t0:.1f} s, torch {torch.__version__}, "
          f"transformers {transformers.__version__}", flush=True)


print(f"export_onnx: {args.hf_dir} loaded in {time.time() - t0:.1f} s", flush=True)
# f32 first: the f16 export casts the one model in place.
for name in sorted(args.dtypes.split(","), key=lambda n: n != "f32"):
    export(name)
