"""Parse and format the sizes, context lengths and modes users type. Pure: no I/O.

VRAM is always binary: a "24 GB" GPU has 24 GiB, and the quantizers' VRAM columns use "GB" the same
way, so a bare number, ``GB`` and ``GiB`` all mean 2**30 bytes here (``MB``/``MiB`` mean 2**20).
File sizes on cards are SI and are parsed by the card parser, not here.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from quantpick.errors import UsageError
from quantpick.records import GIB, CacheMode, Runtime

MIB: Final = 1 << 20
# "k" in a context length is 1024 tokens: "16k" is the 16384-token window every runtime and card
# means
CONTEXT_K_TOKENS: Final = 1024
CONTEXT_M_TOKENS: Final = 1024 * 1024

VRAM_FORMS: Final = "24, 24GB, 24GiB, 24576MiB, 24,24 (one figure per GPU) or auto"
CONTEXT_FORMS: Final = "16384, 16k, 16K, 32k, 1M"
AMOUNT_FORMS: Final = "0, 0.5, 0.5GiB, 512MiB"

_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gib|gb|g|mib|mb|m)?\s*$", re.IGNORECASE)
_CONTEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([km])?\s*$", re.IGNORECASE)
_UNIT_BYTES: Final = {"": GIB, "g": GIB, "gb": GIB, "gib": GIB, "m": MIB, "mb": MIB, "mib": MIB}

# llama.cpp spells its cache types f16/q8_0/q4_0; exllamav2 and TabbyAPI use fp16/q8/q6/q4
_CACHE_ALIASES: Final = {
    "fp16": CacheMode.FP16,
    "f16": CacheMode.FP16,
    "16": CacheMode.FP16,
    "fp8": CacheMode.FP8,
    "8bit": CacheMode.FP8,
    "q8": CacheMode.Q8,
    "q8_0": CacheMode.Q8,
    "q6": CacheMode.Q6,
    "q4": CacheMode.Q4,
    "q4_0": CacheMode.Q4,
}
_RUNTIME_ALIASES: Final = {
    "exllamav2": Runtime.EXLLAMAV2,
    "exllama": Runtime.EXLLAMAV2,
    "exl2": Runtime.EXLLAMAV2,
    "exllamav3": Runtime.EXLLAMAV3,
    "exl3": Runtime.EXLLAMAV3,
    "tabbyapi": Runtime.TABBYAPI,
    "transformers": Runtime.TRANSFORMERS,
    "hf": Runtime.TRANSFORMERS,
    "llama.cpp": Runtime.LLAMACPP,
    "llamacpp": Runtime.LLAMACPP,
    "llama-cpp": Runtime.LLAMACPP,
    "vllm": Runtime.VLLM,
}


# more digits than any GPU or context length has: a float would overflow to inf on the way
MAX_DIGITS = 24


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def parse_amount_bytes(text: str, *, what: str = "amount", forms: str = AMOUNT_FORMS) -> int:
    """One memory amount; bare numbers are GiB. ``0`` is allowed (a reserve may be zero)."""
    match = _AMOUNT.match(text)
    if match is None or len(match.group(1)) > MAX_DIGITS:
        raise UsageError(f"invalid {what} {_shown(text)}; accepted forms: {forms}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return round(float(number) * _UNIT_BYTES[unit])


def parse_vram(text: str) -> tuple[int, ...] | Literal["auto"]:
    """``--vram``: bytes per GPU, or ``"auto"`` to ask the driver (see quantpick.estimate.gpu)."""
    if text.strip().lower() == "auto":
        return "auto"
    parts = text.split(",")
    sizes = tuple(parse_amount_bytes(part, what="VRAM", forms=VRAM_FORMS) for part in parts)
    if any(size <= 0 for size in sizes):
        raise UsageError(
            f"invalid VRAM {text!r}: each GPU needs more than 0; accepted forms: {VRAM_FORMS}"
        )
    return sizes


def parse_context(text: str) -> int:
    """``--ctx``: tokens; ``16k`` is 16 x 1024."""
    match = _CONTEXT.match(text)
    if match is None or len(match.group(1)) > MAX_DIGITS:
        raise UsageError(f"invalid context length {_shown(text)}; accepted forms: {CONTEXT_FORMS}")
    number, suffix = float(match.group(1)), (match.group(2) or "").lower()
    scale = {"": 1, "k": CONTEXT_K_TOKENS, "m": CONTEXT_M_TOKENS}[suffix]
    tokens = number * scale
    if tokens < 1 or tokens != int(tokens):
        raise UsageError(
            f"invalid context length {text!r}: a whole number of tokens above 0; "
            f"accepted forms: {CONTEXT_FORMS}"
        )
    return int(tokens)


def parse_cache_mode(text: str) -> CacheMode:
    mode = _CACHE_ALIASES.get(text.strip().lower())
    if mode is None:
        raise UsageError(
            f"invalid cache mode {text!r}; accepted forms: {', '.join(sorted(_CACHE_ALIASES))}"
        )
    return mode


def parse_flash_attn(text: str) -> bool:
    """llama.cpp's -fa: on or off (auto is what it does on CUDA: on)."""
    value = text.strip().lower()
    if value in ("on", "1", "true", "yes", "auto"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise UsageError(f"invalid --flash-attn {text!r}; accepted forms: on, off, auto (= on)")


def parse_runtime(text: str) -> Runtime:
    runtime = _RUNTIME_ALIASES.get(text.strip().lower())
    if runtime is None:
        raise UsageError(
            f"invalid runtime {text!r}; accepted forms: {', '.join(sorted(_RUNTIME_ALIASES))}"
        )
    return runtime


def format_gib(size_bytes: int, *, digits: int = 1) -> str:
    """VRAM as users read it on their GPU: ``23.0 GiB``."""
    return f"{size_bytes / GIB:.{digits}f} GiB"


def format_size(size_bytes: int) -> str:
    """An amount of disk, in the unit that keeps it readable: 12.3 MiB, not 0.01 GiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size_bytes >= size:
            return f"{size_bytes / size:.1f} {unit}"
    return f"{size_bytes} B"


def format_si_size(size_bytes: int) -> str:
    """A file size as cards write it (SI units), in the unit that keeps it readable: 624 MB is
    "624.00 MB", not "0.62 GB", and 3 kB is not "0.00 GB"."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size_bytes >= size:
            return f"{size_bytes / size:.2f} {unit}"
    return f"{size_bytes} B"


def format_context(tokens: int) -> str:
    """``16384`` -> ``16k``; a length that is not a whole number of k stays in tokens."""
    if tokens >= CONTEXT_K_TOKENS and tokens % CONTEXT_K_TOKENS == 0:
        return f"{tokens // CONTEXT_K_TOKENS}k"
    return str(tokens)
