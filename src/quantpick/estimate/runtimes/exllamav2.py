"""exllamav2 (legacy: archived upstream; text-generation-webui and LocalAI dropped it). Pure.

Source: exllamav2 0.3.x config.py / mlp.py / attn.py scratch sizes and cache.py.
"""

from __future__ import annotations

from typing import Final

from quantpick.estimate.runtimes.common import FP16_BYTES, FP32_BYTES
from quantpick.records import CacheMode, ModelShape

# ExLlamaV2Config.max_input_len: prefill runs in chunks of this many tokens
CHUNK_TOKENS: Final = 2048
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


def buffers_bytes(shape: ModelShape, context_tokens: int, chunk_tokens: int = CHUNK_TOKENS) -> int:
    chunk = min(context_tokens, chunk_tokens)
    logits = shape.vocab_size * chunk * FP32_BYTES
    # one scratch area shared by all modules, sized for the largest: the MLP's
    # temp_state/temp_a/temp_b plus the fp16 dequantization buffer for its largest matrix
    mlp = chunk * (2 * shape.hidden_size + 2 * shape.intermediate_size) * FP16_BYTES
    dequant = shape.hidden_size * shape.intermediate_size * FP16_BYTES
    attention = (
        chunk * (shape.num_attention_heads + 2 * shape.num_kv_heads) * shape.head_dim * FP16_BYTES
    )
    return logits + max(mlp, attention) + dequant
