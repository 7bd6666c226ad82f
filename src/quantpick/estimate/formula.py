"""The VRAM formula's parts from the shape: KV cache, runtime buffers, CUDA context, weights. Pure.

Every constant names its source (a runtime's code or defaults, or a measurement in ../shared/gpu).
VRAM figures are binary (GiB); card file sizes are SI bytes already converted by the parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quantpick.card import names
from quantpick.estimate.shape import (
    SLIDING_ATTENTION,
    embedding_parameters,
    head_parameters,
    layer_linear_parameters,
    parameter_count,
)
from quantpick.records import (
    GIB,
    CacheMode,
    Format,
    ModelShape,
    Runtime,
    Source,
    Variant,
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


def context_dependent_bytes(
    shape: ModelShape, context_tokens: int, cache_mode: CacheMode, runtime: Runtime
) -> int:
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    return kv + runtime_buffers_bytes(shape, context_tokens, runtime, kv)


def gross_up(runtime: Runtime, needed: int) -> int:
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
