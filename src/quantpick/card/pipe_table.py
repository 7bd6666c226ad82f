"""markdown-it's GFM table rule, rewritten to cost O(row) per row and one token per table.

Why not the stock rule: it pushes ~4 tokens per cell and splits every row character by character in
Python, which made a card of 100k table rows take ~30 s (0.2 ms a row) before any reading of the
cells began. This rule runs the same algorithm, step by step (markdown_it/rules_block/table.py,
markdown-it-py 4.x), with three shortcuts that cannot change its answer:

- a row without a backslash is split with `str.split("|")`: escapedSplit differs from it only at a
  `\\|`;
- the paragraph-ending rules (fence, blockquote, hr, list, html_block, heading: the "blockquote"
  chain the stock rule consults for every body line) each refuse a line whose first non-space
  character is not one of theirs, so they run only when it is one of `_TERMINATOR_STARTS`;
- the table comes back as one `pipe_table` token whose `meta` holds the header cells and the rows
  (cells, and the line each row is on), instead of a token per row and cell.

tests/test_pipe_table.py proves the output equal to the stock rule's on every shared and fixture
card and on generated tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.common.utils import MD_TRIM_CHARS
from markdown_it.rules_block.state_block import StateBlock
from markdown_it.rules_block.table import MAX_AUTOCOMPLETED_CELLS, escapedSplit, headerLineRe

TOKEN_TYPE = "pipe_table"
# fence: ` ~  blockquote: >  hr: * - _  list: * - + digit  html_block: <  heading: #
_TERMINATOR_STARTS = frozenset("`~>*-_+<#0123456789")
_DELIMITER_CHARS = frozenset("|-:")
_SPACE = frozenset(" \t")


@dataclass(frozen=True, slots=True)
class PipeRows:
    """What the stock rule's tokens say: header cells, and each body row's cells and line."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # 0-based source line of each row, and whether that line holds a pipe at all
    row_lines: tuple[int, ...]
    piped: tuple[bool, ...]


def _split(text: str) -> list[str]:
    columns = text.split("|") if "\\" not in text else escapedSplit(text)
    if columns and columns[0] == "":
        columns.pop(0)
    if columns and columns[-1] == "":
        columns.pop()
    return columns


def _line_text(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _aligns(state: StateBlock, line: int) -> int | None:
    """How many columns the delimiter row declares; None when it is no delimiter row."""
    start, end = state.bMarks[line] + state.tShift[line], state.eMarks[line]
    if end - start < 2:
        return None
    first, second = state.src[start], state.src[start + 1]
    if first not in _DELIMITER_CHARS or (second not in _DELIMITER_CHARS and second not in _SPACE):
        return None
    if first == "-" and second in _SPACE:
        return None
    if any(ch not in _DELIMITER_CHARS and ch not in _SPACE for ch in state.src[start + 2 : end]):
        return None
    columns = state.src[start:end].split("|")
    count = 0
    for i, column in enumerate(columns):
        t = column.strip(MD_TRIM_CHARS)
        if not t:
            if i == 0 or i == len(columns) - 1:
                continue
            return None
        if not headerLineRe.search(t):
            return None
        count += 1
    return count


def pipe_table(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    if start_line + 2 > end_line:
        return False
    next_line = start_line + 1
    if state.sCount[next_line] < state.blkIndent or state.is_code_block(next_line):
        return False
    count = _aligns(state, next_line)
    if count is None:
        return False
    head_text = _line_text(state, start_line).strip(MD_TRIM_CHARS)
    if "|" not in head_text or state.is_code_block(start_line):
        return False
    header = [c.strip(MD_TRIM_CHARS) for c in _split(head_text)]
    if not header or len(header) != count:
        return False
    if silent:
        return True

    old_parent = state.parentType
    state.parentType = "table"
    terminators = state.md.block.ruler.getRules("blockquote")
    rows: list[tuple[str, ...]] = []
    row_lines: list[int] = []
    piped: list[bool] = []
    autocompleted = 0
    src, b_marks, t_shift, e_marks, s_count = (
        state.src,
        state.bMarks,
        state.tShift,
        state.eMarks,
        state.sCount,
    )
    line = start_line + 2
    while line < end_line:
        if s_count[line] < state.blkIndent:
            break
        start = b_marks[line] + t_shift[line]
        if (
            start < e_marks[line]
            and src[start] in _TERMINATOR_STARTS
            and any(rule(state, line, end_line, True) for rule in terminators)
        ):
            break
        text = src[start : e_marks[line]].strip(MD_TRIM_CHARS)
        if not text or state.is_code_block(line):
            break
        columns = _split(text)
        autocompleted += count - len(columns)
        if autocompleted > MAX_AUTOCOMPLETED_CELLS:
            break
        cells = [c.strip(MD_TRIM_CHARS) for c in columns[:count]]
        cells += [""] * (count - len(cells))
        rows.append(tuple(cells))
        row_lines.append(line)
        piped.append("|" in text)
        line += 1

    token = state.push(TOKEN_TYPE, "table", 0)
    token.map = [start_line, line]
    token.meta = {
        "rows": PipeRows(tuple(header), tuple(rows), tuple(row_lines), tuple(piped)),
        "source": src[b_marks[start_line] : e_marks[line - 1]],
    }
    state.parentType = old_parent
    state.line = line
    return True


def use_pipe_tables(md: MarkdownIt) -> MarkdownIt:
    """Swap the stock table rule (same place in the chain, same interruptions) for this one."""
    md.block.ruler.at("table", pipe_table, {"alt": ["paragraph", "reference"]})
    md.enable("table")
    return md
