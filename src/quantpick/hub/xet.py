"""hf_xet, as huggingface_hub drives it: its limits, and which of its exceptions are its own.

hf_xet reads its configuration from the environment once, when its first session starts. Its
defaults let one stalled read last 300 s and retry for up to 360 s (shared/HUB_API.md); quantpick
bounds both by its own stall watchdog and retry budget. Durations need a unit: a bare `30` is
rejected (with a warning in the Xet log) and the default silently kept.
"""

from __future__ import annotations

import math
import os
import re
import traceback
from dataclasses import dataclass

_LOCKED = False


@dataclass(frozen=True)
class XetLimits:
    # a read that delivers nothing for this long fails (and is retried)
    read_timeout_s: float
    # tries per request, the first included
    attempts: int
    backoff_s: float

    @property
    def retry_budget_s(self) -> int:
        """How long hf_xet may keep retrying one request: every try stalling, plus the waits."""
        waits = sum(self.backoff_s * (1 << i) for i in range(max(0, self.attempts - 1)))
        return math.ceil(self.read_timeout_s * self.attempts + waits)

    def environment(self) -> dict[str, str]:
        return {
            "HF_XET_CLIENT_READ_TIMEOUT": f"{math.ceil(self.read_timeout_s)}s",
            "HF_XET_CLIENT_CONNECT_TIMEOUT": f"{math.ceil(self.read_timeout_s)}s",
            "HF_XET_CLIENT_RETRY_MAX_ATTEMPTS": str(max(1, self.attempts)),
            "HF_XET_CLIENT_RETRY_BASE_DELAY": f"{max(1, round(self.backoff_s * 1000))}ms",
            "HF_XET_CLIENT_RETRY_MAX_DURATION": f"{self.retry_budget_s}s",
        }


def configure_xet(limits: XetLimits) -> None:
    """Set hf_xet's limits unless the user set them; only the first call of a process counts."""
    global _LOCKED
    if _LOCKED:
        return
    _LOCKED = True
    for key, value in limits.environment().items():
        os.environ.setdefault(key, value)


def xet_errors() -> tuple[type[BaseException], ...]:
    try:
        from hf_xet import XetAuthenticationError, XetObjectNotFoundError
    except ImportError:  # huggingface_hub without hf_xet: nothing of it can be raised
        return ()
    return XetAuthenticationError, XetObjectNotFoundError


def raised_by_hf_xet(exc: BaseException) -> bool:
    """A RuntimeError out of hf_xet's native call (xet_get), not a bug of ours or of Python's."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].name == "xet_get"


# hf_xet names the CAS's answer in its message: "HTTP status client error (403 Forbidden)"
_STORAGE_REFUSAL = re.compile(r"\b(?:401 Unauthorized|403 Forbidden)\b")


def storage_refused(exc: BaseException) -> bool:
    """The CAS refused hf_xet's token or a xorb's signed URL (expired, revoked, rotated): no fault
    of the user's token, and a fresh Xet token may pass; hf_xet itself does not retry it."""
    return bool(_STORAGE_REFUSAL.search(str(exc)))


def forget_xet_tokens() -> None:
    """Drop huggingface_hub's cached Xet connection info (a token per repo revision, kept until it
    expires), so that the next download asks the Hub for a fresh one."""
    from huggingface_hub.utils import _xet

    cache = getattr(_xet, "XET_CONNECTION_INFO_CACHE", None)
    lock = getattr(_xet, "_XET_CONNECTION_INFO_LOCK", None)
    if isinstance(cache, dict) and lock is not None:
        with lock:
            cache.clear()
