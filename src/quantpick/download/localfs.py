"""The target directory, guarded: Hub paths checked before use, no symlink followed, atomic writes.

A repo is untrusted input. Its file names decide where bytes land, so every name is checked before
it becomes a path, and every directory on the way is created (or found) without following a symlink
that someone may have planted there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from quantpick.errors import IntegrityError, UsageError

STATE_DIR = ".quantpick"
MANIFEST_NAME = "quantpick.json"
# quantpick's own state in a target dir: a repo file with one of these names would overwrite it
RESERVED_TOP = frozenset({STATE_DIR, MANIFEST_NAME})
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024
# large enough that hashing runs at memory speed, small enough to stay out of the way
HASH_BUFFER_BYTES = 8 << 20


def check_hub_path(path: str) -> PurePosixPath:
    """A repo file name as a relative path that cannot leave the target dir, or IntegrityError."""
    bad = _why_unsafe(path)
    if bad:
        raise IntegrityError(
            f"refusing the repo file name {path!r}: {bad}",
            "the repository holds a file name that could write outside the target dir",
        )
    return PurePosixPath(path)


def _why_unsafe(path: str) -> str | None:
    if not path:
        return "empty"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 (a lone surrogate)"
    if "\0" in path or "\\" in path:
        return "NUL or backslash"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute"
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        return "too long"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "empty, '.' or '..' component"
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES for p in parts):
        return "component too long"
    if any(ord(c) < 0x20 for c in path):
        return "control character"
    if parts[0] in RESERVED_TOP:
        return "name reserved for quantpick's own state"
    return None


def ensure_dir(root: Path, rel: PurePosixPath | str = "") -> Path:
    """ROOT/REL as a real directory, created as needed; a symlink on the way is refused."""
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in PurePosixPath(rel).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
            st = os.lstat(current)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise UsageError(
                f"{current} is a symlink or not a directory; quantpick will not write through it",
                "remove it or choose another --local-dir",
            )
    return current


def check_parents(root: Path, rel: PurePosixPath) -> None:
    """Refuse (UsageError) a symlink or non-directory among ROOT/REL's existing parents."""
    current = root
    for part in rel.parent.parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise UsageError(
                f"{current} is a symlink or not a directory; quantpick will not write through it",
                "remove it or choose another --local-dir",
            )


def regular_file_stat(path: Path) -> os.stat_result | None:
    """lstat of a regular file; None for anything else (missing, symlink, directory)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def open_nofollow(path: Path) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))


class Digest:
    """sha256 of the content, and the git blob sha1 where the Hub states one for a non-LFS file."""

    def __init__(self, size: int, *, git: bool) -> None:
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if git else None

    def update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        if self.git is not None:
            self.git.update(data)

    def matches(self, sha256: str | None, git_oid: str | None) -> bool:
        if sha256 is not None:
            return self.sha256.hexdigest() == sha256
        if self.git is not None and git_oid is not None:
            return self.git.hexdigest() == git_oid
        return True


def hash_range(
    f: BinaryIO,
    digest: Digest,
    start: int,
    end: int,
    buf: bytearray | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Feed bytes [start, end) of an unbuffered file to `digest`; returns how many were read."""
    buf = buf if buf is not None else bytearray(min(HASH_BUFFER_BYTES, max(end - start, 1)))
    view = memoryview(buf)
    f.seek(start)
    offset = start
    while offset < end:
        n = f.readinto(view[: min(len(view), end - offset)])  # type: ignore[attr-defined]
        if not n:
            break
        digest.update(view[:n])
        offset += n
        if on_bytes is not None:
            on_bytes(n)
    return offset - start


def open_regular(path: Path) -> BinaryIO | None:
    """An unbuffered reader of a regular file, never through a symlink; None otherwise."""
    try:
        fd = open_nofollow(path)
    except OSError:
        return None
    f = os.fdopen(fd, "rb", buffering=0)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        return None
    return f


def hash_file(
    path: Path, size: int, *, git: bool, on_bytes: Callable[[int], None] | None = None
) -> Digest | None:
    """Digest of a regular file, or None when it is missing, a symlink, or not `size` bytes long."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        if os.fstat(f.fileno()).st_size != size:
            return None
        digest = Digest(size, git=git)
        if hash_range(f, digest, 0, size, on_bytes=on_bytes) != size:
            return None
        return digest


def planted_link(root: Path) -> Path | None:
    """The first symlink under ROOT (ROOT itself included), never following one; None if none."""
    try:
        if stat.S_ISLNK(os.lstat(root).st_mode):
            return root
    except FileNotFoundError:
        return None
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            if os.path.islink(os.path.join(top, name)):
                return Path(top, name)
    return None


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    # O_EXCL|O_NOFOLLOW: a link planted at the temporary name is never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(tmp, flags, 0o644), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
