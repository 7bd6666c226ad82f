"""All Hub access. The only module that imports huggingface_hub.

Every call passes `endpoint`, `token` and `cache_dir` explicitly: huggingface_hub reads HF_ENDPOINT
and HF_HOME once, at import, so environment changes after import would otherwise be ignored.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx2 as httpx  # huggingface_hub 2.x transport; its errors are not wrapped
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError as HfEntryNotFoundError,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import logging as hf_logging
from huggingface_hub.utils.tqdm import disable_progress_bars

from quantpick.card.links import repo_format
from quantpick.card.names import describe
from quantpick.errors import (
    NetworkError,
    QuantpickError,
)
from quantpick.errors import (
    RevisionNotFoundError as QpRevisionNotFoundError,
)
from quantpick.hub.failures import (
    RETRIES,
    branches_hint,
    endpoint_missing,
    mapped_errors,
    xet_error,
)
from quantpick.hub.lookup_cache import LookupCache, cache_leaf
from quantpick.hub.quant_config import read_quant_config
from quantpick.hub.settings import HubSettings
from quantpick.hub.transport import byte_counter, cached_blob_intact, forget_cached, use_timeouts
from quantpick.hub.xet import (
    XetLimits,
    configure_xet,
    forget_xet_tokens,
    raised_by_hf_xet,
    storage_refused,
)
from quantpick.records import BranchListing, RemoteFile, RepoListing

T = TypeVar("T")


class Hub:
    """One Hub endpoint, one token, one cache directory."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self._cache = LookupCache(settings.lookup_dir)
        # what this Hub could not do and how quantpick made do (a partial mirror), for the user
        self.warnings: list[str] = []
        self._warn_lock = threading.Lock()
        if not settings.verbose:
            # its retry notices ("Retrying in 8s") and disk-space warnings would break our
            # one-line stderr contract; quantpick reports those conditions itself
            hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
            warnings.filterwarnings("ignore", module=r"huggingface_hub(\.|$)")
        # one progress display, quantpick's: huggingface_hub's tqdm bars (cold look-ups, small
        # files) would mix a second and third style into it, and ignore --quiet
        disable_progress_bars()
        use_timeouts(settings.timeout_s)
        self._api = HfApi(
            endpoint=settings.endpoint, token=self._token_arg, library_name="quantpick"
        )

    @property
    def _token_arg(self) -> str | bool:
        # False stops huggingface_hub from reading a stored token we did not choose.
        return self.settings.token or False

    # -- error mapping --------------------------------------------------------------------------

    def _mapped(
        self, repo: str, revision: str | None = None, path: str | None = None
    ) -> AbstractContextManager[None]:
        s = self.settings
        return mapped_errors(
            s.endpoint, s.token, repo, revision, path, lambda: self._branches_hint(repo)
        )

    def _branches_hint(self, repo: str) -> str:
        try:
            return branches_hint(repo, self.branches(repo))
        except QuantpickError:
            return branches_hint(repo, {})

    def _retrying(self, fn: Callable[[], T]) -> T:
        for attempt in range(RETRIES):
            try:
                return fn()
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if not (status >= 500 or status == 429) or attempt == RETRIES - 1:
                    raise
            except (httpx.TransportError, LocalEntryNotFoundError):
                if attempt == RETRIES - 1:
                    raise
            time.sleep(self.settings.retry_backoff_s * (2**attempt))
        raise AssertionError("unreachable")

    def call(self, repo: str, revision: str | None, fn: Callable[[], T]) -> T:
        """A huggingface_hub call made elsewhere in hub/, with this client's retries and codes."""
        with self._mapped(repo, revision):
            return self._retrying(fn)

    # -- look-ups --------------------------------------------------------------------------------

    def _small_file(self, repo: str, filename: str, revision: str | None) -> Path | None:
        """A small file through huggingface_hub's cache; None when the revision has no such file.

        hf_hub_download retries transient failures itself (5 tries with backoff).
        """
        with self._mapped(repo, revision, filename):
            for force in (False, True):
                try:
                    path = Path(
                        hf_hub_download(
                            repo,
                            filename,
                            revision=revision,
                            endpoint=self.settings.endpoint,
                            token=self._token_arg,
                            cache_dir=self.settings.cache_dir,
                            force_download=force,
                        )
                    )
                except HfEntryNotFoundError as exc:
                    if isinstance(exc, LocalEntryNotFoundError):
                        raise
                    return None
                if cached_blob_intact(path):
                    return path
                # one bad answer must not poison every later run: drop the entry, fetch it again
                forget_cached(path)
            raise NetworkError(
                f"{filename} of {repo} arrived damaged twice",
                "the server or a proxy is corrupting transfers; try again later",
            )

    def card_text(self, repo: str, revision: str | None = None) -> str | None:
        """README.md at a revision, or None when the repo has none."""
        if self.settings.offline:
            return self._cache.read_text(repo, cache_leaf("README", revision, "md"))
        path = self._small_file(repo, "README.md", revision)
        if path is None:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        self._cache.write_text(repo, cache_leaf("README", revision, "md"), text)
        return text

    def branches(self, repo: str) -> dict[str, str]:
        """Branch name -> commit sha."""
        with self._mapped(repo):
            try:
                refs = self._retrying(lambda: self._api.list_repo_refs(repo, token=self._token_arg))
            except HfHubHTTPError as exc:
                if not endpoint_missing(exc):
                    raise
                # a mirror without the refs endpoint: the default branch is all we can know
                self._warn(f"{self.settings.endpoint} does not list branches: only main is shown")
                return {"main": self.commit_sha(repo, "main")}
        return {b.name: b.target_commit for b in refs.branches}

    def files(self, repo: str, revision: str) -> tuple[RemoteFile, ...]:
        with self._mapped(repo, revision):
            try:
                entries = self._retrying(
                    lambda: list(
                        self._api.list_repo_tree(
                            repo, revision=revision, recursive=True, token=self._token_arg
                        )
                    )
                )
            except HfHubHTTPError as exc:
                if not endpoint_missing(exc):
                    raise
                return self._files_from_info(repo, revision)
        return tuple(
            RemoteFile(
                path=e.path,
                size_bytes=e.size,
                sha256=e.lfs.sha256 if e.lfs is not None else None,
                git_oid=e.blob_id,
                xet=bool(e.xet_hash),
            )
            for e in entries
            if isinstance(e, RepoFile)
        )

    def _files_from_info(self, repo: str, revision: str) -> tuple[RemoteFile, ...]:
        """Mirrors without tree listings: the revision's model info, which may lack sizes."""
        info = self._retrying(
            lambda: self._api.model_info(
                repo, revision=revision, files_metadata=True, token=self._token_arg
            )
        )
        siblings = info.siblings or []
        if any(f.size is None for f in siblings):
            self._warn(f"{self.settings.endpoint} gives no file sizes for {repo}: sizes shown as 0")
        else:
            self._warn(f"{self.settings.endpoint} has no tree listing: files read from model info")
        return tuple(
            RemoteFile(
                path=f.rfilename,
                size_bytes=f.size or 0,
                sha256=f.lfs.sha256 if f.lfs is not None else None,
                git_oid=f.blob_id,
            )
            for f in siblings
        )

    def _warn(self, message: str) -> None:
        with self._warn_lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def commit_sha(self, repo: str, revision: str) -> str:
        with self._mapped(repo, revision):
            info = self._retrying(
                lambda: self._api.model_info(repo, revision=revision, token=self._token_arg)
            )
        if not info.sha:
            raise NetworkError(f"the Hub did not say which commit {revision!r} of {repo} is")
        return info.sha

    def listing(self, repo: str, only: list[str] | None = None) -> RepoListing:
        """Branches with their files, fetched concurrently; `only` limits which branches."""
        if self.settings.offline:
            return self._cache.read_listing(repo)
        heads = self.branches(repo)
        names = [n for n in heads if only is None or n in only]
        missing = [n for n in only or [] if n not in heads]
        if missing:
            raise QpRevisionNotFoundError(
                f"branch {missing[0]!r} not found in {repo}", branches_hint(repo, heads)
            )
        workers = max(1, min(self.settings.max_workers, len(names)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            trees = list(pool.map(lambda n: self.files(repo, heads[n]), names))
        listing = RepoListing(
            repo=repo,
            branches=tuple(
                BranchListing(name=n, commit_sha=heads[n], files=t)
                for n, t in zip(names, trees, strict=True)
            ),
        )
        if only is None:
            self._cache.write_listing(listing)
        return listing

    def config(self, repo: str, revision: str | None = None) -> dict[str, Any] | None:
        """config.json from a revision; None when absent or not a JSON object."""
        leaf = cache_leaf("config", revision, "json")
        if self.settings.offline:
            text = self._cache.read_text(repo, leaf)
        else:
            path = self._small_file(repo, "config.json", revision)
            text = path.read_text(encoding="utf-8", errors="replace") if path else None
            if text is not None:
                self._cache.write_text(repo, leaf, text)
        try:
            data = json.loads(text) if text is not None else None
        except (ValueError, RecursionError):
            # a config nested past the parser's depth is as unreadable as one that is not JSON
            return None
        return data if isinstance(data, dict) else None

    def file_hashes(self, repo: str, revision: str, path: str) -> tuple[str | None, str | None]:
        """(sha256, git blob id) from a fresh HEAD of the file: X-Linked-Etag or ETag.

        For a mirror that lists no hashes; an ETag that is neither (nginx's size-mtime) gives
        (None, None), and the file can only be taken unverified.
        """
        with self._mapped(repo, revision, path):
            meta = self._retrying(
                lambda: get_hf_file_metadata(
                    self.resolve_url(repo, revision, path),
                    token=self._token_arg,
                    endpoint=self.settings.endpoint,
                    library_name="quantpick",
                )
            )
        etag = (meta.etag or "").strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            return etag, None
        if re.fullmatch(r"[0-9a-f]{40}", etag):
            return None, etag
        return None, None

    def resolve_url(self, repo: str, revision: str, path: str) -> str:
        return (
            f"{self.settings.endpoint.rstrip('/')}/{repo}/resolve/"
            f"{quote(revision, safe='')}/{quote(path)}"
        )

    def read_range(self, repo: str, revision: str, path: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of a file. The resolve URL redirects large files to a CDN
        or the Xet bridge, both of which serve Range; httpx drops the token on a cross-host hop."""
        headers = {**self.auth_headers(), "range": f"bytes={start}-{end}"}

        def get() -> bytes:
            r = httpx.get(
                self.resolve_url(repo, revision, path),
                headers=headers,
                follow_redirects=True,
                timeout=30.0,
            )
            if r.status_code not in (200, 206):
                raise NetworkError(f"HTTP {r.status_code} reading {path} of {repo}")
            body = r.content
            # a server that ignores Range sends the whole file: keep only what was asked
            return body[: end - start + 1] if r.status_code == 206 else body[start : end + 1]

        with self._mapped(repo, revision, path):
            return self._retrying(get)

    def cached_text(self, repo: str, leaf: str) -> str | None:
        return self._cache.read_text(repo, leaf)

    def cache_text(self, repo: str, leaf: str, text: str) -> None:
        self._cache.write_text(repo, leaf, text)

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}

    def download_file(
        self,
        repo: str,
        revision: str,
        path: str,
        local_dir: Path,
        *,
        on_bytes: Callable[[int], None] | None = None,
        xet_limits: XetLimits | None = None,
        fresh: bool = False,
    ) -> Path:
        """One file through huggingface_hub: plain HTTP, or hf_xet where the Hub offers Xet.

        `on_bytes` hears of bytes as they arrive (hf_xet reports nothing otherwise); `xet_limits`
        bound hf_xet's stalls and retries, from the first hf_xet download of this process on.
        `fresh` skips huggingface_hub's cache, which it would otherwise copy from: after a hash
        mismatch the cached copy is the suspect.
        """
        if xet_limits is not None:
            configure_xet(xet_limits)
        with self._mapped(repo, revision, path):
            for refusals_left in (1, 0):
                try:
                    out = hf_hub_download(
                        repo,
                        path,
                        revision=revision,
                        endpoint=self.settings.endpoint,
                        token=self._token_arg,
                        local_dir=local_dir,
                        cache_dir=self.settings.cache_dir,
                        tqdm_class=byte_counter(on_bytes) if on_bytes is not None else None,
                        force_download=fresh,
                    )
                    break
                except RuntimeError as exc:
                    if not raised_by_hf_xet(exc):
                        raise
                    if not (refusals_left and storage_refused(exc)):
                        raise xet_error(exc, repo, path) from None
                # the CAS refused: like an expired signed URL on the plain path, ask again
                # (a fresh resolve and a fresh Xet token), once
                forget_xet_tokens()
        return Path(out)

    def search_models(
        self, base_model: str, search: str | None = None, limit: int = 50
    ) -> list[str]:
        """Quantized repos of a base model: the Hub's `quantized` relation, then repos filed as
        finetunes (branch-only exl2 repos often are) and a name search, each of those kept only
        when its name states a quant or its config.json has a quantization_config."""
        found: list[str] = []
        with self._mapped(base_model):
            # quantizers often drop the version suffix: Mixtral-8x7B-Instruct-v0.1 -> ...-Instruct
            stem = re.sub(r"[-_.]v\d+(\.\d+)*$", "", base_model.split("/")[-1], flags=re.I)
            for checked, kwargs in (
                (False, {"filter": f"base_model:quantized:{base_model}"}),
                (True, {"filter": f"base_model:finetune:{base_model}"}),
                (True, {"search": search or stem}),
            ):
                models = self._retrying(
                    lambda kw=kwargs: list(  # type: ignore[misc]
                        self._api.list_models(limit=limit, token=self._token_arg, **kw)
                    )
                )
                for m in models:
                    if m.id in found or m.id == base_model or len(found) >= limit:
                        continue
                    if checked and not self._is_quant_repo(m.id):
                        continue
                    found.append(m.id)
        return found[:limit]

    def _is_quant_repo(self, repo: str) -> bool:
        name = repo.split("/")[-1]
        if repo_format(repo) is not None or describe(name).bits is not None:
            return True
        try:
            config = self.config(repo)
        except QuantpickError:
            return False
        return config is not None and read_quant_config(config) is not None
