"""exllamav3 (with TabbyAPI, the live exl runtime; the default for exl3 variants). Pure.

From exllamav3 1.6.5's own mechanics (file names are in the exllamav3 package), measured on an H200
with zero-weight exl3 models of real shapes (benchmarks/exl3_calibrate.py,
benchmarks/gpu/exllamav3_h200.json):

* weights: every linear layer's trellis at its bitrate plus its fp16 ``suh``/``svh``; the
  unquantized embedding table stays in system memory (modules/embedding.py: ``prefer_cpu`` unless
  the table itself is quantized, which the converter does only when asked: ``-eb`` < 16, default
  16; such a table on the GPU is not modelled);
* cache: ``CacheLayer_fp16`` / ``CacheLayer_quant`` allocate ``max_num_tokens`` (a multiple of the
  256-token page, constants.PAGE_SIZE) per layer at load; a quantized cache stores ``bits`` per
  value plus one fp16 scale per 32 values (cache/quant.py) - the same bytes as common's Q8/Q6/Q4;
* prefill in chunks of 2048 tokens (Generator max_chunk_size, TabbyAPI chunk_size); the largest
  transient is the MLP's: gate and up outputs (fp32 on Llama-style models, fp16 where the
  architecture says so), the fp16 activation, the output, and the fp16 weight that
  ``reconstruct_hgemm`` rebuilds for every linear with more than 144 rows (modules/quant/exl3.py);
* a quantized cache is dequantized into an fp16 staging window of at most 256 pages (64k tokens)
  for each prefill chunk, and the auto-split loader allocates that full window once per layer
  while loading (modules/attention_fn/triton_paged.py, Attention.autosplit_extra_measure);
* outside torch's allocator (CUDA context, cuBLAS, the extension's own buffers): 734.8 or 738.8
  MiB on every row, context and shape alike.
"""

from __future__ import annotations

from typing import Final

from quantpick.estimate.runtimes.common import FP16_BYTES, FP32_BYTES, MIB
from quantpick.records import CacheMode, ModelShape

# constants.PAGE_SIZE: the cache is allocated in whole 256-token pages
PAGE_TOKENS: Final = 256
# Generator(max_chunk_size=2048), TabbyAPI's default chunk_size
CHUNK_TOKENS: Final = 2048
# triton_paged._qc_staging_pages (256) x PAGE_SIZE: the quantized cache's fp16 staging window
QC_STAGING_TOKENS: Final = 256 * PAGE_TOKENS
# modules/quant/exl3.py MAX_RECONSTRUCT_SLICE_N: wider matrices are rebuilt in slices of this width
RECONSTRUCT_SLICE_COLUMNS: Final = 32768
# architecture/*.py GatedMLP(interm_dtype=torch.half): these families keep gate/up in fp16; the
# Llama-derived ones (llama, mistral, qwen2, ...) in fp32, which unknown families are assumed to do
FP16_INTERMEDIATE_FAMILIES: Final = frozenset({"qwen3", "qwen3_moe"})
# device memory outside torch's allocator: 770,506,752 or 774,701,056 bytes on every row of
# exllamav3_h200.json whatever the shape or context; the larger
CUDA_CONTEXT_BYTES: Final = 774_701_056
# what torch holds beyond weights, cache and the largest transient: buffers the loader keeps after
# load (its measuring passes, per-shape scratch) plus the caching allocator's slack. Fitted: the
# largest residual over the dense fitted shapes' rows (Llama-3-8B, Qwen2.5-7B: 183-250 MiB) of
# exllamav3_h200.json; the held-out shapes were not used.
PERSISTENT_BYTES: Final = 250 * MIB
# an MoE model's routing buffers beyond that: the largest residual of the one MoE shape measured
# (Qwen3-30B-A3B, 282-318 MiB), so a fitted figure with no held-out MoE to check it
MOE_PERSISTENT_EXTRA_BYTES: Final = 68 * MIB
# the unquantized embedding table is kept in system memory
EMBEDDINGS_ON_GPU: Final = False


def cache_tokens(context_tokens: int) -> int:
    return -(-context_tokens // PAGE_TOKENS) * PAGE_TOKENS


def quantized_cache_extra_bytes(shape: ModelShape, context_tokens: int, mode: CacheMode) -> int:
    """Counted in buffers_bytes: the staging window is a transient, not part of the cache."""
    return 0


def _intermediate_bytes(shape: ModelShape) -> int:
    return FP16_BYTES if shape.architecture in FP16_INTERMEDIATE_FAMILIES else FP32_BYTES


def mlp_transient_bytes(shape: ModelShape, chunk: int) -> int:
    """Live while a prefill chunk's MLP runs its down projection."""
    h, f = shape.hidden_size, shape.intermediate_size
    ib = _intermediate_bytes(shape)
    # gate and up outputs, plus a separate fp16 activation when they are fp32
    per_row = 2 * f * ib + (f * FP16_BYTES if ib != FP16_BYTES else 0)
    stream = chunk * h * (FP32_BYTES + FP16_BYTES + FP32_BYTES)  # residual, its norm, the output
    if shape.num_experts > 1:
        # routed rows: each token's experts_per_token copies, gathered fp16 in, fp32 out
        rows = chunk * shape.num_experts_per_token
        return stream + rows * (per_row + h * (FP16_BYTES + FP32_BYTES))
    rebuilt = f * min(h, RECONSTRUCT_SLICE_COLUMNS) * FP16_BYTES
    return stream + chunk * per_row + rebuilt


def attention_transient_bytes(
    shape: ModelShape, context_tokens: int, chunk: int, mode: CacheMode
) -> int:
    q_dim = shape.num_attention_heads * shape.head_dim
    kv_dim = shape.num_kv_heads * shape.head_dim
    live = chunk * shape.hidden_size * (FP32_BYTES + FP16_BYTES)
    live += chunk * (2 * q_dim + 2 * kv_dim) * FP16_BYTES
    if mode is not CacheMode.FP16:
        window = min(cache_tokens(context_tokens), QC_STAGING_TOKENS)
        live += 2 * window * kv_dim * FP16_BYTES
    return live


def load_measure_bytes(shape: ModelShape, chunk: int, mode: CacheMode) -> int:
    """Attention.autosplit_extra_measure with a quantized cache: the whole staging window for k and
    v, and the sliced form's fp32 accumulator (chunk rounded to 128 x heads x head_dim to a power
    of two)."""
    if mode is CacheMode.FP16:
        return 0
    kv_dim = shape.num_kv_heads * shape.head_dim
    window = 2 * QC_STAGING_TOKENS * kv_dim * FP16_BYTES
    hd_pad = 1 << (shape.head_dim - 1).bit_length()
    acc = -(-chunk // 128) * 128 * shape.num_attention_heads * hd_pad * FP32_BYTES
    return window + acc


def buffers_bytes(
    shape: ModelShape, context_tokens: int, cache_mode: CacheMode = CacheMode.FP16
) -> int:
    chunk = min(context_tokens, CHUNK_TOKENS)
    forward = max(
        mlp_transient_bytes(shape, chunk),
        attention_transient_bytes(shape, context_tokens, chunk, cache_mode),
    )
    persistent = PERSISTENT_BYTES + (MOE_PERSISTENT_EXTRA_BYTES if shape.num_experts > 1 else 0)
    return max(persistent + forward, load_measure_bytes(shape, chunk, cache_mode))
