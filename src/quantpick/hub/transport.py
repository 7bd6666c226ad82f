"""How quantpick drives huggingface_hub's HTTP and cache: every request bounded by a timeout,
bytes counted as they arrive, a damaged cached blob found and forgotten."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx  # huggingface_hub 2.x transport; its errors are not wrapped
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import hf_request_event_hook
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm


class _TimeoutTransport(httpx.HTTPTransport):
    """Every request gets connect/read/write/pool timeouts: huggingface_hub passes timeout=None
    on many API calls, which would wait on a silent server forever."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # a caller's own shorter bound (huggingface_hub's HEAD timeout, a test's) still holds
        asked = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            key: min(self.timeout_s, asked[key]) if asked.get(key) else self.timeout_s
            for key in ("connect", "read", "write", "pool")
        }
        return super().handle_request(request)


_timeout_lock = threading.Lock()
_timeout_set: float | None = None


def use_timeouts(timeout_s: float) -> None:
    """huggingface_hub shares one client per process: (re)made once with these timeouts."""
    global _timeout_set
    with _timeout_lock:
        if _timeout_set == timeout_s:
            return
        _timeout_set = timeout_s
        set_client_factory(
            lambda: httpx.Client(
                event_hooks={"request": [hf_request_event_hook]},
                follow_redirects=True,
                transport=_TimeoutTransport(timeout_s),
                timeout=timeout_s,
            )
        )


def byte_counter(on_bytes: Callable[[int], None]) -> type[hf_tqdm]:
    """A silent progress bar that hands each byte count on: hf_xet and plain HTTP both use it."""

    class _Counter(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

        def update(self, n: float | None = 1) -> bool | None:
            if n:
                on_bytes(int(n))
            return None

        def update_transfer(self, n: float | None = 1) -> None:
            """hf_xet's wire bytes: one bar of file bytes is what is reported."""

        def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            """Nothing is shown."""

    return _Counter


def cached_blob_intact(path: Path) -> bool:
    """huggingface_hub names a cached git-stored file's blob by its ETag, the git blob sha1: check
    it. An LFS or Xet blob's name need not be its sha256 (Xet hashes differ), so those are left."""
    import hashlib

    try:
        blob = path.resolve(strict=True)
        if not re.fullmatch(r"[0-9a-f]{40}", blob.name):
            return True
        data = blob.read_bytes()
    except OSError:
        return False
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob.name


def forget_cached(path: Path) -> None:
    import contextlib
    import os

    with contextlib.suppress(OSError):
        blob = path.resolve()
        os.unlink(blob)
    with contextlib.suppress(OSError):
        os.unlink(path)
