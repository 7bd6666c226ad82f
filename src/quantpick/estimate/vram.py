"""How much VRAM one variant needs at one context length, and where that number came from. Pure.

Three provenances, best first:

* ``card``: the card states a figure at this context (and cache mode) for the runtime it assumes;
* ``card-fit``: the card states figures at other contexts; a line through them (checked against the
  KV cache formula, because hand-entered tables have errors) answers for this one;
* ``formula``: weights + KV cache + the runtime's buffers + the CUDA context, from the shape.

VRAM figures are binary (GiB); card file sizes are SI bytes already converted by the parser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from quantpick.card import names
from quantpick.errors import UsageError
from quantpick.estimate.card_fit import (
    SLOPE_TOLERANCE,
    MissingShapeError,
    card_breakdown,
    card_points,
    from_card,
)
from quantpick.estimate.formula import (
    EXL2_BITS_MARGIN,
    EXL2_DEFAULT_HEAD_BITS,
    EXLLAMAV2_CHUNK_TOKENS,
    FP16_BYTES,
    FP32_BYTES,
    GGUF_BITS_PER_WEIGHT,
    KV_BYTES_PER_ELEMENT,
    LLAMACPP_CUDA_CONTEXT_BYTES,
    LLAMACPP_UBATCH_TOKENS,
    MIB,
    TORCH_CUDA_CONTEXT_BYTES,
    TRANSFORMERS_ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN,
    TRANSFORMERS_ALLOCATOR_GAP_KV_FRACTION,
    TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN,
    VLLM_CUDA_GRAPH_BYTES,
    VLLM_GPU_MEMORY_UTILIZATION,
    VLLM_MAX_NUM_SEQS,
    VLLM_PROFILE_TOKENS,
    cuda_context_bytes,
    gguf_bits_per_weight,
    gross_up,
    kv_cache_bytes,
    runtime_buffers_bytes,
    weight_bits,
    weights_bytes,
)
from quantpick.estimate.runtimes import llamacpp
from quantpick.records import (
    Breakdown,
    CacheMode,
    Estimate,
    Format,
    ModelShape,
    Provenance,
    Runtime,
    Source,
    Variant,
)

__all__ = [
    "EXL2_BITS_MARGIN",
    "EXL2_DEFAULT_HEAD_BITS",
    "EXLLAMAV2_CHUNK_TOKENS",
    "FP16_BYTES",
    "FP32_BYTES",
    "GGUF_BITS_PER_WEIGHT",
    "KV_BYTES_PER_ELEMENT",
    "LLAMACPP_CUDA_CONTEXT_BYTES",
    "LLAMACPP_UBATCH_TOKENS",
    "MAX_CONTEXT_SEARCH_TOKENS",
    "MIB",
    "SLOPE_TOLERANCE",
    "TORCH_CUDA_CONTEXT_BYTES",
    "TRANSFORMERS_ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN",
    "TRANSFORMERS_ALLOCATOR_GAP_KV_FRACTION",
    "TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN",
    "VLLM_CUDA_GRAPH_BYTES",
    "VLLM_GPU_MEMORY_UTILIZATION",
    "VLLM_MAX_NUM_SEQS",
    "VLLM_PROFILE_TOKENS",
    "MissingShapeError",
    "cuda_context_bytes",
    "default_runtime",
    "estimate_vram",
    "gguf_bits_per_weight",
    "gguf_quant",
    "kv_cache_bytes",
    "llamacpp_footprint",
    "max_context_tokens",
    "placed_max_context_tokens",
    "runtime_buffers_bytes",
    "weight_bits",
    "weights_bytes",
]


def serving_runtime(asked: Runtime | None, fmt: Format) -> Runtime:
    """The engine that runs a variant: the one asked for, or the format's default. TabbyAPI
    serves exl3 through exllamav3 and exl2 through its legacy exllamav2 backend (its
    backends/ folder); other formats it does not load, and are left to exllamav3 to refuse."""
    if asked is None:
        return default_runtime(fmt)
    if asked is Runtime.TABBYAPI:
        return Runtime.EXLLAMAV2 if fmt is Format.EXL2 else Runtime.EXLLAMAV3
    return asked


def default_runtime(fmt: Format) -> Runtime:
    """The runtime a format is normally served with (and that cards' figures assume)."""
    if fmt is Format.EXL3:
        # exllamav3 (TabbyAPI) is the only runtime that loads exl3; exllamav2 is archived
        return Runtime.EXLLAMAV3
    if fmt is Format.EXL2:
        return Runtime.EXLLAMAV2
    if fmt in (Format.GGUF, Format.GGML):
        return Runtime.LLAMACPP
    return Runtime.TRANSFORMERS


# --- the estimate ---------------------------------------------------------------------------------


def estimate_vram(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode = CacheMode.FP16,
    runtime: Runtime | None = None,
    *,
    card_cache_mode: CacheMode = CacheMode.FP16,
    flash_attn: bool | None = None,
) -> Estimate:
    """VRAM for one variant at one context length.

    ``card_cache_mode``: the cache the card's plain figures assume (ModelCard.vram_cache_mode).
    ``flash_attn``: llama.cpp's -fa (None: its default on CUDA, on).
    Raises MissingShapeError when the card has no usable figure and ``shape`` is None.
    """
    if context_tokens < 1:
        raise UsageError(f"context length must be at least 1 token, not {context_tokens}")
    runtime = serving_runtime(runtime, variant.format)
    if runtime is Runtime.LLAMACPP:
        flash_attn = llamacpp.DEFAULT_FLASH_ATTN if flash_attn is None else flash_attn
        llamacpp.check_cache(cache_mode, flash_attn)
    else:
        flash_attn = None
    card_runtime = default_runtime(variant.format)
    points, points_mode, derived = card_points(variant, cache_mode, card_cache_mode)
    warnings: list[str] = list(weight_bits(variant)[1])
    # a card's figures are for llama.cpp's default (flash attention on); off is a formula question
    if points and runtime is card_runtime and flash_attn is not False:
        card = from_card(variant, shape, context_tokens, cache_mode, runtime, points, points_mode)
        if card is not None:
            total, provenance, card_warnings = card
            if derived:
                provenance = Provenance.CARD_FIT
                warnings.append("from a rule stated in the card's prose, not a table figure")
            return Estimate(
                variant=variant.name,
                context_tokens=context_tokens,
                cache_mode=cache_mode,
                runtime=runtime,
                vram_bytes=round(total),
                provenance=provenance,
                breakdown=card_breakdown(shape, context_tokens, cache_mode, runtime, round(total)),
                weights_source=Source.CARD,
                warnings=(*warnings, *card_warnings),
                flash_attn=flash_attn,
            )
    if points and runtime is not card_runtime:
        warnings.append(
            f"the card's figures assume {card_runtime}; estimated for {runtime} instead"
        )
    return _from_formula(
        variant, shape, context_tokens, cache_mode, runtime, tuple(warnings), flash_attn
    )


def _from_formula(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    warnings: tuple[str, ...],
    flash_attn: bool | None = None,
) -> Estimate:
    if shape is None:
        raise MissingShapeError(
            "no card figure for this context, cache and runtime, and no model shape (config.json)"
            " to compute one"
        )
    weights = weights_bytes(variant, shape, runtime)
    if weights is None:
        raise UsageError(
            f"{variant.name}: neither a size nor bits per weight is known",
            hint="look at the branch on the Hub, or choose a variant the card describes",
        )
    weights_size, weights_source = weights
    if runtime is Runtime.LLAMACPP:
        return _llamacpp_estimate(
            variant, shape, context_tokens, cache_mode, weights, warnings, flash_attn is not False
        )
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    buffers = runtime_buffers_bytes(shape, context_tokens, runtime, kv, cache_mode=cache_mode)
    context = cuda_context_bytes(runtime)
    needed = weights_size + kv + buffers + context
    total = gross_up(runtime, needed)
    notes = list(warnings)
    if runtime is Runtime.VLLM:
        notes.append(
            f"vLLM uses {VLLM_GPU_MEMORY_UTILIZATION:.0%} of the GPU (gpu_memory_utilization): "
            "the total is what the GPU must have"
        )
    return Estimate(
        variant=variant.name,
        context_tokens=context_tokens,
        cache_mode=cache_mode,
        runtime=runtime,
        vram_bytes=total,
        provenance=Provenance.FORMULA,
        breakdown=Breakdown(
            weights_bytes=weights_size,
            kv_cache_bytes=kv,
            runtime_buffers_bytes=buffers + (total - needed),
            cuda_context_bytes=context,
        ),
        weights_source=weights_source,
        warnings=tuple(notes),
    )


def gguf_quant(variant: Variant) -> str | None:
    return variant.quant_method or names.describe(variant.name).quant_method


def llamacpp_footprint(
    variant: Variant,
    shape: ModelShape,
    context_tokens: int,
    cache_mode: CacheMode,
    flash_attn: bool | None,
) -> llamacpp.Footprint | None:
    """The llama.cpp footprint behind a formula estimate; None when the weights cannot be sized."""
    weights = weights_bytes(variant, shape, Runtime.LLAMACPP)
    if weights is None:
        return None
    fa = llamacpp.DEFAULT_FLASH_ATTN if flash_attn is None else flash_attn
    return llamacpp.footprint(
        shape, weights[0], gguf_quant(variant), context_tokens, cache_mode, fa
    )


def _llamacpp_estimate(
    variant: Variant,
    shape: ModelShape,
    context_tokens: int,
    cache_mode: CacheMode,
    weights: tuple[int, Source],
    warnings: tuple[str, ...],
    flash_attn: bool,
) -> Estimate:
    file_bytes, weights_source = weights
    fp = llamacpp.footprint(
        shape, file_bytes, gguf_quant(variant), context_tokens, cache_mode, flash_attn
    )
    return Estimate(
        variant=variant.name,
        context_tokens=context_tokens,
        cache_mode=cache_mode,
        runtime=Runtime.LLAMACPP,
        vram_bytes=fp.total_bytes,
        provenance=Provenance.FORMULA,
        breakdown=Breakdown(
            weights_bytes=fp.weights_bytes,
            kv_cache_bytes=fp.kv_cache_bytes,
            runtime_buffers_bytes=fp.compute_buffer_bytes + fp.pool_bytes,
            cuda_context_bytes=fp.fixed_bytes,
        ),
        weights_source=weights_source,
        warnings=warnings,
        flash_attn=flash_attn,
        host_bytes=fp.host_bytes,
    )


# --- the inverse question -------------------------------------------------------------------------

# where no model maximum is known, the search stops here (1M tokens)
MAX_CONTEXT_SEARCH_TOKENS: Final = 1 << 20


def max_context_tokens(
    variant: Variant,
    shape: ModelShape | None,
    budget_bytes: int,
    cache_mode: CacheMode = CacheMode.FP16,
    runtime: Runtime | None = None,
    *,
    card_cache_mode: CacheMode = CacheMode.FP16,
    flash_attn: bool | None = None,
) -> int:
    """The longest context whose estimate fits ``budget_bytes``; 0 when not even one token fits.

    Capped at the model's own maximum (config.json) when known. Raises like estimate_vram.
    """

    def fits(tokens: int) -> bool:
        estimate = estimate_vram(
            variant,
            shape,
            tokens,
            cache_mode,
            runtime,
            card_cache_mode=card_cache_mode,
            flash_attn=flash_attn,
        )
        return estimate.vram_bytes <= budget_bytes

    limit = (shape.max_context_tokens if shape else None) or MAX_CONTEXT_SEARCH_TOKENS
    return _longest(fits, limit)


def placed_max_context_tokens(
    variant: Variant,
    shape: ModelShape,
    gpu_budgets_bytes: Sequence[int],
    min_layers: int,
    cache_mode: CacheMode = CacheMode.FP16,
    flash_attn: bool | None = None,
) -> int:
    """llama.cpp: the longest context at which at least ``min_layers`` repeating layers still fit,
    whole layers per GPU, each GPU paying its own overhead (llamacpp.place) - not a pooled sum."""

    def fits(tokens: int) -> bool:
        full = llamacpp_footprint(variant, shape, tokens, cache_mode, flash_attn)
        if full is None:
            return False
        placed = llamacpp.place(full, shape, gguf_quant(variant), tokens, gpu_budgets_bytes)
        return placed is not None and sum(placed.layers_per_gpu) >= min_layers

    return _longest(fits, shape.max_context_tokens or MAX_CONTEXT_SEARCH_TOKENS)


def _longest(fits: Callable[[int], bool], limit: int) -> int:
    """Bisection for the largest token count in 1..limit that fits; 0 when 1 does not."""
    if not fits(1):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo
