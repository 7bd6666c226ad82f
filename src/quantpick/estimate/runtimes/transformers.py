"""transformers (fp16/bf16, and GPTQ/AWQ through their kernels): one un-chunked prefill. Pure.

Measured: ../shared/gpu/transformers_fp16_h100.json (H100, batch 1, SDPA); held out in
benchmarks/gpu/transformers_fp16_heldout.json. GPTQ/AWQ kernels were not measured: their
dequantization scratch is not counted.
"""

from __future__ import annotations

from typing import Final

from quantpick.records import ModelShape

# peak_alloc - weights - KV per prompt token, per unit of intermediate_size: 8.32-9.02 over 12 rows
PREFILL_BYTES_PER_TOKEN_PER_FFN: Final = 9.0
# peak_reserved - peak_alloc (allocator fragmentation) fitted over the same 12 rows as
# 0.31 x KV bytes + 1.38 bytes x intermediate_size per token (residuals < 0.12 GiB)
ALLOCATOR_GAP_KV_FRACTION: Final = 0.31
ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN: Final = 1.38


def buffers_bytes(shape: ModelShape, context_tokens: int, kv_bytes: int) -> int:
    prefill = PREFILL_BYTES_PER_TOKEN_PER_FFN * shape.intermediate_size * context_tokens
    gap = (
        ALLOCATOR_GAP_KV_FRACTION * kv_bytes
        + ALLOCATOR_GAP_BYTES_PER_TOKEN_PER_FFN * shape.intermediate_size * context_tokens
    )
    return round(prefill + gap)
