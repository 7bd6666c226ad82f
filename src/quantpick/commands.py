"""`list` and `pick`: arguments in, a result record out, free of typer and rich.

Heavy modules (huggingface_hub behind `hub`) are imported inside the functions that need them, so
`quantpick --help` and `--card` runs start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.args import BudgetArgs, HubArgs, split_repo
from quantpick.errors import NothingFitsError, UsageError
from quantpick.inventory import Inventory, from_card_file, require_variants
from quantpick.records import Budget, HubStatus, Variant
from quantpick.results import ListResult, PickResult, card_info, listed

if TYPE_CHECKING:
    from quantpick.records import Recommendation
    from quantpick.render import Out


def load(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
) -> tuple[Inventory, str | None]:
    """The inventory of a local card or a Hub repo, and the branch named as REPO:BRANCH."""
    if card is not None:
        if repo is not None:
            raise UsageError("give either REPO or --card, not both", "drop one of them")
        inv = from_card_file(card, config)
        require_variants(inv)
        return inv, None
    if repo is None:
        raise UsageError("no repo given", "quantpick list OWNER/NAME, or --card README.md")
    repo_id, branch = split_repo(repo)
    from quantpick.inventory import from_hub

    inv = from_hub(hub_args.connect(), repo_id, revision, config)
    require_variants(inv)
    return inv, branch


def recommend_for(inv: Inventory, budget: Budget) -> Recommendation:
    from quantpick.recommend import recommend

    variants = inv.variants
    if inv.listing is not None:
        # checked against the Hub: only what this repo really holds can be fetched from it
        variants = tuple(v for v in variants if downloadable(v))
    return recommend(variants, inv.shape, budget, card_cache_mode=inv.card.vram_cache_mode)


def list_variants(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
    budget_args: BudgetArgs | None,
    out: Out,
) -> ListResult:
    inv, branch = load(repo, card, revision, config, hub_args)
    variants = inv.variants
    if branch is not None:
        variants = tuple(v for v in variants if v.name == branch)
        if not variants:
            from quantpick.errors import RevisionNotFoundError

            raise RevisionNotFoundError(f"{inv.repo} has no variant {branch!r}")
    budget = budget_args.budget() if budget_args else None
    pick_name: str | None = None
    entries = tuple(listed(v) for v in variants)
    if budget is not None:
        rec = recommend_for(inv.model_copy(update={"variants": variants}), budget)
        by_name = {c.variant.name: c for c in rec.candidates}
        pick_name = rec.pick.variant.name if rec.pick else None
        entries = tuple(
            listed(v, by_name.get(v.name), budget, picked=v.name == pick_name) for v in variants
        )
    listing = inv.listing
    return ListResult(
        repo=inv.repo,
        revision=revision,
        source="card-file"
        if card
        else ("hub-cache" if listing and listing.cached_at_unix else "hub"),
        cached_at_unix=listing.cached_at_unix if listing else None,
        card=card_info(inv.card),
        shape_origin=inv.shape_origin,
        budget=budget,
        pick=pick_name,
        variants=entries,
        warnings=inv.warnings,
    )


def pick(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
    budget_args: BudgetArgs,
    out: Out,
) -> PickResult:
    budget = budget_args.budget()
    inv, branch = load(repo, card, revision, config, hub_args)
    if branch is not None:
        raise UsageError(
            f"pick chooses the branch; {repo} names one already",
            f"drop ':{branch}', or run `quantpick list {repo}` to see its estimate",
        )
    rec = recommend_for(inv, budget)
    return pick_result(inv, rec)


def pick_result(inv: Inventory, rec: Recommendation) -> PickResult:
    b = rec.budget
    return PickResult(
        repo=inv.repo,
        budget=b,
        pick=listed(rec.pick.variant, rec.pick, b, picked=True) if rec.pick else None,
        runner_up=listed(rec.runner_up.variant, rec.runner_up, b) if rec.runner_up else None,
        reasons=rec.reasons,
        candidates=tuple(listed(c.variant, c, b) for c in rec.candidates),
    )


def exit_if_nothing_fits(result: PickResult, out: Out | None) -> None:
    from quantpick.units import format_gib

    if result.pick is not None:
        return
    sized = [
        (c.estimate.vram_bytes, c.name)
        for c in result.candidates
        if c.estimate is not None and c.estimate.vram_bytes is not None
    ]
    if not sized:
        causes = sorted(
            {
                c.estimate.reason.removeprefix("no estimate: ")
                for c in result.candidates
                if c.estimate is not None and c.estimate.reason
            }
        )
        hint = (
            "drop --runtime, or choose one that loads this repo's format"
            if any("cannot load" in c for c in causes)
            else "pass --config with the model's config.json so quantpick can estimate"
        )
        raise NothingFitsError(
            "no variant can be sized: " + ("; ".join(causes) or "no VRAM figure or estimate"),
            hint,
        )
    need, name = min(sized)
    usable = result.budget.usable_bytes
    raise NothingFitsError(
        f"nothing fits: the smallest, {name}, needs {format_gib(need)}, "
        f"{format_gib(need - usable)} more than the {format_gib(usable)} usable",
        "try a shorter --ctx, a quantized --cache (q8, q4), or more --vram",
    )


def downloadable(v: Variant) -> bool:
    return v.hub_status in (HubStatus.PRESENT, HubStatus.HUB_ONLY)
