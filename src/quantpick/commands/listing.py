"""`list`: a repo's (or a local card's) variants, reconciled and estimated; free of typer and rich.

Heavy modules (huggingface_hub behind `hub`) are imported inside the functions that need them, so
`quantpick --help` and `--card` runs start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.args import BudgetArgs, HubArgs, parse_spec
from quantpick.commands.results import ListResult, card_info, chosen, listed
from quantpick.errors import UsageError
from quantpick.hub.inventory import Inventory, from_card_file, require_variants
from quantpick.records import Budget, HubStatus, Variant

if TYPE_CHECKING:
    from quantpick.commands.report import Reporter
    from quantpick.records import Recommendation


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
    spec = parse_spec(repo)
    if spec.sha and revision is None:
        revision = spec.sha
    from quantpick.errors import CardError
    from quantpick.hub.inventory import from_hub

    inv = from_hub(hub_args.connect(), spec.repo, revision, config)
    try:
        require_variants(inv)
    except CardError as err:
        # a base model has no variants of its own: its quants live in other repos
        raise CardError(
            err.message,
            f"if {spec.repo} is a base model, `quantpick search {spec.repo} --vram V --ctx C` "
            "finds its quantized repos",
        ) from None
    return inv, spec.branch


def recommend_for(inv: Inventory, budget: Budget) -> Recommendation:
    from quantpick.estimate.recommend import recommend

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
    out: Reporter,
) -> ListResult:
    inv, branch = load(repo, card, revision, config, hub_args)
    variants = inv.variants
    if branch is not None:
        variants = tuple(v for v in variants if v.name == branch)
        if not variants:
            from quantpick.errors import RevisionNotFoundError

            names = ", ".join(v.name for v in inv.variants[:12])
            raise RevisionNotFoundError(
                f"{inv.repo} has no variant {branch!r}", f"{inv.repo} has: {names}"
            )
    budget = budget_args.budget() if budget_args else None
    pick_name: str | None = None
    picked: Variant | None = None
    entries = tuple(listed(v) for v in variants)
    if budget is not None:
        rec = recommend_for(inv.model_copy(update={"variants": variants}), budget)
        by_name = {c.variant.name: c for c in rec.candidates}
        picked = rec.pick.variant if rec.pick else None
        pick_name = picked.name if picked else None
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
        chosen=chosen(inv.repo, picked),
        variants=entries,
        warnings=inv.warnings,
    )


def downloadable(v: Variant) -> bool:
    return v.hub_status in (HubStatus.PRESENT, HubStatus.HUB_ONLY)
