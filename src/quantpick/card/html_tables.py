"""Raw HTML `<table>`s (exl3 card generators write them) as header + rows of inline markdown.

Cells come back as markdown (`[text](href)` for links) so the table reader treats them exactly
like a pipe table's cells. The standard library's parser; unclosed tags end with the input.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[tuple[bool, list[str]]]] = []
        self._row: list[str] | None = None
        self._head_row = False
        self._cell: list[str] | None = None
        self._href: str | None = None
        self._link_text: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self.tables.append([])
        elif self._depth != 1:
            return
        elif tag == "tr":
            self._row, self._head_row = [], False
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._head_row = self._head_row or tag == "th"
        elif tag == "a" and self._cell is not None:
            self._href = dict(attrs).get("href") or ""
            self._link_text = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth = max(0, self._depth - 1)
        elif self._depth != 1:
            return
        elif tag == "a" and self._href is not None and self._cell is not None:
            text = "".join(self._link_text).strip().replace("]", ")")
            self._cell.append(f"[{text}]({self._href})")
            self._href = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()).replace("|", "/"))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append((self._head_row, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._depth != 1 or self._cell is None:
            return
        if self._href is not None:
            self._link_text.append(data)
        else:
            self._cell.append(data)


def html_tables(raw: str) -> list[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]]:
    """(header, rows) of each top-level table; the first row is the header when none is <th>."""
    parser = _Tables()
    try:
        parser.feed(raw)
        parser.close()
    except (AssertionError, ValueError):
        # a malformed fragment gives what was read before it
        pass
    out = []
    for rows in parser.tables:
        rows = [r for r in rows if r[1]]
        if len(rows) < 2:
            continue
        head_at = next((i for i, (is_head, _) in enumerate(rows) if is_head), 0)
        header = tuple(rows[head_at][1])
        body = tuple(tuple(cells) for _, cells in rows[head_at + 1 :])
        out.append((header, body))
    return out
