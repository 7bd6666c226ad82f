"""One huggingface_hub download (plain HTTP or hf_xet) under quantpick's progress and watchdog.

huggingface_hub reports bytes only to a `tqdm_class`, and hf_xet's own retries can outlast any
stall watchdog (shared/HUB_API.md; xet-core #898 reports stalls that never end). So the call runs
in a thread of its own, every byte it reports moves the progress, and when nothing has arrived for
longer than hf_xet's whole retry budget the fetch gives up with a NetworkError (exit 7) instead of
waiting: the thread is a daemon and cannot hold up the exit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from quantpick.download.context import Cancelled, Context, Run
from quantpick.download.plan import PlannedFile
from quantpick.errors import NetworkError
from quantpick.hub.xet import XetLimits

_POLL_S = 0.1


def xet_limits(ctx: Context) -> XetLimits:
    o = ctx.options
    return XetLimits(
        read_timeout_s=o.stall_timeout_s, attempts=o.retries + 1, backoff_s=o.backoff_s
    )


def download_watched(
    ctx: Context, run: Run, p: PlannedFile, staging: Path, *, fresh: bool = False
) -> tuple[Path, int]:
    """Download `p` into `staging`; returns where huggingface_hub put it and the bytes reported.

    `fresh`: from the server, never a copy of huggingface_hub's cache (after a hash mismatch).
    """
    limits = xet_limits(ctx)
    state: dict[str, float] = {"seen": 0, "last": time.monotonic()}
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            state["seen"] += n
            state["last"] = time.monotonic()
        ctx.stats.add(n)
        ctx.progress.advance(p.path, n)

    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["path"] = ctx.hub.download_file(
                ctx.plan.repo,
                ctx.plan.commit_sha,
                p.path,
                staging,
                on_bytes=on_bytes,
                xet_limits=limits,
                fresh=fresh,
            )
        except BaseException as exc:  # re-raised in the worker that waits below
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"quantpick-hub-call-{p.path}", daemon=True)
    worker.start()
    bound_s = limits.retry_budget_s + ctx.options.stall_timeout_s
    while worker.is_alive():
        worker.join(_POLL_S)
        if run.stopping:
            raise Cancelled
        with lock:
            idle = time.monotonic() - state["last"]
        if worker.is_alive() and idle > bound_s:
            raise NetworkError(
                f"{p.path}: nothing arrived for {idle:.0f}s (stall watchdog {bound_s}s)",
                "check your connection and run the same command again",
            )
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    path = outcome["path"]
    assert isinstance(path, Path)
    return path, int(state["seen"])
