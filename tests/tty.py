"""Run the real `quantpick` on pseudo-terminals of a given width: stdout and stderr each on a
pty of their own (so a test still tells them apart), stdin closed. No dependence on the width of
the developer's terminal: the size is set on the pty, and COLUMNS/LINES are removed."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from qp import run_qp_env


@dataclass
class TtyRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stdout_lines(self) -> list[str]:
        return screen_lines(self.stdout)

    @property
    def stderr_lines(self) -> list[str]:
        return screen_lines(self.stderr)

    @property
    def stdout_text(self) -> str:
        """The screen as one line of words: what was said, however it wrapped."""
        return " ".join(" ".join(line.split()) for line in self.stdout_lines)

    @property
    def stderr_text(self) -> str:
        return " ".join(" ".join(line.split()) for line in self.stderr_lines)


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows, line by line: escapes dropped, carriage returns overwrite."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", raw)
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        lines.append(line.rsplit("\r", 1)[-1])
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _pty(columns: int, rows: int) -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, slave


def run_tty(
    *args: str | Path,
    columns: int,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    rows: int = 50,
    on_output: Callable[[str, subprocess.Popen[bytes]], bool] | None = None,
) -> TtyRun:
    """`on_output(stderr_so_far, proc)` is called as stderr grows; True stops calling it."""
    out_m, out_s = _pty(columns, rows)
    err_m, err_s = _pty(columns, rows)
    full_env = run_qp_env(env)
    full_env.pop("LINES", None)
    full_env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantpick", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=out_s,
        stderr=err_s,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(out_s)
    os.close(err_s)
    chunks: dict[int, bytearray] = {out_m: bytearray(), err_m: bytearray()}
    open_fds = [out_m, err_m]
    deadline = time.monotonic() + timeout
    watching = on_output is not None
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(open_fds, [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    open_fds.remove(fd)
                    continue
                chunks[fd] += data
                if watching and fd == err_m and on_output is not None:
                    watching = not on_output(chunks[err_m].decode(errors="replace"), proc)
            if not ready and proc.poll() is not None and not open_fds:
                break
        if open_fds:
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError(f"quantpick {' '.join(map(str, args))} ran past {timeout} s")
        code = proc.wait(timeout=10)
    finally:
        os.close(out_m)
        os.close(err_m)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return TtyRun(
        code, chunks[out_m].decode(errors="replace"), chunks[err_m].decode(errors="replace")
    )
