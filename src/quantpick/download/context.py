"""What the movers of one fetch share: options, the context, and the run that counts files, stops
every worker on the first failure or a signal, and re-raises in the main thread."""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quantpick.download.engines.http import (
    Connections,
    Source,
    TransientError,
    resolve,
)
from quantpick.download.localfs import Digest, check_hub_path, ensure_dir
from quantpick.download.manifest import ManifestFile
from quantpick.download.plan import Backend, FetchPlan, PlannedFile
from quantpick.download.progress import Progress
from quantpick.errors import (
    DiskSpaceError,
    IntegrityError,
    NetworkError,
    QuantpickError,
    UsageError,
)
from quantpick.hub.client import Hub

HUB_STAGING = "hub"
# what a kill -9 may cost a resumed fetch at most: the chunks in flight (the README promises it)
LOST_ON_KILL_BYTES = 64 << 20
MIN_CHUNK_BYTES = 4 << 20
# how long a stopping fetch waits for its workers; a huggingface_hub call cannot be interrupted
STOP_GRACE_S = 5.0


def default_workers() -> int:
    """Connections for large files when --max-workers is not given: 2 per CPU, from 4 up to 8.

    Every byte costs this process CPU (receive, write, sha256 at ~1 GB/s per core), so on a fast
    link more than about two connections per core only fight over the cores: on a 2-core box
    4 workers move a loopback branch faster, and with less CPU, than 8. A real CDN caps a single
    connection (tens to ~100 MB/s), which is why it never goes below 4, and 8 stays the ceiling
    that served the Hub well before.
    """
    return min(8, max(4, 2 * (os.cpu_count() or 1)))


@dataclass(frozen=True)
class TransferOptions:
    # connections for large files (the ranged engine's threads, hf_transfer's max_files)
    max_workers: int = field(default_factory=default_workers)
    # a connection that delivers nothing for this long is dropped and its chunk retried
    stall_timeout_s: float = 30.0
    # resume granularity: at most max_workers chunks are lost when a fetch is killed; 0 sizes
    # them so that all chunks in flight together hold at most LOST_ON_KILL_BYTES
    chunk_bytes: int = 0
    # tries per chunk (or per file for huggingface_hub/hf_transfer) after the first
    retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    # concurrent huggingface_hub downloads of small files
    hub_workers: int = 4
    # take files the Hub gave no hash for (a partial mirror), recorded as unverified
    allow_unverified: bool = False

    def __post_init__(self) -> None:
        if self.chunk_bytes <= 0:
            chunk = max(MIN_CHUNK_BYTES, LOST_ON_KILL_BYTES // max(1, self.max_workers))
            object.__setattr__(self, "chunk_bytes", chunk)


class Cancelled(Exception):
    """A signal asked the fetch to stop; resumable state is on disk."""


class WriteFailed(Exception):
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
        self.on_done(checked_record(planned, digest, st, backend.value))


def checked_record(
    planned: PlannedFile, digest: Digest, st: os.stat_result, backend: str
) -> ManifestFile:
    """What the manifest keeps of a file whose bytes were just hashed at its final name."""
    return ManifestFile(
        path=planned.path,
        size_bytes=planned.size_bytes,
        sha256=digest.sha256.hexdigest(),
        git_oid=planned.git_oid,
        lfs=planned.lfs,
        mtime_ns=st.st_mtime_ns,
        backend=backend,
        unverified=planned.hashless,
    )


def bad_hash(planned: PlannedFile) -> IntegrityError:
    return IntegrityError(
        f"{planned.path}: the downloaded bytes do not match the Hub's "
        f"{'sha256' if planned.lfs else 'git hash'}, twice",
        "the server or a proxy is corrupting the transfer; try again later or with --backend hub",
    )


def disk_error(exc: OSError, path: str) -> QuantpickError:
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
