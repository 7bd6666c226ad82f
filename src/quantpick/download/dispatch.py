"""Moving bytes: which mover takes which file, started together, waited for together.

Every file goes to the ranged engine (engines/ranged.py; a Xet file over the Hub's bridge URL)
unless hf_transfer (large files) or huggingface_hub was asked for; `--backend hub` sends files
through huggingface_hub (engines/hub_engine.py), which hands Xet files to hf_xet. Nothing
reaches its final name before its hash is checked; `Context.install` moves it there with os.replace.
"""

from __future__ import annotations

import threading
from collections import deque

from quantpick.download.context import Cancelled, Context, Run, TransferOptions
from quantpick.download.engines.hf_transfer_engine import hf_transfer_worker
from quantpick.download.engines.http import (
    Source,
)
from quantpick.download.engines.hub_engine import hub_worker
from quantpick.download.engines.ranged import RangedEngine
from quantpick.download.plan import Backend, FileState, PlannedFile

# -- entry point ----------------------------------------------------------------------------------

__all__ = ["Cancelled", "Context", "TransferOptions", "transfer"]


def transfer(ctx: Context, files: list[PlannedFile], sources: dict[str, Source]) -> None:
    """Fetch `files` (none of them complete) into place; raises Cancelled on a signal."""
    via_hub = (Backend.HUB, Backend.HF_XET)
    # hf_transfer's child needs its URLs up front; the ranged engine resolves as it goes
    resolved = _sources(ctx, [f for f in files if f.backend is Backend.HF_TRANSFER], sources)
    hub_files: deque[PlannedFile] = deque()
    ranged: list[PlannedFile] = []
    hf_files: list[PlannedFile] = []
    for f in files:
        # a Xet file's resolve answer still points at the bridge, which the ranged engine reads
        if f.backend in via_hub:
            hub_files.append(f)
        elif f.backend is Backend.HF_TRANSFER and f.state is not FileState.PARTIAL:
            hf_files.append(f)
        else:
            ranged.append(f)

    run = Run(ctx, len(hub_files) + len(ranged) + len(hf_files))
    engine = RangedEngine(ctx, run)
    engine.add([(f, resolved.get(f.path)) for f in ranged])
    threads: list[threading.Thread] = []
    if ranged:
        threads += run.spawn(engine.worker, engine.thread_count(), "ranged")
    if hub_files:
        lock = threading.Lock()
        count = max(1, min(ctx.options.hub_workers, len(hub_files)))
        threads += run.spawn(lambda: hub_worker(ctx, run, hub_files, lock), count, "hub")
    if hf_files:
        queue = deque((f, resolved[f.path]) for f in hf_files)
        hf_lock = threading.Lock()
        # one child at a time: each already opens max_workers connections
        threads += run.spawn(lambda: hf_transfer_worker(ctx, run, queue, hf_lock), 1, "hf")
    try:
        run.wait(threads)
    finally:
        ctx.conns.close_all()


def _sources(ctx: Context, files: list[PlannedFile], known: dict[str, Source]) -> dict[str, Source]:
    out = dict(known)
    for f in files:
        if f.path not in out:
            out[f.path] = ctx.resolve(f.path)
    return out
