"""The GGUF headers of a repo's variants: read in parallel over Range, cached by commit.

A variant's GPU weight bytes are the sum of its tensors over all its parts (exact, from the
headers); the model's shape comes from the first part of any model variant. A header is cached
under the branch's commit, so a second `list` of the same commit asks the Hub for nothing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from pydantic import ValidationError

from quantpick.errors import QuantpickError
from quantpick.hub.gguf_header import HeaderError, read_header
from quantpick.hub.lookup_cache import cache_leaf
from quantpick.records import GgufHeader, RemoteFile

if TYPE_CHECKING:
    from quantpick.hub.client import Hub

PARALLEL = 8
_NOT_GGUF = "not-gguf"
# a repo with more GGUF files than this is read for its shape only
MAX_FILES = 64


@dataclass
class ReadStats:
    """What the header reads cost: requests and bytes asked of the Hub, files from the cache."""

    requests: int = 0
    bytes_fetched: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int, nbytes: int) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_fetched += nbytes


def _leaf(commit: str, path: str) -> str:
    return cache_leaf("gguf-" + quote(path, safe=""), commit, "json")


def read_headers(
    hub: Hub, repo: str, revision: str, commit: str, files: list[RemoteFile]
) -> tuple[dict[str, GgufHeader], ReadStats]:
    """Headers of the given GGUF files; a file that is no readable GGUF is left out (in stats)."""
    stats = ReadStats()
    out: dict[str, GgufHeader] = {}
    todo: list[RemoteFile] = []
    for f in files[:MAX_FILES]:
        text = hub.cached_text(repo, _leaf(commit, f.path))
        cached = _parsed(text)
        if cached is not None:
            out[f.path] = cached
        if cached is not None or text == _NOT_GGUF:
            stats.cached += 1
        else:
            todo.append(f)

    def one(f: RemoteFile) -> GgufHeader | None:
        def fetch(start: int, end: int) -> bytes:
            data = hub.read_range(repo, revision, f.path, start, end)
            stats.add(1, len(data))
            return data

        try:
            header, _ = read_header(f.path, f.size_bytes, fetch)
        except HeaderError:
            # a file that is no GGUF stays none at this commit: remembered, not asked again
            hub.cache_text(repo, _leaf(commit, f.path), _NOT_GGUF)
            with stats._lock:
                stats.failed.append(f.path)
            return None
        except QuantpickError:
            with stats._lock:
                stats.failed.append(f.path)
            return None
        hub.cache_text(repo, _leaf(commit, f.path), header.model_dump_json())
        return header

    if todo:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(todo))) as pool:
            for f, header in zip(todo, pool.map(one, todo), strict=True):
                if header is not None:
                    out[f.path] = header
    return out, stats


def _parsed(text: str | None) -> GgufHeader | None:
    if not text or text == _NOT_GGUF:
        return None
    try:
        return GgufHeader.model_validate_json(text)
    except ValidationError:
        return None
