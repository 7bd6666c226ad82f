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

from quantpick.commands.results import Envelope
from quantpick.download.progress import NullProgress, PlainProgress, Progress
from quantpick.errors import QuantpickError


class Out:
    """The two sinks. `quiet` silences stderr chatter, never errors."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.stdout = Console(highlight=False, width=_width())
        # diagnostics are single lines a script may grep: never wrap them
        self.stderr = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.verbose = verbose

    @property
    def interactive(self) -> bool:
        return self.stderr.is_terminal and not self.quiet

    def progress(self) -> Progress:
        """Bars on a terminal; a line per event with --verbose; otherwise nothing."""
        if self.interactive:
            return RichProgress(self.stderr)
        if self.verbose and not self.quiet:
            return PlainProgress(sys.stderr)
        return NullProgress()

    def json(self, result: Envelope) -> None:
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

    def error(self, err: QuantpickError) -> None:
        self.stderr.print(Text(f"error: {err.message}", style="bold red"))
        if err.hint:
            self.stderr.print(Text(f"hint: {err.hint}"))


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

    def start(self, total_bytes: int, have_bytes: int, file_count: int) -> None:
        self._bar.start()
        self._total = self._bar.add_task(
            f"total ({file_count} files)", total=total_bytes, completed=have_bytes
        )

    def file_started(self, path: str, size_bytes: int, have_bytes: int) -> None:
        name = path if len(path) <= 40 else "…" + path[-39:]
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
        self._bar.stop()
