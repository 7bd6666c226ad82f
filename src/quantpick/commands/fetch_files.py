"""Which files a fetch moves and how it reports them: extra globs, forced re-downloads, the models
root, transfer tuning from the environment, and the result record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.results import FetchResult, FileOut
from quantpick.errors import QuantpickError, UsageError
from quantpick.records import Variant

if TYPE_CHECKING:
    from quantpick.download.plan import Backend, FetchPlan
    from quantpick.hub.client import Hub
    from quantpick.records import Budget, Candidate


def models_dir(repo: str, variant: Variant) -> Path | None:
    """$QUANTPICK_MODELS/OWNER/NAME/VARIANT when a models root is set; None: plan's default."""
    import os

    from quantpick.download.plan import default_local_dir, variant_repo

    root = os.environ.get("QUANTPICK_MODELS")
    if not root:
        return None
    return default_local_dir(variant_repo(repo, variant), variant.name, Path(root).expanduser())


def local_fs_error(exc: OSError, local_dir: Path | None) -> QuantpickError:
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


def transfer_env(max_workers: int | None) -> dict[str, float]:
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
