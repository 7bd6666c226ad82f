"""The command line; the only module that imports typer. Commands parse, call, render, exit."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer

from quantpick.errors import ExitCode, QuantpickError

# Imported lazily inside the commands: `--help` and completion must not pay for pydantic models,
# rich or huggingface_hub (a CLI called in shell loops has to start fast).
if TYPE_CHECKING:
    from quantpick.cli.output import Out

# The default VRAM kept free per GPU (GiB): a desktop session and the driver's own headroom.
DEFAULT_RESERVE = "0.5"

P = ParamSpec("P")
R = TypeVar("R")

EXIT_CODES_HELP = """\b
Exit codes:
  0    success
  2    usage error (bad flag or value)
  3    the card lists no variant
  4    nothing fits the VRAM budget
  5    repo, revision, file or directory not found
  6    authentication or gated-repo access refused
  7    network or server error (after retries)
  8    integrity failure (size or sha256 mismatch)
  9    not enough disk space
  10   target directory locked by another quantpick
  11   --vram auto found no GPU
  12   cannot size any variant (a config.json or a size is missing)
  130  interrupted (Ctrl-C); run again to resume
  143  terminated (SIGTERM); run again to resume
"""

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


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress on stderr.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log each Hub request to stderr (tokens redacted).")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Hub token. Default: $HF_TOKEN, then the login stored by `hf auth login`.",
        show_default=False,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", envvar="HF_ENDPOINT", help="Hub or mirror URL.", show_default=False),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Cache directory. Default: $HF_HOME/hub.", show_default=False),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline", help="Answer from the last successful look-up (also $HF_HUB_OFFLINE=1)."
    ),
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Branch, tag or commit sha to read the card from.")
]
CardOpt = Annotated[
    Path | None,
    typer.Option("--card", help="Parse a local model card (README.md) instead of a Hub repo."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="The model's config.json, for the shape (layers, KV heads, ...)."
    ),
]
VramOpt = Annotated[
    str | None,
    typer.Option(
        "--vram",
        envvar="QUANTPICK_VRAM",
        help="GPU memory: 24, 24GB, 24GiB (all 2^30 bytes), 24576MiB, 24,24 for two GPUs, or "
        "auto (what is free now, per NVML or nvidia-smi; --reserve still applies).",
        show_default=False,
    ),
]
CtxOpt = Annotated[
    str | None,
    typer.Option(
        "--ctx",
        envvar="QUANTPICK_CTX",
        help="Context length in tokens: 4k, 16K, 16384, 32k. Default: 4k.",
        show_default=False,
    ),
]
CacheOpt = Annotated[
    str,
    typer.Option("--cache", help="KV-cache mode: fp16, fp8, q8, q6, q4."),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="exllamav3, exllamav2, transformers, llama.cpp or vllm. Default: by format "
        "(exl3: exllamav3, exl2: exllamav2, gptq/awq: transformers, gguf: llama.cpp).",
        show_default=False,
    ),
]
FlashAttnOpt = Annotated[
    str | None,
    typer.Option(
        "--flash-attn",
        help="llama.cpp flash attention: on or off. Default: on (llama.cpp's -fa auto on CUDA).",
        show_default=False,
    ),
]
RamOpt = Annotated[
    str | None,
    typer.Option(
        "--ram",
        help="System memory for a GGUF partial offload (GiB): layers that miss the GPU run there.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        envvar="QUANTPICK_TIMEOUT",
        help="Seconds to wait for a server to connect or send anything before retrying. "
        "Default: 30.",
        show_default=False,
    ),
]
ReserveOpt = Annotated[
    str,
    typer.Option(
        "--reserve", help="VRAM kept free per GPU for the desktop and other programs (GiB)."
    ),
]


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Our own errors become `error:`/`hint:` lines and their exit code; a bug still tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except QuantpickError as err:
            _out(quiet=False).error(err)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            _out(quiet=False).error(
                QuantpickError("interrupted", "run the same command again to resume")
            )
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return wrapper


def _out(*, quiet: bool, verbose: bool = False) -> Out:
    from quantpick.cli.output import Out

    return Out(quiet=quiet, verbose=verbose)


@app.command("list")
@handled
def list_cmd(
    repo: Annotated[str | None, typer.Argument(help="OWNER/NAME or OWNER/NAME:BRANCH.")] = None,
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

    out = output.Out(quiet=quiet, verbose=verbose)
    hub = args.HubArgs(endpoint, token, cache_dir, offline, verbose, timeout)
    budget = args.BudgetArgs.given(
        vram, ctx, cache, runtime, reserve, default_reserve=DEFAULT_RESERVE,
        flash_attn=flash_attn, ram=ram,
    )  # fmt: skip
    result = listing.list_variants(repo, card, revision, config, hub, budget, out)
    if json:
        out.json(result)
    else:
        render.render_list(out, result)


@app.command("pick")
@handled
def pick_cmd(
    repo: Annotated[str | None, typer.Argument(help="OWNER/NAME.")] = None,
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

    out = output.Out(quiet=quiet, verbose=verbose)
    hub = args.HubArgs(endpoint, token, cache_dir, offline, verbose, timeout)
    budget = args.BudgetArgs(vram, ctx, cache, runtime, reserve, flash_attn, ram)
    result = pick.pick(repo, card, revision, config, hub, budget, out)
    out.json(result) if json else render.render_pick(out, result)
    pick.exit_if_nothing_fits(result, out)


@app.command("fetch")
@handled
def fetch_cmd(
    repo: Annotated[str, typer.Argument(help="OWNER/NAME or OWNER/NAME:BRANCH.")],
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", help="Take this branch; skip the choice.")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Take this GGUF file (with its split parts)."),
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
            envvar="QUANTPICK_LOCAL_DIR",
            help="Where to put the files. Default: ./<repo-name>-<variant>.",
            show_default=False,
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Pin a commit sha (reproducible CI) or another branch."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (files, sizes) and exit.")
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="auto (quantpick's resumable ranged engine for large files and Xet ones, over "
            "the Hub's bridge; huggingface_hub for small ones), ranged, hf_transfer, or hub "
            "(huggingface_hub; hf_xet for Xet files, no resume within a file).",
        ),
    ] = "auto",
    max_workers: Annotated[
        int | None,
        typer.Option(
            "--max-workers",
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
    from quantpick.commands import args, fetch

    out = output.Out(quiet=quiet, verbose=verbose)
    hub = args.HubArgs(endpoint, token, cache_dir, False, verbose, timeout)
    budget = args.BudgetArgs.given(
        vram, ctx, cache, runtime, reserve, default_reserve=DEFAULT_RESERVE,
        flash_attn=flash_attn, ram=ram,
    )  # fmt: skip
    choice = fetch.Choice(branch=branch, file=file, search=search)
    opts = fetch.FetchArgs(
        args.local_dir_arg(local_dir),
        revision,
        dry_run,
        backend,
        max_workers,
        verify,
        allow_unverified,
    )
    result = fetch.fetch(repo, choice, budget, config, hub, opts, out)
    out.json(result) if json else render.render_fetch(out, result)


@app.command("search")
@handled
def search_cmd(
    base_model: Annotated[str, typer.Argument(help="The base model, OWNER/NAME.")],
    vram: VramOpt = None,
    ctx: CtxOpt = None,
    cache: CacheOpt = "fp16",
    runtime: RuntimeOpt = None,
    reserve: ReserveOpt = DEFAULT_RESERVE,
    flash_attn: FlashAttnOpt = None,
    ram: RamOpt = None,
    formats: Annotated[
        str | None,
        typer.Option(
            "--format", help="Only these formats, e.g. exl2,gptq,gguf.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="Repos to read.")] = 30,
    json: JsonOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Rank the variants of every quantized repo of a base model: the best that fits first."""
    from quantpick.cli import output, render
    from quantpick.commands import args, search

    out = output.Out(quiet=quiet, verbose=verbose)
    hub = args.HubArgs(endpoint, token, cache_dir, False, verbose, timeout)
    budget = args.BudgetArgs(vram, ctx, cache, runtime, reserve, flash_attn, ram)
    result = search.search(base_model, budget, formats, limit, hub)
    out.json(result) if json else render.render_search(out, result)


@app.command("verify")
@handled
def verify_cmd(
    local_dir: Annotated[Path, typer.Argument(help="A directory written by `quantpick fetch`.")],
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Re-check every file of a fetched variant against its manifest (sizes and sha256)."""
    from quantpick.cli import output, render
    from quantpick.commands import verify

    out = output.Out(quiet=quiet)
    result = verify.verify(local_dir)
    out.json(result) if json else render.render_verify(out, result)
    verify.exit_if_corrupt(result)


def main() -> None:
    app()
