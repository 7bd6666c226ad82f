"""The vocabulary of variant-table headers: which column of a card's table means what.

A table is a variant table when it has a column naming the variant (Branch, Name, Filename, Link,
Quant) and a column describing one (Bits, Size, VRAM, ...); benchmark and hyper-parameter tables
have neither and are skipped whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from quantpick.card import values as cv
from quantpick.card.markdown import parse_inline
from quantpick.records import CacheMode


class Col(StrEnum):
    BRANCH = "branch"
    NAME = "name"
    LINK = "link"
    QUANT_ID = "quant_id"
    QUANT = "quant"
    BITS = "bits"
    HEAD_BITS = "head_bits"
    GROUP = "group"
    ACT_ORDER = "act_order"
    DAMP = "damp"
    DATASET = "dataset"
    SEQ_LEN = "seq_len"
    SIZE = "size"
    VRAM = "vram"
    RAM = "ram"
    CACHE = "cache"
    FILES = "files"
    SPLIT = "split"
    EXLLAMA = "exllama"
    MADE_WITH = "made_with"
    DESC = "desc"
    OTHER = "other"


_IDENT_PRIORITY = (Col.BRANCH, Col.NAME, Col.LINK, Col.QUANT_ID)
_DESCRIBING = {
    Col.QUANT,
    Col.BITS,
    Col.HEAD_BITS,
    Col.GROUP,
    Col.SIZE,
    Col.VRAM,
    Col.RAM,
    Col.CACHE,
    Col.FILES,
}
_RULES: tuple[tuple[re.Pattern[str], Col], ...] = tuple(
    (re.compile(pattern), col)
    for pattern, col in (
        (r"\bppl\b|perplexity|\bkld\b|\bscore\b|accuracy|\bmmlu\b|wikitext", Col.OTHER),
        (r"lm[_ ]?head|head bits", Col.HEAD_BITS),
        (r"vram|memory|\bgpu\b", Col.VRAM),
        (r"\bram\b", Col.RAM),
        (r"^branch|^revision", Col.BRANCH),
        (r"split files|^files$|^parts$|download links", Col.FILES),
        (r"^split", Col.SPLIT),
        (r"quant(?:ization)? ?(?:method|type)|^type$|^method$", Col.QUANT),
        (r"file ?name|^file$|^name$|^model file", Col.NAME),
        (r"^link|^download", Col.LINK),
        (r"^quant|^variant", Col.QUANT_ID),
        (r"^bits?\b|\bbpw\b|bits per weight", Col.BITS),
        (r"^gs$|group ?size", Col.GROUP),
        (r"act ?order|desc_act", Col.ACT_ORDER),
        (r"damp", Col.DAMP),
        (r"dataset", Col.DATASET),
        (r"seq(?:uence)? ?len", Col.SEQ_LEN),
        (r"size", Col.SIZE),
        (r"exllama", Col.EXLLAMA),
        (r"made with|^tool", Col.MADE_WITH),
        (r"desc|use ?case|^notes?$|comment|summary|remarks", Col.DESC),
    )
)


@dataclass(frozen=True, slots=True)
class Column:
    role: Col
    key: str
    context: int | None = None
    cache: CacheMode | None = None
    unit: str | None = None


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "column"


@lru_cache(maxsize=1024)
def classify(header: str) -> Column:
    text = " ".join(header.lower().split())
    key = _snake(text)
    mode = cv.cache_mode(text)
    if mode is not None:
        return Column(Col.CACHE, key, cv.context_tokens(text), mode, cv.header_unit(text))
    for pattern, role in _RULES:
        if pattern.search(text):
            context = cv.context_tokens(text) if role is Col.VRAM else None
            return Column(role, key, context, None, cv.header_unit(text))
    return Column(Col.OTHER, key)


def ident_column(columns: list[Column]) -> int | None:
    roles = [c.role for c in columns]
    ident = next((roles.index(r) for r in _IDENT_PRIORITY if r in roles), None)
    return ident if ident is not None and set(roles) & _DESCRIBING else None


@lru_cache(maxsize=1024)
def is_variant_header(header: tuple[str, ...]) -> bool:
    """Whether a header row (raw cells) can head a variant table: naming and describing columns."""
    return ident_column([classify(parse_inline(h).text) for h in header]) is not None
