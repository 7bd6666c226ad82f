"""Sanity checks across a table's variants: contradictions the card makes, surfaced as warnings."""

from __future__ import annotations

import re

from quantpick.records import Format, Role, Variant

_NOMINAL_BITS = re.compile(r"(?:^|[^a-z])(?:i?q|tq)(\d)", re.IGNORECASE)


def _nominal_bits(variant: Variant) -> float | None:
    if variant.bits is not None:
        return variant.bits
    quant = (variant.quant_method or "").lower()
    if quant in ("f16", "fp16", "bf16"):
        return 16.0
    if quant == "f32":
        return 32.0
    m = _NOMINAL_BITS.search(quant)
    return float(m[1]) if m else None


def flag_size_order(variants: list[Variant]) -> list[Variant]:
    """Warn on file quants whose size contradicts their bits (a larger quant listed smaller).

    Sizes within 3% are not flagged: _L/_XL quants legitimately overlap the next type up.
    """
    sized = [
        (i, bits, v.size_bytes)
        for i, v in enumerate(variants)
        if v.format in (Format.GGUF, Format.GGML)
        and v.role is Role.MODEL
        and v.size_bytes
        and (bits := _nominal_bits(v)) is not None
    ]
    counts: dict[int, list[int]] = {}
    for i, bits, size in sized:
        for j, other_bits, other_size in sized:
            if other_bits < bits and other_size > size * 1.03:
                counts.setdefault(i, []).append(j)
                counts.setdefault(j, []).append(i)
    if not counts:
        return variants
    worst = max(len(v) for v in counts.values())
    out = list(variants)
    for i, others in counts.items():
        if len(others) != worst:
            continue
        names = ", ".join(variants[j].name for j in others[:3])
        out[i] = variants[i].model_copy(
            update={
                "warnings": (
                    *variants[i].warnings,
                    f"size is out of order with its bits compared with {names}; "
                    "the card may list a wrong size or quant",
                )
            }
        )
    return out
