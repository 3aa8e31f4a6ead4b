#!/usr/bin/env python3
"""The peers of bench/run.ts, run in the same device call: PyTorch cuBLAS fp32 (TF32 off)
matmul, torch scaled_dot_product_attention (fp32, GQA), HuggingFace transformers eager Llama with
Llama-3.2-1B dimensions and a ~1B Jamba-style hybrid (fp32, random init), HF Mamba/Mamba-2.
Usage: python3 bench/peers.py [suites] [out.json]; writes one JSON object (to stdout without a file)."""
import json
import os
import sys
import time

import torch
import transformers

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
suites = set((sys.argv[1] if len(sys.argv) > 1 else "matmul,attention,e2e,hybrid,scan").split(","))


def cuda_ms(fn, reps, samples=5):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(samples):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / reps)
    return sorted(times)[len(times) // 2]


out = {"torch": torch.__version__, "transformers": transformers.__version__,
       "device": torch.cuda.get_device_name(0)}
out_path = sys.argv[2] if len(sys.argv) > 2 else None


def flush():
    """Write what is measured so far, so a run cut short still leaves its figures."""
    if out_path:
        with open(out_path, "w") as f:
            json.dump(out, f, indent=1)

if "matmul" in suites:
    rows = []
    # STRATA_PEER_MATMUL_SHAPES=MxNxK,... replaces the suite's shapes (the sweep's prefill shapes).
    shapes = [tuple(map(int, sh.split("x")))
              for sh in os.environ.get("STRATA_PEER_MATMUL_SHAPES", "").split(",") if sh] or [
        (1, 4096, 4096), (1, 14336, 4096), (1, 4096, 14336), (1024,) * 3, (2048,) * 3, (4096,) * 3]
    for M, N, K in shapes:
        reps = 200 if M == 1 else max(3, round(2e11 / (2 * M * N * K)))
        # fp32 with TF32 off, and fp16 (tensor cores, fp32 accumulation): strata's f32 and f16 rows.
        for precision, dtype in [("f32", torch.float32), ("f16", torch.float16)]:
            x = torch.randn(M, K, device=dev, dtype=dtype)
            w = torch.randn(N, K, device=dev, dtype=dtype)
            ms = cuda_ms(lambda: x @ w.T, reps)
            rows.append({"shape": f"{M}x{N}x{K}", "precision": precision, "ms": ms,
                         "tflops": 2 * M * N * K / (ms * 1e-3) / 1e12})
    out["matmul"] = rows
    flush()

if "attention" in suites:
    F = torch.nn.functional
    H, KVH, hd = 32, 8, 128
    rows = []
    for name, T, keys in [("prefill 1k", 1024, 1024), ("prefill 4k", 4096, 4096),
                          ("prefill 16k", 16384, 16384), ("decode 4k", 1, 4096), ("decode 32k", 1, 32768)]:
        q = torch.randn(1, H, T, hd, device=dev)
        k = torch.randn(1, KVH, keys, hd, device=dev)
        v = torch.randn(1, KVH, keys, hd, device=dev)
        causal = T > 1
        flops = 4 * H * hd * (keys if T == 1 else T * (T + 1) / 2)
        reps = 100 if T == 1 else max(2, round(5e11 / flops))
        try:
            ms = cuda_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True), reps)
            rows.append({"case": name, "ms": ms, "tflops": flops / (ms * 1e-3) / 1e12})
        except torch.OutOfMemoryError as e:
            rows.append({"case": name, "error": f"out of memory: {e}"[:200]})
        del q, k, v
        torch.cuda.empty_cache()
    out["attention"] = rows
    flush()

def time_hf_e2e(model, vocab, label, save_dir=None):
    """Prefill tokens/s at 512, 4k, 16k and batch-1 greedy decode of 64 tokens, as bench/run.ts
    measures strata. With save_dir, saves the last row's logits after the 512-token prefill."""
    from safetensors.torch import save_file
    prefill = []
    with torch.no_grad():
        for T in [512, 4096, 16384]:
            ids = (torch.arange(T, device=dev) * 7919 % vocab).unsqueeze(0)
            try:
                model(ids[:, :512])
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                logits = model(ids, logits_to_keep=1).logits
                torch.cuda.synchronize()
                s = time.perf_counter() - t0
                prefill.append({"tokens": T, "seconds": s, "tokensPerSecond": T / s})
                if save_dir and T == 512:
                    save_file({"last_logits": logits[0, -1].float().contiguous().cpu()},
                              f"{save_dir}/last_logits.safetensors")
            except torch.OutOfMemoryError as e:
                prefill.append({"tokens": T, "error": f"out of memory: {e}"[:200]})
            torch.cuda.empty_cache()
        ids = torch.arange(1, 9, device=dev).unsqueeze(0)
        gen = dict(max_new_tokens=64, min_new_tokens=64, do_sample=False)
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(ids, **gen)
        torch.cuda.synchronize()
        s = time.perf_counter() - t0
    return {"model": label, "prefill": prefill,
            "decode": {"tokensPerSecond": 64 / s, "msPerToken": s * 1000 / 64}}


if "e2e" in suites:
    cfg = transformers.LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5,
        max_position_embeddings=131072, tie_word_embeddings=True, attn_implementation="eager",
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(cfg).float().eval()
    out["e2e"] = time_hf_e2e(model, 128256, "HF transformers LlamaForCausalLM eager fp32, Llama-3.2-1B dims")
    del model
    torch.cuda.empty_cache()
    flush()

if "hybrid" in suites:
    # A ~1.1B Jamba-style hybrid: 16 layers, attention at 4 and 12 (7 mamba : 1 attention), MoE of
    # 16 experts top-2 on odd layers. Saved so that bench/run.ts runs strata on the same weights.
    cfg = transformers.JambaConfig(
        vocab_size=65536, hidden_size=1024, intermediate_size=2048, num_hidden_layers=16,
        num_attention_heads=16, num_key_value_heads=4, num_experts=16, num_experts_per_tok=2,
        attn_layer_period=8, attn_layer_offset=4, expert_layer_period=2, expert_layer_offset=1,
        mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, use_mamba_kernels=False,
        max_position_embeddings=32768, tie_word_embeddings=False, attn_implementation="eager")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.JambaForCausalLM(cfg).float().eval()
    path = "/tmp/strata-bench/jamba"
    model.save_pretrained(path, safe_serialization=True)
    out["hybrid"] = time_hf_e2e(model, 65536, "HF transformers JambaForCausalLM eager fp32 (PyTorch mamba path)", path)
    del model
    torch.cuda.empty_cache()
    flush()

if "scan" in suites:
    # Two-layer models at Mamba-2.8B / Mamba2-2.7B widths. The checkpoints are saved so that
    # bench/run.ts's scan suite runs strata on the very same weights, after this script.
    from safetensors.torch import save_file
    rows = []
    for kind, make in [
        ("mamba", lambda: transformers.MambaForCausalLM(transformers.MambaConfig(
            vocab_size=50280, hidden_size=2560, state_size=16, num_hidden_layers=2, expand=2,
            conv_kernel=4))),
        ("mamba2", lambda: transformers.Mamba2ForCausalLM(transformers.Mamba2Config(
            vocab_size=50280, hidden_size=2560, state_size=128, num_heads=80, head_dim=64, n_groups=1,
            num_hidden_layers=2, expand=2, conv_kernel=4, chunk_size=256))),
    ]:
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = make().float().eval()
        path = f"/tmp/strata-bench/{kind}"
        model.save_pretrained(path, safe_serialization=True)
        with torch.no_grad():
            model(torch.arange(512, device=dev).unsqueeze(0), logits_to_keep=1)  # warm-up
            for T in [4096, 65536]:
                ids = (torch.arange(T, device=dev) * 7919 % 50280).unsqueeze(0)
                try:
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    logits = model(ids, logits_to_keep=1).logits
                    torch.cuda.synchronize()
                    s = time.perf_counter() - t0
                    rows.append({"model": kind, "tokens": T, "seconds": s, "tokensPerSecond": T / s})
                    if T == 4096:
                        save_file({"last_logits": logits[0, -1].float().contiguous().cpu()}, f"{path}/last_logits.safetensors")
                except torch.OutOfMemoryError as e:
                    rows.append({"model": kind, "tokens": T, "error": f"out of memory: {e}"[:200]})
                torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()
    out["scan"] = rows
    flush()

if "linear" in suites:
    # fla's Triton kernels (chunk_* for prefill, fused_recurrent_* for one decode token) on the
    # shapes of bench/linear-cases.ts: B 1, 16 heads, key and value head dims 128, float32
    # inputs (fla's kernels may still use TF32 in tl.dot; recorded as fla's own choice). fla is
    # not installed on the device machines: bench/device.sh puts a carried copy on PYTHONPATH.
    try:
        import fla
        from fla.ops.retention import chunk_retention, fused_recurrent_retention
        from fla.ops.gla import chunk_gla, fused_recurrent_gla
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
        from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule
    except ImportError as e:
        out["linear"] = {"error": f"fla not importable: {e}"}
        flush()
    else:
        H, K, V = 16, 128, 128
        F = torch.nn.functional
        rows = []

        def inputs(T):
            q = torch.empty(1, T, H, K, device=dev).uniform_(-K ** -0.5, K ** -0.5)
            k = F.normalize(torch.randn(1, T, H, K, device=dev), dim=-1)
            v = torch.empty(1, T, H, V, device=dev).uniform_(-1, 1)
            gk = torch.empty(1, T, H, K, device=dev).uniform_(-0.1, -1e-3)
            g = torch.empty(1, T, H, device=dev).uniform_(-0.1, -1e-3)
            beta = torch.empty(1, T, H, device=dev).uniform_(0.05, 0.95)
            return q, k, v, gk, g, beta

        s0 = torch.zeros(1, H, K, V, device=dev)
        families = {
            "retention (fixed decay)": (
                lambda q, k, v, gk, g, b: chunk_retention(q, k, v),
                lambda q, k, v, gk, g, b: fused_recurrent_retention(q, k, v, initial_state=s0, output_final_state=True)),
            "gla (key decay)": (
                lambda q, k, v, gk, g, b: chunk_gla(q, k, v, gk),
                lambda q, k, v, gk, g, b: fused_recurrent_gla(q, k, v, gk=gk, initial_state=s0, output_final_state=True)),
            "gated delta (head decay)": (
                lambda q, k, v, gk, g, b: chunk_gated_delta_rule(q, k, v, g, b),
                lambda q, k, v, gk, g, b: fused_recurrent_gated_delta_rule(q, k, v, g, b, initial_state=s0, output_final_state=True)),
            "delta (no decay)": (
                lambda q, k, v, gk, g, b: chunk_delta_rule(q, k, v, b),
                lambda q, k, v, gk, g, b: fused_recurrent_delta_rule(q, k, v, b, initial_state=s0, output_final_state=True)),
        }
        # RWKV-7's dplr update, in fla's convention (its a reads the state, b writes it): a = -kk,
        # b = kk * 0.5 with kk the unit keys; w the per-key log decay. Imported on its own, so an fla
        # without rwkv7 still times the families above.
        try:
            from fla.ops.rwkv7 import chunk_rwkv7, fused_recurrent_rwkv7
        except ImportError as e:
            rows.append({"family": "rwkv7 dplr (key decay)", "T": 0, "error": f"fla has no rwkv7: {e}"[:300]})
        else:
            families["rwkv7 dplr (key decay)"] = (
                lambda q, k, v, gk, g, b: chunk_rwkv7(r=q, w=gk, k=k, v=v, a=-k, b=k * 0.5, scale=1.0, output_final_state=True),
                lambda q, k, v, gk, g, b: fused_recurrent_rwkv7(r=q, w=gk, k=k, v=v, a=-k, b=k * 0.5, scale=1.0, initial_state=s0, output_final_state=True))
        for fam, (chunk, step) in families.items():
            for T in (4096, 16384, 65536, 1):
                try:
                    x = inputs(T)
                    fn = (lambda: step(*x)) if T == 1 else (lambda: chunk(*x))
                    with torch.no_grad():
                        ms = cuda_ms(fn, 200 if T == 1 else (2 if T >= 65536 else 5))
                    rows.append({"family": fam, "T": T, "ms": ms, "tokensPerS": T / (ms * 1e-3)})
                except Exception as e:  # noqa: BLE001 — a failed shape is reported, the rest go on
                    rows.append({"family": fam, "T": T, "error": f"{type(e).__name__}: {e}"[:300]})
                torch.cuda.empty_cache()
        out["linear"] = {"fla": getattr(fla, "__version__", "?"), "rows": rows}
        flush()

if not out_path:
    print(json.dumps(out, indent=1))
