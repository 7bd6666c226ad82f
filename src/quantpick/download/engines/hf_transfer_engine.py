"""hf_transfer on request (`--backend hf_transfer`), in a child process.

It downloads into the target dir's partial folder; a file reaches its final name only after its hash
is checked.
"""

from __future__ import annotations

import ctypes
import errno
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from quantpick.download.context import Cancelled, Context, Run, disk_error
from quantpick.download.engines.http import (
    Source,
    TransientError,
)
from quantpick.download.localfs import ensure_dir, hash_file
from quantpick.download.partial import PartialState, partial_dir
from quantpick.download.plan import Backend, PlannedFile

# hf_transfer holds the GIL for a whole file: in-process it would freeze progress, the watchdog,
# signal handling and any in-process server. A child process keeps all of those alive and can be
# killed when it stalls or the user interrupts. Arguments come on stdin: they may carry the token.
_CHILD = """
import json, sys
import hf_transfer
a = json.loads(sys.stdin.read())
def progress(n):
    sys.stdout.write(f"{n}\\n")
    sys.stdout.flush()
hf_transfer.download(
    a["url"], a["filename"], a["max_files"], a["chunk_size"],
    parallel_failures=a["parallel_failures"], max_retries=a["max_retries"],
    headers=a["headers"] or None, callback=progress,
)
"""


def fetch_via_hf_transfer(ctx: Context, run: Run, planned: PlannedFile, source: Source) -> None:
    p = planned
    ensure_dir(ctx.local_dir, partial_dir(ctx.local_dir).relative_to(ctx.local_dir).as_posix())
    state = PartialState(
        ctx.local_dir, p.path, p.size_bytes, p.sha256, p.git_oid, ctx.options.chunk_bytes
    )
    ctx.progress.file_started(p.path, p.size_bytes, 0)
    attempt = 0
    while True:
        # no sidecar: a killed hf_transfer leaves nothing a later run could trust
        state.discard()
        try:
            _run_child(ctx, run, p, source, state.part_path)
        except Cancelled:
            state.discard()
            raise
        except _DiskFull as exc:
            # a retry cannot make room: 9 now, not 7 after six tries
            raise disk_error(OSError(errno.ENOSPC, str(exc)), p.path) from None
        except TransientError as exc:
            attempt = ctx.backoff(attempt, p.path, exc)
            source = ctx.resolve(p.path)
            continue
        digest = hash_file(state.part_path, p.size_bytes, git=not p.lfs)
        if digest is not None and digest.matches(p.sha256, p.git_oid):
            ctx.install(p, state.part_path, digest, Backend.HF_TRANSFER)
            run.file_finished()
            return
        attempt = ctx.backoff(attempt, p.path, TransientError("hash mismatch"))


def _run_child(ctx: Context, run: Run, p: PlannedFile, source: Source, part: Path) -> None:
    opts = ctx.options
    workers = max(1, opts.max_workers)
    args = {
        "url": source.url,
        "filename": str(part),
        "max_files": workers,
        "chunk_size": opts.chunk_bytes,
        "parallel_failures": min(workers, 4) if opts.retries else 0,
        "max_retries": opts.retries,
        "headers": source.headers,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C reaches quantpick only; it stops the child itself
        start_new_session=True,
        # and a SIGKILLed quantpick takes it along (the kernel kills it when its parent dies)
        preexec_fn=_die_with_parent,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(json.dumps(args).encode())
    child.stdin.close()
    last = [time.monotonic()]
    reported = [0]

    def read_progress() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            # hf_transfer reports each chunk one byte short
            step = min(int(line) + 1, p.size_bytes - reported[0])
            reported[0] += step
            last[0] = time.monotonic()
            ctx.stats.add(step)
            ctx.progress.advance(p.path, step)

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    try:
        while child.poll() is None:
            if run.stopping:
                raise Cancelled
            idle = time.monotonic() - last[0]
            if idle > _DISK_CHECK_AFTER_S and shutil.disk_usage(part.parent).free < _NO_ROOM:
                # hf_transfer may sit retrying a write that cannot succeed: no room is exit 9
                raise _DiskFull("no space left on device")
            if idle > opts.stall_timeout_s:
                raise TransientError(f"no progress for {opts.stall_timeout_s:g}s")
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=1)
        err = child.stderr.read().decode(errors="replace") if child.stderr else ""
        if child.stderr:
            child.stderr.close()
        child.stdout.close()
    if child.returncode != 0:
        if _DISK_FULL.search(err):
            raise _DiskFull(_short(err))
        raise TransientError(_short(err) or f"hf_transfer exited with {child.returncode}")
    ctx.stats.add(p.size_bytes - reported[0])
    ctx.progress.advance(p.path, p.size_bytes - reported[0])


class _DiskFull(Exception):
    pass


# what a Rust io::Error says for ENOSPC and EDQUOT
_DISK_FULL = re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122")
_PR_SET_PDEATHSIG = 1
# a child with no progress for this long on a disk with less than _NO_ROOM free is out of space
_DISK_CHECK_AFTER_S = 2.0
_NO_ROOM = 1 << 20


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the thread that started it dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the stall watchdog and the parent's kill on exit remain


def _short(text: str) -> str:
    # hf_transfer's messages can carry the pre-signed URL: keep the last line, up to any URL
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].split("http", 1)[0].strip()[:200] if lines else ""


def hf_transfer_worker(
    ctx: Context, run: Run, files: deque[tuple[PlannedFile, Source]], lock: threading.Lock
) -> None:
    while not run.stopping:
        with lock:
            if not files:
                return
            planned, source = files.popleft()
        fetch_via_hf_transfer(ctx, run, planned, source)
