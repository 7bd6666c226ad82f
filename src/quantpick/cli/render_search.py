"""The human form of `search`: every quantizer's variants of one model, ranked together."""

from __future__ import annotations

from rich.text import Text

from quantpick.cli import tables
from quantpick.cli.output import Out
from quantpick.cli.render import ctx, fits_cell, gib, name_cell, print_table
from quantpick.commands.results import (
    SearchResult,
)
from quantpick.records import GIB


def render_search(out: Out, result: SearchResult) -> None:
    if out.mode == "json":
        out.json(result)
    elif out.mode == "quiet":
        for hit in result.hits:
            out.line(f"{hit.repo}\t{hit.variant.name}")
    else:
        _search_human(out, result)
    for s in result.skipped:
        out.warn(f"skipped {s.repo}: {s.reason}")


def _search_human(out: Out, result: SearchResult) -> None:
    b = result.budget
    hits = [h for h in result.hits if h.variant.estimate is not None]
    ests = [h.variant.estimate for h in hits]
    margins = [
        f"{(e.margin_bytes or 0) / GIB:+.1f} GiB" if e and e.margin_bytes is not None else "-"
        for e in ests
    ]
    columns = [
        tables.Column("#", [str(h.rank) for h in hits], 10, justify="right"),
        tables.Column("repo", [h.repo for h in hits], name=True),
        tables.Column("variant", [name_cell(h.variant) for h in hits], name=True),
        tables.Column("format", [h.variant.format.value for h in hits], 30),
        tables.Column("runtime", [e.runtime.value if e and e.runtime else "-" for e in ests], 20),
        tables.Column(
            "estimate", [f"{gib(e.vram_bytes)} ({e.provenance})" if e else "-" for e in ests], 85
        ),
        tables.Column(
            "fits",
            [fits_cell(e) if e else Text("no", style="red") for e in ests],
            90,
        ),
        tables.Column("margin", margins, 50, justify="right"),
    ]
    out.stdout.print(Text(f"quants of {result.base_model}", style="bold"), soft_wrap=True)
    shown = print_table(out, columns)
    dropped = len(columns) - len(shown)
    more = f" {dropped} more columns with --wide or --json." if dropped else ""
    out.stdout.print(
        Text(
            f"{len(result.repos)} repos; estimates at {ctx(b.context_tokens)} context, "
            f"{b.cache_mode.value} cache, {gib(b.usable_bytes)} usable; card = the card's own "
            "figure, card-fit = fitted from its other contexts, formula = weights + KV cache + "
            f"runtime.{more}",
            style="dim",
        )
    )
