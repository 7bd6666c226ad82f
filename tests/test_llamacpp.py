"""The llama.cpp profile: flash attention, quantized caches, SWA, MoE, host embeddings, partial
offload, multi-GPU layer split; checked against the H200 measurements and through the CLI."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from accuracy import accuracy_module
from qp import run_qp
from quantpick.errors import UsageError
from quantpick.estimate.recommend import recommend
from quantpick.estimate.runtimes import llamacpp
from quantpick.estimate.shape import shape_from_config
from quantpick.estimate.vram import estimate_vram
from quantpick.records import (
    GIB,
    Budget,
    CacheMode,
    Format,
    ModelShape,
    Runtime,
    Source,
    Variant,
    VariantKind,
)

ROOT = Path(__file__).parent.parent
CONFIGS = Path(__file__).parent / "fixtures" / "configs"
MEASURED = ROOT / "benchmarks" / "gpu" / "llamacpp_h200.json"
GGUF_CARD = ROOT / "examples" / "cards" / "demo__Mistral-7B-Instruct-GGUF.md"
MISTRAL = ROOT / "examples" / "configs" / "mistral-7b.json"
GPTQ_CARD = Path(__file__).parent / "fixtures" / "cards" / "gptq_branches.md"
MIB = 1 << 20


def shape(name: str) -> ModelShape:
    return shape_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


def gguf(name: str, quant: str, size_bytes: int) -> Variant:
    return Variant(
        name=name, kind=VariantKind.FILE, format=Format.GGUF, quant_method=quant,
        size_bytes=size_bytes, size_source=Source.HUB,
    )  # fmt: skip


ACCURACY = accuracy_module()
measured_shape = ACCURACY._measured_shape
# the shapes the constants were read off; the rest are held out (benchmarks/RESULTS.md)
FITTED = ACCURACY.LLAMACPP_FITTED


# --- against the GPU ------------------------------------------------------------------------------


def _errors(held_out: bool) -> dict[tuple[int, str], list[float]]:
    """Percent error of the estimate per (flash_attn, cache) over the filled full-offload rows."""
    out: dict[tuple[int, str], list[float]] = {}
    for row in json.loads(MEASURED.read_text()):
        if "error" in row or row["n_gpu_layers"] != 999 or row["n_ubatch"] != 512:
            continue
        if (row["model"] in FITTED) == held_out:
            continue
        mode = CacheMode.Q8 if row["type_k"] == "q8_0" else CacheMode.FP16
        fp = llamacpp.footprint(
            measured_shape(row), row["file_bytes"], row["quant"], row["n_ctx"], mode,
            bool(row["flash_attn"]),
        )  # fmt: skip
        # unfilled rows show the memory before the prefill grows the CUDA pool
        predicted = fp.total_bytes if row["fill"] else fp.total_bytes - fp.pool_bytes
        measured = row["peak_bytes"] if row["fill"] else row["warm_bytes"]
        key = (row["flash_attn"], row["type_k"])
        out.setdefault(key, []).append((predicted - measured) / measured * 100)
    return out


def test_held_out_measurements_meet_the_targets() -> None:
    errors = _errors(held_out=True)
    assert set(errors) == {(1, "f16"), (0, "f16"), (1, "q8_0")}
    for key, values in errors.items():
        assert len(values) >= 30, key
        assert statistics.median(abs(e) for e in values) <= 3.0, key
        assert min(values) >= -3.0, key
        assert max(values) <= 10.0, key


def test_filling_the_context_grows_memory_only_without_flash_attention() -> None:
    rows = [
        r
        for r in json.loads(MEASURED.read_text())
        if r.get("fill") and r["n_gpu_layers"] == 999 and r["n_ctx"] == 32768
    ]
    assert rows
    for r in rows:
        grown = r["peak_bytes"] - r["warm_bytes"]
        if r["flash_attn"]:
            assert grown <= llamacpp.FA_POOL_MOE_BYTES, r["model"]
        else:
            # the fp16 KQ copy cuBLAS takes from the pool
            kq = 32768 * 512 * r["heads"] * 2
            assert kq < grown < kq + 2 * llamacpp.KQ_POOL_FIXED_BYTES, r["model"]


# --- mechanics ------------------------------------------------------------------------------------


def test_flash_attention_keeps_the_compute_buffer_flat() -> None:
    llama = shape("llama-3-8b")
    on = [llamacpp.compute_buffer_bytes(llama, n, CacheMode.FP16, True) for n in (4096, 65536)]
    off = [llamacpp.compute_buffer_bytes(llama, n, CacheMode.FP16, False) for n in (4096, 65536)]
    assert on[0] == on[1]  # the logits stage dominates at every context
    # without it: n_ctx x n_ubatch x (heads x fp32 KQ + the mask)
    assert off[1] - off[0] == (65536 - 4096) * 512 * (32 * 4 + 4)


def test_flash_attn_option_changes_the_estimate() -> None:
    llama = shape("llama-3-8b")
    variant = gguf("m.Q4_K_M.gguf", "Q4_K_M", 4_920_000_000)
    on = estimate_vram(variant, llama, 32768)
    off = estimate_vram(variant, llama, 32768, flash_attn=False)
    assert on.flash_attn is True
    assert off.flash_attn is False
    # measured on the H200 at 32k, context filled: 12967542784 - 9821814784 bytes
    assert off.vram_bytes - on.vram_bytes == pytest.approx(12967542784 - 9821814784, rel=0.01)
    assert estimate_vram(variant, llama, 32768, runtime=Runtime.TRANSFORMERS).flash_attn is None


def test_quantized_v_cache_needs_flash_attention() -> None:
    with pytest.raises(UsageError, match="without flash attention"):
        llamacpp.check_cache(CacheMode.Q8, flash_attn=False)
    llamacpp.check_cache(CacheMode.Q8, flash_attn=True)
    llamacpp.check_cache(CacheMode.FP16, flash_attn=False)


def test_q8_cache_is_34_of_32_bytes_and_converts_with_flash_attention() -> None:
    llama2 = shape("llama-2-13b")
    assert llamacpp.kv_cache_bytes(llama2, 4096, CacheMode.Q8) == 1700 * MIB  # as logged
    f16 = llamacpp.compute_buffer_bytes(llama2, 65536, CacheMode.FP16, True)
    q8 = llamacpp.compute_buffer_bytes(llama2, 65536, CacheMode.Q8, True)
    # one layer's K and V converted to fp16: 1384 MiB measured on the H200
    assert q8 - f16 > 1000 * MIB
    assert abs(q8 - 1384.09 * MIB) < 4 * MIB


def test_sliding_layers_hold_window_plus_ubatch() -> None:
    gemma = shape("gemma-2-9b")
    cells = llamacpp.cells_per_layer(gemma, 32768)
    assert sorted(set(cells)) == [4096 + 512, 32768]
    assert cells.count(4608) == 21
    # shorter than the window: every layer holds the context
    assert set(llamacpp.cells_per_layer(gemma, 4000)) == {4096}  # padded to 256


def test_moe_pool_and_expert_rows() -> None:
    moe, dense = shape("qwen3-30b-a3b"), shape("qwen3-8b")
    assert llamacpp.pool_bytes(moe, 32768, True) == llamacpp.FA_POOL_MOE_BYTES
    assert llamacpp.pool_bytes(dense, 32768, True) == llamacpp.FA_POOL_DENSE_BYTES


def test_token_embeddings_stay_in_host_memory_unless_tied() -> None:
    llama, gemma = shape("llama-3-8b"), shape("gemma-2-9b")
    fp = llamacpp.footprint(llama, 4_920_000_000, "Q4_K_M", 4096, CacheMode.FP16, True)
    embedding = round(128256 * 4096 * 4.5 / 8)  # token_embd at Q4_K
    assert fp.host_bytes == embedding
    assert fp.weights_bytes == 4_920_000_000 - embedding
    tied = llamacpp.footprint(gemma, 5_760_000_000, "Q4_K_M", 4096, CacheMode.FP16, True)
    assert tied.weights_bytes == 5_760_000_000  # the output head is a GPU copy of the table


# --- placement ------------------------------------------------------------------------------------


def test_partial_offload_counts_whole_layers_and_the_output() -> None:
    llama = shape("llama-3-8b")
    full = llamacpp.footprint(llama, 4_920_000_000, "Q4_K_M", 8192, CacheMode.FP16, True)
    placed = llamacpp.place(full, llama, "Q4_K_M", 8192, [3 * GIB])
    assert placed is not None
    assert not placed.complete
    assert 0 < placed.layers_per_gpu[0] < 32
    assert placed.gpu_layers == placed.layers_per_gpu[0] + 1  # -ngl counts the output layer
    assert placed.per_gpu_bytes[0] <= 3 * GIB
    assert placed.host_bytes > full.host_bytes


def test_two_gpus_each_pay_their_own_overhead() -> None:
    llama = shape("llama-3-8b")
    full = llamacpp.footprint(llama, 8_540_000_000, "Q8_0", 32768, CacheMode.FP16, True)
    one = llamacpp.place(full, llama, "Q8_0", 32768, [80 * GIB])
    two = llamacpp.place(full, llama, "Q8_0", 32768, [7 * GIB, 7 * GIB])
    assert one is not None
    assert two is not None
    assert one.complete
    assert two.complete
    overhead = full.compute_buffer_bytes + full.pool_bytes + full.fixed_bytes
    assert sum(two.per_gpu_bytes) - one.per_gpu_bytes[0] == pytest.approx(overhead, abs=1)
    assert all(b <= 7 * GIB for b in two.per_gpu_bytes)
    # a pooled 14 GiB would fit one GPU's total; two 6.5 GiB cards cannot hold it whole
    half = 13 * GIB // 2
    split = llamacpp.place(full, llama, "Q8_0", 32768, [half, half])
    assert split is not None
    assert not split.complete


def test_pick_prefers_a_full_fit_and_says_what_partial_buys() -> None:
    llama = shape("llama-3-8b")
    variants = [
        gguf("m.Q8_0.gguf", "Q8_0", 8_540_000_000),
        gguf("m.Q4_K_M.gguf", "Q4_K_M", 4_920_000_000),
    ]
    budget = Budget(
        gpu_vram_bytes=(int(7.5 * GIB),), reserve_bytes=GIB // 2, context_tokens=8192,
        ram_bytes=32 * GIB,
    )  # fmt: skip
    rec = recommend(variants, llama, budget)
    assert rec.pick is not None
    assert rec.pick.variant.name == "m.Q4_K_M.gguf"
    assert rec.pick.fits
    assert not rec.pick.partial
    q8 = next(c for c in rec.candidates if c.variant.name == "m.Q8_0.gguf")
    assert q8.partial
    assert not q8.fits
    assert q8.ram_fits
    assert any(r.startswith("partial would buy m.Q8_0.gguf") for r in rec.reasons)


def test_m_files_give_the_use_more_bits_layers_heavier_weights() -> None:
    llama = shape("llama-3-8b")
    total = 4_000_000_000
    q4 = llamacpp.layer_weight_bytes(llama, "Q4_K_M", total)
    assert sum(q4) == pytest.approx(total)
    heavy = [llamacpp.use_more_bits(i, 32) for i in range(32)]
    assert heavy[:4] == [True] * 4
    assert heavy[28:] == [True] * 4
    assert min(w for w, h in zip(q4, heavy, strict=True) if h) > max(
        w for w, h in zip(q4, heavy, strict=True) if not h
    )
    assert len(set(llamacpp.layer_weight_bytes(llama, "Q8_0", total))) == 1


def test_partial_offload_held_out_measurements_meet_the_targets() -> None:
    """The GPU holds the last layers, the heavier ones in a Q4_K_M file (held-out shapes)."""
    errors = [
        c.error * 100 for c in ACCURACY.llamacpp_partial_checks() if c.method.endswith("held-out")
    ]
    assert len(errors) == 18
    assert statistics.median(abs(e) for e in errors) <= 3.0
    assert min(errors) >= -3.0
    assert max(errors) <= 10.0


def _placed_layers(variant: Variant, llama: ModelShape, budget: Budget, tokens: int) -> int:
    full = llamacpp.footprint(
        llama, variant.size_bytes or 0, variant.quant_method, tokens, budget.cache_mode, True
    )
    budgets = [v - budget.reserve_bytes for v in budget.gpu_vram_bytes]
    placed = llamacpp.place(full, llama, variant.quant_method, tokens, budgets)
    return 0 if placed is None else sum(placed.layers_per_gpu)


def test_two_gpus_max_context_is_per_gpu_with_whole_layers() -> None:
    llama = shape("llama-3-8b").model_copy(update={"max_context_tokens": 131072})
    q8 = gguf("m.Q8_0.gguf", "Q8_0", 8_540_000_000)
    two = Budget(gpu_vram_bytes=(7 * GIB, 7 * GIB), reserve_bytes=0, context_tokens=8192)
    pooled = Budget(gpu_vram_bytes=(14 * GIB,), reserve_bytes=0, context_tokens=8192)
    split = recommend([q8], llama, two).candidates[0]
    one = recommend([q8], llama, pooled).candidates[0]
    assert split.fits
    assert split.max_context_tokens is not None
    assert one.max_context_tokens is not None
    # each GPU pays its own context, buffers and whole layers: less than the pooled figure
    assert 8192 <= split.max_context_tokens < one.max_context_tokens
    assert _placed_layers(q8, llama, two, split.max_context_tokens) == 32
    assert _placed_layers(q8, llama, two, split.max_context_tokens + 1) < 32


def test_partial_max_context_keeps_the_reported_layers() -> None:
    llama = shape("llama-3-8b").model_copy(update={"max_context_tokens": 131072})
    q8 = gguf("m.Q8_0.gguf", "Q8_0", 8_540_000_000)
    budget = Budget(gpu_vram_bytes=(6 * GIB,), reserve_bytes=0, context_tokens=8192)
    candidate = recommend([q8], llama, budget).candidates[0]
    assert candidate.partial
    assert candidate.estimate is not None
    assert candidate.estimate.gpu_layers is not None
    layers = candidate.estimate.gpu_layers - 1  # -ngl counts the output layer
    limit = candidate.max_context_tokens
    assert limit is not None
    assert limit >= 8192
    assert _placed_layers(q8, llama, budget, limit) >= layers
    assert _placed_layers(q8, llama, budget, limit + 1) < layers


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_flash_attn_and_partial_in_json() -> None:
    r = run_qp(
        "list", "--card", GGUF_CARD, "--config", MISTRAL, "--vram", "4", "--ctx", "16k",
        "--flash-attn", "off", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    estimates = [v["estimate"] for v in json.loads(r.stdout)["variants"] if v["estimate"]]
    assert estimates
    for e in estimates:
        assert e["flash_attn"] is False
        assert e["partial"] is True
        assert e["fits"] is False
        assert 1 < e["gpu_layers"] < e["total_layers"] == 33


def test_cli_partial_pick_needs_ram() -> None:
    args = ("pick", "--card", GGUF_CARD, "--config", MISTRAL, "--vram", "4", "--ctx", "16k")
    refused = run_qp(*args)
    assert refused.returncode == 4
    assert "Partial GPU, -ngl" in refused.stderr
    assert "--ram" in refused.stderr
    picked = run_qp(*args, "--ram", "64", "--json")
    assert picked.returncode == 0, picked.stderr
    doc = json.loads(picked.stdout)
    assert doc["pick"]["estimate"]["partial"] is True
    assert doc["pick"]["estimate"]["host_bytes"] > 0


def test_cli_two_gpus_report_each_share() -> None:
    r = run_qp(
        "pick", "--card", GGUF_CARD, "--config", MISTRAL, "--vram", "6,6", "--ctx", "16k",
        "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["pick"]["estimate"]
    assert len(e["per_gpu_bytes"]) == 2
    assert all(b <= 5.5 * GIB for b in e["per_gpu_bytes"])
    assert e["vram_bytes"] == sum(e["per_gpu_bytes"])


def test_cli_quantized_cache_without_flash_attention_is_refused() -> None:
    r = run_qp("pick", "--card", GGUF_CARD, "--vram", "8", "--cache", "q8", "--flash-attn", "off")
    assert r.returncode == 2
    assert "without flash attention" in r.stderr
    assert "hint: use --flash-attn on" in r.stderr


def test_cli_cannot_size_is_not_nothing_fits() -> None:
    r = run_qp("pick", "--card", GPTQ_CARD, "--vram", "24", "--offline")
    assert r.returncode == 12
    assert "error: no variant can be sized" in r.stderr
    assert "hint: quantpick cannot size without the model's config.json (--config FILE)" in (
        r.stderr
    )
