"""A model card as markdown-it tokens: tables, prose blocks and links, plus its YAML front-matter.

Block structure comes from markdown-it-py (GFM tables included); inline markup is parsed lazily,
only for the cells and paragraphs a caller asks about, because inline parsing is two thirds of the
cost of a full parse and most of a long card (benchmarks, chat logs) is never looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from quantpick.card.html_tables import html_tables
from quantpick.card.pipe_table import TOKEN_TYPE as PIPE_TABLE
from quantpick.card.pipe_table import PipeRows, use_pipe_tables


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str


@dataclass(frozen=True, slots=True)
class Inline:
    """Inline markdown reduced to what the parser needs: plain text (markup gone) and links."""

    text: str
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    line: int


@dataclass(frozen=True, slots=True)
class Block:
    """A heading, paragraph or list-item paragraph outside tables, as raw inline markdown."""

    raw: str
    line: int
    heading: bool


@dataclass(slots=True)
class Document:
    tables: list[Table] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    # fenced and indented code (shell commands name files: `-m x.gguf`, `--hf-file`, `-hf r:Q8_0`)
    code: list[Block] = field(default_factory=list)
    front_matter: str = ""


def _make_markdown() -> MarkdownIt:
    md = use_pipe_tables(MarkdownIt("commonmark", {"html": True}))
    # setext headings cost a second scan of every paragraph; cards use '#' headings, and a
    # setext one still reads as prose
    md.disable("lheading")
    # inline markup is parsed on demand through parse_inline
    md.disable("inline")
    return md


# One block pass per document; tables come back as one token each (card/pipe_table.py), so a
# benchmark or chat-log table costs a split per row and nothing more.
_MD = _make_markdown()
# (raw header cells, the table's source) -> keep the table?
HeaderFilter = Callable[[tuple[str, ...], str], bool]


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def split_front_matter(text: str) -> tuple[str, str]:
    """(front-matter, body). Without the split, YAML lines would read as a setext heading."""
    if not text.startswith("---"):
        return "", text
    first_nl = text.find("\n")
    if first_nl < 0 or text[:first_nl].strip() != "---":
        return "", text
    end = _FRONT_MATTER_END.search(text, first_nl + 1)
    if end is None:
        return "", text
    return text[first_nl + 1 : end.start()], text[end.end() :]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value.strip()


def front_matter_list(front_matter: str, key: str) -> tuple[str, ...]:
    """A top-level key's value as strings: `key: a`, `key: [a, b]` or a `- a` block list.

    A tolerant reader for the one or two keys we need, so the package needs no YAML dependency.
    """
    lines = front_matter.split("\n")
    prefix = f"{key}:"
    for i, line in enumerate(lines):
        if not line.startswith(prefix):
            continue
        value = line[len(prefix) :].split(" #", 1)[0].strip()
        if value.startswith("[") and value.endswith("]"):
            items = [_unquote(v) for v in value[1:-1].split(",")]
            return tuple(v for v in items if v)
        if value:
            single = _unquote(value)
            return (single,) if single else ()
        found = []
        for follow in lines[i + 1 :]:
            stripped = follow.strip()
            if not stripped:
                continue
            if not stripped.startswith("- ") or not follow.startswith((" ", "-")):
                break
            item = _unquote(stripped[2:])
            if item:
                found.append(item)
        return tuple(found)
    return ()


def _line(token: Token, offset: int) -> int:
    return (token.map[0] + 1 if token.map else 0) + offset


def _pipe_table(tok: Token, offset: int, doc: Document, want: HeaderFilter) -> None:
    table: PipeRows = tok.meta["rows"]
    if want(table.header, tok.meta["source"]):
        body = tuple(row for row, piped in zip(table.rows, table.piped, strict=True) if piped)
        doc.tables.append(Table(table.header, body, _line(tok, offset)))
    for row, line, piped in zip(table.rows, table.row_lines, table.piped, strict=True):
        if not piped:
            # GFM keeps a pipe-less line after a table as a one-cell row; its author wrote prose
            doc.blocks.append(Block(" ".join(row).strip(), line + 1 + offset, False))


# a GFM delimiter row (| --- | :---: |): only a cheap test for "may hold a table"
_DELIMITER_ROW = re.compile(
    r"^[ \t]{0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$", re.M
)


def _lazy_table(tok: Token, offset: int, doc: Document, want: HeaderFilter) -> bool:
    """A table in a paragraph: TheBloke's cards start one right under a list item, where it
    cannot interrupt the item's paragraph and reads as its lazy continuation. The paragraph is
    parsed once more on its own, as GitHub and the Hub render it: a table."""
    content = tok.content
    if "|" not in content or "\n" not in content or not _DELIMITER_ROW.search(content):
        return False
    tokens = _MD.parse(content)
    if not any(t.type == PIPE_TABLE for t in tokens):
        return False
    _walk(tokens, _line(tok, offset) - 1, doc, want, nested=True)
    return True


def _walk(
    tokens: list[Token], offset: int, doc: Document, want: HeaderFilter, nested: bool = False
) -> None:
    for i, tok in enumerate(tokens):
        kind = tok.type
        if kind == PIPE_TABLE:
            _pipe_table(tok, offset, doc, want)
        elif kind in ("fence", "code_block"):
            doc.code.append(Block(tok.content, _line(tok, offset), False))
        elif kind == "html_block" and "<table" in tok.content.lower():
            for header, rows in html_tables(tok.content):
                if want(header, tok.content):
                    doc.tables.append(Table(header, rows, _line(tok, offset)))
        elif kind == "inline" and tok.content:
            heading = i > 0 and tokens[i - 1].type == "heading_open"
            # a second parse of a paragraph is never parsed a third time: each byte costs two
            # block passes at most
            if heading or nested or not _lazy_table(tok, offset, doc, want):
                doc.blocks.append(Block(tok.content, _line(tok, offset), heading))


def parse_document(text: str, want_table: HeaderFilter = lambda header, body: True) -> Document:
    """Tables (those whose raw header cells `want_table` accepts), prose blocks, front-matter."""
    text = _normalise(text)
    front, body = split_front_matter(text)
    offset = text[: len(text) - len(body)].count("\n")
    doc = Document(front_matter=front)
    _walk(_MD.parse(body), offset, doc, want_table)
    return doc


def _flatten(children: list[Token]) -> Inline:
    parts: list[str] = []
    links: list[Link] = []
    link_href: str | None = None
    link_start = 0
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline", "text_special"):
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif kind == "link_open":
            href = child.attrs.get("href")
            link_href = href if isinstance(href, str) else ""
            link_start = len(parts)
        elif kind == "link_close" and link_href is not None:
            links.append(Link(link_href, "".join(parts[link_start:]).strip()))
            link_href = None
    return Inline(" ".join("".join(parts).split()), tuple(links))


# Cells and paragraphs where markdown-it's inline rules would only copy text and make links.
# Of markdown-it's commonmark inline rules, only these characters start anything but text:
# \\ escape, ` code, * _ emphasis, [ ] ! link and image, < autolink and HTML, & entity, and a
# newline (softbreak). `_` between two ASCII letters or digits can neither open nor close
# emphasis (CommonMark's intraword rule), so it is text; Q4_K_M names are full of them.
_MARKUP = re.compile(r"[\\`*\[\]!<&\n]|(?<![A-Za-z0-9_])_|_(?![A-Za-z0-9_])")
# [label](destination): no markup in the label, no space, control character, paren, escape,
# entity or angle bracket in the destination (markdown-it would read those differently)
_SIMPLE_LINK = re.compile(r"\[([^\\`*\[\]!<&\n]*)\]\(([^\s()<>\\&\x00-\x1f\x7f]+)\)")
# destinations markdown-it's normalizeLink returns unchanged and validateLink accepts (checked
# against both by tests/test_pipe_table.py): a host of DNS labels (mdurl drops a host over 255
# characters and splits a label over 63), safe path characters; others go through normalizeLink
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NORMAL_URL = re.compile(
    rf"https?://(?=[a-z0-9.-]{{1,253}}(?:/|$)){_LABEL}(?:\.{_LABEL})*(?:/[A-Za-z0-9\-._~/+=,?#]*)?"
)


def _fast_inline(raw: str) -> Inline | None:
    """What `_flatten` of markdown-it's inline tokens gives, for text with simple links only;
    None when anything else is there. The same answer in a few microseconds instead of ~100."""
    if _MARKUP.search(raw) is None:
        return Inline(" ".join(raw.split()))
    parts: list[str] = []
    links: list[Link] = []
    pos = 0
    for m in _SIMPLE_LINK.finditer(raw):
        dest = m[2]
        if _NORMAL_URL.fullmatch(dest) is None:
            dest = _MD.normalizeLink(dest)
            if not _MD.validateLink(dest):
                return None
        parts += (raw[pos : m.start()], m[1])
        links.append(Link(dest, m[1].strip()))
        pos = m.end()
    parts.append(raw[pos:])
    # the same test over the text between links and each label, each on its own: an `_`
    # touching a bracket is never intraword. Joined by a space, which no alternative matches
    # and which reads like a string's edge to the `_` look-arounds: one search, same answer
    if _MARKUP.search(" ".join(parts)):
        return None
    return Inline(" ".join("".join(parts).split()), tuple(links))


def _slow_inline(raw: str) -> Inline:
    return _flatten(_MD.inline.parse(raw, _MD, {}, []))


@lru_cache(maxsize=8192)
def parse_inline(raw: str) -> Inline:
    """Plain text and links of one cell or paragraph (cached: tables repeat cells a lot)."""
    fast = _fast_inline(raw)
    return fast if fast is not None else _slow_inline(raw)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """A paragraph's plain text cut where a sentence ends."""
    return _SENTENCE_END.split(text)
