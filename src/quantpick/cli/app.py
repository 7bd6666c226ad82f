"""The command line; the only module that imports typer. Commands parse, call, render, exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from quantpick.cli import examples
from quantpick.cli.handling import EXIT_CODES_HELP, handled, output_mode, print_version
from quantpick.cli.options import (
    CacheDirOpt,
    CacheOpt,
    CardOpt,
    ConfigOpt,
    CtxOpt,
    EndpointOpt,
    FlashAttnOpt,
    FormatOpt,
    JsonOpt,
    OfflineOpt,
    QpCommand,
    QuietOpt,
    RamOpt,
    RepoArg,
    ReserveOpt,
    RevisionOpt,
    RuntimeOpt,
    TimeoutOpt,
    TokenOpt,
    VerboseOpt,
    VramOpt,
    WideOpt,
)
from quantpick.errors import QuantpickError

# Imported lazily inside the commands: `--help` and completion must not pay for pydantic models,
# rich or huggingface_hub (a CLI called in shell loops has to start fast).
# The default VRAM kept free per GPU (GiB): a desktop session and the driver's own headroom.
DEFAULT_RESERVE = "0.5"


app = typer.Typer(
    name="quantpick",
    help="Pick and download the right quantized variant of a Hugging Face model for your GPU.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Pick and download the right quantized variant of a Hugging Face model for your GPU."""


@app.command("list", cls=QpCommand, epilog=examples.LIST)
@handled
def list_cmd(
    repo: RepoArg = None,
    card: CardOpt = None,
    revision: RevisionOpt = None,
    vram: VramOpt = None,
    ctx: CtxOpt = None,
    cache: CacheOpt = "fp16",
    runtime: RuntimeOpt = None,
    reserve: ReserveOpt = DEFAULT_RESERVE,
    flash_attn: FlashAttnOpt = None,
    ram: RamOpt = None,
    config: ConfigOpt = None,
    wide: WideOpt = False,
    output_format: FormatOpt = "auto",
    json: JsonOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Show a repo's quantized variants: the card's table, checked against the Hub."""
    from quantpick.cli import output, render
    from quantpick.commands import args, listing

    out = output.Out(quiet=quiet, verbose=verbose, mode=output_mode(json, output_format), wide=wide)
    hub = args.HubArgs(endpoint, token, cache_dir, offline, verbose, timeout)
    budget = args.BudgetArgs.given(
        vram, ctx, cache, runtime, reserve, default_reserve=DEFAULT_RESERVE,
        flash_attn=flash_attn, ram=ram,
    )  # fmt: skip
    result = listing.list_variants(repo, card, revision, config, hub, budget, out)
    render.render_list(out, result)


@app.command("pick", cls=QpCommand, epilog=examples.PICK)
@handled
def pick_cmd(
    repo: RepoArg = None,
    card: CardOpt = None,
    revision: RevisionOpt = None,
    vram: VramOpt = None,
    ctx: CtxOpt = None,
    cache: CacheOpt = "fp16",
    runtime: RuntimeOpt = None,
    reserve: ReserveOpt = DEFAULT_RESERVE,
    flash_attn: FlashAttnOpt = None,
    ram: RamOpt = None,
    config: ConfigOpt = None,
    output_format: FormatOpt = "auto",
    json: JsonOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Print only the best variant's name that fits (for BRANCH=$(quantpick pick ...))."""
    from quantpick.cli import output, render
    from quantpick.commands import args, pick

    out = output.Out(quiet=quiet, verbose=verbose, mode=output_mode(json, output_format))
    hub = args.HubArgs(endpoint, token, cache_dir, offline, verbose, timeout)
    budget = args.BudgetArgs(vram, ctx, cache, runtime, reserve, flash_attn, ram)
    result = pick.pick(repo, card, revision, config, hub, budget, out)
    try:
        pick.exit_if_nothing_fits(result, out)
    except QuantpickError as err:
        # the reasons, then the error; --json: one document that carries both
        render.render_pick(out, result.model_copy(update={"error": output.error_info(err)}))
        raise
    render.render_pick(out, result)


@app.command("fetch", cls=QpCommand, epilog=examples.FETCH)
@handled
def fetch_cmd(
    repo: Annotated[
        str,
        typer.Argument(
            metavar="REPO_ID",
            help="OWNER/NAME[:BRANCH], OWNER/NAME@REV, hf://OWNER/NAME@REV or a Hub URL "
            "(…/tree/BRANCH, …/blob/REV/FILE).",
            show_default=False,
        ),
    ],
    branch: Annotated[
        str | None,
        typer.Option("--branch", "-b", metavar="BRANCH", help="Take this branch; skip the choice."),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="Take this GGUF file (with its split parts); a unique part of a name, such as "
            "Q4_K_M, is enough.",
        ),
    ] = None,
    search: Annotated[
        bool,
        typer.Option(
            "--search", help="REPO is a base model: fetch the best quant across all its repos."
        ),
    ] = False,
    vram: VramOpt = None,
    ctx: CtxOpt = None,
    cache: CacheOpt = "fp16",
    runtime: RuntimeOpt = None,
    reserve: ReserveOpt = DEFAULT_RESERVE,
    flash_attn: FlashAttnOpt = None,
    ram: RamOpt = None,
    config: ConfigOpt = None,
    local_dir: Annotated[
        str | None,
        typer.Option(
            "--local-dir",
            metavar="DIR",
            envvar="QUANTPICK_LOCAL_DIR",
            help="Where to put the files. Default: $QUANTPICK_MODELS/OWNER/NAME/VARIANT when "
            "QUANTPICK_MODELS is set, else ./OWNER__NAME-VARIANT.",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="The directory holds another repo or variant: replace it (its files removed, "
            "files quantpick did not write kept).",
        ),
    ] = False,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            metavar="REV",
            help="A branch (as `hf download --revision` takes it) or a commit sha to pin "
            "(reproducible CI).",
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="GLOB",
            help="Also fetch the repo's files matching GLOB beside the variant (repeatable).",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="GLOB",
            help="Leave out the variant's files matching GLOB (repeatable).",
            show_default=False,
        ),
    ] = None,
    force_download: Annotated[
        bool,
        typer.Option("--force-download", help="Download every file again, even if present."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (files, sizes) and exit.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="ENGINE",
            help="auto (quantpick's resumable ranged engine for every file, Xet ones over "
            "the Hub's bridge), ranged, hf_transfer (large files), or hub "
            "(huggingface_hub; hf_xet for Xet files, no resume within a file).",
        ),
    ] = "auto",
    max_workers: Annotated[
        int | None,
        typer.Option(
            "--max-workers",
            metavar="N",
            min=1,
            max=64,
            help="Parallel transfers. Default: 2 per CPU, 4 to 8.",
            show_default=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Hash every file already present, whatever earlier checks said."
        ),
    ] = False,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Take files the Hub (a partial mirror) gives no hash for; recorded as unverified.",
        ),
    ] = False,
    wide: WideOpt = False,
    output_format: FormatOpt = "auto",
    json: JsonOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Choose (or take) a variant and download exactly its files, verified; prints the path last."""
    from quantpick.cli import output, render
    from quantpick.commands import args, choose, fetch

    out = output.Out(quiet=quiet, verbose=verbose, mode=output_mode(json, output_format), wide=wide)
    hub = args.HubArgs(endpoint, token, cache_dir, False, verbose, timeout)
    budget = args.BudgetArgs.given(
        vram, ctx, cache, runtime, reserve, default_reserve=DEFAULT_RESERVE,
        flash_attn=flash_attn, ram=ram,
    )  # fmt: skip
    choice = choose.Choice(branch=branch, file=file, search=search)
    opts = fetch.FetchArgs(
        args.local_dir_arg(local_dir),
        revision,
        dry_run,
        backend,
        max_workers,
        replace=replace,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        force=force_download,
        verify=verify,
        allow_unverified=allow_unverified,
    )
    result = fetch.fetch(repo, choice, budget, config, hub, opts, out)
    render.render_fetch(out, result)


@app.command("search", cls=QpCommand, epilog=examples.SEARCH)
@handled
def search_cmd(
    base_model: Annotated[
        str,
        typer.Argument(
            metavar="BASE_MODEL", help="The base model, OWNER/NAME.", show_default=False
        ),
    ],
    vram: VramOpt = None,
    ctx: CtxOpt = None,
    cache: CacheOpt = "fp16",
    runtime: RuntimeOpt = None,
    reserve: ReserveOpt = DEFAULT_RESERVE,
    flash_attn: FlashAttnOpt = None,
    ram: RamOpt = None,
    quant_formats: Annotated[
        str | None,
        typer.Option(
            "--quant-format",
            metavar="FORMATS",
            help="Only these formats, e.g. exl2,gptq,gguf.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=200, help="Repos to read.")
    ] = 30,
    wide: WideOpt = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="auto|human|json|quiet",
            help="Output, as for the other commands; a list of quant formats (exl2,gguf) is "
            "read as --quant-format, as before.",
        ),
    ] = "auto",
    json: JsonOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Rank the variants of every quantized repo of a base model: the best that fits first."""
    from quantpick.cli import output, render_search
    from quantpick.cli.output import OUTPUT_FORMATS
    from quantpick.commands import args, search

    if output_format not in OUTPUT_FORMATS:
        # `search --format exl2,gguf` filtered quant formats before --format meant the output
        quant_formats, output_format = quant_formats or output_format, "auto"
    out = output.Out(quiet=quiet, verbose=verbose, mode=output_mode(json, output_format), wide=wide)
    hub = args.HubArgs(endpoint, token, cache_dir, False, verbose, timeout)
    budget = args.BudgetArgs(vram, ctx, cache, runtime, reserve, flash_attn, ram)
    result = search.search(base_model, budget, quant_formats, limit, hub)
    render_search.render_search(out, result)


@app.command("verify", cls=QpCommand, epilog=examples.VERIFY)
@handled
def verify_cmd(
    local_dir: Annotated[
        Path,
        typer.Argument(
            metavar="LOCAL_DIR",
            help="A directory written by `quantpick fetch`.",
            show_default=False,
        ),
    ],
    output_format: FormatOpt = "auto",
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Re-check every file of a fetched variant against its manifest (sizes and sha256)."""
    from quantpick.cli import output, render
    from quantpick.commands import verify

    out = output.Out(quiet=quiet, mode=output_mode(json, output_format))
    result = verify.verify(local_dir)
    try:
        verify.exit_if_corrupt(result)
    except QuantpickError as err:
        render.render_verify(out, result.model_copy(update={"error": output.error_info(err)}))
        raise
    render.render_verify(out, result)


def main() -> None:
    app()
