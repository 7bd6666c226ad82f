"""A directory belongs to one repo and variant: the one its manifest names.

A fetch of another into it is refused (or, asked to, replaces it: the old variant's files go, the
user's own files stay), and a file quantpick did not write is never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from quantpick.download.localfs import STATE_DIR, hash_file, regular_file_stat
from quantpick.download.manifest import VERIFIED_NAME, Manifest, read_manifest
from quantpick.download.plan import FetchPlan, FileState
from quantpick.errors import DirectoryOwnedError


def claim(plan: FetchPlan, *, replace: bool = False) -> Manifest | None:
    """Check, before any byte moves, that `plan` may write its directory.

    Returns the manifest of the variant that `replace` will displace (for `remove_stale`).
    """
    local_dir = plan.local_dir
    old = read_manifest(local_dir)
    displaced = None
    if old is not None and (old.repo != plan.repo or old.variant.name != plan.variant.name):
        if not replace:
            raise DirectoryOwnedError(
                f"{local_dir} holds {old.repo} {old.variant.name}, "
                f"not {plan.repo} {plan.variant.name}",
                "drop --local-dir (each repo and variant gets its own directory), choose another "
                f"one, or add --replace to replace {old.variant.name} there",
            )
        displaced = old
    ours = _written_by_quantpick(local_dir, old)
    for f in plan.files:
        if f.state in (FileState.COMPLETE, FileState.PARTIAL) or f.path in ours:
            continue
        path = local_dir / f.path
        st = regular_file_stat(path)
        if st is None:
            if os.path.lexists(path):
                raise DirectoryOwnedError(
                    f"{path} is in the way of a file {plan.repo} needs and is not a plain file",
                    "move it away, or choose another --local-dir",
                )
            continue
        same = st.st_size == f.size_bytes and _same_bytes(path, f.size_bytes, f.sha256, f.git_oid)
        if not same:
            raise DirectoryOwnedError(
                f"{path} was not written by quantpick, and {plan.repo} has a different "
                f"{f.path}: it will not be overwritten",
                "move your file away, or choose another --local-dir",
            )
    return displaced


def remove_stale(local_dir: Path, displaced: Manifest, keep: set[str]) -> list[str]:
    """After a --replace: the displaced variant's files that the new one does not use."""
    removed = []
    for f in displaced.files:
        if f.path in keep:
            continue
        path = local_dir / f.path
        st = regular_file_stat(path)
        # a file of that name with another size is no longer the one quantpick wrote
        if st is None or st.st_size != f.size_bytes:
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(f.path)
            _prune_parents(local_dir, path.parent)
    return removed


def _prune_parents(root: Path, folder: Path) -> None:
    root = root.resolve()
    while folder.resolve() != root and root in folder.resolve().parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _written_by_quantpick(local_dir: Path, manifest: Manifest | None) -> set[str]:
    paths = {f.path for f in manifest.files} if manifest is not None else set()
    try:
        raw = json.loads((local_dir / STATE_DIR / VERIFIED_NAME).read_text(encoding="utf-8"))
        paths.update(str(f["path"]) for f in raw["files"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return paths


def _same_bytes(path: Path, size: int, sha256: str | None, git_oid: str | None) -> bool:
    digest = hash_file(path, size, git=sha256 is None)
    return digest is not None and digest.matches(sha256, git_oid)
