"""Loads each config.json that `strata export --hf` wrote with transformers, as a training or
serving stack would, and checks that transformers reads what strata meant.

For every DIR/<name>/config.json (tools/export/write-configs.ts writes them, each beside a
strata.json with the model type and strata's parameter count):
  1. AutoConfig.from_pretrained loads it, as the model type strata chose;
  2. every key strata wrote reads back as the same value (a key transformers renames,
     recomputes or drops shows up here), except those it is known to re-spell;
  3. AutoModelForCausalLM.from_config builds the model on the meta device (no memory), and its
     parameter count (with persistent buffers) equals strata's (tied embeddings counted once).

    npx tsx tools/export/write-configs.ts /tmp/hfx && python3 tools/export/check_hf_configs.py /tmp/hfx

Needs transformers 5 and torch; strata's tests do not run it.
"""
import json
import math
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

# Keys transformers keeps under another attribute or in another form on the config object.
RESPELLED = {"architectures", "dtype", "model_type", "rope_parameters", "layer_types",
             "layers_block_type", "time_step_limit", "num_local_experts", "num_experts"}


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and (
            a == b or (math.isinf(a) and math.isinf(b)) or abs(a - b) <= 1e-12 * max(abs(a), abs(b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check(folder: Path) -> list:
    written = json.loads((folder / "config.json").read_text())
    expect = json.loads((folder / "strata.json").read_text())
    problems = []
    cfg = AutoConfig.from_pretrained(folder)
    if cfg.model_type != expect["modelType"]:
        problems.append(f"model_type {cfg.model_type}, strata wrote {expect['modelType']}")
    for key, value in written.items():
        if key in RESPELLED:
            continue
        if isinstance(value, dict) and list(value) == ["__float__"]:
            continue
        if not hasattr(cfg, key):
            problems.append(f"{key}: not an attribute of {type(cfg).__name__}")
        elif not same(getattr(cfg, key), value):
            problems.append(f"{key}: reads {getattr(cfg, key)!r}, strata wrote {value!r}")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    # Persistent buffers are checkpoint tensors too (DeepSeek-V3's and Nemotron-H's
    # e_score_correction_bias is a buffer in transformers, a parameter in strata).
    saved = model.state_dict()
    params = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if name in saved)
    if params != expect["params"]:
        problems.append(f"{params:,} parameters, strata counts {expect['params']:,}")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hfx")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failed = 0
    for folder in sorted(p for p in root.iterdir() if (p / "config.json").exists()):
        try:
            problems = check(folder)
        except Exception as e:  # a config transformers cannot load is what this looks for
            problems = [f"{type(e).__name__}: {e}"]
        status = "ok" if not problems else "FAIL"
        print(f"{folder.name:32} {status}")
        for p in problems:
            print(f"    {p}")
        failed += bool(problems)
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
