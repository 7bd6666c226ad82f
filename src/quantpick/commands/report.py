"""How a command reports while it works: warnings, notes and download progress.

cli/ implements this with rich (cli/render.py `Out`); core code only sees the protocol, so nothing
below cli/ imports typer or rich, and tests can pass their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from quantpick.download.progress import Progress


class Reporter(Protocol):
    def warn(self, message: str) -> None:
        """A warning line on stderr (silenced by --quiet)."""

    def info(self, message: str) -> None:
        """A note on stderr (silenced by --quiet)."""

    def progress(self) -> Progress:
        """Where a download reports bytes: bars on a terminal, nothing otherwise."""
