"""A large file in progress: DIR/.quantpick/partial/KEY.part plus a sidecar KEY.part.json.

The .part has the file's final size from the start; it is cut into fixed-size chunks, and the
sidecar records which chunks hold their final bytes. A chunk is marked only after all its bytes were
written, and the sidecar is replaced atomically, so whatever kills the process, a chunk the sidecar
calls done is on disk (the page cache survives a killed process; a power cut is caught by the final
sha256).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from quantpick.download.localfs import STATE_DIR, atomic_write_text, ensure_dir, regular_file_stat

PARTIAL_DIR = "partial"
SIDECAR_VERSION = 1


def partial_dir(local_dir: Path) -> Path:
    return local_dir / STATE_DIR / PARTIAL_DIR


def partial_key(path: str) -> str:
    # flat, fixed-length names: no nested directories to create, no name-length limit to hit
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass
class PartialState:
    local_dir: Path
    path: str
    size_bytes: int
    sha256: str | None
    git_oid: str | None
    chunk_bytes: int
    # bit i set: chunk i holds its final bytes
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def part_path(self) -> Path:
        return partial_dir(self.local_dir) / f"{partial_key(self.path)}.part"

    @property
    def sidecar_path(self) -> Path:
        return partial_dir(self.local_dir) / f"{partial_key(self.path)}.part.json"

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size_bytes // self.chunk_bytes))

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_bytes
        return start, min(start + self.chunk_bytes, self.size_bytes)

    def is_done(self, index: int) -> bool:
        return bool(self.done >> index & 1)

    def missing_chunks(self) -> list[int]:
        return [i for i in range(self.chunk_count) if not self.is_done(i)]

    @property
    def done_bytes(self) -> int:
        ranges = (self.chunk_range(i) for i in range(self.chunk_count) if self.is_done(i))
        return sum(end - start for start, end in ranges)

    def matches(self, size_bytes: int, sha256: str | None, git_oid: str | None) -> bool:
        return (self.size_bytes, self.sha256, self.git_oid) == (size_bytes, sha256, git_oid)

    def mark_done(self, index: int) -> None:
        with self._lock:
            self.done |= 1 << index
            self._save()

    def _save(self) -> None:
        data = {
            "v": SIDECAR_VERSION,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "git_oid": self.git_oid,
            "chunk_bytes": self.chunk_bytes,
            "done": format(self.done, "x"),
        }
        atomic_write_text(self.sidecar_path, json.dumps(data))

    @classmethod
    def load(cls, local_dir: Path, path: str) -> PartialState | None:
        """The state of an earlier attempt, or None when there is none or it does not add up."""
        probe = cls(local_dir, path, 0, None, None, 1)
        try:
            raw = json.loads(probe.sidecar_path.read_text(encoding="utf-8"))
            if raw.get("v") != SIDECAR_VERSION or raw.get("path") != path:
                return None
            state = cls(
                local_dir=local_dir,
                path=path,
                size_bytes=int(raw["size_bytes"]),
                sha256=raw["sha256"],
                git_oid=raw["git_oid"],
                chunk_bytes=int(raw["chunk_bytes"]),
                done=int(raw["done"], 16),
            )
        # a sidecar nested too deep to read, or JSON that is no object, is no state of ours
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None
        st = regular_file_stat(state.part_path)
        if st is None or st.st_size != state.size_bytes or state.chunk_bytes <= 0:
            return None
        return state

    @classmethod
    def create(
        cls,
        local_dir: Path,
        path: str,
        size_bytes: int,
        sha256: str | None,
        git_oid: str | None,
        chunk_bytes: int,
    ) -> PartialState:
        """A fresh, empty .part of the final size (sparse: no bytes are written up front)."""
        ensure_dir(local_dir, f"{STATE_DIR}/{PARTIAL_DIR}")
        state = cls(local_dir, path, size_bytes, sha256, git_oid, chunk_bytes)
        state.discard()
        fd = os.open(state.part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, size_bytes)
        finally:
            os.close(fd)
        with state._lock:
            state._save()
        return state

    def discard(self) -> None:
        for p in (self.sidecar_path, self.part_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
