"""Tables that fit the terminal: columns are dropped by priority until the rest fits, and the
columns that name things (variant, repo, file) never fold.

`--wide` keeps every column; the line is then as long as it needs to be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

# a column that is never dropped
KEEP = 1000
# rich's default cell padding (0, 1) with pad_edge=False: two spaces between columns
GAP = 2

Cell = str | Text


@dataclass
class Column:
    header: str
    cells: Sequence[Cell] = field(default_factory=list)
    priority: int = KEEP
    justify: Literal["left", "right"] = "left"
    # names (variant, repo, file) never fold: a folded name cannot be copied
    name: bool = False

    @property
    def width(self) -> int:
        return max([cell_len(self.header), *(_len(c) for c in self.cells)])


def _len(c: Cell) -> int:
    return c.cell_len if isinstance(c, Text) else cell_len(c)


def table_width(columns: Sequence[Column]) -> int:
    return sum(c.width for c in columns) + GAP * max(len(columns) - 1, 0)


def fit(columns: Sequence[Column], width: int, *, wide: bool = False) -> list[Column]:
    """The columns that fit in `width`, in their order; the lowest priority goes first."""
    keep = list(columns)
    if wide:
        return keep
    while table_width(keep) > width:
        droppable = [c for c in keep if c.priority < KEEP]
        if not droppable:
            break
        # of equal priority, the rightmost goes first
        lowest = min(droppable, key=lambda c: (c.priority, -keep.index(c)))
        keep.remove(lowest)
    return keep


def build(columns: Sequence[Column]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for c in columns:
        table.add_column(
            c.header,
            justify=c.justify,
            no_wrap=c.name,
            overflow="fold",
            min_width=c.width if c.name else None,
        )
    rows = max((len(c.cells) for c in columns), default=0)
    for i in range(rows):
        table.add_row(*(c.cells[i] for c in columns))
    return table


def uniform_tag(tags: Sequence[str | None]) -> str | None:
    """The one source every cell of a column shares, so the header can say it once."""
    present = {t for t in tags if t is not None}
    return present.pop() if len(present) == 1 and None not in tags else None
