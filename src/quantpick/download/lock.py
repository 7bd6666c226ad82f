"""One fetch per directory, and a fetch that stops cleanly: the directory lock, and SIGINT/SIGTERM
turned into a cancel every worker sees, then the documented exit code."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from filelock import FileLock, Timeout

from quantpick.download.localfs import (
    STATE_DIR,
    ensure_dir,
)
from quantpick.errors import (
    InterruptedError_,
    LockedError,
    TerminatedError,
    UsageError,
)

# DIR/.quantpick/lock: held for the whole fetch
LOCK_NAME = "lock"


def stop_error(signum: int | None, local_dir: Path) -> InterruptedError_:
    where = local_dir / STATE_DIR
    if signum == signal.SIGTERM:
        return TerminatedError(f"terminated; the partial download is kept in {where}")
    return InterruptedError_(f"interrupted; the partial download is kept in {where}")


@contextmanager
def dir_lock(local_dir: Path, timeout_s: float | None) -> Iterator[None]:
    state = ensure_dir(Path(local_dir), STATE_DIR)
    path = state / LOCK_NAME
    if path.is_symlink():
        raise UsageError(f"{path} is a symlink; quantpick will not lock through it")
    lock = FileLock(path, timeout=-1 if timeout_s is None else timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(f"{local_dir} is being written by another quantpick fetch") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class Caught:
    signum: int | None = None


@contextmanager
def caught_signals(cancel: threading.Event) -> Iterator[Caught]:
    """SIGINT/SIGTERM ask the fetch to stop at a safe point; a second one stops it at once."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if caught.signum is not None:
            raise stop_error(signum, Path("."))
        caught.signum = signum
        cancel.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
