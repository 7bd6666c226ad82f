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


def split_repo(spec: str) -> tuple[str, str | None]:
    """OWNER/NAME[:BRANCH] -> (repo, branch)."""
    repo, sep, branch = spec.partition(":")
    if not _REPO_ID.match(repo) or ".." in repo:
        raise UsageError(f"not a repo id: {spec!r}", "write it as OWNER/NAME or OWNER/NAME:BRANCH")
    if sep and not branch:
        raise UsageError(f"empty branch in {spec!r}", "write OWNER/NAME:BRANCH")
    return repo, branch or None


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
                endpoint=(self.endpoint or DEFAULT_ENDPOINT).rstrip("/"),
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
        source: Literal["user", "nvml", "nvidia-smi"] = "user"
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
                ("--cache", cache.lower() != "fp16"),
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
