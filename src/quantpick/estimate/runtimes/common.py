"""What every runtime shares: byte sizes, KV-cache element sizes, tokens per layer. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quantpick.estimate.shape import SLIDING_ATTENTION
from quantpick.records import GIB, CacheMode, ModelShape

MIB: Final = 1 << 20
FP16_BYTES: Final = 2
FP32_BYTES: Final = 4

# --- KV cache: bytes per cached element, (K, V) ---------------------------------------------------
# fp16/fp8 by definition; q8/q4 are llama.cpp's q8_0/q4_0 blocks (32 values + one fp16 scale: 34/32
# and 18/32 bytes; measured exactly on the H200, benchmarks/gpu/llamacpp_h200.json), which
# exllamav2's Q8/Q4 caches match; exllamav2's Q6 cache keeps K at 8 bits, V at 4.
Q8_BYTES: Final = 34 / 32
Q4_BYTES: Final = 18 / 32
KV_BYTES_PER_ELEMENT: Final[Mapping[CacheMode, tuple[float, float]]] = {
    CacheMode.FP16: (2.0, 2.0),
    CacheMode.FP8: (1.0, 1.0),
    CacheMode.Q8: (Q8_BYTES, Q8_BYTES),
    CacheMode.Q6: (Q8_BYTES, Q4_BYTES),
    CacheMode.Q4: (Q4_BYTES, Q4_BYTES),
}

# nvidia-smi "used" minus torch's peak reserved: 0.679-0.687 GiB on every row of
# ../shared/gpu/transformers_fp16_h100.json (H100, torch 2.11); every torch-based runtime pays it.
TORCH_CUDA_CONTEXT_BYTES: Final = round(0.69 * GIB)


def kv_bytes_per_token_per_layer(shape: ModelShape, cache_mode: CacheMode) -> float:
    k_bytes, v_bytes = KV_BYTES_PER_ELEMENT[cache_mode]
    return shape.num_kv_heads * shape.head_dim * (k_bytes + v_bytes)


def layer_kinds(shape: ModelShape) -> tuple[str, ...]:
    """Per-layer attention kind; every layer slides when a window is declared without a pattern."""
    if shape.sliding_window_tokens is None:
        return ()
    return shape.layer_types or (SLIDING_ATTENTION,) * shape.num_layers


def windowed_tokens(shape: ModelShape, context_tokens: int, window_tokens: int | None) -> list[int]:
    """Tokens each layer caches: sliding layers hold at most ``window_tokens``."""
    kinds = layer_kinds(shape)
    if not kinds or window_tokens is None:
        return [context_tokens] * shape.num_layers
    return [
        min(context_tokens, window_tokens) if kind == SLIDING_ATTENTION else context_tokens
        for kind in kinds
    ]
