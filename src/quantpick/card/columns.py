"""Which column of a card's table means what: header words first, then what the cells hold.

A table is a variant table when it has a column naming the variant (Branch, Name, Filename, Link,
Quant) and a column describing one (Bits, Size, VRAM, ...); benchmark and hyper-parameter tables
have neither and are skipped whole. Header words are English and only a hint: a column whose
header says nothing known is read from its cells (Hub file links, quant types, sizes with units),
so `Nome | Método Quant | Tamanho` reads like `Name | Quant method | Size`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from quantpick.card import values as cv
from quantpick.card.links import TargetKind, hub_target
from quantpick.card.markdown import parse_inline
from quantpick.card.names import is_quant_label
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
    RECOMMEND = "recommend"
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
        (r"lm[_ ]?head|head bits|^head$", Col.HEAD_BITS),
        # a column of marks (✅, ⭐, yes): the words for it in the languages cards are written in
        (
            r"^rec\.?$|recommend|recomend|empfohlen|conseill|consigliat|推荐|推薦|おすすめ|オススメ",
            Col.RECOMMEND,
        ),
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


# quality-score columns stay OTHER whatever their cells look like
_SCORE_HEADER = _RULES[0][0]


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


# a table whose header words say nothing may still list variants: worth parsing when its source
# links Hub files or gives sizes with units (benchmark tables rarely do either)
_BODY_HINT = re.compile(r"huggingface\.co/|hf\.co/|\.gguf\b|\d\s*[KMGT]i?B\b", re.IGNORECASE)
_FILE_NAME = re.compile(r"^\S+\.(?:gguf|bin|safetensors)$", re.IGNORECASE)
_SIZE_UNITS = {"KB", "MB", "GB", "TB", "KIB", "MIB", "GIB", "TIB"}


def wants_table(header: tuple[str, ...], body: str) -> bool:
    return is_variant_header(header) or bool(_BODY_HINT.search(body))


def _names_a_file(raw: str) -> bool:
    cell = parse_inline(raw)
    for link in cell.links:
        target = hub_target(link.href)
        if target is not None and target.kind in (TargetKind.FILE, TargetKind.TREE):
            return True
    return bool(_FILE_NAME.match(cell.text))


def _has_size_unit(raw: str) -> bool:
    q = cv.quantity(parse_inline(raw).text)
    return q is not None and q[1] in _SIZE_UNITS


def _most(cells: list[str], test: Callable[[str], bool]) -> bool:
    hits = sum(1 for c in cells if test(c))
    return hits > 0 and hits * 2 >= len(cells)


def refine(
    columns: list[Column], rows: tuple[tuple[str, ...], ...], headers: list[str]
) -> list[Column]:
    """Columns whose header says nothing known, read from their cells."""
    out = []
    for i, column in enumerate(columns):
        if column.role is not Col.OTHER or _SCORE_HEADER.search(headers[i].lower()):
            out.append(column)
            continue
        cells = [row[i] for row in rows if i < len(row) and not cv.is_unknown(row[i])]
        if not cells:
            out.append(column)
        elif not _WORD.search(headers[i]) and all(cv.is_mark(parse_inline(c).text) for c in cells):
            # a header that says nothing ('', '⭐') over a column of marks
            out.append(Column(Col.RECOMMEND, column.key))
        elif _most(cells, _names_a_file):
            out.append(Column(Col.NAME, column.key))
        elif all(is_quant_label(parse_inline(c).text) for c in cells):
            out.append(Column(Col.QUANT, column.key))
        elif _most(cells, _has_size_unit):
            # a figure at a stated context is memory in use, not a file size
            context = cv.context_tokens(headers[i])
            role = Col.VRAM if context is not None else Col.SIZE
            out.append(Column(role, column.key, context))
        else:
            out.append(column)
    if ident_column(out) is None:
        # no header names the variant: a column whose cells link Hub branches or files does,
        # whatever its header says ('bpw' over `[4.0](.../tree/4.0bpw)`)
        for i, column in enumerate(out):
            cells = [row[i] for row in rows if i < len(row) and not cv.is_unknown(row[i])]
            if cells and column.role is not Col.CACHE and _most(cells, _links_hub):
                out[i] = Column(Col.LINK, column.key)
                break
    return out


_WORD = re.compile(r"[^\W\d_]")


def _links_hub(raw: str) -> bool:
    return any(hub_target(link.href) is not None for link in parse_inline(raw).links)
