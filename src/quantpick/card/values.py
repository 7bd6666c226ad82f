"""What one cell or sentence of a card means: numbers with units, contexts, cache modes, markers.

Regexes here read the text of a single cell or sentence; table structure comes from markdown-it.
"""

from __future__ import annotations

import math
import re

from quantpick.records import GB, GIB, CacheMode

_UNKNOWN = {"", "?", "-", "--", "\u2014", "\u2013", "n/a", "na", "none", "unknown", "tbd", "x"}
_QUANTITY = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>[KMGT]i?B\b|[KMGT]i?B(?=\W|$)|[GM]\b)?", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CONTEXT_K = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*k(?![a-z])", re.IGNORECASE)
_CONTEXT_TOKENS = re.compile(
    r"(?<![\w.])(\d{3,7})(?:\s*|-)(?:tokens?|ctx|context)\b"
    r"|\bcontext(?: of| length| size)?[:= ]+(\d{3,7})\b",
    re.IGNORECASE,
)
_CACHE_BITS = re.compile(r"(?<![\w.])(4|6|8|16)[\s-]*bits?\b", re.IGNORECASE)
_CACHE_NAMED = re.compile(r"\b(q4|q6|q8|fp8|fp16|f16)\b", re.IGNORECASE)
_RECOMMEND = re.compile(r"recommend(?:ed|ation|s)?\b", re.IGNORECASE)
_NEGATED = re.compile(
    r"(?:\bnot|n't|\bnever|\bno longer|\bno|\bless|\bleast)\W+(?:\w+\W+)?$", re.IGNORECASE
)
# "recommended over X" ranks, "recommended if your hardware ..." sets a condition: neither marks
_COMPARATIVE = re.compile(
    r"^\W*(?:over|instead|rather|above|against|if|when|unless|only)\b", re.IGNORECASE
)
_TRUE = {"yes", "true", "y", "✓", "✔", "✅", "1"}
_FALSE = {"no", "false", "n", "✗", "✘", "❌", "0"}


def is_unknown(text: str) -> bool:
    return text.strip().strip("*_`~ ").lower() in _UNKNOWN


# what a 'Recommended' column's cell holds when it says yes: a check, a star, a circle (Japanese
# tables grade with ◎/○), or the word
_MARK_SYMBOLS = frozenset("✅✔✓☑⭐★☆🌟👍◎○●◉✨🔥")
_MARK_WORDS = frozenset(
    {"yes", "y", "x", "true", "recommended", "sí", "si", "ja", "oui", "是", "推荐", "推薦", "はい"}
)


def is_mark(text: str) -> bool:
    """Whether a cell of a 'Recommended' column says yes."""
    cell = text.strip().strip("*_`~ ").lower()
    if not cell or len(cell) > 16:
        return False
    if cell in _MARK_WORDS:
        return True
    symbols = [ch for ch in cell if not ch.isspace() and ch != "\ufe0f"]
    return bool(symbols) and all(ch in _MARK_SYMBOLS for ch in symbols)


# no card figure comes near this; anything bigger is garbage, and infinity would break round()
_LARGEST = 1e15


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and abs(value) <= _LARGEST else None


def _number(raw: str) -> float | None:
    # "16,02" is a decimal comma; "1,234" a thousands separator
    if "," in raw:
        whole, _, frac = raw.partition(",")
        raw = whole + frac if len(frac) == 3 else f"{whole}.{frac}"
    return _finite(float(raw))


def quantity(text: str) -> tuple[float, str] | None:
    """(value, unit upper-cased or "") from the first number in a cell; None for '?'/'-'/empty."""
    if is_unknown(text):
        return None
    m = _QUANTITY.search(text)
    if m is None:
        return None
    unit = (m["unit"] or "").upper()
    if unit in ("G", "M"):
        unit += "B"
    value = _number(m["num"])
    return None if value is None else (value, unit)


_SI = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_BINARY = {"KIB": 2.0**10, "MIB": 2.0**20, "GIB": 2.0**30, "TIB": 2.0**40}
_MEMORY = {"KB": 2.0**10, "MB": 2.0**20, "GB": 2.0**30, "TB": 2.0**40, **_BINARY}


def size_bytes(text: str, default_unit: str = "GB") -> int | None:
    """A file size: "GB"/"MB" are SI on cards (they copy what the Hub shows), "GiB" binary."""
    q = quantity(text)
    if q is None:
        return None
    value, unit = q
    factor = _SI.get(unit or default_unit) or _BINARY.get(unit or default_unit, float(GB))
    return round(value * factor)


def memory_bytes(text: str, default_unit: str = "GB") -> int | None:
    """A VRAM/RAM figure: quantizers measure with tools that print GiB and write "GB"."""
    q = quantity(text)
    if q is None:
        return None
    value, unit = q
    return round(value * _MEMORY.get(unit or default_unit, float(GIB)))


def header_unit(header: str) -> str | None:
    """The unit a header declares for bare numbers: 'Size/GB', 'Size (GiB)'."""
    m = re.search(r"\b([KMGT]i?B)\b", header, re.IGNORECASE)
    return m[1].upper() if m else None


def number(text: str) -> float | None:
    if is_unknown(text):
        return None
    m = _NUMBER.search(text.replace(",", "."))
    return _finite(float(m[0])) if m else None


def integer(text: str) -> int | None:
    value = number(text)
    return int(value) if value is not None and value == int(value) else None


def boolean(text: str) -> bool | None:
    word = text.strip().strip("*_` .").lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def context_tokens(text: str) -> int | None:
    """'VRAM (16k)' -> 16384, 'full context of 32k tokens' -> 32768, '8192 tokens' -> 8192."""
    m = _CONTEXT_K.search(text)
    if m:
        thousands = float(m[1])
        return round(thousands * 1024) if 0 < thousands <= 16 * 1024 else None
    m = _CONTEXT_TOKENS.search(text)
    if m:
        return int(m[1] or m[2])
    return None


def cache_mode(text: str) -> CacheMode | None:
    """'4 bit cache' -> Q4, '16-bit cache' -> FP16, 'Q8 cache' -> Q8; None when none is named."""
    if "cache" not in text.lower():
        return None
    m = _CACHE_NAMED.search(text)
    if m:
        word = m[1].lower()
        return CacheMode.FP16 if word == "f16" else CacheMode(word)
    m = _CACHE_BITS.search(text)
    if m:
        return {
            "4": CacheMode.Q4,
            "6": CacheMode.Q6,
            "8": CacheMode.FP8,
            "16": CacheMode.FP16,
        }[m[1]]
    return None


def recommendation_spans(text: str) -> list[int]:
    """End offsets of every positive 'recommend' in a text: negated or comparative ones are not."""
    ends: list[int] = []
    # every match holds the word (its letters have no IGNORECASE look-alikes outside ASCII)
    if "recommend" not in text.lower():
        return ends
    for m in _RECOMMEND.finditer(text):
        before = text[max(0, m.start() - 30) : m.start()]
        after = text[m.end() : m.end() + 20]
        if _NEGATED.search(before) or _COMPARATIVE.search(after):
            continue
        ends.append(m.end())
    return ends


def is_recommended(text: str) -> bool:
    return bool(recommendation_spans(text))
