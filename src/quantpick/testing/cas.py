"""The CAS origin: Xet reconstructions and xorb byte ranges, as hf_xet 1.8 reads them.

GET /v1/reconstructions/{file_hash}   JSON terms and fetch_info (xet-core cas_types); an optional
                                      `Range: bytes=a-b` of the file; a CAS access token from
                                      `xet-read-token` in Authorization, else 401
GET /v2/...                           404, so hf_xet falls back to v1
GET /xorbs/{file_hash}/{n}            xorb n of a file in the chunk format, with Range; a pre-signed
                                      URL (expires, signature) like the real CAS's storage links

The Hub origin tells the CAS which files exist (`XetIndex.remember`) when it names their hashes;
a hash it has not seen yet is looked for in every repo of the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from quantpick.testing.cdn import Signer
from quantpick.testing.replies import HubError, Reply, Stream, json_reply
from quantpick.testing.store import Store
from quantpick.testing.xet import XetFile, XetTokens

XORB_PREFIX = "xorbs"


class XetIndex:
    """file hash -> the file (and its repo), for the files the Hub has named."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, XetFile] = {}

    def remember(self, f: XetFile) -> str:
        with self._lock:
            self._files[f.hash] = f
        return f.hash

    def find(self, file_id: str, store: Store) -> XetFile | None:
        with self._lock:
            hit = self._files.get(file_id)
        if hit is not None and hit.entry.abs_path.exists():
            return hit
        for repo in store.repos():
            if not repo.settings.xet:
                continue
            for ref in repo.refs():
                snap = repo.snapshot(ref.name)
                for e in snap.files if snap is not None else ():
                    if e.lfs_sha256 is not None and XetFile(repo.repo_id, e).hash == file_id:
                        return XetFile(repo.repo_id, e)
        return None


class CasRoutes:
    def __init__(
        self, index: XetIndex, tokens: XetTokens, signer: Signer, store: Callable[[], Store]
    ) -> None:
        self.index = index
        self.tokens = tokens
        self.signer = signer
        self._store = store
        self.endpoint = ""
        self.xorb_ttl_s = 3600.0

    def dispatch(
        self, segments: list[str], query: dict[str, list[str]], token: str | None, span: str | None
    ) -> Reply:
        match segments:
            case ["v1", "reconstructions", file_id]:
                return self.reconstruction(file_id, token, span)
            case [prefix, file_id, number] if prefix == XORB_PREFIX and number.isdigit():
                return self.xorb(file_id, int(number), query)
        # /v2/reconstructions included: hf_xet then asks /v1
        raise HubError(404, None, "Not found")

    def _file(self, file_id: str) -> XetFile:
        found = self.index.find(file_id, self._store())
        if found is None:
            raise HubError(404, None, f"file {file_id} not found")
        return found

    def reconstruction(self, file_id: str, token: str | None, span: str | None) -> Reply:
        f = self._file(file_id)
        why = self.tokens.check(token, f.repo_id)
        if why is not None:
            raise HubError(401, None, why)
        size = f.entry.size
        first, last = 0, size - 1
        if span and span.startswith("bytes="):
            a, _, b = span[6:].partition("-")
            if not a.isdigit() or (b and not b.isdigit()):
                raise HubError(400, None, f"bad range {span!r}")
            first, last = int(a), min(int(b) if b else size - 1, size - 1)
            if first >= size or last < first:
                raise HubError(416, None, "Range Not Satisfiable")
        return json_reply(f.reconstruction(first, last, self._xorb_url))

    def _xorb_url(self, f: XetFile, xorb: int) -> str:
        target = f"{f.hash}/{xorb}"
        return self.signer.url(self.endpoint, target, ttl_s=self.xorb_ttl_s, prefix=XORB_PREFIX)

    def xorb(self, file_id: str, xorb: int, query: dict[str, list[str]]) -> Reply:
        self.signer.check(
            f"{file_id}/{xorb}", query.get("expires", [""])[-1], query.get("signature", [""])[-1]
        )
        f = self._file(file_id)
        if xorb >= f.xorb_count:
            raise HubError(404, None, "NoSuchKey")
        headers = {"Content-Type": "application/octet-stream"}
        return Reply(200, headers, stream=Stream(f.xorb_size(xorb), partial(f.xorb_pieces, xorb)))
