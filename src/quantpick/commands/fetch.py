"""`fetch`: choose (or take) a variant, download exactly it, check it.

hf_transfer and huggingface_hub sit behind `download`/`hub`, imported only when a fetch runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.args import BudgetArgs, HubArgs, RepoSpec, parse_spec
from quantpick.commands.results import FetchResult
from quantpick.errors import UsageError
from quantpick.hub.inventory import Inventory
from quantpick.records import Role, Variant, VariantKind

if TYPE_CHECKING:
    from quantpick.commands.report import Reporter
    from quantpick.download.plan import Backend, FetchPlan
    from quantpick.records import Candidate, Recommendation
from quantpick.commands.choose import Choice, choose_variant, search_winner
from quantpick.commands.fetch_files import (
    fetch_result,
    forget_files,
    local_fs_error,
    models_dir,
    transfer_env,
    with_globs,
)


@dataclass(frozen=True)
class FetchArgs:
    local_dir: Path | None
    revision: str | None
    dry_run: bool
    backend: str
    # None: TransferOptions' default (from the CPU count)
    max_workers: int | None
    # the directory holds another repo/variant: replace it rather than refuse
    replace: bool = False
    # extra files of the repo matching these globs, and the variant's files to leave out
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # download every file again, even those already in place
    force: bool = False
    # hash every file already present, whatever earlier checks said
    verify: bool = False
    # take files the Hub gives no hash for
    allow_unverified: bool = False


def fetch(
    spec: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
    opts: FetchArgs,
    out: Reporter,
) -> FetchResult:
    from quantpick.download.plan import Backend
    from quantpick.hub.settings import is_offline_env

    if choice.search:
        spec, choice = search_winner(spec, budget_args, hub_args)
    parsed = parse_spec(spec)
    repo, opts, choice = _merge_spec(spec, parsed, choice, opts)
    try:
        backend = Backend(opts.backend)
    except ValueError:
        forms = ", ".join(b.value for b in Backend)
        raise UsageError(f"unknown backend {opts.backend!r}", f"use one of {forms}") from None
    if hub_args.offline or is_offline_env():
        from quantpick.commands.offline import offline_fetch

        return offline_fetch(repo, choice, budget_args, config, hub_args, opts, out)
    return _online(repo, choice, budget_args, config, hub_args, opts, backend, out)


def _merge_spec(
    spec: str, parsed: RepoSpec, choice: Choice, opts: FetchArgs
) -> tuple[str, FetchArgs, Choice]:
    """REPO@SHA pins like --revision; REPO:BRANCH, …/tree/BRANCH and --revision BRANCH choose."""
    if parsed.sha:
        if opts.revision and opts.revision != parsed.sha:
            raise UsageError(f"{spec} names a revision and so does --revision", "give one of them")
        opts = replace(opts, revision=parsed.sha)
    branch, file = parsed.branch, parsed.file
    if file is not None:
        # …/blob/main/x.gguf: the file is the variant, the ref where it lives
        if branch and not opts.revision:
            opts = replace(opts, revision=branch)
        branch = None
    named = (choice.branch, choice.file)
    if (branch or file) and any(named) and (branch, file) != named:
        raise UsageError(f"{spec} names a variant and so does --branch/--file", "give one of them")
    choice = Choice(
        branch=choice.branch or branch,
        file=choice.file or file,
        reasons=choice.reasons,
    )
    return parsed.repo, opts, choice


def _online(
    repo: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
    opts: FetchArgs,
    backend: Backend,
    out: Reporter,
) -> FetchResult:
    from quantpick.download.dispatch import TransferOptions
    from quantpick.download.execute import execute, settle_joins
    from quantpick.download.ownership import claim, remove_stale
    from quantpick.download.plan import plan_fetch
    from quantpick.hub.inventory import from_hub

    hub = hub_args.connect(needs_network=True)
    # a fetch reads no header unless it sizes variants: nothing moves before the disk check
    inv = from_hub(hub, repo, None, config, safetensors_headers=budget_args is not None)
    choice = _revision_as_branch(inv, choice, opts)
    variant, rec = choose_variant(inv, choice, budget_args)
    _check_revision(inv, variant, opts.revision, out)
    cand = _candidate(rec, variant)
    budget = rec.budget if rec else None
    reasons = _reasons(variant, rec, cand, choice, out)
    _warn_whole_branch(inv, variant, out)
    # the ranged engine's connect/read timeout and the stall watchdog follow --timeout, unless
    # QUANTPICK_STALL_TIMEOUT sets the watchdog alone
    tuning = {"stall_timeout_s": hub.settings.timeout_s, **transfer_env(opts.max_workers)}
    options = TransferOptions(allow_unverified=opts.allow_unverified, **tuning)  # type: ignore[arg-type]
    local_dir = opts.local_dir or models_dir(repo, variant)
    # the reasons come before the first byte: on a 40 GB download the user can still stop it
    # (a variant named without a budget needs none: the manifest still records why)
    for reason in reasons if rec is not None or choice.reasons else ():
        out.info(reason)
    try:
        plan = plan_fetch(
            hub, repo, variant, opts.revision, local_dir, backend, recheck=opts.verify
        )
        plan = with_globs(hub, plan, opts.include, opts.exclude, backend)
        displaced = claim(plan, replace=opts.replace)
        if opts.dry_run:
            return fetch_result(
                settle_joins(plan), reasons, cand, budget, dry_run=True, transferred=0
            )
        if opts.force:
            plan = forget_files(plan)
        resumed = _say_resumed(plan, out)
        progress = out.progress()
        try:
            estimate = cand.estimate if cand else None
            done = execute(
                plan, hub, progress=progress, options=options, estimate=estimate, reasons=reasons
            )
        finally:
            # an error or Ctrl-C then starts on a fresh line, not on the progress line
            progress.finish()
        if displaced is not None:
            for path in remove_stale(plan.local_dir, displaced, {f.path for f in plan.files}):
                out.info(f"removed {path} ({displaced.variant.name}, replaced)")
    except OSError as exc:
        raise local_fs_error(exc, opts.local_dir) from None
    return fetch_result(
        plan,
        reasons,
        cand,
        budget,
        dry_run=False,
        transferred=done.transferred_bytes,
        resumed=resumed,
        hashed=frozenset(done.hashed_paths),
    )


def _revision_as_branch(inv: Inventory, choice: Choice, opts: FetchArgs) -> Choice:
    """`--revision 6.0bpw`, as an hf download user types it, names the branch to take."""
    rev = opts.revision
    if rev is None or _SHA.match(rev) or choice.branch or choice.file:
        return choice
    found = inv.find(rev)
    if found is not None and found.kind is VariantKind.BRANCH:
        return Choice(branch=rev, reasons=choice.reasons)
    if inv.listing and any(b.name == rev for b in inv.listing.branches) and not _has_files(inv):
        return Choice(branch=rev, reasons=choice.reasons)
    return choice


def _has_files(inv: Inventory) -> bool:
    return any(v.kind is VariantKind.FILE for v in inv.variants)


def _candidate(rec: Recommendation | None, variant: Variant) -> Candidate | None:
    if rec is None:
        return None
    if rec.pick is not None and rec.pick.variant.name == variant.name:
        return rec.pick
    return next((c for c in rec.candidates if c.variant.name == variant.name), None)


def _reasons(
    variant: Variant,
    rec: Recommendation | None,
    cand: Candidate | None,
    choice: Choice,
    out: Reporter,
) -> tuple[str, ...]:
    from quantpick.units import format_context, format_gib

    if choice.reasons:
        return choice.reasons
    if rec is None:
        return (f"{variant.name} named on the command line",)
    if not (choice.branch or choice.file):
        return rec.reasons
    # named, with a budget: say whether it fits, and warn when it does not
    usable = format_gib(rec.budget.usable_bytes)
    at = format_context(rec.budget.context_tokens)
    e = cand.estimate if cand else None
    if cand is None or e is None or e.vram_bytes is None:
        why = cand.reason if cand and cand.reason else "no VRAM figure or estimate"
        out.warn(f"{variant.name} cannot be sized at {at} ({why}); fetching it as named")
        return (f"{variant.name} named on the command line; not sized: {why}",)
    need = f"{variant.name} needs {format_gib(e.vram_bytes)} at {at} ({e.provenance})"
    if cand.fits:
        return (f"{need}: fits the {usable} usable; named on the command line",)
    over = format_gib(-(cand.margin_bytes or 0))
    out.warn(f"{need}: {over} over the {usable} usable; fetching it because it was named")
    return (f"{need}: does not fit the {usable} usable; named on the command line",)


def _warn_whole_branch(inv: Inventory, variant: Variant, out: Reporter) -> None:
    """`--branch main` of a GGUF repo takes every quant in it: say so before the bytes move."""
    if variant.kind is not VariantKind.BRANCH:
        return
    files = [v for v in inv.variants if v.kind is VariantKind.FILE and v.role is Role.MODEL]
    if len(files) < 2:
        return
    total = sum(v.size_bytes or 0 for v in files)
    out.warn(
        f"branch {variant.name} of {inv.repo} holds {len(files)} quantized files "
        f"({total / 1e9:.2f} GB): fetching every one of them; --file NAME takes one"
    )


def _say_resumed(plan: FetchPlan, out: Reporter) -> int:
    from quantpick.download.plan import FileState

    resumed = sum(f.have_bytes for f in plan.files if f.state is FileState.PARTIAL)
    if resumed:
        parts = sum(1 for f in plan.files if f.state is FileState.PARTIAL)
        noun = "file" if parts == 1 else "files"
        out.info(
            f"resuming: {resumed / 1e6:.2f} MB of {parts} partly downloaded {noun} "
            f"already in {plan.local_dir}"
        )
    return resumed


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
