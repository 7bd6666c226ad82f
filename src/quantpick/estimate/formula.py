"""The VRAM formula's parts from the shape, dispatched to the runtime profiles in runtimes/; the
weights (GGUF type sizes, bits x parameters) here. Pure.

Every constant names its source (a runtime's code or defaults, or a measurement in benchmarks/gpu).
VRAM figures are binary (GiB); card file sizes are SI bytes already converted by the parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quantpick.card import names
from quantpick.estimate.runtimes import exllamav2, exllamav3, llamacpp, transformers, vllm
from quantpick.estimate.runtimes.common import (
    FP16_BYTES,
    FP32_BYTES,
    KV_BYTES_PER_ELEMENT,
    MIB,
    TORCH_CUDA_CONTEXT_BYTES,
    kv_bytes_per_token_per_layer,
    windowed_tokens,
)
from quantpick.estimate.shape import (
    embedding_parameters,
    head_parameters,
    layer_linear_parameters,
    parameter_count,
)
from quantpick.records import (
    CacheMode,
    Format,
    ModelShape,
    Runtime,
    Source,
    Variant,
)

__all__ = ["FP16_BYTES", "FP32_BYTES", "KV_BYTES_PER_ELEMENT", "MIB", "TORCH_CUDA_CONTEXT_BYTES"]

# the names tests and benchmarks have always read here; each runtime module holds the source
EXLLAMAV2_CHUNK_TOKENS: Final = exllamav2.CHUNK_TOKENS
EXL2_DEFAULT_HEAD_BITS: Final = exllamav2.EXL2_DEFAULT_HEAD_BITS
EXL2_BITS_MARGIN: Final = exllamav2.EXL2_BITS_MARGIN
LLAMACPP_UBATCH_TOKENS: Final = llamacpp.N_UBATCH
LLAMACPP_CUDA_CONTEXT_BYTES: Final = llamacpp.CUDA_CONTEXT_BYTES + llamacpp.RUNTIME_FIXED_BYTES
TRANSFORMERS_PREFILL_BYTES_PER_TOKEN_PER_FFN: Final = transformers.PREFILL_BYTES_PER_TOKEN_PER_FFN
TRANSFORMERS_ALLOCATOR_GAP_KV_FRACTION: Final = transformers.ALLOCATOR_GAP_KV_FRACTION
TRANSFORMERS_ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN: Final = (
    transformers.ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN
)
VLLM_GPU_MEMORY_UTILIZATION: Final = vllm.GPU_MEMORY_UTILIZATION
VLLM_PROFILE_TOKENS: Final = vllm.PROFILE_TOKENS
VLLM_MAX_NUM_SEQS: Final = vllm.MAX_NUM_SEQS
VLLM_CUDA_GRAPH_BYTES: Final = vllm.CUDA_GRAPH_BYTES

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

_EXL = {Runtime.EXLLAMAV2: exllamav2, Runtime.EXLLAMAV3: exllamav3}


def kv_cache_bytes(
    shape: ModelShape,
    context_tokens: int,
    cache_mode: CacheMode = CacheMode.FP16,
    runtime: Runtime = Runtime.TRANSFORMERS,
) -> int:
    """K and V for every layer: tokens x kv_heads x head_dim x bytes per element, windows capped
    as the runtime caps them."""
    if runtime is Runtime.LLAMACPP:
        return llamacpp.kv_cache_bytes(shape, context_tokens, cache_mode)
    per_token_per_layer = kv_bytes_per_token_per_layer(shape, cache_mode)
    # exllamav2/v3 allocate every layer's cache at max_seq_len whatever the attention window
    window = None if runtime in _EXL else shape.sliding_window_tokens
    if runtime is Runtime.EXLLAMAV3:
        context_tokens = exllamav3.cache_tokens(context_tokens)
    total = sum(windowed_tokens(shape, context_tokens, window)) * per_token_per_layer
    if runtime in _EXL:
        total += _EXL[runtime].quantized_cache_extra_bytes(shape, context_tokens, cache_mode)
    return round(total)


# --- runtime buffers ------------------------------------------------------------------------------


def runtime_buffers_bytes(
    shape: ModelShape,
    context_tokens: int,
    runtime: Runtime,
    kv_bytes: int = 0,
    *,
    cache_mode: CacheMode = CacheMode.FP16,
    flash_attn: bool | None = None,
) -> int:
    """Activations, logits, scratch and allocator slack beyond weights and KV cache."""
    if runtime is Runtime.EXLLAMAV3:
        return exllamav3.buffers_bytes(shape, context_tokens, cache_mode)
    if runtime is Runtime.EXLLAMAV2:
        return int(exllamav2.buffers_bytes(shape, context_tokens))
    if runtime is Runtime.LLAMACPP:
        fa = llamacpp.DEFAULT_FLASH_ATTN if flash_attn is None else flash_attn
        return llamacpp.compute_buffer_bytes(
            shape, context_tokens, cache_mode, fa
        ) + llamacpp.pool_bytes(shape, context_tokens, fa)
    if runtime is Runtime.VLLM:
        return vllm.buffers_bytes(shape, context_tokens)
    return transformers.buffers_bytes(shape, context_tokens, kv_bytes)


def cuda_context_bytes(runtime: Runtime) -> int:
    """What each GPU pays before any buffer: the CUDA context (+ cuBLAS for llama.cpp)."""
    if runtime is Runtime.LLAMACPP:
        return LLAMACPP_CUDA_CONTEXT_BYTES
    if runtime is Runtime.EXLLAMAV3:
        return exllamav3.CUDA_CONTEXT_BYTES
    return TORCH_CUDA_CONTEXT_BYTES


def context_dependent_bytes(
    shape: ModelShape, context_tokens: int, cache_mode: CacheMode, runtime: Runtime
) -> int:
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    return kv + runtime_buffers_bytes(shape, context_tokens, runtime, kv, cache_mode=cache_mode)


def gross_up(runtime: Runtime, needed: int) -> int:
    return vllm.gross_up(needed) if runtime is Runtime.VLLM else needed


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
    if variant.format is Format.EXL3:
        # exllamav3's converter always writes a quantized lm_head, tied source or not
        # (conversion/quant_config.py update_config)
        head = shape.vocab_size * shape.hidden_size
    if variant.format in (Format.GGUF, Format.GGML):
        bpw = gguf_bits_per_weight(variant.quant_method) or bits
        return None if bpw is None else round(parameter_count(shape) * bpw / 8)
    if bits is None:
        return None
    if variant.format in (Format.EXL2, Format.EXL3):
        head_bits = (
            variant.head_bits or names.describe(variant.name).head_bits or EXL2_DEFAULT_HEAD_BITS
        )
        on_gpu = runtime not in _EXL or _EXL[runtime].EMBEDDINGS_ON_GPU
        on_gpu_embed = embed * FP16_BYTES if on_gpu else 0
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
    """Weights on the GPU: the tensors' bytes from the file headers, else the Hub's real file
    sizes (which also count tokenizer and other files), else the card's, else bits x parameters."""
    exact = variant.weights_bytes if variant.weights_source is Source.HEADER else None
    if exact is not None or variant.size_bytes is not None:
        size = exact if exact is not None else variant.size_bytes or 0
        if runtime in _EXL and not _EXL[runtime].EMBEDDINGS_ON_GPU and shape is not None:
            # exllamav2 keeps the embedding table in system RAM
            size -= embedding_parameters(shape) * FP16_BYTES
        source = Source.HEADER if exact is not None else variant.size_source or Source.CARD
        return max(size, 0), source
    if shape is None:
        return None
    estimated = _bits_weights_bytes(variant, shape, runtime)
    return None if estimated is None else (estimated, Source.ESTIMATE)
