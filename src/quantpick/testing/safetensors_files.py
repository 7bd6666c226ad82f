"""Real safetensors files for the loopback Hub: a true header (8-byte length, JSON with every
tensor's dtype, shape and data offsets), the data as a sparse hole of the right length.

`safetensors_files(llama_tensors(...), shards=3)` gives what a quantizer uploads: one
`model.safetensors`, or `model-0000i-of-0000n.safetensors` shards plus
`model.safetensors.index.json` (its `weight_map` and `metadata.total_size`), as the Hub holds them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
DTYPE_BYTES |= {"U8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1}
Tensor = tuple[str, str, tuple[int, ...]]


@dataclass(frozen=True)
class SafetensorsModel:
    """One safetensors file: (name, dtype, shape) per tensor, in file order."""

    tensors: tuple[Tensor, ...]
    metadata: tuple[tuple[str, str], ...] = (("format", "pt"),)

    @property
    def data_bytes(self) -> int:
        return sum(tensor_bytes(t) for t in self.tensors)


def tensor_bytes(t: Tensor) -> int:
    return math.prod(t[2]) * DTYPE_BYTES[t[1]]


def header_bytes(model: SafetensorsModel) -> bytes:
    """The 8-byte length and the JSON header, padded with spaces to 8 bytes as safetensors does."""
    entries: dict[str, object] = {"__metadata__": dict(model.metadata)} if model.metadata else {}
    at = 0
    for name, dtype, shape in model.tensors:
        end = at + tensor_bytes((name, dtype, shape))
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, end]}
        at = end
    raw = json.dumps(entries, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def llama_tensors(
    layers: int = 2,
    hidden: int = 64,
    ff: int = 128,
    vocab: int = 256,
    *,
    dtype: str = "F16",
    gptq_bits: int | None = None,
    group_size: int = 32,
) -> tuple[Tensor, ...]:
    """A llama-shaped model's tensors; with `gptq_bits`, GPTQ's packed layout (int32 qweight and
    qzeros, fp16 scales, int32 g_idx) for every linear layer."""
    out: list[Tensor] = [("model.embed_tokens.weight", dtype, (vocab, hidden))]
    linears = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, hidden),
        "self_attn.v_proj": (hidden, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, ff),
        "mlp.up_proj": (hidden, ff),
        "mlp.down_proj": (ff, hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", dtype, (hidden,)))
        for name, (n_in, n_out) in linears.items():
            if gptq_bits is None:
                out.append((p + name + ".weight", dtype, (n_out, n_in)))
                continue
            per_word = 32 // gptq_bits
            groups = n_in // group_size
            out.append((p + name + ".qweight", "I32", (n_in // per_word, n_out)))
            out.append((p + name + ".qzeros", "I32", (groups, n_out // per_word)))
            out.append((p + name + ".scales", "F16", (groups, n_out)))
            out.append((p + name + ".g_idx", "I32", (n_in,)))
        out.append((p + "post_attention_layernorm.weight", dtype, (hidden,)))
    out.append(("model.norm.weight", dtype, (hidden,)))
    out.append(("lm_head.weight", dtype, (vocab, hidden)))
    return tuple(out)


def safetensors_files(
    tensors: tuple[Tensor, ...], shards: int = 1
) -> dict[str, SafetensorsModel | str]:
    """The files a repo holds for these tensors: one file, or shards with their index."""
    if shards <= 1:
        return {"model.safetensors": SafetensorsModel(tensors)}
    per = math.ceil(len(tensors) / shards)
    files: dict[str, SafetensorsModel | str] = {}
    weight_map: dict[str, str] = {}
    for n in range(shards):
        name = f"model-{n + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[n * per : (n + 1) * per]
        files[name] = SafetensorsModel(part)
        weight_map.update(dict.fromkeys((t[0] for t in part), name))
    total = sum(tensor_bytes(t) for t in tensors)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index, indent=2)
    return files
