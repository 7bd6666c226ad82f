"""What a route returns; the HTTP layer (handler.py) turns it into bytes on the wire."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from quantpick.testing.store import Entry


@dataclass(frozen=True)
class Stream:
    """A body made on the fly (a xorb): `pieces(start, count)` yields those bytes in order."""

    size: int
    pieces: Callable[[int, int], Iterator[bytes]]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # set for file contents: the handler streams it, honouring Range and body faults
    file: Entry | None = None
    # or a generated body, served the same way
    stream: Stream | None = None


class HubError(Exception):
    """An answer in the Hub's error shape: X-Error-Code/X-Error-Message headers, JSON body."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def reply(self) -> Reply:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code is not None:
            headers["X-Error-Code"] = self.code
        return json_reply({"error": self.message}, status=self.status, headers=headers)


def json_reply(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    try:
        body = json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # a lone surrogate (a hostile file name) has no UTF-8 form: JSON escapes it, as the Hub does
        body = json.dumps(data).encode()
    return Reply(
        status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body
    )


def iso8601(timestamp: float) -> str:
    """The Hub's timestamp format: millisecond precision, Z suffix."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
