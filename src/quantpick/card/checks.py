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


class _Fenwick:
    """Over bits ranks: how many points were added at a rank <= r, and the first 3 by index."""

    def __init__(self, size: int) -> None:
        self.count = [0] * (size + 1)
        self.first: list[tuple[int, ...]] = [()] * (size + 1)

    def add(self, rank: int, index: int) -> None:
        r = rank + 1
        while r < len(self.count):
            self.count[r] += 1
            self.first[r] = tuple(sorted((*self.first[r], index))[:3])
            r += r & -r

    def below(self, rank: int) -> tuple[int, tuple[int, ...]]:
        """Points added at ranks < rank."""
        count, r = 0, rank
        first: tuple[int, ...] = ()
        while r > 0:
            count += self.count[r]
            first = tuple(sorted((*first, *self.first[r]))[:3])
            r -= r & -r
        return count, first


def _contradictions(sized: list[tuple[int, float, int]]) -> dict[int, tuple[int, tuple[int, ...]]]:
    """For each variant, how many others contradict it (fewer bits yet over 3% larger, or more
    bits yet over 3% smaller), and the first three of them in table order.

    Two sweeps over sizes with a Fenwick tree over bits, O(n log n): the pairwise comparison
    this replaces took 36 s at 8,000 rows.
    """
    ranks = {b: r for r, b in enumerate(sorted({bits for _, bits, _ in sized}))}
    out: dict[int, tuple[int, tuple[int, ...]]] = {}

    def sweep(points: list[tuple[int, float, int]], flip: bool) -> None:
        # queries in the order the points come: each point, once it joins, joins every later one
        tree = _Fenwick(len(ranks))
        k = 0
        for i, bits, size in points:
            while k < len(points) and (
                size > points[k][2] * 1.03 if flip else points[k][2] > size * 1.03
            ):
                j, other_bits, _ = points[k]
                tree.add(len(ranks) - 1 - ranks[other_bits] if flip else ranks[other_bits], j)
                k += 1
            count, first = tree.below(len(ranks) - 1 - ranks[bits] if flip else ranks[bits])
            if count:
                had, had_first = out.get(i, (0, ()))
                out[i] = (had + count, tuple(sorted((*had_first, *first))[:3]))

    # fewer bits, other_size > size * 1.03: the largest sizes first
    sweep(sorted(sized, key=lambda p: -p[2]), flip=False)
    # more bits, size > other_size * 1.03: the smallest sizes first
    sweep(sorted(sized, key=lambda p: p[2]), flip=True)
    return out


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
    counts = _contradictions(sized)
    if not counts:
        return variants
    worst = max(count for count, _ in counts.values())
    out = list(variants)
    for i, (count, first) in counts.items():
        if count != worst:
            continue
        names = ", ".join(variants[j].name for j in first)
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
