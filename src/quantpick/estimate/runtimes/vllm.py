"""vLLM: a share of the GPU, a profiling run, CUDA graphs. Pure. Not measured here: vLLM's wheel is
far over the 64 MiB a device call can carry."""

from __future__ import annotations

from typing import Final

from quantpick.estimate.runtimes import transformers
from quantpick.estimate.runtimes.common import FP32_BYTES
from quantpick.records import GIB, ModelShape

# --- source: vLLM EngineArgs defaults ----
# the share of the GPU vLLM takes; everything it needs must fit inside it
GPU_MEMORY_UTILIZATION: Final = 0.9
# the profiling run pushes max_num_batched_tokens through the model (V1 default for offline use)
PROFILE_TOKENS: Final = 8192
# sampler logits for max_num_seqs sequences
MAX_NUM_SEQS: Final = 256
# CUDA graphs captured for decode batch sizes (vLLM logs 0.3-1 GiB on 7B-70B models)
CUDA_GRAPH_BYTES: Final = GIB // 2


def buffers_bytes(shape: ModelShape, context_tokens: int) -> int:
    tokens = min(context_tokens, PROFILE_TOKENS)
    per_ffn = transformers.PREFILL_BYTES_PER_TOKEN_PER_FFN
    activations = per_ffn * shape.intermediate_size * tokens
    sampler = MAX_NUM_SEQS * shape.vocab_size * FP32_BYTES
    return round(activations) + sampler + CUDA_GRAPH_BYTES


def gross_up(needed: int) -> int:
    """vLLM only uses gpu_memory_utilization of the card: the GPU must be that much larger."""
    return round(needed / GPU_MEMORY_UTILIZATION)
