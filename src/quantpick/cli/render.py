"""The human form of each command's result: tables and summary lines, drawn with rich.

Results go to stdout, everything else to stderr, through `Out` (output.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text

from quantpick.cli import tables
from quantpick.cli.output import Out
from quantpick.commands.results import (
    EstimateOut,
    FetchResult,
    FileStatus,
    ListedVariant,
    ListResult,
    PickResult,
    VerifyResult,
)
from quantpick.records import GIB, Format, HubStatus, Runtime, Source, Variant, VariantKind

_SOURCE_TAG = {
    Source.CARD: "card",
    Source.HUB: "hub",
    Source.NAME: "name",
    Source.ESTIMATE: "est",
    Source.CONFIG: "config",
    Source.HEADER: "header",
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


def _tag(source: Source | None) -> str:
    return _SOURCE_TAG.get(source or Source.CARD, "card")


def _bits_value(v: Variant) -> str:
    if v.bits is None:
        return v.quant_method or "?"
    head = f" h{v.head_bits:g}" if v.head_bits is not None else ""
    return f"{v.bits:g}{head}"


def _sourced_column(
    header: str, values: list[str], tags: list[str | None], priority: int
) -> tables.Column:
    """A column of numbers with their source: said once in the header when every row shares it."""
    shared = tables.uniform_tag(tags)
    if shared is not None:
        return tables.Column(f"{header} ({shared})", list(values), priority)
    cells: list[tables.Cell] = [
        v if t is None else f"{v} ({t})" for v, t in zip(values, tags, strict=True)
    ]
    return tables.Column(header, cells, priority)


def _bytes_column(
    header: str, sized: list[tuple[int | None, Source | None]], priority: int
) -> tables.Column:
    """Byte counts in SI units with their source; '-' where none is known."""
    return _sourced_column(
        header,
        [gb(n) if n is not None else "-" for n, _ in sized],
        [None if n is None else _tag(source) for n, source in sized],
        priority,
    )


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


def _card_priority(key: tuple[str, int | None], asked: int | None) -> int:
    """The card's column at the asked context outlives the others; the nearest go last."""
    context = key[1] or 0
    if asked is None:
        return 50 - min(context // 1024, 40) // 8
    if context == asked and key[0] in ("", "fp16"):
        return 55
    return 20 - min(abs(context - asked) // 1024, 19)


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


def name_cell(v: ListedVariant) -> Text:
    t = Text(("▶ " if v.picked else "") + v.name, style="bold" if v.picked else "")
    if v.recommended_by_card:
        t.append(" ★", style="yellow")
    return t


def list_columns(result: ListResult) -> list[tables.Column]:
    vs = result.variants
    asked = result.budget.context_tokens if result.budget else None
    cols = [tables.Column("variant", [name_cell(v) for v in vs], name=True)]
    formats = {v.format for v in vs}
    if len(formats) > 1:
        cols.append(tables.Column("format", [v.format.value for v in vs], 30))
    cols.append(
        _sourced_column(
            "bits",
            [_bits_value(v) for v in vs],
            [None if v.bits is None else _tag(v.bits_source) for v in vs],
            40,
        )
    )
    cols.append(_bytes_column("size", [(v.size_bytes, v.size_source) for v in vs], 60))
    if any(v.weights_source is Source.HEADER for v in vs):
        # the tensors' bytes from the files' headers: useful, but the first to go at 80 columns
        cols.append(_bytes_column("weights", [(v.weights_bytes, v.weights_source) for v in vs], 10))
    for key in _card_columns(vs):
        cols.append(
            tables.Column(
                _card_header(key),
                [_card_cell(v, key) for v in vs],
                _card_priority(key, asked),
                justify="right",
            )
        )
    cols.append(tables.Column("hub", [_hub(v) for v in vs], 45))
    if result.budget is not None:
        cells = [_estimate_cells(v) for v in vs]
        cols.append(tables.Column("estimate", [c[0] for c in cells], 85))
        cols.append(tables.Column("fits", [c[1] for c in cells], 90))
        cols.append(tables.Column("max ctx", [c[2] for c in cells], 70, justify="right"))
    return cols


def fits_cell(e: EstimateOut) -> Text:
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
    fits = fits_cell(e)
    max_ctx = ctx(e.max_context_tokens) if e.max_context_tokens else "-"
    return [f"{gib(e.vram_bytes)} ({e.provenance})", fits, max_ctx]


def print_table(out: Out, columns: list[tables.Column]) -> list[tables.Column]:
    shown = tables.fit(columns, out.stdout.width, wide=out.wide)
    width = out.stdout.width
    # --wide: the table as wide as its columns; the terminal wraps the lines, rich must not
    out.stdout.width = max(width, tables.table_width(shown))
    try:
        out.stdout.print(tables.build(shown), crop=False)
    finally:
        out.stdout.width = width
    return shown


def render_list(out: Out, result: ListResult) -> None:
    if out.mode == "json":
        out.json(result)
    elif out.mode == "quiet":
        for v in result.variants:
            out.line(v.name)
    else:
        _list_human(out, result)
    _warn_unsized(out, result.variants)
    for w in result.warnings:
        out.warn(w)
    for v in result.variants:
        for w in v.warnings:
            out.warn(f"{v.name}: {w}")


def _list_human(out: Out, result: ListResult) -> None:
    head = result.repo or "card"
    if result.revision:
        head += f"@{result.revision}"
    formats = {v.format.value for v in result.variants}
    if len(formats) == 1:
        head += f" ({formats.pop()})"
    out.stdout.print(Text(head, style="bold"), soft_wrap=True)
    if result.cached_at_unix is not None:
        age = _age(time.time() - result.cached_at_unix)
        out.stdout.print(Text(f"offline: from the look-up cached {age} ago", style="yellow"))
    columns = list_columns(result)
    shown = print_table(out, columns)
    out.stdout.print(_legend(result, shown, dropped=len(columns) - len(shown)))


def _warn_unsized(out: Out, variants: Iterable[ListedVariant]) -> None:
    """Why some rows have no estimate: one line per cause, not one per variant."""
    causes: dict[str, list[str]] = {}
    for v in variants:
        if v.estimate is not None and v.estimate.vram_bytes is None and v.estimate.reason:
            causes.setdefault(v.estimate.reason.removeprefix("no estimate: "), []).append(v.name)
    for reason, group in causes.items():
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        out.warn(f"no estimate for {', '.join(group[:3])}{more}: {reason}")


_PROVENANCE = {
    "card-fit": "card-fit = fitted from the card's other contexts",
    "formula": "formula = weights + KV cache + runtime",
}

_TAG_MEANING = {
    "card": "(card) = from the model card",
    "hub": "(hub) = real bytes on the Hub",
    "name": "(name) = what the name says",
    "est": "(est) = quantpick's estimate",
    "config": "(config) = from config.json",
    "header": "(header) = the tensors' bytes in the files' own headers",
}


def _legend(result: ListResult, shown: list[tables.Column], *, dropped: int) -> Text:
    """Only what the table on screen uses: a legend for columns that are not there is noise."""
    text = " ".join([c.header for c in shown] + [str(cell) for c in shown for cell in c.cells])
    headers = [c.header for c in shown]
    parts = ["sizes: SI GB."] if any(h.startswith("size") for h in headers) else []
    if any(h.startswith("VRAM@") for h in headers):
        derived = " * = derived from a rule in the card's prose." if "*" in text else ""
        parts.append("VRAM@ctx: the card's own figures in GiB (what cards mean by 'GB')." + derived)
    tags = [meaning for tag, meaning in _TAG_MEANING.items() if f"({tag})" in text]
    if tags:
        parts.append(", ".join(tags) + ".")
    if "★" in text:
        parts.append("★ = recommended by the card.")
    if result.budget is not None:
        b = result.budget
        # flash attention is a llama.cpp setting: said only where a llama.cpp estimate is shown
        llama = b.runtime is Runtime.LLAMACPP or any(
            v.format in (Format.GGUF, Format.GGML)
            or (v.estimate is not None and v.estimate.runtime is Runtime.LLAMACPP)
            for v in result.variants
        )
        fa = (
            f"llama.cpp flash attention {'off' if b.flash_attn is False else 'on'}, "
            if llama
            else ""
        )
        parts.append(
            f"estimates at {ctx(b.context_tokens)} context, {b.cache_mode.value} cache, {fa}"
            f"budget {gib(b.usable_bytes)} usable ({gib(sum(b.gpu_vram_bytes))} - reserve)"
            + "".join(f"; {m}" for p, m in _PROVENANCE.items() if f"({p})" in text)
            + "."
        )
    if result.shape_origin and result.budget is not None:
        parts.append(f"model shape from {result.shape_origin}.")
    if dropped:
        parts.append(f"{dropped} more columns with --wide or --json.")
    return Text(" ".join(parts), style="dim")


def render_pick(out: Out, result: PickResult) -> None:
    """The name alone on stdout (for `BRANCH=$(quantpick pick ...)`); why, on stderr."""
    if out.mode == "json":
        out.json(result)
    elif result.pick is not None:
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
    """The reasons were printed before the first byte (commands/fetch.py); here, the outcome."""
    if out.mode == "json":
        out.json(result)
        return
    if out.mode == "quiet":
        if not result.dry_run:
            out.line(result.local_dir)
        return
    if result.dry_run:
        print_table(
            out,
            [
                tables.Column("file", [f.path for f in result.files], name=True),
                tables.Column("size (hub)", [gb(f.size_bytes) for f in result.files], 80),
                tables.Column("state", [f.status.value for f in result.files], 70),
                tables.Column("backend", [f.backend or "-" for f in result.files], 40),
            ],
        )
        out.stdout.print(
            f"{result.repo}@{result.revision} ({result.commit_sha[:12]}) -> {result.local_dir}: "
            f"{gb(result.missing_bytes)} to transfer",
            soft_wrap=True,
        )
        return
    hashed = sum(f.status is FileStatus.VERIFIED for f in result.files)
    unverified = sum(f.status is FileStatus.UNVERIFIED for f in result.files)
    trusted = len(result.files) - hashed - unverified
    checked = f"{hashed} hashed and verified"
    if trusted:
        checked += f", {trusted} unchanged since their last check (--verify re-hashes them)"
    if unverified:
        checked += f", {unverified} UNVERIFIED (the Hub gave no hash)"
    resumed = (
        f" (resumed: {gb(result.resumed_bytes)} were already here)" if result.resumed_bytes else ""
    )
    noun = "file" if len(result.files) == 1 else "files"
    out.info(
        f"{result.repo}@{result.revision} ({result.commit_sha[:12]}): "
        f"{len(result.files)} {noun}, {gb(result.transferred_bytes)} transferred{resumed}, "
        + checked
    )
    out.line(result.local_dir)


def render_verify(out: Out, result: VerifyResult) -> None:
    if out.mode == "json":
        out.json(result)
        return
    for f in result.files:
        if f.status is not FileStatus.OK:
            out.stderr.print(Text(f"{f.status.value}: {f.path}", style="red"))
    if result.ok and out.mode == "human":
        noun = "file" if len(result.files) == 1 else "files"
        out.line(f"ok: {len(result.files)} {noun} verified (sha256 and size) in {result.local_dir}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def lines(items: Iterable[str]) -> str:
    return "\n".join(items)
