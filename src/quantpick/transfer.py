"""The byte movers: quantpick's ranged engine, huggingface_hub, and hf_transfer.

Ranged engine (large files): each file is cut into fixed-size chunks; worker threads take chunks in
file order and GET them with Range requests over keep-alive connections, writing into the .part at
their offset. A finished chunk is recorded in the sidecar (partial.py), so a killed fetch resumes
with the chunks it lacks. A follower hashes the .part in order as the chunks behind it complete, so
the sha256 is ready when the last chunk lands, without a second pass over the file. A connection
that delivers nothing for `stall_timeout_s` times out and the chunk is retried from the byte it got
to.

huggingface_hub (small files, Xet-backed files): `Hub.download_file` into a staging dir, then
checked and moved into place. hf_transfer (on request only): fast, but it holds the GIL for a whole
file, cannot resume a file, and removes its output on failure; its file is hashed after it lands.

Nothing reaches its final name before its hash is checked; `install` moves it there with os.replace.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quantpick.errors import (
    DiskSpaceError,
    IntegrityError,
    NetworkError,
    QuantpickError,
    UsageError,
)
from quantpick.http_range import (
    READ_BYTES,
    Connections,
    ExpiredError,
    RangeUnsupportedError,
    Source,
    TransientError,
    fetch_range,
    resolve,
)
from quantpick.hub import Hub
from quantpick.localfs import STATE_DIR, Digest, check_hub_path, ensure_dir, hash_file, hash_range
from quantpick.manifest import ManifestFile
from quantpick.partial import PartialState, partial_dir, partial_key
from quantpick.plan import Backend, FetchPlan, FileState, PlannedFile
from quantpick.progress import Progress

HUB_STAGING = "hub"
# how long a stopping fetch waits for its workers; a huggingface_hub call cannot be interrupted
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class TransferOptions:
    # connections for large files (the ranged engine's threads, hf_transfer's max_files)
    max_workers: int = 8
    # a connection that delivers nothing for this long is dropped and its chunk retried
    stall_timeout_s: float = 30.0
    # resume granularity: at most max_workers chunks are lost when a fetch is killed
    chunk_bytes: int = 16 << 20
    # tries per chunk (or per file for huggingface_hub/hf_transfer) after the first
    retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    # concurrent huggingface_hub downloads of small files
    hub_workers: int = 4


class Cancelled(Exception):
    """A signal asked the fetch to stop; resumable state is on disk."""


class _WriteFailed(Exception):
    """Writing to the .part failed: a local problem, never retried like a network one."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


@dataclass
class Stats:
    transferred_bytes: int = 0
    files_transferred: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int, files: int = 0) -> None:
        with self._lock:
            self.transferred_bytes += nbytes
            self.files_transferred += files


@dataclass
class Context:
    """What every mover of one fetch shares."""

    hub: Hub
    plan: FetchPlan
    options: TransferOptions
    progress: Progress
    cancel: threading.Event
    on_done: Callable[[ManifestFile], None]
    stats: Stats = field(default_factory=Stats)
    conns: Connections = field(init=False)

    def __post_init__(self) -> None:
        self.conns = Connections(self.options.stall_timeout_s)

    @property
    def local_dir(self) -> Path:
        return self.plan.local_dir

    def resolve(self, path: str) -> Source:
        """Where `path`'s bytes are; retried on transient failures, mapped errors otherwise."""
        url = self.hub.resolve_url(self.plan.repo, self.plan.commit_sha, path)
        attempt = 0
        while True:
            try:
                return resolve(
                    self.conns,
                    url,
                    self.hub.auth_headers(),
                    repo=self.plan.repo,
                    path=path,
                    revision=self.plan.revision,
                )
            except TransientError as exc:
                attempt = self.backoff(attempt, path, exc)

    def backoff(self, attempt: int, path: str, exc: BaseException) -> int:
        """Wait before try `attempt + 1`; NetworkError when out of tries, Cancelled on a signal."""
        if self.cancel.is_set():
            raise Cancelled
        if attempt >= self.options.retries:
            raise NetworkError(
                f"{path}: gave up after {attempt + 1} tries ({exc})",
                "check your connection and run the same command again: it resumes",
            )
        delay = min(self.options.backoff_max_s, self.options.backoff_s * 2**attempt)
        self.progress.note(path, f"retrying in {delay:.1f}s: {exc}")
        if self.cancel.wait(delay * (0.5 + random.random() / 2)):
            raise Cancelled
        return attempt + 1

    def install(self, planned: PlannedFile, src: Path, digest: Digest, backend: Backend) -> None:
        """Move a checked file to its final name and record it."""
        rel = check_hub_path(planned.path)
        final = ensure_dir(self.local_dir, rel.parent) / rel.name
        if final.is_dir() and not final.is_symlink():
            raise UsageError(f"{final} is a directory; quantpick will not replace it")
        os.replace(src, final)
        st = os.lstat(final)
        self.stats.add(0, files=1)
        self.progress.file_done(planned.path)
        self.on_done(
            ManifestFile(
                path=planned.path,
                size_bytes=planned.size_bytes,
                sha256=digest.sha256.hexdigest(),
                git_oid=planned.git_oid,
                lfs=planned.lfs,
                mtime_ns=st.st_mtime_ns,
                backend=backend.value,
            )
        )


def _bad_hash(planned: PlannedFile) -> IntegrityError:
    return IntegrityError(
        f"{planned.path}: the downloaded bytes do not match the Hub's "
        f"{'sha256' if planned.lfs else 'git hash'}, twice",
        "the server or a proxy is corrupting the transfer; try again later or with --backend hub",
    )


def _disk_error(exc: OSError, path: str) -> QuantpickError:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DiskSpaceError(f"the disk filled up while writing {path}")
    return UsageError(f"cannot write {path}: {exc.strerror or exc}", "check the target dir")


# -- the run: workers, completion, failure, cancel ------------------------------------------------


class Run:
    """Counts unfinished files; the first failure or a cancel stops every worker."""

    def __init__(self, ctx: Context, files: int) -> None:
        self.ctx = ctx
        self.pending = files
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        if files == 0:
            self.done.set()

    @property
    def stopping(self) -> bool:
        return self.error is not None or self.ctx.cancel.is_set()

    def file_finished(self) -> None:
        with self._lock:
            self.pending -= 1
            if self.pending <= 0:
                self.done.set()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None and not isinstance(exc, Cancelled):
                self.error = exc
        self.done.set()

    def spawn(self, target: Callable[[], None], count: int, name: str) -> list[threading.Thread]:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # re-raised in the main thread by wait()
                self.fail(exc)

        # daemon: a huggingface_hub call cannot be interrupted, and must not hold up the exit
        threads = [
            threading.Thread(target=guarded, name=f"quantpick-{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for t in threads:
            t.start()
        return threads

    def wait(self, threads: list[threading.Thread]) -> None:
        """Block (signal handlers still run) until done, failed or cancelled; then raise if so."""
        while not self.done.wait(0.1):
            if self.ctx.cancel.is_set():
                break
        if self.stopping:
            # wake reads blocked on a socket so the workers notice and leave the .part consistent
            self.ctx.conns.abort_all()
        deadline = time.monotonic() + (STOP_GRACE_S if self.stopping else 3600.0)
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            raise self.error
        if self.ctx.cancel.is_set():
            raise Cancelled


# -- ranged engine --------------------------------------------------------------------------------


class RangedJob:
    """One large file: its .part, where its bytes come from, and the in-order hasher."""

    def __init__(self, ctx: Context, run: Run, planned: PlannedFile, source: Source) -> None:
        self.ctx = ctx
        self.run = run
        self.planned = planned
        self.source = source
        self.state = self._open_state()
        self.digest = Digest(planned.size_bytes, git=not planned.lfs)
        self.next_hash = 0
        self.redownloads_left = 1
        self._hash_lock = threading.Lock()
        self._source_lock = threading.Lock()
        self.finished = False

    def _open_state(self) -> PartialState:
        p = self.planned
        state = PartialState.load(self.ctx.local_dir, p.path)
        if state is not None and state.matches(p.size_bytes, p.sha256, p.git_oid):
            return state
        return PartialState.create(
            self.ctx.local_dir,
            p.path,
            p.size_bytes,
            p.sha256,
            p.git_oid,
            self.ctx.options.chunk_bytes,
        )

    def refresh_source(self, stale: Source) -> None:
        with self._source_lock:
            if self.source is stale:
                self.source = self.ctx.resolve(self.planned.path)

    def fetch_chunk(self, index: int, buf: bytearray) -> None:
        start, end = self.state.chunk_range(index)
        if start >= end:
            return
        offset = start
        attempt = 0
        path = self.planned.path
        while True:
            source = self.source
            got_from = offset
            try:
                with open(self.state.part_path, "r+b", buffering=0) as f:
                    f.seek(offset)

                    def sink(view: memoryview) -> None:
                        nonlocal offset
                        written = 0
                        try:
                            while written < len(view):
                                written += f.write(view[written:]) or 0
                        except OSError as exc:
                            raise _WriteFailed(exc) from exc
                        offset += len(view)
                        self.ctx.stats.add(len(view))
                        self.ctx.progress.advance(path, len(view))

                    fetch_range(
                        self.ctx.conns,
                        source,
                        offset,
                        end,
                        sink,
                        lambda: self.run.stopping,
                        buf,
                    )
                return
            except ExpiredError as exc:
                attempt = self.ctx.backoff(attempt, path, exc)
                self.refresh_source(source)
            except TransientError as exc:
                if self.run.stopping:
                    raise Cancelled from None
                # a try that moved bytes was not a failure of the connection to make progress
                attempt = self.ctx.backoff(0 if offset > got_from else attempt, path, exc)
            except RangeUnsupportedError as exc:
                raise NetworkError(f"{path}: {exc}", "run again with --backend hub") from None
            except _WriteFailed as exc:
                raise _disk_error(exc.exc, path) from None
            except OSError as exc:
                raise _disk_error(exc, path) from None

    def advance_hash(self) -> None:
        """Hash the chunks that are done and in order; the last one finishes the file."""
        while True:
            if not self._hash_lock.acquire(blocking=False):
                return
            try:
                self._hash_ready()
            finally:
                self._hash_lock.release()
            # a chunk marked while the lock was held would otherwise wait for the next call
            if not self._next_ready():
                return

    def _next_ready(self) -> bool:
        return (
            not self.finished
            and self.next_hash < self.state.chunk_count
            and self.state.is_done(self.next_hash)
        )

    def _hash_ready(self) -> None:
        if not self._next_ready():
            return
        buf = bytearray(READ_BYTES * 8)
        with open(self.state.part_path, "rb", buffering=0) as f:
            while self._next_ready():
                start, end = self.state.chunk_range(self.next_hash)
                if hash_range(f, self.digest, start, end, buf) != end - start:
                    raise IntegrityError(f"{self.planned.path}: the partial file shrank")
                self.next_hash += 1
        if self.next_hash == self.state.chunk_count:
            self._complete()

    def _complete(self) -> None:
        p = self.planned
        if self.digest.matches(p.sha256, p.git_oid):
            self.finished = True
            self.ctx.install(p, self.state.part_path, self.digest, Backend.RANGED)
            self.state.discard()
            self.run.file_finished()
            return
        if self.redownloads_left <= 0:
            raise _bad_hash(p)
        self.redownloads_left -= 1
        self.ctx.progress.note(p.path, "hash mismatch: downloading the file again")
        self.state.discard()
        self.state = PartialState.create(
            self.ctx.local_dir, p.path, p.size_bytes, p.sha256, p.git_oid, self.state.chunk_bytes
        )
        self.digest = Digest(p.size_bytes, git=not p.lfs)
        self.next_hash = 0
        self.run_requeue(self)

    # set by RangedEngine: puts every chunk of a job back in the queue
    run_requeue: Callable[[RangedJob], None]


class RangedEngine:
    def __init__(self, ctx: Context, run: Run) -> None:
        self.ctx = ctx
        self.run = run
        self.jobs: list[RangedJob] = []
        self._queue: deque[tuple[RangedJob, int | None]] = deque()
        self._cond = threading.Condition()

    def add(self, planned: PlannedFile, source: Source) -> None:
        job = RangedJob(self.ctx, self.run, planned, source)
        job.run_requeue = self._requeue
        self.jobs.append(job)
        done = job.state.done_bytes
        self.ctx.progress.file_started(planned.path, planned.size_bytes, done)
        missing = job.state.missing_chunks()
        # a file whose chunks are all here (killed while hashing) only needs its hash
        self._queue.extend((job, i) for i in missing) if missing else self._queue.append(
            (job, None)
        )

    def _requeue(self, job: RangedJob) -> None:
        with self._cond:
            self._queue.extend((job, i) for i in range(job.state.chunk_count))
            self._cond.notify_all()

    def _take(self) -> tuple[RangedJob, int | None] | None:
        with self._cond:
            while not self._queue:
                if self.run.stopping or self.run.done.is_set():
                    return None
                # another worker may still put a file back (bad hash), so wait rather than leave
                self._cond.wait(0.1)
            return self._queue.popleft()

    def worker(self) -> None:
        buf = bytearray(READ_BYTES)
        while not self.run.stopping:
            task = self._take()
            if task is None:
                return
            job, index = task
            if index is not None:
                job.fetch_chunk(index, buf)
                job.state.mark_done(index)
            job.advance_hash()

    def thread_count(self) -> int:
        return max(1, min(self.ctx.options.max_workers, len(self._queue)))


# -- huggingface_hub ------------------------------------------------------------------------------


def fetch_via_hub(ctx: Context, run: Run, planned: PlannedFile) -> None:
    p = planned
    staging = ensure_dir(ctx.local_dir, f"{STATE_DIR}/{HUB_STAGING}/{partial_key(p.path)}")
    ctx.progress.file_started(p.path, p.size_bytes, 0)
    try:
        for tries_left in (1, 0):
            ctx.hub.download_file(ctx.plan.repo, ctx.plan.commit_sha, p.path, staging)
            # where local_dir mode puts it; the returned path is not trusted beyond that
            landed = staging / check_hub_path(p.path)
            digest = hash_file(landed, p.size_bytes, git=not p.lfs)
            ctx.stats.add(p.size_bytes)
            ctx.progress.advance(p.path, p.size_bytes)
            if digest is not None and digest.matches(p.sha256, p.git_oid):
                if run.stopping:
                    return
                ctx.install(p, landed, digest, Backend.HUB)
                run.file_finished()
                return
            shutil.rmtree(staging, ignore_errors=True)
            if tries_left:
                ctx.progress.note(p.path, "hash or size mismatch: downloading again")
                staging = ensure_dir(
                    ctx.local_dir, f"{STATE_DIR}/{HUB_STAGING}/{partial_key(p.path)}"
                )
        raise _bad_hash(p)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hub_worker(ctx: Context, run: Run, files: deque[PlannedFile], lock: threading.Lock) -> None:
    while not run.stopping:
        with lock:
            if not files:
                return
            planned = files.popleft()
        fetch_via_hub(ctx, run, planned)


# -- hf_transfer ----------------------------------------------------------------------------------


def fetch_via_hf_transfer(ctx: Context, planned: PlannedFile, source: Source) -> None:
    """One file, in the calling thread: hf_transfer holds the GIL until the file is complete."""
    import hf_transfer

    p = planned
    opts = ctx.options
    ensure_dir(partial_dir(ctx.local_dir).parent, partial_dir(ctx.local_dir).name)
    state = PartialState(ctx.local_dir, p.path, p.size_bytes, p.sha256, p.git_oid, opts.chunk_bytes)
    ctx.progress.file_started(p.path, p.size_bytes, 0)
    attempt = 0
    while True:
        # no sidecar: a killed hf_transfer leaves nothing a later run could trust
        state.discard()
        reported = 0

        def callback(nbytes: int) -> None:
            nonlocal reported
            # hf_transfer reports each chunk one byte short
            step = min(nbytes + 1, p.size_bytes - reported)
            reported += step
            ctx.stats.add(step)
            ctx.progress.advance(p.path, step)
            if ctx.cancel.is_set():
                raise Cancelled

        workers = max(1, opts.max_workers)
        try:
            hf_transfer.download(
                source.url,
                str(state.part_path),
                workers,
                opts.chunk_bytes,
                parallel_failures=min(workers, 4) if opts.retries else 0,
                max_retries=opts.retries,
                headers=source.headers or None,
                callback=callback,
            )
        except Cancelled:
            raise
        except Exception as exc:  # hf_transfer raises bare Exception for every failure
            attempt = ctx.backoff(attempt, p.path, _short(exc))
            source = ctx.resolve(p.path)
            continue
        ctx.stats.add(p.size_bytes - reported)
        ctx.progress.advance(p.path, p.size_bytes - reported)
        digest = hash_file(state.part_path, p.size_bytes, git=not p.lfs)
        if digest is not None and digest.matches(p.sha256, p.git_oid):
            ctx.install(p, state.part_path, digest, Backend.HF_TRANSFER)
            return
        attempt = ctx.backoff(attempt, p.path, IntegrityError("hash mismatch"))


def _short(exc: BaseException) -> Exception:
    # hf_transfer's messages can carry the pre-signed URL: keep the first words only
    text = str(exc).split("http", 1)[0].strip() or type(exc).__name__
    return NetworkError(text)


# -- entry point ----------------------------------------------------------------------------------


def transfer(ctx: Context, files: list[PlannedFile], sources: dict[str, Source]) -> None:
    """Fetch `files` (none of them complete) into place; raises Cancelled on a signal."""
    resolved = _sources(ctx, [f for f in files if f.backend is not Backend.HUB], sources)
    hub_files: deque[PlannedFile] = deque()
    ranged: list[PlannedFile] = []
    hf_files: list[PlannedFile] = []
    for f in files:
        # Xet storage has no plain-HTTP body to range over: huggingface_hub (hf_xet) fetches it
        if f.backend is Backend.HUB or resolved[f.path].xet:
            hub_files.append(f)
        elif f.backend is Backend.HF_TRANSFER and f.state is not FileState.PARTIAL:
            hf_files.append(f)
        else:
            ranged.append(f)

    run = Run(ctx, len(hub_files) + len(ranged))
    engine = RangedEngine(ctx, run)
    for f in ranged:
        engine.add(f, resolved[f.path])
    threads: list[threading.Thread] = []
    if ranged:
        threads += run.spawn(engine.worker, engine.thread_count(), "ranged")
    if hub_files:
        lock = threading.Lock()
        count = max(1, min(ctx.options.hub_workers, len(hub_files)))
        threads += run.spawn(lambda: hub_worker(ctx, run, hub_files, lock), count, "hub")
    try:
        run.wait(threads)
        for f in hf_files:
            fetch_via_hf_transfer(ctx, f, resolved[f.path])
    finally:
        ctx.conns.close_all()


def _sources(ctx: Context, files: list[PlannedFile], known: dict[str, Source]) -> dict[str, Source]:
    out = dict(known)
    for f in files:
        if f.path not in out:
            out[f.path] = ctx.resolve(f.path)
    return out
