#!/usr/bin/env python3
"""Train the demo model that `npm run demo` runs: a small Jamba hybrid (7 Mamba-1 : 1 attention,
dense and MoE SwiGLU FFNs alternating) with its own byte-level BPE tokenizer, on the corpus that
corpus.sh builds (the King James Bible, from Debian's bible-kjv-text). transformers' Jamba
classes are the reference: strata imports the folder as any HF Jamba checkpoint, and a golden
test checks strata's logits against these classes on the shipped (f16) weights.

  python3 tools/demo-model/train.py --corpus corpus.txt --out DIR [--minutes 6] [--device cuda]

DIR gets model/ (config.json, model.safetensors in F16, tokenizer.json, tokenizer_config.json,
generation_config.json: what examples/demo-model holds) and golden/golden.safetensors (prompt,
prefill and 8 greedy decode steps' logits, computed in f32 on the CPU from the f16 weights, the
layout of tools/golden/README.md). Needs torch, transformers (5.x) and tokenizers; the H200
session that made the committed model is in tools/demo-model/README.md.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from make_golden import check, golden_meta, greedy_decode, versions, write_golden  # noqa: E402

SEED = 20261205
VOCAB = 4096
EOS = "<|endoftext|>"
SEQ = 256
BATCH = 128
# Dims: ~9.1M parameters (18 MB as F16). 8 layers: attention at 4, MoE FFN at odd layers.
CONFIG = dict(
    vocab_size=VOCAB, hidden_size=256, intermediate_size=320, num_hidden_layers=8,
    num_attention_heads=4, num_key_value_heads=2, attn_layer_period=8, attn_layer_offset=4,
    expert_layer_period=2, expert_layer_offset=1, num_experts=4, num_experts_per_tok=2,
    mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=16, use_mamba_kernels=False,
    max_position_embeddings=1024, tie_word_embeddings=True, rms_norm_eps=1e-6,
    output_router_logits=True, router_aux_loss_coef=0.01,
)
PROMPT_TEXT = "And God said"


def train_tokenizer(lines):
    """Byte-level BPE (GPT-2 / Llama-3 style: every byte has a token, so any text encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=[EOS], min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    if tok.get_vocab_size() != VOCAB:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens, wanted {VOCAB}")
    return tok


def save_tokenizer(tok, folder):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=None,
                                   model_max_length=CONFIG["max_position_embeddings"])
    fast.save_pretrained(folder)
    for extra in ("special_tokens_map.json",):  # strata reads tokenizer_config.json's copy
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))


def lr_at(frac, peak=3e-3, warm=0.03):
    """Linear warm-up, then cosine to 10% of the peak, over the fraction of the time budget."""
    if frac < warm:
        return peak * frac / warm
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warm) / (1 - warm)))))


def train(model, data, minutes, device, batch_size, seq):
    g = torch.Generator().manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    t0, step, budget = time.time(), 0, minutes * 60
    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(frac)
        starts = torch.randint(0, data.numel() - seq - 1, (batch_size,), generator=g)
        batch = torch.stack([data[s:s + seq + 1] for s in starts.tolist()]).to(device)
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone(), use_cache=False)
        # transformers shifts labels itself: labels = input_ids predicts each next token.
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            print(f"step {step:5d}  {time.time() - t0:6.0f} s  lr {lr_at(frac):.2e}  loss {out.loss.item():.3f}",
                  flush=True)
    return step, out.loss.item()


def sample(model, tok, text, n=48):
    ids = torch.tensor([tok.encode(text).ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=n, pad_token_id=tok.token_to_id(EOS))
    return tok.decode(out[0].tolist())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=BATCH, help="sequences per step (smoke tests: 2)")
    ap.add_argument("--seq", type=int, default=SEQ, help="tokens per sequence (smoke tests: 16)")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    v = versions()
    print("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()), flush=True)

    lines = [l.rstrip("\n") for l in open(args.corpus, encoding="utf-8") if l.strip()]
    tok = train_tokenizer(lines)
    eos = tok.token_to_id(EOS)
    ids = []
    for line in lines:
        ids.extend(tok.encode(line).ids)
        ids.append(eos)
    data = torch.tensor(ids, dtype=torch.long)
    print(f"corpus: {len(lines)} lines, {data.numel()} tokens", flush=True)

    from transformers import JambaConfig, JambaForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = True
    config = JambaConfig(**CONFIG, eos_token_id=eos, bos_token_id=None, pad_token_id=eos)
    model = JambaForCausalLM(config).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters", flush=True)
    steps, loss = train(model, data, args.minutes, args.device, args.batch, args.seq)
    print(f"trained: {steps} steps of {args.batch}x{args.seq} tokens, last loss {loss:.3f}", flush=True)

    # Ship F16 (half the bytes); everything after this point computes from those values in f32.
    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    model = model.to("cpu").eval()
    model.config.output_router_logits = False
    model.to(torch.float16).save_pretrained(model_dir)
    save_tokenizer(tok, model_dir)
    with open(os.path.join(model_dir, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": eos, "pad_token_id": eos}, f, indent=2)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(1)
    ref = JambaForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                           attn_implementation="eager").eval()
    prompt = tok.encode(PROMPT_TEXT).ids
    ids_t = torch.tensor([prompt])
    with torch.no_grad():
        prefill = ref(input_ids=ids_t, use_cache=False).logits[0].float()
        tokens, decode_logits, last = greedy_decode(ref, ids_t)
        full_ids = torch.cat([ids_t, tokens.view(1, -1)], dim=1)
        full = ref(input_ids=full_ids, use_cache=False).logits[0].float()
    check({"generate prefill vs forward": (last - prefill[-1]).abs().max().item(),
           "cached decode vs full recompute": (decode_logits - full[len(prompt):]).abs().max().item()},
          prefill.abs().max().item())
    golden_dir = os.path.join(args.out, "golden")
    os.makedirs(golden_dir, exist_ok=True)
    write_golden(golden_dir, golden_meta("jamba", v, trained_steps=steps, last_loss=f"{loss:.4f}",
                                         prompt_text=PROMPT_TEXT, corpus="bible-kjv-text (Debian)"),
                 prefill, tokens, decode_logits, prompt=prompt)
    print(f"golden: prompt {prompt}, decode tokens {tokens.tolist()}", flush=True)
    for text in (PROMPT_TEXT, "In the beginning", "The LORD is my shepherd"):
        print(f"sample: {sample(ref, tok, text)!r}", flush=True)


if __name__ == "__main__":
    main()
