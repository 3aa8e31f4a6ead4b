#!/usr/bin/env python3
"""Golden fixtures for strata's HuggingFace tests (see tools/golden/README.md).

For each model type: a tiny config, random weights from a fixed seed, the checkpoint as
transformers saves it (float32 safetensors), and reference outputs computed by
transformers itself: logits at every position of a fixed 24-token prompt, and 8 greedy
decode steps run with the model's KV/state cache.

Runs on CPU, float32, eager attention, one thread: the output depends only on the seed
and the library versions (printed first). Usage:

    python3 tools/golden/make_golden.py [--out test/fixtures/hf] [types...]

A type that fails (its config or model class cannot be built, or a self-check fails)
prints the error and the run goes on; the exit status is 1 if any type failed.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import traceback

import torch

SEED = 1234
PROMPT = [17, 201, 5, 88, 143, 62, 230, 9, 117, 45, 190, 33,
          76, 250, 128, 3, 99, 164, 21, 210, 54, 137, 71, 182]
DECODE_STEPS = 8
VOCAB = 256
HIDDEN = 64
SIZE_LIMIT = 15 * 1024 * 1024

# Keys every tiny config shares. eos/bos are None so that greedy decoding can never stop
# early; pad 0 never occurs in the prompt.
COMMON = dict(vocab_size=VOCAB, hidden_size=HIDDEN, bos_token_id=None, eos_token_id=None,
              pad_token_id=0)

# Attention settings shared by the attention-bearing configs: 4 query heads of 16, 2 KV heads.
ATTN = dict(num_attention_heads=4, num_key_value_heads=2)

# DT_CLAMP_NOTE: transformers' NemotronH and Zamba2 mixers clamp dt at config.time_step_min
# in cached decode (time_step_limit = (time_step_min, inf)) but not in the chunked prefill,
# so the two paths disagree wherever dt < time_step_min: by 6.5e-3 (NemotronH) and 4.4e-3
# (Zamba2) in the logits after 8 steps with the default 1e-3. A negligible minimum makes them
# one model again, so the golden is unambiguous.

# type -> (config kwargs, {config attribute: value it must have after construction}).
# The checks catch a transformers version that renamed or ignored a key the layout needs
# (at least one layer of every kind each family has).
TINY = {
    "llama": (
        dict(num_hidden_layers=2, intermediate_size=128, rms_norm_eps=1e-5, rope_theta=10000.0,
             rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                               high_freq_factor=4.0, original_max_position_embeddings=64),
             max_position_embeddings=256, tie_word_embeddings=False, **ATTN),
        dict(head_dim=16),
    ),
    "mistral": (
        # head_dim 32 != hidden/heads, and a window shorter than the prompt.
        dict(num_hidden_layers=2, intermediate_size=128, head_dim=32, sliding_window=8,
             rope_theta=1e6, max_position_embeddings=256, tie_word_embeddings=False, **ATTN),
        dict(head_dim=32, sliding_window=8),
    ),
    "qwen3": (
        dict(num_hidden_layers=2, intermediate_size=128, head_dim=16, attention_bias=True,
             use_sliding_window=True, sliding_window=8, max_window_layers=1,
             rope_theta=1e6, rope_scaling=dict(rope_type="yarn", factor=4.0,
                                               original_max_position_embeddings=64),
             max_position_embeddings=256, tie_word_embeddings=True, **ATTN),
        dict(layer_types=["full_attention", "sliding_attention"]),
    ),
    "mixtral": (
        dict(num_hidden_layers=2, intermediate_size=32, num_local_experts=4,
             num_experts_per_tok=2, sliding_window=None, max_position_embeddings=256,
             tie_word_embeddings=False, **ATTN),
        dict(num_local_experts=4),
    ),
    "qwen3_moe": (
        dict(num_hidden_layers=2, intermediate_size=128, moe_intermediate_size=32,
             num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
             mlp_only_layers=[1], head_dim=16, max_position_embeddings=256,
             tie_word_embeddings=False, **ATTN),
        dict(mlp_only_layers=[1]),
    ),
    "gemma3_text": (
        dict(num_hidden_layers=2, intermediate_size=128, head_dim=16, query_pre_attn_scalar=16,
             sliding_window=8, layer_types=["sliding_attention", "full_attention"],
             max_position_embeddings=256, **ATTN),
        dict(layer_types=["sliding_attention", "full_attention"], sliding_window=8),
    ),
    "gpt_oss": (
        dict(num_hidden_layers=2, intermediate_size=32, head_dim=16, num_local_experts=4,
             num_experts_per_tok=2, sliding_window=8,
             layer_types=["sliding_attention", "full_attention"], **ATTN),
        dict(layer_types=["sliding_attention", "full_attention"], sliding_window=8),
    ),
    "deepseek_v3": (
        # Layer 0 dense, layer 1 MoE with a shared expert; MLA with a q LoRA.
        dict(num_hidden_layers=2, intermediate_size=128, moe_intermediate_size=32,
             n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
             topk_group=1, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=32,
             qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, num_attention_heads=4,
             num_key_value_heads=4, num_mtp_layers=0, max_position_embeddings=256,
             tie_word_embeddings=False),
        dict(first_k_dense_replace=1, n_routed_experts=4),
    ),
    "deepseek_v32": (
        # deepseek_v3's tiny layout plus DeepSeek sparse attention: a lightning indexer of 8 heads
        # of 16 per layer keeping the top 4 positions, fewer than the prompt's 24, so selection
        # matters from position 4 on. index_margins (below) checks the choice is unambiguous; with
        # 4 index heads this seed puts exact ties (every head's relu at 0, I = 0) at the boundary,
        # which torch.topk breaks in no specified order, so the config uses 8.
        dict(num_hidden_layers=2, intermediate_size=128, moe_intermediate_size=32,
             n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
             topk_group=1, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=32,
             qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, num_attention_heads=4,
             num_key_value_heads=4, index_topk=4, index_head_dim=16, index_n_heads=8,
             max_position_embeddings=256, tie_word_embeddings=False),
        dict(first_k_dense_replace=1, mlp_layer_types=["dense", "sparse"], index_topk=4,
             layer_types=["indexed_attention", "indexed_attention"]),
    ),
    "mamba": (
        dict(num_hidden_layers=2, state_size=16, expand=2, conv_kernel=4, time_step_rank=8,
             use_bias=False, use_conv_bias=True, tie_word_embeddings=True),
        dict(intermediate_size=128),
    ),
    "mamba2": (
        dict(num_hidden_layers=2, num_heads=8, head_dim=16, expand=2, n_groups=2, state_size=16,
             conv_kernel=4, chunk_size=16, use_bias=False, use_conv_bias=True, rms_norm=True,
             tie_word_embeddings=False),
        dict(num_heads=8, head_dim=16),
    ),
    "jamba": (
        # Layer 0: mamba + MoE, layer 1: attention + dense MLP.
        dict(num_hidden_layers=2, intermediate_size=128, num_experts=4, num_experts_per_tok=2,
             attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
             expert_layer_offset=0, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2,
             mamba_dt_rank=8, use_mamba_kernels=False, tie_word_embeddings=False, **ATTN),
        dict(layers_block_type=["mamba", "attention"], layers_num_experts=[4, 1]),
    ),
    "bamba": (
        dict(num_hidden_layers=2, intermediate_size=128, attn_layer_indices=[1],
             mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16,
             mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, max_position_embeddings=256,
             tie_word_embeddings=False, **ATTN),
        dict(layers_block_type=["mamba", "attention"]),
    ),
    "falcon_h1": (
        # Every multiplier away from 1 so that a forgotten one shows.
        dict(num_hidden_layers=2, intermediate_size=128, head_dim=16, mamba_d_ssm=128,
             mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16,
             mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, mamba_rms_norm=True,
             mamba_norm_before_gate=False, embedding_multiplier=2.0, lm_head_multiplier=0.5,
             mlp_multipliers=[1.5, 0.5], key_multiplier=0.8, attention_in_multiplier=1.2,
             attention_out_multiplier=0.7, ssm_multipliers=[0.9, 1.1, 0.8, 1.2, 1.3],
             ssm_in_multiplier=1.1, ssm_out_multiplier=0.6, max_position_embeddings=256,
             tie_word_embeddings=False, **ATTN),
        dict(mamba_d_head=16),
    ),
    "nemotron_h": (
        # M: mamba2, *: attention, -: MLP, E: MoE.
        # time_step_min: see DT_CLAMP_NOTE.
        dict(hybrid_override_pattern="M*-E", num_hidden_layers=4, intermediate_size=128,
             time_step_min=1e-12,
             head_dim=16, mamba_num_heads=8, mamba_head_dim=16, n_groups=2, ssm_state_size=16,
             conv_kernel=4, chunk_size=16, expand=2, n_routed_experts=4, num_experts_per_tok=2,
             moe_intermediate_size=32, moe_shared_expert_intermediate_size=32, n_group=1,
             topk_group=1, mlp_hidden_act="relu2", use_mamba_kernels=False,
             max_position_embeddings=256, tie_word_embeddings=False, **ATTN),
        dict(hybrid_override_pattern="M*-E"),
    ),
    "granitemoehybrid": (
        dict(num_hidden_layers=2, layer_types=["mamba", "attention"], intermediate_size=32,
             shared_intermediate_size=64, num_local_experts=4, num_experts_per_tok=2,
             mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16,
             mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, embedding_multiplier=2.0,
             logits_scaling=2.0, residual_multiplier=0.5, attention_multiplier=0.125,
             position_embedding_type="nope", max_position_embeddings=256,
             tie_word_embeddings=True, **ATTN),
        dict(layer_types=["mamba", "attention"]),
    ),
    "zamba2": (
        # Three hybrid layers share two attention blocks (the first one twice).
        # time_step_min: see DT_CLAMP_NOTE.
        dict(num_hidden_layers=6, time_step_min=1e-12,
             layers_block_type=["mamba", "hybrid", "mamba", "hybrid", "mamba", "hybrid"],
             intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
             mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_ngroups=1,
             n_mamba_heads=8, chunk_size=16, num_mem_blocks=2, use_shared_mlp_adapter=True,
             use_shared_attention_adapter=True, adapter_rank=8, use_mem_rope=True,
             max_position_embeddings=256),
        dict(layers_block_type=["mamba", "hybrid", "mamba", "hybrid", "mamba", "hybrid"]),
    ),
    "lfm2": (
        dict(num_hidden_layers=3, layer_types=["conv", "full_attention", "conv"],
             intermediate_size=128, block_auto_adjust_ff_dim=False, conv_L_cache=3,
             conv_bias=False, max_position_embeddings=256, **ATTN),
        dict(layer_types=["conv", "full_attention", "conv"], intermediate_size=128),
    ),
    "qwen3_next": (
        dict(num_hidden_layers=3,
             layer_types=["linear_attention", "full_attention", "linear_attention"],
             intermediate_size=128, mlp_only_layers=[2], moe_intermediate_size=32,
             shared_expert_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
             norm_topk_prob=True, head_dim=16, linear_num_key_heads=2,
             linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16,
             linear_conv_kernel_dim=4, partial_rotary_factor=0.25, max_position_embeddings=256,
             tie_word_embeddings=False, **ATTN),
        dict(layer_types=["linear_attention", "full_attention", "linear_attention"],
             mlp_only_layers=[2]),
    ),
}


def versions():
    import safetensors
    import transformers
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
    }


# transformers 5 renames these layer types on load (and saves the new names).
LEGACY_LAYER_TYPES = {"mamba": "linear_attention", "attention": "full_attention"}


def canonical(v):
    if isinstance(v, tuple):
        v = list(v)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return [LEGACY_LAYER_TYPES.get(x, x) for x in v]
    return v


def build_config(model_type):
    from transformers import AutoConfig
    kwargs, expect = TINY[model_type]
    config = AutoConfig.for_model(model_type, **COMMON, **kwargs)
    for attr, want in expect.items():
        got = getattr(config, attr, "<missing>")
        if canonical(got) != canonical(want):
            raise RuntimeError(f"config.{attr} is {got!r}, expected {want!r}: "
                               "this transformers version did not take the tiny config")
    return config


def randomize(model):
    """Non-trivial weights: HF initialises norms to 1 (or 0) and biases to 0, which would let
    a missing norm or bias go unnoticed, and std 0.02 matrices, which make attention uniform."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.dim() >= 2 and not name.endswith("A_log"):
                # Unit-variance outputs: std 1/sqrt(last dim), the fan-in of nn.Linear weights.
                p.copy_(noise * p.shape[-1] ** -0.5)
            else:
                # Norm weights, biases, SSM decay/skip/step parameters: keep HF's value, perturbed.
                p.add_(noise * 0.1)


def greedy_decode(model, ids):
    """DECODE_STEPS greedy steps with the model's cache, through generate() so that every
    family uses its own cache type. Returns (tokens fed at each step, logits after each)."""
    from transformers import GenerationConfig
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=None,
                                               pad_token_id=0, do_sample=False)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         num_beams=1, max_new_tokens=DECODE_STEPS + 1, use_cache=True,
                         output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, ids.shape[1]:]
    logits = torch.stack([step[0] for step in out.logits]).float()
    if new.shape[0] != DECODE_STEPS + 1 or logits.shape[0] != DECODE_STEPS + 1:
        raise RuntimeError(f"generate made {new.shape[0]} tokens, expected {DECODE_STEPS + 1}")
    # No logits processor may have changed the choice: each token is the argmax of the raw logits.
    if not torch.equal(new, logits.argmax(dim=-1)):
        raise RuntimeError("generate's tokens are not the argmax of its raw logits")
    # logits[0] is the prefill's last row; logits[i+1] follows feeding token new[i].
    return new[:DECODE_STEPS], logits[1:], logits[0]


def index_margins(model, ids):
    """DeepSeek sparse attention's selection must not hinge on rounding or on how torch.topk
    orders ties (unspecified: it depends on the device and the sort it picks; strata takes the
    lower position). Re-scores every query of one uncached forward over ids in float64 from the
    indexer's own inputs, as DeepseekV32Indexer does, and returns the smallest gap between the
    index_topk-th and the next best visible position, relative to the row's largest |score|,
    over all layers and the queries that see more than index_topk positions."""
    import torch.nn.functional as F
    gaps = []

    def hook(module, args, kwargs, _out):
        x = (args[0] if args else kwargs["hidden_states"]).double()
        q_resid = (args[1] if len(args) > 1 else kwargs["q_resid"]).double()
        cos, sin = (args[2] if len(args) > 2 else kwargs["position_embeddings"])
        cos, sin = cos.double().unsqueeze(2), sin.double().unsqueeze(2)
        B, S, _ = x.shape
        H, D, R = module.n_heads, module.head_dim, module.qk_rope_head_dim
        q = (q_resid @ module.wq_b.weight.double().T).view(B, S, H, D)
        k = F.layer_norm(x @ module.wk.weight.double().T, (D,), module.k_norm.weight.double(),
                         module.k_norm.bias.double(), module.k_norm.eps).unsqueeze(2)

        def rot(t):
            r, rest = t[..., :R], t[..., R:]
            half = torch.cat([-r[..., R // 2:], r[..., :R // 2]], dim=-1)
            return torch.cat([r * cos + half * sin, rest], dim=-1)

        q, k = rot(q), rot(k).squeeze(2)
        scores = F.relu(torch.einsum("bshd,btd->bsht", q, k) * module.softmax_scale)
        w = (x @ module.weights_proj.weight.double().T) * H ** -0.5
        index = torch.einsum("bsh,bsht->bst", w, scores)[0]
        for s in range(S):
            row = index[s, : s + 1]
            if row.numel() <= module.index_topk:
                continue
            top = row.sort(descending=True).values
            gap = (top[module.index_topk - 1] - top[module.index_topk]).item()
            gaps.append(gap / max(row.abs().max().item(), 1e-30))

    handles = [m.register_forward_hook(hook, with_kwargs=True)
               for m in model.modules() if type(m).__name__.endswith("Indexer")]
    if not handles:
        raise RuntimeError("no indexer module found")
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    for h in handles:
        h.remove()
    return min(gaps), len(gaps)


# Per-type checks run on the prompt plus the decoded tokens; each returns metadata entries.
def check_index_margins(model, full_ids):
    gap, n = index_margins(model, full_ids)
    print(f"  indexer: smallest top-k boundary gap {gap:.3e} (relative) over {n} query rows")
    # f32 differences between strata's and transformers' hidden states are ~1e-6 relative; a
    # gap far above that gives both the same selection whatever either does with ties.
    if not gap > 1e-3:
        raise RuntimeError(f"indexer top-k boundary gap {gap:.3e} is too small: pick another seed or config")
    return {"index_topk_min_relative_gap": f"{gap:.3e}", "index_topk_rows_checked": n}


EXTRA_CHECKS = {"deepseek_v32": check_index_margins}

# Types whose metadata says where they were made (deepseek_v32 was first generated on a machine
# without the GPU; the script runs on the CPU either way, and the device machines have CUDA).
GENERATED_ON = {"deepseek_v32"}


def generated_on():
    where = "a CUDA machine (device machine)" if torch.cuda.is_available() else \
        "a machine without CUDA (not the device machine)"
    return f"CPU, float32, eager attention, one thread, on {where}"


def make(model_type, out_root, v):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    config = build_config(model_type)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.to(dtype=torch.float32).eval()
    randomize(model)
    for p in model.parameters():
        p.data = p.data.contiguous()

    ids = torch.tensor([PROMPT], dtype=torch.long)
    with torch.no_grad():
        prefill = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0].float()
        if tuple(prefill.shape) != (len(PROMPT), VOCAB):
            raise RuntimeError(f"prefill logits have shape {tuple(prefill.shape)}")
        tokens, decode_logits, last = greedy_decode(model, ids)
        # Cached decoding must agree with recomputing the whole sequence without a cache.
        full_ids = torch.cat([ids, tokens.view(1, -1)], dim=1)
        full = model(input_ids=full_ids, attention_mask=torch.ones_like(full_ids), use_cache=False).logits[0].float()
    scale = prefill.abs().max().item()
    diffs = {
        "generate prefill vs forward": (last - prefill[-1]).abs().max().item(),
        "cached decode vs full recompute": (decode_logits - full[len(PROMPT):]).abs().max().item(),
    }
    # Before the self-check: a near tie in a selection would fail that too, less clearly.
    extra = EXTRA_CHECKS[model_type](model, full_ids) if model_type in EXTRA_CHECKS else {}
    check(diffs, scale)
    if model_type in GENERATED_ON:
        extra["generated_on"] = generated_on()

    tmp = os.path.join(out_root, f".{model_type}.tmp")
    n_tensors = save_checkpoint(model, tmp)

    # The saved checkpoint, loaded back, must give the same logits.
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="eager").to(torch.float32).eval()
    with torch.no_grad():
        again = reloaded(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0].float()
    diffs["reloaded checkpoint vs original"] = (again - prefill).abs().max().item()
    check(diffs, scale)

    write_golden(tmp, golden_meta(model_type, v, **extra), prefill, tokens, decode_logits)
    size = install(tmp, os.path.join(out_root, model_type))
    print(f"  {n_tensors} tensors, {size / 1024:.0f} KiB, max |logit| {scale:.3f}, "
          f"decode tokens {tokens.tolist()}")
    for what, d in diffs.items():
        print(f"  max diff {what}: {d:.3e}")


def save_checkpoint(model, tmp, dtype="F32"):
    """save_pretrained into a fresh folder tmp, which must then hold exactly config.json and
    model.safetensors, every tensor of type dtype (a safetensors name). Returns the number of
    tensors."""
    from safetensors import safe_open

    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    except TypeError:
        model.save_pretrained(tmp)  # transformers versions where safetensors is the only format
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(tmp, extra)):
            os.remove(os.path.join(tmp, extra))
    names = sorted(os.listdir(tmp))
    if names != ["config.json", "model.safetensors"]:
        raise RuntimeError(f"save_pretrained wrote {names}, expected config.json and model.safetensors")
    with safe_open(os.path.join(tmp, "model.safetensors"), framework="pt") as f:
        n_tensors = len(f.keys())
        for k in f.keys():
            if f.get_slice(k).get_dtype() != dtype:
                raise RuntimeError(f"saved tensor {k} is {f.get_slice(k).get_dtype()}, not {dtype}")
    return n_tensors


def golden_meta(model_type, v, **extra):
    """The golden file's metadata: the type, the seed, what the decode tensors mean, the
    library versions v, and any extra entries (all as strings)."""
    return {
        "model_type": model_type,
        "seed": str(SEED),
        "decode_tokens": "token fed at each decode step; decode_tokens[0] = argmax(prefill_logits[-1])",
        "decode_logits": "logits after feeding decode_tokens[i]; decode_tokens[i+1] = argmax of row i",
        **{k: str(x) for k, x in v.items()},
        **{k: str(x) for k, x in extra.items()},
    }


def write_golden(folder, meta, prefill, tokens, decode_logits, prompt=PROMPT):
    """folder/golden.safetensors: prompt_ids, prefill_logits, decode_tokens, decode_logits,
    and meta as one JSON metadata entry, `golden`."""
    from safetensors.torch import save_file

    save_file({
        "prompt_ids": torch.tensor(prompt, dtype=torch.int32),
        "prefill_logits": prefill.contiguous(),
        "decode_tokens": tokens.to(torch.int32).contiguous(),
        "decode_logits": decode_logits.contiguous(),
    # One entry: safetensors writes __metadata__ in hash order, so several keys would make
    # reruns differ byte-wise.
    }, os.path.join(folder, "golden.safetensors"), metadata={"golden": json.dumps(meta, sort_keys=True)})


def install(tmp, final):
    """Replace the fixture folder final with tmp; returns its size in bytes."""
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return sum(os.path.getsize(os.path.join(final, n)) for n in os.listdir(final))


def check(diffs, scale):
    """transformers must agree with itself: cached decode with a full recompute, generate's
    prefill with a plain forward, the saved checkpoint with the model. Float32 rounding gives
    about 1e-6 here; a larger gap means the two paths compute different models, and a golden
    that matches only one of them would be ambiguous."""
    bad = {k: d for k, d in diffs.items() if not d <= 1e-4 * max(scale, 1.0)}
    if bad:
        raise RuntimeError("self-check failed: " + ", ".join(f"{k} differ by {d:.3e}" for k, d in bad.items()))


def make_each(names, make_one, out):
    """Runs make_one for each name, reporting a failure and going on with the next; returns the
    names that failed (their half-written .NAME.tmp folders removed)."""
    failed = []
    for name in names:
        print(f"{name}:")
        try:
            make_one(name)
        except Exception as e:  # report and go on with the next type
            failed.append(name)
            print(f"  FAILED: {type(e).__name__}: {e}")
            traceback.print_exc(limit=-6, file=sys.stdout)
            shutil.rmtree(os.path.join(out, f".{name}.tmp"), ignore_errors=True)
    return failed


# --- diffusion_gemma (issue 16): a block-diffusion encoder/decoder, golden-tested separately ---

# DiffusionGemmaForBlockDiffusion cannot be built without a vision tower (its encoder calls
# AutoModel.from_config(vision_config) unconditionally), so the script builds a one-layer one, and
# the fixture drops it: config.json gets vision_config null and model.safetensors only the text
# tensors (strata imports the text model and refuses vision).
DGEMMA_TEXT = dict(
    vocab_size=64, hidden_size=32, intermediate_size=16, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=1, head_dim=16,
    global_head_dim=32, num_global_key_value_heads=1,
    # A window shorter than the prompt, so that both the encoder's sliding mask and the decoder's
    # view of the cache (the last window - 1 encoded rows) matter.
    sliding_window=8, layer_types=["sliding_attention", "full_attention"],
    num_experts=4, top_k_experts=2, moe_intermediate_size=8, max_position_embeddings=256,
    pad_token_id=0, bos_token_id=None, eos_token_id=None)
DGEMMA_VISION = dict(model_type="gemma4_vision", hidden_size=8, intermediate_size=8,
                     num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=8,
                     position_embedding_size=16, patch_size=2)
DGEMMA_CANVAS = 8
DGEMMA_PROMPT = [17, 5, 43, 9, 30, 62, 3, 21, 54, 11, 38, 26]
DGEMMA_BLOCKS = 2
DGEMMA_STEPS = 6
# Temperature "0": generate's schedule is t(k) = t_min + (t_max - t_min)·k/N at step k = N..1 and
# it requires t_max > t_min, so t_max is tiny: every softmax is one-hot (checked: the top-2 logit
# gap over t is > 80 at every step), torch.multinomial returns the argmax, every entropy is 0, and
# the entropy-bound sampler accepts the whole canvas at every step (no renoising draws are used).
DGEMMA_T = dict(t_min=0.0, t_max=1e-6)
# One acceptance of the entropy-bound sampler at an ordinary temperature, on the one-step logits.
DGEMMA_ACCEPT = dict(temperature=0.5, entropy_bound=2.5)


def dgemma_model(v):
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion
    torch.manual_seed(SEED)
    config = DiffusionGemmaConfig(text_config=dict(DGEMMA_TEXT), vision_config=dict(DGEMMA_VISION),
                                  canvas_length=DGEMMA_CANVAS)
    tc = config.text_config
    if tc.use_bidirectional_attention is not None or tc.sliding_window != 8:
        raise RuntimeError("the text config did not take the tiny settings")
    model = DiffusionGemmaForBlockDiffusion._from_config(config, attn_implementation="eager")
    model = model.to(dtype=torch.float32).eval()
    randomize(model)
    # layer_scalar is a buffer, one per encoder and per decoder layer (buffers are not tied):
    # give each layer a value other than 1, the same in both, so that a missing scalar shows.
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for i in range(tc.num_hidden_layers):
            s = 1.0 + 0.1 * torch.randn(1, generator=g)
            model.model.encoder.language_model.layers[i].layer_scalar.copy_(s)
            model.model.decoder.layers[i].layer_scalar.copy_(s)
    for p in model.parameters():
        p.data = p.data.contiguous()
    return model


def dgemma_encode(model, ids):
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    model.model.encoder(input_ids=ids, past_key_values=cache)
    return cache


def dgemma_step(model, prompt, canvas, sc_logits=None):
    """One decoder step on `canvas` after encoding `prompt` (a fresh cache each time)."""
    cache = dgemma_encode(model, prompt)
    return model(decoder_input_ids=canvas, past_key_values=cache,
                 self_conditioning_logits=sc_logits).logits[0].float()


def make_diffusion_gemma(out_root, v):
    from safetensors.torch import load_file, save_file
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        EntropyBoundSampler, EntropyBoundSamplerConfig)
    from transformers import LogitsProcessor, LogitsProcessorList

    model = dgemma_model(v)
    V = DGEMMA_TEXT["vocab_size"]
    prompt = torch.tensor([DGEMMA_PROMPT], dtype=torch.long)
    gen = torch.Generator().manual_seed(SEED + 2)
    canvas = torch.randint(0, V, (1, DGEMMA_CANVAS), generator=gen)
    init0 = torch.randint(0, V, (1, DGEMMA_CANVAS), generator=gen)

    with torch.no_grad():
        logits = dgemma_step(model, prompt, canvas)
        logits_sc = dgemma_step(model, prompt, canvas, sc_logits=logits[None])
        # The whole model in one call (encoder then decoder) must equal the split call.
        whole = model(input_ids=prompt, decoder_input_ids=canvas).logits[0].float()

    # One entropy-bound acceptance at an ordinary temperature.
    acc = EntropyBoundSampler(EntropyBoundSamplerConfig(entropy_bound=DGEMMA_ACCEPT["entropy_bound"]),
                              DGEMMA_CANVAS, V, DGEMMA_STEPS)
    processed = (logits / DGEMMA_ACCEPT["temperature"])[None]
    denoised = processed.argmax(-1)
    acc.accept_canvas(canvas, denoised, processed, DGEMMA_STEPS)
    accept_mask = acc.accepted_token_mask[0].to(torch.int32)

    # The reference generate at temperature ~0, recording each block's starting canvas and the
    # number of denoising steps it ran, and checking that every softmax is one-hot.
    starts, steps, gaps = [], [], []
    orig = model._prepare_denoiser_inputs

    def record_start(*a, **k):
        out = orig(*a, **k)
        starts.append(out[0][0].clone())
        steps.append(0)
        return out

    # Every model call generate makes, in order: encoder calls (the ids it encodes) and decoder
    # calls (the canvas, whether self-conditioning logits came with it, and the raw logits), so
    # that a sampler can be replayed against them without the model.
    calls, step_canvases, step_logits = [], [], []

    def on_encoder(module, args, kwargs):
        calls.append(("encode", kwargs["input_ids"][0].clone()))

    def on_decoder(module, args, kwargs):
        calls.append(("decode", kwargs.get("self_conditioning_logits") is not None))
        step_canvases.append(kwargs["decoder_input_ids"][0].clone())

    class Watch(LogitsProcessor):
        def __call__(self, input_ids, scores, cur_step):
            steps[-1] += 1
            step_logits.append(scores[0].float().clone())  # first processor: the raw logits
            t = DGEMMA_T["t_min"] + (DGEMMA_T["t_max"] - DGEMMA_T["t_min"]) * int(cur_step) / DGEMMA_STEPS
            top = scores.float().topk(2, dim=-1).values
            gaps.append(((top[..., 0] - top[..., 1]) / t).min().item())
            return scores

    model._prepare_denoiser_inputs = record_start
    hooks = [model.model.encoder.register_forward_pre_hook(on_encoder, with_kwargs=True),
             model.model.decoder.register_forward_pre_hook(on_decoder, with_kwargs=True)]
    torch.manual_seed(SEED + 3)
    with torch.no_grad():
        out = model.generate(
            prompt, decoder_input_ids=init0.clone(), max_new_tokens=DGEMMA_CANVAS * DGEMMA_BLOCKS,
            max_denoising_steps=DGEMMA_STEPS,
            sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
            stability_threshold=1, confidence_threshold=0.005, logits_processor=LogitsProcessorList([Watch()]),
            eos_token_id=None, pad_token_id=None, **DGEMMA_T)
    model._prepare_denoiser_inputs = orig
    for h in hooks:
        h.remove()
    tokens = out.sequences[0, len(DGEMMA_PROMPT):]
    encoded = [x for kind, x in calls if kind == "encode"]
    want_encoded = [prompt[0]] + [tokens[b * DGEMMA_CANVAS:(b + 1) * DGEMMA_CANVAS]
                                  for b in range(DGEMMA_BLOCKS - 1)]
    if len(encoded) != len(want_encoded) or not all(torch.equal(a, b) for a, b in zip(encoded, want_encoded)):
        raise RuntimeError("generate's encoder calls are not the prompt then each committed block")
    if len(step_canvases) != sum(steps):
        raise RuntimeError(f"{len(step_canvases)} decoder calls for {sum(steps)} steps")
    if tokens.shape[0] != DGEMMA_CANVAS * DGEMMA_BLOCKS or len(starts) != DGEMMA_BLOCKS:
        raise RuntimeError(f"generate made {tokens.shape[0]} tokens in {len(starts)} blocks")
    if not torch.equal(starts[0], init0[0]):
        raise RuntimeError("generate did not start from the given canvas")
    if min(gaps) <= 80:
        raise RuntimeError(f"a softmax at t_max {DGEMMA_T['t_max']} is not one-hot (gap/t {min(gaps):.1f})")

    scale = logits.abs().max().item()
    diffs = {"whole model vs encoder + decoder": (whole - logits).abs().max().item()}
    check(diffs, scale)

    tmp = os.path.join(out_root, ".diffusion_gemma.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save_pretrained(tmp)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(tmp, extra)):
            os.remove(os.path.join(tmp, extra))
    # Text only: drop the vision tower's tensors and config.
    state = load_file(os.path.join(tmp, "model.safetensors"))
    vision = [k for k in state if ".vision_tower." in k or ".embed_vision." in k]
    text = {k: t.contiguous() for k, t in state.items() if k not in vision}
    save_file(text, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json")) as f:
        cfg = json.load(f)
    cfg["vision_config"] = None
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    # The text tensors alone, loaded into a fresh model, give the same logits.
    fresh = dgemma_model(v)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    missing, unexpected = fresh.load_state_dict(text, strict=False)
    untied = [k for k in missing if ".vision_tower." not in k and ".embed_vision." not in k
              and not k.startswith("model.encoder.language_model.") and k != "lm_head.weight"]
    if unexpected or untied:
        raise RuntimeError(f"text checkpoint: unexpected {unexpected}, missing {untied}")
    fresh.tie_weights()
    with torch.no_grad():
        again = dgemma_step(fresh, prompt, canvas)
    diffs["text-only checkpoint vs original"] = (again - logits).abs().max().item()
    check(diffs, scale)

    meta = golden_meta(
        "diffusion_gemma", v,
        device="CPU (the GPU machine was unavailable in this session)",
        canvas_logits="decoder logits (after the final softcap) of canvas_ids at positions P..P+C-1, "
                      "after the encoder (causal) encoded prompt_ids; no self-conditioning (a first step)",
        canvas_logits_sc="the same step with self_conditioning_logits = canvas_logits",
        decode_tokens="generate(prompt_ids, decoder_input_ids=block_starts[0]) tokens after the prompt",
        block_starts="each block's starting canvas in generate (block 0 given; later ones drawn by "
                     "torch.randint and recorded)",
        block_steps="denoising steps each block ran before the stable-and-confident stop",
        step_canvases="the canvas of each decoder call generate made, in order (sum(block_steps) calls); "
                      "the encoder was called on prompt_ids, then on each committed block but the last",
        step_logits="the raw logits of each of those decoder calls",
        step_self_conditioned="1 where that call got self_conditioning_logits (the previous step's "
                              "logits / t), 0 at a block's first step",
        generate=json.dumps(dict(max_new_tokens=DGEMMA_CANVAS * DGEMMA_BLOCKS,
                                 max_denoising_steps=DGEMMA_STEPS, entropy_bound=0.1,
                                 stability_threshold=1, confidence_threshold=0.005, **DGEMMA_T)),
        accept=json.dumps(dict(DGEMMA_ACCEPT, rule="EntropyBoundSampler.accept_canvas on "
                               "canvas_logits / temperature")),
        min_gap_over_t=f"{min(gaps):.1f}")
    save_file({
        "prompt_ids": prompt[0].to(torch.int32),
        "canvas_ids": canvas[0].to(torch.int32),
        "canvas_logits": logits.contiguous(),
        "canvas_logits_sc": logits_sc.contiguous(),
        "accept_mask": accept_mask.contiguous(),
        "decode_tokens": tokens.to(torch.int32).contiguous(),
        "block_starts": torch.stack(starts).to(torch.int32).contiguous(),
        "block_steps": torch.tensor(steps, dtype=torch.int32),
        "step_canvases": torch.stack(step_canvases).to(torch.int32).contiguous(),
        "step_logits": torch.stack(step_logits).contiguous(),
        "step_self_conditioned": torch.tensor([int(x) for kind, x in calls if kind == "decode"],
                                              dtype=torch.int32),
    }, os.path.join(tmp, "golden.safetensors"), metadata={"golden": json.dumps(meta, sort_keys=True)})
    size = install(tmp, os.path.join(out_root, "diffusion_gemma"))
    print(f"  {len(text)} tensors ({len(vision)} vision tensors dropped), {size / 1024:.0f} KiB, "
          f"max |logit| {scale:.3f}, tokens {tokens.tolist()}, block steps {steps}, "
          f"accept {accept_mask.tolist()}, min gap/t {min(gaps):.1f}")
    for what, d in diffs.items():
        print(f"  max diff {what}: {d:.3e}")


# Types with their own maker (not the causal-LM path above), and the transformers class each
# needs: a run without a type list skips one its transformers lacks (5.17 has no diffusion_gemma).
SPECIAL = {"diffusion_gemma": make_diffusion_gemma}
SPECIAL_NEEDS = {"diffusion_gemma": "DiffusionGemmaForBlockDiffusion"}


def special_available(name):
    import transformers
    return hasattr(transformers, SPECIAL_NEEDS[name])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="test/fixtures/hf", help="output folder (default: %(default)s)")
    parser.add_argument("types", nargs="*",
                        help=f"model types (default: all): {' '.join([*TINY, *SPECIAL])}")
    args = parser.parse_args()
    known = [*TINY, *SPECIAL]
    unknown = [t for t in args.types if t not in known]
    if unknown:
        parser.error(f"unknown types {unknown}; known: {' '.join(known)}")
    skipped = [] if args.types else [t for t in SPECIAL if not special_available(t)]
    types = args.types or [t for t in known if t not in skipped]

    # One CPU thread: reductions then always run in the same order.
    torch.set_num_threads(1)
    v = versions()
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    if skipped:
        print(f"skipped (this transformers lacks them): {' '.join(skipped)}")
    os.makedirs(args.out, exist_ok=True)

    failed = make_each(
        types, lambda t: SPECIAL[t](args.out, v) if t in SPECIAL else make(t, args.out, v), args.out)

    total = 0
    for root, _, files in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total size of {args.out}: {total / 2**20:.2f} MiB"
          + ("" if total < SIZE_LIMIT else f"   <-- over the {SIZE_LIMIT / 2**20:.0f} MiB budget"))
    print(f"done: {len(types) - len(failed)} ok" + (f", failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
