"""Plain HTTP for the ranged engine: resolve a file's URL, then GET byte ranges of it.

The standard library is enough and keeps the engine free of the GIL-holding native code that
hf_transfer is: a socket read releases the GIL, so several connections and a hasher run side by
side.

A Hub `resolve` URL answers a HEAD with the file's size and commit, and for an LFS file a redirect
to a pre-signed URL on another origin. The Authorization header goes to the Hub's origin only: the
pre-signed URL needs none, and a token must never reach a third party.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from quantpick import __version__
from quantpick.errors import (
    AuthError,
    EntryNotFoundError,
    NetworkError,
    QuantpickError,
    RepoNotFoundError,
    RevisionNotFoundError,
)

USER_AGENT = f"quantpick/{__version__}"
MAX_REDIRECTS = 5
READ_BYTES = 1 << 20


class TransientError(Exception):
    """Worth another try: a dropped or stalled connection, a 5xx, a 429, a short body."""


class ExpiredError(TransientError):
    """The pre-signed URL was refused (expired, or signed for another range): resolve again."""


class RangeUnsupportedError(Exception):
    """The server ignored Range: this file cannot be fetched in parallel chunks."""


@dataclass(frozen=True)
class Source:
    """Where a file's bytes are, and what headers that origin may see."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    commit_sha: str | None = None


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Connections:
    """Keep-alive connections, one set per thread, all closable at once from another thread."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

    def get(self, url: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {}
        )
        key = origin(url)
        conn = pool.get(key)
        if conn is None:
            scheme, netloc = key
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout_s)
            with self._lock:
                if self._closed:
                    raise TransientError("connections closed")
                self._all.add(conn)
            pool[key] = conn
        return conn

    def drop(self, url: str) -> None:
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop(origin(url), None)
        if conn is not None:
            with self._lock:
                self._all.discard(conn)
            conn.close()

    def abort_all(self) -> None:
        """Wake every thread blocked on a read: used on cancel, so no read outlives it."""
        with self._lock:
            self._closed = True
            conns = list(self._all)
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = list(self._all), set()
        for conn in conns:
            conn.close()


def _request(
    conns: Connections, method: str, url: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    conn = conns.get(url)
    try:
        conn.request(method, _target(url), headers={"User-Agent": USER_AGENT, **headers})
        return conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conns.drop(url)
        raise TransientError(f"{method} {_origin_text(url)}: {type(exc).__name__}") from exc


def _origin_text(url: str) -> str:
    # never print a pre-signed query string: it is a credential until it expires
    scheme, netloc = origin(url)
    return f"{scheme}://{netloc}"


def hub_error(
    status: int, code: str | None, repo: str, path: str, revision: str, token: bool
) -> QuantpickError | None:
    """The QuantpickError for a Hub answer, mapped as hub/client.py maps huggingface_hub's."""
    if code == "GatedRepo":
        return AuthError(f"{repo} is gated and this token has no access to it")
    if code == "RepoNotFound":
        # without a token the Hub answers alike for a missing and a private repo
        if not token:
            return RepoNotFoundError(
                f"repository {repo} not found (or private, and no token was given)"
            )
        return RepoNotFoundError(f"repository {repo} not found, or this token has no access to it")
    if status == 401 and token:
        return AuthError(f"the Hub refused the token (HTTP 401) for {repo}")
    if code == "RevisionNotFound":
        return RevisionNotFoundError(f"revision {revision!r} not found in {repo}")
    if code == "EntryNotFound" or status == 404:
        return EntryNotFoundError(f"{path} not found in {repo}")
    if status in (401, 403):
        return AuthError(f"access to {repo} refused (HTTP {status})")
    if 400 <= status < 500 and status != 429:
        return NetworkError(f"the Hub answered HTTP {status} for {path} in {repo}")
    return None


def resolve(
    conns: Connections,
    url: str,
    auth: dict[str, str],
    *,
    repo: str,
    path: str,
    revision: str,
) -> Source:
    """HEAD a resolve URL, following same-origin redirects, stopping at a cross-origin one."""
    home = origin(url)
    for _ in range(MAX_REDIRECTS):
        headers = auth if origin(url) == home else {}
        resp = _request(conns, "HEAD", url, headers)
        resp.read()
        status = resp.status
        if resp.will_close:
            conns.drop(url)
        error = (
            hub_error(status, resp.getheader("X-Error-Code"), repo, path, revision, bool(auth))
            if status >= 400
            else None
        )
        if error is not None:
            raise error
        if status >= 500 or status == 429:
            raise TransientError(f"HEAD {path}: HTTP {status}")
        size_text = resp.getheader("X-Linked-Size") or resp.getheader("Content-Length")
        size = int(size_text) if size_text and size_text.isdigit() else None
        xet = resp.getheader("X-Xet-Hash") is not None
        commit = resp.getheader("X-Repo-Commit")
        location = resp.getheader("Location")
        if 300 <= status < 400 and location:
            target = urljoin(url, location)
            if origin(target) == home and not xet:
                url = target
                continue
            # a Xet file's Location is the Hub's bridge: the whole file, with Range
            keep = auth if origin(target) == home else {}
            return Source(target, keep, size, commit)
        if status == 200:
            return Source(url, auth, size, commit)
        raise NetworkError(f"the Hub answered HTTP {status} for {path} in {repo}")
    raise NetworkError(f"too many redirects for {path} in {repo}")


def fetch_range(
    conns: Connections,
    source: Source,
    start: int,
    end: int,
    sink: Callable[[memoryview], None],
    cancelled: Callable[[], bool],
    buf: bytearray,
) -> None:
    """GET bytes [start, end) of `source` and hand them to `sink` in order, piece by piece.

    Raises TransientError (try again from where the sink got to), ExpiredError, or
    RangeUnsupportedError. Returns only when every byte was delivered.
    """
    headers = {**source.headers, "Range": f"bytes={start}-{end - 1}"}
    resp = _request(conns, "GET", source.url, headers)
    try:
        _check_range_answer(resp, start, end, source)
        view = memoryview(buf)
        remaining = end - start
        while remaining > 0:
            if cancelled():
                raise TransientError("cancelled")
            n = resp.readinto(view[: min(len(view), remaining)])
            if not n:
                raise TransientError(f"connection closed with {remaining} bytes to go")
            sink(view[:n])
            remaining -= n
    except (OSError, http.client.HTTPException) as exc:
        conns.drop(source.url)
        raise TransientError(f"GET {_origin_text(source.url)}: {type(exc).__name__}") from exc
    except BaseException:
        conns.drop(source.url)
        raise
    if resp.will_close or resp.length:
        conns.drop(source.url)


def _check_range_answer(
    resp: http.client.HTTPResponse, start: int, end: int, source: Source
) -> None:
    status = resp.status
    if status == 206:
        got = resp.getheader("Content-Range", "")
        if not got.startswith(f"bytes {start}-"):
            raise TransientError(f"asked for bytes {start}-{end - 1}, got {got!r}")
        return
    if status == 200:
        raise RangeUnsupportedError(f"{_origin_text(source.url)} ignored a Range request")
    if status in (401, 403, 404, 410) and "authorization" not in {
        k.lower() for k in source.headers
    }:
        raise ExpiredError(f"the signed URL was refused (HTTP {status})")
    if status >= 500 or status == 429:
        raise TransientError(f"GET: HTTP {status}")
    raise NetworkError(f"the server answered HTTP {status} to a ranged GET")
