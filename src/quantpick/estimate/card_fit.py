"""Card figures: the points a card states for a variant, and the card-fit through them. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from quantpick.errors import UsageError
from quantpick.estimate.formula import (
    context_dependent_bytes,
    cuda_context_bytes,
    kv_cache_bytes,
    runtime_buffers_bytes,
)
from quantpick.records import (
    GIB,
    Breakdown,
    CacheMode,
    ModelShape,
    Provenance,
    Runtime,
    Variant,
)

# --- card-fit -------------------------------------------------------------------------------------
# a card's per-token growth this far from the KV formula's is reported: rounding to 0.1 GB over a
# 12k-token step already moves the slope by ~7%, so only larger gaps mean a wrong table or another
# cache mode
SLOPE_TOLERANCE: Final = 0.25


class MissingShapeError(UsageError):
    """The card gives no usable figure and no model shape is known."""

    default_hint = "pass the model's config.json with --config FILE"


# --- card figures ---------------------------------------------------------------------------------


def card_points(
    variant: Variant, cache_mode: CacheMode, card_cache_mode: CacheMode
) -> tuple[dict[int, int], CacheMode, bool]:
    """The figures to fit, the cache mode they were taken at, and whether they are prose-derived."""
    if variant.vram_bytes_by_cache.get(cache_mode):
        return dict(variant.vram_bytes_by_cache[cache_mode]), cache_mode, False
    if variant.vram_bytes:
        return dict(variant.vram_bytes), card_cache_mode, False
    for mode, figures in variant.vram_bytes_by_cache.items():
        if figures:
            return dict(figures), mode, False
    return dict(variant.vram_derived_bytes), card_cache_mode, True


def _line(a: tuple[int, int], b: tuple[int, int], at: int) -> float:
    (x0, y0), (x1, y1) = a, b
    return y0 + (y1 - y0) * (at - x0) / (x1 - x0)


def _fitted_slope(points: Mapping[int, int]) -> float:
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    return num / den


def _card_fit(
    points: Mapping[int, int],
    context_tokens: int,
    formula_growth: Callable[[int, int], float] | None,
) -> tuple[float, tuple[str, ...]]:
    """Interpolate between bracketing figures; extrapolate from the nearest by the formula's growth.

    ``formula_growth(a, b)`` is what the formula adds from context a to b (KV cache and buffers).
    """
    ordered = sorted(points.items())
    warnings: list[str] = []
    below = [p for p in ordered if p[0] <= context_tokens]
    above = [p for p in ordered if p[0] >= context_tokens]
    card_slope = _fitted_slope(points) if len(ordered) >= 2 else None
    if formula_growth is not None and card_slope is not None:
        lo, hi = ordered[0][0], ordered[-1][0]
        formula_slope = formula_growth(lo, hi) / (hi - lo)
        if formula_slope > 0 and abs(card_slope - formula_slope) > SLOPE_TOLERANCE * formula_slope:
            warnings.append(
                f"the card's figures grow {card_slope * 1024 / GIB:.3f} GiB per 1k tokens but "
                f"the KV cache formula says {formula_slope * 1024 / GIB:.3f}: the table may have "
                "an error or assume another cache mode; the larger estimate is used"
            )
        else:
            card_slope = None  # they agree: the formula is the more precise of the two
    if below and above:
        if below[-1][0] == above[0][0]:
            return below[-1][1], tuple(warnings)
        return _line(below[-1], above[0], context_tokens), tuple(warnings)
    anchor_ctx, anchor_bytes = below[-1] if below else above[0]
    guesses = []
    if formula_growth is not None:
        guesses.append(anchor_bytes + formula_growth(anchor_ctx, context_tokens))
    if card_slope is not None:
        guesses.append(anchor_bytes + card_slope * (context_tokens - anchor_ctx))
    if not guesses and context_tokens < anchor_ctx:
        warnings.append(
            f"only the card's figure at {anchor_ctx} tokens is known: an over-estimate here"
        )
        return anchor_bytes, tuple(warnings)
    if not guesses:
        raise MissingShapeError(
            f"the card gives one VRAM figure (at {anchor_ctx} tokens) and no model shape is known "
            f"to extend it to {context_tokens} tokens"
        )
    return max(guesses), tuple(warnings)


def from_card(
    variant: Variant,
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    points: Mapping[int, int],
    points_mode: CacheMode,
) -> tuple[float, Provenance, tuple[str, ...]] | None:
    warnings: list[str] = []
    if points_mode is not cache_mode and shape is None:
        return None
    if context_tokens in points and points_mode is cache_mode:
        return points[context_tokens], Provenance.CARD, ()
    growth: Callable[[int, int], float] | None = None
    if shape is not None:
        known: ModelShape = shape

        def growth(a: int, b: int) -> float:
            return context_dependent_bytes(
                known, b, points_mode, runtime
            ) - context_dependent_bytes(known, a, points_mode, runtime)

    total, fit_warnings = _card_fit(points, context_tokens, growth)
    warnings.extend(fit_warnings)
    if points_mode is not cache_mode:
        assert shape is not None
        total += kv_cache_bytes(shape, context_tokens, cache_mode, runtime) - kv_cache_bytes(
            shape, context_tokens, points_mode, runtime
        )
        warnings.append(
            f"the card's figures are for a {points_mode} cache; adjusted to {cache_mode}"
        )
    return total, Provenance.CARD_FIT, tuple(warnings)


def card_breakdown(
    shape: ModelShape | None,
    context_tokens: int,
    cache_mode: CacheMode,
    runtime: Runtime,
    total: int,
) -> Breakdown | None:
    """The formula's parts of a card figure; weights are what remains of the card's total."""
    if shape is None:
        return None
    kv = kv_cache_bytes(shape, context_tokens, cache_mode, runtime)
    buffers = runtime_buffers_bytes(shape, context_tokens, runtime, kv, cache_mode=cache_mode)
    context = cuda_context_bytes(runtime)
    return Breakdown(
        weights_bytes=max(total - kv - buffers - context, 0),
        kv_cache_bytes=kv,
        runtime_buffers_bytes=buffers,
        cuda_context_bytes=context,
    )
