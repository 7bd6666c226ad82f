"""Real GGUF files for the loopback Hub, written with the `gguf` package.

Small tensors, a real header: architecture, layer/head counts, context, vocabulary (a large one
makes the header longer than a reader's first range), file type and every tensor's type.
`make_repo(root, repo, {"main": {"m-Q8_0.gguf": GgufModel(...)}})` serves one.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GgufModel:
    arch: str = "llama"
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    ff: int = 128
    vocab: int = 64
    context: int = 4096
    sliding_window: int | None = None
    # llama.cpp type of the big matrices; norms stay F32 as llama.cpp writes them
    ggml_type: str = "Q8_0"
    file_type: int = 7
    tied: bool = False


def _tensor(writer: Any, name: str, shape: tuple[int, ...], qtype: str) -> None:
    """`shape` in numpy order (rows, row length); a quantized row is stored as its bytes."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.constants import GGML_QUANT_SIZES

    kind = GGMLQuantizationType[qtype]
    if kind is GGMLQuantizationType.F32:
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
        return
    block, type_size = GGML_QUANT_SIZES[kind]
    byte_shape = (*shape[:-1], shape[-1] // block * type_size)
    writer.add_tensor(name, np.zeros(byte_shape, dtype=np.uint8), raw_dtype=kind)


def gguf_bytes(model: GgufModel | None = None) -> bytes:
    # gguf brings numpy: imported when a file is written, not with the loopback Hub
    from gguf import GGUFWriter

    m = model or GgufModel()
    head_dim = m.hidden // m.heads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.gguf"
        w = GGUFWriter(path, m.arch)
        w.add_block_count(m.layers)
        w.add_embedding_length(m.hidden)
        w.add_feed_forward_length(m.ff)
        w.add_head_count(m.heads)
        w.add_head_count_kv(m.kv_heads)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_context_length(m.context)
        if m.sliding_window is not None:
            w.add_sliding_window(m.sliding_window)
        w.add_file_type(m.file_type)
        w.add_token_list([f"tok{i}" for i in range(m.vocab)])
        _tensor(w, "token_embd.weight", (m.vocab, m.hidden), m.ggml_type)
        for i in range(m.layers):
            p = f"blk.{i}."
            _tensor(w, p + "attn_norm.weight", (m.hidden,), "F32")
            _tensor(w, p + "attn_q.weight", (m.hidden, m.hidden), m.ggml_type)
            _tensor(w, p + "attn_k.weight", (m.kv_heads * head_dim, m.hidden), m.ggml_type)
            _tensor(w, p + "attn_v.weight", (m.kv_heads * head_dim, m.hidden), m.ggml_type)
            _tensor(w, p + "attn_output.weight", (m.hidden, m.hidden), m.ggml_type)
            _tensor(w, p + "ffn_norm.weight", (m.hidden,), "F32")
            _tensor(w, p + "ffn_up.weight", (m.ff, m.hidden), m.ggml_type)
            _tensor(w, p + "ffn_gate.weight", (m.ff, m.hidden), m.ggml_type)
            _tensor(w, p + "ffn_down.weight", (m.hidden, m.ff), m.ggml_type)
        _tensor(w, "output_norm.weight", (m.hidden,), "F32")
        if not m.tied:
            _tensor(w, "output.weight", (m.vocab, m.hidden), m.ggml_type)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()
