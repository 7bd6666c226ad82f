"""Budget + variants -> the best-quality variant that fits, with the reasons. Pure.

Quality order: effective bits per weight, then head bits, then smaller GPTQ group, then
act-order, then the card's own recommendation. A variant fits when its estimate is at most the
budget's usable bytes: the GPUs' VRAM less ``reserve_bytes`` per GPU, less one more CUDA context per
extra GPU (each GPU that holds layers pays its own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from quantpick.card import names
from quantpick.errors import QuantpickError
from quantpick.estimate.runtimes import llamacpp
from quantpick.estimate.shape import parameter_count
from quantpick.estimate.vram import (
    cuda_context_bytes,
    estimate_vram,
    gguf_bits_per_weight,
    gguf_quant,
    llamacpp_footprint,
    placed_max_context_tokens,
    serving_runtime,
)
from quantpick.estimate.vram import max_context_tokens as vram_max_context
from quantpick.records import (
    GIB,
    Budget,
    CacheMode,
    Candidate,
    Estimate,
    Format,
    HubStatus,
    ModelShape,
    Provenance,
    Recommendation,
    Role,
    Runtime,
    Variant,
    VariantKind,
)
from quantpick.units import format_context, format_gib

# Kept free on every GPU unless --reserve says otherwise: a desktop session (browser, compositor)
# holds 0.3-0.5 GiB, and running a GPU to its last MiB invites out-of-memory on the first long
# prompt.
DEFAULT_RESERVE_BYTES: Final = GIB // 2
# an ungrouped GPTQ quant (group size None / -1) ranks below every grouped one
_NO_GROUP: Final = 1 << 30


def effective_bits(variant: Variant, shape: ModelShape | None = None) -> float | None:
    """Bits per weight for ranking.

    The llama.cpp type's nominal bpw, else the card's or name's bits, else size over parameters.
    """
    gguf = gguf_bits_per_weight(variant.quant_method or names.describe(variant.name).quant_method)
    if gguf is not None and variant.format in (Format.GGUF, Format.GGML, Format.OTHER):
        return gguf
    if variant.bits is not None:
        return variant.bits
    named = names.describe(variant.name).bits
    if named is not None:
        return named
    if variant.size_bytes is not None and shape is not None:
        return variant.size_bytes * 8 / parameter_count(shape)
    return None


def quality_key(
    variant: Variant, shape: ModelShape | None = None
) -> tuple[float, float, int, int, int]:
    """Larger is better."""
    bits = effective_bits(variant, shape)
    return (
        -1.0 if bits is None else bits,
        variant.head_bits or 0.0,
        -(variant.group_size or _NO_GROUP),
        1 if variant.act_order else 0,
        1 if variant.recommended_by_card else 0,
    )


# What each runtime loads (its documentation, late 2025): a forced --runtime must not "pick" a
# variant it cannot run. OTHER (plain safetensors, unknown) is left to the user.
_RUNS: Final = {
    # exllamav3 loads exl3 (its own format); exllamav2 never could
    Runtime.EXLLAMAV3: frozenset({Format.EXL3}),
    Runtime.EXLLAMAV2: frozenset({Format.EXL2, Format.GPTQ}),
    Runtime.TRANSFORMERS: frozenset({Format.GPTQ, Format.AWQ, Format.GGUF}),
    Runtime.LLAMACPP: frozenset({Format.GGUF, Format.GGML}),
    Runtime.VLLM: frozenset({Format.GPTQ, Format.AWQ, Format.GGUF}),
    # TabbyAPI's backends: exllamav3 for exl3, the legacy exllamav2 for exl2
    Runtime.TABBYAPI: frozenset({Format.EXL3, Format.EXL2}),
}


def _never_picked(variant: Variant, runtime: Runtime | None = None) -> str | None:
    if runtime is not None and variant.format not in (*_RUNS[runtime], Format.OTHER):
        return f"{runtime.value} cannot load {variant.format.value} weights"
    if variant.role is Role.COMPANION:
        return "a companion file (downloaded with a model variant), never picked on its own"
    if variant.kind is VariantKind.REPO:
        return "a separate repository, listed but never picked"
    if variant.hub_status is HubStatus.MISSING:
        return "listed on the card but missing on the Hub"
    return None


def _gpu_overhead(budget: Budget, variant: Variant) -> int:
    runtime = serving_runtime(budget.runtime, variant.format)
    return cuda_context_bytes(runtime) * (len(budget.gpu_vram_bytes) - 1)


def _candidate(
    variant: Variant, shape: ModelShape | None, budget: Budget, card_cache_mode: CacheMode
) -> Candidate:
    excluded = _never_picked(variant, budget.runtime)
    if excluded is not None:
        return Candidate(
            variant=variant,
            estimate=None,
            fits=False,
            margin_bytes=None,
            max_context_tokens=None,
            reason=excluded,
        )
    usable = budget.usable_bytes - _gpu_overhead(budget, variant)
    try:
        estimate = estimate_vram(
            variant,
            shape,
            budget.context_tokens,
            budget.cache_mode,
            budget.runtime,
            card_cache_mode=card_cache_mode,
            flash_attn=budget.flash_attn,
        )
    except QuantpickError as exc:
        return Candidate(
            variant=variant,
            estimate=None,
            fits=False,
            margin_bytes=None,
            max_context_tokens=None,
            reason=f"no estimate: {exc.message}",
        )
    try:
        max_context: int | None = vram_max_context(
            variant,
            shape,
            usable,
            budget.cache_mode,
            budget.runtime,
            card_cache_mode=card_cache_mode,
            flash_attn=budget.flash_attn,
        )
    except QuantpickError:
        # the inverse question may need a shape the estimate at this context did not
        max_context = None
    if estimate.runtime is Runtime.LLAMACPP and estimate.provenance is Provenance.FORMULA:
        placed = _llamacpp_candidate(variant, shape, budget, estimate, max_context)
        if placed is not None:
            return placed
    margin = usable - estimate.vram_bytes
    fits = margin >= 0
    return Candidate(
        variant=variant,
        estimate=estimate,
        fits=fits,
        margin_bytes=margin,
        max_context_tokens=max_context,
        reason=_describe(variant, estimate, margin, usable),
    )


def _llamacpp_candidate(
    variant: Variant,
    shape: ModelShape | None,
    budget: Budget,
    estimate: Estimate,
    max_context: int | None,
) -> Candidate | None:
    """Whole layers on each GPU (llama.cpp's layer split), each GPU paying its own context and
    buffers; what does not fit stays on the CPU (a partial offload, -ngl)."""
    if shape is None:
        return None
    full = llamacpp_footprint(
        variant, shape, budget.context_tokens, budget.cache_mode, budget.flash_attn
    )
    if full is None:
        return None
    budgets = [v - budget.reserve_bytes for v in budget.gpu_vram_bytes]
    placed = llamacpp.place(full, shape, gguf_quant(variant), budget.context_tokens, budgets)
    usable = sum(budgets)
    if placed is not None and (len(budgets) > 1 or not placed.complete):
        # per GPU, whole layers: the longest context at which this many layers still fit
        max_context = placed_max_context_tokens(
            variant, shape, budgets, sum(placed.layers_per_gpu), budget.cache_mode,
            budget.flash_attn,
        )  # fmt: skip
    if placed is None or not placed.complete:
        # not even the output layer, or not every layer: the single-GPU total is the need
        margin = usable - estimate.vram_bytes
        if placed is None or placed.gpu_layers <= 1:
            return Candidate(
                variant=variant,
                estimate=estimate,
                fits=False,
                margin_bytes=margin,
                max_context_tokens=max_context,
                reason=_describe(variant, estimate, margin, usable),
            )
        partial = estimate.model_copy(
            update={
                "gpu_layers": placed.gpu_layers,
                "total_layers": placed.total_layers + 1,
                "host_bytes": placed.host_bytes,
                "per_gpu_bytes": placed.per_gpu_bytes,
            }
        )
        ram_fits = None if budget.ram_bytes is None else placed.host_bytes <= budget.ram_bytes
        return Candidate(
            variant=variant,
            estimate=partial,
            fits=False,
            margin_bytes=margin,
            max_context_tokens=max_context,
            reason=_describe_partial(variant, partial, usable, budget.ram_bytes),
            partial=True,
            ram_fits=ram_fits,
        )
    if len(budgets) == 1:
        return None  # the plain comparison says the same
    total = sum(placed.per_gpu_bytes)
    split = estimate.model_copy(update={"vram_bytes": total, "per_gpu_bytes": placed.per_gpu_bytes})
    margin = usable - total
    layers = "+".join(str(n) for n in placed.layers_per_gpu)
    return Candidate(
        variant=variant,
        estimate=split,
        fits=True,
        margin_bytes=margin,
        max_context_tokens=max_context,
        reason=_describe(variant, split, margin, usable) + f"; layers {layers} across the GPUs",
    )


def _describe_partial(
    variant: Variant, estimate: Estimate, usable: int, ram_bytes: int | None
) -> str:
    host = estimate.host_bytes or 0
    if ram_bytes is None:
        ram = "give --ram to consider it"
    elif host <= ram_bytes:
        ram = f"fits the {format_gib(ram_bytes)} --ram"
    else:
        ram = f"over the {format_gib(ram_bytes)} --ram"
    return (
        f"{variant.name} needs {format_gib(estimate.vram_bytes)} on one GPU at "
        f"{format_context(estimate.context_tokens)} ({estimate.provenance}, {estimate.runtime}): "
        f"Partial GPU, -ngl {estimate.gpu_layers} of {estimate.total_layers} layers in the "
        f"{format_gib(usable)} usable, {format_gib(host)} in system memory ({ram})"
    )


def _card_says(variant: Variant) -> str:
    """The card's own recommendation, where it made one: ranks last, so it is said, not hidden."""
    if not variant.recommended_by_card:
        return ""
    said = next((m for m in variant.mentions if m.recommended), None)
    if said is None:
        return "; recommended by the card (its table)"
    return f'; recommended by the card ({said.place}, line {said.line}: "{said.text}")'


def _describe(variant: Variant, estimate: Estimate, margin: int, usable: int) -> str:
    need = (
        f"{variant.name} needs {format_gib(estimate.vram_bytes)} at "
        f"{format_context(estimate.context_tokens)} ({estimate.provenance}, {estimate.runtime}, "
        f"{estimate.cache_mode} cache)"
    )
    if margin >= 0:
        return f"{need}: fits, {format_gib(margin)} to spare of {format_gib(usable)} usable"
    return f"{need}: {format_gib(-margin)} over the {format_gib(usable)} usable"


def recommend(
    variants: Iterable[Variant],
    shape: ModelShape | None,
    budget: Budget,
    *,
    card_cache_mode: CacheMode | None = None,
) -> Recommendation:
    """The best-quality variant whose estimate fits the budget.

    ``card_cache_mode``: the cache the card's VRAM figures assume (ModelCard.vram_cache_mode;
    fp16 when the card does not say). Never raises for a variant it cannot size: that candidate
    just does not fit.
    """
    mode = card_cache_mode or CacheMode.FP16
    ranked = sorted(variants, key=lambda v: (quality_key(v, shape), v.name), reverse=True)
    candidates = tuple(_candidate(v, shape, budget, mode) for v in ranked)
    # full fits first; a partial offload only when none fits and its CPU layers fit --ram
    pick_index = next((i for i, c in enumerate(candidates) if c.fits), None)
    if pick_index is None:
        pick_index = next((i for i, c in enumerate(candidates) if c.ram_fits), None)
    pick = None if pick_index is None else candidates[pick_index]
    reasons: list[str] = []
    if pick is not None:
        assert pick_index is not None
        better = [c for c in candidates[:pick_index] if c.estimate is not None]
        runner_up = better[-1] if better else None
        reasons.append(f"pick {pick.reason}{_card_says(pick.variant)}")
        reasons.extend(
            f"partial would buy {c.reason}" if c.partial else f"not {c.reason}" for c in better
        )
    else:
        sized = [c for c in candidates if c.estimate is not None]
        runner_up = min(
            sized, key=lambda c: c.estimate.vram_bytes if c.estimate else 0, default=None
        )
        usable = format_gib(budget.usable_bytes)
        at = format_context(budget.context_tokens)
        reasons.append(
            f"nothing fits in {usable} usable at {at}"
            if sized
            else f"cannot size any variant at {at}: nothing to compare with {usable}"
        )
        if runner_up is not None:
            reasons.append(f"closest: {runner_up.reason}")
    unsized = [c for c in candidates if c.estimate is None]
    by_reason: dict[str, list[str]] = {}
    for c in unsized:
        by_reason.setdefault(c.reason, []).append(c.variant.name)
    for reason, group in by_reason.items():
        shown = ", ".join(group[:4]) + (f" and {len(group) - 4} more" if len(group) > 4 else "")
        reasons.append(f"skipped {shown}: {reason}")
    return Recommendation(
        budget=budget,
        pick=pick,
        runner_up=runner_up,
        candidates=candidates,
        reasons=tuple(reasons),
    )
