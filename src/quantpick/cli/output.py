"""Where quantpick's output goes: results to stdout, everything else (warnings, progress, errors) to
stderr. Colour and progress appear only on a terminal; NO_COLOR is honoured by rich itself.

`Out` implements commands/report.py's `Reporter`, and `RichProgress` download/progress.py's
`Progress`: the core reports through those protocols and never imports rich.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBar
from rich.text import Text

from quantpick.commands.results import Envelope, ErrorInfo, ErrorResult
from quantpick.download.progress import NullProgress, PlainProgress, Progress
from quantpick.errors import QuantpickError

OUTPUT_FORMATS = ("auto", "human", "json", "quiet")


def current(*, quiet: bool = False) -> Out:
    """The command's own sink (its live progress closes before an error prints), else a new one."""
    return _CURRENT[0] if _CURRENT else Out(quiet=quiet)


class Out:
    """The two sinks. `quiet` silences stderr chatter, never errors.

    `mode` is the --format: human (tables, lines), json (one envelope), quiet (names only, no
    stderr chatter). `wide` keeps every table column, whatever the terminal's width.
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        verbose: bool = False,
        mode: str = "human",
        wide: bool = False,
    ) -> None:
        self.mode = "human" if mode == "auto" else mode
        self.wide = wide
        self.stdout = Console(highlight=False, width=_width())
        self.stderr = Console(stderr=True, highlight=False)
        # piped, diagnostics are single lines a script may grep; on a terminal they wrap at words
        self.stderr.soft_wrap = not self.stderr.is_terminal
        self.quiet = quiet or self.mode == "quiet"
        self.verbose = verbose
        self._live: RichProgress | None = None
        self.printed_json = False
        _CURRENT[:] = [self]

    @property
    def interactive(self) -> bool:
        return self.stderr.is_terminal and not self.quiet

    def progress(self) -> Progress:
        """Bars on a terminal; a line per event with --verbose; otherwise nothing."""
        if self.interactive:
            self._live = RichProgress(self.stderr)
            return self._live
        if self.verbose and not self.quiet:
            return PlainProgress(sys.stderr)
        return NullProgress()

    def stop_progress(self) -> None:
        """Close a live progress display, so what follows starts on a fresh line."""
        if self._live is not None:
            self._live.finish()
            self._live = None

    def json(self, result: Envelope) -> None:
        self.printed_json = True
        sys.stdout.write(result.model_dump_json(by_alias=True, indent=2) + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        """A bare result line on stdout (e.g. the picked branch name), no markup, no wrapping."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.stderr.print(Text(f"warning: {message}", style="yellow"))

    def info(self, message: str) -> None:
        if not self.quiet:
            self.stderr.print(Text(message, style="dim"))

    def json_error(self, command: str, err: QuantpickError) -> None:
        """The error document, unless the command's own document (which says it) is out."""
        if not self.printed_json:
            self.json(ErrorResult(command=command, error=error_info(err)))

    def error(self, err: QuantpickError) -> None:
        self.stop_progress()
        self.stderr.print(Text(f"error: {err.message}", style="bold red"))
        if err.hint:
            self.stderr.print(Text(f"hint: {err.hint}"))


_CURRENT: list[Out] = []


def error_info(err: QuantpickError) -> ErrorInfo:
    kind = type(err).__name__.removesuffix("_").removesuffix("Error") or "Quantpick"
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
    return ErrorInfo(exit_code=int(err.exit_code), kind=snake, message=err.message, hint=err.hint)


def _width() -> int | None:
    """Piped output gets room for the whole table; a terminal (or $COLUMNS) keeps its own width."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return 160


class RichProgress:
    """Per-file bars and a total, with speed and ETA. Called from worker threads: rich locks."""

    def __init__(self, console: Console) -> None:
        self._bar = RichBar(
            TextColumn("{task.description}", table_column=None),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._total: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}

        self._console = console
        self._stopped = False

    def start(self, total_bytes: int, have_bytes: int, file_count: int) -> None:
        self._bar.start()
        self._total = self._bar.add_task(
            f"total ({file_count} files)", total=total_bytes, completed=have_bytes
        )

    def file_started(self, path: str, size_bytes: int, have_bytes: int) -> None:
        # the bar, sizes, speed and ETA take about 60 columns; the name gets the rest
        room = max(self._console.width - 60, 24)
        name = path if len(path) <= room else "…" + path[-(room - 1) :]
        self._tasks[path] = self._bar.add_task(name, total=size_bytes, completed=have_bytes)

    def advance(self, path: str, nbytes: int) -> None:
        task = self._tasks.get(path)
        if task is not None:
            self._bar.advance(task, nbytes)
        if self._total is not None:
            self._bar.advance(self._total, nbytes)

    def file_done(self, path: str) -> None:
        task = self._tasks.pop(path, None)
        if task is not None:
            self._bar.remove_task(task)

    def note(self, path: str, message: str) -> None:
        self._bar.console.print(Text(f"{path}: {message}", style="yellow"))

    def finish(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._bar.stop()
