"""HubProcess: the loopback Hub in a child process, with HubServer's API over /_testing/.

hf_transfer holds the GIL for a whole download, so a server thread in the same process never gets
to answer it: anything that may download through hf_transfer needs the Hub in another process.
Benchmarks want that too, so that client and server do not share one interpreter.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlsplit

from quantpick.testing.faults import Fault, FaultQueries
from quantpick.testing.log import RequestQueries, RequestRecord


class _Control:
    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            payload = None if body is None else json.dumps(body).encode()
            conn.request(method, f"/_testing/{path}", body=payload)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise RuntimeError(f"loopback hub: {method} /_testing/{path}: {resp.status} {data!r}")
        return json.loads(data)


class RemoteFaults(FaultQueries):
    def __init__(self, control: _Control) -> None:
        self._control = control

    def add(self, glob: str, fault: Fault) -> None:
        self._control.call("POST", "faults", {"glob": glob, **fault.as_dict()})

    def clear(self) -> None:
        self._control.call("DELETE", "faults")

    def snapshot(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control.call("GET", "faults")
        return result


class RemoteRequestLog(RequestQueries):
    def __init__(self, control: _Control) -> None:
        self._control = control

    @property
    def records(self) -> list[RequestRecord]:
        return [RequestRecord(**r) for r in self._control.call("GET", "requests")]

    def clear(self) -> None:
        self._control.call("DELETE", "requests")


class HubProcess:
    """`python -m quantpick.testing ROOT` as a child; same attributes as HubServer."""

    def __init__(
        self,
        root: Path,
        *,
        extra_args: Iterable[str] = (),
        startup_timeout_s: float = 30.0,
        stderr: Path | None = None,
    ) -> None:
        self._args = [sys.executable, "-m", "quantpick.testing", str(Path(root).resolve())]
        self._args += list(extra_args)
        self._startup_timeout_s = startup_timeout_s
        self._stderr_path = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[str] | None = None
        self._returncode: int | None = None
        self.endpoint = ""
        self.cdn_endpoint = ""
        self.cas_endpoint = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("HubProcess already started")
        if self._stderr_path is not None:
            self._stderr = self._stderr_path.open("a", encoding="utf-8")
        self._proc = subprocess.Popen(
            self._args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr or subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self.endpoint, self.cdn_endpoint, self.cas_endpoint = self._read_lines(3)
        except BaseException:
            self.stop()
            raise
        control = _Control(self.endpoint)
        self._control = control
        self.faults = RemoteFaults(control)
        self.requests = RemoteRequestLog(control)
        return self

    def _read_lines(self, n: int) -> list[str]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self._startup_timeout_s
        fd = self._proc.stdout.fileno()
        buf = b""
        # raw reads: a buffered readline could swallow line 2 while select() waits on the fd
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while buf.count(b"\n") < n:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    raise TimeoutError(f"loopback hub did not start: {self._args}")
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"loopback hub exited with {self._proc.wait()}")
                buf += chunk
        return [line.strip() for line in buf.decode().splitlines()[:n]]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._returncode = proc.returncode
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit status once stopped (0 after a clean SIGTERM shutdown)."""
        return self._returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self, root: Path | None = None) -> None:
        body = {} if root is None else {"root": str(Path(root).resolve())}
        self._control.call("POST", "reset", body)

    # --- state, read and written through the control endpoint ----------------------------------

    def _state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control.call("GET", "state")
        return result

    def _set(self, key: str, value: Any) -> None:
        self._control.call("POST", "state", {key: value})

    @property
    def root(self) -> Path:
        return Path(self._state()["root"])

    @root.setter
    def root(self, root: Path) -> None:
        self._set("root", str(Path(root).resolve()))

    @property
    def tokens(self) -> frozenset[str]:
        return frozenset(self._state()["tokens"])

    @tokens.setter
    def tokens(self, tokens: Iterable[str]) -> None:
        self._set("tokens", sorted(tokens))

    @property
    def tree_page_size(self) -> int:
        return int(self._state()["tree_page_size"])

    @tree_page_size.setter
    def tree_page_size(self, size: int) -> None:
        self._set("tree_page_size", size)

    @property
    def cdn_ttl_s(self) -> float:
        return float(self._state()["cdn_ttl_s"])

    @cdn_ttl_s.setter
    def cdn_ttl_s(self, ttl: float) -> None:
        self._set("cdn_ttl_s", ttl)

    @property
    def xet_token_ttl_s(self) -> float:
        return float(self._state()["xet_token_ttl_s"])

    @xet_token_ttl_s.setter
    def xet_token_ttl_s(self, ttl: float) -> None:
        self._set("xet_token_ttl_s", ttl)

    @property
    def errors(self) -> list[str]:
        return list(self._state()["errors"])
