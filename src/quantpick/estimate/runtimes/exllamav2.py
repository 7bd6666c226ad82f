"""exllamav2 (legacy: archived upstream; text-generation-webui and LocalAI dropped it). Pure.

Source: exllamav2 0.3.2 config.py / linear.py / mlp.py / attn.py / model.py scratch sizes and
cache.py.
"""

from __future__ import annotations

from typing import Final

from quantpick.estimate.runtimes.common import FP16_BYTES, FP32_BYTES
from quantpick.records import CacheMode, ModelShape

# ExLlamaV2Config.max_input_len: prefill runs in chunks of this many tokens
CHUNK_TOKENS: Final = 2048
# ExLlamaV2Config.max_dq_size: at most this many elements of a matrix are dequantized at once
MAX_DQ_ELEMENTS: Final = 512 * 1024**2
# exl2 converter's default head (lm_head) precision when the name does not say (convert.py -hb 6)
EXL2_DEFAULT_HEAD_BITS: Final = 6.0
# an exl2 "bpw" is the optimizer's target, met per layer from discrete options; where only the bits
# are known (no Hub file sizes), size them this much above nominal. Evidence: bartowski's VRAM
# tables for Mixtral-8x7B (Cerebrum) and Mistral-22B grow 5.7% and 7% faster per bit than nominal
# bits x parameters, his 2x7B and suparious' 7B tables not at all; 3% splits the difference on the
# safe side.
EXL2_BITS_MARGIN: Final = 0.03
# exllamav2 keeps the embedding table in system RAM (ExLlamaV2Embedding loads to the CPU)
EMBEDDINGS_ON_GPU: Final = False


def quantized_cache_extra_bytes(shape: ModelShape, context_tokens: int, mode: CacheMode) -> int:
    """Quantized caches dequantize one layer at a time into an fp16 buffer of full length."""
    if mode is CacheMode.FP16:
        return 0
    return context_tokens * shape.num_kv_heads * shape.head_dim * 2 * FP16_BYTES


def _dq_bytes(in_features: int, out_features: int) -> int:
    """ExLlamaV2Linear.temp_dq_size: an fp16 copy of the matrix, at most max_dq_size elements."""
    return FP16_BYTES * min(in_features * out_features, MAX_DQ_ELEMENTS)


def buffers_bytes(shape: ModelShape, context_tokens: int, chunk_tokens: int = CHUNK_TOKENS) -> int:
    chunk = min(context_tokens, chunk_tokens)
    h, f = shape.hidden_size, shape.intermediate_size
    q_dim = shape.num_attention_heads * shape.head_dim
    kv_dim = shape.num_kv_heads * shape.head_dim
    logits = shape.vocab_size * chunk * FP32_BYTES
    # one scratch area shared by all modules (ExLlamaV2DeviceContext), sized for the largest
    # scratch_space_fixed(): the MLP's temp_state + temp_a + temp_b + its largest dequantized
    # matrix; attention's temp_state + its largest; the lm_head's dequantized matrix, which for a
    # large vocabulary (hidden x vocab) is the largest of all
    mlp = chunk * (h + 2 * max(h, f)) * FP16_BYTES + _dq_bytes(h, f)
    attention = chunk * max(q_dim, h) * FP16_BYTES + max(_dq_bytes(h, q_dim), _dq_bytes(h, kv_dim))
    head = _dq_bytes(h, shape.vocab_size)
    return logits + max(mlp, attention, head)
