"""Quantpick's ranged engine for large files.

Each file is cut into fixed-size chunks; worker threads take chunks and GET them with Range requests
over keep-alive connections, writing into the .part at their offset (os.pwrite: no seek, no buffered
layer). A finished chunk is recorded in the sidecar (partial.py), so a killed fetch resumes with the
chunks it lacks. The sha256 is computed in order, ready when the last chunk lands, without a second
pass over the file: the worker holding the file's next-to-hash chunk hashes each buffer it has just
received and written (hashlib releases the GIL, so this runs beside the other connections), and the
chunks that finished ahead of it are read back from the page cache by a follower. Chunks are queued
one lane per worker (files interleaved, see `_interleave`), so a worker mostly streams its own file
in order and nearly every byte is hashed straight from the receive buffer. A connection that
delivers nothing for `stall_timeout_s` times out, and its chunk is retried from the byte it got to.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from quantpick.download.context import Cancelled, Context, Run, WriteFailed, bad_hash, disk_error
from quantpick.download.engines.http import (
    READ_BYTES,
    ExpiredError,
    RangeUnsupportedError,
    Source,
    TransientError,
    fetch_range,
)
from quantpick.download.engines.hub_engine import fetch_via_hub
from quantpick.download.localfs import HASH_BUFFER_BYTES, Digest, hash_range
from quantpick.download.partial import PartialState
from quantpick.download.plan import Backend, PlannedFile
from quantpick.errors import (
    IntegrityError,
)

_Task = tuple["RangedJob", int | None]


class _RangesIgnored(Exception):
    """The server answered a Range request with the whole body (200): legal, and unrangeable."""


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
        # bytes [0, hash_pos) are in the digest; may run ahead into chunk next_hash (inline hashing)
        self.hash_pos = 0
        self.redownloads_left = 1
        self._hash_lock = threading.Lock()
        self._source_lock = threading.Lock()
        self._hash_buf: bytearray | None = None
        self.finished = False
        # the server ignores Range: the file went to one stream (huggingface_hub) instead
        self.single_stream = False
        # workers inside this job's .part (fetching a chunk, marking it, hashing): the fallback
        # removes the .part only once they are out, or one of them would open a file just
        # deleted (a false disk error) or write its sidecar back
        self._active = 0
        self._single = threading.Condition()

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
        # pos[0]: the next byte of the chunk to write; a retry goes on from there
        pos = [start]
        attempt = 0
        path = self.planned.path
        while True:
            source = self.source
            got_from = pos[0]
            try:
                with open(self.state.part_path, "r+b", buffering=0) as f:
                    fetch_range(
                        self.ctx.conns,
                        source,
                        pos[0],
                        end,
                        self._sink(index, f, pos),
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
                attempt = self.ctx.backoff(0 if pos[0] > got_from else attempt, path, exc)
            except RangeUnsupportedError:
                raise _RangesIgnored from None
            except WriteFailed as exc:
                raise disk_error(exc.exc, path) from None
            except OSError as exc:
                raise disk_error(exc, path) from None

    def _sink(self, index: int, f: BinaryIO, pos: list[int]) -> Callable[[memoryview], None]:
        """Where fetch_range puts the bytes of chunk `index`: the .part at pos[0], then the hash."""
        fd = f.fileno()
        path = self.planned.path

        def sink(view: memoryview) -> None:
            at = pos[0]
            written = 0
            try:
                while written < len(view):
                    written += os.pwrite(fd, view[written:], at + written)
            except OSError as exc:
                raise WriteFailed(exc) from exc
            pos[0] = at + len(view)
            if self.next_hash == index:
                self._hash_inline(index, f, at, view)
            self.ctx.stats.add(len(view))
            self.ctx.progress.advance(path, len(view))

        return sink

    def _hash_inline(self, index: int, f: BinaryIO, at: int, view: memoryview) -> None:
        """Hash bytes [at, at + len(view)) of chunk `index`, just written, while it is next in line.

        Bytes of the chunk that came before it became next in line are read back first. Never
        waits: when the follower holds the lock, it (or a later call) catches up from the file.
        """
        if not self._hash_lock.acquire(blocking=False):
            return
        try:
            start, _ = self.state.chunk_range(index)
            if self.finished or self.next_hash != index or not start <= self.hash_pos <= at:
                return
            if self.hash_pos < at:
                if self._hash_buf is None:
                    self._hash_buf = bytearray(HASH_BUFFER_BYTES)
                got = hash_range(f, self.digest, self.hash_pos, at, self._hash_buf)
                if got != at - self.hash_pos:
                    # bytes written a moment ago are gone: the digest cannot be trusted
                    raise IntegrityError(f"{self.planned.path}: the partial file shrank")
                self.hash_pos = at
            self.digest.update(view)
            self.hash_pos = at + len(view)
        finally:
            self._hash_lock.release()

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
        if self._hash_buf is None:
            # allocated once: a fresh 8 MiB bytearray per call is a memset the CPU pays for
            self._hash_buf = bytearray(HASH_BUFFER_BYTES)
        buf = self._hash_buf
        with open(self.state.part_path, "rb", buffering=0) as f:
            while self._next_ready():
                start, end = self.state.chunk_range(self.next_hash)
                # the part of the chunk already hashed inline is not read again
                start = max(start, self.hash_pos)
                if hash_range(f, self.digest, start, end, buf) != end - start:
                    raise IntegrityError(f"{self.planned.path}: the partial file shrank")
                self.hash_pos = end
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
            raise bad_hash(p)
        self.redownloads_left -= 1
        self.ctx.progress.note(p.path, "hash mismatch: downloading the file again")
        self.state.discard()
        self.state = PartialState.create(
            self.ctx.local_dir, p.path, p.size_bytes, p.sha256, p.git_oid, self.state.chunk_bytes
        )
        self.digest = Digest(p.size_bytes, git=not p.lfs)
        self.next_hash = 0
        self.hash_pos = 0
        self.run_requeue(self)

    def enter(self) -> bool:
        """A worker starts to use the .part; False once the file went to one stream."""
        with self._single:
            if self.single_stream:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._single:
            self._active -= 1
            self._single.notify_all()

    def fall_back_to_one_stream(self) -> None:
        """The first worker to see a 200 fetches the whole file in one GET; the rest drop it."""
        with self._single:
            if self.single_stream:
                return
            self.single_stream = True
            # the others see a 200 too, or finish the chunk they are on, and leave
            while self._active:
                self._single.wait()
        self.ctx.progress.note(self.planned.path, "the server ignores Range: one stream instead")
        self.state.discard()
        fetch_via_hub(self.ctx, self.run, self.planned)

    # set by RangedEngine: puts every chunk of a job back in the queue
    run_requeue: Callable[[RangedJob], None]


class RangedEngine:
    def __init__(self, ctx: Context, run: Run) -> None:
        self.ctx = ctx
        self.run = run
        self.jobs: list[RangedJob] = []
        self._queue: deque[tuple[RangedJob, int | None]] = deque()
        self._tasks: list[list[tuple[RangedJob, int | None]]] = []
        self._cond = threading.Condition()

    def add(self, planned: PlannedFile, source: Source) -> None:
        job = RangedJob(self.ctx, self.run, planned, source)
        job.run_requeue = self._requeue
        self.jobs.append(job)
        done = job.state.done_bytes
        self.ctx.progress.file_started(planned.path, planned.size_bytes, done)
        missing = job.state.missing_chunks()
        # a file whose chunks are all here (killed while hashing) only needs its hash
        self._tasks.append([(job, i) for i in missing] or [(job, None)])
        self._queue = deque(_interleave(self._tasks, self.ctx.options.max_workers))

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
            if not job.enter():
                continue
            ranges_ignored = False
            try:
                if index is not None:
                    try:
                        job.fetch_chunk(index, buf)
                    except _RangesIgnored:
                        ranges_ignored = True
                    else:
                        job.state.mark_done(index)
                if not ranges_ignored:
                    job.advance_hash()
            finally:
                job.leave()
            if ranges_ignored:
                job.fall_back_to_one_stream()

    def thread_count(self) -> int:
        return max(1, min(self.ctx.options.max_workers, len(self._queue)))


def _interleave(per_file: list[list[_Task]], lanes: int) -> list[_Task]:
    """Chunks in fetch order: files in groups of `lanes`, round-robin within a group.

    With one lane per worker each worker mostly streams one file front to back, so the file's
    next-to-hash chunk is the one being received and is hashed from the receive buffer; files are
    hashed side by side (one digest each) instead of one after another, and no file's whole last
    stretch is left to hash after the last byte arrives. With fewer files than workers, several
    workers share a file and the chunks they finish ahead are read back from the page cache.
    """
    out: list[_Task] = []
    lanes = max(1, lanes)
    for g in range(0, len(per_file), lanes):
        group = per_file[g : g + lanes]
        for i in range(max(len(t) for t in group)):
            out.extend(t[i] for t in group if i < len(t))
    return out
