"""Fetch a variant: plan it, check before the first byte, move the bytes, check them, record them.

Public API, as commands/fetch.py calls it::

    default_local_dir(repo, variant_name, models_root=None) -> Path  # ./OWNER__NAME-VARIANT, pure
    plan_fetch(hub, repo, variant, revision=None, local_dir=None, backend=Backend.AUTO,
               *, small_file_bytes=16 MiB, recheck=False) -> FetchPlan
        # files, sizes, sha256, backend and local state per file, bytes still missing.
        # Reads the Hub and the target dir, writes nothing: a dry run is this call alone.
    execute(plan, hub, *, progress=NullProgress(), options=TransferOptions(),
            estimate=None, reasons=(), lock_timeout_s=0.0) -> FetchResult
        # takes DIR/.quantpick/lock, checks access and free space, downloads what is missing,
        # writes DIR/quantpick.json. Re-running it on a complete dir moves no byte.
    verify(local_dir, *, full=True) -> VerifyReport         # report.passed / report.failed
    require_verified(local_dir, *, full=True) -> VerifyReport  # IntegrityError when not passed

Errors are QuantpickErrors: AuthError, RepoNotFoundError, RevisionNotFoundError, EntryNotFoundError,
NetworkError (after retries), IntegrityError (a hash that stays wrong, a hostile file name),
DiskSpaceError, LockedError, InterruptedError_ (SIGINT, exit 130), TerminatedError (SIGTERM, 143).
An interrupted or failed fetch leaves no file under a final name that is not complete and checked;
running it again resumes. Progress goes to a `Progress` (progress.py); cli/render.py draws it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from quantpick.download.context import (
    HUB_STAGING,
    Cancelled,
    Context,
    TransferOptions,
    checked_record,
)
from quantpick.download.dispatch import transfer
from quantpick.download.engines.http import Source
from quantpick.download.join import join_parts, join_spec
from quantpick.download.join import recover as recover_join
from quantpick.download.localfs import (
    STATE_DIR,
    check_hub_path,
    check_parents,
    hash_file,
    planted_link,
    regular_file_stat,
)
from quantpick.download.lock import caught_signals, dir_lock, stop_error
from quantpick.download.manifest import (
    Manifest,
    ManifestFile,
    VerifiedLog,
    VerifyReport,
    clear_failed,
    known_good,
    remove_verified,
    still_good,
    verify,
    write_manifest,
)
from quantpick.download.partial import partial_dir, partial_key
from quantpick.download.plan import (
    Backend,
    FetchPlan,
    FileState,
    PlannedFile,
    default_local_dir,
    local_state,
    plan_fetch,
)
from quantpick.download.progress import NullProgress, PlainProgress, Progress
from quantpick.errors import (
    DiskSpaceError,
    IntegrityError,
    TerminatedError,
)
from quantpick.hub.client import Hub
from quantpick.records import Estimate, Record
from quantpick.units import format_size

__all__ = [
    "Backend",
    "FetchPlan",
    "FetchResult",
    "Manifest",
    "NullProgress",
    "PlainProgress",
    "Progress",
    "TerminatedError",
    "TransferOptions",
    "VerifyReport",
    "default_local_dir",
    "execute",
    "plan_fetch",
    "require_verified",
    "verify",
]


class FetchResult(Record):
    manifest: Manifest
    local_dir: Path
    # bytes received over the network by this run, and bytes that were already in place
    transferred_bytes: int
    reused_bytes: int
    files_transferred: int
    elapsed_s: float
    # files whose bytes this run hashed; the rest were trusted from an earlier check
    hashed_paths: tuple[str, ...] = ()


def require_verified(local_dir: Path, *, full: bool = True) -> VerifyReport:
    report = verify(local_dir, full=full)
    if report.manifest is None:
        raise IntegrityError(
            f"cannot verify {local_dir}: {report.problem}",
            "only a directory written by `quantpick fetch` has a manifest",
        )
    if not report.passed:
        shown = ", ".join(report.failed[:3]) + (" ..." if len(report.failed) > 3 else "")
        raise IntegrityError(f"{len(report.failed)} files in {local_dir} are damaged: {shown}")
    return report


def execute(
    plan: FetchPlan,
    hub: Hub,
    *,
    progress: Progress | None = None,
    options: TransferOptions | None = None,
    estimate: Estimate | None = None,
    reasons: tuple[str, ...] = (),
    lock_timeout_s: float | None = 0.0,
) -> FetchResult:
    """Bring `plan.local_dir` to the planned files; `lock_timeout_s=None` waits for the lock."""
    started = time.monotonic()
    ctx = Context(
        hub=hub,
        plan=plan,
        options=options or TransferOptions(),
        progress=progress or NullProgress(),
        cancel=threading.Event(),
        on_done=lambda record: None,
    )
    with dir_lock(plan.local_dir, lock_timeout_s), caught_signals(ctx.cancel) as caught:
        try:
            manifest, reused, hashed = _fetch_locked(ctx, estimate, reasons)
        except Cancelled:
            raise stop_error(caught.signum, plan.local_dir) from None
        finally:
            ctx.conns.close_all()
    return FetchResult(
        manifest=manifest,
        local_dir=plan.local_dir,
        transferred_bytes=ctx.stats.transferred_bytes,
        reused_bytes=reused,
        files_transferred=ctx.stats.files_transferred,
        elapsed_s=time.monotonic() - started,
        hashed_paths=hashed,
    )


def _fetch_locked(
    ctx: Context, estimate: Estimate | None, reasons: tuple[str, ...]
) -> tuple[Manifest, int, tuple[str, ...]]:
    plan, local_dir = ctx.plan, ctx.plan.local_dir
    hashless = [f.path for f in plan.files if f.hashless]
    if hashless and not ctx.options.allow_unverified:
        shown = ", ".join(hashless[:3]) + (" ..." if len(hashless) > 3 else "")
        raise IntegrityError(
            f"{ctx.hub.settings.endpoint} gives no hash for {len(hashless)} files of "
            f"{plan.repo} ({shown}): their bytes cannot be verified",
            "pass --allow-unverified to take them unchecked (recorded as unverified), "
            "or fetch from a server that lists hashes",
        )
    join = join_spec(plan)
    if join is not None:
        # a join killed halfway: part a's bytes go back under its name before anything is planned
        recover_join(local_dir, join[0], join[1][0])
    # another fetch may have finished files since the plan was made: look again, under the lock
    known = {} if plan.recheck else known_good(local_dir, plan.commit_sha)
    files = [
        local_state(
            local_dir,
            f.model_copy(update={"state": FileState.MISSING, "have_bytes": 0}),
            known.get(f.path),
        )
        for f in plan.files
    ]
    records = {f.path: known[f.path] for f in files if f.state is FileState.COMPLETE}
    joined = _joined_record(local_dir, join, known)
    if joined is not None and join is not None:
        # the parts were joined by an earlier fetch and deleted: nothing to download for them
        records[joined.path] = joined
        files = list(_parts_complete(files, join))
    records_lock = threading.Lock()
    hashed: set[str] = set()
    log = VerifiedLog(local_dir, plan.commit_sha, list(records.values()))

    def on_done(record: ManifestFile) -> None:
        with records_lock:
            records[record.path] = record
            hashed.add(record.path)
            log.append(record)

    ctx.on_done = on_done
    reused = sum(f.have_bytes for f in files)
    ctx.progress.start(plan.total_bytes, reused, len(files))
    files = _check_present(ctx, files)
    todo = [f for f in files if f.state is not FileState.COMPLETE]
    join_extra = 0
    if join is not None and joined is None:
        # appending part b (and on) to part a needs their size again until they are deleted
        join_extra = sum(p.size_bytes for p in join[1][1:])
    if todo:
        sources = _preflight(ctx, todo, join_extra)
        transfer(ctx, todo, sources)
    if join is not None and joined is None:
        target, parts = join
        ctx.progress.note(target, f"joining {len(parts)} parts into {target}")
        record = join_parts(local_dir, target, tuple(records[p.path] for p in parts), ctx.cancel)
        on_done(record)
    manifest = Manifest(
        repo=plan.repo,
        variant=plan.variant,
        revision=plan.revision,
        commit_sha=plan.commit_sha,
        files=_manifest_files(plan, join, records),
        estimate=estimate,
        reasons=reasons,
    )
    write_manifest(local_dir, manifest)
    _drop_partials(local_dir, plan.files)
    # every file a verify found damaged was either hashed again or downloaded again above
    clear_failed(local_dir)
    remove_verified(local_dir)
    _tidy(local_dir)
    ctx.progress.finish()
    return manifest, reused, tuple(sorted(hashed))


def settle_joins(plan: FetchPlan) -> FetchPlan:
    """The plan as a dry run should show it: parts an earlier fetch already joined are complete."""
    join = join_spec(plan)
    known = {} if plan.recheck else known_good(plan.local_dir, plan.commit_sha)
    if _joined_record(plan.local_dir, join, known) is None or join is None:
        return plan
    return plan.model_copy(update={"files": _parts_complete(plan.files, join)})


def _parts_complete(
    files: Iterable[PlannedFile], join: tuple[str, tuple[PlannedFile, ...]]
) -> tuple[PlannedFile, ...]:
    part_paths = {p.path for p in join[1]}
    return tuple(
        f.model_copy(update={"state": FileState.COMPLETE, "have_bytes": f.size_bytes})
        if f.path in part_paths
        else f
        for f in files
    )


def _joined_record(
    local_dir: Path,
    join: tuple[str, tuple[PlannedFile, ...]] | None,
    known: dict[str, ManifestFile],
) -> ManifestFile | None:
    """The joined file's record, when an earlier fetch joined this variant and it is unchanged."""
    if join is None:
        return None
    record = known.get(join[0])
    if record is None or record.size_bytes != sum(p.size_bytes for p in join[1]):
        return None
    return record if still_good(local_dir, record) else None


def _manifest_files(
    plan: FetchPlan,
    join: tuple[str, tuple[PlannedFile, ...]] | None,
    records: dict[str, ManifestFile],
) -> tuple[ManifestFile, ...]:
    """The plan's files as recorded; a joined variant lists its joined file, not its parts."""
    if join is None:
        return tuple(records[f.path] for f in plan.files)
    target, parts = join
    part_paths = {p.path for p in parts}
    out: list[ManifestFile] = []
    for f in plan.files:
        if f.path == parts[0].path:
            out.append(records[target])
        elif f.path not in part_paths:
            out.append(records[f.path])
    return tuple(out)


def _check_present(ctx: Context, files: list[PlannedFile]) -> list[PlannedFile]:
    """Hash files that are present but were never checked: a match spares the download."""
    out = []
    for f in files:
        if f.state is not FileState.UNVERIFIED:
            out.append(f)
            continue
        if ctx.cancel.is_set():
            raise Cancelled
        path = ctx.plan.local_dir / f.path
        digest = hash_file(path, f.size_bytes, git=not f.lfs)
        if digest is not None and digest.matches(f.sha256, f.git_oid):
            st = os.lstat(path)
            ctx.on_done(checked_record(f, digest, st, "local"))
            ctx.progress.file_done(f.path)
            out.append(
                f.model_copy(update={"state": FileState.COMPLETE, "have_bytes": f.size_bytes})
            )
        else:
            ctx.progress.note(f.path, "present but different from the Hub's: downloading it again")
            out.append(f.model_copy(update={"state": FileState.MISSING, "have_bytes": 0}))
    return out


def _preflight(ctx: Context, todo: list[PlannedFile], extra: int = 0) -> dict[str, Source]:
    """Before the first byte: may this token read the files, and do they fit on the disk?"""
    for f in todo:
        check_parents(ctx.plan.local_dir, check_hub_path(f.path))
    _fresh_staging(ctx.plan.local_dir)
    first = todo[0]
    source = ctx.resolve(first.path)
    need = sum(max(0, f.missing_bytes - _allocated(ctx.plan.local_dir, f)) for f in todo) + extra
    free = shutil.disk_usage(ctx.plan.local_dir).free
    if need > free:
        raise DiskSpaceError(
            f"{ctx.plan.repo} needs {format_size(need)} more, "
            f"but {ctx.plan.local_dir} has {format_size(free)} free"
        )
    return {first.path: source}


def _drop_partials(local_dir: Path, files: Iterable[PlannedFile]) -> None:
    """A kill between installing a file and removing its sidecar leaves a .part.json behind; once
    the manifest vouches for the file it is stale, and it would keep the partial dir alive."""
    where = partial_dir(local_dir)
    for f in files:
        for suffix in (".part.json", ".part"):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                os.unlink(where / f"{partial_key(f.path)}{suffix}")


def _allocated(local_dir: Path, f: PlannedFile) -> int:
    """Disk a .part already holds beyond its checked chunks: bytes of chunks a killed run wrote
    only partly (after a disk-full, nearly all of them) are space the resume does not need again."""
    st = regular_file_stat(partial_dir(local_dir) / f"{partial_key(f.path)}.part")
    if st is None:
        return 0
    return max(0, min(st.st_blocks * 512, f.size_bytes) - f.have_bytes)


def _fresh_staging(local_dir: Path) -> None:
    """huggingface_hub follows whatever it finds in its local_dir: each run starts with none, and
    what a killed fetch left there is gone before the disk check counts free space.

    This also removes what a killed huggingface_hub/hf_xet download left (an orphaned
    `.incomplete`) before the disk check, so its space counts as free.

    A link there was planted (quantpick never makes one), so the fetch stops before any byte.
    """
    staging = local_dir / STATE_DIR / HUB_STAGING
    link = planted_link(staging)
    if link is not None:
        raise IntegrityError(
            f"{link} is a link quantpick did not create; refusing to download through it",
            f"remove it (or {staging}) and run the fetch again",
        )
    shutil.rmtree(staging, ignore_errors=True)


def _tidy(local_dir: Path) -> None:
    shutil.rmtree(local_dir / STATE_DIR / HUB_STAGING, ignore_errors=True)
    # partial files of another variant stay for their own fetch, and keep the dir
    with contextlib.suppress(OSError):
        os.rmdir(partial_dir(local_dir))
