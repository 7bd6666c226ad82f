"""The fast table rule and inline reader give exactly what stock markdown-it gives.

card/pipe_table.py replaces markdown-it's GFM table rule and card/markdown.py reads simple cells
without markdown-it's inline parser; both are only sound if their answers are the stock ones.
Compared here on every fixture and shared card and on generated tables and cells.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from quantpick.card import markdown as card_md
from quantpick.card.markdown import _fast_inline, _slow_inline, split_front_matter
from quantpick.card.pipe_table import TOKEN_TYPE, PipeRows

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUANTPICK_SHARED_CARDS", ROOT.parent / "shared" / "cards"))
CARD_PATHS = sorted((ROOT / "tests" / "fixtures" / "cards").glob("*.md")) + (
    sorted(p for p in SHARED.glob("**/*.md") if p.name != "README.md") if SHARED.is_dir() else []
)
CARDS = [split_front_matter(p.read_text(encoding="utf-8"))[1] for p in CARD_PATHS]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

STOCK = MarkdownIt("commonmark", {"html": True}).enable("table").disable(["lheading", "inline"])

Shape = tuple[Any, ...]


def _stock_shapes(tokens: list[Token]) -> list[Shape]:
    """Stock tokens, each table folded to (map, header, rows, row lines) like a pipe_table."""
    out: list[Shape] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type != "table_open":
            out.append((tok.type, tok.tag, tok.map, tok.content, tok.markup, tok.info, tok.level))
            i += 1
            continue
        start = tok.map
        header: list[str] = []
        rows: list[tuple[str, ...]] = []
        lines: list[int] = []
        row: list[str] = []
        in_head = False
        while tokens[i].type != "table_close":
            t = tokens[i]
            if t.type in ("thead_open", "thead_close"):
                in_head = t.type == "thead_open"
            elif t.type == "tr_open":
                row = []
                if not in_head:
                    assert t.map is not None
                    lines.append(t.map[0])
            elif t.type == "inline":
                row.append(t.content)
            elif t.type == "tr_close":
                if in_head:
                    header = row
                else:
                    rows.append(tuple(row))
            i += 1
        out.append(("table", start, tuple(header), tuple(rows), tuple(lines), tok.level))
        i += 1
    return out


def _fast_shapes(tokens: list[Token]) -> list[Shape]:
    out: list[Shape] = []
    for tok in tokens:
        if tok.type == TOKEN_TYPE:
            table: PipeRows = tok.meta["rows"]
            out.append(("table", tok.map, table.header, table.rows, table.row_lines, tok.level))
        else:
            out.append((tok.type, tok.tag, tok.map, tok.content, tok.markup, tok.info, tok.level))
    return out


def assert_same_blocks(text: str) -> None:
    assert _fast_shapes(card_md._MD.parse(text)) == _stock_shapes(STOCK.parse(text))


def assert_same_inline(raw: str) -> None:
    fast = _fast_inline(raw)
    if fast is not None:
        assert fast == _slow_inline(raw), raw


def test_every_card_parses_to_the_stock_tokens() -> None:
    assert len(CARDS) >= 10
    for text in CARDS:
        assert_same_blocks(text)


def test_every_cell_and_paragraph_of_every_card_reads_as_stock() -> None:
    fast_hits = 0
    for text in CARDS:
        for tok in STOCK.parse(text):
            if tok.type == "inline":
                assert_same_inline(tok.content)
                fast_hits += _fast_inline(tok.content) is not None
    # the fast path is the common one, or it would not be worth having
    assert fast_hits > 1000


EDGE_TABLES = [
    "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 |\n| 4 | 5 | 6 |\nprose after\n\nnext",
    "a | b\n--|--\n1 | 2",
    "| a \\| b | c |\n|:--|--:|\n| x \\| y | z\\\\|w |",
    "| a |\n|---|\n- list\n| b |",
    "| a |\n|---|\n1. one\n2) two\n10 | x",
    "| a |\n|---|\n# h\n| b |\n",
    "| a |\n|---|\n> q\n",
    "| a |\n|---|\n```\ncode\n```",
    "| a |\n|---|\n<div>\n| b |",
    "| a |\n|---|\n***\n",
    "| a |\n|---|\n    | indented |\n   | three |\n\t| tab |",
    "| a |\n|---|\n-1 | x\n+ y\n_x_ | z\n*\n#nohash\n~~~\n",
    "text\n| a | b |\n|---|---|\n| 1 | 2 |",
    "- item\n| a | b |\n|---|---|\n| 1 | 2 |",
    "> | a | b |\n> |---|---|\n> | 1 | 2 |\n| lazy | row |",
    "- | a | b |\n  |---|---|\n  | 1 | 2 |\n | out | dented |",
    "| a | b |\n|---|---|\n" + "| x |\n" * 70000,
    "|a|\n|-|\n|b|",
    "| a |\n| - |\n|b",
    "| a | b |\n| --- |\n| 1 | 2 |",
    "| a | b |\n|---||---|\n",
    "\u00a0| a |\n|---|\n\u00a0| b |\n\u2003\n",
]


def test_edge_tables_parse_to_the_stock_tokens() -> None:
    for text in EDGE_TABLES:
        assert_same_blocks(text)


LINE_PARTS = st.sampled_from(
    [
        "|", "| ", " |", "---", ":--", "--:", "-", ":", "a", "Q4_K_M", "\\|", "\\", "`", "```",
        "~~~", ">", "*", "+", "_", "#", "# ", "1.", "2)", "<div>", "<!--", "    ", "\t", " ",
        "\u00a0", "[x](https://h.co/a)", "**b**", "1", "&amp;",
    ]
)  # fmt: skip


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            width = draw(st.integers(1, 4))
            lines.append(
                "|" + "|".join(draw(st.sampled_from([" a ", "b", ""])) for _ in range(width))
            )
            lines.append(
                "|"
                + "|".join(draw(st.sampled_from(["---", ":-:", "-", "--:"])) for _ in range(width))
            )
        elif kind == 1:
            lines.append("")
        else:
            lines.append("".join(draw(st.lists(LINE_PARTS, max_size=6))))
    return "\n".join(lines)  # fmt: skip


@FUZZ
@given(documents())
def test_generated_documents_parse_to_the_stock_tokens(text: str) -> None:
    assert_same_blocks(text)


CELL_PARTS = st.sampled_from(
    [*"abQK09_ *`[]()!<>&\\~#.-:/\n\t", "\u00a0", "é", "](", "](https://a.co/x_y)", "_K_"]
)


@FUZZ
@given(st.lists(CELL_PARTS, max_size=20).map("".join))
def test_generated_cells_read_as_stock(raw: str) -> None:
    assert_same_inline(raw)


@FUZZ
@given(
    st.from_regex(card_md._NORMAL_URL, fullmatch=True),
    st.text(st.sampled_from(list("ab _Q4.")), max_size=8),
)
def test_normal_urls_are_left_as_they_are_by_markdown_it(url: str, label: str) -> None:
    assert card_md._MD.normalizeLink(url) == url
    assert card_md._MD.validateLink(url)
    assert_same_inline(f"[{label}]({url})")


def _urlsplit_path(href: str) -> str | None:
    """card/links.py's reading of a link before its shortcut: urlsplit alone."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    hub = parts.hostname in ("huggingface.co", "www.huggingface.co", "hf.co")
    return parts.path if parts.scheme in ("http", "https") and hub else None


URL_PARTS = st.sampled_from(
    [
        "huggingface.co", "hf.co", "HF.co", "hf.cox", ":443", "@", "evil.com", "/", "o/m", "tree",
        "main", "x.gguf", "?", "#", "%20", " ", "\t", "\n", "\r", "[", "]", "\x00", "é", "&a=b",
    ]
)  # fmt: skip
URLS = st.tuples(
    st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", " https://"]),
    st.sampled_from(["huggingface.co", "hf.co", "www.huggingface.co", "HF.co", "hf.co."]),
    st.lists(URL_PARTS, max_size=8),
).map(lambda t: t[0] + t[1] + "".join(t[2]))


@FUZZ
@given(URLS)
def test_hub_link_paths_are_read_as_urlsplit_reads_them(href: str) -> None:
    from quantpick.card.links import _url_path

    assert _url_path(href) == _urlsplit_path(href), repr(href)


def test_every_card_link_path_is_read_as_urlsplit_reads_it() -> None:
    from quantpick.card.links import _url_path

    hrefs = {link.href for text in CARDS for tok in STOCK.parse(text) if tok.type == "inline"
             for link in _slow_inline(tok.content).links}  # fmt: skip
    assert len(hrefs) > 200
    for href in hrefs:
        assert _url_path(href.strip()) == _urlsplit_path(href.strip()), href
