"""Peak GPU memory of GPTQ and AWQ checkpoints under transformers, with zero weights.

Runs on the GPU machine (torch with CUDA and transformers, as its image has them); nothing of
quantpick is imported there. The recipe, exactly:

1. gptqmodel 7.0.0 (the last release that takes torch 2.11 and transformers 5.17, what the
   device's image holds; 7.7.0 asks for torch >= 2.14.1) and optimum 2.3.0, which transformers
   5.17's GPTQ quantizer imports, plus the wheels they import that the machine lacks (device-smi,
   logbar, tokenicer, defuser, torchao, datasets, dill, multiprocess), installed with
   ``pip --target --no-deps``. PyPcre, which gptqmodel imports as a drop-in ``re``, cannot be built
   there (its sdist clones pcre2 from GitHub): ``measure`` writes a stand-in over the stdlib ``re``
   (``PCRE_SHIM``) and the JSON says so.
   gptqmodel's sdist is pure Python (its CUDA kernels are JIT-built on first use): it travels as
   its source tree.
2. Models: for each shape (public config.json hyper-parameters, ``llamacpp_calibrate.SHAPES``) a
   directory with config.json (a ``quantization_config`` as GPTQModel / AutoAWQ write it: 4 bits,
   group 128, sym, desc_act false) and one safetensors file whose header lists what those
   quantizers write per linear layer of every decoder block: GPTQ ``qweight`` int32
   [in/8, out], ``qzeros`` int32 [in/128, out/8], ``scales`` fp16 [in/128, out], ``g_idx`` int32
   [in]; AWQ ``qweight`` int32 [in, out/8], ``qzeros`` int32 [in/128, out/8], ``scales`` fp16
   [in/128, out]; embeddings, norms and lm_head in fp16. The data section is a sparse run of zeros:
   memory does not depend on weight values.
3. Runs, one process per row, as a user loads one: ``AutoModelForCausalLM.from_pretrained(dir,
   device_map="cuda", dtype=float16)`` with the kernel named by ``GPTQConfig(backend=...)`` /
   ``AwqConfig(backend=...)``, SDPA attention, batch 1, one un-chunked prefill of ctx - 8 random
   tokens then 8 generated (``generate``, greedy): the method of ../shared/gpu's transformers rows.
   Per row: the kernel class gptqmodel chose, torch's allocated bytes after the load, peak allocated
   and reserved, and nvidia-smi's used memory at the end minus what the idle GPU showed.

Usage (device):
    python3 quantized_calibrate.py measure --work DIR --out DIR --budget-s S [--only A,B]
        [--methods gptq:torch,gptq:triton,awq:torch] [--contexts 4096,16384]
Writes OUT/transformers_quantized_h200.json (rewritten after every row) and OUT/quantized.log.
Anywhere, with quantpick installed:
    .venv/bin/python benchmarks/quantized_calibrate.py compare [PATH]

Status (2026-12-02): the recipe runs end to end on a CPU (``--device cpu --only smoke``, torch
2.13 CPU, transformers 5.17, gptqmodel 7.6.0: the TorchLinear and AwqTorchLinear kernels load the
zero checkpoints and generate; a Qwen2.5-7B GPTQ checkpoint loads with no missing or unexpected
key). It has not run on the GPU: the session's device time was spent before it was written, so
there is no ``transformers_quantized_h200.json`` yet and the transformers profile's GPTQ/AWQ
kernel scratch stays unmeasured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from llamacpp_calibrate import SHAPES as REAL_SHAPES
from llamacpp_calibrate import hf_hyperparameters, smi_used_bytes

# a toy shape to check the recipe on a CPU before spending device time (--device cpu)
SHAPES = {
    **REAL_SHAPES,
    "smoke": (
        "llama",
        {"layers": 2, "hidden": 256, "heads": 4, "kv_heads": 2, "head_dim": 64, "ffn": 512}
        | {"vocab": 1000, "tied": False},
    ),
}

HERE = Path(__file__).resolve().parent
RESULT = HERE / "gpu" / "transformers_quantized_h200.json"
GROUP = 128
BITS = 4
PACK = 32 // BITS
ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
MIB = 1 << 20


def model_config(name: str, method: str) -> dict[str, object]:
    arch, p = SHAPES[name]
    quant: dict[str, object]
    if method == "gptq":
        quant = {
            "quant_method": "gptq",
            "bits": BITS,
            "group_size": GROUP,
            "desc_act": False,
            "sym": True,
            "checkpoint_format": "gptq",
        }
    else:
        quant = {
            "quant_method": "awq",
            "bits": BITS,
            "group_size": GROUP,
            "zero_point": True,
            "version": "gemm",
        }
    cfg: dict[str, object] = {
        "architectures": [ARCHS[arch]],
        "model_type": arch,
        **hf_hyperparameters(p),
        "tie_word_embeddings": bool(p["tied"]),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float16",
        "quantization_config": quant,
    }
    if arch == "qwen2":
        cfg["attention_bias"] = True
    return cfg


def linears(name: str) -> list[tuple[str, int, int, bool]]:
    """(module, in_features, out_features, bias) of every quantized linear layer."""
    arch, p = SHAPES[name]
    h, heads, kv, hd, ffn = p["hidden"], p["heads"], p["kv_heads"], p["head_dim"], p["ffn"]
    bias = arch == "qwen2"
    out = []
    for i in range(int(p["layers"])):
        pre = f"model.layers.{i}"
        out += [
            (f"{pre}.self_attn.q_proj", h, heads * hd, bias),
            (f"{pre}.self_attn.k_proj", h, kv * hd, bias),
            (f"{pre}.self_attn.v_proj", h, kv * hd, bias),
            (f"{pre}.self_attn.o_proj", heads * hd, h, False),
            (f"{pre}.mlp.gate_proj", h, ffn, False),
            (f"{pre}.mlp.up_proj", h, ffn, False),
            (f"{pre}.mlp.down_proj", ffn, h, False),
        ]
    return [(n, int(i), int(o), b) for n, i, o, b in out]


def tensors(name: str, method: str) -> list[tuple[str, tuple[int, ...], str]]:
    arch, p = SHAPES[name]
    h, vocab = int(p["hidden"]), int(p["vocab"])
    out: list[tuple[str, tuple[int, ...], str]] = [("model.embed_tokens.weight", (vocab, h), "F16")]
    if not p["tied"]:
        out.append(("lm_head.weight", (vocab, h), "F16"))
    out.append(("model.norm.weight", (h,), "F16"))
    for i in range(int(p["layers"])):
        for norm in ("input_layernorm", "post_attention_layernorm"):
            out.append((f"model.layers.{i}.{norm}.weight", (h,), "F16"))
        if arch == "qwen3":
            hd = int(p["head_dim"])
            out += [
                (f"model.layers.{i}.self_attn.q_norm.weight", (hd,), "F16"),
                (f"model.layers.{i}.self_attn.k_norm.weight", (hd,), "F16"),
            ]
    for module, fin, fout, bias in linears(name):
        if method == "gptq":
            out += [
                (f"{module}.qweight", (fin // PACK, fout), "I32"),
                (f"{module}.qzeros", (fin // GROUP, fout // PACK), "I32"),
                (f"{module}.scales", (fin // GROUP, fout), "F16"),
                (f"{module}.g_idx", (fin,), "I32"),
            ]
        else:
            out += [
                (f"{module}.qweight", (fin, fout // PACK), "I32"),
                (f"{module}.qzeros", (fin // GROUP, fout // PACK), "I32"),
                (f"{module}.scales", (fin // GROUP, fout), "F16"),
            ]
        if bias:
            out.append((f"{module}.bias", (fout,), "F16"))
    return out


def write_model(directory: Path, name: str, method: str) -> dict[str, int]:
    """config.json and a sparse zero-weight model.safetensors; returns its tensor bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model_config(name, method), indent=1))
    size = {"F16": 2, "I32": 4}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset, packed = 0, 0
    for tname, shape, dtype in tensors(name, method):
        n = size[dtype]
        for d in shape:
            n *= d
        header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
        packed += n if tname.endswith(("qweight", "qzeros", "scales", "g_idx")) else 0
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (directory / "model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)
    return {"tensor_bytes": offset, "quantized_bytes": packed}


PCRE_SHIM = '''"""The stdlib `re` under PyPcre's name, for gptqmodel's imports only
(compile, escape, split, Pattern, Flag.CASELESS/MULTILINE). Written by quantized_calibrate.py
where PyPcre is missing: its sdist clones pcre2 from GitHub to build, which the GPU machine
cannot reach, and a regex engine holds no GPU memory."""

import enum
import re
from re import Pattern, compile, escape, match, search, split, sub  # noqa: F401


class Flag(enum.IntFlag):
    CASELESS = re.IGNORECASE
    MULTILINE = re.MULTILINE
    DOTALL = re.DOTALL
    VERBOSE = re.VERBOSE
'''


def child_env(work: Path) -> dict[str, str]:
    """The children's environment: PyPcre's stand-in first on the path where PyPcre is missing."""
    import importlib.util
    import os

    env = dict(os.environ)
    if importlib.util.find_spec("pcre") is None:
        shim = work / "shim"
        (shim / "pcre").mkdir(parents=True, exist_ok=True)
        (shim / "pcre" / "__init__.py").write_text(PCRE_SHIM)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    return env


CHILD = r"""
import json, subprocess, sys, time
import torch
from transformers import AutoModelForCausalLM, AwqConfig, GPTQConfig
path, method, backend, idle = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
contexts = [int(c) for c in sys.argv[5].split(",")]
device = "cuda" if torch.cuda.is_available() else "cpu"
cfg = json.load(open(path + "/config.json"))["quantization_config"]
if method == "gptq":
    qc = GPTQConfig(bits=cfg["bits"], group_size=cfg["group_size"], desc_act=False, backend=backend)
else:
    qc = AwqConfig(bits=cfg["bits"], group_size=cfg["group_size"], backend=backend)
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(
    path, device_map=device, dtype=torch.float16, quantization_config=qc, attn_implementation="sdpa"
)
model.eval()
kernels = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
load_s = time.time() - t0
weights = 0
if device == "cuda":
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated()

def smi():
    return int(float(subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True).stdout.split()[0])) * (1 << 20) - idle

loaded = smi() if device == "cuda" else 0
# ascending contexts in one process: each row's peak is above every earlier one, and the
# allocator's cache is emptied between rows
for i, ctx in enumerate(contexts):
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    ids = torch.randint(3, model.config.vocab_size, (1, ctx - 8), device=device)
    t0 = time.time()
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    row = {"ctx": ctx, "fresh": i == 0, "kernels": kernels, "load_s": round(load_s, 1),
           "secs": round(time.time() - t0, 2), "weights_alloc": weights,
           "loaded_used_bytes": loaded}
    if device == "cuda":
        torch.cuda.synchronize()
        row.update(peak_alloc=torch.cuda.max_memory_allocated(),
                   peak_reserved=torch.cuda.max_memory_reserved(), used_bytes=smi())
    print("ROW " + json.dumps(row), flush=True)
    del out, ids
"""


def measure(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "quantized.log").open("a")
    result = out / "transformers_quantized_h200.json"
    deadline = time.monotonic() + args.budget_s
    idle = smi_used_bytes() if args.device == "cuda" else 0
    doc: dict[str, object] = {"idle_used_bytes": idle, "rows": []}
    try:
        import torch
        import transformers

        doc.update(torch=torch.__version__, transformers=transformers.__version__)
        from importlib.metadata import version

        doc.update(gptqmodel=version("gptqmodel"), optimum=version("optimum"))
        if torch.cuda.is_available():
            doc["device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    rows: list[dict[str, object]] = doc["rows"]  # type: ignore[assignment]
    env = child_env(args.work)
    doc["pcre"] = "stdlib shim" if "shim" in env.get("PYTHONPATH", "") else "PyPcre"
    for name in args.only.split(","):
        for spec in args.methods.split(","):
            method, backend = spec.split(":")
            model_dir = args.work / f"{name}-{method}"
            sizes = write_model(model_dir, name, method)
            base = {"model": name, "method": method, "backend": backend, **sizes}
            left = deadline - time.monotonic()
            if left < 30:
                print(f"budget spent before {name} {spec}", file=log, flush=True)
                continue
            cmd = [sys.executable, "-c", CHILD, str(model_dir), method, backend, str(idle)]
            try:
                r = subprocess.run(
                    [*cmd, args.contexts],
                    capture_output=True,
                    text=True,
                    timeout=left,
                    check=False,
                    env=env,
                )
                stdout, stderr, code = r.stdout, r.stderr, r.returncode
            except subprocess.TimeoutExpired as e:
                stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                stderr, code = f"timed out after {left:.0f} s", -1
            log.write(f"== {name} {spec} rc={code}\n{stderr[-6000:]}\n")
            log.flush()
            found = [json.loads(ln[4:]) for ln in stdout.splitlines() if ln.startswith("ROW ")]
            rows.extend({**base, "ok": True, **f} for f in found)
            if code != 0:
                rows.append({**base, "ok": False, "error": stderr[-1500:]})
            for f in rows[-max(1, len(found)) :]:
                print(json.dumps(f)[:400], flush=True)
            result.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def compare(path: Path) -> int:
    from quantpick.estimate.shape import shape_from_config
    from quantpick.estimate.vram import estimate_vram
    from quantpick.records import Format, Runtime, Source, Variant, VariantKind

    doc = json.loads(path.read_text())
    print(f"{doc.get('device')}, torch {doc.get('torch')}, transformers {doc.get('transformers')}")
    print(f"{'model':16} {'kernel':7} {'ctx':>6} {'measured':>9} {'predicted':>9} {'error':>7}")
    errors = []
    for row in doc["rows"]:
        if not row.get("ok"):
            err = str(row.get("error", "")).strip().splitlines()[-1:] or [""]
            print(f"{row['model']:16} {row['backend']:7} {row['ctx']:6}   failed: {err[0][:60]}")
            continue
        if "used_bytes" not in row:  # a --device cpu row: nothing on a GPU to compare
            continue
        shape = shape_from_config(model_config(row["model"], row["method"]))
        variant = Variant(
            name=row["model"],
            kind=VariantKind.BRANCH,
            format=Format.GPTQ if row["method"] == "gptq" else Format.AWQ,
            bits=BITS,
            group_size=GROUP,
            size_bytes=row["tensor_bytes"],
            size_source=Source.HUB,
        )
        est = estimate_vram(variant, shape, row["ctx"], runtime=Runtime.TRANSFORMERS)
        truth = row["used_bytes"]
        error = est.vram_bytes / truth - 1
        errors.append(error)
        print(
            f"{row['model']:16} {row['backend']:7} {row['ctx']:6} {truth / 2**30:8.2f}G"
            f" {est.vram_bytes / 2**30:8.2f}G {error:+7.1%}"
        )
    if errors:
        unders = [e for e in errors if e < 0]
        print(
            f"n={len(errors)}, median |error| {statistics.median(map(abs, errors)):.1%}, "
            f"worst {max(errors, key=abs):+.1%}, worst under {min(unders, default=0.0):+.1%}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--work", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--budget-s", type=float, default=500)
    m.add_argument("--only", default="Mistral-7B-v0.3,Qwen2.5-7B,Llama-2-13B,Qwen3-8B")
    m.add_argument("--methods", default="gptq:torch,gptq:triton,awq:torch_awq")
    m.add_argument("--contexts", default="4096,16384,32768")
    m.add_argument("--device", default="cuda")
    c = sub.add_parser("compare")
    c.add_argument("path", type=Path, nargs="?", default=RESULT)
    args = parser.parse_args()
    return measure(args) if args.cmd == "measure" else compare(args.path)


if __name__ == "__main__":
    sys.exit(main())
