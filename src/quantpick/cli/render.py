"""The human form of each command's result: tables and summary lines, drawn with rich.

Results go to stdout, everything else to stderr, through `Out` (output.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from quantpick.cli.output import Out
from quantpick.commands.results import (
    EstimateOut,
    FetchResult,
    ListedVariant,
    ListResult,
    PickResult,
    SearchResult,
    VerifyResult,
)
from quantpick.records import GIB, HubStatus, Source, Variant, VariantKind

_SOURCE_TAG = {
    Source.CARD: "card",
    Source.HUB: "hub",
    Source.NAME: "name",
    Source.ESTIMATE: "est",
    Source.CONFIG: "config",
}


def gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"


def gb(n: int | None) -> str:
    """SI units, as the Hub shows file sizes."""
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def ctx(tokens: int) -> str:
    """16384 -> 16k; a maximum context such as 45875 reads as 44k (rounded down, it must fit)."""
    return f"{tokens // 1024}k" if tokens >= 1024 else str(tokens)


def _bits(v: Variant) -> str:
    if v.bits is None:
        return v.quant_method or "?"
    src = _SOURCE_TAG.get(v.bits_source or Source.CARD, "card")
    head = f" h{v.head_bits:g}" if v.head_bits is not None else ""
    return f"{v.bits:g}{head} ({src})"


def _size(v: Variant) -> str:
    if v.size_bytes is None:
        return "-"
    return f"{gb(v.size_bytes)} ({_SOURCE_TAG.get(v.size_source or Source.CARD, 'card')})"


def _card_columns(variants: Iterable[Variant]) -> list[tuple[str, int | None]]:
    """One column per (cache mode, context) the card gives a VRAM figure for."""
    keys: set[tuple[str, int | None]] = set()
    for v in variants:
        keys.update(("", c) for c in v.vram_bytes)
        keys.update(("~", c) for c in v.vram_derived_bytes)
        for mode, figures in v.vram_bytes_by_cache.items():
            keys.update((mode.value, c) for c in figures)
        if v.vram_unspecified_bytes is not None:
            keys.add(("", None))
    return sorted(keys, key=lambda k: (k[1] or 0, k[0]))


def _card_header(key: tuple[str, int | None]) -> str:
    mode, context = key
    where = "?" if context is None else ctx(context)
    if mode == "~":
        return f"VRAM@{where}*"
    return f"VRAM@{where}" + (f" {mode}" if mode else "")


def _card_cell(v: Variant, key: tuple[str, int | None]) -> str:
    mode, context = key
    if context is None:
        value = v.vram_unspecified_bytes
    elif mode == "":
        value = v.vram_bytes.get(context)
    elif mode == "~":
        value = v.vram_derived_bytes.get(context)
    else:
        value = next(
            (f.get(context) for m, f in v.vram_bytes_by_cache.items() if m.value == mode), None
        )
    return "-" if value is None else f"{value / GIB:.1f}"


def _hub(v: Variant) -> Text:
    styles = {
        HubStatus.PRESENT: ("yes", "green"),
        HubStatus.MISSING: ("MISSING", "bold red"),
        HubStatus.HUB_ONLY: ("hub only", "cyan"),
        HubStatus.UNCHECKED: ("-", "dim"),
    }
    label, style = styles[v.hub_status]
    if v.kind is VariantKind.REPO:
        label, style = "other repo", "dim"
    return Text(label, style=style)


def _name(v: ListedVariant) -> Text:
    t = Text(("▶ " if v.picked else "") + v.name, style="bold" if v.picked else "")
    if v.recommended_by_card:
        t.append(" ★", style="yellow")
    return t


def list_table(result: ListResult) -> Table:
    with_budget = result.budget is not None
    table = Table(box=None, pad_edge=False, header_style="bold")
    # fold, never truncate: a cut-off number ("40…") is worse than a taller row
    table.add_column("variant", overflow="fold")
    table.add_column("format", overflow="fold")
    table.add_column("bits", overflow="fold")
    table.add_column("size", overflow="fold")
    card_cols = _card_columns(result.variants)
    for key in card_cols:
        table.add_column(_card_header(key), justify="right", overflow="fold")
    table.add_column("hub", overflow="fold")
    if with_budget:
        table.add_column("estimate", overflow="fold")
        table.add_column("fits")
        table.add_column("max ctx", overflow="fold")
    for v in result.variants:
        row: list[str | Text] = [_name(v), v.format.value, _bits(v), _size(v)]
        row += [_card_cell(v, key) for key in card_cols]
        row.append(_hub(v))
        if with_budget:
            row += _estimate_cells(v)
        table.add_row(*row)
    return table


def _fits_cell(e: EstimateOut) -> Text:
    if e.fits:
        return Text("yes", style="green")
    if e.partial:
        # LM Studio's words for a llama.cpp offload that leaves layers on the CPU
        return Text(f"partial -ngl {e.gpu_layers}", style="yellow")
    return Text("no", style="red")


def _estimate_cells(v: ListedVariant) -> list[str | Text]:
    e = v.estimate
    if e is None or e.vram_bytes is None:
        return ["-", Text("n/a", style="dim"), "-"]
    fits = _fits_cell(e)
    max_ctx = ctx(e.max_context_tokens) if e.max_context_tokens else "-"
    return [f"{gib(e.vram_bytes)} ({e.provenance})", fits, max_ctx]


def render_list(out: Out, result: ListResult) -> None:
    head = result.repo or "card"
    if result.revision:
        head += f"@{result.revision}"
    out.stdout.print(Text(head, style="bold"))
    if result.cached_at_unix is not None:
        age = _age(time.time() - result.cached_at_unix)
        out.stdout.print(Text(f"offline: from the look-up cached {age} ago", style="yellow"))
    out.stdout.print(list_table(result))
    out.stdout.print(_legend(result))
    _warn_unsized(out, result.variants)
    for w in result.warnings:
        out.warn(w)
    for v in result.variants:
        for w in v.warnings:
            out.warn(f"{v.name}: {w}")


def _warn_unsized(out: Out, variants: Iterable[ListedVariant]) -> None:
    """Why some rows have no estimate: one line per cause, not one per variant."""
    causes: dict[str, list[str]] = {}
    for v in variants:
        if v.estimate is not None and v.estimate.vram_bytes is None and v.estimate.reason:
            causes.setdefault(v.estimate.reason.removeprefix("no estimate: "), []).append(v.name)
    for reason, group in causes.items():
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        out.warn(f"no estimate for {', '.join(group[:3])}{more}: {reason}")


def _legend(result: ListResult) -> Text:
    parts = [
        "sizes: SI GB; VRAM@ctx columns: the card's own figures in GiB (what cards mean by 'GB'),"
        " * = derived from a rule in the card's prose.",
        "(card) = from the model card, (hub) = real bytes on the Hub, (name) = what the name says,"
        " (est) = quantpick's estimate, (config) = from config.json.",
        "★ = recommended by the card.",
    ]
    if result.budget is not None:
        b = result.budget
        parts.append(
            f"estimates at {ctx(b.context_tokens)} context, {b.cache_mode.value} cache, "
            f"llama.cpp flash attention {'off' if b.flash_attn is False else 'on'}, "
            f"budget {gib(b.usable_bytes)} usable ({gib(sum(b.gpu_vram_bytes))} - reserve); "
            "provenance: card = the card's own figure, card-fit = fitted from its other "
            "contexts, formula = weights + KV cache + runtime."
        )
    if result.shape_origin:
        parts.append(f"model shape from {result.shape_origin}.")
    return Text(" ".join(parts), style="dim")


def render_pick(out: Out, result: PickResult) -> None:
    """The name alone on stdout (for `BRANCH=$(quantpick pick ...)`); why, on stderr."""
    if result.pick is not None:
        out.line(result.pick.name)
    for reason in result.reasons:
        out.info(reason)
    r = result.runner_up
    if result.pick is not None and r is not None and r.estimate and r.estimate.vram_bytes:
        short = -(r.estimate.margin_bytes or 0)
        out.info(
            f"runner-up: {r.name}, the next better variant, needs {gib(r.estimate.vram_bytes)} "
            f"({r.estimate.provenance}): {gib(short)} short"
        )


def render_fetch(out: Out, result: FetchResult) -> None:
    for reason in result.reasons:
        out.info(reason)
    if result.dry_run:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("file", "size (hub)", "state, backend"):
            table.add_column(col, overflow="fold")
        for f in result.files:
            table.add_row(f.path, gb(f.size_bytes), f.status)
        out.stdout.print(table)
        out.stdout.print(
            f"{result.repo}@{result.revision} ({result.commit_sha[:12]}) -> {result.local_dir}: "
            f"{gb(result.missing_bytes)} to transfer"
        )
        return
    hashed = sum(f.status == "verified" for f in result.files)
    unverified = sum(f.status == "unverified" for f in result.files)
    trusted = len(result.files) - hashed - unverified
    checked = f"{hashed} hashed and verified"
    if trusted:
        checked += f", {trusted} unchanged since their last check (--verify re-hashes them)"
    if unverified:
        checked += f", {unverified} UNVERIFIED (the Hub gave no hash)"
    out.info(
        f"{result.repo}@{result.revision} ({result.commit_sha[:12]}): "
        f"{len(result.files)} files, {gb(result.transferred_bytes)} transferred, {checked}"
    )
    out.line(result.local_dir)


def render_verify(out: Out, result: VerifyResult) -> None:
    for f in result.files:
        if f.status != "ok":
            out.stderr.print(Text(f"{f.status}: {f.path}", style="red"))
    if result.ok:
        out.line(f"ok: {len(result.files)} files verified (sha256 and size) in {result.local_dir}")


def render_search(out: Out, result: SearchResult) -> None:
    b = result.budget
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("#", "repo", "variant", "format", "runtime", "estimate", "fits", "margin"):
        table.add_column(col, overflow="fold")
    for hit in result.hits:
        v, e = hit.variant, hit.variant.estimate
        if e is None:
            continue
        margin = f"{(e.margin_bytes or 0) / GIB:+.1f} GiB" if e.margin_bytes is not None else "-"
        table.add_row(
            str(hit.rank),
            hit.repo,
            _name(v),
            v.format.value,
            e.runtime.value if e.runtime else "-",
            f"{gib(e.vram_bytes)} ({e.provenance})",
            _fits_cell(e),
            margin,
        )
    out.stdout.print(Text(f"quants of {result.base_model}", style="bold"))
    out.stdout.print(table)
    out.stdout.print(
        Text(
            f"{len(result.repos)} repos; estimates at {ctx(b.context_tokens)} context, "
            f"{b.cache_mode.value} cache, {gib(b.usable_bytes)} usable; provenance: card / "
            "card-fit / formula (see `quantpick list --help`).",
            style="dim",
        )
    )
    for s in result.skipped:
        out.warn(f"skipped {s.repo}: {s.reason}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def lines(items: Iterable[str]) -> str:
    return "\n".join(items)
