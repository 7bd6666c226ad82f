"""Which variant a fetch takes: the one named (branch, file, a unique part of a file name), the
recommendation for a budget, or the winner of a search; never one the Hub does not hold."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantpick.commands.args import DEFAULT_CONTEXT, BudgetArgs, HubArgs
from quantpick.commands.listing import downloadable, recommend_for
from quantpick.commands.pick import exit_if_nothing_fits, pick_result
from quantpick.errors import NothingFitsError, QuantpickError, UsageError
from quantpick.hub.inventory import Inventory
from quantpick.records import HubStatus, Variant, VariantKind

if TYPE_CHECKING:
    from quantpick.records import Recommendation


@dataclass(frozen=True)
class Choice:
    branch: str | None = None
    file: str | None = None
    # REPO is a base model: fetch the best variant across all its quantized repos
    search: bool = False
    # why this variant, when something other than the command line chose it (a search)
    reasons: tuple[str, ...] = ()


def search_winner(
    base: str, budget_args: BudgetArgs | None, hub_args: HubArgs
) -> tuple[str, Choice]:
    from quantpick.commands.search import search

    if budget_args is None:
        raise UsageError("--search needs --vram (and --ctx)", "e.g. --search --vram 24 --ctx 16k")
    result = search(base, budget_args, None, 30, hub_args)
    winner = next((h for h in result.hits if h.variant.estimate and h.variant.estimate.fits), None)
    if winner is None:
        raise NothingFitsError(
            f"no quantized variant of {base} fits ({len(result.repos)} repos read)",
            "try a shorter --ctx, a quantized --kv-cache (q8, q4), or more --vram",
        )
    v = winner.variant
    e = v.estimate
    assert e is not None
    why = (
        f"best of {len(result.hits)} variants in {len(result.repos)} quantized repos of {base}: "
        f"{winner.repo} {v.name} needs {(e.vram_bytes or 0) / 2**30:.1f} GiB "
        f"({e.provenance}, {e.runtime}) at {budget_args.ctx or DEFAULT_CONTEXT}",
    )
    if v.kind is VariantKind.FILE:
        return winner.repo, Choice(file=v.name, reasons=why)
    return winner.repo, Choice(branch=v.name, reasons=why)


def choose_variant(
    inv: Inventory, choice: Choice, budget_args: BudgetArgs | None
) -> tuple[Variant, Recommendation | None]:
    """The named branch/file, or the recommendation; never a variant the Hub does not hold."""
    from quantpick.errors import RevisionNotFoundError

    named = choice.branch or choice.file
    rec = None
    if named is not None:
        found = inv.find(named) or (_bare_branch(inv, named) if choice.branch else None)
        if found is None:
            found = _by_part(inv, named) if choice.file else None
        if found is None:
            raise _no_such_variant(inv, named, is_file=choice.file is not None)
        variant = found
        if budget_args is not None:
            # --vram/--ctx with a named variant: estimated and checked, never silently ignored
            rec = recommend_for(inv, budget_args.budget())
    elif budget_args is not None:
        rec = recommend_for(inv, budget_args.budget())
        if rec.pick is None:
            exit_if_nothing_fits(pick_result(inv, rec), None)
        assert rec.pick is not None
        variant = rec.pick.variant
    else:
        raise UsageError(
            "which variant? nothing chose one",
            "give --vram and --ctx to let quantpick choose, or --branch / --file / REPO:BRANCH",
        )
    if variant.kind is VariantKind.REPO:
        raise UsageError(
            f"{variant.name} is a repository of its own", f"run: quantpick fetch {variant.name}"
        )
    if not downloadable(variant):
        raise RevisionNotFoundError(
            f"the card lists {variant.name!r} but the Hub does not have it",
            f"run `quantpick list {inv.repo}` to see what exists",
        )
    return variant, rec


def _by_part(inv: Inventory, part: str) -> Variant | None:
    """`--file Q4_K_M` for `model.Q4_K_M.gguf`: the one file variant whose name holds it."""
    from quantpick.errors import EntryNotFoundError

    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(part)}(?![A-Za-z0-9])", re.IGNORECASE)
    hits = [
        v
        for v in inv.variants
        if v.kind is VariantKind.FILE and downloadable(v) and pattern.search(v.name)
    ]
    if len(hits) > 1:
        names = ", ".join(v.name for v in hits[:8]) + (" ..." if len(hits) > 8 else "")
        raise EntryNotFoundError(
            f"{part!r} matches {len(hits)} files of {inv.repo}", f"name one of: {names}"
        )
    return hits[0] if hits else None


def _no_such_variant(inv: Inventory, named: str, *, is_file: bool) -> QuantpickError:
    from quantpick.errors import EntryNotFoundError, RevisionNotFoundError

    if is_file:
        files = [v.name for v in inv.variants if v.kind is VariantKind.FILE and downloadable(v)]
        hint = (
            f"{inv.repo} has: {', '.join(files[:8])}" + (" ..." if len(files) > 8 else "")
            if files
            else f"run `quantpick list {inv.repo}` to see the files that exist"
        )
        return EntryNotFoundError(f"{inv.repo} has no file {named!r}", hint)
    branches = sorted(b.name for b in inv.listing.branches) if inv.listing else []
    hint = (
        f"{inv.repo} has the branches {', '.join(branches[:12])}"
        + (f" and {len(branches) - 12} more" if len(branches) > 12 else "")
        if branches
        else f"run `quantpick list {inv.repo}` to see the branches that exist"
    )
    return RevisionNotFoundError(f"{inv.repo} has no variant {named!r}", hint)


def _bare_branch(inv: Inventory, name: str) -> Variant | None:
    """A branch the Hub holds whose name says nothing (`my quant`): named, it is fetched as is."""
    from quantpick.records import Format, Source

    for b in inv.listing.branches if inv.listing else ():
        if b.name == name and b.files:
            return Variant(
                name=name,
                kind=VariantKind.BRANCH,
                format=Format.OTHER,
                size_bytes=b.total_bytes,
                size_source=Source.HUB,
                hub_status=HubStatus.HUB_ONLY,
            )
    return None
