"""Every request either origin answered: tests and benchmarks count them and audit the token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any

from quantpick.testing.faults import Origin


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int
    origin: Origin
    # whether an Authorization header came with it: the CDN origin must never see one
    authorized: bool
    range: str | None
    bytes_sent: int
    fault: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestQueries:
    """Counting and filtering, shared by the in-process log and its proxy in HubProcess."""

    @property
    def records(self) -> list[RequestRecord]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def filter(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        origin: Origin | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        """Records matching every given criterion; `path` is a glob, as for faults."""
        return [
            r
            for r in self.records
            if method in (None, r.method)
            and origin in (None, r.origin)
            and status in (None, r.status)
            and (path is None or fnmatchcase(r.path, path))
        ]

    def count(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        origin: Origin | None = None,
        status: int | None = None,
    ) -> int:
        return len(self.filter(method=method, path=path, origin=origin, status=status))


class RequestLog(RequestQueries):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped by every clear: a request begun before it belongs to the previous test."""
        with self._lock:
            return self._generation

    def append(self, record: RequestRecord, generation: int | None = None) -> None:
        # a killed client's request can finish after the next test reset the hub; logging it
        # there would charge one test with another's traffic
        with self._lock:
            if generation is None or generation == self._generation:
                self._records.append(record)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._generation += 1

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)
