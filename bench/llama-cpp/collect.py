#!/usr/bin/env python3
"""llama-bench's JSON lines (with run.sh's {"marker": true, ...} lines before each run) → one JSON
object for bench/report.ts: per backend and weight type, pp512 and tg128 tokens/s (llama-bench's
mean, its standard deviation, and the median of the per-repetition figures), or the error.
Usage: collect.py RESULTS.jsonl GGUF_DIR OUT.json [PREWARM_LOG]"""
import json, os, statistics, subprocess, sys
from datetime import datetime, timezone

res, gguf_dir, out = sys.argv[1:4]
prewarm = sys.argv[4] if len(sys.argv) > 4 else None
PRECISION = {"F32": "f32", "F16": "f16", "Q8_0": "q8", "Q4_0": "q4"}
rows, errors, build, cur = [], [], {}, {}
for line in open(res):
    line = line.strip()
    if not line.startswith("{"):
        continue
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("marker"):
        cur = d
        if d.get("error"):
            errors.append({"backend": d["backend"], "precision": PRECISION.get(d["type"], d["type"]), "error": d["error"]})
        continue
    samples = d.get("samples_ts") or [d["avg_ts"]]
    build = {"commit": d.get("build_commit"), "number": d.get("build_number"), "cpu": d.get("cpu_info"), "gpu": d.get("gpu_info")}
    rows.append({
        "backend": cur.get("backend"),
        "precision": PRECISION.get(cur.get("type"), cur.get("type")),
        "test": f"pp{d['n_prompt']}" if d.get("n_prompt") else f"tg{d['n_gen']}",
        "tokensPerSecond": statistics.median(samples),
        "meanTokensPerSecond": d["avg_ts"],
        "stddevTokensPerSecond": d["stddev_ts"],
        "reps": len(samples),
        "flashAttention": d.get("flash_attn"),
        "modelType": d.get("model_type"),
        "backends": d.get("backends"),
    })
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    gpu = None
files = {f: os.path.getsize(os.path.join(gguf_dir, f)) for f in sorted(os.listdir(gguf_dir))} if os.path.isdir(gguf_dir) else {}
pw = open(prewarm).read().strip().splitlines()[-1:] if prewarm and os.path.exists(prewarm) else []
json.dump({
    "date": datetime.now(timezone.utc).isoformat(),
    "device": gpu,
    "llamaCpp": {"via": "node-llama-cpp 3.21.1 prebuilt libraries, llama-bench built from its bundled source", **build},
    "args": f"-p 512 -n 128 -fa 1 -ngl 99 -r {os.environ.get('REPS', '20')}",
    "ggufFiles": files,
    "prewarm": pw,
    "rows": rows,
    "errors": errors,
}, open(out, "w"), indent=1)
print(f"collect: {len(rows)} rows, {len(errors)} errors -> {out}", file=sys.stderr)
