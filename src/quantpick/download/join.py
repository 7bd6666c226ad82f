"""TheBloke's `NAME.gguf-split-a`, `-split-b`, ...: files over the Hub's 50 GB limit, cut in parts.

The card parser marks such a variant (`extra["join_required"]`, `files` = the parts). `fetch`
downloads the parts like any file, each checked against its own sha256, then joins them in place:

1. part a is moved to DIR/.quantpick/join/KEY.joining (a rename: no copy);
2. it is read once to start the joined file's sha256 (a copy of that hash checks part a again);
3. each later part is appended to it, hashed as it is copied, and checked against its own sha256;
4. the result goes to NAME.gguf with os.replace; only then are the later parts deleted.

Parts are deleted, not kept: the joined file is what a runtime loads, the manifest records it (size
and the sha256 computed while joining) and `verify` re-checks it; keeping 70 GB of parts beside a
70 GB file would double the disk a variant needs. Appending to part a instead of copying every part
to a new file keeps the peak at the joined size plus the later parts, not twice the joined size.

A join that is killed leaves KEY.joining; the next fetch cuts it back to part a's size and moves it
back to part a's name before planning, so part a is checked (hashed) again, never downloaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path

from quantpick.download.context import Cancelled
from quantpick.download.localfs import (
    HASH_BUFFER_BYTES,
    STATE_DIR,
    Digest,
    check_hub_path,
    ensure_dir,
    hash_range,
    open_regular,
)
from quantpick.download.manifest import ManifestFile
from quantpick.download.partial import partial_key
from quantpick.download.plan import FetchPlan, FileRole, PlannedFile
from quantpick.errors import IntegrityError

JOIN_DIR = "join"
_PART_SUFFIX = re.compile(r"-split-[a-z]$", re.IGNORECASE)


def join_spec(plan: FetchPlan) -> tuple[str, tuple[PlannedFile, ...]] | None:
    """(joined path, its parts in order) when the plan's variant must be joined; else None."""
    if not plan.variant.extra.get("join_required"):
        return None
    parts = sorted(
        (f for f in plan.files if f.role is FileRole.MODEL and _PART_SUFFIX.search(f.path)),
        key=lambda f: f.path,
    )
    if len(parts) < 2:
        return None
    target = _PART_SUFFIX.sub("", parts[0].path)
    if any(_PART_SUFFIX.sub("", p.path) != target for p in parts):
        return None
    return target, tuple(parts)


def staging_path(local_dir: Path, target: str) -> Path:
    return local_dir / STATE_DIR / JOIN_DIR / f"{partial_key(target)}.joining"


def recover(local_dir: Path, target: str, first: PlannedFile) -> None:
    """Undo a join that was killed: part a's bytes back under part a's name (checked later)."""
    staging = staging_path(local_dir, target)
    f = open_regular(staging)
    if f is None:
        return
    with f:
        size = os.fstat(f.fileno()).st_size
    rel = check_hub_path(first.path)
    if size < first.size_bytes:
        staging.unlink()
        return
    os.truncate(staging, first.size_bytes)
    os.replace(staging, ensure_dir(local_dir, rel.parent) / rel.name)


def join_parts(
    local_dir: Path, target: str, parts: tuple[ManifestFile, ...], cancel: threading.Event
) -> ManifestFile:
    """Concatenate the checked `parts` into `target`; returns the joined file's record."""
    rel = check_hub_path(target)
    final = ensure_dir(local_dir, rel.parent) / rel.name
    if final.is_dir() and not final.is_symlink():
        raise IntegrityError(f"{final} is a directory; quantpick will not replace it")
    ensure_dir(local_dir, f"{STATE_DIR}/{JOIN_DIR}")
    staging = staging_path(local_dir, target)
    first = parts[0]
    os.replace(local_dir / check_hub_path(first.path), staging)
    total = sum(p.size_bytes for p in parts)
    digest = Digest(total, git=False)
    buf = bytearray(HASH_BUFFER_BYTES)
    view = memoryview(buf)
    with open(staging, "r+b", buffering=0) as out:
        if hash_range(out, digest, 0, first.size_bytes, buf) != first.size_bytes:
            raise IntegrityError(f"{first.path} shrank before it could be joined")
        _check_part(first, digest.sha256.copy().hexdigest())
        offset = first.size_bytes
        for part in parts[1:]:
            src = open_regular(local_dir / check_hub_path(part.path))
            if src is None:
                raise IntegrityError(f"{part.path} disappeared before it could be joined")
            own = hashlib.sha256()
            with src:
                while True:
                    if cancel.is_set():
                        raise Cancelled
                    n = src.readinto(view)  # type: ignore[attr-defined]
                    if not n:
                        break
                    chunk = view[:n]
                    own.update(chunk)
                    digest.update(chunk)
                    written = 0
                    while written < n:
                        written += os.pwrite(out.fileno(), chunk[written:], offset + written)
                    offset += n
            _check_part(part, own.hexdigest())
    os.replace(staging, final)
    for part in parts[1:]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local_dir / check_hub_path(part.path))
    return ManifestFile(
        path=target,
        size_bytes=total,
        sha256=digest.sha256.hexdigest(),
        lfs=True,
        mtime_ns=os.lstat(final).st_mtime_ns,
        backend="join",
    )


def _check_part(part: ManifestFile, got: str) -> None:
    if got != part.sha256:
        raise IntegrityError(
            f"{part.path} changed on disk after it was checked; it was not joined",
            "run the same command again: the part is downloaded again",
        )
