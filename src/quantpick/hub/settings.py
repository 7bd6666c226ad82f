"""Which Hub, which token, which cache: settings resolved the way huggingface_hub resolves them.

Read from the environment at call time, not at import (huggingface_hub reads HF_ENDPOINT and HF_HOME
once, at import); the token is redacted from anything quantpick logs.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
# Bounded so a 300-branch repo does not open 300 connections; 8 keeps loopback and the Hub busy.
DEFAULT_MAX_WORKERS = 8
# connect and read timeout of every request (QUANTPICK_TIMEOUT, --timeout): a server that accepts
# and never answers is given up on (then retried) after this long, never waited on forever
DEFAULT_TIMEOUT_S = 30.0


def resolve_token(explicit: str | None) -> str | None:
    """--token, then HF_TOKEN, then huggingface_hub's stored login."""
    if explicit:
        return explicit
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env:
        return env
    from huggingface_hub import get_token

    return get_token()


def default_cache_dir() -> Path:
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(hf_home) / "hub"


def is_offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def redact(text: str, token: str | None) -> str:
    """No token, and no user:password@ of an endpoint URL, in anything quantpick prints."""
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
    return text.replace(token, "***") if token else text


class RedactingFilter(logging.Filter):
    """--verbose logs requests; the token and pre-signed query strings stay out of them."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        text = redact(record.getMessage(), self.token)
        record.msg, record.args = re.sub(r"\?[^\s\"']*", "?…", text), None
        return True


@dataclass
class HubSettings:
    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    offline: bool = False
    max_workers: int = DEFAULT_MAX_WORKERS
    retry_backoff_s: float = 0.5
    verbose: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
