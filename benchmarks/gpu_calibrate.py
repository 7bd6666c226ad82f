"""Held-out GPU check of the transformers VRAM profile: measure shapes the estimator never saw.

    # on a GPU machine with torch + transformers (never in CI):
    python3 benchmarks/gpu_calibrate.py measure   # writes benchmarks/gpu/..._heldout.json
    # anywhere, with quantpick installed:
    .venv/bin/python benchmarks/gpu_calibrate.py compare   # reads that file

`measure` repeats the method of ../shared/gpu/ (random fp16 weights built from public config.json
hyper-parameters, SDPA, batch 1, one un-chunked prefill of ctx-8 tokens then 8 generated tokens,
each run in a fresh process) on shapes and contexts that are NOT in that file, whose 12 rows the
transformers constants in estimate/formula.py were fitted on. `compare` predicts each row
with `quantpick.estimate.vram` (weights from the measured weight bytes, as a Hub listing would give
them) and prints the error against nvidia-smi's total: a held-out test, not a fit residual.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs"
MIB = 1 << 20
# (config, context) pairs absent from ../shared/gpu/transformers_fp16_h100.json
PLAN = [
    ("qwen2.5-7b", 2048),
    ("qwen2.5-7b", 8192),
    ("qwen2.5-7b", 24576),
    ("llama-3.2-3b", 4096),
    ("llama-3.2-3b", 12288),
    ("llama-3.2-3b", 32768),
    ("phi-3-mini-4k", 2048),
    ("phi-3-mini-4k", 4096),
]

CHILD = r"""
import json, subprocess, sys, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM
name, ctx, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
raw = json.load(open(path))
cfg = AutoConfig.for_model(**raw)
cfg._attn_implementation = "sdpa"
torch.manual_seed(0)
with torch.device("cuda"):
    try:
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    except TypeError:
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float16)
model.eval()
torch.cuda.synchronize()
weights = torch.cuda.memory_allocated()
torch.cuda.reset_peak_memory_stats()
ids = torch.randint(0, cfg.vocab_size, (1, ctx - 8), device="cuda")
t0 = time.time()
with torch.no_grad():
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
torch.cuda.synchronize()
smi = subprocess.run(
    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
    capture_output=True, text=True, check=True,
).stdout.split()[0]
print(json.dumps({
    "model": name, "ctx": ctx, "ok": True,
    "params": sum(p.numel() for p in model.parameters()),
    "weights_bytes": weights,
    "peak_alloc": torch.cuda.max_memory_allocated(),
    "peak_reserved": torch.cuda.max_memory_reserved(),
    "smi_used_mib": float(smi), "secs": round(time.time() - t0, 2),
}))
"""


def measure(out: Path) -> int:
    import torch  # only on the GPU machine

    rows = []
    for name, ctx in PLAN:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, name, str(ctx), str(CONFIGS / f"{name}.json")],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            rows.append({"model": name, "ctx": ctx, "ok": False, "error": r.stderr[-2000:]})
        else:
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1])[:300], flush=True)
    import transformers

    doc = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "method": "see benchmarks/gpu_calibrate.py",
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def compare(path: Path) -> int:
    from quantpick.estimate.shape import shape_from_config
    from quantpick.estimate.vram import estimate_vram
    from quantpick.records import Format, Runtime, Source, Variant, VariantKind

    doc = json.loads(path.read_text())
    print(f"{doc['device']}, torch {doc['torch']}, transformers {doc['transformers']}")
    print(f"{'model':15} {'ctx':>6} {'measured':>10} {'predicted':>10} {'error':>7}")
    errors = []
    for row in doc["rows"]:
        if not row.get("ok"):
            print(f"{row['model']:15} {row['ctx']:6}   failed: {row.get('error', '')[-120:]}")
            continue
        shape = shape_from_config(json.loads((CONFIGS / f"{row['model']}.json").read_text()))
        variant = Variant(
            name=row["model"],
            kind=VariantKind.BRANCH,
            format=Format.OTHER,
            size_bytes=row["weights_bytes"],
            size_source=Source.HUB,
        )
        est = estimate_vram(variant, shape, row["ctx"], runtime=Runtime.TRANSFORMERS)
        truth = row["smi_used_mib"] * MIB
        error = est.vram_bytes / truth - 1
        errors.append(error)
        print(
            f"{row['model']:15} {row['ctx']:6} {truth / 2**30:9.2f}G {est.vram_bytes / 2**30:9.2f}G"
            f" {error:+7.1%}"
        )
    if errors:
        unders = [e for e in errors if e < 0]
        print(
            f"held out: n={len(errors)}, median |error| {statistics.median(map(abs, errors)):.1%}, "
            f"worst {max(errors, key=abs):+.1%}, under-estimates {len(unders)}, "
            f"worst under {min(unders, default=0.0):+.1%}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", type=Path, default=HERE / "gpu" / "transformers_fp16_heldout.json")
    c = sub.add_parser("compare")
    c.add_argument(
        "path", type=Path, nargs="?", default=HERE / "gpu" / "transformers_fp16_heldout.json"
    )
    args = parser.parse_args()
    return measure(args.out) if args.cmd == "measure" else compare(args.path)


if __name__ == "__main__":
    sys.exit(main())
