"""How the Hub's answers become quantpick's errors: huggingface_hub's and hf_xet's exceptions
mapped to QuantpickErrors with their exit codes, a hint naming the branches that exist."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx2 as httpx  # huggingface_hub 2.x transport; its errors are not wrapped
from huggingface_hub.errors import (
    EntryNotFoundError as HfEntryNotFoundError,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from quantpick.errors import (
    AuthError,
    DiskSpaceError,
    EntryNotFoundError,
    NetworkError,
    QuantpickError,
    RepoNotFoundError,
    UsageError,
)
from quantpick.errors import (
    RevisionNotFoundError as QpRevisionNotFoundError,
)
from quantpick.hub.settings import redact
from quantpick.hub.xet import xet_errors

# A retry helps only against transient failures (5xx, dropped connections); three is what `hf` does.
RETRIES = 3


@contextmanager
def mapped_errors(
    endpoint: str,
    token: str | None,
    repo: str,
    revision: str | None,
    path: str | None,
    hint_branches: Callable[[], str],
) -> Iterator[None]:
    """huggingface_hub's and hf_xet's exceptions as quantpick's, each with its exit code."""
    try:
        yield
    except QuantpickError:
        raise
    except HFValidationError:
        # a card's front matter can name anything as its base model
        raise RepoNotFoundError(f"{repo!r} is not a repository id") from None
    except GatedRepoError:
        raise AuthError(f"{repo} is gated and this token has no access to it") from None
    except xet_errors() as exc:
        raise xet_error(exc, repo, path) from None
    except RepositoryNotFoundError:
        if token is None:
            # without a token the Hub answers alike for a missing and a private repo
            raise RepoNotFoundError(
                f"repository {repo} not found (or private, and no token was given)"
            ) from None
        raise RepoNotFoundError(
            f"repository {repo} not found, or this token has no access to it"
        ) from None
    except RevisionNotFoundError:
        raise QpRevisionNotFoundError(
            f"revision {revision!r} not found in {repo}", hint_branches()
        ) from None
    except HfEntryNotFoundError as exc:
        if isinstance(exc, LocalEntryNotFoundError):
            raise NetworkError(f"could not reach {endpoint} for {repo}") from None
        raise EntryNotFoundError(
            f"{path or 'file'} not found in {repo}",
            f"run `quantpick list {repo}` to see the files that exist",
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 403, 404, 410) and from_cdn(exc, endpoint):
            # a pre-signed URL that expired or was refused: no token is involved, and a
            # fresh resolve gives a new one (callers retry NetworkError)
            raise NetworkError(
                f"the download server refused a signed URL (HTTP {status}) for {path or repo}"
            ) from None
        if status == 401 and token:
            raise AuthError(f"the Hub refused the token (HTTP 401) for {repo}") from None
        if status in (401, 403):
            raise AuthError(f"access to {repo} refused (HTTP {status})") from None
        raise NetworkError(
            f"the Hub answered HTTP {status} for {repo} after {RETRIES} tries"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskSpaceError(f"the disk filled up while writing {path or repo}") from None
        if not isinstance(exc, ConnectionError | TimeoutError) and exc.filename:
            # huggingface_hub's own cache, not the network
            raise UsageError(
                f"cannot use {exc.filename}: {exc.strerror or type(exc).__name__}",
                "check --cache-dir / HF_HOME: quantpick must be able to write there",
            ) from None
        raise NetworkError(
            redact(f"could not reach {endpoint}: {type(exc).__name__}", token)
        ) from None
    except httpx.HTTPError as exc:
        raise NetworkError(
            redact(f"could not reach {endpoint}: {type(exc).__name__}", token)
        ) from None


def from_cdn(exc: HfHubHTTPError, endpoint: str) -> bool:
    """The refusal came from where the Hub redirected to, not from the Hub itself."""
    if exc.response is None:
        return False
    try:
        host = exc.response.url.host
    except (AttributeError, RuntimeError):
        return False
    return bool(host) and host != httpx.URL(endpoint).host


def branches_hint(repo: str, heads: dict[str, str]) -> str:
    """Which branches exist, so a typo is one look away from its fix."""
    names = sorted(heads)
    if not names:
        return f"run `quantpick list {repo}` to see the branches that exist"
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return f"{repo} has the branches {shown}"


def xet_error(exc: BaseException, repo: str, path: str | None) -> QuantpickError:
    """hf_xet's failures (RuntimeError and two OSErrors, text only) as quantpick's exit codes."""
    what = path or repo
    if type(exc).__name__ == "XetAuthenticationError":
        return AuthError(f"the Xet storage refused access to {what} in {repo}")
    if "No space left on device" in str(exc) or "os error 28" in str(exc):
        return DiskSpaceError(f"the disk filled up while writing {what}")
    # hf_xet names the URL that failed: a pre-signed one is a credential until it expires
    text = re.sub(r"(https?://[^\s?]+)\?\S*", r"\1", str(exc))
    reason = text.splitlines()[0][:200] if text else type(exc).__name__
    return NetworkError(
        f"the Xet storage failed for {what} in {repo}: {reason}",
        "run the same command again later; --backend ranged fetches through the Hub's bridge",
    )


def endpoint_missing(exc: HfHubHTTPError) -> bool:
    """A bare 404/405/501 (no Hub error code): the server lacks the endpoint, not the repo."""
    status = exc.response.status_code if exc.response is not None else 0
    return type(exc) is HfHubHTTPError and status in (404, 405, 501)
