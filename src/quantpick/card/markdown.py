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


def _make_markdown(tables: bool) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True})
    if tables:
        md.enable("table")
    else:
        # setext headings cost a second scan of every paragraph; cards use '#' headings, and a
        # setext one still reads as prose
        md.disable("lheading")
    # inline markup is parsed on demand through parse_inline
    md.disable("inline")
    return md


# The first pass runs without the table rule: a table then reads as one paragraph, which costs a
# fraction of a tokenized table. Only a paragraph whose header row the caller wants is parsed again
# with tables on; benchmark and chat-log tables never are.
_BLOCK_MD = _make_markdown(tables=False)
_TABLE_MD = _make_markdown(tables=True)
# (raw header cells, the table's whole source) -> parse it as a table?
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


# a GFM delimiter row (| --- | :---: |): only a cheap test for "may hold a table" before handing
# the paragraph to markdown-it, which decides what the table is
_DELIMITER_ROW = re.compile(
    r"^[ \t]{0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$", re.M
)


def _table(tokens: list[Token], start: int, offset: int, lines: list[str], doc: Document) -> int:
    header: list[str] = []
    rows: list[tuple[str, ...]] = []
    row: list[str] = []
    in_head = False
    stray = False
    i = start
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "table_close":
            break
        if tok.type == "thead_open":
            in_head = True
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "tr_open":
            row = []
            # GFM keeps a pipe-less line after a table as a one-cell row; its author wrote prose
            source = lines[tok.map[0]] if tok.map and tok.map[0] < len(lines) else "|"
            stray = not in_head and "|" not in source
        elif tok.type == "inline":
            row.append(tok.content)
        elif tok.type == "tr_close":
            if in_head:
                header = row
            elif stray:
                doc.blocks.append(Block(" ".join(row).strip(), _line(tok, offset), False))
            else:
                rows.append(tuple(row))
        i += 1
    doc.tables.append(Table(tuple(header), tuple(rows), _line(tokens[start], offset)))
    return i


@lru_cache(maxsize=1024)
def _header_cells(head: str) -> tuple[str, ...] | None:
    """The raw header cells of a header + delimiter pair, None when markdown-it sees no table.

    Cached: long cards repeat the same benchmark header many times.
    """
    cells = []
    for tok in _TABLE_MD.parse(head):
        if tok.type == "inline":
            cells.append(tok.content)
        elif tok.type == "thead_close":
            return tuple(cells)
    return None


def _walk(
    tokens: list[Token], offset: int, lines: list[str], doc: Document, want: HeaderFilter | None
) -> None:
    """Tables and prose blocks of a token stream; `want` is None on the second, tables-on pass."""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "table_open":
            i = _table(tokens, i, offset, lines, doc)
        elif tok.type in ("fence", "code_block") and want is not None:
            doc.code.append(Block(tok.content, _line(tok, offset), False))
        elif tok.type == "html_block" and want is not None and "<table" in tok.content.lower():
            for header, rows in html_tables(tok.content):
                if want(header, tok.content):
                    doc.tables.append(Table(header, rows, _line(tok, offset)))
        elif _is_prose(tok, offset, doc, want):
            heading = i > 0 and tokens[i - 1].type == "heading_open"
            doc.blocks.append(Block(tok.content, _line(tok, offset), heading))
        i += 1


def _is_prose(tok: Token, offset: int, doc: Document, want: HeaderFilter | None) -> bool:
    if tok.type != "inline" or not tok.content:
        return False
    return want is None or not _paragraph_table(tok, offset, doc, want)


def _paragraph_table(tok: Token, offset: int, doc: Document, want: HeaderFilter) -> bool:
    """A paragraph of the first pass that holds a table: parse it with tables on if wanted."""
    content = tok.content
    if "|" not in content or "\n" not in content:
        return False
    delimiter = _DELIMITER_ROW.search(content)
    if delimiter is None or delimiter.start() == 0:
        return False
    header_start = content.rfind("\n", 0, delimiter.start() - 1) + 1
    header = _header_cells(content[header_start : delimiter.end()])
    if header is None:
        return False
    if want(header, content):
        _walk(_TABLE_MD.parse(content), _line(tok, offset) - 1, content.split("\n"), doc, None)
    elif header_start > 0:
        # prose the table directly follows (a list item it hangs from) stays prose
        doc.blocks.append(Block(content[: header_start - 1], _line(tok, offset), False))
    return True


def parse_document(text: str, want_table: HeaderFilter = lambda header, body: True) -> Document:
    """Tables (those whose raw header cells `want_table` accepts), prose blocks, front-matter."""
    text = _normalise(text)
    front, body = split_front_matter(text)
    offset = text[: len(text) - len(body)].count("\n")
    doc = Document(front_matter=front)
    _walk(_BLOCK_MD.parse(body), offset, [], doc, want_table)
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


@lru_cache(maxsize=8192)
def parse_inline(raw: str) -> Inline:
    """Plain text and links of one cell or paragraph (cached: tables repeat cells a lot)."""
    return _flatten(_BLOCK_MD.inline.parse(raw, _BLOCK_MD, {}, []))
