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


def hf_home() -> Path:
    return Path(
        os.environ.get("HF_HOME")
        or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
        )
    )


def default_cache_dir() -> Path:
    """huggingface_hub's own order: HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, then HF_HOME/hub."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(explicit) if explicit else hf_home() / "hub"


def default_lookup_dir() -> Path:
    """quantpick's own look-ups live beside the hub cache, never inside it: `hf cache ls` would
    call a folder of ours there an invalid repo."""
    return Path(os.environ.get("QUANTPICK_CACHE") or hf_home() / "quantpick")


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
    lookup_dir: Path = field(default_factory=default_lookup_dir)
    offline: bool = False
    max_workers: int = DEFAULT_MAX_WORKERS
    retry_backoff_s: float = 0.5
    verbose: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
