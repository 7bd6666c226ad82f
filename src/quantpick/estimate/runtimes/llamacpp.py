"""llama.cpp on CUDA: what it allocates on each GPU, from its own mechanics. Pure.

Source: llama.cpp 0c1e57098 (the tree inside llama-cpp-python 0.3.36), with every figure checked
against the H200 measurements in benchmarks/gpu/llamacpp_h200.json (benchmarks/llamacpp_calibrate.py
says how they were taken). What a GPU holds:

* weights: every tensor of the offloaded layers; the token-embedding table stays in host memory
  (the input layer is always on the CPU), except that a tied output head is a GPU copy of it;
* KV cache: n_ctx (padded to 256) cells per full-attention layer, window + n_ubatch per sliding
  one (swa_full off, common/common.h's default), K and V at their cache types;
* compute buffer: the scheduler reserves the worst-case graph of one ubatch at init (flat in n_ctx
  with flash attention, n_ctx x n_ubatch x heads without it);
* the CUDA pool that grows during the first long prefill, the CUDA context and cuBLAS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from quantpick.errors import UsageError
from quantpick.estimate.runtimes.common import (
    FP16_BYTES,
    FP32_BYTES,
    MIB,
    kv_bytes_per_token_per_layer,
    layer_kinds,
)
from quantpick.estimate.shape import SLIDING_ATTENTION
from quantpick.records import CacheMode, ModelShape, Record

# --- defaults (common/common.h: what llama-cli and llama-server run) --------------------------
N_BATCH: Final = 2048
N_UBATCH: Final = 512
# llama_context: cparams.n_ctx = GGML_PAD(n_ctx, 256)
CONTEXT_PAD: Final = 256
# common.h flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO, which llama_context resolves to enabled
# whenever the device supports the op (every CUDA GPU llama.cpp builds for)
DEFAULT_FLASH_ATTN: Final = True

# --- compute buffer rows per ubatch token (fp32), read off the graph and matched to the logged
# "compute buffer size" of every measured context (llamacpp_h200.json, log_compute_mib) ------------
# the output stage: logits over the vocabulary plus the normed hidden state
# the layer stage: gate, up and activation of the FFN (of the experts used, for MoE) + 3 hidden rows
FFN_ROWS: Final = 3
HIDDEN_ROWS: Final = 3
# without flash attention: KQ (fp32 per head) and its fp16 mask per KV cell, + 6 hidden rows
KQ_BYTES_PER_HEAD: Final = FP32_BYTES
KQ_MASK_BYTES: Final = 4
ATTENTION_HIDDEN_ROWS: Final = 6
# with flash attention and a quantized cache, one layer's K and V are converted to fp16 per cell
QUANT_CACHE_CONVERT_BYTES: Final = 2 * FP16_BYTES
QUANT_CACHE_HIDDEN_ROWS: Final = 4

# --- what the first long prefill adds (peak over a full-context decode minus memory after init,
# llamacpp_h200.json rows with fill=1)
# without flash attention cuBLAS takes an fp16 copy of KQ from the CUDA pool: n_ctx x n_ubatch x
# heads x 2 bytes, plus ~100 MiB (measured: +262 MiB Llama-2-13B at 4k, +4191 MiB Llama-3-8B at
# 128k)
KQ_POOL_BYTES_PER_HEAD: Final = FP16_BYTES
KQ_POOL_FIXED_BYTES: Final = 100 * MIB
# with flash attention: +10-18 MiB on dense shapes, +110 MiB on Qwen3-30B-A3B (expert routing
# copies); the one MoE shape measured, so the MoE figure is a measurement, not a law
FA_POOL_DENSE_BYTES: Final = 18 * MIB
FA_POOL_MOE_BYTES: Final = 110 * MIB

# with part of the layers on the CPU and no flash attention, the GPU's compute buffer measured 105
# MiB above the full-offload one (Llama-3-8B at 32k, -ngl 8/16/24); the only partial shape measured
PARTIAL_NO_FA_EXTRA_BYTES: Final = 105 * MIB

# --- fixed per GPU -----------------------------------------------------------------------------
# cudaMemGetInfo right after cudaFree(0), before llama.cpp allocates: 526 MiB on every run (H200,
# driver 580.159, CUDA 13)
CUDA_CONTEXT_BYTES: Final = 526 * MIB
# cuBLAS handle, workspace and loaded kernels after the warm-up decode llama-cli/llama-server run:
# +66 MiB at the first context, ~70 MiB over the buffers at every later one
RUNTIME_FIXED_BYTES: Final = 72 * MIB

# --- GGUF tensor types (llama-quant.cpp's rules for a file type) -------------------------------
# bits per weight of ggml types: block bytes x 8 / block size (ggml-common.h)
_TYPE_BPW: Final = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_K": 5.5,
    "Q5_0": 5.5, "Q5_1": 6.0, "Q4_K": 4.5, "Q4_0": 4.5, "Q4_1": 5.0, "Q3_K": 3.4375,
    "Q2_K": 2.625, "IQ4_XS": 4.25, "IQ4_NL": 4.5, "IQ3_S": 3.4375, "IQ2_S": 2.5625,
}  # fmt: skip
# the type a file type gives token_embd when untied (its base type; IQ1/IQ2 files use Q2_K/IQ3_S)
_EMBEDDING_TYPE: Final = {
    "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q5_K": "Q5_K",
    "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_K": "Q4_K",
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K",
    "Q3_K": "Q3_K", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "IQ4_XS": "IQ4_XS", "IQ4_NL": "IQ4_NL",
    "IQ3_M": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_XS": "IQ3_S", "IQ3_XXS": "IQ3_S", "IQ2_M": "IQ3_S",
    "IQ2_S": "IQ3_S", "IQ2_XS": "Q2_K", "IQ2_XXS": "Q2_K", "IQ1_M": "Q2_K", "IQ1_S": "Q2_K",
    "F16": "F16", "BF16": "BF16", "F32": "F32",
}  # fmt: skip


class Footprint(Record):
    """One llama.cpp context on the GPU(s); host_bytes is what stays in system memory."""

    weights_bytes: int
    kv_cache_bytes: int
    compute_buffer_bytes: int
    pool_bytes: int
    fixed_bytes: int
    host_bytes: int
    flash_attn: bool

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.compute_buffer_bytes
            + self.pool_bytes
            + self.fixed_bytes
        )


def check_cache(cache_mode: CacheMode, flash_attn: bool) -> None:
    """llama_init_from_model refuses a quantized V cache without flash attention."""
    if cache_mode not in (CacheMode.FP16,) and not flash_attn:
        raise UsageError(
            f"llama.cpp refuses a quantized V cache ({cache_mode}) without flash attention",
            "use --flash-attn on (llama.cpp's default on CUDA), or --cache fp16",
        )


def _base(quant_method: str | None) -> str:
    return (quant_method or "").upper().removeprefix("I1-").removesuffix("_XL").removesuffix("_L")


def type_bits(quant_method: str | None, *, output: bool) -> float | None:
    """Bits per weight llama-quantize gives token_embd (output=False) or output.weight."""
    base = _EMBEDDING_TYPE.get(_base(quant_method))
    if base is None:
        return None
    if output and base not in ("Q8_0", "F16", "BF16", "F32"):
        base = "Q6_K"  # llama-quant.cpp: the output tensor of k- and i-quant files is Q6_K
    return _TYPE_BPW[base]


def host_embedding_bytes(shape: ModelShape, quant_method: str | None) -> int:
    """The token-embedding table, kept in host memory; 0 when unknown (over-estimating is safe)."""
    tied = shape.tie_word_embeddings
    bits = type_bits(quant_method, output=tied)
    return 0 if bits is None else round(shape.vocab_size * shape.hidden_size * bits / 8)


def head_bytes(shape: ModelShape, quant_method: str | None) -> int:
    """output.weight (or the GPU copy of a tied embedding): with the last offloaded layer."""
    bits = type_bits(quant_method, output=True) or 8.5
    return round(shape.vocab_size * shape.hidden_size * bits / 8)


def padded_context(context_tokens: int) -> int:
    return -(-context_tokens // CONTEXT_PAD) * CONTEXT_PAD


def _ubatch(context_tokens: int) -> int:
    # llama_context: n_batch = min(n_ctx, n_batch) for causal models, n_ubatch = min(n_batch, ...)
    return min(N_UBATCH, N_BATCH, padded_context(context_tokens))


def cells_per_layer(shape: ModelShape, context_tokens: int) -> list[int]:
    """KV cells each layer holds: sliding layers window + n_ubatch (llama-kv-cache-iswa.cpp)."""
    n_ctx = padded_context(context_tokens)
    kinds = layer_kinds(shape)
    if not kinds or shape.sliding_window_tokens is None:
        return [n_ctx] * shape.num_layers
    window = padded_context(shape.sliding_window_tokens + _ubatch(context_tokens))
    return [min(n_ctx, window) if k == SLIDING_ATTENTION else n_ctx for k in kinds]


def kv_cache_bytes(shape: ModelShape, context_tokens: int, cache_mode: CacheMode) -> int:
    per_cell = kv_bytes_per_token_per_layer(shape, cache_mode)
    return round(sum(cells_per_layer(shape, context_tokens)) * per_cell)


def compute_buffer_bytes(
    shape: ModelShape, context_tokens: int, cache_mode: CacheMode, flash_attn: bool
) -> int:
    """The scheduler's reservation: the largest stage of one ubatch's graph."""
    ub = _ubatch(context_tokens)
    cells = cells_per_layer(shape, context_tokens)
    n_kv = max(cells)
    # one KQ mask per attention kind (llama-graph.cpp build_attn_inp_kv[_iswa])
    masks = sum(set(cells)) * ub * FP16_BYTES
    hidden_row = shape.hidden_size * ub * FP32_BYTES
    ffn = shape.intermediate_size * max(1, shape.num_experts_per_token)
    output = (shape.vocab_size + shape.hidden_size) * ub * FP32_BYTES
    layer = FFN_ROWS * ffn * ub * FP32_BYTES + HIDDEN_ROWS * hidden_row + masks
    stages = [output, layer]
    if not flash_attn:
        per_cell = shape.num_attention_heads * KQ_BYTES_PER_HEAD + KQ_MASK_BYTES
        stages.append(n_kv * ub * per_cell + ATTENTION_HIDDEN_ROWS * hidden_row)
    elif cache_mode is not CacheMode.FP16:
        kv_dim = shape.num_kv_heads * shape.head_dim
        convert = n_kv * kv_dim * QUANT_CACHE_CONVERT_BYTES
        stages.append(convert + masks + QUANT_CACHE_HIDDEN_ROWS * hidden_row)
    return max(stages)


def pool_bytes(shape: ModelShape, context_tokens: int, flash_attn: bool) -> int:
    """What the CUDA pool grows to over a full-context prefill (it is never given back)."""
    moe = FA_POOL_MOE_BYTES if shape.num_experts > 1 else FA_POOL_DENSE_BYTES
    if flash_attn:
        return moe
    n_kv = max(cells_per_layer(shape, context_tokens))
    kq = n_kv * _ubatch(context_tokens) * shape.num_attention_heads * KQ_POOL_BYTES_PER_HEAD
    return max(moe, kq + KQ_POOL_FIXED_BYTES)


def gpu_fixed_bytes(shape: ModelShape, context_tokens: int, flash_attn: bool) -> int:
    """Paid by every GPU that holds a layer: context, cuBLAS, pool."""
    return CUDA_CONTEXT_BYTES + RUNTIME_FIXED_BYTES + pool_bytes(shape, context_tokens, flash_attn)


def footprint(
    shape: ModelShape,
    file_bytes: int,
    quant_method: str | None,
    context_tokens: int,
    cache_mode: CacheMode,
    flash_attn: bool,
) -> Footprint:
    """Every layer on one GPU (-ngl 99)."""
    check_cache(cache_mode, flash_attn)
    embedding = host_embedding_bytes(shape, quant_method)
    # a tied head is a GPU copy of the host table: the file's bytes all go to the GPU
    on_gpu = file_bytes if shape.tie_word_embeddings else file_bytes - embedding
    return Footprint(
        weights_bytes=max(on_gpu, 0),
        kv_cache_bytes=kv_cache_bytes(shape, context_tokens, cache_mode),
        compute_buffer_bytes=compute_buffer_bytes(shape, context_tokens, cache_mode, flash_attn),
        pool_bytes=pool_bytes(shape, context_tokens, flash_attn),
        fixed_bytes=CUDA_CONTEXT_BYTES + RUNTIME_FIXED_BYTES,
        host_bytes=embedding,
        flash_attn=flash_attn,
    )


# --- layers across devices --------------------------------------------------------------------


class Placement(Record):
    """How many layers each GPU takes (llama.cpp's layer split; -ngl counts the output as one)."""

    layers_per_gpu: tuple[int, ...]
    per_gpu_bytes: tuple[int, ...]
    host_bytes: int
    total_layers: int

    @property
    def gpu_layers(self) -> int:
        # repeating layers on the GPUs plus the output layer, which goes with the last of them
        return sum(self.layers_per_gpu) + 1

    @property
    def complete(self) -> bool:
        return sum(self.layers_per_gpu) == self.total_layers


def use_more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp use_more_bits: the first and last eighth, and every third layer between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


# llama-quant.cpp: in these file types attn_v and ffn_down (experts too) of the use_more_bits
# layers are one type up: (the layer's type, the one they get)
_MORE_BITS: Final = {"Q4_K_M": ("Q4_K", "Q6_K"), "Q5_K_M": ("Q5_K", "Q6_K")}


def layer_weight_bytes(shape: ModelShape, quant_method: str | None, total: int) -> list[float]:
    """Each repeating layer's share of ``total``: even, except that _M files give their
    use_more_bits layers heavier attn_v and ffn_down."""
    layers = shape.num_layers
    pair = _MORE_BITS.get(_base(quant_method))
    if pair is None:
        return [total / layers] * layers
    kv_dim = shape.num_kv_heads * shape.head_dim
    down = shape.intermediate_size * shape.hidden_size * shape.num_experts
    extra = (shape.hidden_size * kv_dim + down) * (_TYPE_BPW[pair[1]] - _TYPE_BPW[pair[0]]) / 8
    heavy = [use_more_bits(i, layers) for i in range(layers)]
    base = (total - extra * sum(heavy)) / layers
    return [base + (extra if h else 0.0) for h in heavy]


def place(
    full: Footprint,
    shape: ModelShape,
    quant_method: str | None,
    context_tokens: int,
    gpu_budgets_bytes: Sequence[int],
) -> Placement | None:
    """Whole layers on the GPUs, each GPU paying its own context, cuBLAS, pool and compute
    buffer, the last one the output layer too (llama_model::load_tensors: the output goes with the
    last device). The GPUs hold the *last* layers (il >= n_layer + 1 - ngl), in order; the rest
    stay on the CPU. None when not even the output layer fits."""
    layers = shape.num_layers
    head = min(head_bytes(shape, quant_method), full.weights_bytes)
    per_layer_kv = full.kv_cache_bytes / layers
    weights = layer_weight_bytes(shape, quant_method, full.weights_bytes - head)
    sizes = [w + per_layer_kv for w in weights]
    overhead = full.compute_buffer_bytes + full.pool_bytes + full.fixed_bytes
    if sum(gpu_budgets_bytes) < full.total_bytes + overhead * (len(gpu_budgets_bytes) - 1):
        overhead += partial_extra_bytes(full)
    if not gpu_budgets_bytes or gpu_budgets_bytes[-1] - overhead - head < 0:
        return None

    def assign(n: int) -> list[int] | None:
        """Layers layers-n .. layers-1 to the GPUs in order, each taking what fits."""
        counts, idx = [], layers - n
        for i, budget in enumerate(gpu_budgets_bytes):
            room: float = budget - overhead - (head if i == len(gpu_budgets_bytes) - 1 else 0)
            take = 0
            while idx < layers and room >= sizes[idx]:
                room -= sizes[idx]
                idx, take = idx + 1, take + 1
            counts.append(take)
        return counts if idx == layers else None

    counts = next(c for c in (assign(n) for n in range(layers, -1, -1)) if c is not None)
    per_gpu, start = [], layers - sum(counts)
    for i, n in enumerate(counts):
        last = i == len(counts) - 1
        per_gpu.append(round(sum(sizes[start : start + n]) + overhead + (head if last else 0)))
        start += n
    host = full.host_bytes + round(sum(sizes[: layers - sum(counts)]))
    return Placement(
        layers_per_gpu=tuple(counts), per_gpu_bytes=tuple(per_gpu), host_bytes=host,
        total_layers=layers,
    )  # fmt: skip


def partial_extra_bytes(full: Footprint) -> int:
    """Extra GPU compute buffer when some layers stay on the CPU (flash attention off only)."""
    return 0 if full.flash_attn else PARTIAL_NO_FA_EXTRA_BYTES


def split_evenly(
    full: Footprint, shape: ModelShape, quant_method: str | None, gpus: int
) -> tuple[int, ...]:
    """Per-GPU bytes when every layer is offloaded across ``gpus`` equal GPUs."""
    head = min(head_bytes(shape, quant_method), full.weights_bytes)
    layers = shape.num_layers
    per_layer = (full.weights_bytes - head + full.kv_cache_bytes) / layers
    overhead = full.compute_buffer_bytes + full.pool_bytes + full.fixed_bytes
    counts = [layers // gpus + (1 if i < layers % gpus else 0) for i in range(gpus)]
    return tuple(
        round(n * per_layer + overhead + (head if i == gpus - 1 else 0))
        for i, n in enumerate(counts)
    )
