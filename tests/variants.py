"""Variant records the estimator and recommender tests both build."""

from __future__ import annotations

from quantpick.records import GB, Format, Source, Variant, VariantKind


def gptq(name: str, bits: int, group: int | None, size_gb: float | None) -> Variant:
    """A TheBloke-style GPTQ branch with act-order; size as the card states it (SI GB)."""
    return Variant(
        name=name,
        kind=VariantKind.BRANCH,
        format=Format.GPTQ,
        bits=bits,
        group_size=group,
        act_order=True,
        size_bytes=None if size_gb is None else round(size_gb * GB),
        size_source=None if size_gb is None else Source.CARD,
    )
