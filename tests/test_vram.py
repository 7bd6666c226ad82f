"""vram: each provenance, cache modes, sliding windows, runtimes, and the max-context inversion.

Variants are built directly with the cards' numbers (Cerebrum exl2's VRAM table, Mixtral GPTQ's
sizes); the transformers profile is checked against ../shared/gpu measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantpick.errors import UsageError
from quantpick.estimate.shape import shape_from_config
from quantpick.estimate.vram import (
    EXL2_BITS_MARGIN,
    TORCH_CUDA_CONTEXT_BYTES,
    VLLM_GPU_MEMORY_UTILIZATION,
    MissingShapeError,
    default_runtime,
    estimate_vram,
    gguf_bits_per_weight,
    kv_cache_bytes,
    max_context_tokens,
    runtime_buffers_bytes,
    weights_bytes,
)
from quantpick.records import (
    GB,
    GIB,
    CacheMode,
    Format,
    ModelShape,
    Provenance,
    Runtime,
    Source,
    Variant,
    VariantKind,
)
from variants import gptq

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GPU_MEASUREMENTS = Path(__file__).parents[2] / "shared" / "gpu" / "transformers_fp16_h100.json"
CTX = (4096, 16384, 32768)
# Mixtral: 2 (K, V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes
MIXTRAL_FP16_KV_PER_TOKEN = 2 * 32 * 8 * 128 * 2


def shape(name: str) -> ModelShape:
    return shape_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


@pytest.fixture
def mixtral() -> ModelShape:
    return shape("mixtral-8x7b")


def exl2(name: str, bits: float, gib: tuple[float, ...], **extra: object) -> Variant:
    figures = {c: round(g * GIB) for c, g in zip(CTX, gib, strict=False)}
    return Variant.model_validate(
        {"name": name, "kind": VariantKind.BRANCH, "format": Format.EXL2, "bits": bits,
         "head_bits": 6.0, "vram_bytes": figures, **extra}
    )  # fmt: skip


CEREBRUM_3_5 = exl2("3_5", 3.5, (21.5, 23.0, 25.0))


# --- card --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ctx", "gib"), list(zip(CTX, (21.5, 23.0, 25.0), strict=True)))
def test_card_figure_at_its_context(ctx: int, gib: float) -> None:
    estimate = estimate_vram(CEREBRUM_3_5, None, ctx)
    assert estimate.provenance is Provenance.CARD
    assert estimate.vram_bytes == round(gib * GIB)
    assert estimate.runtime is Runtime.EXLLAMAV2


def test_card_figure_for_the_requested_cache_mode(mixtral: ModelShape) -> None:
    variant = CEREBRUM_3_5.model_copy(
        update={"vram_bytes_by_cache": {CacheMode.Q4: {32768: round(22.3 * GIB)}}}
    )
    estimate = estimate_vram(variant, mixtral, 32768, CacheMode.Q4)
    assert estimate.provenance is Provenance.CARD
    assert estimate.vram_bytes == round(22.3 * GIB)


# --- card-fit ----------------------------------------------------------------------------------


def test_card_fit_interpolates_between_figures() -> None:
    estimate = estimate_vram(CEREBRUM_3_5, None, 8192)
    assert estimate.provenance is Provenance.CARD_FIT
    assert estimate.vram_bytes == pytest.approx(22.0 * GIB, abs=1)


def test_card_fit_extrapolates_by_the_kv_formula(mixtral: ModelShape) -> None:
    estimate = estimate_vram(CEREBRUM_3_5, mixtral, 65536)
    assert estimate.provenance is Provenance.CARD_FIT
    # exllamav2's buffers stop growing past one 2048-token chunk: only the KV cache grows
    assert estimate.vram_bytes == pytest.approx(
        25.0 * GIB + 32768 * MIXTRAL_FP16_KV_PER_TOKEN, abs=1
    )
    assert estimate.warnings == ()


def test_card_fit_leave_one_out_reproduces_cerebrum(mixtral: ModelShape) -> None:
    for ctx, gib in zip(CTX, (21.5, 23.0, 25.0), strict=True):
        others = {c: b for c, b in CEREBRUM_3_5.vram_bytes.items() if c != ctx}
        variant = CEREBRUM_3_5.model_copy(update={"vram_bytes": others})
        estimate = estimate_vram(variant, mixtral, ctx)
        assert estimate.vram_bytes == pytest.approx(gib * GIB, rel=0.005)


def test_card_fit_warns_when_the_table_disagrees_with_the_kv_formula(mixtral: ModelShape) -> None:
    # +10 GiB over 12k tokens: five times what Mixtral's fp16 KV cache can grow
    variant = exl2("typo", 3.5, (20.0, 30.0))
    estimate = estimate_vram(variant, mixtral, 32768)
    assert any("KV cache formula" in w for w in estimate.warnings)
    # the larger of the card's own trend and the formula's is kept
    card_trend = 30.0 * GIB + 10 * GIB * 16384 / 12288
    assert estimate.vram_bytes == pytest.approx(card_trend, rel=1e-9)


def test_card_fit_without_a_shape_uses_the_card_trend() -> None:
    estimate = estimate_vram(exl2("x", 3.5, (21.5, 23.0)), None, 32768)
    assert estimate.vram_bytes == pytest.approx(25.0 * GIB, rel=1e-9)


def test_single_figure_needs_a_shape_to_grow() -> None:
    variant = Variant(
        name="6_5", kind=VariantKind.BRANCH, format=Format.EXL2, bits=6.5,
        vram_bytes={16384: round(8.6 * GIB)},
    )  # fmt: skip
    with pytest.raises(MissingShapeError):
        estimate_vram(variant, None, 32768)
    smaller = estimate_vram(variant, None, 4096)
    assert smaller.vram_bytes == round(8.6 * GIB)
    assert smaller.provenance is Provenance.CARD_FIT
    assert smaller.warnings
    grown = estimate_vram(variant, shape("mistral-7b-v0.1"), 32768)
    # exllamav2 allocates the full cache even for a sliding-window model: +16k tokens x 128 KiB
    assert grown.vram_bytes == pytest.approx(8.6 * GIB + 2 * GIB, abs=1)


def test_card_fit_converts_the_cards_cache_mode(mixtral: ModelShape) -> None:
    estimate = estimate_vram(CEREBRUM_3_5, mixtral, 32768, CacheMode.Q4)
    assert estimate.provenance is Provenance.CARD_FIT
    fp16 = kv_cache_bytes(mixtral, 32768, CacheMode.FP16, Runtime.EXLLAMAV2)
    q4 = kv_cache_bytes(mixtral, 32768, CacheMode.Q4, Runtime.EXLLAMAV2)
    assert estimate.vram_bytes == pytest.approx(25.0 * GIB - fp16 + q4, abs=1)
    assert any("fp16 cache" in w for w in estimate.warnings)


def test_card_cache_mode_states_what_the_figures_assume(mixtral: ModelShape) -> None:
    estimate = estimate_vram(
        CEREBRUM_3_5, mixtral, 32768, CacheMode.Q4, card_cache_mode=CacheMode.Q4
    )
    assert estimate.provenance is Provenance.CARD
    assert estimate.vram_bytes == round(25.0 * GIB)


def test_prose_derived_figures_are_never_card_provenance() -> None:
    variant = Variant(
        name="8_0", kind=VariantKind.BRANCH, format=Format.EXL2, bits=8.0,
        vram_derived_bytes={32768: round(11.8 * GIB)},
    )  # fmt: skip
    estimate = estimate_vram(variant, None, 32768)
    assert estimate.provenance is Provenance.CARD_FIT
    assert any("prose" in w for w in estimate.warnings)


def test_card_name_contradiction_is_surfaced() -> None:
    estimate = estimate_vram(exl2("3_75", 3.5, (23.0, 24.5, 26.5)), None, 16384)
    assert any("3.75" in w for w in estimate.warnings)


# --- formula -----------------------------------------------------------------------------------


def test_formula_uses_the_cards_file_size(mixtral: ModelShape) -> None:
    estimate = estimate_vram(gptq("main", 4, None, 23.81), mixtral, 16384)
    assert estimate.provenance is Provenance.FORMULA
    assert estimate.runtime is Runtime.TRANSFORMERS
    assert estimate.weights_source is Source.CARD
    assert estimate.breakdown is not None
    assert estimate.breakdown.weights_bytes == round(23.81 * GB)
    assert estimate.breakdown.kv_cache_bytes == 16384 * MIXTRAL_FP16_KV_PER_TOKEN == 2 * GIB
    assert estimate.breakdown.cuda_context_bytes == TORCH_CUDA_CONTEXT_BYTES
    parts = estimate.breakdown
    assert estimate.vram_bytes == (
        parts.weights_bytes
        + parts.kv_cache_bytes
        + parts.runtime_buffers_bytes
        + parts.cuda_context_bytes
    )


@pytest.mark.parametrize(
    ("bits", "group", "card_gb"),
    [(4, None, 23.81), (4, 128, 24.7), (4, 32, 27.42), (3, None, 18.01), (8, 128, 48.1)],
)
def test_gptq_weights_from_bits_match_the_cards_sizes(
    mixtral: ModelShape, bits: int, group: int | None, card_gb: float
) -> None:
    sized = weights_bytes(gptq("x", bits, group, None), mixtral, Runtime.TRANSFORMERS)
    assert sized is not None
    assert sized[1] is Source.ESTIMATE
    assert sized[0] == pytest.approx(card_gb * GB, rel=0.01)


def test_hub_sizes_win_and_exllamav2_keeps_embeddings_in_ram(mixtral: ModelShape) -> None:
    variant = exl2("3_5", 3.5, ()).model_copy(
        update={"size_bytes": 21_000_000_000, "size_source": Source.HUB}
    )
    sized = weights_bytes(variant, mixtral, Runtime.EXLLAMAV2)
    assert sized == (21_000_000_000 - 32000 * 4096 * 2, Source.HUB)


def test_exl2_weights_from_bits_use_the_larger_of_card_and_name(mixtral: ModelShape) -> None:
    said = weights_bytes(exl2("3_75", 3.5, ()), mixtral, Runtime.EXLLAMAV2)
    plain = weights_bytes(exl2("3_5", 3.5, ()), mixtral, Runtime.EXLLAMAV2)
    assert said is not None
    assert plain is not None
    linear = 46_702_792_704 - 2 * 32000 * 4096 - 65 * 4096
    assert said[0] - plain[0] == pytest.approx(linear * 0.25 / 8 * (1 + EXL2_BITS_MARGIN), rel=1e-3)


def test_gguf_weights_from_the_quant_type(mixtral: ModelShape) -> None:
    variant = Variant(
        name="m.Q4_K_M.gguf", kind=VariantKind.FILE, format=Format.GGUF, quant_method="Q4_K_M"
    )
    sized = weights_bytes(variant, mixtral, Runtime.LLAMACPP)
    assert sized is not None
    assert sized[0] == round(46_702_792_704 * 4.85 / 8)


def test_formula_without_a_shape_asks_for_a_config() -> None:
    with pytest.raises(MissingShapeError) as info:
        estimate_vram(gptq("main", 4, None, 23.81), None, 4096)
    assert "--config" in info.value.hint


def test_formula_without_size_or_bits_is_a_usage_error(mixtral: ModelShape) -> None:
    variant = Variant(name="mystery", kind=VariantKind.BRANCH, format=Format.OTHER)
    with pytest.raises(UsageError, match="neither a size nor bits"):
        estimate_vram(variant, mixtral, 4096)


def test_runtime_override_leaves_the_card_for_the_formula(mixtral: ModelShape) -> None:
    estimate = estimate_vram(CEREBRUM_3_5, mixtral, 16384, runtime=Runtime.TRANSFORMERS)
    assert estimate.provenance is Provenance.FORMULA
    assert estimate.runtime is Runtime.TRANSFORMERS
    assert any("assume exllamav2" in w for w in estimate.warnings)


def test_default_runtimes() -> None:
    assert default_runtime(Format.EXL2) is Runtime.EXLLAMAV2
    assert default_runtime(Format.EXL3) is Runtime.EXLLAMAV3
    assert default_runtime(Format.GPTQ) is Runtime.TRANSFORMERS
    assert default_runtime(Format.AWQ) is Runtime.TRANSFORMERS
    assert default_runtime(Format.GGUF) is Runtime.LLAMACPP
    assert default_runtime(Format.GGML) is Runtime.LLAMACPP


def test_vllm_needs_the_total_over_gpu_memory_utilization(mixtral: ModelShape) -> None:
    estimate = estimate_vram(gptq("main", 4, None, 23.81), mixtral, 16384, runtime=Runtime.VLLM)
    assert estimate.breakdown is not None
    parts = estimate.breakdown
    inside = estimate.vram_bytes * VLLM_GPU_MEMORY_UTILIZATION
    needed = parts.weights_bytes + parts.kv_cache_bytes + parts.cuda_context_bytes
    assert needed < inside < needed + parts.runtime_buffers_bytes


def test_chunked_runtimes_keep_buffers_bounded(mixtral: ModelShape) -> None:
    for runtime in (Runtime.EXLLAMAV2, Runtime.VLLM):
        assert runtime_buffers_bytes(mixtral, 32768, runtime) == runtime_buffers_bytes(
            mixtral, 131072, runtime
        )
    # un-chunked transformers prefill grows with the prompt
    assert runtime_buffers_bytes(mixtral, 32768, Runtime.TRANSFORMERS) > 2 * runtime_buffers_bytes(
        mixtral, 8192, Runtime.TRANSFORMERS
    )


def test_exllamav2_logits_buffer_scales_with_vocab() -> None:
    small, large = shape("mistral-7b-v0.1"), shape("llama-3-8b")
    difference = runtime_buffers_bytes(large, 4096, Runtime.EXLLAMAV2) - runtime_buffers_bytes(
        small, 4096, Runtime.EXLLAMAV2
    )
    # vocab x 2048-token chunk x fp32 logits, and the shared scratch, sized for the largest module
    # (the same MLP in both), grows with the lm_head's fp16 dequantized copy, hidden x vocab
    mlp = 2048 * (4096 + 2 * 14336) * 2 + 4096 * 14336 * 2
    small_head, large_head = 4096 * 32000 * 2, 4096 * 128256 * 2
    assert large_head > 4 * mlp
    assert difference == (128256 - 32000) * 2048 * 4 + large_head - max(mlp, small_head)


def test_exllamav2_head_dequant_is_capped_at_max_dq_size() -> None:
    gemma = shape("gemma-2-9b")  # 256k vocabulary: hidden x vocab is over max_dq_size
    wider = gemma.model_copy(update={"vocab_size": 2 * gemma.vocab_size})
    difference = runtime_buffers_bytes(wider, 4096, Runtime.EXLLAMAV2) - runtime_buffers_bytes(
        gemma, 4096, Runtime.EXLLAMAV2
    )
    assert difference == gemma.vocab_size * 2048 * 4  # only the logits grow


@pytest.mark.skipif(not GPU_MEASUREMENTS.exists(), reason="../shared/gpu not checked out")
def test_transformers_profile_against_h100_measurements() -> None:
    rows = json.loads(GPU_MEASUREMENTS.read_text())["rows"]
    configs = {
        "mistral-7b": "mistral-7b-v0.1",
        "llama-3-8b": "llama-3-8b",
        "llama-2-13b": "llama-2-13b",
    }
    for row in (r for r in rows if r["ok"] and r["model"] in configs):
        model = shape(configs[row["model"]]).model_copy(
            update={"sliding_window_tokens": None, "layer_types": ()}
        )
        fp16 = Variant(
            name=row["model"], kind=VariantKind.REPO, format=Format.OTHER,
            size_bytes=row["weights_bytes"], size_source=Source.HUB,
        )  # fmt: skip
        estimate = estimate_vram(fp16, model, row["ctx"])
        measured = row["smi_used_mib"] * (1 << 20)
        assert estimate.vram_bytes == pytest.approx(measured, rel=0.05), row


# --- KV cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "per_element"),
    [
        (CacheMode.FP16, 2.0),
        (CacheMode.FP8, 1.0),
        (CacheMode.Q8, 1.0625),
        (CacheMode.Q6, (1.0625 + 0.5625) / 2),
        (CacheMode.Q4, 0.5625),
    ],
)
def test_cache_mode_bytes_per_element(
    mixtral: ModelShape, mode: CacheMode, per_element: float
) -> None:
    elements = 32768 * 2 * 32 * 8 * 128
    assert kv_cache_bytes(mixtral, 32768, mode, Runtime.LLAMACPP) == round(elements * per_element)


def test_exllamav2_quantized_cache_keeps_one_fp16_layer(mixtral: ModelShape) -> None:
    q4 = kv_cache_bytes(mixtral, 32768, CacheMode.Q4, Runtime.EXLLAMAV2)
    plain = kv_cache_bytes(mixtral, 32768, CacheMode.Q4, Runtime.LLAMACPP)
    assert q4 - plain == 32768 * 8 * 128 * 2 * 2
    fp16 = Runtime.EXLLAMAV2
    assert kv_cache_bytes(mixtral, 32768, CacheMode.FP16, fp16) == 32768 * MIXTRAL_FP16_KV_PER_TOKEN


def test_a_bare_sliding_window_does_not_cap_the_cache() -> None:
    mistral = shape("mistral-7b-v0.1")
    for runtime in (Runtime.TRANSFORMERS, Runtime.EXLLAMAV2, Runtime.LLAMACPP):
        full = kv_cache_bytes(mistral, 32768, CacheMode.FP16, runtime)
        assert full == 32768 * MIXTRAL_FP16_KV_PER_TOKEN


def test_declared_sliding_layers_are_capped_except_by_exllamav2() -> None:
    gemma = shape("gemma-2-9b")
    per_layer_token = 8 * 256 * 2 * 2
    capped = (21 * 4096 + 21 * 32768) * per_layer_token
    assert kv_cache_bytes(gemma, 32768, runtime=Runtime.TRANSFORMERS) == capped
    # exllamav2 allocates every layer at full length
    assert kv_cache_bytes(gemma, 32768, runtime=Runtime.EXLLAMAV2) == 42 * 32768 * per_layer_token


def test_gemma2_only_sliding_layers_are_capped() -> None:
    gemma = shape("gemma-2-9b")
    per_layer_token = 8 * 256 * 2 * 2
    # llama.cpp's sliding layers hold window + n_ubatch cells (6132 MiB measured on the H200,
    # benchmarks/gpu/llamacpp_h200.json)
    expected = (21 * (4096 + 512) + 21 * 32768) * per_layer_token
    assert kv_cache_bytes(gemma, 32768, runtime=Runtime.LLAMACPP) == expected == 6132 << 20


# --- gguf types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quant", "bpw"),
    [("Q4_K_M", 4.85), ("q4_k_m", 4.85), ("i1-Q4_K_M", 4.85), ("Q5_K_M", 5.69), ("Q6_K", 6.56),
     ("Q8_0", 8.5), ("Q4_K", 4.85), ("Q6_K_L", 6.61), ("Q3_K_XL", 4.37), ("f16", 16.0)],
)  # fmt: skip
def test_gguf_bits_per_weight(quant: str, bpw: float) -> None:
    assert gguf_bits_per_weight(quant) == pytest.approx(bpw)


def test_unknown_gguf_type() -> None:
    assert gguf_bits_per_weight("Q9_Z") is None
    assert gguf_bits_per_weight(None) is None


# --- inversion -----------------------------------------------------------------------------------


def test_max_context_inverts_the_estimate(mixtral: ModelShape) -> None:
    budget = 24 * GIB
    tokens = max_context_tokens(CEREBRUM_3_5, mixtral, budget)
    # 23.0 GiB at 16k, +2 GiB per 16k: one more GiB buys 8192 tokens
    assert tokens == 24576
    assert estimate_vram(CEREBRUM_3_5, mixtral, tokens).vram_bytes <= budget
    assert estimate_vram(CEREBRUM_3_5, mixtral, tokens + 1).vram_bytes > budget


def test_max_context_formula_is_exact_at_the_boundary(mixtral: ModelShape) -> None:
    variant = gptq("gptq-3bit--1g-actorder_True", 3, None, 18.01)
    budget = 23 * GIB
    tokens = max_context_tokens(variant, mixtral, budget)
    assert 0 < tokens < 32768
    assert estimate_vram(variant, mixtral, tokens).vram_bytes <= budget
    assert estimate_vram(variant, mixtral, tokens + 1).vram_bytes > budget


def test_max_context_is_capped_by_the_model_and_zero_when_nothing_fits(mixtral: ModelShape) -> None:
    assert max_context_tokens(CEREBRUM_3_5, mixtral, 80 * GIB) == 32768
    assert max_context_tokens(CEREBRUM_3_5, mixtral, 10 * GIB) == 0


def test_context_must_be_positive() -> None:
    with pytest.raises(UsageError):
        estimate_vram(CEREBRUM_3_5, None, 0)


def test_qwen1_intermediate_size_counts_both_gated_matrices() -> None:
    # modeling_qwen.py: w1, w2 and c_proj are intermediate_size // 2 wide
    config = {
        "model_type": "qwen", "hidden_size": 4096, "intermediate_size": 22016,
        "num_attention_heads": 32, "num_hidden_layers": 32, "vocab_size": 151936,
    }  # fmt: skip
    assert shape_from_config(config).intermediate_size == 11008
    assert shape_from_config({**config, "model_type": "qwen2"}).intermediate_size == 22016
