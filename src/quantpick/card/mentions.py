"""Variants a card names outside its tables: headings, lists, prose and shell commands.

Mungert lists files only as headings (`### x-q4_k.gguf`), Microsoft only in `llama-cli -m x.gguf`,
Qwen as `- Quantization: q4_K_M, q5_0` with `-hf Qwen/Qwen3-14B-GGUF:Q8_0` in code. These are read
only when no table or link list names variants; with one, a mention is at most an annotation.
"""

from __future__ import annotations

import re

from quantpick.card.markdown import Block, parse_inline
from quantpick.card.names import describe, is_quant_label, quant_key, variants_from_names
from quantpick.records import Format, Variant, VariantKind

_FILE_MENTION = re.compile(r"(?<![\w.\-])(?:[\w.\-]+/)*([\w][\w.\-+]*\.gguf)\b", re.IGNORECASE)
_LABEL = re.compile(r"[\w][\w\-]*")
# every llama.cpp type spells one of these in the source too (Q4\_K\_M, **IQ3_XS**, BF16): a
# block without one is not sent through markdown-it's inline pass (see file_mentions)
_LABEL_HINT = re.compile(r"q\d|f16|f32|mxfp4", re.IGNORECASE)


def file_mentions(blocks: list[Block], code: list[Block]) -> list[Variant]:
    """Model files named in headings, lists, prose or commands, in card order."""
    names: dict[str, None] = {}
    for block in sorted([*blocks, *code], key=lambda b: b.line):
        # markdown-it's inline pass costs ~4 us a character on bracket-dense text and can only
        # remove markup: a block whose source never spells `gguf` names no file (letters written
        # as entities are not how anyone names one)
        if "gguf" not in block.raw.lower():
            continue
        text = block.raw if block in code else parse_inline(block.raw).text
        for m in _FILE_MENTION.finditer(text):
            names.setdefault(m[1], None)
    return list(variants_from_names(names, VariantKind.FILE))


def label_mentions(blocks: list[Block]) -> list[Variant]:
    """Quant types a list item or heading enumerates ('Quantization: q4_K_M, q5_0, q6_K')."""
    labels: dict[str, str] = {}
    for block in blocks:
        if _LABEL_HINT.search(block.raw) is None:
            continue
        text = parse_inline(block.raw).text
        found = [t for t in _LABEL.findall(text) if is_quant_label(t)]
        # one type in a sentence is prose about it; a list of them is an inventory
        if len(found) < 2 and not block.heading:
            continue
        for label in found:
            labels.setdefault(label.lower(), label)
    return [
        Variant(
            name=label,
            kind=VariantKind.FILE,
            format=Format.GGUF,
            quant_method=describe(label).display_quant,
        )
        for label in labels.values()
    ]


def same_quant(a: str, b: str) -> bool:
    """Whether two names carry the same llama.cpp type (Q4_K is not Q4_K_M)."""
    ka, kb = quant_key(a), quant_key(b)
    return ka is not None and ka == kb


def bare_label(v: Variant) -> bool:
    return v.kind is VariantKind.FILE and not v.files and is_quant_label(v.name)
