"""`fetch`: choose (or take) a variant, download exactly it, check it.

hf_transfer and huggingface_hub sit behind `download`/`hub`, imported only when a fetch runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.args import DEFAULT_CONTEXT, BudgetArgs, HubArgs, RepoSpec, parse_spec
from quantpick.commands.listing import downloadable, recommend_for
from quantpick.commands.pick import exit_if_nothing_fits, pick_result
from quantpick.commands.results import FetchResult, FileOut
from quantpick.errors import NothingFitsError, QuantpickError, UsageError
from quantpick.hub.inventory import Inventory
from quantpick.records import HubStatus, Role, Variant, VariantKind

if TYPE_CHECKING:
    from quantpick.commands.report import Reporter
    from quantpick.download.plan import Backend, FetchPlan
    from quantpick.hub.client import Hub
    from quantpick.records import Budget, Candidate, Recommendation


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
        spec, choice = _search_winner(spec, budget_args, hub_args)
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
    inv = from_hub(hub, repo, None, config)
    choice = _revision_as_branch(inv, choice, opts)
    variant, rec = choose_variant(inv, choice, budget_args)
    _check_revision(inv, variant, opts.revision, out)
    cand = _candidate(rec, variant)
    budget = rec.budget if rec else None
    reasons = _reasons(variant, rec, cand, choice, out)
    _warn_whole_branch(inv, variant, out)
    # the ranged engine's connect/read timeout and the stall watchdog follow --timeout, unless
    # QUANTPICK_STALL_TIMEOUT sets the watchdog alone
    tuning = {"stall_timeout_s": hub.settings.timeout_s, **_transfer_env(opts.max_workers)}
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
        raise _local_fs_error(exc, opts.local_dir) from None
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


def models_dir(repo: str, variant: Variant) -> Path | None:
    """$QUANTPICK_MODELS/OWNER/NAME/VARIANT when a models root is set; None: plan's default."""
    import os

    from quantpick.download.plan import default_local_dir, variant_repo

    root = os.environ.get("QUANTPICK_MODELS")
    if not root:
        return None
    return default_local_dir(variant_repo(repo, variant), variant.name, Path(root).expanduser())


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


def fetch_result(
    plan: FetchPlan,
    reasons: tuple[str, ...],
    cand: Candidate | None,
    budget: Budget | None,
    *,
    dry_run: bool,
    transferred: int,
    resumed: int = 0,
    hashed: frozenset[str] = frozenset(),
) -> FetchResult:
    from quantpick.commands.results import FileStatus, chosen, listed

    unchecked = {f.path for f in plan.files if f.hashless}

    def status(path: str) -> FileStatus:
        if path in unchecked:
            return FileStatus.UNVERIFIED
        return FileStatus.VERIFIED if path in hashed else FileStatus.UNCHANGED

    files = tuple(
        FileOut(
            path=f.path,
            size_bytes=f.size_bytes,
            sha256=f.sha256,
            status=FileStatus(f.state.value) if dry_run else status(f.path),
            backend=f.backend.value if dry_run else None,
        )
        for f in plan.files
    )
    est = listed(cand.variant, cand, budget).estimate if cand and budget else None
    chose = chosen(plan.repo, plan.variant)
    assert chose is not None
    return FetchResult(
        repo=plan.repo,
        variant=plan.variant.name,
        chosen=chose,
        format=plan.variant.format,
        estimate=est,
        revision=plan.revision,
        commit_sha=plan.commit_sha,
        local_dir=str(plan.local_dir.resolve()),
        dry_run=dry_run,
        transferred_bytes=transferred,
        resumed_bytes=resumed,
        missing_bytes=plan.missing_bytes if dry_run else 0,
        files=files,
        reasons=reasons,
    )


def with_globs(
    hub: Hub,
    plan: FetchPlan,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    backend: Backend,
) -> FetchPlan:
    """--include: the repo's other files matching a glob come too; --exclude: left out."""
    from fnmatch import fnmatchcase

    from quantpick.download.manifest import known_good
    from quantpick.download.plan import FileRole, PlannedFile, choose_backend, local_state

    if not include and not exclude:
        return plan
    files = [f for f in plan.files if not any(fnmatchcase(f.path, g) for g in exclude)]
    if include:
        have = {f.path for f in files}
        known = known_good(plan.local_dir, plan.commit_sha)
        for rf in hub.files(plan.repo, plan.commit_sha):
            if rf.path in have or not any(fnmatchcase(rf.path, g) for g in include):
                continue
            if any(fnmatchcase(rf.path, g) for g in exclude):
                continue
            planned = PlannedFile(
                path=rf.path,
                size_bytes=rf.size_bytes,
                sha256=rf.sha256,
                git_oid=rf.git_oid,
                role=FileRole.EXTRA,
                backend=choose_backend(rf.size_bytes, backend, plan.small_file_bytes),
            )
            files.append(local_state(plan.local_dir, planned, known.get(rf.path)))
    if not files:
        raise UsageError("--exclude leaves no file to fetch", "narrow the --exclude globs")
    return plan.model_copy(update={"files": tuple(sorted(files, key=lambda f: f.path))})


def forget_files(plan: FetchPlan) -> FetchPlan:
    """--force-download: every file of the plan moves again, whatever is on disk."""
    import contextlib

    from quantpick.download.manifest import remove_verified
    from quantpick.download.partial import PartialState

    for f in plan.files:
        partial = PartialState.load(plan.local_dir, f.path)
        if partial is not None:
            partial.discard()
        with contextlib.suppress(FileNotFoundError):
            (plan.local_dir / f.path).unlink()
    remove_verified(plan.local_dir)
    return plan.model_copy(update={"recheck": True})


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
