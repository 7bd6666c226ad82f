"""Command-line arguments that more than one command takes, parsed into what the core needs.

No typer here (cli/app.py owns it): plain values in, records or QuantpickErrors out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from quantpick.errors import NetworkError, UsageError
from quantpick.records import Budget, CacheMode

if TYPE_CHECKING:
    from quantpick.hub.client import Hub

DEFAULT_CONTEXT = "4k"
# Beyond these a figure is a typo, not a GPU or a model: refuse rather than print 27-digit GiB.
MAX_CONTEXT_TOKENS = 1 << 24
MAX_VRAM = 64 << 40

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
# what a user pastes from a browser: huggingface.co/OWNER/NAME[/tree/REV | /blob/REV/FILE]
_HUB_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")


@dataclass(frozen=True)
class RepoSpec:
    """A repo as typed or pasted, normalised: the repo, a ref (branch or sha), a file."""

    repo: str
    ref: str | None = None
    file: str | None = None

    @property
    def sha(self) -> str | None:
        return self.ref if self.ref and _SHA.match(self.ref) else None

    @property
    def branch(self) -> str | None:
        return None if self.sha else self.ref


def parse_spec(spec: str) -> RepoSpec:
    """OWNER/NAME, OWNER/NAME:BRANCH, OWNER/NAME@REV, hf://OWNER/NAME@REV, or a Hub URL."""
    from urllib.parse import unquote, urlsplit

    text = spec.strip()
    forms = (
        "write it as OWNER/NAME, OWNER/NAME:BRANCH, OWNER/NAME@REV, hf://OWNER/NAME@REV "
        "or https://huggingface.co/OWNER/NAME[/tree/BRANCH]"
    )
    low = text.lower()
    if low.startswith("hf://"):
        text = text[5:].removeprefix("models/")
        if text.startswith(("datasets/", "spaces/")):
            raise UsageError(f"{spec!r} is not a model repo", forms)
    elif low.startswith(("http://", "https://")) or low.startswith(
        tuple(h + "/" for h in _HUB_HOSTS)
    ):
        url = urlsplit(text if "://" in text else "https://" + text)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts[:1] in (["datasets"], ["spaces"]):
            raise UsageError(f"{spec!r} is not a model repo", forms)
        if len(parts) < 2:
            raise UsageError(f"not a repo URL: {spec!r}", forms)
        if len(parts) >= 4 and parts[2] in ("tree", "blob", "resolve"):
            file = "/".join(parts[4:]) if parts[2] != "tree" and len(parts) > 4 else None
            return _checked(RepoSpec(f"{parts[0]}/{parts[1]}", parts[3], file), spec, forms)
        if len(parts) > 2:
            raise UsageError(f"not a repo URL: {spec!r}", forms)
        # hf.co/OWNER/NAME:BRANCH and …/NAME@REV, as typed without the scheme
        text = f"{parts[0]}/{parts[1]}"
    repo, at, rev = text.partition("@")
    if at:
        if not rev:
            raise UsageError(f"empty revision in {spec!r}", "write OWNER/NAME@REV")
        return _checked(RepoSpec(repo, rev), spec, forms)
    repo, sep, branch = text.partition(":")
    if sep and not branch:
        raise UsageError(f"empty branch in {spec!r}", "write OWNER/NAME:BRANCH")
    return _checked(RepoSpec(repo, branch or None), spec, forms)


def _checked(parsed: RepoSpec, spec: str, forms: str) -> RepoSpec:
    if not _REPO_ID.match(parsed.repo) or ".." in parsed.repo:
        raise UsageError(f"not a repo id: {spec!r}", forms)
    return parsed


def split_repo(spec: str) -> tuple[str, str | None]:
    """Any accepted form -> (repo, branch or sha)."""
    parsed = parse_spec(spec)
    return parsed.repo, parsed.ref


def check_endpoint(endpoint: str) -> str:
    """A usage error at once, not a network error after retries."""
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UsageError(
            f"--endpoint / HF_ENDPOINT {endpoint!r} is not a URL",
            "give the Hub's or a mirror's address, e.g. https://huggingface.co",
        )
    return endpoint.rstrip("/")


def local_dir_arg(text: str | None) -> Path | None:
    """--local-dir: an empty value is a mistake (an unset variable), never the current dir."""
    if text is None:
        return None
    if not text.strip():
        raise UsageError(
            "--local-dir is empty", "give a directory, or leave --local-dir out for the default"
        )
    return Path(text)


@dataclass(frozen=True)
class HubArgs:
    endpoint: str | None
    token: str | None
    cache_dir: Path | None
    offline: bool
    verbose: bool = False
    # seconds, as given (--timeout / QUANTPICK_TIMEOUT); None: the default
    timeout: str | None = None

    def timeout_s(self) -> float:
        from quantpick.hub.settings import DEFAULT_TIMEOUT_S

        if self.timeout is None:
            return DEFAULT_TIMEOUT_S
        try:
            value = float(self.timeout) if len(self.timeout) <= 20 else float("nan")
        except ValueError:
            value = float("nan")
        if not 0.1 <= value <= 3600:
            raise UsageError(
                f"--timeout {self.timeout[:40]!r} is not a number of seconds from 0.1 to 3600",
                "e.g. --timeout 30 (or QUANTPICK_TIMEOUT=30)",
            )
        return value

    def connect(self, *, needs_network: bool = False) -> Hub:
        from quantpick.hub.client import Hub
        from quantpick.hub.settings import (
            DEFAULT_ENDPOINT,
            HubSettings,
            RedactingFilter,
            default_cache_dir,
            is_offline_env,
            resolve_token,
        )

        check_endpoint(self.endpoint or DEFAULT_ENDPOINT)
        offline = self.offline or is_offline_env()
        if needs_network and offline:
            raise NetworkError(
                "this command needs the Hub, and offline mode is on (HF_HUB_OFFLINE)",
                "unset HF_HUB_OFFLINE; `quantpick list --offline` answers from the cache",
            )
        token = resolve_token(self.token)
        if token is not None and not (token.isascii() and token.isprintable()):
            # an HTTP header holds ASCII only; the token itself is never printed
            raise UsageError(
                "the token holds a character that is not printable ASCII",
                "copy the token again from https://huggingface.co/settings/tokens",
            )
        if self.verbose:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            handler.addFilter(RedactingFilter(token))
            http_log = logging.getLogger("httpx2")
            http_log.addHandler(handler)
            http_log.setLevel(logging.INFO)
        return Hub(
            HubSettings(
                endpoint=check_endpoint(self.endpoint or DEFAULT_ENDPOINT),
                token=token,
                cache_dir=self.cache_dir or default_cache_dir(),
                offline=offline,
                verbose=self.verbose,
                timeout_s=self.timeout_s(),
            )
        )


@dataclass(frozen=True)
class BudgetArgs:
    vram: str | None
    ctx: str | None
    cache: str
    runtime: str | None
    reserve: str
    flash_attn: str | None = None
    ram: str | None = None

    def budget(self) -> Budget:
        from quantpick import units

        if not self.vram:
            raise UsageError("--vram is required here", f"accepted forms: {units.VRAM_FORMS}")
        parsed = units.parse_vram(self.vram)
        source: Literal["user", "nvml", "nvidia-smi", "rocm-smi", "sysctl"] = "user"
        if parsed == "auto":
            from quantpick.estimate.gpu import detect_vram_with_source

            parsed, source = detect_vram_with_source()
        budget = Budget(
            gpu_vram_bytes=parsed,
            reserve_bytes=units.parse_amount_bytes(self.reserve, what="reserve"),
            context_tokens=units.parse_context(self.ctx or DEFAULT_CONTEXT),
            cache_mode=units.parse_cache_mode(self.cache),
            runtime=units.parse_runtime(self.runtime) if self.runtime else None,
            source=source,
            flash_attn=units.parse_flash_attn(self.flash_attn) if self.flash_attn else None,
            ram_bytes=units.parse_amount_bytes(self.ram, what="--ram") if self.ram else None,
        )
        if budget.flash_attn is False and budget.cache_mode is not CacheMode.FP16:
            raise UsageError(
                f"llama.cpp refuses a quantized V cache (--cache {self.cache}) without flash"
                " attention",
                "use --flash-attn on (llama.cpp's default on CUDA), or --cache fp16",
            )
        if budget.usable_bytes <= 0:
            raise UsageError(
                f"--reserve {self.reserve} leaves no VRAM to use",
                "the reserve is kept free on each GPU: make it smaller than --vram",
            )
        if budget.context_tokens > MAX_CONTEXT_TOKENS or max(budget.gpu_vram_bytes) > MAX_VRAM:
            raise UsageError(
                "--ctx or --vram is beyond any real GPU or model",
                f"contexts up to {MAX_CONTEXT_TOKENS // (1 << 20)}M tokens, VRAM up to 64 TiB",
            )
        return budget

    @classmethod
    def given(
        cls,
        vram: str | None,
        ctx: str | None,
        cache: str,
        runtime: str | None,
        reserve: str,
        *,
        default_reserve: str,
        flash_attn: str | None = None,
        ram: str | None = None,
    ) -> BudgetArgs | None:
        """The budget flags, or None when there is no --vram (then the others must be absent)."""
        if vram:
            return cls(vram, ctx, cache, runtime, reserve, flash_attn, ram)
        stray = [
            flag
            for flag, used in (
                ("--ctx", ctx is not None),
                ("--kv-cache", cache.lower() != "fp16"),
                ("--runtime", runtime is not None),
                ("--reserve", reserve != default_reserve),
                ("--flash-attn", flash_attn is not None),
                ("--ram", ram is not None),
            )
            if used
        ]
        if stray:
            verb = "needs" if len(stray) == 1 else "need"
            raise UsageError(f"{', '.join(stray)} {verb} --vram", "e.g. --vram 24 --ctx 16k")
        return None
