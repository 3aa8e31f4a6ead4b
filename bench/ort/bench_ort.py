#!/usr/bin/env python3
"""ONNX Runtime's WebGPU execution provider (onnxruntime-node's libonnxruntime.so.1, through
ort_capi.py) on the ONNX graph export_onnx.py writes of the e2e suite's weights, as a peer of
strata's e2e rows:
1. check: the fixed prompt of DIR/reference.json and the three greedy steps after it, with the KV
   cache kept on the GPU, against PyTorch's logits of the same weights (max |diff| over max
   |logit|); outside --tol, or an argmax that differs, marks the result correct: false (still
   timed);
2. prefill: --prefill tokens (ids i·7919 mod vocab, as bench/peers.py) from an empty cache, one
   warm-up, then --reps timed runs: tokens/s median, min, max;
3. decode (tg128, as llama-bench): --decode greedy batch-1 steps from an empty cache, each feeding
   the last step's present KV back as GPU buffers (never copied to the host) and reading only the
   last row's logits for the argmax; one warm-up run of the same length (the EP builds some
   shaders per cache length), then --reps runs.
Every timed run ends when its logits are on the host. The result goes into --out (a JSON object,
{peer, device, precisions: {f32: …, f16: …}}, bench/ort/table.ts), rewritten after each phase, so
a run cut short keeps what it measured; a failure lands there as `error`.
Usage: bench_ort.py --lib libonnxruntime.so.1 --model DIR --precision f32|f16 [--ep webgpu|cpu]
  [--prefill 512] [--decode 128] [--reps 5] [--tol X] [--out ort.json] [--device NAME]"""
import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_capi import Api, Session  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--lib", required=True)
p.add_argument("--model", required=True)
p.add_argument("--precision", choices=["f32", "f16"], default="f32")
p.add_argument("--ep", choices=["webgpu", "cpu"], default="webgpu")
p.add_argument("--prefill", type=int, default=512)
p.add_argument("--decode", type=int, default=128)
p.add_argument("--reps", type=int, default=5)
# f32: sums in another order than PyTorch's give ~1e-6 of the largest logit; but the graph
# computes RoPE's cos/sin itself, and Vulkan lets WGSL's cos/sin be off by 2^-11 absolute
# (SwiftShader's are ~2e-4 off at arguments near 300, every other op of the graph agrees to
# ~1e-6), which leaves ~1.4e-4 on a small Llama there. f16: activations rounded to f16 between
# ops on both sides, in different places. The argmax must agree as well.
p.add_argument("--tol", type=float)
p.add_argument("--out")
p.add_argument("--device")
args = p.parse_args()
tol = args.tol if args.tol is not None else (2e-2 if args.precision == "f16" else 1e-3)
log = lambda m: print(f"ort: {m}", file=sys.stderr, flush=True)  # noqa: E731

result = {"precision": args.precision, "ep": args.ep, "model": args.model,
          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def flush():
    if not args.out:
        return
    d = {"peer": "onnxruntime-webgpu", "precisions": {}}
    if os.path.exists(args.out):
        with open(args.out) as f:
            d = json.load(f)
    if args.device:
        d["device"] = args.device
    d["precisions"][args.precision] = result
    with open(args.out, "w") as f:
        json.dump(d, f, indent=1)


def stats(xs):
    s = sorted(xs)
    return {"median": s[len(s) // 2], "min": s[0], "max": s[-1], "runs": xs}


def main():
    with open(os.path.join(args.model, "reference.json")) as f:
        ref = json.load(f)
    L, KVH, HD = ref["layers"], ref["kv_heads"], ref["head_dim"]
    vocab = len(ref["prefill_logits"])
    kv_dtype = np.float16 if args.precision == "f16" else np.float32
    past_names = [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")]

    api = Api(args.lib)
    result["onnxruntime"] = api.version
    result["exporter"] = ref.get("exporter")
    t0 = time.perf_counter()
    sess = Session(api, os.path.join(args.model, "model.onnx"), args.ep)
    result["sessionSeconds"] = time.perf_counter() - t0
    log(f"onnxruntime {api.version}, session on {args.ep} in {result['sessionSeconds']:.1f} s")
    missing = [n for n in ["input_ids", "attention_mask", "position_ids", *past_names] if n not in sess.inputs]
    if missing:
        raise RuntimeError(f"model.onnx has no input {missing[0]} (inputs: {', '.join(sess.inputs)})")
    device = set(present_names)

    def empty_past():
        z = np.zeros((1, KVH, 0, HD), kv_dtype)
        return [z] * len(past_names)

    def release(past):
        for v in past:
            if not isinstance(v, np.ndarray):
                api.release("Value", v)

    def step(ids, past, P):
        T = len(ids)
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, P + T), np.int64),
                 "position_ids": np.arange(P, P + T, dtype=np.int64)[None]}
        feeds.update(zip(past_names, past))
        host, dev = sess.run(feeds, device)
        return host["logits"].reshape(-1, host["logits"].shape[-1])[-1].astype(np.float32), \
            [dev[n] for n in present_names]

    # 1. check against PyTorch
    def compare(what, got, want):
        want = np.asarray(want, np.float32)
        d = float(np.abs(got - want).max())
        rel = d / float(np.abs(want).max())
        return {"what": what, "maxDiff": d, "relative": rel,
                "argmaxAgrees": bool(int(got.argmax()) == int(want.argmax()))}

    rows = []
    logits, past = step(ref["prompt"], empty_past(), 0)
    rows.append(compare(f"prefill {len(ref['prompt'])}", logits, ref["prefill_logits"]))
    P = len(ref["prompt"])
    for s in ref["steps"]:
        logits, new = step([s["token"]], past, P)
        release(past)
        past = new
        rows.append(compare(f"decode at {P}", logits, s["logits"]))
        P += 1
    release(past)
    worst = max(r["relative"] for r in rows)
    result["check"] = {"reference": f"PyTorch {ref['dtype']} on {ref.get('device', '?')}",
                       "tolerance": tol, "worstRelative": worst, "rows": rows}
    result["correct"] = worst <= tol and all(r["argmaxAgrees"] for r in rows)
    log(f"check vs PyTorch: worst max|diff|/max|logit| {worst:.2e} (tolerance {tol}) -> "
        f"{'ok' if result['correct'] else 'MISMATCH'}")
    for r in rows:
        log(f"  {r['what']}: max|diff| {r['maxDiff']:.2e}, relative {r['relative']:.2e}, argmax "
            f"{'agrees' if r['argmaxAgrees'] else 'DIFFERS'}")
    flush()

    # 2. prefill
    T = args.prefill
    if T > 0:
        ids = [(i * 7919) % vocab for i in range(T)]
        tps = []
        for r in range(args.reps + 1):
            a = time.perf_counter()
            _, pres = step(ids, empty_past(), 0)
            s = time.perf_counter() - a
            release(pres)
            if r == 0:
                log(f"prefill {T} warm-up: {s:.2f} s")  # shader compiles, buffer pools
            else:
                tps.append(T / s)
        result["prefill"] = {"tokens": T, "tokensPerSecond": stats(tps)}
        st = stats(tps)
        log(f"prefill {T}: {st['median']:.1f} tok/s (min {st['min']:.1f}, max {st['max']:.1f})")
        flush()

    # 3. decode
    N = args.decode

    def generate(n):
        past, tok = empty_past(), 1
        for P in range(n):
            logits, new = step([tok], past, P)
            release(past)
            past, tok = new, int(logits.argmax())
        release(past)

    if N > 0:
        # The warm-up goes the whole length: the EP builds some shaders per cache length.
        a = time.perf_counter()
        generate(N)
        log(f"decode warm-up ({N} steps): {time.perf_counter() - a:.2f} s")
        tps = []
        for _ in range(args.reps):
            a = time.perf_counter()
            generate(N)
            tps.append(N / (time.perf_counter() - a))
        st = stats(tps)
        result["decode"] = {"tokens": N, "tokensPerSecond": st, "msPerToken": 1000 / st["median"]}
        log(f"decode tg{N}: {st['median']:.1f} tok/s (min {st['min']:.1f}, max {st['max']:.1f})")
        flush()
    sess.close()


try:
    main()
except Exception as e:  # the failure goes into the results file, then fails the process
    result["error"] = f"{type(e).__name__}: {e}"[:400]
    flush()
    traceback.print_exc()
    log(f"FAILED: {result['error']}")
    sys.exit(1)
