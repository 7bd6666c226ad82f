"""What each command does, free of typer and rich: arguments in, a result record out.

Heavy modules (huggingface_hub behind `hub`, hf_transfer behind `download`) are imported inside the
functions that need them, so `quantpick --help` and `--card` runs start fast.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from quantpick.errors import NothingFitsError, UsageError
from quantpick.inventory import Inventory, from_card_file, require_variants
from quantpick.records import Budget, HubStatus, Variant
from quantpick.results import ListResult, PickResult, card_info, listed

if TYPE_CHECKING:
    from quantpick.hub import Hub
    from quantpick.records import Recommendation
    from quantpick.render import Out

# Default VRAM kept free per GPU, in GiB: a desktop session and the CUDA driver's own headroom.
DEFAULT_RESERVE = "0.5"
DEFAULT_CONTEXT = "4k"

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def split_repo(spec: str) -> tuple[str, str | None]:
    """OWNER/NAME[:BRANCH] -> (repo, branch)."""
    repo, sep, branch = spec.partition(":")
    if not _REPO_ID.match(repo) or ".." in repo:
        raise UsageError(f"not a repo id: {spec!r}", "write it as OWNER/NAME or OWNER/NAME:BRANCH")
    if sep and not branch:
        raise UsageError(f"empty branch in {spec!r}", "write OWNER/NAME:BRANCH")
    return repo, branch or None


@dataclass(frozen=True)
class HubArgs:
    endpoint: str | None
    token: str | None
    cache_dir: Path | None
    offline: bool
    verbose: bool = False

    def connect(self) -> Hub:
        from quantpick.hub import (
            DEFAULT_ENDPOINT,
            Hub,
            HubSettings,
            default_cache_dir,
            is_offline_env,
            resolve_token,
        )

        if self.verbose:
            logging.basicConfig(format="%(name)s: %(message)s")
            logging.getLogger("httpx2").setLevel(logging.INFO)
        return Hub(
            HubSettings(
                endpoint=(self.endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                token=resolve_token(self.token),
                cache_dir=self.cache_dir or default_cache_dir(),
                offline=self.offline or is_offline_env(),
                verbose=self.verbose,
            )
        )


@dataclass(frozen=True)
class BudgetArgs:
    vram: str | None
    ctx: str | None
    cache: str
    runtime: str | None
    reserve: str

    def budget(self) -> Budget:
        from quantpick import units

        if not self.vram:
            raise UsageError("--vram is required here", f"accepted forms: {units.VRAM_FORMS}")
        parsed = units.parse_vram(self.vram)
        source: Literal["user", "nvidia-smi"] = "user"
        if parsed == "auto":
            from quantpick.gpu import detect_vram

            parsed, source = detect_vram(), "nvidia-smi"
        return Budget(
            gpu_vram_bytes=parsed,
            reserve_bytes=units.parse_amount_bytes(self.reserve, what="reserve"),
            context_tokens=units.parse_context(self.ctx or DEFAULT_CONTEXT),
            cache_mode=units.parse_cache_mode(self.cache),
            runtime=units.parse_runtime(self.runtime) if self.runtime else None,
            source=source,
        )


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


def _recommend(inv: Inventory, budget: Budget) -> Recommendation:
    from quantpick.recommend import recommend

    return recommend(inv.variants, inv.shape, budget, card_cache_mode=inv.card.vram_cache_mode)


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
        rec = _recommend(inv.model_copy(update={"variants": variants}), budget)
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
    inv, _ = load(repo, card, revision, config, hub_args)
    rec = _recommend(inv, budget)
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


def exit_if_nothing_fits(result: PickResult, out: Out) -> None:
    from quantpick.units import format_gib

    if result.pick is not None:
        return
    sized = [
        (c.estimate.vram_bytes, c.name)
        for c in result.candidates
        if c.estimate is not None and c.estimate.vram_bytes is not None
    ]
    if not sized:
        raise NothingFitsError(
            "no variant has a VRAM figure or an estimate",
            "pass --config with the model's config.json so quantpick can estimate",
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
