"""Repositories on disk: ROOT/owner/name/BRANCH_DIR/files, with optional .repo.json and .refs.json.

Nothing is cached but file hashes (see blobs.py), so a test may change the tree between two
requests and the next answer (and the branch's commit sha) reflects it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantpick.testing.blobs import blob_ids

SETTINGS_FILE = ".repo.json"
REFS_FILE = ".refs.json"
DEFAULT_BRANCH = "main"
DEFAULT_LFS_THRESHOLD_BYTES = 1 << 20
DEFAULT_LFS_EXTENSIONS = frozenset(
    {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ggml", ".h5", ".onnx", ".msgpack"}
)
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")

# Every tree or resolve request needs its branch's snapshot; rebuilding it per request made a
# 300-branch, 20,000-file repo take minutes. Process-wide, since Repo objects are per request.
_Stamp = tuple[tuple[str, int, int], ...]
_CACHE_LOCK = threading.Lock()
_SNAPSHOTS: dict[Path, tuple[_Stamp, Snapshot]] = {}
_COMMIT_HINTS: dict[str, Path] = {}


def _stamp(directory: Path) -> _Stamp:
    out = []
    for cur, subdirs, names in os.walk(directory):
        subdirs.sort()
        for name in sorted(names):
            st = os.stat(os.path.join(cur, name))
            out.append((os.path.join(cur, name), st.st_size, st.st_mtime_ns))
    return tuple(out)


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Gated = Literal[False, "auto", "manual"]
RefKind = Literal["branch", "tag"]


class StoreError(ValueError):
    """A malformed .repo.json / .refs.json: a bug in the test that wrote it."""


@dataclass(frozen=True)
class RepoSettings:
    private: bool = False
    gated: Gated = False
    # tokens that may read this repo when it is private or gated
    tokens: frozenset[str] = frozenset()
    lfs_threshold_bytes: int = DEFAULT_LFS_THRESHOLD_BYTES
    lfs_extensions: frozenset[str] = DEFAULT_LFS_EXTENSIONS
    # a hostile server: list and serve a branch file under another name ("../x", "/etc/x", "a\\b")
    served_as: tuple[tuple[str, str], ...] = ()
    # a partial mirror: "no_tree" (no tree listing: bare 404), "no_blob_ids" (model info without
    # blobId), "opaque_etag" (ETags that are no hash, as nginx makes them from size and mtime)
    mirror: frozenset[str] = frozenset()
    # LFS files are Xet-backed, as on the real Hub; false is a plain-LFS mirror
    xet: bool = True

    @classmethod
    def load(cls, repo_dir: Path) -> RepoSettings:
        raw = _read_json(repo_dir / SETTINGS_FILE)
        if raw is None:
            return cls()
        known = {
            "private",
            "gated",
            "tokens",
            "lfs_threshold_bytes",
            "lfs_extensions",
            "served_as",
            "mirror",
            "xet",
        }
        unknown = set(raw) - known
        if unknown:
            raise StoreError(f"{repo_dir / SETTINGS_FILE}: unknown keys {sorted(unknown)}")
        gated = raw.get("gated", False)
        if gated is True:
            gated = "auto"
        if gated not in (False, "auto", "manual"):
            raise StoreError(
                f"{repo_dir / SETTINGS_FILE}: gated must be false, true, auto or manual"
            )
        return cls(
            private=bool(raw.get("private", False)),
            gated=gated,
            tokens=frozenset(raw.get("tokens", ())),
            lfs_threshold_bytes=int(raw.get("lfs_threshold_bytes", DEFAULT_LFS_THRESHOLD_BYTES)),
            lfs_extensions=frozenset(raw.get("lfs_extensions", DEFAULT_LFS_EXTENSIONS)),
            served_as=tuple(sorted(dict(raw.get("served_as", {})).items())),
            mirror=_mirror(repo_dir, raw.get("mirror", ())),
            xet=bool(raw.get("xet", True)),
        )

    def is_lfs(self, path: str, size: int) -> bool:
        return size >= self.lfs_threshold_bytes or Path(path).suffix.lower() in self.lfs_extensions


MIRROR_MODES = frozenset({"no_tree", "no_blob_ids", "opaque_etag"})


def _mirror(repo_dir: Path, raw: object) -> frozenset[str]:
    modes = frozenset(raw) if isinstance(raw, list | tuple) else frozenset({raw})
    if not modes <= MIRROR_MODES:
        raise StoreError(f"{repo_dir / SETTINGS_FILE}: mirror modes are {sorted(MIRROR_MODES)}")
    return frozenset(str(m) for m in modes)


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    oid: str
    abs_path: Path
    mtime: float
    lfs_sha256: str | None = None
    pointer_size: int | None = None

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.oid


@dataclass(frozen=True)
class Ref:
    name: str
    kind: RefKind
    directory: Path


@dataclass(frozen=True)
class Snapshot:
    repo_id: str
    commit: str
    files: tuple[Entry, ...]
    directories: tuple[str, ...]
    last_modified: float
    _by_path: dict[str, Entry] = field(repr=False, compare=False)

    def file(self, path: str) -> Entry | None:
        return self._by_path.get(path)

    def is_dir(self, path: str) -> bool:
        return path == "" or path in self.directories

    def dir_oid(self, path: str) -> str:
        prefix = f"{path}/"
        h = hashlib.sha1(b"tree\0")
        for e in self.files:
            if e.path.startswith(prefix):
                h.update(f"{e.path}\0{e.oid}\n".encode())
        return h.hexdigest()


class Repo:
    def __init__(self, repo_id: str, directory: Path) -> None:
        self.repo_id = repo_id
        self.directory = directory
        self.settings = RepoSettings.load(directory)

    def refs(self) -> list[Ref]:
        mapping = _read_json(self.directory / REFS_FILE) or {}
        if set(mapping) - {"branches", "tags"}:
            raise StoreError(
                f"{self.directory / REFS_FILE}: only 'branches' and 'tags' are allowed"
            )
        named_branches: dict[str, str] = mapping.get("branches", {})
        tags: dict[str, str] = mapping.get("tags", {})
        renamed = set(named_branches.values())
        refs = [Ref(name, "branch", self.directory / d) for name, d in named_branches.items()]
        refs += [
            Ref(d.name, "branch", d)
            for d in sorted(self.directory.iterdir())
            if d.is_dir() and not d.name.startswith(".") and d.name not in renamed
        ]
        refs += [Ref(name, "tag", self.directory / d) for name, d in tags.items()]
        return [r for r in refs if r.directory.is_dir()]

    def snapshot(self, revision: str) -> Snapshot | None:
        """Resolve a branch, a tag, or the commit sha of one of them; None when none matches."""
        refs = self.refs()
        for kind in ("branch", "tag"):
            for ref in refs:
                if ref.kind == kind and ref.name == revision:
                    return self._snapshot(ref.directory)
        if _COMMIT_RE.fullmatch(revision):
            # the directory that last had this commit is almost always the one: try it first
            hinted = _COMMIT_HINTS.get(revision)
            if hinted is not None and hinted.is_dir():
                snap = self._snapshot(hinted)
                if snap.commit == revision:
                    return snap
            for directory in dict.fromkeys(r.directory for r in refs):
                snap = self._snapshot(directory)
                if snap.commit == revision:
                    return snap
        return None

    def _snapshot(self, directory: Path) -> Snapshot:
        """Cached by the directory's (path, size, mtime) stamp: a stat walk, not a re-hash."""
        stamp = _stamp(directory)
        with _CACHE_LOCK:
            hit = _SNAPSHOTS.get(directory)
        if hit is not None and hit[0] == stamp:
            return self._disguised(hit[1])
        snap = self._build_snapshot(directory)
        with _CACHE_LOCK:
            _SNAPSHOTS[directory] = (stamp, snap)
            _COMMIT_HINTS[snap.commit] = directory
        return self._disguised(snap)

    def _disguised(self, snap: Snapshot) -> Snapshot:
        """Add the `served_as` names a hostile-server test asked for (no disk can hold them)."""
        extra = [
            dataclasses.replace(snap._by_path[real], path=shown)
            for shown, real in self.settings.served_as
            if real in snap._by_path
        ]
        if not extra:
            return snap
        files = tuple(sorted((*snap.files, *extra), key=lambda e: e.path))
        return dataclasses.replace(snap, files=files, _by_path={e.path: e for e in files})

    def _build_snapshot(self, directory: Path) -> Snapshot:
        files: list[Entry] = []
        dirs: list[str] = []
        for cur, subdirs, names in os.walk(directory):
            subdirs.sort()
            rel_dir = Path(cur).relative_to(directory).as_posix()
            prefix = "" if rel_dir == "." else f"{rel_dir}/"
            dirs.extend(prefix + d for d in subdirs)
            for name in sorted(names):
                files.append(self._entry(Path(cur) / name, prefix + name))
        files.sort(key=lambda e: e.path)
        commit = hashlib.sha1(b"quantpick-loopback-commit\n")
        for e in files:
            commit.update(f"{e.path}\0{e.size}\0{e.oid}\n".encode())
        return Snapshot(
            repo_id=self.repo_id,
            commit=commit.hexdigest(),
            files=tuple(files),
            directories=tuple(sorted(dirs)),
            last_modified=max((e.mtime for e in files), default=directory.stat().st_mtime),
            _by_path={e.path: e for e in files},
        )

    def _entry(self, abs_path: Path, rel: str) -> Entry:
        st = abs_path.stat()
        ids = blob_ids(abs_path, st, lfs=self.settings.is_lfs(rel, st.st_size))
        return Entry(
            path=rel,
            size=st.st_size,
            oid=ids.git_oid,
            abs_path=abs_path,
            mtime=st.st_mtime,
            lfs_sha256=ids.sha256,
            pointer_size=ids.pointer_size,
        )


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def repo(self, repo_id: str) -> Repo | None:
        owner, _, name = repo_id.partition("/")
        if not (_NAME_RE.fullmatch(owner) and _NAME_RE.fullmatch(name)):
            return None
        directory = self.root / owner / name
        return Repo(repo_id, directory) if directory.is_dir() else None

    def repos(self) -> Iterator[Repo]:
        for owner in sorted(self.root.iterdir()):
            if owner.is_dir() and _NAME_RE.fullmatch(owner.name):
                for name in sorted(owner.iterdir()):
                    if name.is_dir() and _NAME_RE.fullmatch(name.name):
                        yield Repo(f"{owner.name}/{name.name}", name)

    def repo_tokens(self) -> frozenset[str]:
        """Every token some repo grants access to: the Hub knows all of them as valid users."""
        tokens: set[str] = set()
        for path in self.root.glob(f"*/*/{SETTINGS_FILE}"):
            raw = _read_json(path) or {}
            tokens.update(raw.get("tokens", ()))
        return frozenset(tokens)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreError(f"{path}: {e}") from e
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object")
    return data
