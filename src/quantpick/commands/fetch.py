"""`fetch`: choose (or take) a variant, download exactly it, check it.

hf_transfer and huggingface_hub sit behind `download`/`hub`, imported only when a fetch runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.args import DEFAULT_CONTEXT, BudgetArgs, HubArgs, split_repo
from quantpick.commands.listing import downloadable, recommend_for
from quantpick.commands.pick import exit_if_nothing_fits, pick_result
from quantpick.commands.results import FetchResult, FileOut
from quantpick.errors import NothingFitsError, QuantpickError, UsageError
from quantpick.hub.inventory import Inventory
from quantpick.records import HubStatus, Variant, VariantKind

if TYPE_CHECKING:
    from quantpick.commands.report import Reporter
    from quantpick.download.plan import FetchPlan
    from quantpick.records import Recommendation


@dataclass(frozen=True)
class Choice:
    branch: str | None = None
    file: str | None = None
    # REPO is a base model: fetch the best variant across all its quantized repos
    search: bool = False
    # why this variant, when something other than the command line chose it (a search)
    reasons: tuple[str, ...] = ()


def _search_winner(
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
            "try a shorter --ctx, a quantized --cache (q8, q4), or more --vram",
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


@dataclass(frozen=True)
class FetchArgs:
    local_dir: Path | None
    revision: str | None
    dry_run: bool
    backend: str
    # None: TransferOptions' default (from the CPU count)
    max_workers: int | None
    # hash every file already present, whatever earlier checks said
    verify: bool = False
    # take files the Hub gives no hash for
    allow_unverified: bool = False


def choose_variant(
    inv: Inventory, choice: Choice, budget_args: BudgetArgs | None
) -> tuple[Variant, Recommendation | None]:
    """The named branch/file, or the recommendation; never a variant the Hub does not hold."""
    from quantpick.errors import EntryNotFoundError, RevisionNotFoundError

    named = choice.branch or choice.file
    rec = None
    if named is not None:
        found = inv.find(named) or (_bare_branch(inv, named) if choice.branch else None)
        if found is None:
            err = RevisionNotFoundError if choice.branch else EntryNotFoundError
            raise err(f"{inv.repo} has no variant {named!r}")
        variant = found
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


def fetch(
    spec: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
    opts: FetchArgs,
    out: Reporter,
) -> FetchResult:
    from quantpick.download.dispatch import TransferOptions
    from quantpick.download.execute import execute, settle_joins
    from quantpick.download.plan import Backend, plan_fetch
    from quantpick.hub.inventory import from_hub

    if choice.search:
        spec, choice = _search_winner(spec, budget_args, hub_args)
    repo, spec_branch = split_repo(spec)
    if spec_branch and (choice.branch or choice.file) and spec_branch != choice.branch:
        raise UsageError(f"{spec} names a branch and so does --branch/--file", "give one of them")
    choice = Choice(branch=choice.branch or spec_branch, file=choice.file, reasons=choice.reasons)
    try:
        backend = Backend(opts.backend)
    except ValueError:
        forms = ", ".join(b.value for b in Backend)
        raise UsageError(f"unknown backend {opts.backend!r}", f"use one of {forms}") from None
    hub = hub_args.connect(needs_network=True)
    inv = from_hub(hub, repo, None, config)
    variant, rec = choose_variant(inv, choice, budget_args)
    _check_revision(inv, variant, opts.revision, out)
    reasons = (
        rec.reasons if rec else (choice.reasons or (f"{variant.name} named on the command line",))
    )
    estimate = rec.pick.estimate if rec and rec.pick else None
    # the ranged engine's connect/read timeout and the stall watchdog follow --timeout, unless
    # QUANTPICK_STALL_TIMEOUT sets the watchdog alone
    tuning = {"stall_timeout_s": hub.settings.timeout_s, **_transfer_env(opts.max_workers)}
    options = TransferOptions(allow_unverified=opts.allow_unverified, **tuning)  # type: ignore[arg-type]
    try:
        plan = plan_fetch(
            hub, repo, variant, opts.revision, opts.local_dir, backend, recheck=opts.verify
        )
        if opts.dry_run:
            return fetch_result(settle_joins(plan), reasons, dry_run=True, transferred=0)
        done = execute(
            plan, hub, progress=out.progress(), options=options, estimate=estimate, reasons=reasons
        )
    except OSError as exc:
        raise _local_fs_error(exc, opts.local_dir) from None
    return fetch_result(
        plan,
        reasons,
        dry_run=False,
        transferred=done.transferred_bytes,
        hashed=frozenset(done.hashed_paths),
    )


_SHA = re.compile(r"^[0-9a-f]{40}$")


def _check_revision(inv: Inventory, variant: Variant, revision: str | None, out: Reporter) -> None:
    """--revision pins a commit of the chosen variant; it never swaps in another branch."""
    if revision is None or variant.kind is not VariantKind.BRANCH:
        return
    if not _SHA.match(revision):
        if revision != variant.name:
            raise UsageError(
                f"--revision {revision!r} is not a commit of branch {variant.name!r}",
                "--revision pins a commit sha; choose a branch with REPO:BRANCH or --branch",
            )
        return
    heads = {b.name: b.commit_sha for b in inv.listing.branches} if inv.listing else {}
    head = heads.get(variant.name)
    if head is not None and head != revision:
        out.warn(
            f"{revision[:12]} is not the head of {variant.name} ({head[:12]}): "
            "fetching the files of that commit"
        )


def _local_fs_error(exc: OSError, local_dir: Path | None) -> QuantpickError:
    import errno

    from quantpick.errors import DiskSpaceError

    where = exc.filename or local_dir or "the target directory"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(f"the disk is full writing {where}")
    return UsageError(
        f"cannot write {where}: {exc.strerror or type(exc).__name__}",
        "choose a --local-dir you can write to",
    )


# a file an earlier run hashed, trusted now because its size and mtime did not change since
UNCHANGED = "unchanged since checked"


def fetch_result(
    plan: FetchPlan,
    reasons: tuple[str, ...],
    *,
    dry_run: bool,
    transferred: int,
    hashed: frozenset[str] = frozenset(),
) -> FetchResult:
    unchecked = {f.path for f in plan.files if f.hashless}

    def status(path: str) -> str:
        if path in unchecked:
            return "unverified"
        return "verified" if path in hashed else UNCHANGED

    files = tuple(
        FileOut(
            path=f.path,
            size_bytes=f.size_bytes,
            sha256=f.sha256,
            status=f"{f.state.value}, {f.backend.value}" if dry_run else status(f.path),
        )
        for f in plan.files
    )
    return FetchResult(
        repo=plan.repo,
        variant=plan.variant.name,
        revision=plan.revision,
        commit_sha=plan.commit_sha,
        local_dir=str(plan.local_dir.resolve()),
        dry_run=dry_run,
        transferred_bytes=transferred,
        missing_bytes=plan.missing_bytes if dry_run else 0,
        files=files,
        reasons=reasons,
    )


def _transfer_env(max_workers: int | None) -> dict[str, float]:
    """QUANTPICK_STALL_TIMEOUT (seconds, `30` or `30s`) and QUANTPICK_RETRIES: for slow links and
    for tests that need a stall to end in seconds, not minutes."""
    out: dict[str, float] = {} if max_workers is None else {"max_workers": max_workers}
    for name, key in (
        ("QUANTPICK_STALL_TIMEOUT", "stall_timeout_s"),
        ("QUANTPICK_RETRIES", "retries"),
    ):
        raw = os.environ.get(name, "").strip().removesuffix("s")
        if not raw:
            continue
        try:
            value = float(raw) if key == "stall_timeout_s" else int(raw)
        except ValueError:
            raise UsageError(
                f"{name}={os.environ[name]!r} is not a number", f"e.g. {name}=30"
            ) from None
        if value < (0.1 if key == "stall_timeout_s" else 0):
            raise UsageError(f"{name} must be positive", f"e.g. {name}=30")
        out[key] = value
    return out
