"""A GGUF file's header over HTTP Range, no weights fetched.

The header (metadata, then every tensor's name, type and offset) sits at the front of the file;
its length is unknown until it is parsed, so the reader starts with a small range and asks for
more only when the parse ran past what it has (bounded: MAX_HEADER_BYTES per file). Types and
block sizes come from the `gguf` package; the walk is our own because `gguf.GGUFReader` builds a
numpy view per vocabulary string (17 s for a 200k-token header) and wants the whole file mapped.
tests/test_gguf_header.py holds this reader to GGUFReader's answers on real files.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantpick.records import GgufHeader, GgufTensor, ModelShape, Source

FIRST_BYTES = 1 << 20
# a 256k-token vocabulary with merges stays well under this; anything bigger is not a header
MAX_HEADER_BYTES = 64 << 20

Fetch = Callable[[int, int], bytes]


class HeaderError(Exception):
    """Not a GGUF file, or a header larger than MAX_HEADER_BYTES."""


class _Short(Exception):
    """The header runs past the bytes fetched; `need` is at least how many it takes."""

    def __init__(self, need: int) -> None:
        self.need = need


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALAR |= {11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        # room for what follows an array cut short: later keys and the tensor infos
        self.tail_guess = 1 << 16

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Short(end)
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALAR:
            return self.unpack(_SCALAR[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            sub, count = self.unpack("<I"), self.unpack("<Q")
            if sub == _STRING:
                # a vocabulary: hundreds of thousands of strings, of which only the count matters
                start = self.pos
                for i in range(count):
                    try:
                        self.take(self.unpack("<Q"))
                    except _Short as short:
                        # ask for the rest of the array at once, by the mean string so far
                        mean = (self.pos - start) / max(i, 1)
                        rest = int(mean * (count - i) * 1.1) + self.tail_guess
                        raise _Short(max(short.need, self.pos + rest)) from None
                return _Count(count)
            if sub in _SCALAR:
                width = struct.calcsize(_SCALAR[sub])
                raw = self.take(width * count)
                return list(struct.unpack(f"<{count}{_SCALAR[sub][1]}", raw))
            return [self.value(sub) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {kind}")


@dataclass(frozen=True)
class _Count:
    n: int


def read_header(path: str, size_bytes: int, fetch: Fetch) -> tuple[GgufHeader, int]:
    """(header, bytes fetched). `fetch(start, end)` returns bytes start..end inclusive."""
    have = b""
    want = min(FIRST_BYTES, size_bytes)
    while True:
        if want > len(have):
            have += fetch(len(have), want - 1)
        if not have.startswith(b"GGUF"):
            raise HeaderError(f"{path} is not a GGUF file")
        try:
            return _parse(path, have), len(have)
        except _Short as short:
            if len(have) >= min(MAX_HEADER_BYTES, size_bytes):
                raise HeaderError(
                    f"{path}: header larger than {MAX_HEADER_BYTES >> 20} MiB"
                ) from None
            want = min(max(short.need, len(have) + FIRST_BYTES), MAX_HEADER_BYTES, size_bytes)
        except (ValueError, struct.error, OverflowError) as exc:
            raise HeaderError(f"{path}: unreadable GGUF header ({exc})") from None


def _parse(path: str, data: bytes) -> GgufHeader:
    # gguf brings numpy: imported on the first header read, not with the CLI
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    c = _Cursor(data)
    c.take(4)
    version = c.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version}")
    n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
    c.tail_guess = (1 << 16) + 160 * n_tensors
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = c.string()
        fields[key] = c.value(c.unpack("<I"))
    tensors: list[GgufTensor] = []
    elements_total = 0
    for _ in range(n_tensors):
        name = c.string()
        dims = [c.unpack("<Q") for _ in range(c.unpack("<I"))]
        kind = GGMLQuantizationType(c.unpack("<I"))
        c.unpack("<Q")
        block, type_size = GGML_QUANT_SIZES[kind]
        elements = math.prod(dims)
        elements_total += elements
        tensors.append(
            GgufTensor(name=name, ggml_type=kind.name, size_bytes=elements // block * type_size)
        )
    align = int(fields.get("general.alignment") or 32)
    data_offset = -(-c.pos // align) * align
    return _summary(path, fields, tuple(tensors), elements_total, data_offset)


def _int(value: Any) -> int | None:
    if isinstance(value, _Count):
        return value.n
    if isinstance(value, list):
        # per-layer arrays (feed-forward length of mixed models): the widest
        ints = [int(v) for v in value if isinstance(v, (int, float))]
        return max(ints) if ints else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _summary(
    path: str,
    fields: dict[str, Any],
    tensors: tuple[GgufTensor, ...],
    elements: int,
    data_offset: int,
) -> GgufHeader:
    arch = str(fields.get("general.architecture") or "")

    def arch_int(key: str) -> int | None:
        return _int(fields.get(f"{arch}.{key}"))

    vocab = arch_int("vocab_size") or _int(fields.get("tokenizer.ggml.tokens"))
    heads = arch_int("attention.head_count")
    hidden = arch_int("embedding_length")
    head_dim = arch_int("attention.key_length") or (hidden // heads if hidden and heads else None)
    split_no = _int(fields.get("split.no"))
    return GgufHeader(
        path=path,
        architecture=arch,
        file_type=_int(fields.get("general.file_type")),
        num_layers=arch_int("block_count"),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=arch_int("attention.head_count_kv") or heads,
        head_dim=head_dim,
        intermediate_size=arch_int("feed_forward_length"),
        vocab_size=vocab,
        context_length_tokens=arch_int("context_length"),
        sliding_window_tokens=arch_int("attention.sliding_window"),
        num_experts=arch_int("expert_count"),
        num_experts_per_token=arch_int("expert_used_count"),
        split_index=None if split_no is None else split_no + 1,
        split_count=_int(fields.get("split.count")),
        tensors=tensors,
        parameter_count=elements,
        header_bytes=data_offset,
    )


def shape_from_header(header: GgufHeader) -> ModelShape | None:
    """The model's shape from a GGUF header; None when it lacks what a shape needs."""
    layers, hidden, heads = header.num_layers, header.hidden_size, header.num_attention_heads
    head_dim, vocab, ff = header.head_dim, header.vocab_size, header.intermediate_size
    if not (layers and hidden and heads and head_dim and vocab and ff):
        return None
    # a split model's output tensor may sit in another part: only a whole file says it is tied
    whole = header.split_count in (None, 1)
    return ModelShape(
        architecture=header.architecture,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=header.num_kv_heads or heads,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=ff,
        num_experts=header.num_experts or 1,
        num_experts_per_token=header.num_experts_per_token or 1,
        sliding_window_tokens=header.sliding_window_tokens,
        max_context_tokens=header.context_length_tokens,
        tie_word_embeddings=whole and not any(t.name == "output.weight" for t in header.tensors),
        parameter_count=header.parameter_count or None,
        source=Source.HEADER,
    )
