"""huggingface_hub's own downloader, for small files, and hf_xet for Xet files when asked for.

It downloads into the target dir's state folder; a file reaches its final name only after its hash
is checked. The call itself runs under progress and a watchdog (watched.py).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import deque

from quantpick.download.context import HUB_STAGING, Context, Run, bad_hash
from quantpick.download.engines.watched import download_watched
from quantpick.download.localfs import STATE_DIR, check_hub_path, ensure_dir, hash_file
from quantpick.download.partial import partial_key
from quantpick.download.plan import Backend, PlannedFile
from quantpick.errors import IntegrityError, NetworkError


def fetch_via_hub(ctx: Context, run: Run, planned: PlannedFile) -> None:
    p = planned
    ctx.progress.file_started(p.path, p.size_bytes, 0)
    attempt = 0
    redownloads_left = 1
    fresh = False
    while True:
        staging = ensure_dir(ctx.local_dir, f"{STATE_DIR}/{HUB_STAGING}/{partial_key(p.path)}")
        if os.listdir(staging):
            # emptied before the first byte and after every try: anything here was planted
            raise IntegrityError(
                f"{staging} holds files quantpick did not put there; refusing to download into it",
                "remove it and run the fetch again",
            )
        try:
            try:
                _, reported = download_watched(ctx, run, p, staging, fresh=fresh)
            except NetworkError as exc:
                if p.backend is Backend.HF_XET:
                    # hf_xet has retried already, within the limits quantpick gave it
                    raise
                # hf_hub_download gives up on the first 5xx of a GET: try again like the engine
                attempt = ctx.backoff(attempt, p.path, exc)
                continue
            # where local_dir mode puts it; the returned path is not trusted beyond that
            landed = staging / check_hub_path(p.path)
            digest = hash_file(landed, p.size_bytes, git=not p.lfs)
            rest = max(0, p.size_bytes - reported)
            ctx.stats.add(rest)
            ctx.progress.advance(p.path, rest)
            if digest is not None and digest.matches(p.sha256, p.git_oid):
                if not run.stopping:
                    used = Backend.HF_XET if p.backend is Backend.HF_XET else Backend.HUB
                    ctx.install(p, landed, digest, used)
                    run.file_finished()
                return
            if redownloads_left <= 0:
                raise bad_hash(p)
            redownloads_left -= 1
            # huggingface_hub may have copied a damaged cache entry: go to the server this time
            fresh = True
            ctx.progress.note(p.path, "hash or size mismatch: downloading again")
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def hub_worker(ctx: Context, run: Run, files: deque[PlannedFile], lock: threading.Lock) -> None:
    while not run.stopping:
        with lock:
            if not files:
                return
            planned = files.popleft()
        fetch_via_hub(ctx, run, planned)
