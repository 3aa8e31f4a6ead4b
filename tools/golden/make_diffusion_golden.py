#!/usr/bin/env python3
"""Golden fixtures for strata's masked-diffusion importers: LLaDA (`llada`) and Dream (`Dream`).

Neither type is part of transformers: both ship as remote code. This script loads the public
reference modeling files from a checkout (or a bare git mirror) of NVlabs/Fast-dLLM
(llada/model/{configuration,modeling}_llada.py, dream/model/{configuration_dream,modeling_dream,
generation_utils}.py) and ML-GSAI/LLaDA (generate.py, the reference generate()), by path with
importlib; none of that code is copied into strata. For each type it builds a tiny random model
(float32, CPU, one thread, weights from make_golden.py's SEED and randomisation), saves
config.json + model.safetensors as the remote code's classes name them, and writes
golden.safetensors:

    prompt_ids     I32 [P]          the prompt
    canvas_logits  F32 [P+G, V]     one forward over the prompt followed by G mask ids (raw model
                                    logits: Dream's shift right by one is the sampler's business)
    decode_tokens  I32 [G]          the whole generation at temperature 0 from the reference sampler
                                    (LLaDA: generate.py generate(); Dream: diffusion_generate with
                                    alg maskgit_plus, alg_temp 0)
    step_canvas    I32 [S, P+G]     the canvas each of the sampler's S forwards was given (the
                                    schedule, step by step, for diagnosing a mismatch)
    decode_tokens.<alg>  I32 [G]    Dream only: the generation with alg topk_margin and entropy

The `golden` metadata entry (JSON) records the sampler settings, the reference repositories and
commits, and the library versions. Usage:

    python3 tools/golden/make_diffusion_golden.py --fast-dllm PATH --llada PATH [--out test/fixtures/hf]

PATH is a checkout or a bare git repository (the `fetch` tool's mirror), read at HEAD.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import SEED, check, install, randomize, versions  # noqa: E402

VOCAB = 64
MASK = 63
PROMPT = [5, 17, 40, 3, 22, 9, 31, 12]
GEN = 16
MORE_DREAM_ALGS = ["topk_margin", "entropy"]
WHY_CPU = ("generated on the CPU with torch 2.13 / transformers 5.18 because the GPU machine "
           "was unavailable")


def git_dir(path):
    """The git directory of a checkout or bare mirror, or None for a plain folder."""
    for d in (os.path.join(path, ".git"), path):
        if os.path.isfile(os.path.join(d, "HEAD")) and os.path.isdir(os.path.join(d, "objects")):
            return d
    return None


def read_source(repo, rel):
    if os.path.isfile(os.path.join(repo, rel)):
        with open(os.path.join(repo, rel)) as f:
            return f.read()
    gd = git_dir(repo)
    if gd is None:
        raise FileNotFoundError(f"{rel} is not in {repo}")
    return subprocess.run(["git", f"--git-dir={gd}", "show", f"HEAD:{rel}"], check=True,
                          capture_output=True, text=True).stdout


def commit_of(repo):
    gd = git_dir(repo)
    if gd is None:
        return "unknown"
    return subprocess.run(["git", f"--git-dir={gd}", "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def load_package(name, repo, folder, modules, workdir):
    """Copies repo/folder/<module>.py into a temporary package `name` (they import each other
    relatively) and imports it; returns {module: module object}."""
    pkg = os.path.join(workdir, name)
    os.makedirs(pkg, exist_ok=True)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    for m in modules:
        with open(os.path.join(pkg, f"{m}.py"), "w") as f:
            f.write(read_source(repo, f"{folder}/{m}.py"))
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    return {m: importlib.import_module(f"{name}.{m}") for m in modules}


def load_module(name, path_text, workdir):
    path = os.path.join(workdir, f"{name}.py")
    with open(path, "w") as f:
        f.write(path_text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def compat_shims():
    """What the 2025 remote code needs from transformers 5.18, changing no arithmetic:
    - modeling_llada imports einops for its block-diffusion path only (not run here);
    - transformers 5 dropped the 'default' RoPE init that DreamRotaryEmbedding looks up: the
      plain inverse frequencies 1 / theta^(2i/d), as transformers 4 computed them."""
    if "einops" not in sys.modules:
        try:
            import einops  # noqa: F401
        except ImportError:
            stub = types.ModuleType("einops")
            stub.rearrange = None
            sys.modules["einops"] = stub
    import transformers.modeling_rope_utils as rope

    if "default" not in rope.ROPE_INIT_FUNCTIONS:
        def default_rope(config, device=None, seq_len=None, **_):
            dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            exps = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
            return 1.0 / (config.rope_theta ** exps), 1.0
        rope.ROPE_INIT_FUNCTIONS["default"] = default_rope


class Recorder(torch.nn.Module):
    """Wraps a model to record the canvas of every forward (the sampler's steps)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.canvases = []

    @property
    def device(self):
        return self.inner.device

    def forward(self, x, *a, **k):
        self.canvases.append(x[0].clone())
        return self.inner(x, *a, **k)


def save(model, config, tmp):
    """config.json as the config class writes it, model.safetensors with the state dict's names
    (float32, contiguous). save_pretrained itself fails on Dream under transformers 5 (its
    `_tied_weights_keys` is transformers 4's list form), so the checkpoint is written directly."""
    from safetensors.torch import save_file
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    config.save_pretrained(tmp)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    return len(state)


def write_golden(folder, meta, canvas_logits, tokens, canvases, more):
    from safetensors.torch import save_file

    save_file({
        "prompt_ids": torch.tensor(PROMPT, dtype=torch.int32),
        "canvas_logits": canvas_logits.contiguous(),
        "decode_tokens": tokens.to(torch.int32).contiguous(),
        "step_canvas": torch.stack(canvases).to(torch.int32).contiguous(),
        **{f"decode_tokens.{k}": t.to(torch.int32).contiguous() for k, t in more.items()},
    }, os.path.join(folder, "golden.safetensors"), metadata={"golden": json.dumps(meta, sort_keys=True)})


def canvas():
    return torch.tensor([PROMPT + [MASK] * GEN], dtype=torch.long)


# The released checkpoints' settings (LLaDA-8B: rms norms, silu, untied head, GQA off).
LLADA_TINY = dict(
    d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=32, vocab_size=VOCAB,
    embedding_size=VOCAB, block_type="llama", layer_norm_type="rms", rms_norm_eps=1e-5,
    rope=True, rope_theta=500000.0, activation_type="silu", weight_tying=False,
    include_bias=False, include_qkv_bias=False, bias_for_layer_norm=False,
    mask_token_id=MASK, eos_token_id=None, pad_token_id=0, max_sequence_length=256,
    attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0,
    init_device="cpu", init_fn="normal")
LLADA_SAMPLER = dict(gen_length=GEN, block_length=8, steps=6, temperature=0.0,
                     remasking="low_confidence", cfg_scale=0.0, mask_id=MASK)

# Every other option the importer maps, in one model (test/fixtures/diffusion/llada_options):
# Gemma-style norms, √d embedding scale, 1/√d logit scale, tied head, q/k/v biases, GELU, one KV
# head through multi_query_attention, the MLP from mlp_ratio, embeddings padded past the vocab.
LLADA_OPTIONS = dict(
    LLADA_TINY, layer_norm_type="gemma_rms", input_emb_norm=True, scale_logits=True,
    weight_tying=True, include_qkv_bias=True, activation_type="gelu", n_kv_heads=None,
    multi_query_attention=True, mlp_hidden_size=None, mlp_ratio=2, embedding_size=72,
    rope_theta=10000.0)
LLADA_OPTIONS_SAMPLER = dict(LLADA_SAMPLER, block_length=4, steps=8)


def make_llada(args, v, work, settings=LLADA_TINY, sampler=LLADA_SAMPLER):
    ref = load_package("llada_ref", args.fast_dllm, "llada/model",
                       ["configuration_llada", "modeling_llada"], work)
    gen = load_module("llada_generate", read_source(args.llada, "generate.py"), work)
    config = ref["configuration_llada"].LLaDAConfig(**settings)
    # transformers 5's PretrainedConfig no longer keeps use_cache from the kwargs LLaDAConfig passes.
    config.use_cache = False
    torch.manual_seed(SEED)
    model = ref["modeling_llada"].LLaDAModelLM(config, init_params=True).to(torch.float32).eval()
    randomize(model)
    with torch.no_grad():
        logits = model(canvas()).logits[0].float()
        rec = Recorder(model)
        out = gen.generate(rec, torch.tensor([PROMPT]), **sampler)
    tokens = out[0, len(PROMPT):]
    return model, config, logits, tokens, rec.canvases, {}, {
        "sampler": "ML-GSAI/LLaDA generate.py generate()",
        "sampler_settings": sampler,
        "reference": f"NVlabs/Fast-dLLM@{commit_of(args.fast_dllm)} llada/model; "
                     f"ML-GSAI/LLaDA@{commit_of(args.llada)} generate.py",
    }, lambda tmp: rebuild(ref["modeling_llada"].LLaDAModelLM, type(config), tmp,
                           lambda c: setattr(c, "use_cache", False))


def make_dream(args, v, work):
    ref = load_package("dream_ref", args.fast_dllm, "dream/model",
                       ["configuration_dream", "generation_utils", "modeling_dream"], work)
    gu = ref["generation_utils"]
    # transformers 5 calls validate(user_set_attributes=...); Dream's validate does nothing.
    gu.DreamGenerationConfig.validate = lambda self, *a, **k: None
    config = ref["configuration_dream"].DreamConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, mask_token_id=MASK,
        pad_token_id=0, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(SEED)
    model = ref["modeling_dream"].DreamModel(config).to(torch.float32).eval()
    randomize(model)
    sampler = dict(max_new_tokens=GEN, steps=6, eps=1e-3, temperature=0.0, alg="maskgit_plus",
                   alg_temp=0.0, top_p=None, top_k=None, mask_token_id=MASK)
    gc = gu.DreamGenerationConfig(**sampler, pad_token_id=0, return_dict_in_generate=False)
    with torch.no_grad():
        logits = model(canvas()).logits[0].float()
        canvases = []
        orig = type(model).forward

        def recording(self, x, *a, **k):
            canvases.append(x[0].clone())
            return orig(self, x, *a, **k)

        type(model).forward = recording
        try:
            out = model.diffusion_generate(torch.tensor([PROMPT]), generation_config=gc)
        finally:
            type(model).forward = orig
        # Dream's other deterministic confidences, same settings otherwise.
        more = {}
        for alg in MORE_DREAM_ALGS:
            other = gu.DreamGenerationConfig(**{**sampler, "alg": alg}, pad_token_id=0,
                                             return_dict_in_generate=False)
            more[alg] = model.diffusion_generate(torch.tensor([PROMPT]), generation_config=other)[0, len(PROMPT):]
    tokens = out[0, len(PROMPT):]
    return model, config, logits, tokens, canvases, more, {
        "sampler": "Dream diffusion_generate (NVlabs/Fast-dLLM dream/model/generation_utils.py)",
        "sampler_settings": sampler,
        "more_algs": "decode_tokens.<alg>: the same generation with alg topk_margin, entropy",
        "reference": f"NVlabs/Fast-dLLM@{commit_of(args.fast_dllm)} dream/model",
    }, lambda tmp: rebuild(ref["modeling_dream"].DreamModel, type(config), tmp)


def rebuild(model_class, config_class, tmp, fix=lambda c: None):
    """The model again from the saved files alone: its config class reads config.json, the
    state dict comes from model.safetensors (strict: no tensor missing or left over).
    from_pretrained is not used because transformers 5 expects hooks the 2025 remote code
    lacks (all_tied_weights_keys)."""
    from safetensors.torch import load_file

    config = config_class.from_pretrained(tmp)
    fix(config)
    model = model_class(config)
    model.load_state_dict(load_file(os.path.join(tmp, "model.safetensors")), strict=True)
    return model


# Keyed by model_type: a fixture folder is named after its type (test/import/registry.test.ts).
MAKERS = {
    "llada": make_llada,
    "Dream": make_dream,
    # Not a released configuration: written under --options-out, not --out.
    "llada_options": lambda args, v, work: make_llada(args, v, work, LLADA_OPTIONS,
                                                       LLADA_OPTIONS_SAMPLER),
}
OPTION_FIXTURES = {"llada_options"}


def make(name, args, v, work):
    model, config, logits, tokens, canvases, more, extra, reload = MAKERS[name](args, v, work)
    rows = getattr(config, "embedding_size", None) or config.vocab_size
    if tuple(logits.shape) != (len(PROMPT) + GEN, rows):
        raise RuntimeError(f"canvas logits have shape {tuple(logits.shape)}")
    for t in [tokens, *more.values()]:
        if (t == MASK).any():
            # The reference commits a predicted mask id like any token; the position then stays
            # masked, a case the sampler must reproduce too.
            print(f"  note: the generation predicted the mask id: {t.tolist()}")
    out = args.options_out if name in OPTION_FIXTURES else args.out
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, f".{name}.tmp")
    n = save(model, config, tmp)
    again_model = reload(tmp).to(torch.float32).eval()
    with torch.no_grad():
        again = again_model(canvas()).logits[0].float()
    scale = logits.abs().max().item()
    diffs = {"reloaded checkpoint vs original": (again - logits).abs().max().item()}
    check(diffs, scale)
    meta = {"model_type": config.model_type, "seed": str(SEED), "device": "cpu",
            "note": WHY_CPU, **{k: str(x) for k, x in v.items()},
            **{k: (x if isinstance(x, str) else json.dumps(x, sort_keys=True)) for k, x in extra.items()}}
    write_golden(tmp, meta, logits, tokens, canvases, more)
    size = install(tmp, os.path.join(out, name))
    print(f"{name}: {n} tensors, {size / 1024:.0f} KiB, max |logit| {scale:.3f}, "
          f"{len(canvases)} forwards, tokens {tokens.tolist()}")
    for alg, t in more.items():
        print(f"  alg {alg}: tokens {t.tolist()}")
    for what, d in diffs.items():
        print(f"  max diff {what}: {d:.3e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fast-dllm", required=True, help="NVlabs/Fast-dLLM checkout or git mirror")
    p.add_argument("--llada", required=True, help="ML-GSAI/LLaDA checkout or git mirror")
    p.add_argument("--out", default="test/fixtures/hf")
    p.add_argument("--options-out", default="test/fixtures/diffusion",
                   help="folder of the fixtures that cover importer options (llada_options)")
    p.add_argument("types", nargs="*", help=f"default: {' '.join(MAKERS)}")
    args = p.parse_args()
    torch.set_num_threads(1)
    v = versions()
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    compat_shims()
    with tempfile.TemporaryDirectory() as work:
        for name in args.types or list(MAKERS):
            make(name, args, v, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
