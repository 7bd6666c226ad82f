"""The CDN origin: pre-signed URLs to LFS files, like the Hub's redirects to its storage.

The signature, not a token, authorizes a download, so huggingface_hub and hf_transfer drop the
Authorization header when they follow the redirect. Like S3, a request that brings one anyway is
refused (400): a leaked token fails loudly instead of passing unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from quantpick.testing.replies import HubError, Reply
from quantpick.testing.store import Store

PREFIX = "lfs"


class Signer:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _sign(self, target: str, expires: int) -> str:
        msg = f"{target}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def url(self, base: str, target: str, *, ttl_s: float, prefix: str = PREFIX) -> str:
        """`target` is REPO_ID/COMMIT/PATH, signed unquoted so that re-encoding is harmless."""
        expires = int(time.time() + ttl_s)
        sig = self._sign(target, expires)
        return f"{base}/{prefix}/{quote(target)}?expires={expires}&signature={sig}"

    def check(self, target: str, expires: str, signature: str) -> None:
        if not expires or not signature:
            raise HubError(403, None, "AccessDenied: missing signature")
        try:
            deadline = int(expires)
        except ValueError:
            raise HubError(403, None, "AccessDenied: bad expiry") from None
        if not hmac.compare_digest(self._sign(target, deadline), signature):
            raise HubError(403, None, "SignatureDoesNotMatch")
        if time.time() > deadline:
            raise HubError(403, None, "AccessDenied: Request has expired")


def serve(
    store: Store,
    signer: Signer,
    segments: list[str],
    query: dict[str, list[str]],
    *,
    authorized: bool,
) -> Reply:
    if authorized:
        raise HubError(400, None, "InvalidArgument: Only one auth mechanism allowed")
    match segments:
        case [prefix, owner, name, commit, *path] if prefix == PREFIX and path:
            pass
        case _:
            raise HubError(404, None, "NoSuchKey")
    file_path = "/".join(path)
    signer.check(
        f"{owner}/{name}/{commit}/{file_path}",
        query.get("expires", [""])[-1],
        query.get("signature", [""])[-1],
    )
    repo = store.repo(f"{owner}/{name}")
    snap = repo.snapshot(commit) if repo is not None else None
    entry = snap.file(file_path) if snap is not None else None
    if entry is None or entry.lfs_sha256 is None:
        raise HubError(404, None, "NoSuchKey")
    filename = quote(file_path.rsplit("/", 1)[-1])
    headers = {
        "ETag": f'"{entry.lfs_sha256}"',
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{filename}; filename=\"{filename}\";",
    }
    return Reply(200, headers, file=entry)
