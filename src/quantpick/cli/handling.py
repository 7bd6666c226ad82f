"""How a command ends: quantpick's own errors become `error:`/`hint:` lines (and, with --json, an
error document) and their documented exit code; a bug still shows its traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from quantpick.errors import ExitCode, QuantpickError

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
  13   target directory holds another repo or variant (--replace)
  130  interrupted (Ctrl-C); run again to resume
  143  terminated (SIGTERM); run again to resume
"""


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Our own errors become `error:`/`hint:` lines and their exit code; a bug still tracebacks."""

    command = fn.__name__.removesuffix("_cmd")

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except QuantpickError as err:
            _fail(command, err, kwargs)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            stop = QuantpickError("interrupted", "run the same command again to resume")
            stop.exit_code = ExitCode.INTERRUPTED
            _fail(command, stop, kwargs)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return wrapper


def _fail(command: str, err: QuantpickError, kwargs: dict[str, object]) -> None:
    """The error lines on stderr; with --json also an error document on stdout, for scripts."""
    from quantpick.cli import output

    out = output.current()
    out.error(err)
    fmt = kwargs.get("output_format")
    if kwargs.get("json") or fmt == "json":
        out.json_error(command, err)


def output_mode(json: bool, fmt: str) -> str:
    from quantpick.cli.output import OUTPUT_FORMATS
    from quantpick.errors import UsageError

    if json:
        return "json"
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", f"use one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"quantpick {version('quantpick')}")
        except PackageNotFoundError:
            typer.echo("quantpick (not installed)")
        raise typer.Exit()
