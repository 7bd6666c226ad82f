"""Peak GPU memory of llama.cpp on real shapes with zero weights: ground truth for runtimes/.

Runs on the GPU machine (one NVIDIA GPU, CUDA toolkit, cmake, g++, Python 3 with numpy); nothing
of quantpick is imported there. The recipe, exactly:

1. Source: ``vendor/llama.cpp`` from the llama-cpp-python 0.3.36 sdist (PyPI), stripped to
   CMakeLists/cmake/include/src/vendor and ggml/ with only ggml-cpu and ggml-cuda; ``gguf-py`` from
   the same tree.
2. Build: ``cmake -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90-real -DLLAMA_CURL=OFF
   -DLLAMA_BUILD_COMMON=OFF ...`` and only the ``llama`` target; ``benchmarks/llamacpp_probe.cpp``
   linked against it.
3. Models: for each shape below (public config.json hyper-parameters) a GGUF whose header lists
   every tensor convert_hf_to_gguf.py writes, each with the type llama-quantize's Q4_K_M / Q8_0
   rules give it (llama-quant.cpp: attn_v and ffn_down at Q6_K on the use_more_bits layers, output
   at Q6_K, tied token embeddings at Q6_K), and whose data section is a sparse run of zeros
   (``truncate``). Memory does not depend on weight values, so this loads exactly like a published
   file of that shape.
4. Contexts: one sequence, n_batch 2048, n_ubatch 512 (common/common.h defaults: what llama-cli
   and llama-server run), swa_full off (also common's default), all layers on the GPU unless the
   plan says otherwise. Per context: device memory in use (cudaMemGetInfo) after
   llama_init_from_model,
   after the two-token warm-up llama-cli/llama-server run, and the peak over a decode that fills
   the whole context in n_batch chunks ("fill"), minus what the device had in use before the probe
   started (nvidia-smi).

Usage (device): python3 llamacpp_calibrate.py --llama-src DIR --gguf-py DIR --work DIR --out DIR
    [--budget-s SECONDS] [--only NAME,...] [--partial] [--partial-shapes NAME,...]
    [--long-fills NAME,...] [--skip NAME:QUANT] [--result-name FILE]

benchmarks/gpu/llamacpp_h200.json came from two calls on one warm H200 (2026-12-01):
    --budget-s 565 --partial   (built, then ran until the budget: everything but the last two
                                Q8_0 files and the partial rows, fills only for Llama-3-8B)
    --budget-s 540 --partial --long-fills '' --skip Llama-3-8B:Q4_K_M   (the rest, with fills)
and the "buffer size" lines of probe.log joined to each row (log_model/kv/compute_mib).
benchmarks/gpu/llamacpp_h200_partial.json: one call on a fresh H200 (2026-12-02), partial offload
of two shapes the +105 MiB partial term was not read off:
    --only Mistral-7B-v0.3,Qwen3-30B-A3B --quants Q4_K_M --partial
    --partial-shapes Mistral-7B-v0.3,Qwen3-30B-A3B
    --skip Mistral-7B-v0.3:Q4_K_M,Qwen3-30B-A3B:Q4_K_M    (no full-offload rows again)
Writes OUT/llamacpp_h200.json (one row per context, appended as it goes) and OUT/probe.log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# name -> (gguf arch, hyper-parameters as in the model's config.json)
SHAPES: dict[str, tuple[str, dict[str, int | bool]]] = {
    "Llama-3-8B": (
        "llama",
        {
            "layers": 32,
            "hidden": 4096,
            "heads": 32,
            "kv_heads": 8,
            "head_dim": 128,
            "ffn": 14336,
            "vocab": 128256,
            "tied": False,
        },
    ),
    "Mistral-7B-v0.3": (
        "llama",
        {
            "layers": 32,
            "hidden": 4096,
            "heads": 32,
            "kv_heads": 8,
            "head_dim": 128,
            "ffn": 14336,
            "vocab": 32768,
            "tied": False,
        },
    ),
    "Qwen2.5-7B": (
        "qwen2",
        {
            "layers": 28,
            "hidden": 3584,
            "heads": 28,
            "kv_heads": 4,
            "head_dim": 128,
            "ffn": 18944,
            "vocab": 152064,
            "tied": False,
        },
    ),
    "Gemma-2-9B": (
        "gemma2",
        {
            "layers": 42,
            "hidden": 3584,
            "heads": 16,
            "kv_heads": 8,
            "head_dim": 256,
            "ffn": 14336,
            "vocab": 256000,
            "tied": True,
            "window": 4096,
        },
    ),
    "Gemma-2-2B": (
        "gemma2",
        {
            "layers": 26,
            "hidden": 2304,
            "heads": 8,
            "kv_heads": 4,
            "head_dim": 256,
            "ffn": 9216,
            "vocab": 256000,
            "tied": True,
            "window": 4096,
        },
    ),
    "Qwen3-30B-A3B": (
        "qwen3moe",
        {
            "layers": 48,
            "hidden": 2048,
            "heads": 32,
            "kv_heads": 4,
            "head_dim": 128,
            "ffn": 768,
            "vocab": 151936,
            "tied": False,
            "experts": 128,
            "experts_used": 8,
        },
    ),
    "Llama-2-13B": (
        "llama",
        {
            "layers": 40,
            "hidden": 5120,
            "heads": 40,
            "kv_heads": 40,
            "head_dim": 128,
            "ffn": 13824,
            "vocab": 32000,
            "tied": False,
        },
    ),
    "Qwen3-8B": (
        "qwen3",
        {
            "layers": 36,
            "hidden": 4096,
            "heads": 32,
            "kv_heads": 8,
            "head_dim": 128,
            "ffn": 12288,
            "vocab": 151936,
            "tied": False,
        },
    ),
}
QUANTS = ("Q4_K_M", "Q8_0")
CONTEXTS = (4096, 16384, 32768, 65536, 131072)
# (flash_attn, type_k, type_v); q8_0 with flash attention off is tried once per file: llama.cpp
# must refuse it
MODES = ((1, "f16", "f16"), (0, "f16", "f16"), (1, "q8_0", "q8_0"))


def _use_more_bits(i: int, n: int) -> bool:
    # llama-quant.cpp use_more_bits
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensors(
    arch: str, p: dict[str, int | bool], quant: str
) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy-order shape, ggml type) for every tensor the arch loads."""
    h, L, v = int(p["hidden"]), int(p["layers"]), int(p["vocab"])
    q_dim, kv_dim = int(p["heads"]) * int(p["head_dim"]), int(p["kv_heads"]) * int(p["head_dim"])
    base = "Q4_K" if quant == "Q4_K_M" else "Q8_0"
    more = "Q6_K" if quant == "Q4_K_M" else "Q8_0"
    out: list[tuple[str, tuple[int, ...], str]] = []
    out.append(("token_embd.weight", (v, h), more if p["tied"] else base))
    out.append(("output_norm.weight", (h,), "F32"))
    if not p["tied"]:
        out.append(("output.weight", (v, h), more))
    experts = int(p.get("experts", 1))
    for i in range(L):
        b = f"blk.{i}."
        out.append((b + "attn_norm.weight", (h,), "F32"))
        out.append((b + "attn_q.weight", (q_dim, h), base))
        out.append((b + "attn_k.weight", (kv_dim, h), base))
        out.append((b + "attn_v.weight", (kv_dim, h), more if _use_more_bits(i, L) else base))
        out.append((b + "attn_output.weight", (h, q_dim), base))
        if arch == "qwen2":
            out += [
                (b + "attn_q.bias", (q_dim,), "F32"),
                (b + "attn_k.bias", (kv_dim,), "F32"),
                (b + "attn_v.bias", (kv_dim,), "F32"),
            ]
        if arch in ("qwen3", "qwen3moe"):
            out += [
                (b + "attn_q_norm.weight", (int(p["head_dim"]),), "F32"),
                (b + "attn_k_norm.weight", (int(p["head_dim"]),), "F32"),
            ]
        if arch == "gemma2":
            out.append((b + "post_attention_norm.weight", (h,), "F32"))
            out.append((b + "post_ffw_norm.weight", (h,), "F32"))
        out.append((b + "ffn_norm.weight", (h,), "F32"))
        f = int(p["ffn"])
        down = more if _use_more_bits(i, L) else base
        if experts > 1:
            out.append((b + "ffn_gate_inp.weight", (experts, h), "F32"))
            out.append((b + "ffn_gate_exps.weight", (experts, f, h), base))
            out.append((b + "ffn_up_exps.weight", (experts, f, h), base))
            out.append((b + "ffn_down_exps.weight", (experts, h, f), down))
        else:
            out.append((b + "ffn_gate.weight", (f, h), base))
            out.append((b + "ffn_up.weight", (f, h), base))
            out.append((b + "ffn_down.weight", (h, f), down))
    return out


def write_gguf(path: Path, name: str, quant: str) -> dict[str, int]:
    """A sparse zero-weight GGUF; returns its file size and the token-embedding bytes."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

    arch, p = SHAPES[name]
    w = GGUFWriter(path, arch)
    w.add_context_length(131072)
    w.add_embedding_length(int(p["hidden"]))
    w.add_block_count(int(p["layers"]))
    w.add_feed_forward_length(int(p["ffn"]))
    w.add_head_count(int(p["heads"]))
    w.add_head_count_kv(int(p["kv_heads"]))
    w.add_key_length(int(p["head_dim"]))
    w.add_value_length(int(p["head_dim"]))
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1e6)
    w.add_vocab_size(int(p["vocab"]))
    w.add_tokenizer_model("no_vocab")
    w.add_file_type(15 if quant == "Q4_K_M" else 7)  # LLAMA_FTYPE_MOSTLY_Q4_K_M / Q8_0
    if "experts" in p:
        w.add_expert_count(int(p["experts"]))
        w.add_expert_used_count(int(p["experts_used"]))
        w.add_expert_feed_forward_length(int(p["ffn"]))
    if "window" in p:
        w.add_sliding_window(int(p["window"]))
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    total, embd = 0, 0
    for tname, shape, tname_type in tensors(arch, p, quant):
        qtype = GGMLQuantizationType[tname_type]
        block, size = GGML_QUANT_SIZES[qtype]
        elements = int(np.prod(shape))
        nbytes = elements // block * size
        w.add_tensor_info(tname, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        total += GGUFWriter.ggml_pad(nbytes, w.data_alignment)
        if tname == "token_embd.weight":
            embd = nbytes
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    start = GGUFWriter.ggml_pad(fout.tell(), w.data_alignment)
    fout.truncate(start + total)
    w.close()
    return {"file_bytes": path.stat().st_size, "token_embd_bytes": embd, "tensor_bytes": total}


def hf_hyperparameters(p: dict[str, int | bool]) -> dict[str, object]:
    """The config.json hyper-parameters of a shape (SHAPES' second item) that every runtime's
    harness writes alike."""
    return {
        "hidden_size": p["hidden"],
        "num_attention_heads": p["heads"],
        "num_key_value_heads": p["kv_heads"],
        "head_dim": p["head_dim"],
        "intermediate_size": p["ffn"],
        "num_hidden_layers": p["layers"],
        "vocab_size": p["vocab"],
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 131072,
        "hidden_act": "silu",
    }


def smi_used_bytes() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[0]) << 20


def build(src: Path, build_dir: Path, log: Path) -> None:
    if (build_dir / "bin" / "libllama.so").exists():
        return
    with log.open("a") as fh:
        subprocess.run(
            [
                "cmake",
                "-S",
                str(src),
                "-B",
                str(build_dir),
                "-DGGML_CUDA=ON",
                "-DCMAKE_CUDA_ARCHITECTURES=90-real",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_COMMON=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_TOOLS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_SERVER=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DGGML_NATIVE=OFF",
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_OPENSSL=OFF",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=True,
        )
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--target", "llama", "-j", str(os.cpu_count())],
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=True,
        )


def compile_probe(src: Path, build_dir: Path, probe_src: Path) -> Path:
    exe = build_dir / "bin" / "llamacpp_probe"
    cuda = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    subprocess.run(
        [
            "g++",
            "-O2",
            "-std=c++17",
            str(probe_src),
            "-o",
            str(exe),
            f"-I{src}/include",
            f"-I{src}/ggml/include",
            f"-I{cuda}/include",
            f"-L{build_dir}/bin",
            "-lllama",
            f"-Wl,-rpath,{build_dir}/bin",
            f"-L{cuda}/lib64",
            "-lcudart",
        ],
        check=True,
    )
    return exe


def plan_for(
    name: str, quant: str, long_fills: tuple[str, ...]
) -> list[tuple[int, int, str, str, int, int, int]]:
    """Every context of one file. Fills (slow at long contexts without flash attention) on Q4_K_M
    only, at 4k and 32k for every shape and at 128k for two."""
    rows = []
    for n_ctx in CONTEXTS:
        if name == "Llama-2-13B" and n_ctx > 65536:
            continue  # 40 full KV heads: 100 GiB of f16 cache at 128k
        for fa, tk, tv in MODES:
            fill = quant == "Q4_K_M" and (
                n_ctx in (4096, 32768) or (n_ctx == 131072 and name in long_fills)
            )
            rows.append((n_ctx, fa, tk, tv, int(fill), 2048, 512))
    rows.append((8192, 0, "q8_0", "q8_0", 0, 2048, 512))  # must be refused
    rows.append((8192, 1, "f16", "f16", 0, 2048, 2048))  # n_ubatch 2048: the buffers scale with it
    rows.append((8192, 0, "f16", "f16", 0, 2048, 2048))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-src", type=Path, required=True)
    ap.add_argument("--gguf-py", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=540.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--quants", default=",".join(QUANTS))
    ap.add_argument("--result-name", default="llamacpp_h200.json")
    ap.add_argument("--partial", action="store_true", help="also -ngl L/4, L/2, 3L/4 (Q4_K_M)")
    ap.add_argument("--partial-shapes", default="Llama-3-8B", help="the shapes --partial runs")
    ap.add_argument("--long-fills", default="Llama-3-8B", help="shapes filled at 128k too")
    ap.add_argument("--skip", default="", help="NAME:QUANT,... already measured")
    args = ap.parse_args()
    start = time.monotonic()
    sys.path.insert(0, str(args.gguf_py))
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "probe.log"
    build_dir = args.work / "build"
    errors: list[BaseException] = []

    def run_build() -> None:
        try:
            build(args.llama_src, build_dir, log)
        except BaseException as exc:
            errors.append(exc)

    builder = threading.Thread(target=run_build)
    builder.start()
    names = [n for n in SHAPES if not args.only or n in args.only.split(",")]
    files: dict[tuple[str, str], dict[str, int]] = {}
    quants = args.quants.split(",")
    for quant in quants:
        for name in names:
            path = args.work / f"{name}-{quant}.gguf"
            files[(name, quant)] = write_gguf(path, name, quant)
    builder.join()
    if errors:
        print(log.read_text()[-4000:])
        raise errors[0]
    probe = compile_probe(args.llama_src, build_dir, Path(__file__).with_name("llamacpp_probe.cpp"))
    print(f"built in {time.monotonic() - start:.0f} s", flush=True)
    idle = smi_used_bytes()
    result_path = args.out / args.result_name
    rows: list[dict[str, object]] = []
    skip = {tuple(item.split(":")) for item in args.skip.split(",") if item}
    jobs = [(n, q, 999) for q in quants for n in names if (n, q) not in skip]
    if args.partial:
        for n in args.partial_shapes.split(","):
            layers = int(SHAPES[n][1]["layers"])
            jobs += [(n, "Q4_K_M", ngl) for ngl in (layers // 4, layers // 2, 3 * layers // 4)]
    for name, quant, ngl in jobs:
        left = args.budget_s - (time.monotonic() - start)
        if left < 20:
            print(f"budget spent; skipped {name} {quant} ngl {ngl}", flush=True)
            continue
        plan = (
            plan_for(name, quant, tuple(args.long_fills.split(",")))
            if ngl == 999
            else [
                (8192, 1, "f16", "f16", 1, 2048, 512),
                (32768, 1, "f16", "f16", 0, 2048, 512),
                (32768, 0, "f16", "f16", 0, 2048, 512),
            ]
        )
        if left < 120:  # short of time: no fills
            plan = [(*row[:4], 0, *row[5:]) for row in plan]
        plan_file = args.work / "plan.txt"
        plan_file.write_text("".join(" ".join(map(str, row)) + "\n" for row in plan))
        with log.open("a") as fh:
            fh.write(f"=== {name} {quant} ngl {ngl}\n")
            fh.flush()
            try:
                proc = subprocess.run(
                    [str(probe), str(args.work / f"{name}-{quant}.gguf"), str(ngl), str(plan_file)],
                    stdout=subprocess.PIPE,
                    stderr=fh,
                    text=True,
                    timeout=max(left - 10, 10),
                )
                lines = proc.stdout.splitlines()
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout or b""
                lines = (out.decode() if isinstance(out, bytes) else out).splitlines()
        arch, shape = SHAPES[name]
        load: dict[str, object] = {}
        for line in lines:
            record = json.loads(line)
            if record.get("event") == "load":
                load = record
                continue
            row = {
                "model": name,
                "arch": arch,
                "quant": quant,
                "n_gpu_layers": ngl,
                **shape,
                **files[(name, quant)],
                "idle_used_bytes": idle,
                "cuda_context_bytes": int(load.get("used_context", 0)) - idle,
                "after_load_bytes": int(load.get("used_model", 0)) - idle,
                **record,
            }
            for key in ("used_init", "used_warm", "used_peak"):
                if key in row:
                    row[key.replace("used_", "") + "_bytes"] = int(row.pop(key)) - idle  # type: ignore[arg-type]
            rows.append(row)
        result_path.write_text(json.dumps(rows, indent=1))
        print(
            f"{name} {quant} ngl {ngl}: {len(lines)} lines, {time.monotonic() - start:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
