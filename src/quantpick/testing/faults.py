"""Injected failures, matched by path glob, switched at runtime by tests or the control endpoint.

A fault fires on a request whose path (unquoted, no query) matches its glob, and method/origin if
given; `skip` lets that many matches through first, `times` caps the firings. `status` and
`stall_s` fire when the request arrives; the body effects fire only when a file body is about to
be sent, so HEADs and JSON answers do not use them up — except `length_delta`, which also fires
on the HEAD of a file because it is a header lie.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

Origin = Literal["hub", "cdn", "cas"]
Phase = Literal["request", "body"]


@dataclass(frozen=True)
class Fault:
    # answer this status (e.g. 503) instead of the real answer
    status: int | None = None
    # wait this long before answering
    stall_s: float = 0.0
    # send this many body bytes, then reset the connection
    drop_after_bytes: int | None = None
    # announce the real length but send this many bytes fewer, then close cleanly
    truncate_bytes: int = 0
    # announce Content-Length off by this much; the body stays real, cut to fit
    length_delta: int = 0
    # flip the byte at this file offset: same size, wrong sha256
    corrupt_at: int | None = None
    # cap the body rate of one response, bytes per second
    rate_bps: int | None = None
    # 1: answer a Range request with 200 and the whole body (legal HTTP: a server may ignore Range)
    ignore_range: int = 0
    # fire this many times, then never again; None = forever
    times: int | None = None
    # let this many matching requests through first (e.g. hf_transfer's unretried Range 0-0 probe)
    skip: int = 0
    method: str | None = None
    origin: Origin | None = None

    def __post_init__(self) -> None:
        # faults also arrive as JSON (control endpoint) and CLI specs: check the types they carry
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in ("method", "origin"):
                continue
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or (f.name != "stall_s" and not isinstance(value, int)):
                raise ValueError(f"fault field {f.name} must be a number, got {value!r}")
        if self.origin not in (None, "hub", "cdn", "cas"):
            raise ValueError(f"origin must be hub, cdn or cas, got {self.origin!r}")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError("rate_bps must be positive")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.skip < 0:
            raise ValueError("skip must be >= 0")

    @property
    def fires_on_request(self) -> bool:
        return self.status is not None or self.stall_s > 0

    @property
    def alters_body(self) -> bool:
        return (
            self.drop_after_bytes is not None
            or self.truncate_bytes > 0
            or self.length_delta != 0
            or self.corrupt_at is not None
            or self.rate_bps is not None
            or self.ignore_range != 0
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fault:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**raw)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """`status=503,times=2` -> Fault(status=503, times=2); for the CLI's --fault."""
        raw: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in types:
                raise ValueError(f"bad fault item {item!r}; expected one of {sorted(types)}=VALUE")
            raw[key] = value if key in ("method", "origin") else _number(value)
        return cls.from_dict(raw)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v != _DEFAULTS[k]}


def _number(value: str) -> int | float:
    return float(value) if "." in value else int(value)


_DEFAULTS = dataclasses.asdict(Fault())


@dataclass
class _Slot:
    glob: str
    fault: Fault
    seen: int = 0
    fired: int = 0


class FaultQueries:
    """Shared by the in-process table and its proxy in HubProcess."""

    def snapshot(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def fired(self, glob: str | None = None) -> int:
        """How often faults (with this glob) fired: a test's proof that its fault was hit."""
        return sum(int(s["fired"]) for s in self.snapshot() if glob in (None, s["glob"]))


class FaultTable(FaultQueries):
    """Thread-safe list of (glob, fault); the first matching fault with firings left wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []

    def add(self, glob: str, fault: Fault) -> None:
        with self._lock:
            self._slots.append(_Slot(glob, fault))

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"glob": s.glob, "fired": s.fired, **s.fault.as_dict()} for s in self._slots]

    def claim(self, phase: Phase, *, method: str, path: str, origin: Origin) -> Fault | None:
        with self._lock:
            for slot in self._slots:
                f = slot.fault
                if f.times is not None and slot.fired >= f.times:
                    continue
                if f.method not in (None, method) or f.origin not in (None, origin):
                    continue
                if phase == "request" and not f.fires_on_request:
                    continue
                if phase == "body" and (f.fires_on_request or not _body_applies(f, method)):
                    continue
                if not fnmatchcase(path, slot.glob):
                    continue
                slot.seen += 1
                if slot.seen <= f.skip:
                    continue
                slot.fired += 1
                return f
        return None


def _body_applies(fault: Fault, method: str) -> bool:
    if method == "HEAD":
        return fault.length_delta != 0
    return fault.alters_body
