"""DIR/quantpick.json: what a fetch put in a directory, and `verify` that re-checks it.

The manifest is written once, after every file is in place and checked. While a fetch runs, files
that are finished are appended to DIR/.quantpick/verified.json instead (JSON lines: a header
with the commit, then one record per file), so a fetch killed halfway does not re-hash them when
it is run again, and recording a file costs one line, not a rewrite of every record before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from quantpick.download.localfs import (
    MANIFEST_NAME,
    STATE_DIR,
    atomic_write_text,
    check_hub_path,
    hash_file,
    regular_file_stat,
)
from quantpick.records import Estimate, Record, Variant

MANIFEST_SCHEMA = "quantpick/manifest@1"
VERIFIED_NAME = "verified.json"
# paths a `verify` found damaged: their recorded size and mtime no longer vouch for them
FAILED_NAME = "failed-verify.json"


class ManifestFile(Record):
    path: str
    size_bytes: int
    sha256: str
    # the Hub's git blob id (non-LFS files) or LFS pointer id; what the Hub called this file
    git_oid: str | None = None
    lfs: bool = False
    # when the file was last checked: an unchanged (size, mtime) spares a re-hash on the next fetch
    mtime_ns: int = 0
    backend: str = ""
    # the Hub gave no hash: sha256 is of the bytes as received, which nothing checked
    unverified: bool = False


class Manifest(Record):
    schema_: Literal["quantpick/manifest@1"] = Field(default="quantpick/manifest@1", alias="schema")
    repo: str
    variant: Variant
    # the revision asked for (a branch, a tag or a sha) and the commit it resolved to
    revision: str
    commit_sha: str
    files: tuple[ManifestFile, ...]
    estimate: Estimate | None = None
    reasons: tuple[str, ...] = ()
    created_unix: float = Field(default_factory=time.time)

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    def dump_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


class VerifyReport(Record):
    local_dir: Path
    manifest: Manifest | None
    ok: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    wrong_size: tuple[str, ...] = ()
    wrong_hash: tuple[str, ...] = ()
    # files whose hash was not recomputed (full=False) because size and mtime were unchanged
    unhashed: tuple[str, ...] = ()
    # why no manifest could be read, when `manifest` is None
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.manifest is not None
            and not self.missing
            and not self.wrong_size
            and not self.wrong_hash
        )

    @property
    def failed(self) -> tuple[str, ...]:
        return self.missing + self.wrong_size + self.wrong_hash


def manifest_path(local_dir: Path) -> Path:
    return local_dir / MANIFEST_NAME


def read_manifest(local_dir: Path) -> Manifest | None:
    """The manifest, or None when there is none or it is unreadable (a fetch then rebuilds it)."""
    path = manifest_path(local_dir)
    if regular_file_stat(path) is None:
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def write_manifest(local_dir: Path, manifest: Manifest) -> None:
    atomic_write_text(manifest_path(local_dir), manifest.dump_json())


def verify(local_dir: Path, *, full: bool = True) -> VerifyReport:
    """Re-check every file the manifest lists: present, right size, right sha256.

    `full=False` trusts a file whose size and mtime are unchanged since it was checked.
    """
    local_dir = Path(local_dir)
    manifest = read_manifest(local_dir)
    if manifest is None:
        why = "no manifest" if regular_file_stat(manifest_path(local_dir)) is None else "unreadable"
        return VerifyReport(
            local_dir=local_dir, manifest=None, problem=f"{manifest_path(local_dir)}: {why}"
        )
    buckets: dict[str, list[str]] = {
        k: [] for k in ("ok", "missing", "wrong_size", "wrong_hash", "unhashed")
    }
    for entry in manifest.files:
        buckets[_check(local_dir, entry, full=full)].append(entry.path)
    failed = buckets["missing"] + buckets["wrong_size"] + buckets["wrong_hash"]
    if failed:
        # bit rot keeps size and mtime: without this the next fetch would trust the file again
        record_failed(local_dir, failed)
    return VerifyReport(
        local_dir=local_dir,
        manifest=manifest,
        **{k: tuple(v) for k, v in buckets.items()},
    )


def _check(local_dir: Path, entry: ManifestFile, *, full: bool) -> str:
    path = local_dir / check_hub_path(entry.path)
    st = regular_file_stat(path)
    if st is None:
        return "missing"
    if st.st_size != entry.size_bytes:
        return "wrong_size"
    if not full and st.st_mtime_ns == entry.mtime_ns:
        return "unhashed"
    digest = hash_file(path, entry.size_bytes, git=False)
    if digest is None:
        return "missing"
    return "ok" if digest.sha256.hexdigest() == entry.sha256 else "wrong_hash"


# -- files finished by a fetch still in progress --------------------------------------------------


def _verified_path(local_dir: Path) -> Path:
    return local_dir / STATE_DIR / VERIFIED_NAME


def read_verified(local_dir: Path, commit_sha: str) -> dict[str, ManifestFile]:
    """Files a previous (perhaps killed) fetch of this commit finished; empty when unknown.

    A line cut short by a kill (the last one) is skipped: that file is hashed again.
    """
    out: dict[str, ManifestFile] = {}
    try:
        with open(_verified_path(local_dir), encoding="utf-8") as f:
            header = json.loads(f.readline())
            if not isinstance(header, dict) or header.get("commit_sha") != commit_sha:
                return {}
            for line in f:
                try:
                    record = ManifestFile.model_validate_json(line)
                except (ValidationError, ValueError):
                    continue
                out[record.path] = record
    except (OSError, ValueError, RecursionError):
        return {}
    return out


class VerifiedLog:
    """verified.json of one fetch: written once at the start, then one appended line per file."""

    def __init__(self, local_dir: Path, commit_sha: str, kept: Iterable[ManifestFile]) -> None:
        self.path = _verified_path(local_dir)
        # what an earlier run of this commit recorded is carried over once, then only appended
        lines = [json.dumps({"commit_sha": commit_sha})]
        lines += [record.model_dump_json() for record in kept]
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def append(self, record: ManifestFile) -> None:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags)
        try:
            # one write of a whole line: a kill leaves at most the last line torn
            os.write(fd, (record.model_dump_json() + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def known_good(local_dir: Path, commit_sha: str) -> dict[str, ManifestFile]:
    """Every file record a manifest or an unfinished fetch vouches for, by path; never one that
    a `verify` found damaged since."""
    known = read_verified(local_dir, commit_sha)
    manifest = read_manifest(local_dir)
    if manifest is not None:
        for f in manifest.files:
            known.setdefault(f.path, f)
    for path in read_failed(local_dir):
        known.pop(path, None)
    return known


def _failed_path(local_dir: Path) -> Path:
    return local_dir / STATE_DIR / FAILED_NAME


def record_failed(local_dir: Path, paths: Iterable[str]) -> None:
    """Remember files a verify found damaged until a fetch has hashed them again."""
    state = local_dir / STATE_DIR
    if state.is_symlink():
        return
    with contextlib.suppress(OSError):
        state.mkdir(exist_ok=True)
        atomic_write_text(
            _failed_path(local_dir), json.dumps(sorted(read_failed(local_dir) | set(paths)))
        )


def read_failed(local_dir: Path) -> set[str]:
    try:
        raw = json.loads(_failed_path(local_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    return {p for p in raw if isinstance(p, str)} if isinstance(raw, list) else set()


def clear_failed(local_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_failed_path(local_dir))


def still_good(local_dir: Path, record: ManifestFile) -> bool:
    """Fast check: the file is where the record says, with its size and mtime unchanged."""
    st = regular_file_stat(local_dir / record.path)
    return st is not None and st.st_size == record.size_bytes and st.st_mtime_ns == record.mtime_ns


def remove_verified(local_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_verified_path(local_dir))
