"""`quantpick search`: every quantized repo of one base model, all variants ranked together.

Repos are read concurrently with a bounded pool; a repo that cannot be read (no card, gated,
broken) is reported and skipped, never fatal.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from quantpick.commands.results import Hit, ListedVariant, SearchResult, Skipped, chosen, listed
from quantpick.errors import NotFoundError, QuantpickError, UsageError
from quantpick.records import Budget, Format

if TYPE_CHECKING:
    from quantpick.commands.args import BudgetArgs, HubArgs
    from quantpick.hub.client import Hub
    from quantpick.hub.inventory import Inventory


# Each repo costs refs + one tree per branch + README + config.json; four at once keeps a
# 30-repo search quick without hammering the Hub.
REPO_WORKERS = 4

# fits first, then quality (recommend.quality_key), then the larger margin
RankKey = tuple[bool, tuple[float, float, int, int, int], int]


def parse_formats(text: str | None) -> frozenset[Format] | None:
    if not text:
        return None
    out = set()
    for part in text.split(","):
        try:
            out.add(Format(part.strip().lower()))
        except ValueError:
            forms = ", ".join(f.value for f in Format)
            raise UsageError(
                f"unknown format {part!r}", f"use a comma-separated list of {forms}"
            ) from None
    return frozenset(out)


def search(
    base_model: str,
    budget_args: BudgetArgs,
    formats: str | None,
    limit: int,
    hub_args: HubArgs,
) -> SearchResult:
    from quantpick.commands.args import split_repo

    base, branch = split_repo(base_model)
    if branch:
        raise UsageError("search takes a base model, not a branch", f"quantpick search {base}")
    wanted = parse_formats(formats)
    budget = budget_args.budget()
    hub = hub_args.connect(needs_network=True)
    _refuse_quantized(hub, base)
    repos = hub.search_models(base, limit=limit)
    with ThreadPoolExecutor(max_workers=REPO_WORKERS) as pool:
        loaded = list(pool.map(lambda r: _load(hub, r), repos))
    hits: list[tuple[RankKey, str, ListedVariant]] = []
    skipped: list[Skipped] = []
    for repo, inv in zip(repos, loaded, strict=True):
        if isinstance(inv, str):
            skipped.append(Skipped(repo=repo, reason=inv))
            continue
        hits.extend(_ranked(repo, inv, budget, wanted))
    hits.sort(key=lambda h: h[0], reverse=True)
    if not hits:
        raise _nothing_found(hub, base, repos, skipped)
    best = next(((r, v) for key, r, v in hits if key[0]), None)
    return SearchResult(
        base_model=base,
        budget=budget,
        repos=tuple(repos),
        hits=tuple(Hit(rank=i + 1, repo=r, variant=v) for i, (_, r, v) in enumerate(hits)),
        chosen=chosen(best[0], best[1]) if best else None,
        skipped=tuple(skipped),
    )


def _refuse_quantized(hub: Hub, base: str) -> None:
    """A quantized repo given as the base: its own variants are what the user is after."""
    itself = _load(hub, base)
    if isinstance(itself, str):
        return
    quantized = [v for v in itself.variants if v.format is not Format.OTHER]
    if quantized:
        raise NotFoundError(
            f"{base} is itself a quantized repo ({len(quantized)} variants), not a base model",
            f"run `quantpick list {base} --vram V --ctx C` to choose among its variants",
        )


def _nothing_found(hub: Hub, base: str, repos: list[str], skipped: list[Skipped]) -> NotFoundError:
    """An empty search is an answer to act on: why, and what to try (exit 5, not 0)."""
    if repos:
        why = "; ".join(f"{s.repo}: {s.reason}" for s in skipped[:3])
        return NotFoundError(
            f"{len(repos)} repos of {base} found, none with a variant quantpick can read"
            + (f" ({why})" if why else ""),
            "try --quant-format with fewer formats, or `quantpick list REPO` on one of them",
        )
    return NotFoundError(
        f"no quantized repos of {base} found",
        f"check the base model's id (OWNER/NAME, as on its model page); search looks for "
        f"base_model:quantized:{base} and names like {base.split('/')[-1]}",
    )


def _load(hub: Hub, repo: str) -> Inventory | str:
    from quantpick.hub.inventory import from_hub, require_variants

    try:
        # per-repo requests stay bounded: sizes from the Hub's listing, no safetensors headers
        inv = from_hub(hub, repo, safetensors_headers=False)
        require_variants(inv)
    except QuantpickError as err:
        return err.message
    return inv


def _ranked(
    repo: str, inv: Inventory, budget: Budget, wanted: frozenset[Format] | None
) -> list[tuple[RankKey, str, ListedVariant]]:
    from quantpick.commands.listing import recommend_for
    from quantpick.estimate.recommend import quality_key

    rec = recommend_for(inv, budget)
    out = []
    for cand in rec.candidates:
        v = cand.variant
        if wanted is not None and v.format not in wanted:
            continue
        if cand.estimate is None:
            continue
        key = (cand.fits, quality_key(v, inv.shape), cand.margin_bytes or 0)
        out.append((key, repo, listed(v, cand, budget, picked=cand.fits and rec.pick is cand)))
    return out
