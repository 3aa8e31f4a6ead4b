#!/usr/bin/env python3
"""Golden fixtures for strata's flash-linear-attention (fla) tests (see tools/golden/README.md).

Same layout as make_golden.py (whose seed, prompt, weight randomisation, self-check and
fixture writer it imports), for the model types that fla registers with transformers:
a tiny config, random weights from a fixed seed, the checkpoint as fla's model class saves
it (float32 safetensors), and reference outputs computed by fla itself: logits at every
position of the fixed 24-token prompt, and 8 greedy decode steps run with fla's cache
(past_key_values).

fla's layers only run on CUDA (Triton kernels), so this runs on one GPU in float32 with
TF32 off, every linear-attention layer in fla's `fused_recurrent` mode (exact float32
recurrences, no tensor-core chunking). Each type is also run once with the recurrence
replaced by fla's naive PyTorch reference (fla/ops/*/naive.py) and the largest difference
is printed and recorded: the tolerance floor between fla's kernels and its own reference.

    PYTHONPATH=<folder holding fla/> python3 tools/golden/make_fla_golden.py \\
        --fla-commit <sha> [--out test/fixtures/fla] [types...]

A type that fails prints the error and the run goes on; the exit status is 1 if any failed.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import (  # noqa: E402  (the folder above must be on the path first)
    DECODE_STEPS, HIDDEN, PROMPT, SEED, VOCAB, check, golden_meta, install, randomize,
    make_each, save_checkpoint, versions, write_golden,
)

SIZE_LIMIT_PER_TYPE = 300 * 1024

# Keys every tiny config shares. eos/bos None: greedy decoding never stops early. Untied
# embeddings: fla's classes declare tied weights in the transformers 4 form (a list), which
# transformers 5 does not read. attn_mode fused_recurrent: fla picks it anyway below 64
# tokens, saying it keeps the config honest about the kernels that made the golden.
# intermediate_size 16: the SwiGLU MLP is the same in every family; small keeps the
# fixtures small (embeddings and lm_head alone are 128 KiB).
COMMON = dict(vocab_size=VOCAB, hidden_size=HIDDEN, bos_token_id=None, eos_token_id=None,
              pad_token_id=0, tie_word_embeddings=False, attn_mode="fused_recurrent",
              intermediate_size=16, use_cache=True)

# type -> (model_type, config kwargs, {config attribute: value it must have once built},
#          {fla layer module: name of the kernel function it must call}).
TINY = {
    "gla": (
        # 2 query heads sharing 1 key/value head; low-rank (16) key gate, logsigmoid / 16.
        "gla",
        dict(num_hidden_layers=2, num_heads=2, num_kv_heads=1, expand_k=0.5, expand_v=0.5,
             feature_map=None, use_short_conv=False, use_output_gate=True, clamp_min=None,
             hidden_act="swish", norm_eps=1e-6),
        dict(num_kv_heads=1, expand_k=0.5),
        {"fla.layers.gla": "fused_recurrent_gla"},
    ),
    "gla_hybrid": (
        # Layer 0 GLA, layer 1 sliding-window softmax attention (window 8 < prompt).
        "gla",
        dict(num_hidden_layers=2, num_heads=2, num_kv_heads=1, expand_k=0.5, expand_v=0.5,
             hidden_act="swish", norm_eps=1e-6,
             attn=dict(layers=[1], num_heads=4, num_kv_heads=2, window_size=8,
                       rope_theta=10000.0, qkv_bias=False)),
        dict(attn=dict(layers=[1], num_heads=4, num_kv_heads=2, window_size=8,
                       rope_theta=10000.0, qkv_bias=False)),
        {"fla.layers.gla": "fused_recurrent_gla", "fla.layers.attn": "flash_attn_func"},
    ),
    "retnet": (
        # Per-head decay 1 - 2^(-5-h) (fixed, not a parameter), xPos-free rotary on q/k.
        "retnet",
        dict(num_hidden_layers=2, num_heads=2, expand_k=0.5, expand_v=0.5, feature_map=None,
             use_output_gate=True, hidden_act="swish", norm_eps=1e-6),
        dict(num_heads=2, expand_v=0.5),
        {"fla.layers.multiscale_retention": "fused_recurrent_retention"},
    ),
    "hgrn2": (
        # 3 layers: the lower bound is zero at layer 0 and learnt (cumulative softmax over
        # layers) above it.
        "hgrn2",
        dict(num_hidden_layers=3, expand_ratio=16, num_heads=None, use_short_conv=False,
             use_lower_bound=True, hidden_act="swish", norm_eps=1e-6),
        dict(expand_ratio=16, use_lower_bound=True),
        {"fla.layers.hgrn2": "fused_recurrent_gla"},
    ),
    "delta_net": (
        "delta_net",
        dict(num_hidden_layers=2, num_heads=2, expand_k=0.5, expand_v=0.5, use_gate=False,
             use_beta=True, use_short_conv=True, conv_size=4, allow_neg_eigval=False,
             qk_norm="l2", qk_activation="silu", hidden_act="swish", norm_eps=1e-6),
        dict(use_short_conv=True, qk_norm="l2", conv_size=4),
        {"fla.layers.delta_net": "fused_recurrent_delta_rule"},
    ),
    "gated_deltanet": (
        # 2 key heads, 4 value heads (value head i reads key head i // 2), output gate,
        # eigenvalues in (-1, 1) (beta doubled).
        "gated_deltanet",
        dict(num_hidden_layers=2, num_heads=2, num_v_heads=4, head_dim=16, expand_v=0.5,
             use_gate=True, use_short_conv=True, conv_size=4, allow_neg_eigval=True,
             hidden_act="swish", norm_eps=1e-6),
        dict(num_v_heads=4, head_dim=16, allow_neg_eigval=True),
        {"fla.layers.gated_deltanet": "fused_recurrent_gated_delta_rule"},
    ),
    "rwkv7": (
        # Layer 0 makes v_first, layer 1 mixes it in through the value LoRA.
        "rwkv7",
        dict(num_hidden_layers=2, head_dim=16, decay_low_rank_dim=8, gate_low_rank_dim=16,
             a_low_rank_dim=8, v_low_rank_dim=8, hidden_act="sqrelu", norm_first=True,
             norm_bias=True, norm_eps=1e-5),
        dict(head_dim=16, num_heads=4, decay_low_rank_dim=8, v_low_rank_dim=8),
        {"fla.layers.rwkv7": "fused_mul_recurrent_rwkv7"},
    ),
    "linear_attn": (
        # Parameter-free feature map elu(x) + 1 (fla's "elu"; strata's elu1) on q and k,
        # normalised by q . cumsum(k) (the cache carries cumsum k).
        "linear_attn",
        dict(num_hidden_layers=2, num_heads=2, expand_k=0.5, expand_v=0.5,
             feature_map="elu", tie_feature_map_qk=False, norm_q=False, norm_k=False,
             norm_feature_map=True, hidden_act="swish", norm_eps=1e-6),
        dict(feature_map="elu", norm_feature_map=True),
        {"fla.layers.linear_attn": "fused_recurrent_linear_attn"},
    ),
    "linear_attn_relu": (
        # relu feature map, no normaliser; q and k each divided by their per-head sum + 1e-4
        # (norm_q, norm_k); 2 query heads sharing 1 key/value head.
        "linear_attn",
        dict(num_hidden_layers=2, num_heads=2, num_kv_heads=1, expand_k=0.5, expand_v=0.5,
             feature_map="relu", tie_feature_map_qk=False, norm_q=True, norm_k=True,
             norm_feature_map=False, hidden_act="swish", norm_eps=1e-6),
        dict(feature_map="relu", norm_feature_map=False, norm_q=True, norm_k=True,
             num_kv_heads=1),
        {"fla.layers.linear_attn": "fused_recurrent_linear_attn"},
    ),
    "nsa": (
        # NOT RUN YET (written without a GPU; the first run on the GPU machine makes the fixture).
        # Native sparse attention: compressed blocks of 16 (mean pooling), 2 selected blocks,
        # a window of 6. fla's Triton kernels need a GQA group of at least 16 query heads (a
        # power of 2) and blocks of at least 16 tokens (tl.dot), so: 16 query heads over 1 kv
        # head of 16. The 32 positions (prompt + decode) make 2 blocks, both always selected
        # (first and current/previous), so this golden checks compression, the window, the
        # gates and RoPE, but not the ranking among candidates; that needs more than 48 tokens.
        "nsa",
        dict(num_hidden_layers=2, num_heads=16, num_kv_heads=1, head_dim=16, block_size=16,
             block_counts=2, window_size=6, rope_theta=10000.0, qkv_bias=False,
             hidden_act="swish", norm_eps=1e-6),
        dict(num_heads=16, num_kv_heads=1, head_dim=16, block_size=16, block_counts=2,
             window_size=6),
        {"fla.layers.nsa": "parallel_nsa"},
    ),
}


# --- fla's naive references, called in place of the kernels ---------------------------------
# Each adapter takes the arguments the fla layer passes to its kernel and computes the same
# recurrence with fla's naive PyTorch reference. Only the cache-less forward is compared, so
# initial_state is always None and no final state is returned.

def _l2(x):
    # fla's in-kernel l2norm: x / sqrt(sum x^2 + 1e-6).
    return x / torch.sqrt((x.float() * x.float()).sum(-1, keepdim=True) + 1e-6).to(x)


def _no_state(kw):
    if kw.get("initial_state") is not None or kw.get("cu_seqlens") is not None:
        raise RuntimeError("naive comparison runs without cache and without varlen")


def naive_gla(q, k, v, gk, **kw):
    from fla.ops.gla.naive import naive_recurrent_gla
    _no_state(kw)
    o, _ = naive_recurrent_gla(q, k, v, gk)
    return o, None


def naive_retention(q, k, v, **kw):
    from fla.ops.retention.naive import naive_retention as ref
    _no_state(kw)
    o = ref(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return o.transpose(1, 2), None


def naive_delta_rule(q, k, v, beta, use_qk_l2norm_in_kernel=False, **kw):
    from fla.ops.delta_rule.naive import delta_rule_recurrence
    _no_state(kw)
    if use_qk_l2norm_in_kernel:
        q, k = _l2(q), _l2(k)
    o, _ = delta_rule_recurrence(*(x.transpose(1, 2) for x in (q, k, v, beta)),
                                 output_final_state=False)
    return o.transpose(1, 2), None


def naive_gated_delta_rule(q, k, v, g, beta, A_log=None, dt_bias=None,
                           use_qk_l2norm_in_kernel=False, use_gate_in_kernel=False,
                           use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False, **kw):
    import torch.nn.functional as F

    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule
    _no_state(kw)
    if use_qk_l2norm_in_kernel:
        q, k = _l2(q), _l2(k)
    if use_gate_in_kernel:
        g = -A_log.float().exp() * F.softplus(g.float() + (0 if dt_bias is None else dt_bias.float()))
    if use_beta_sigmoid_in_kernel:
        beta = beta.float().sigmoid() * (2 if allow_neg_eigval else 1)
    groups = v.shape[2] // q.shape[2]  # value head i reads key head i // groups
    q, k = (x.repeat_interleave(groups, dim=2) for x in (q, k))
    o, _ = naive_recurrent_gated_delta_rule(q, k, v, beta, g)
    return o.to(v.dtype), None


def naive_linear_attn(q, k, v, normalize=False, **kw):
    from fla.ops.linear_attn.naive import naive_recurrent_linear_attn
    _no_state(kw)
    o, _ = naive_recurrent_linear_attn(q, k, v, normalize=normalize)
    return o, None


def naive_rwkv7(r, w, k, v, kk, a, scale=1.0, **kw):
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence
    _no_state(kw)
    # dplr_recurrence scales q by K^-0.5 itself; K = 16 makes the undoing exact.
    q = r * (scale * r.shape[-1] ** 0.5)
    o, _ = dplr_recurrence(*(x.transpose(1, 2) for x in (q, k, v, -kk, kk * a, w)),
                           output_final_state=False)
    return o.transpose(1, 2), None


def naive_nsa(**kw):
    # fla's naive_nsa takes parallel_nsa's arguments; its window branch calls flash_attn_func
    # from its own module, patched in main() like the parallel one.
    from fla.ops.nsa.naive import naive_nsa as ref
    if kw.get("cu_seqlens") is not None:
        raise RuntimeError("naive comparison runs without varlen")
    return ref(**kw)


NAIVE = {
    ("fla.layers.gla", "fused_recurrent_gla"): naive_gla,
    ("fla.layers.hgrn2", "fused_recurrent_gla"): naive_gla,
    ("fla.layers.multiscale_retention", "fused_recurrent_retention"): naive_retention,
    ("fla.layers.delta_net", "fused_recurrent_delta_rule"): naive_delta_rule,
    ("fla.layers.gated_deltanet", "fused_recurrent_gated_delta_rule"): naive_gated_delta_rule,
    ("fla.layers.linear_attn", "fused_recurrent_linear_attn"): naive_linear_attn,
    ("fla.layers.rwkv7", "fused_mul_recurrent_rwkv7"): naive_rwkv7,
    ("fla.layers.nsa", "parallel_nsa"): naive_nsa,
}


# --- softmax attention for fla's hybrid layers ----------------------------------------------
# fla.layers.attn calls the flash-attn package, which is not installed (and has no float32
# path). This is the same computation in plain float32 PyTorch: causal with the query block
# aligned to the end of the keys (flash-attn's convention, which the cached decode relies on),
# window (left, 0) = keys i-left..i, grouped-query heads (query head h reads kv head
# h // (H / Hkv)), scale 1/sqrt(head dim).

def reference_flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                              window_size=(-1, -1), **kw):
    if dropout_p:
        raise RuntimeError("dropout in inference")
    B, Tq, H, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    k, v = (x.repeat_interleave(H // Hkv, dim=2) for x in (k, v))
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    s = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
    qpos = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
    kpos = torch.arange(Tk, device=q.device)[None, :]
    allowed = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device)
    if causal:
        allowed &= kpos <= qpos
    if window_size[0] >= 0:
        allowed &= kpos >= qpos - window_size[0]
    if window_size[1] >= 0:
        allowed &= kpos <= qpos + window_size[1]
    p = s.masked_fill(~allowed, float("-inf")).softmax(-1)
    return torch.einsum("bhqk,bkhd->bqhd", p, v.float()).to(q.dtype)


def reference_flash_attn_varlen_func(*a, **kw):
    raise RuntimeError("varlen attention (padding masks) is not used by the goldens")


class Patched:
    """Replace module-level functions for the duration of a with-block, counting calls."""

    def __init__(self, replacements):
        self.replacements = replacements  # {(module, name): function}
        self.saved = {}
        self.calls = {key: 0 for key in replacements}

    def __enter__(self):
        import importlib
        for (mod_name, name), fn in self.replacements.items():
            mod = importlib.import_module(mod_name)
            self.saved[(mod_name, name)] = getattr(mod, name)

            def counted(*a, _fn=fn, _key=(mod_name, name), **kw):
                self.calls[_key] += 1
                return _fn(*a, **kw)
            setattr(mod, name, counted)
        return self

    def __exit__(self, *exc):
        import importlib
        for (mod_name, name), fn in self.saved.items():
            setattr(importlib.import_module(mod_name), name, fn)


def counting(kernels):
    """Patched that calls the real kernels, only to count that they ran."""
    import importlib
    return Patched({(m, n): getattr(importlib.import_module(m), n) for m, n in kernels.items()})


def untie_legacy_classes(module):
    """fla's model classes declare `_tied_weights_keys = ["lm_head.weight"]`, transformers 4's
    form; transformers 5 wants a mapping and save_pretrained fails on the list ('list' object
    has no attribute 'keys'). The tiny configs do not tie embeddings, so the mapping is empty."""
    for name in dir(module):
        cls = getattr(module, name)
        if isinstance(cls, type) and isinstance(cls.__dict__.get("_tied_weights_keys"), list):
            cls._tied_weights_keys = {}


def fla_versions(fla_commit):
    import fla
    import triton
    v = versions()
    v.update({
        "fla": fla.__version__,
        "fla_commit": fla_commit,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0),
    })
    return v


def build_config(name):
    from transformers import AutoConfig
    model_type, kwargs, expect, _ = TINY[name]
    config = AutoConfig.for_model(model_type, **{**COMMON, **kwargs})
    for attr, want in expect.items():
        got = getattr(config, attr, "<missing>")
        if attr == "attn" and isinstance(got, dict):
            got = {k: got.get(k) for k in want}
        if got != want:
            raise RuntimeError(f"config.{attr} is {got!r}, expected {want!r}: "
                               "this fla version did not take the tiny config")
    return config


def greedy_decode_with_cache(model, ids):
    """Prefill with use_cache, then DECODE_STEPS greedy steps of one token each, passing fla's
    cache (past_key_values) along. Returns (tokens fed, logits after each, prefill logits)."""
    out = model(input_ids=ids, use_cache=True)
    cache = out.past_key_values
    if cache is None:
        raise RuntimeError("the model returned no cache")
    prefill = out.logits[0].float()
    tok = prefill[-1].argmax()
    tokens, logits = [], []
    for _ in range(DECODE_STEPS):
        tokens.append(tok)
        out = model(input_ids=tok.view(1, 1), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits.append(out.logits[0, -1].float())
        tok = logits[-1].argmax()
    return torch.stack(tokens), torch.stack(logits), prefill


def make(name, out_root, v):
    from transformers import AutoModelForCausalLM

    model_type, _, _, kernels = TINY[name]
    torch.manual_seed(SEED)
    config = build_config(name)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32).eval()
    randomize(model)  # on the CPU, from SEED, as make_golden.py does
    for p in model.parameters():
        p.data = p.data.contiguous()
    model = model.to("cuda")

    ids = torch.tensor([PROMPT], dtype=torch.long, device="cuda")
    with torch.no_grad(), counting(kernels) as used:
        prefill = model(input_ids=ids, use_cache=False).logits[0].float()
        if tuple(prefill.shape) != (len(PROMPT), VOCAB):
            raise RuntimeError(f"prefill logits have shape {tuple(prefill.shape)}")
        tokens, decode_logits, cached_prefill = greedy_decode_with_cache(model, ids)
        full_ids = torch.cat([ids, tokens.view(1, -1)], dim=1)
        full = model(input_ids=full_ids, use_cache=False).logits[0].float()
    unused = [f"{m}.{n}" for (m, n), c in used.calls.items() if c == 0]
    if unused:
        raise RuntimeError(f"the model never called {unused}: not the kernels the README names")

    # The recurrences once more, through fla's naive references instead of the kernels.
    naive_fns = {key: NAIVE[key] for key in used.calls if key in NAIVE}
    with torch.no_grad(), Patched(naive_fns) as ran:
        naive_full = model(input_ids=full_ids, use_cache=False).logits[0].float()
    if any(c == 0 for c in ran.calls.values()):
        raise RuntimeError("a naive reference was not called")

    scale = prefill.abs().max().item()
    diffs = {
        "cached prefill vs forward": (cached_prefill - prefill).abs().max().item(),
        "cached decode vs full recompute": (decode_logits - full[len(PROMPT):]).abs().max().item(),
        "prompt forward vs longer forward": (full[:len(PROMPT)] - prefill).abs().max().item(),
    }
    check(diffs, scale)
    naive_abs = (naive_full - full).abs().max().item()
    naive_rel = naive_abs / max(full.abs().max().item(), 1e-30)
    diffs["kernels vs naive reference (32 positions)"] = naive_abs
    check(diffs, scale)

    tmp = os.path.join(out_root, f".{name}.tmp")
    n_tensors = save_checkpoint(model, tmp)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp).to(torch.float32).to("cuda").eval()
    with torch.no_grad():
        again = reloaded(input_ids=ids, use_cache=False).logits[0].float()
    diffs["reloaded checkpoint vs original"] = (again - prefill).abs().max().item()
    check(diffs, scale)

    kernel_desc = ", ".join(f"{m}.{n}" for m, n in kernels.items())
    meta = golden_meta(model_type, v, fixture=name, kernels=kernel_desc,
                       precision="float32 on CUDA, TF32 off",
                       naive_max_abs_diff=f"{naive_abs:.3e}", naive_max_rel_diff=f"{naive_rel:.3e}")
    write_golden(tmp, meta, prefill.cpu(), tokens.cpu(), decode_logits.cpu())
    size = install(tmp, os.path.join(out_root, name))
    print(f"  {n_tensors} tensors, {size / 1024:.0f} KiB"
          + ("" if size < SIZE_LIMIT_PER_TYPE else " (over 300 KiB)")
          + f", max |logit| {scale:.3f}, decode tokens {tokens.tolist()}")
    print(f"  kernels: {kernel_desc}")
    for what, d in diffs.items():
        print(f"  max diff {what}: {d:.3e}")
    print(f"  kernels vs naive: max abs {naive_abs:.3e}, max rel {naive_rel:.3e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="test/fixtures/fla", help="output folder (default: %(default)s)")
    parser.add_argument("--fla-commit", required=True, help="the commit of fla on PYTHONPATH")
    parser.add_argument("types", nargs="*", help=f"fixtures (default: all): {' '.join(TINY)}")
    args = parser.parse_args()
    unknown = [t for t in args.types if t not in TINY]
    if unknown:
        parser.error(f"unknown types {unknown}; known: {' '.join(TINY)}")
    names = args.types or list(TINY)
    if not torch.cuda.is_available():
        sys.exit("fla's layers need CUDA (Triton kernels)")

    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    import fla  # noqa: F401  registers fla's configs and models with transformers' Auto classes
    import fla.layers.attn as fla_attn
    import fla.models
    untie_legacy_classes(fla.models)
    fla_attn.flash_attn_func = reference_flash_attn_func
    fla_attn.flash_attn_varlen_func = reference_flash_attn_varlen_func
    # NSA's window branch calls flash-attn from the op modules (fla/ops/nsa/parallel.py, naive.py).
    import fla.ops.nsa.naive as nsa_naive
    import fla.ops.nsa.parallel as nsa_parallel
    for m in (nsa_naive, nsa_parallel):
        m.flash_attn_func = reference_flash_attn_func
        m.flash_attn_varlen_func = reference_flash_attn_varlen_func

    v = fla_versions(args.fla_commit)
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    os.makedirs(args.out, exist_ok=True)

    failed = make_each(names, lambda n: make(n, args.out, v), args.out)

    print(f"done: {len(names) - len(failed)} ok" + (f", failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
