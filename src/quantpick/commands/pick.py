"""`pick`: the best variant that fits a budget, its runner-up and the reasons; or why none fits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.args import BudgetArgs, HubArgs
from quantpick.commands.listing import load, recommend_for
from quantpick.commands.results import PickResult, chosen, listed
from quantpick.errors import CannotSizeError, NothingFitsError, UsageError

if TYPE_CHECKING:
    from quantpick.commands.report import Reporter
    from quantpick.hub.inventory import Inventory
    from quantpick.records import Recommendation


def pick(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
    budget_args: BudgetArgs,
    out: Reporter,
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
        chosen=chosen(inv.repo, rec.pick.variant if rec.pick else None),
        runner_up=listed(rec.runner_up.variant, rec.runner_up, b) if rec.runner_up else None,
        reasons=rec.reasons,
        candidates=tuple(listed(c.variant, c, b) for c in rec.candidates),
    )


def exit_if_nothing_fits(result: PickResult, out: Reporter | None) -> None:
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
        message = "no variant can be sized: " + ("; ".join(causes) or "no VRAM figure or estimate")
        if causes and all("cannot load" in c for c in causes):
            # a forced runtime ruled every variant out: that is a fit question, not a missing input
            raise NothingFitsError(
                message, "drop --runtime, or choose one that loads this repo's format"
            )
        missing = (
            "the model's config.json (--config FILE): the card gives no figure at this context"
            if any("config" in c for c in causes)
            else "a size or bits per weight for each variant (look at the branches on the Hub)"
        )
        raise CannotSizeError(message, f"quantpick cannot size without {missing}")
    need, name = min(sized)
    usable = result.budget.usable_bytes
    raise NothingFitsError(
        f"nothing fits: the smallest, {name}, needs {format_gib(need)}, "
        f"{format_gib(need - usable)} more than the {format_gib(usable)} usable",
        "try a shorter --ctx, a quantized --kv-cache (q8, q4), or more --vram"
        + (
            "; --ram GiB lets a GGUF run partly on the CPU (Partial GPU)"
            if any(c.estimate is not None and c.estimate.partial for c in result.candidates)
            else ""
        ),
    )
