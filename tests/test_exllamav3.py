"""The exllamav3 profile: cache pages and quantized caches, the staging window, host embeddings,
fp16/fp32 MLP intermediates, MoE; checked against the H200 measurements and through the CLI."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from accuracy import accuracy_module
from qp import run_qp
from quantpick.estimate.formula import kv_cache_bytes, runtime_buffers_bytes
from quantpick.estimate.runtimes import exllamav3
from quantpick.estimate.shape import shape_from_config
from quantpick.estimate.vram import estimate_vram
from quantpick.records import GIB, CacheMode, Format, Runtime, Source, Variant, VariantKind

ROOT = Path(__file__).parent.parent
CONFIGS = Path(__file__).parent / "fixtures" / "configs"
CARDS = Path(__file__).parent / "fixtures" / "cards"
EXL3_CARD = CARDS / "html_table_exl3.md"
MIB = 1 << 20


ACCURACY = accuracy_module()


def _shape(name: str):  # type: ignore[no-untyped-def]
    return shape_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


def _exl3(bits: float, size_bytes: int | None = None) -> Variant:
    return Variant(
        name=f"{bits}bpw", kind=VariantKind.BRANCH, format=Format.EXL3, bits=bits,
        size_bytes=size_bytes, size_source=Source.HUB if size_bytes else None,
    )  # fmt: skip


# --- against the GPU ------------------------------------------------------------------------------


def test_held_out_measurements_meet_the_targets() -> None:
    by_mode: dict[str, list[float]] = {}
    for check in ACCURACY.exl3_checks():
        if check.method.endswith("held-out"):
            by_mode.setdefault(check.runtime, []).append(check.error * 100)
    assert set(by_mode) == {f"exllamav3 {m}" for m in ("fp16", "q8", "q6", "q4")}
    for mode, errors in by_mode.items():
        assert len(errors) >= 6, mode
        assert statistics.median(abs(e) for e in errors) <= 3.0, mode
        assert min(errors) >= -3.0, mode
        assert max(errors) <= 10.0, mode


def test_measured_cache_bytes_are_the_formula() -> None:
    """CacheLayer_quant: bits per value, an fp16 scale per 32 values, every layer, whole pages."""
    path = ROOT / "benchmarks" / "gpu" / "exllamav3_h200.json"
    modes = {None: CacheMode.FP16, (8, 8): CacheMode.Q8, (4, 4): CacheMode.Q4}
    rows = [r for r in json.loads(path.read_text())["rows"] if r["shape"] == "Llama-3-8B"]
    assert len(rows) >= 12
    shape = _shape("llama-3-8b")
    for row in rows:
        mode = modes[None if row["cache"] is None else tuple(row["cache"])]
        predicted = kv_cache_bytes(shape, row["ctx"], mode, Runtime.EXLLAMAV3)
        assert predicted == row["cache_storage_bytes"], row


# --- mechanics ------------------------------------------------------------------------------------


def test_cache_is_allocated_in_whole_pages() -> None:
    shape = _shape("llama-3-8b")
    assert kv_cache_bytes(shape, 4000, CacheMode.FP16, Runtime.EXLLAMAV3) == kv_cache_bytes(
        shape, 4096, CacheMode.FP16, Runtime.EXLLAMAV3
    )
    assert kv_cache_bytes(shape, 4097, CacheMode.FP16, Runtime.EXLLAMAV3) > kv_cache_bytes(
        shape, 4096, CacheMode.FP16, Runtime.EXLLAMAV3
    )


def test_quantized_cache_staging_window_is_capped_at_64k() -> None:
    shape = _shape("llama-2-13b")  # 40 full KV heads: the window outweighs the MLP's transient
    q4 = [runtime_buffers_bytes(shape, n, Runtime.EXLLAMAV3, cache_mode=CacheMode.Q4)
          for n in (4096, 65536, 131072)]  # fmt: skip
    fp16 = runtime_buffers_bytes(shape, 4096, Runtime.EXLLAMAV3, cache_mode=CacheMode.FP16)
    # the loader's measuring pass stages the full 64k window whatever the context
    measure = exllamav3.load_measure_bytes(shape, exllamav3.CHUNK_TOKENS, CacheMode.Q4)
    assert q4[0] == measure > fp16
    assert q4[1] > q4[0]
    assert q4[2] == q4[1]


def test_embeddings_stay_in_system_memory_and_the_head_is_always_quantized() -> None:
    shape = _shape("llama-3-8b")
    on_hub = 5 * GIB
    estimate = estimate_vram(_exl3(4.0, on_hub), shape, 4096, runtime=Runtime.EXLLAMAV3)
    embedding = shape.vocab_size * shape.hidden_size * 2
    assert estimate.breakdown is not None
    assert estimate.breakdown.weights_bytes == on_hub - embedding
    tied = shape.model_copy(update={"tie_word_embeddings": True})
    untied_bits = estimate_vram(_exl3(4.0), shape, 4096, runtime=Runtime.EXLLAMAV3)
    tied_bits = estimate_vram(_exl3(4.0), tied, 4096, runtime=Runtime.EXLLAMAV3)
    # the converter writes a quantized lm_head for tied sources too
    assert tied_bits.breakdown is not None
    assert untied_bits.breakdown is not None
    assert tied_bits.breakdown.weights_bytes == untied_bits.breakdown.weights_bytes


def test_qwen3_keeps_mlp_intermediates_in_fp16() -> None:
    qwen3 = _shape("qwen3-8b")
    as_llama = qwen3.model_copy(update={"architecture": "llama"})
    chunk = exllamav3.CHUNK_TOKENS
    saved = exllamav3.mlp_transient_bytes(as_llama, chunk) - exllamav3.mlp_transient_bytes(
        qwen3, chunk
    )
    # fp32 gate and up plus a separate fp16 activation, against fp16 gate and up
    assert saved == chunk * qwen3.intermediate_size * 6


def test_moe_transient_counts_routed_rows() -> None:
    moe = _shape("qwen3-30b-a3b")
    assert moe.num_experts > 1
    chunk = exllamav3.CHUNK_TOKENS
    one = moe.model_copy(update={"num_experts_per_token": 1})
    assert exllamav3.mlp_transient_bytes(moe, chunk) > exllamav3.mlp_transient_bytes(one, chunk)


# --- through the CLI ------------------------------------------------------------------------------


def test_cli_tabbyapi_runs_exl3_on_exllamav3() -> None:
    r = run_qp(
        "list", "--card", EXL3_CARD, "--config", CONFIGS / "gemma-2-9b.json", "--vram", "24",
        "--ctx", "16k", "--runtime", "tabbyapi", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    estimates = [v["estimate"] for v in json.loads(r.stdout)["variants"] if v["estimate"]]
    assert len(estimates) == 3
    assert {e["runtime"] for e in estimates} == {"exllamav3"}


def test_cli_tabbyapi_runs_exl2_on_its_exllamav2_backend_and_refuses_gguf() -> None:
    exl2 = run_qp(
        "list", "--card", CARDS / "exl2_vram_columns.md", "--config", CONFIGS / "llama-3-8b.json",
        "--vram", "24", "--ctx", "16k", "--runtime", "tabbyapi", "--json",
    )  # fmt: skip
    assert exl2.returncode == 0, exl2.stderr
    variants = json.loads(exl2.stdout)["variants"]
    assert {v["estimate"]["runtime"] for v in variants if v["estimate"]} == {"exllamav2"}
    gguf = run_qp(
        "pick", "--card", CARDS / "gguf_files.md", "--config", CONFIGS / "llama-3-8b.json",
        "--vram", "24", "--ctx", "16k", "--runtime", "tabbyapi",
    )  # fmt: skip
    assert gguf.returncode != 0
    assert "tabbyapi cannot load gguf weights" in gguf.stderr
