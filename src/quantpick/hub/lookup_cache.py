"""quantpick's own on-disk cache of Hub look-ups (card, config.json, branch and file listings).

It serves `--offline` / HF_HUB_OFFLINE and says how old its answer is. Writes are best effort: a
read-only cache directory costs the offline mode, never a command.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

from quantpick.errors import NetworkError, UsageError
from quantpick.records import RepoListing

LISTING_CACHE_VERSION = 1


def cache_leaf(name: str, revision: str | None, ext: str) -> str:
    """One cache file per revision: a card read at a branch must not stand in for main's."""
    return f"{name}@{quote(revision or 'default', safe='')}.{ext}"


class LookupCache:
    def __init__(self, lookup_dir: Path) -> None:
        self.root = lookup_dir

    def path(self, repo: str, leaf: str) -> Path:
        if repo.count("/") != 1 or ".." in repo:
            raise UsageError(f"not a repo id: {repo!r}", "write it as OWNER/NAME")
        return self.root / repo / leaf

    def write_text(self, repo: str, leaf: str, text: str) -> None:
        _atomic_write(self.path(repo, leaf), text)

    def read_text(self, repo: str, leaf: str) -> str | None:
        try:
            return self.path(repo, leaf).read_text(encoding="utf-8")
        except OSError:
            return None

    def write_listing(self, listing: RepoListing) -> None:
        record = {
            "v": LISTING_CACHE_VERSION,
            "at": time.time(),
            "listing": listing.model_dump(mode="json"),
        }
        self.write_text(listing.repo, "listing.json", json.dumps(record))

    def read_listing(self, repo: str) -> RepoListing:
        try:
            data = json.loads(self.path(repo, "listing.json").read_text(encoding="utf-8"))
            if data.get("v") != LISTING_CACHE_VERSION:
                raise ValueError("old cache")
            listing = RepoListing.model_validate(data["listing"])
        # a damaged cache file (no object, nested past the parser's depth) is no cached answer
        except (OSError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            raise NetworkError(
                f"offline, and no earlier look-up of {repo} is cached",
                "run the same command once online (without --offline / HF_HUB_OFFLINE)",
            ) from exc
        return listing.model_copy(update={"cached_at_unix": float(data["at"])})


def _atomic_write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
