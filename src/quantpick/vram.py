"""How much VRAM one variant needs at one context length, and where that number came from. Pure.

Three provenances, best first:

* ``card``: the card states a figure at this context (and cache mode) for the runtime it assumes;
* ``card-fit``: the card states figures at other contexts; a line through them (checked against the
  KV cache formula, because hand-entered tables have errors) answers for this one;
* ``formula``: weights + KV cache + the runtime's buffers + the CUDA context, from the shape.

VRAM figures are binary (GiB); card file sizes are SI bytes already converted by the parser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from quantpick import names
from quantpick.errors import UsageError
from quantpick.records import (
    GIB,
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
from quantpick.shape import (
    SLIDING_ATTENTION,
    embedding_parameters,
    head_parameters,
    layer_linear_parameters,
    parameter_count,
)

MIB: Final = 1 << 20
FP16_BYTES: Final = 2
FP32_BYTES: Final = 4

# --- KV cache: bytes per cached element, (K, V) ---------------------------------------------------
# fp16/fp8 by definition; q8/q4 are llama.cpp's q8_0/q4_0 blocks (32 values + one fp16 scale: 34/32
# and 18/32 bytes), which exllamav2's Q8/Q4 caches match; exllamav2's Q6 cache keeps K at 8 bits, V
# at 4.
_Q8_BYTES: Final = 34 / 32
_Q4_BYTES: Final = 18 / 32
KV_BYTES_PER_ELEMENT: Final[Mapping[CacheMode, tuple[float, float]]] = {
    CacheMode.FP16: (2.0, 2.0),
    CacheMode.FP8: (1.0, 1.0),
    CacheMode.Q8: (_Q8_BYTES, _Q8_BYTES),
    CacheMode.Q6: (_Q8_BYTES, _Q4_BYTES),
    CacheMode.Q4: (_Q4_BYTES, _Q4_BYTES),
}

# --- CUDA context ---------------------------------------------------------------------------------
# nvidia-smi "used" minus torch's peak reserved: 0.679-0.687 GiB on every row of
# ../shared/gpu/transformers_fp16_h100.json (H100, torch 2.11); every torch-based runtime pays it.
TORCH_CUDA_CONTEXT_BYTES: Final = round(0.69 * GIB)
# llama.cpp loads no torch: the bare CUDA context plus cuBLAS handles. Not measured here; 0.5 GiB is
# an upper figure for recent drivers with lazy module loading (llama.cpp issue reports: 0.3-0.5
# GiB).
LLAMACPP_CUDA_CONTEXT_BYTES: Final = GIB // 2

# --- exllamav2 (source: exllamav2 config.py / mlp.py / attn.py scratch sizes) ---------------------
# ExLlamaV2Config.max_input_len: prefill runs in chunks of this many tokens
EXLLAMAV2_CHUNK_TOKENS: Final = 2048
# exl2 converter's default head (lm_head) precision when the name does not say (convert.py -hb 6)
EXL2_DEFAULT_HEAD_BITS: Final = 6.0
# an exl2 "bpw" is the optimizer's target, met per layer from discrete options; where only the bits
# are known (no Hub file sizes), size them this much above nominal. Evidence: bartowski's VRAM
# tables for Mixtral-8x7B (Cerebrum) and Mistral-22B grow 5.7% and 7% faster per bit than nominal
# bits x parameters, his 2x7B and suparious' 7B tables not at all; 3% splits the difference on the
# safe side.
EXL2_BITS_MARGIN: Final = 0.03

# --- transformers (measured: ../shared/gpu/transformers_fp16_h100.json, batch 1, SDPA) ------------
# peak_alloc - weights - KV per prompt token, per unit of intermediate_size: 8.32-9.02 over 12 rows
TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN: Final = 9.0
# peak_reserved - peak_alloc (allocator fragmentation) fitted over the same 12 rows as
# 0.31 x KV bytes + 1.38 bytes x intermediate_size per token (residuals < 0.12 GiB)
TRANSFORMERS_ALLOCATOR_GAP_KV_FRACTION: Final = 0.31
TRANSFORMERS_ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN: Final = 1.38

# --- llama.cpp (source: llama.cpp graph reservation for one ubatch, flash attention on by default)
# llama_context_params.n_ubatch default
LLAMACPP_UBATCH_TOKENS: Final = 512
# worst-case compute graph per ubatch token: fp32 logits over the vocab, gate/up/act FFN rows, and a
# handful of hidden-size rows (norms, residual, Q/K/V/O) - counted as 3 x ffn + 16 x hidden fp32
# values
LLAMACPP_FFN_ROWS: Final = 3
LLAMACPP_HIDDEN_ROWS: Final = 16
# the fp16 KQ mask: context x ubatch, the one compute tensor that grows with context under flash
# attention
LLAMACPP_MASK_BYTES: Final = FP16_BYTES

# --- vLLM (source: vLLM EngineArgs defaults) ------------------------------------------------------
# the share of the GPU vLLM takes; everything it needs must fit inside it
VLLM_GPU_MEMORY_UTILIZATION: Final = 0.9
# the profiling run pushes max_num_batched_tokens through the model (V1 default for offline use)
VLLM_PROFILE_TOKENS: Final = 8192
# sampler logits for max_num_seqs sequences
VLLM_MAX_NUM_SEQS: Final = 256
# CUDA graphs captured for decode batch sizes (vLLM logs 0.3-1 GiB on 7B-70B models)
VLLM_CUDA_GRAPH_BYTES: Final = GIB // 2

# --- card-fit -------------------------------------------------------------------------------------
# a card's per-token growth this far from the KV formula's is reported: rounding to 0.1 GB over a
# 12k-token step already moves the slope by ~7%, so only larger gaps mean a wrong table or another
# cache mode
SLOPE_TOLERANCE: Final = 0.25

# GGUF/GGML effective bits per weight of each llama.cpp type mix, embeddings and output included:
# file bytes x 8 / parameters of llama.cpp quantize's reference models; i-quants as quantize lists
# them.
GGUF_BITS_PER_WEIGHT: Final[Mapping[str, float]] = {
    "F32": 32.0,
    "F16": 16.0,
    "FP16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_1": 6.0,
    "Q5_K_M": 5.69,
    "Q5_K": 5.69,
    "Q5_K_S": 5.54,
    "Q5_0": 5.54,
    "Q4_1": 5.0,
    "Q4_K_M": 4.85,
    "Q4_K": 4.85,
    "Q4_K_S": 4.58,
    "Q4_0": 4.55,
    "IQ4_NL": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K": 3.91,
    "IQ3_M": 3.66,
    "Q3_K_S": 3.5,
    "IQ3_S": 3.44,
    "IQ3_XS": 3.3,
    "IQ3_XXS": 3.06,
    "Q2_K": 3.0,
    "Q2_K_S": 2.96,
    "IQ2_M": 2.7,
    "IQ2_S": 2.5,
    "IQ2_XS": 2.31,
    "IQ2_XXS": 2.06,
    "TQ2_0": 2.06,
    "IQ1_M": 1.75,
    "TQ1_0": 1.69,
    "IQ1_S": 1.56,
}
# bartowski's _L / _XL keep embeddings and output at Q8_0: a little more than the base type
_GGUF_SUFFIX_BONUS: Final = {"_XL": 0.1, "_L": 0.05}


class MissingShapeError(UsageError):
    """The card gives no usable figure and no model shape is known."""

    default_hint = "pass the model's config.json with --config FILE"


def default_runtime(fmt: Format) -> Runtime:
    """The runtime a format is normally served with (and that cards' figures assume)."""
    if fmt in (Format.EXL2, Format.EXL3):
        return Runtime.EXLLAMAV2
    if fmt in (Format.GGUF, Format.GGML):
        return Runtime.LLAMACPP
    return Runtime.TRANSFORMERS


def gguf_bits_per_weight(quant_method: str | None) -> float | None:
    """Nominal bpw of a llama.cpp type (``Q4_K_M``, ``i1-IQ3_XS``, ``q5_k_m``, ``Q6_K_L``)."""
    if not quant_method:
        return None
    key = quant_method.upper().removeprefix("I1-")
    if key in GGUF_BITS_PER_WEIGHT:
        return GGUF_BITS_PER_WEIGHT[key]
    for suffix, bonus in _GGUF_SUFFIX_BONUS.items():
        base = key.removesuffix(suffix)
        if base != key:
            # Q3_K_XL is Q3_K_L with Q8_0 embeddings; Q5_K_L is Q5_K(_M) with them
            order = (f"{base}_L", base) if suffix == "_XL" else (base, f"{base}_M")
            for candidate in order:
                if candidate in GGUF_BITS_PER_WEIGHT:
                    return GGUF_BITS_PER_WEIGHT[candidate] + bonus
    return None


# --- KV cache -------------------------------------------------------------------------------------


def _caps_sliding_window(runtime: Runtime) -> bool:
    # exllamav2 allocates every layer's cache at max_seq_len whatever the attention window
    return runtime is not Runtime.EXLLAMAV2


def _cached_tokens_per_layer(shape: ModelShape, context_tokens: int, runtime: Runtime) -> list[int]:
    window = shape.sliding_window_tokens
    if window is None or not _caps_sliding_window(runtime):
        return [context_tokens] * shape.num_layers
    kinds = shape.layer_types or (SLIDING_ATTENTION,) * shape.num_layers
    return [
        min(context_tokens, window) if kind == SLIDING_ATTENTION else context_tokens
        for kind in kinds
    ]


def kv_cache_bytes(
    shape: ModelShape,
    context_tokens: int,
    cache_mode: CacheMode = CacheMode.FP16,
    runtime: Runtime = Runtime.TRANSFORMERS,
) -> int:
    """K and V for every layer: tokens x kv_heads x head_dim x bytes per element, windows capped."""
    k_bytes, v_bytes = KV_BYTES_PER_ELEMENT[cache_mode]
    per_token_per_layer = shape.num_kv_heads * shape.head_dim * (k_bytes + v_bytes)
    cached = sum(_cached_tokens_per_layer(shape, context_tokens, runtime))
    total = cached * per_token_per_layer
    if runtime is Runtime.EXLLAMAV2 and cache_mode is not CacheMode.FP16:
        # quantized caches dequantize one layer at a time into an fp16 buffer of full length
        total += context_tokens * shape.num_kv_heads * shape.head_dim * 2 * FP16_BYTES
    return round(total)


# --- runtime buffers ------------------------------------------------------------------------------


def _exllamav2_buffers(shape: ModelShape, context_tokens: int) -> int:
    chunk = min(context_tokens, EXLLAMAV2_CHUNK_TOKENS)
    logits = shape.vocab_size * chunk * FP32_BYTES
    # one scratch area shared by all modules, sized for the largest: the MLP's
    # temp_state/temp_a/temp_b plus the fp16 dequantization buffer for its largest matrix
    mlp = chunk * (2 * shape.hidden_size + 2 * shape.intermediate_size) * FP16_BYTES
    dequant = shape.hidden_size * shape.intermediate_size * FP16_BYTES
    attention = (
        chunk * (shape.num_attention_heads + 2 * shape.num_kv_heads) * shape.head_dim * FP16_BYTES
    )
    return logits + max(mlp, attention) + dequant


def _transformers_buffers(shape: ModelShape, context_tokens: int, kv_bytes: int) -> int:
    # one un-chunked prefill of the whole context, then the allocator's fragmentation on top
    prefill = (
        TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN * shape.intermediate_size * context_tokens
    )
    gap = (
        TRANSFORMERS_ALLOCATOR_GAP_KV_FRACTION * kv_bytes
        + TRANSFORMERS_ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN
        * shape.intermediate_size
        * context_tokens
    )
    return round(prefill + gap)


def _llamacpp_buffers(shape: ModelShape, context_tokens: int) -> int:
    ubatch = min(context_tokens, LLAMACPP_UBATCH_TOKENS)
    per_token = (
        shape.vocab_size
        + LLAMACPP_FFN_ROWS * shape.intermediate_size
        + LLAMACPP_HIDDEN_ROWS * shape.hidden_size
    ) * FP32_BYTES
    mask = context_tokens * ubatch * LLAMACPP_MASK_BYTES
    return ubatch * per_token + mask


def _vllm_buffers(shape: ModelShape, context_tokens: int) -> int:
    tokens = min(context_tokens, VLLM_PROFILE_TOKENS)
    activations = TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN * shape.intermediate_size * tokens
    sampler = VLLM_MAX_NUM_SEQS * shape.vocab_size * FP32_BYTES
    return round(activations) + sampler + VLLM_CUDA_GRAPH_BYTES


def runtime_buffers_bytes(
    shape: ModelShape, context_tokens: int, runtime: Runtime, kv_bytes: int = 0
) -> int:
    """Activations, logits, scratch and allocator slack beyond weights and KV cache."""
    if runtime is Runtime.EXLLAMAV2:
        return _exllamav2_buffers(shape, context_tokens)
    if runtime is Runtime.LLAMACPP:
        return _llamacpp_buffers(shape, context_tokens)
    if runtime is Runtime.VLLM:
        return _vllm_buffers(shape, context_tokens)
    return _transformers_buffers(shape, context_tokens, kv_bytes)


def cuda_context_bytes(runtime: Runtime) -> int:
    return LLAMACPP_CUDA_CONTEXT_BYTES if runtime is Runtime.LLAMACPP else TORCH_CUDA_CONTEXT_BYTES


def _context_dependent_bytes(
    shape: ModelShape, context_tokens: int, cache_mode: CacheMode, runtime: Runtime
) -> int:
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    return kv + runtime_buffers_bytes(shape, context_tokens, runtime, kv)


def _gross_up(runtime: Runtime, needed: int) -> int:
    # vLLM only uses gpu_memory_utilization of the card: the GPU must be that much larger
    if runtime is Runtime.VLLM:
        return round(needed / VLLM_GPU_MEMORY_UTILIZATION)
    return needed


# --- weights --------------------------------------------------------------------------------------


def weight_bits(variant: Variant) -> tuple[float | None, tuple[str, ...]]:
    """Bits per weight for sizing; where the card and the name disagree, the larger (safer) one."""
    named = names.describe(variant.name).bits
    stated = variant.bits
    if stated is not None and named is not None and abs(stated - named) > 1e-6:
        return max(stated, named), (
            f"the card says {stated:g} bits but the name {variant.name} says {named:g}; "
            "sizing from bits uses the larger",
        )
    return (stated if stated is not None else named), ()


def _bits_weights_bytes(variant: Variant, shape: ModelShape, runtime: Runtime) -> int | None:
    bits, _ = weight_bits(variant)
    linear = shape.num_layers * layer_linear_parameters(shape)
    embed, head = embedding_parameters(shape), head_parameters(shape)
    if variant.format in (Format.GGUF, Format.GGML):
        bpw = gguf_bits_per_weight(variant.quant_method) or bits
        return None if bpw is None else round(parameter_count(shape) * bpw / 8)
    if bits is None:
        return None
    if variant.format in (Format.EXL2, Format.EXL3):
        head_bits = (
            variant.head_bits or names.describe(variant.name).head_bits or EXL2_DEFAULT_HEAD_BITS
        )
        on_gpu_embed = 0 if runtime is Runtime.EXLLAMAV2 else embed * FP16_BYTES
        quantized = (linear * bits + head * head_bits) / 8 * (1 + EXL2_BITS_MARGIN)
        return round(quantized + on_gpu_embed)
    if variant.format in (Format.GPTQ, Format.AWQ):
        # per group: one fp16 scale and one packed zero point; no grouping = one per output column
        group = variant.group_size or shape.hidden_size
        return round(linear * (bits + (16 + bits) / group) / 8 + (embed + head) * FP16_BYTES)
    return round(parameter_count(shape) * bits / 8)


def weights_bytes(
    variant: Variant, shape: ModelShape | None, runtime: Runtime
) -> tuple[int, Source] | None:
    """Weights on the GPU: the Hub's real file sizes, else the card's, else bits x parameters."""
    if variant.size_bytes is not None:
        size = variant.size_bytes
        if runtime is Runtime.EXLLAMAV2 and shape is not None:
            # exllamav2 keeps the embedding table in system RAM
            size -= embedding_parameters(shape) * FP16_BYTES
        return max(size, 0), variant.size_source or Source.CARD
    if shape is None:
        return None
    estimated = _bits_weights_bytes(variant, shape, runtime)
    return None if estimated is None else (estimated, Source.ESTIMATE)


# --- card figures ---------------------------------------------------------------------------------


def _card_points(
    variant: Variant, cache_mode: CacheMode, card_cache_mode: CacheMode
) -> tuple[dict[int, int], CacheMode, bool]:
    """The figures to fit, the cache mode they were taken at, and whether they are prose-derived."""
    if variant.vram_bytes_by_cache.get(cache_mode):
        return dict(variant.vram_bytes_by_cache[cache_mode]), cache_mode, False
    if variant.vram_bytes:
        return dict(variant.vram_bytes), card_cache_mode, False
    for mode, figures in variant.vram_bytes_by_cache.items():
        if figures:
            return dict(figures), mode, False
    return dict(variant.vram_derived_bytes), card_cache_mode, True


def _line(a: tuple[int, int], b: tuple[int, int], at: int) -> float:
    (x0, y0), (x1, y1) = a, b
    return y0 + (y1 - y0) * (at - x0) / (x1 - x0)


def _fitted_slope(points: Mapping[int, int]) -> float:
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    return num / den


def _card_fit(
    points: Mapping[int, int],
    context_tokens: int,
    formula_growth: Callable[[int, int], float] | None,
) -> tuple[float, tuple[str, ...]]:
    """Interpolate between bracketing figures; extrapolate from the nearest by the formula's growth.

    ``formula_growth(a, b)`` is what the formula adds from context a to b (KV cache and buffers).
    """
    ordered = sorted(points.items())
    warnings: list[str] = []
    below = [p for p in ordered if p[0] <= context_tokens]
    above = [p for p in ordered if p[0] >= context_tokens]
    card_slope = _fitted_slope(points) if len(ordered) >= 2 else None
    if formula_growth is not None and card_slope is not None:
        lo, hi = ordered[0][0], ordered[-1][0]
        formula_slope = formula_growth(lo, hi) / (hi - lo)
        if formula_slope > 0 and abs(card_slope - formula_slope) > SLOPE_TOLERANCE * formula_slope:
            warnings.append(
                f"the card's figures grow {card_slope * 1024 / GIB:.3f} GiB per 1k tokens but "
                f"the KV cache formula says {formula_slope * 1024 / GIB:.3f}: the table may have "
                "an error or assume another cache mode; the larger estimate is used"
            )
        else:
            card_slope = None  # they agree: the formula is the more precise of the two
    if below and above:
        if below[-1][0] == above[0][0]:
            return below[-1][1], tuple(warnings)
        return _line(below[-1], above[0], context_tokens), tuple(warnings)
    anchor_ctx, anchor_bytes = below[-1] if below else above[0]
    guesses = []
    if formula_growth is not None:
        guesses.append(anchor_bytes + formula_growth(anchor_ctx, context_tokens))
    if card_slope is not None:
        guesses.append(anchor_bytes + card_slope * (context_tokens - anchor_ctx))
    if not guesses and context_tokens < anchor_ctx:
        warnings.append(
            f"only the card's figure at {anchor_ctx} tokens is known: an over-estimate here"
        )
        return anchor_bytes, tuple(warnings)
    if not guesses:
        raise MissingShapeError(
            f"the card gives one VRAM figure (at {anchor_ctx} tokens) and no model shape is known "
            f"to extend it to {context_tokens} tokens"
        )
    return max(guesses), tuple(warnings)


# --- the estimate ---------------------------------------------------------------------------------


def estimate_vram(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode = CacheMode.FP16,
    runtime: Runtime | None = None,
    *,
    card_cache_mode: CacheMode = CacheMode.FP16,
) -> Estimate:
    """VRAM for one variant at one context length.

    ``card_cache_mode``: the cache the card's plain figures assume (ModelCard.vram_cache_mode).
    Raises MissingShapeError when the card has no usable figure and ``shape`` is None.
    """
    if context_tokens < 1:
        raise UsageError(f"context length must be at least 1 token, not {context_tokens}")
    runtime = runtime or default_runtime(variant.format)
    card_runtime = default_runtime(variant.format)
    points, points_mode, derived = _card_points(variant, cache_mode, card_cache_mode)
    warnings: list[str] = list(weight_bits(variant)[1])
    if points and runtime is card_runtime:
        card = _from_card(variant, shape, context_tokens, cache_mode, runtime, points, points_mode)
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
                breakdown=_card_breakdown(shape, context_tokens, cache_mode, runtime, round(total)),
                weights_source=Source.CARD,
                warnings=(*warnings, *card_warnings),
            )
    if points and runtime is not card_runtime:
        warnings.append(
            f"the card's figures assume {card_runtime}; estimated for {runtime} instead"
        )
    return _from_formula(variant, shape, context_tokens, cache_mode, runtime, tuple(warnings))


def _from_card(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    points: Mapping[int, int],
    points_mode: CacheMode,
) -> tuple[float, Provenance, tuple[str, ...]] | None:
    warnings: list[str] = []
    if points_mode is not cache_mode and shape is None:
        return None
    if context_tokens in points and points_mode is cache_mode:
        return points[context_tokens], Provenance.CARD, ()
    growth: Callable[[int, int], float] | None = None
    if shape is not None:
        known: ModelShape = shape

        def growth(a: int, b: int) -> float:
            return _context_dependent_bytes(
                known, b, points_mode, runtime
            ) - _context_dependent_bytes(known, a, points_mode, runtime)

    total, fit_warnings = _card_fit(points, context_tokens, growth)
    warnings.extend(fit_warnings)
    if points_mode is not cache_mode:
        assert shape is not None
        total += kv_cache_bytes(shape, context_tokens, cache_mode, runtime) - kv_cache_bytes(
            shape, context_tokens, points_mode, runtime
        )
        warnings.append(
            f"the card's figures are for a {points_mode} cache; adjusted to {cache_mode}"
        )
    return total, Provenance.CARD_FIT, tuple(warnings)


def _card_breakdown(
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    total: int,
) -> Breakdown | None:
    """The formula's parts of a card figure; weights are what remains of the card's total."""
    if shape is None:
        return None
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    buffers = runtime_buffers_bytes(shape, context_tokens, runtime, kv)
    context = cuda_context_bytes(runtime)
    return Breakdown(
        weights_bytes=max(total - kv - buffers - context, 0),
        kv_cache_bytes=kv,
        runtime_buffers_bytes=buffers,
        cuda_context_bytes=context,
    )


def _from_formula(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    warnings: tuple[str, ...],
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
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    buffers = runtime_buffers_bytes(shape, context_tokens, runtime, kv)
    context = cuda_context_bytes(runtime)
    needed = weights_size + kv + buffers + context
    total = _gross_up(runtime, needed)
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
) -> int:
    """The longest context whose estimate fits ``budget_bytes``; 0 when not even one token fits.

    Capped at the model's own maximum (config.json) when known. Raises like estimate_vram.
    """

    def fits(tokens: int) -> bool:
        estimate = estimate_vram(
            variant, shape, tokens, cache_mode, runtime, card_cache_mode=card_cache_mode
        )
        return estimate.vram_bytes <= budget_bytes

    limit = (shape.max_context_tokens if shape else None) or MAX_CONTEXT_SEARCH_TOKENS
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
