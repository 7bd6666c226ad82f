"""exllamav3 (with TabbyAPI, the live exl runtime; the default for exl3 variants). Pure.

Not measured here: the device time left after the llama.cpp runs did not cover exllamav3's JIT
build (177 .cu + 25 .cpp sources) plus a sweep; benchmarks/RESULTS.md says exactly what blocks it.
Until then the profile is exllamav2's mechanics where exllamav3 keeps them, on the safe side where
it is unknown:

* chunked prefill: Generator/Model.prefill default max_chunk_size 2048 (exllamav3 generator.py);
* cache: CacheLayer_fp16 allocates max_num_tokens cells per layer, every layer (no sliding-window
  cap); CacheLayer_quant stores k_bits/v_bits per value plus an fp16 scale per 32 values, and
  dequantizes one layer into fp16 for attention (counted as exllamav2 does);
* embeddings: counted on the GPU (exllamav2 keeps them in RAM; exllamav3's placement is not
  checked here, so the larger figure).
"""

from __future__ import annotations

from typing import Final

from quantpick.estimate.runtimes import exllamav2
from quantpick.records import CacheMode, ModelShape

CHUNK_TOKENS: Final = 2048
EMBEDDINGS_ON_GPU: Final = True


def quantized_cache_extra_bytes(shape: ModelShape, context_tokens: int, mode: CacheMode) -> int:
    return exllamav2.quantized_cache_extra_bytes(shape, context_tokens, mode)


def buffers_bytes(shape: ModelShape, context_tokens: int) -> int:
    return exllamav2.buffers_bytes(shape, context_tokens, CHUNK_TOKENS)
