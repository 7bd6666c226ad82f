"""Peak GPU memory of exllamav3 on real shapes with zero weights: ground truth for runtimes/.

Runs on the GPU machine (one NVIDIA GPU, torch with CUDA, nvcc, ninja); nothing of quantpick is
imported there. The recipe, exactly:

1. exllamav3 1.6.5 (PyPI, a py3-none wheel that JIT-builds its extension on first import) and the
   wheels it imports that the machine lacks (marisa_trie, pydantic and its parts, typing_extensions)
   installed with ``pip --target``; llguidance/formatron are optional there and left out.
2. Build: ``TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=<cores>``. To fit one device call, the trellis kernel
   instantiations are restricted to the bitrates measured (``restrict_bitrates``): in every source
   under ``exllamav3_ext/quant/comp_units`` for another bitrate (or a half-integer one) the kernel
   template names are redefined to a null pointer after the includes, so the same symbols exist and
   hold nullptr (the dispatchers already skip null kernels). No allocation, buffer size or code path
   of the kept bitrates changes: memory behaviour is the same as the full build's.
3. Models: for each shape (public config.json hyper-parameters, ``llamacpp_calibrate.SHAPES``) a
   directory with config.json (+ an exl3 ``quantization_config``), a WordLevel tokenizer.json of the
   full vocabulary, and one safetensors file whose header lists what exllamav3's converter writes:
   per linear layer ``trellis`` (int16, [in/16, out/16, 16*K] for K bits), ``suh`` [in] and ``svh``
   [out] (fp16), ``bias`` where the model has one; the embedding table, norms and the MoE router in
   fp16. The data section is a sparse run of zeros: memory does not depend on weight values.
   Layers at 4 bits, lm_head at 6 (the converter's default head_bits), codebook 3INST (no mcg/mul1
   marker).
4. Runs, one process per shape, as TabbyAPI drives exllamav3: ``Cache(model, max_num_tokens=ctx,
   layer_type=CacheLayer_fp16 | CacheLayer_quant(k_bits, v_bits))``, ``model.load()`` (auto split on
   the one GPU), ``Generator(model, cache, tokenizer, max_chunk_size=2048)`` and one job of
   ctx - 32 prompt tokens plus 16 new ones (the context filled; greedy). Per row the device memory
   in use (cudaMemGetInfo) after the load and after every ``iterate()``, torch's peak reserved bytes
   and what the process holds outside torch's allocator, minus what the idle GPU showed
   (nvidia-smi before the first process). Several rows share one process (unload, free, empty the
   allocator's cache between them); ``fresh`` marks the first of each process.

Usage (device):
    python3 exl3_calibrate.py measure --site DIR --work DIR --out DIR --budget-s S [--only A,B]
        [--bits 4] [--contexts 4096,...] [--caches fp16,8:8,4:4] [--prebuilt DIR] [--result-name F]
Writes OUT/exllamav3_h200.json (rows, rewritten as they come), OUT/exl3.log and the built
extension in 15 MiB parts (a later call on a fresh machine carries it: --prebuilt).

benchmarks/gpu/exllamav3_h200.json came from two calls on one warm H200 (2026-12-02):
    measure --budget-s 550          (build, then rows until the budget)
    measure --budget-s 310          (the rest: Qwen3-30B-A3B's last rows, Llama-2-13B)
and exllamav3_h200_extra.json from one call on a fresh machine with --prebuilt:
    --bits 6 --only Mistral-7B-v0.3,Qwen3-8B --contexts 4096,32768
    --only Llama-3-8B,Qwen3-8B --contexts 131072         (budget ran out after Qwen3-8B fp16)
    --only Mistral-7B-v0.3,Qwen3-8B,Llama-2-13B --contexts 16384,65536 --caches 6:6
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from llamacpp_calibrate import SHAPES, hf_hyperparameters, smi_used_bytes

BITS = 4
HEAD_BITS = 6
KEEP_BITRATES = (BITS, HEAD_BITS)
# mul1, the converter's default codebook (convert.py -cb): cb index 2 in the kernels, marked per
# linear by an int32 scalar `.mul1` holding the multiplier the loader checks
CODEBOOK = 2
MUL1 = 0x83DCD12D
CHUNK = 2048
NEW_TOKENS = 16
PROMPT_SLACK = 32
CONTEXTS = (4096, 16384, 32768, 65536)
# None = CacheLayer_fp16; (k_bits, v_bits) = CacheLayer_quant (TabbyAPI cache_mode Q8/Q6/Q4)
CACHES: tuple[tuple[int, int] | None, ...] = (None, (8, 8), (4, 4))
ORDER = ("Llama-3-8B", "Mistral-7B-v0.3", "Qwen2.5-7B", "Qwen3-8B", "Qwen3-30B-A3B", "Llama-2-13B")
ARCHS = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3moe": "Qwen3MoeForCausalLM",
}
KERNEL_TEMPLATES = (
    "exl3_gemm_kernel",
    "exl3_mgemm_kernel",
    "exl3_moe_kernel",
    "exl3_moe_coop_a_kernel",
    "exl3_moe_coop_b_kernel",
    "exl3_gemv_kernel",
    "exl3_gemv_int8_coop_kernel",
    "exl3_gemv_int8_sq_kernel",
    "quantize_tiles_kernel",
    "quantize_tiles_optimized_kernel",
    "quantize_tiles_frac_kernel",
)


# --- build ----------------------------------------------------------------------------------------


def keep_unit(name: str, keep: tuple[int, ...], codebook: int) -> bool:
    """Whether a comp unit instantiates kernels a model of these bitrates and codebook runs."""
    if "quantize_tiles" in name:
        return False  # the converter's quantizer: never run at inference
    if re.search(r"_h\d|half|frac", name):
        return False  # half-integer bitrates
    cb = re.search(r"cb(\d)", name)
    if cb and int(cb.group(1)) != codebook:
        return False
    bits = re.search(r"comp_unit_(\d)_cb|_k(\d)", name)
    if not bits:
        return True
    k = int(next(g for g in bits.groups() if g is not None))
    return k == 0 or k in keep  # k0: the MoE kernels that take the bitrate at run time


def restrict_bitrates(ext_dir: Path, keep: tuple[int, ...], codebook: int) -> list[str]:
    """Null the kernel instantiations of other bitrates (same symbols, nullptr values)."""
    nulled = []
    null = [
        "",
        "#include <cstddef>",
        "template <auto... A> constexpr std::nullptr_t exl3_null_inst = nullptr;",
    ]
    null += [f"#define {t} exl3_null_inst" for t in KERNEL_TEMPLATES]
    for src in sorted((ext_dir / "quant" / "comp_units").glob("*.cu")):
        if keep_unit(src.name, keep, codebook):
            continue
        lines = src.read_text().splitlines()
        if any("exl3_null_inst" in line for line in lines):
            nulled.append(src.name)
            continue
        last = max(i for i, line in enumerate(lines) if line.startswith("#include"))
        src.write_text("\n".join(lines[: last + 1] + null + lines[last + 1 :]) + "\n")
        nulled.append(src.name)
    return nulled


# --- model ----------------------------------------------------------------------------------------


def exl3_tensors(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    arch, p = SHAPES[name]
    h, L, v = int(p["hidden"]), int(p["layers"]), int(p["vocab"])
    hd = int(p["head_dim"])
    q_dim, kv_dim, f = int(p["heads"]) * hd, int(p["kv_heads"]) * hd, int(p["ffn"])

    def linear(key: str, n_in: int, n_out: int, k: int) -> list[tuple[str, tuple[int, ...], str]]:
        return [
            (f"{key}.trellis", (n_in // 16, n_out // 16, 16 * k), "I16"),
            (f"{key}.suh", (n_in,), "F16"),
            (f"{key}.svh", (n_out,), "F16"),
            (f"{key}.mul1", (), "I32"),
        ]

    out = [("model.embed_tokens.weight", (v, h), "F16"), ("model.norm.weight", (h,), "F16")]
    out += linear("lm_head", h, v, HEAD_BITS)
    for i in range(L):
        b = f"model.layers.{i}."
        out += [(b + "input_layernorm.weight", (h,), "F16")]
        out += [(b + "post_attention_layernorm.weight", (h,), "F16")]
        a = b + "self_attn."
        out += linear(a + "q_proj", h, q_dim, BITS) + linear(a + "k_proj", h, kv_dim, BITS)
        out += linear(a + "v_proj", h, kv_dim, BITS) + linear(a + "o_proj", q_dim, h, BITS)
        if arch == "qwen2":
            out += [
                (a + f"{x}_proj.bias", (d,), "F16")
                for x, d in (("q", q_dim), ("k", kv_dim), ("v", kv_dim))
            ]
        if arch in ("qwen3", "qwen3moe"):
            out += [(a + "q_norm.weight", (hd,), "F16"), (a + "k_norm.weight", (hd,), "F16")]
        if "experts" in p:
            out += [(b + "mlp.gate.weight", (int(p["experts"]), h), "F16")]
            for e in range(int(p["experts"])):
                x = f"{b}mlp.experts.{e}."
                out += linear(x + "gate_proj", h, f, BITS) + linear(x + "up_proj", h, f, BITS)
                out += linear(x + "down_proj", f, h, BITS)
        else:
            m = b + "mlp."
            out += linear(m + "gate_proj", h, f, BITS) + linear(m + "up_proj", h, f, BITS)
            out += linear(m + "down_proj", f, h, BITS)
    return out


def model_config(name: str) -> dict[str, object]:
    arch, p = SHAPES[name]
    cfg: dict[str, object] = {
        "architectures": [ARCHS[arch]],
        **hf_hyperparameters(p),
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "exl3",
            "version": "1.6.5",
            "bits": float(BITS),
            "head_bits": HEAD_BITS,
        },
    }
    if "experts" in p:
        cfg.update(
            num_experts=p["experts"],
            num_experts_per_tok=p["experts_used"],
            moe_intermediate_size=p["ffn"],
            norm_topk_prob=True,
            decoder_sparse_step=1,
            mlp_only_layers=[],
        )
    return cfg


def write_model(directory: Path, name: str) -> dict[str, int]:
    """config.json, tokenizer.json and a sparse zero-weight model.safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model_config(name), indent=1))
    vocab = int(SHAPES[name][1]["vocab"])
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "WordLevel",
            "vocab": {f"t{i}": i for i in range(vocab)},
            "unk_token": "t0",
        },
    }
    (directory / "tokenizer.json").write_text(json.dumps(tok))
    size = {"F16": 2, "I16": 2, "I32": 4}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset, trellis = 0, 0
    # the codebook markers first: the only bytes that are not zero
    listed = sorted(exl3_tensors(name), key=lambda t: not t[0].endswith(".mul1"))
    markers = sum(1 for t in listed if t[0].endswith(".mul1"))
    for tname, shape, dtype in listed:
        n = size[dtype]
        for d in shape:
            n *= d
        header[tname] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
        trellis += n if tname.endswith(".trellis") else 0
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path = directory / "model.safetensors"
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.write(struct.pack("<I", MUL1) * markers)
        fh.truncate(8 + len(raw) + offset)
    return {"tensor_bytes": offset, "trellis_bytes": trellis}


# --- one process per shape ------------------------------------------------------------


def child(
    model_dir: Path, plan: list[list[object]], idle: int, deadline: float, rows_path: Path
) -> None:
    import gc

    import torch
    from exllamav3 import (
        Cache,
        CacheLayer_fp16,
        CacheLayer_quant,
        Config,
        Generator,
        Job,
        Model,
        Tokenizer,
    )

    def used() -> int:
        free, total = torch.cuda.mem_get_info(0)
        return total - free - idle

    torch.zeros(
        1, device="cuda:0"
    )  # the CUDA context first: every row counts it, as a user sees it
    import exllamav3.version

    print(
        "torch",
        torch.__version__,
        "exllamav3",
        exllamav3.version.__version__,
        torch.cuda.get_device_name(0),
        flush=True,
    )
    config = Config.from_directory(str(model_dir))
    model = Model.from_config(config)
    tokenizer = None
    try:
        tokenizer = Tokenizer.from_config(config)
    except Exception as exc:  # the generator path then falls back to plain forward passes
        print(f"tokenizer failed: {exc!r}", flush=True)
    fresh = True
    for ctx, kv in plan:
        if time.time() > deadline:
            print(f"deadline: skipped {ctx} {kv}", flush=True)
            continue
        t0 = time.time()
        row: dict[str, object] = {"ctx": ctx, "cache": kv, "chunk": CHUNK, "fresh": fresh}
        fresh = False
        try:
            if kv is None:
                cache = Cache(model, max_num_tokens=ctx, layer_type=CacheLayer_fp16)
            else:
                cache = Cache(
                    model,
                    max_num_tokens=ctx,
                    layer_type=CacheLayer_quant,
                    k_bits=kv[0],
                    v_bits=kv[1],
                )
            torch.cuda.reset_peak_memory_stats(0)
            row["before_load_bytes"] = used()
            model.load(progressbar=False)
            torch.cuda.synchronize()
            row["after_load_bytes"] = used()
            row["after_load_allocated"] = torch.cuda.memory_allocated(0)
            row["cache_storage_bytes"] = int(
                sum(int(layer.storage_size()) for layer in cache.layers.values())
            )
            peak = int(row["after_load_bytes"])  # type: ignore[arg-type]
            ids = torch.zeros((1, ctx - PROMPT_SLACK), dtype=torch.long)
            path = "generator"
            try:
                if tokenizer is None:
                    raise RuntimeError("no tokenizer")
                gen = Generator(model=model, cache=cache, tokenizer=tokenizer, max_chunk_size=CHUNK)
                job = Job(input_ids=ids, max_new_tokens=NEW_TOKENS, stop_conditions=[])
                gen.enqueue(job)
                steps = 0
                while gen.num_remaining_jobs():
                    gen.iterate()
                    torch.cuda.synchronize()
                    peak = max(peak, used())
                    steps += 1
                row["iterations"] = steps
                del gen, job
            except Exception as exc:
                row["generator_error"] = repr(exc)[:400]
                path = "forward"
                params: dict[str, object]
                for pos in range(0, ids.shape[1] - 1, CHUNK):
                    part = ids[:, pos : min(pos + CHUNK, ids.shape[1] - 1)]
                    params = {
                        "attn_mode": "flash_attn",
                        "cache": cache,
                        "past_len": pos,
                        "batch_shape": (1, ctx),
                    }
                    model.prefill(part, params)
                    torch.cuda.synchronize()
                    peak = max(peak, used())
                for step in range(NEW_TOKENS + 1):
                    pos = ids.shape[1] - 1 + step
                    params = {
                        "attn_mode": "flash_attn",
                        "cache": cache,
                        "past_len": pos,
                        "batch_shape": (1, ctx),
                    }
                    model.forward(ids[:, :1], params)
                    torch.cuda.synchronize()
                    peak = max(peak, used())
            row["path"] = path
            row["peak_sampled_bytes"] = peak
            row["torch_max_reserved"] = torch.cuda.max_memory_reserved(0)
            row["torch_max_allocated"] = torch.cuda.max_memory_allocated(0)
            row["torch_reserved_end"] = torch.cuda.memory_reserved(0)
            row["used_end_bytes"] = used()
            outside = int(row["used_end_bytes"]) - int(row["torch_reserved_end"])  # type: ignore[arg-type]
            row["outside_torch_bytes"] = outside
            row["peak_bytes"] = max(peak, int(row["torch_max_reserved"]) + outside)  # type: ignore[arg-type]
        except Exception as exc:
            row["error"] = repr(exc)[:600]
        finally:
            try:
                model.unload()
                cache.detach_from_model()
                del cache
            except Exception as exc:
                row.setdefault("unload_error", repr(exc)[:300])
            gc.collect()
            torch.cuda.empty_cache()
        row["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(row), flush=True)
        with rows_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


# --- orchestration --------------------------------------------------------------------------------


def build(site: Path, work: Path, log: Path) -> dict[str, object]:
    env = dict(os.environ)
    env.update(
        TORCH_CUDA_ARCH_LIST="9.0",
        MAX_JOBS=str(os.cpu_count() or 16),
        TORCH_EXTENSIONS_DIR=str(work / "ext"),
        PYTHONPATH=f"{site}:{env.get('PYTHONPATH', '')}",
    )
    t0 = time.time()
    with log.open("a") as fh:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import exllamav3.ext as e; print('ext', e.exllamav3_ext.__file__)",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return {"build_seconds": round(time.time() - t0, 1), "build_rc": proc.returncode}


def main() -> int:
    global BITS
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--site", type=Path, required=True)
    m.add_argument("--work", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--budget-s", type=float, default=560.0)
    m.add_argument("--only", default="")
    m.add_argument("--no-restrict", action="store_true")
    m.add_argument("--prebuilt", type=Path, help="a folder holding a built exllamav3_ext*.so")
    m.add_argument("--bits", type=int, default=BITS, help="bitrate of the decoder layers")
    m.add_argument("--contexts", default=",".join(map(str, CONTEXTS)))
    m.add_argument("--caches", default="fp16,8:8,4:4", help="fp16 or K:V bits, comma-separated")
    m.add_argument("--result-name", default="exllamav3_h200.json")
    c = sub.add_parser("child")
    c.add_argument("--bits", type=int, default=BITS)
    c.add_argument("model_dir", type=Path)
    c.add_argument("plan")
    c.add_argument("idle", type=int)
    c.add_argument("deadline", type=float)
    c.add_argument("rows", type=Path)
    args = ap.parse_args()
    BITS = args.bits
    if args.cmd == "child":
        child(args.model_dir, json.loads(args.plan), args.idle, args.deadline, args.rows)
        return 0

    start = time.time()
    deadline = start + args.budget_s
    work, out = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "exl3.log"
    state_path = work / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    ext_dir = args.site / "exllamav3" / "exllamav3_ext"
    site_path = str(args.site)
    if args.prebuilt and list(args.prebuilt.glob("exllamav3_ext*.so")):
        site_path = (
            f"{args.prebuilt}:{site_path}"  # ext.py imports a built module when one is found
        )
        state.setdefault("built", "prebuilt")
    if not state.get("built"):
        if not args.no_restrict:
            state["nulled"] = restrict_bitrates(ext_dir, KEEP_BITRATES, CODEBOOK)
            state_path.write_text(json.dumps(state))
        state.update(build(args.site, work, log))
        state["built"] = state["build_rc"] == 0
        state_path.write_text(json.dumps(state))
        print(
            json.dumps({k: v for k, v in state.items() if k != "nulled"}),
            f"{len(state.get('nulled', []))} units nulled",
            flush=True,
        )
        if not state["built"]:
            print(log.read_text()[-6000:])
            return 1
        for so in (work / "ext" / "exllamav3_ext").glob("exllamav3_ext*.so"):
            state["ext_so_bytes"] = so.stat().st_size
            # a later call on a fresh machine can carry it (files come back at most 16 MiB each)
            data = so.read_bytes() if so.stat().st_size <= 45 << 20 else b""
            for i in range(0, len(data), 15 << 20):
                (out / f"{so.name}.part{i // (15 << 20)}").write_bytes(data[i : i + (15 << 20)])
        state_path.write_text(json.dumps(state))
    if "idle" not in state:
        state["idle"] = smi_used_bytes()
        state["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        state_path.write_text(json.dumps(state))
    rows_path = work / "rows.jsonl"
    done = set()
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["shape"], r.get("bits", 4), r["ctx"], json.dumps(r["cache"])))
    env = dict(os.environ)
    env.update(TORCH_EXTENSIONS_DIR=str(work / "ext"), TORCH_CUDA_ARCH_LIST="9.0")
    env["PYTHONPATH"] = f"{site_path}:{env.get('PYTHONPATH', '')}"
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    contexts = [int(c) for c in args.contexts.split(",")]
    caches = [
        None if c == "fp16" else [int(b) for b in c.split(":")] for c in args.caches.split(",")
    ]
    for name in names:
        plan = [
            [ctx, kv]
            for ctx in contexts
            for kv in caches
            if (name, BITS, ctx, json.dumps(kv)) not in done
        ]
        if name == "Llama-3-8B" and plan and args.caches == "fp16,8:8,4:4":
            plan.append(
                plan[0]
            )  # the first row again, after others: what sharing a process changes
        if not plan or time.time() > deadline - 30:
            continue
        model_dir = work / "models" / f"{name}-{BITS}bpw"
        info = write_model(model_dir, name)
        shape_rows = work / f"rows-{name}-{BITS}.jsonl"
        shape_rows.unlink(missing_ok=True)
        with log.open("a") as fh:
            fh.write(f"== {name} {info}\n")
            fh.flush()
            try:
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "child",
                        "--bits",
                        str(BITS),
                        str(model_dir),
                        json.dumps(plan),
                        str(state["idle"]),
                        str(deadline - 25),
                        str(shape_rows),
                    ],
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.time(), 5),
                )
            except subprocess.TimeoutExpired:
                fh.write("child timed out\n")
        if shape_rows.exists():
            with rows_path.open("a") as fh:
                for line in shape_rows.read_text().splitlines():
                    r = json.loads(line)
                    r.update(shape=name, bits=BITS, head_bits=HEAD_BITS, **info)
                    fh.write(json.dumps(r) + "\n")
        rows = (
            [json.loads(x) for x in rows_path.read_text().splitlines()]
            if rows_path.exists()
            else []
        )
        meta = {k: v for k, v in state.items() if k != "nulled"} | {
            "nulled_units": len(state.get("nulled", []))
        }
        (out / args.result_name).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"{name}: {len(rows)} rows so far, {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
