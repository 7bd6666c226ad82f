"""How a fetch reports progress: a protocol; cli/render.py implements it with rich.

Calls come from worker threads, concurrently; an implementation must be thread-safe and quick.
"""

from __future__ import annotations

import threading
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, total_bytes: int, have_bytes: int, file_count: int) -> None:
        """Before the first byte: the whole variant's size and how much of it is already here."""

    def file_started(self, path: str, size_bytes: int, have_bytes: int) -> None: ...

    def advance(self, path: str, nbytes: int) -> None:
        """`nbytes` more of `path` arrived (or were checked, for a file already on disk)."""

    def file_done(self, path: str) -> None: ...

    def note(self, path: str, message: str) -> None:
        """Something worth a line: a retry, a stalled connection, a re-download after a bad hash."""

    def finish(self) -> None: ...


class NullProgress:
    def start(self, total_bytes: int, have_bytes: int, file_count: int) -> None:
        pass

    def file_started(self, path: str, size_bytes: int, have_bytes: int) -> None:
        pass

    def advance(self, path: str, nbytes: int) -> None:
        pass

    def file_done(self, path: str) -> None:
        pass

    def note(self, path: str, message: str) -> None:
        pass

    def finish(self) -> None:
        pass


class PlainProgress:
    """One line per event, for logs and for tests that read what happened."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self.bytes_by_path: dict[str, int] = {}

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, total_bytes: int, have_bytes: int, file_count: int) -> None:
        self._line(f"fetch {file_count} files, {total_bytes} bytes ({have_bytes} already here)")

    def file_started(self, path: str, size_bytes: int, have_bytes: int) -> None:
        self._line(f"start {path} {size_bytes} bytes ({have_bytes} already here)")

    def advance(self, path: str, nbytes: int) -> None:
        with self._lock:
            self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + nbytes

    def file_done(self, path: str) -> None:
        self._line(f"done {path}")

    def note(self, path: str, message: str) -> None:
        self._line(f"note {path}: {message}")

    def finish(self) -> None:
        self._line("finished")
