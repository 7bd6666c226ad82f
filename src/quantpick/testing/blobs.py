"""Content ids of served files: git blob sha1 for small files, sha256 + pointer for LFS files."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
# Below this, hashing is cheaper than the risk of a stale cache entry (Linux mtimes tick coarsely,
# so a small file rewritten twice within a few ms can keep its (size, mtime) key).
_CACHE_MIN_BYTES = 64 << 10


@dataclass(frozen=True)
class BlobIds:
    # For an LFS file the Hub's `oid`/`blobId` is the git id of the pointer file, not the content's
    git_oid: str
    sha256: str | None = None
    pointer_size: int | None = None


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return _LFS_POINTER.format(sha256=sha256, size=size).encode()


_Key = tuple[int, int, int, int, bool]
_cache: dict[_Key, BlobIds] = {}
_pending: dict[_Key, threading.Lock] = {}
_guard = threading.Lock()


def blob_ids(path: Path, st: os.stat_result, *, lfs: bool) -> BlobIds:
    """Hash once per file version; concurrent callers (hf_transfer chunks) wait for that hash."""
    if st.st_size < _CACHE_MIN_BYTES:
        return _compute(path, st.st_size, lfs=lfs)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, lfs)
    with _guard:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        lock = _pending.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            hit = _cache.get(key)
        if hit is None:
            hit = _compute(path, st.st_size, lfs=lfs)
            with _guard:
                _cache[key] = hit
                _pending.pop(key, None)
    return hit


def _compute(path: Path, size: int, *, lfs: bool) -> BlobIds:
    if not lfs:
        h = hashlib.sha1(b"blob %d\0" % size)
        with path.open("rb") as f:
            hashlib.file_digest(f, lambda: h)
        return BlobIds(git_oid=h.hexdigest())
    with path.open("rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    pointer = lfs_pointer(sha256, size)
    return BlobIds(git_oid=git_blob_oid(pointer), sha256=sha256, pointer_size=len(pointer))
